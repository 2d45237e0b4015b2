//! Input and output processing in AWS's order: InputPath -> Parameters -> (the state's
//! work) -> ResultSelector -> ResultPath -> OutputPath. Each function consumes the value
//! it transforms, so `$` everywhere costs nothing.

use super::{transition, Assigned, Ctx, Step};
use crate::asl::compile::{Assign, ResultPath, Select, State};
use crate::asl::template::{path_failure, select};
use crate::error::{names, Failure};
use serde_json::{Map, Value};

/// InputPath applied to the raw input.
pub fn effective_input(ctx: &Ctx<'_>, state: &State, raw: Value) -> Result<Value, Failure> {
    apply_select(ctx, &state.input_path, raw)
}

/// Parameters applied to the effective input (the effective input itself without them).
pub fn parameters(ctx: &Ctx<'_>, state: &State, effective: Value) -> Result<Value, Failure> {
    match &state.parameters {
        None => Ok(effective),
        Some(t) => t.eval(&effective, ctx.env),
    }
}

/// OutputPath applied to the state's output.
pub fn output(ctx: &Ctx<'_>, state: &State, v: Value) -> Result<Value, Failure> {
    apply_select(ctx, &state.output_path, v)
}

fn apply_select(ctx: &Ctx<'_>, sel: &Select, v: Value) -> Result<Value, Failure> {
    match sel {
        Select::All => Ok(v),
        Select::Nothing => Ok(Value::Object(Map::new())),
        Select::Path(p) => {
            if matches!(p.root(), crate::asl::path::Root::Input) {
                p.select_owned(v).map_err(path_failure)
            } else {
                select(p, &v, ctx.env).map_err(path_failure)
            }
        }
    }
}

/// Merges `result` into the raw input as ResultPath says.
pub fn result_path(rp: &ResultPath, raw: Value, result: Value) -> Result<Value, Failure> {
    match rp {
        ResultPath::Replace => Ok(result),
        ResultPath::Discard => Ok(raw),
        ResultPath::Path(p) => {
            p.write(raw, result).map_err(|cause| Failure::new(names::RESULT_PATH_MATCH_FAILURE, cause))
        }
    }
}

/// Completes a state whose work produced `result`: ResultSelector, ResultPath and
/// OutputPath, then the transition.
pub fn finish(ctx: &Ctx<'_>, index: usize, raw: Value, result: Value) -> Step {
    let state = &ctx.machine.states[index];
    let done = (|| {
        let result = match &state.result_selector {
            None => result,
            Some(t) => t.eval(&result, ctx.env)?,
        };
        // Assign reads the (selected) result, with the variables from before the state.
        let assign = match &state.assign {
            None => None,
            Some(a) => assign(ctx, a, &result)?,
        };
        let merged = result_path(&state.result_path, raw, result)?;
        Ok((output(ctx, state, merged)?, assign))
    })();
    match done {
        Ok((out, assign)) => transition(state.transition, out, assign),
        Err(f) => Step::Error(f),
    }
}

/// Evaluates an Assign block against `source` (`$` in its JSONPath templates).
pub fn assign(ctx: &Ctx<'_>, a: &Assign, source: &Value) -> Result<Assigned, Failure> {
    match a {
        Assign::Path(t) => match t.eval(source, ctx.env)? {
            Value::Object(m) if m.is_empty() => Ok(None),
            Value::Object(m) => Ok(Some(Box::new(m))),
            _ => Ok(None),
        },
    }
}

//! Task: resolves the parameters and the timeouts, and asks the engine to invoke the
//! resource.

use super::super::{io, Ctx, Invoke, Step};
use crate::asl::compile::{Seconds, State, Task};
use crate::asl::template::select;
use crate::error::Failure;
use serde_json::Value;

pub fn enter(ctx: &Ctx<'_>, state: &State, task: &Task, raw: Value) -> Result<Step, Failure> {
    // ResultPath `$` (the default) replaces the input: no copy of it is kept.
    let (raw, effective) = match state.result_path {
        crate::asl::compile::ResultPath::Replace if !state.jsonata => {
            (Value::Null, io::effective_input(ctx, state, raw)?)
        }
        _ => (raw.clone(), io::effective_input(ctx, state, raw)?),
    };
    let timeout_seconds = seconds(ctx, state, &task.timeout, &effective)?;
    let heartbeat_seconds = seconds(ctx, state, &task.heartbeat, &effective)?;
    let params = io::parameters(ctx, state, effective)?;
    Ok(Step::Invoke(Box::new(Invoke {
        resource: task.resource.clone(),
        params,
        raw,
        timeout_seconds,
        heartbeat_seconds,
    })))
}

fn seconds(ctx: &Ctx<'_>, state: &State, s: &Seconds, input: &Value) -> Result<Option<u64>, Failure> {
    match s {
        Seconds::None => Ok(None),
        Seconds::Fixed(n) => Ok(Some(*n)),
        Seconds::Expr(t) => {
            let doc = io::states_doc(ctx, state, input.clone());
            let n = io::jsonata_integer(ctx, t, &doc, "TimeoutSeconds")?;
            Ok(Some(n.max(0) as u64))
        }
        Seconds::Path(p) => {
            let v = select(p, input, ctx.env).map_err(crate::asl::template::path_failure)?;
            match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(Failure::runtime(format!(
                    "The {} path references an invalid value: {} == {}",
                    p.text(),
                    p.text(),
                    crate::asl::template::compact(&v)
                ))),
            }
        }
    }
}

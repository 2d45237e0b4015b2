//! Task: resolves the parameters and the timeouts, and asks the engine to invoke the
//! resource.

use super::super::{io, Ctx, Invoke, Step};
use crate::asl::compile::{Seconds, State, Task};
use crate::asl::template::select;
use crate::error::{names, Failure};
use serde_json::Value;

pub fn enter(ctx: &Ctx<'_>, state: &State, task: &Task, raw: Value) -> Result<Step, Failure> {
    // ResultPath `$` (the default) replaces the input: no copy of it is kept.
    let (raw, effective) = match state.result_path {
        crate::asl::compile::ResultPath::Replace if !state.jsonata => {
            (Value::Null, io::effective_input(ctx, state, raw)?)
        }
        _ => (raw.clone(), io::effective_input(ctx, state, raw)?),
    };
    let timeout_seconds = seconds(ctx, state, &task.timeout, &effective, "TimeoutSeconds")?;
    let heartbeat_seconds = seconds(ctx, state, &task.heartbeat, &effective, "HeartbeatSeconds")?;
    let params = io::parameters(ctx, state, effective)?;
    Ok(Step::Invoke(Box::new(Invoke {
        resource: task.resource.clone(),
        params,
        raw,
        timeout_seconds,
        heartbeat_seconds,
    })))
}

/// The most a JSONata TimeoutSeconds or HeartbeatSeconds may give, as AWS words its bound.
const MAX_SECONDS: i64 = 99_999_999;

fn seconds(
    ctx: &Ctx<'_>,
    state: &State,
    s: &Seconds,
    input: &Value,
    field: &str,
) -> Result<Option<u64>, Failure> {
    match s {
        Seconds::None => Ok(None),
        Seconds::Fixed(n) => Ok(Some(*n)),
        Seconds::Expr(t) => {
            let doc = io::states_doc(ctx, state, input.clone());
            let n = io::jsonata_integer(ctx, t, &doc, field)?;
            // Checked before the call is made (recorded on AWS for TimeoutSeconds -1).
            if !(0..=MAX_SECONDS).contains(&n) {
                return Err(Failure::new(
                    names::QUERY_EVALUATION_ERROR,
                    format!("{field} must be between 0 and {MAX_SECONDS} but was: {n}"),
                ));
            }
            Ok(Some(n as u64))
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

//! Pass: the result is `Result`, or Parameters applied to the effective input, or the
//! effective input itself.

use super::super::{io, Ctx, Step};
use crate::asl::compile::{ResultPath, State};
use crate::error::Failure;
use serde_json::Value;

pub fn enter(
    ctx: &Ctx<'_>,
    index: usize,
    state: &State,
    result: Option<&Value>,
    raw: Value,
) -> Result<Step, Failure> {
    if state.jsonata {
        let (output, assign) =
            io::jsonata_exit(ctx, state, raw, None, state.output.as_ref(), state.assign.as_ref())?;
        return Ok(super::super::transition(state.transition, output, assign));
    }
    // Only a ResultPath other than `$` needs the raw input afterwards; otherwise the input
    // moves straight through and nothing is copied.
    let (raw, effective) = match state.result_path {
        ResultPath::Replace => (Value::Null, io::effective_input(ctx, state, raw)?),
        _ => (raw.clone(), io::effective_input(ctx, state, raw)?),
    };
    let result = match result {
        Some(r) => r.clone(),
        None => io::parameters(ctx, state, effective)?,
    };
    Ok(io::finish(ctx, index, raw, result))
}

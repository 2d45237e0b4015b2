//! Parallel: the engine runs every branch on the same input; their outputs, in branch
//! order, are the state's result.

use super::super::{io, Ctx, Step};
use crate::asl::compile::State;
use crate::error::Failure;
use serde_json::Value;

pub fn enter(ctx: &Ctx<'_>, state: &State, raw: Value) -> Result<Step, Failure> {
    let effective = io::effective_input(ctx, state, raw.clone())?;
    let input = io::parameters(ctx, state, effective)?;
    Ok(Step::Parallel(Box::new((input, raw))))
}

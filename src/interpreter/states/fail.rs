//! Fail: ends the machine with Error and Cause, literal or read by path from the input.

use super::super::{io, Ctx, Step};
use crate::asl::compile::State;
use crate::asl::compile::Text;
use crate::asl::template::compact;
use crate::error::Failure;
use serde_json::Value;

pub fn enter(ctx: &Ctx<'_>, state: &State, error: &Text, cause: &Text, raw: Value) -> Result<Step, Failure> {
    let text = |t: &Text| -> Result<String, Failure> {
        Ok(match t {
            Text::None => String::new(),
            Text::Literal(s) => s.clone(),
            Text::Expr(e) => match e.eval(&raw, ctx.env)? {
                Value::String(s) => s,
                other => compact(&other),
            },
            Text::Jsonata(t) => match t.eval(&io::states_doc(ctx, state, raw.clone()), ctx.env)? {
                Value::String(s) => s,
                other => compact(&other),
            },
        })
    };
    Ok(Step::Fail(Failure::new(text(error)?, text(cause)?)))
}

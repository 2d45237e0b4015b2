//! Fail: ends the machine with Error and Cause, literal or read by path from the input.

use super::super::{Ctx, Step};
use crate::asl::compile::Text;
use crate::asl::template::compact;
use crate::error::Failure;
use serde_json::Value;

pub fn enter(ctx: &Ctx<'_>, error: &Text, cause: &Text, raw: Value) -> Result<Step, Failure> {
    let text = |t: &Text| -> Result<String, Failure> {
        Ok(match t {
            Text::None => String::new(),
            Text::Literal(s) => s.clone(),
            Text::Expr(e) => match e.eval(&raw, ctx.env)? {
                Value::String(s) => s,
                other => compact(&other),
            },
        })
    };
    Ok(Step::Fail(Failure::new(text(error)?, text(cause)?)))
}

//! Fail: ends the machine with Error and Cause, literal or read by path from the input.

use super::super::{Ctx, Step};
use crate::asl::compile::Text;
use crate::asl::template::{compact, select};
use crate::error::Failure;
use serde_json::Value;

pub fn enter(ctx: &Ctx<'_>, error: &Text, cause: &Text, raw: Value) -> Result<Step, Failure> {
    let text = |t: &Text, field: &str| -> Result<String, Failure> {
        Ok(match t {
            Text::None => String::new(),
            Text::Literal(s) => s.clone(),
            Text::Path(p) => match select(p, &raw, ctx.env) {
                Ok(Value::String(s)) => s,
                Ok(other) => compact(&other),
                Err(_) => {
                    return Err(Failure::runtime(format!(
                        "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                        p.text(),
                        compact(&raw)
                    )))
                }
            },
        })
    };
    Ok(Step::Fail(Failure::new(text(error, "ErrorPath")?, text(cause, "CausePath")?)))
}

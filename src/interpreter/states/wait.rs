//! Wait: resolves how long or until when; the engine arms the (durable) timer.

use super::super::{io, transition, Ctx, Step, WaitUntil};
use crate::asl::choice::timestamp;
use crate::asl::compile::{State, WaitFor};
use crate::asl::template::{compact, select};
use crate::error::Failure;
use serde_json::Value;

pub fn enter(ctx: &Ctx<'_>, state: &State, wait: &WaitFor, raw: Value) -> Result<Step, Failure> {
    let effective = io::effective_input(ctx, state, raw)?;
    let until = match wait {
        WaitFor::Seconds(n) => WaitUntil::Seconds(*n),
        WaitFor::SecondsExpr(t) => {
            let doc = io::states_doc(ctx, state, effective.clone());
            let n = io::jsonata_integer(ctx, t, &doc, "Seconds")?;
            WaitUntil::Seconds(n.max(0) as u64)
        }
        WaitFor::TimestampExpr(t) => {
            let doc = io::states_doc(ctx, state, effective.clone());
            let v = t.eval(&doc, ctx.env)?;
            let text = v.as_str().unwrap_or_default();
            WaitUntil::Timestamp(timestamp(text).ok_or_else(|| {
                Failure::new(
                    crate::error::names::QUERY_EVALUATION_ERROR,
                    format!("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {text}"),
                )
            })?)
        }
        WaitFor::Timestamp(t) => WaitUntil::Timestamp(timestamp(t).ok_or_else(|| {
            Failure::runtime(format!("The Timestamp field is not a valid ISO-8601 date-time: {t}"))
        })?),
        WaitFor::SecondsPath(p) => {
            let v = select(p, &effective, ctx.env).map_err(|_| {
                Failure::runtime(format!(
                    "The SecondsPath parameter does not reference an input value: {}",
                    p.text()
                ))
            })?;
            let shown = || match &v {
                Value::String(s) => s.clone(),
                other => compact(other),
            };
            match v.as_i64() {
                Some(n) if n < 0 => {
                    return Err(Failure::runtime(format!(
                        "The SecondsPath parameter references a negative value: {} == {}",
                        p.text(),
                        shown()
                    )))
                }
                Some(n) => WaitUntil::Seconds(n as u64),
                None => {
                    return Err(Failure::runtime(format!(
                        "The SecondsPath parameter cannot be parsed as a long value: {} == {}",
                        p.text(),
                        shown()
                    )))
                }
            }
        }
        WaitFor::TimestampPath(p) => {
            let v = select(p, &effective, ctx.env).map_err(|_| {
                Failure::runtime(format!(
                    "The TimestampPath parameter does not reference an input value: {}",
                    p.text()
                ))
            })?;
            match v.as_str().and_then(timestamp) {
                Some(t) => WaitUntil::Timestamp(t),
                None => {
                    let shown = match &v {
                        Value::String(s) => s.clone(),
                        other => compact(other),
                    };
                    return Err(Failure::runtime(format!(
                        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {shown}",
                        p.text()
                    )));
                }
            }
        }
    };
    if let WaitUntil::Seconds(n) = until {
        if n > ctx.limits.max_wait_seconds {
            return Err(Failure::runtime("Wait state delay is too long."));
        }
    }
    if state.jsonata {
        let (output, assign) =
            io::jsonata_exit(ctx, state, effective, None, state.output.as_ref(), state.assign.as_ref())?;
        return Ok(Step::Wait { until, then: Box::new(transition(state.transition, output, assign)) });
    }
    let assign = match &state.assign {
        Some(a) => io::assign(ctx, a, &effective)?,
        None => None,
    };
    let output = io::output(ctx, state, effective)?;
    Ok(Step::Wait { until, then: Box::new(transition(state.transition, output, assign)) })
}

//! Choice: the first rule that holds picks the next state; Default otherwise;
//! States.NoChoiceMatched when there is none.

use super::super::{io, Ctx, Step};
use crate::asl::compile::{ChoiceRule, State};
use crate::error::{names, Failure};
use serde_json::Value;

pub fn enter(
    ctx: &Ctx<'_>,
    state: &State,
    rules: &[ChoiceRule],
    default: Option<usize>,
    raw: Value,
) -> Result<Step, Failure> {
    let effective = io::effective_input(ctx, state, raw)?;
    let mut next = default;
    let mut assign = state.assign.as_ref();
    for r in rules {
        if r.rule.eval(&effective, ctx.env)? {
            next = Some(r.next);
            assign = r.assign.as_ref().or(assign);
            break;
        }
    }
    let Some(next) = next else {
        return Err(Failure::new(
            names::NO_CHOICE_MATCHED,
            format!("No Matches! for state '{}'", state.name),
        ));
    };
    let assign = match assign {
        Some(a) => io::assign(ctx, a, &effective)?,
        None => None,
    };
    Ok(Step::Next { next, output: io::output(ctx, state, effective)?, assign })
}

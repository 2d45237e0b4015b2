//! Choice: the first rule that holds picks the next state; Default otherwise;
//! States.NoChoiceMatched when there is none.

use super::super::{io, Ctx, Step};
use crate::asl::choice::Rule;
use crate::asl::compile::State;
use crate::error::{names, Failure};
use serde_json::Value;

pub fn enter(
    ctx: &Ctx<'_>,
    state: &State,
    rules: &[(Rule, usize)],
    default: Option<usize>,
    raw: Value,
) -> Result<Step, Failure> {
    let effective = io::effective_input(ctx, state, raw)?;
    let mut next = default;
    for (rule, target) in rules {
        if rule.eval(&effective, ctx.env)? {
            next = Some(*target);
            break;
        }
    }
    let Some(next) = next else {
        return Err(Failure::new(
            names::NO_CHOICE_MATCHED,
            format!("No Matches! for state '{}'", state.name),
        ));
    };
    Ok(Step::Next { next, output: io::output(ctx, state, effective)? })
}

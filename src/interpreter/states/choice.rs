//! Choice: the first rule that holds picks the next state; Default otherwise;
//! States.NoChoiceMatched when there is none. JSONata rules are `Condition` expressions.

use super::super::{io, Ctx, Step};
use crate::asl::compile::{ChoiceRule, ChoiceTest, State};
use crate::asl::template::compact;
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
    let doc = state.jsonata.then(|| io::states_doc(ctx, state, effective.clone()));
    let mut next = default;
    let mut matched = None;
    for r in rules {
        let holds = match (&r.test, &doc) {
            (ChoiceTest::Rule(rule), _) => rule.eval(&effective, ctx.env)?,
            (ChoiceTest::Condition(t), Some(doc)) => match t.eval(doc, ctx.env)? {
                Value::Bool(b) => b,
                other => {
                    return Err(Failure::new(
                        names::QUERY_EVALUATION_ERROR,
                        format!(
                            "The JSONata expression specified for the field 'Condition' returned an unexpected result type. Expected 'boolean', but was '{}' for value: {}",
                            crate::asl::path::type_name(&other),
                            compact(&other)
                        ),
                    ))
                }
            },
            (ChoiceTest::Condition(_), None) => false,
        };
        if holds {
            next = Some(r.next);
            matched = Some(r);
            break;
        }
    }
    // AWS raises no States.NoChoiceMatched here (the error the ASL specification names):
    // executions recorded on AWS fail with States.Runtime, which no Catch takes.
    let Some(next) = next else {
        return Err(Failure::runtime(
            "Failed to transition out of the state. The state does not point to a next state.",
        ));
    };
    let assign = matched.and_then(|r| r.assign.as_ref()).or(state.assign.as_ref());
    if state.jsonata {
        let output = matched.and_then(|r| r.output.as_ref()).or(state.output.as_ref());
        let (output, assign) = io::jsonata_exit(ctx, state, effective, None, output, assign)?;
        return Ok(Step::Next { next, output, assign });
    }
    let assign = match assign {
        Some(a) => io::assign(ctx, a, &effective)?,
        None => None,
    };
    Ok(Step::Next { next, output: io::output(ctx, state, effective)?, assign })
}

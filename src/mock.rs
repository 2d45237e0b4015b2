//! Mocked Task responses in the format of AWS Step Functions Local's mock config
//! (`StateMachines -> TestCases -> state -> response name`, `MockedResponses -> name ->
//! "0" | "1-2" -> Return | Throw`), so a workflow's Task states can be tested with no
//! service behind them. [`Mocked`] is a connector that wraps the configured ones: a Task
//! whose state the test case mocks gets its response, any other goes on to its connector.

use crate::connectors::{self, Answer, AnsweredNow, AtOnce, Call, Connector, EventFamily, Registry};
use crate::engine::core::json_len;
use crate::engine::frames::bytewise;
use crate::error::Failure;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MockConfig {
    #[serde(default)]
    pub state_machines: HashMap<String, MachineCases>,
    #[serde(default)]
    pub mocked_responses: HashMap<String, HashMap<String, Response>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MachineCases {
    pub test_cases: HashMap<String, HashMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Response {
    #[serde(default)]
    pub r#return: Option<Value>,
    #[serde(default)]
    pub throw: Option<Throw>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Throw {
    pub error: String,
    #[serde(default)]
    pub cause: String,
}

/// The responses of one test case, ready to serve: per state (sorted by name), responses by
/// invocation.
#[derive(Debug, Default)]
pub struct TestCase {
    states: Vec<(String, Rows)>,
    calls: Mutex<Counted>,
}

/// What a test case keeps of the calls made so far.
#[derive(Debug, Default)]
struct Counted {
    /// The calls of each state so far, by execution: as in Step Functions Local, a mocked
    /// response's numbers count a state's invocations within one execution, so each execution
    /// starts from 0. Only the executions that called last are kept (`stepgate run` runs its
    /// executions one after another; a parent and the children it runs interleave).
    executions: Vec<Calls>,
    /// States called before, by the address of the name they were called by (a compiled
    /// machine's), with their index in `states`: a machine calls the same few states over
    /// and over.
    seen: Vec<(usize, usize)>,
}

/// A state's responses, in the order of their invocations.
type Rows = Vec<Row>;

/// A response for invocations `lo` to `hi`, with the length of its `Return` as JSON text.
#[derive(Debug)]
struct Row {
    lo: u32,
    hi: u32,
    response: Response,
    size: usize,
}

/// An execution's calls of each mocked state (as `states` orders them).
#[derive(Debug)]
struct Calls {
    execution: Arc<str>,
    counts: Vec<u32>,
}

/// Executions whose call counts are kept, most recent first.
const COUNTED_EXECUTIONS: usize = 16;

/// State names whose address a test case remembers.
const SEEN_NAMES: usize = 32;

impl MockConfig {
    pub fn parse(text: &str) -> Result<MockConfig, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid mock config: {e}"))
    }

    /// Selects `case` of `machine`, checking that every response it names exists.
    pub fn test_case(&self, machine: &str, case: &str) -> Result<TestCase, String> {
        let cases = self
            .state_machines
            .get(machine)
            .ok_or_else(|| format!("the mock config has no state machine named '{machine}'"))?;
        let states = cases
            .test_cases
            .get(case)
            .ok_or_else(|| format!("the mock config has no test case '{case}' for '{machine}'"))?;
        let mut out = Vec::new();
        for (state, response) in states {
            let table = self.mocked_responses.get(response).ok_or_else(|| {
                format!("test case '{case}' names the mocked response '{response}', which is not defined")
            })?;
            let mut rows = Vec::new();
            for (key, r) in table {
                let (lo, hi) = match key.split_once('-') {
                    Some((a, b)) => (a.trim().parse(), b.trim().parse()),
                    None => (key.trim().parse(), key.trim().parse()),
                };
                let (Ok(lo), Ok(hi)) = (lo, hi) else {
                    return Err(format!(
                        "mocked response '{response}': '{key}' is not an invocation number or range"
                    ));
                };
                if r.r#return.is_some() == r.throw.is_some() {
                    return Err(format!(
                        "mocked response '{response}' '{key}' needs exactly one of Return and Throw"
                    ));
                }
                let size = r.r#return.as_ref().map_or(0, json_len);
                rows.push(Row { lo, hi, response: r.clone(), size });
            }
            rows.sort_by_key(|r| r.lo);
            out.push((state.clone(), rows));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(TestCase { states: out, calls: Mutex::default() })
    }
}

impl TestCase {
    /// The mocked outcome of the next invocation of `state`, or `None` when the state
    /// is not mocked. Past the last listed invocation, the last response repeats.
    pub fn response(&self, execution_arn: &Arc<str>, state: &str) -> Option<Result<Value, Failure>> {
        self.row(execution_arn, state).map(|r| AnsweredNow::from(r).into_result())
    }

    /// The response row of the next invocation of `state`, counted.
    fn row(&self, execution_arn: &Arc<str>, state: &str) -> Option<&Row> {
        let mut counted = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let Counted { executions, seen } = &mut *counted;
        let address = state.as_ptr() as usize;
        // A name seen at this address is the same name only if it still reads the same (the
        // machine that held it may be gone, its memory used again).
        let known = seen
            .iter()
            .find(|(a, i)| *a == address && bytewise(self.states[*i].0.as_bytes(), state.as_bytes()).is_eq());
        let index = match known {
            Some((_, i)) => *i,
            None => {
                let found =
                    self.states.binary_search_by(|(name, _)| bytewise(name.as_bytes(), state.as_bytes()));
                let i = found.ok()?;
                if seen.len() == SEEN_NAMES {
                    seen.pop();
                }
                seen.insert(0, (address, i));
                i
            }
        };
        // The execution that called last, most often; known by its address before its text.
        match executions
            .iter()
            .position(|c| Arc::ptr_eq(&c.execution, execution_arn) || same_arn(&c.execution, execution_arn))
        {
            Some(i) => executions[..=i].rotate_right(1),
            None => {
                let counts = vec![0; self.states.len()];
                executions.insert(0, Calls { execution: execution_arn.clone(), counts });
                executions.truncate(COUNTED_EXECUTIONS);
            }
        }
        let c = &mut executions[0].counts[index];
        *c += 1;
        let n = *c - 1;
        let rows = &self.states[index].1;
        rows.iter().find(|r| (r.lo..=r.hi).contains(&n)).or(rows.last())
    }
}

impl<'a> From<&'a Row> for AnsweredNow<'a> {
    fn from(r: &'a Row) -> Self {
        match (&r.response.r#return, &r.response.throw) {
            (Some(v), _) => AnsweredNow::Lent(v, r.size),
            (None, Some(t)) => AnsweredNow::Made(Err(Failure::new(t.error.clone(), t.cause.clone()))),
            (None, None) => unreachable!("checked when the test case was selected"),
        }
    }
}

/// Whether two execution ARNs are the same, compared eight bytes at a time from the end, where
/// the ARNs of one state machine's executions differ (their names). Written out rather than
/// `==`: libc's vector `memcmp` costs more than these short strings on the machines measured
/// (BENCHMARKS.md).
fn same_arn(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (x, y) = (a.rchunks_exact(8), b.rchunks_exact(8));
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
    let (p, q) = (x.remainder(), y.remainder());
    x.zip(y).all(|(p, q)| word(p) == word(q)) && p.iter().zip(q).all(|(p, q)| p == q)
}

/// The connectors of `inner` with the states of a test case mocked.
pub struct Mocked {
    case: TestCase,
    inner: Registry,
}

impl Mocked {
    /// `inner` with `case` searched first, for every resource.
    pub fn wrap(inner: Registry, case: TestCase) -> Registry {
        inner.clone().with(Arc::new(Mocked { case, inner }))
    }
}

impl Connector for Mocked {
    fn handles(&self, _: &str) -> bool {
        // A mocked state may name any resource, served here or not.
        true
    }

    fn describe(&self) -> String {
        "the mocked responses of the test case, then the connectors below".into()
    }

    fn family(&self, resource: &str) -> EventFamily {
        self.inner.resolve(&Arc::from(resource)).map_or(EventFamily::Task, |(_, f)| f)
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>> {
        // A mocked callback Task answers at once, as Step Functions Local's mocks do.
        if let Some(r) = self.case.response(&call.context.execution_arn, &call.context.state_name) {
            return futures::future::ready(r.map(Answer::Result)).boxed();
        }
        match self.inner.resolve(&call.resource) {
            Some((c, _)) => c.invoke(call),
            None => futures::future::ready(Err(connectors::unknown_resource(&call.resource))).boxed(),
        }
    }

    fn answer_now(&self, call: &AtOnce<'_>) -> Option<AnsweredNow<'_>> {
        match self.case.row(call.execution_arn, call.state_name) {
            Some(r) => Some(r.into()),
            // What the connector below lends lives no longer than its handle here.
            None => {
                let below = self.inner.resolve(call.resource)?.0;
                Some(AnsweredNow::Made(below.answer_now(call)?.into_result()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_follow_invocation_ranges() {
        let cfg = MockConfig::parse(
            &json!({
                "StateMachines": {"M": {"TestCases": {"Retry": {"Call": "Flaky"}}}},
                "MockedResponses": {"Flaky": {
                    "0-1": {"Throw": {"Error": "Lambda.TooManyRequestsException", "Cause": "slow down"}},
                    "2": {"Return": {"ok": true}}
                }}
            })
            .to_string(),
        )
        .unwrap();
        let case = cfg.test_case("M", "Retry").unwrap();
        let (first, second): (Arc<str>, Arc<str>) = ("arn:1".into(), "arn:2".into());
        assert_eq!(
            case.response(&first, "Call").unwrap().unwrap_err().error,
            "Lambda.TooManyRequestsException"
        );
        assert!(case.response(&first, "Call").unwrap().is_err());
        assert_eq!(case.response(&first, "Call").unwrap(), Ok(json!({"ok": true})));
        assert!(case.response(&first, "Other").is_none());
        // Another execution counts its own calls from 0, and the first goes on from where it
        // was (a parent and its child interleave).
        assert!(case.response(&second, "Call").unwrap().is_err());
        assert_eq!(case.response(&first, "Call").unwrap(), Ok(json!({"ok": true})));
        assert!(case.response(&second, "Call").unwrap().is_err());
        assert_eq!(case.response(&second, "Call").unwrap(), Ok(json!({"ok": true})));
        assert!(cfg.test_case("M", "Nope").is_err());
    }

    /// A state name is known by its address only while that address holds the same name: a
    /// machine's memory used again for another name finds that name's responses, or none.
    #[test]
    fn a_name_at_an_address_seen_before_is_read_again() {
        let cfg = MockConfig::parse(
            &json!({
                "StateMachines": {"M": {"TestCases": {"T": {"Call": "One", "Next": "Two"}}}},
                "MockedResponses": {"One": {"0": {"Return": 1}}, "Two": {"0": {"Return": 2}}}
            })
            .to_string(),
        )
        .unwrap();
        let case = cfg.test_case("M", "T").unwrap();
        let arn: Arc<str> = "arn:1".into();
        let mut name = String::from("Call");
        assert_eq!(case.response(&arn, &name).unwrap(), Ok(json!(1)));
        name.replace_range(.., "Next");
        assert_eq!(case.response(&arn, &name).unwrap(), Ok(json!(2)));
        name.replace_range(.., "Nope");
        assert!(case.response(&arn, &name).is_none());
        // The same name at another address is the same state.
        assert_eq!(case.response(&arn, "Call").unwrap(), Ok(json!(1)));
    }
}

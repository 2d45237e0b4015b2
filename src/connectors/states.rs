//! Nested executions: `arn:aws:states:::states:startExecution` starts an execution of another
//! state machine of this daemon, as the Step Functions integration does on AWS. Plain, the
//! Task ends with the StartExecution answer; `.waitForTaskToken`, it waits for its token (the
//! workflow hands `$$.Task.Token` to the child in its input); `.sync` and `.sync:2`, it waits
//! for the child's end. The child carries a link to the waiting Task's token, stored with it,
//! and the service reports the child's end through that token (after a restart too), so the
//! parent waits parked like any callback.
//!
//! The service behind the connector is bound after both are built ([`Nested::bind`]): the
//! service runs the engine, whose registry holds this connector.

use super::{sdk_metadata, Answer, Call, Connector};
use crate::error::Failure;
use crate::store::{ExecutionRecord, ExecutionStatus, ParentLink};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use std::sync::{Arc, OnceLock};

const START: &str = "arn:aws:states:::states:startExecution";

/// How the Task waits for its child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not at all: the StartExecution answer is the result.
    Start,
    /// For its token.
    Token,
    /// For the child's end; `json`: `.sync:2`, the child's input and output as JSON.
    Sync { json: bool },
}

fn mode(resource: &str) -> Option<Mode> {
    Some(match resource.strip_prefix(START)? {
        "" => Mode::Start,
        ".waitForTaskToken" => Mode::Token,
        ".sync" => Mode::Sync { json: false },
        ".sync:2" => Mode::Sync { json: true },
        _ => return None,
    })
}

/// A child execution to start.
#[derive(Debug, Clone)]
pub struct ChildStart {
    pub state_machine_arn: String,
    pub name: Option<String>,
    pub input: Value,
    pub parent: Option<ParentLink>,
}

/// A child that was started, or that existed already under that name with that input
/// (`ended`: it has ended, and its end is the Task's at once).
#[derive(Debug, Clone)]
pub struct ChildStarted {
    pub execution_arn: String,
    pub start_date: DateTime<Utc>,
    pub ended: Option<ExecutionRecord>,
}

/// What the service answers a start it refuses: AWS's exception name and message.
pub type Refused = (&'static str, String);

/// The service's side: starting executions.
pub trait Executions: Send + Sync {
    fn start_child(&self, req: ChildStart) -> BoxFuture<'static, Result<ChildStarted, Refused>>;
}

/// The connector.
#[derive(Default)]
pub struct Nested {
    executions: OnceLock<Arc<dyn Executions>>,
}

impl Nested {
    pub fn new() -> Arc<Nested> {
        Arc::new(Nested::default())
    }

    /// Binds the service that starts the children; the first binding stays.
    pub fn bind(&self, executions: Arc<dyn Executions>) {
        let _ = self.executions.set(executions);
    }
}

impl Connector for Nested {
    fn handles(&self, resource: &str) -> bool {
        mode(resource).is_some()
    }

    fn describe(&self) -> String {
        format!("{START}[.sync|.sync:2|.waitForTaskToken] (executions of this daemon's state machines)")
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>> {
        let executions = self.executions.get().cloned();
        async move {
            let Some(executions) = executions else {
                return Err(Failure::runtime(
                    "Nested executions (states:startExecution) run under `stepgate serve`, which holds the state machines they start.",
                ));
            };
            let mode = mode(&call.resource).unwrap_or(Mode::Start);
            let req = child_start(&call, mode)?;
            let started = executions.start_child(req).await.map_err(|(kind, message)| service_error(kind, &message))?;
            if let (Mode::Sync { json }, Some(ended)) = (mode, &started.ended) {
                return child_outcome(ended, json).map(Answer::Result);
            }
            let answer = start_answer(&started);
            Ok(match mode {
                Mode::Start => Answer::Result(answer),
                Mode::Token | Mode::Sync { .. } => Answer::Submitted(answer),
            })
        }
        .boxed()
    }
}

/// The child to start from the Task's parameters.
fn child_start(call: &Call, mode: Mode) -> Result<ChildStart, Failure> {
    let p = &call.params;
    let state_machine_arn = match p.get("StateMachineArn") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(service_error(
                "ValidationException",
                "1 validation error detected: Value null at 'stateMachineArn' failed to satisfy constraint: Member must not be null",
            ))
        }
    };
    let name = match p.get("Name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    // StartExecution takes its input as text: a string is that text, anything else is sent
    // as its JSON, and none is `{}`.
    let input = match p.get("Input") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(text)) => crate::engine::input::parse(text).map_err(|message| {
            service_error(
                "InvalidExecutionInput",
                &format!("Invalid State Machine Execution Input: '{message}'"),
            )
        })?,
        Some(v) => v.clone(),
    };
    let parent = match mode {
        Mode::Sync { json } => Some(ParentLink {
            execution_arn: call.context.execution_arn.to_string(),
            token: call.context.token.clone().ok_or_else(|| Failure::runtime("a .sync Task has no token"))?,
            json,
        }),
        _ => None,
    };
    Ok(ChildStart { state_machine_arn, name, input, parent })
}

/// StartExecution's answer as the integration returns it, the SDK's metadata included.
fn start_answer(started: &ChildStarted) -> Value {
    let start_date = millis(started.start_date);
    // The length of the API's own answer, which the metadata reports.
    let body = json!({"executionArn": started.execution_arn, "startDate": started.start_date.timestamp_millis() as f64 / 1000.0});
    let (http, response) = sdk_metadata("application/x-amz-json-1.0", body.to_string().len());
    json!({
        "ExecutionArn": started.execution_arn,
        "SdkHttpMetadata": http,
        "SdkResponseMetadata": response,
        "StartDate": start_date,
    })
}

/// A date as the integrations write them: milliseconds since the epoch.
fn millis(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis())
}

/// A refusal of the Step Functions service as a Task failure, in the words AWS's SDK uses
/// for a service's error (`StepFunctions.<Name>Exception`, and the request's details).
pub fn service_error(kind: &str, message: &str) -> Failure {
    let name = kind.strip_suffix("Exception").unwrap_or(kind);
    let request_id = uuid::Uuid::new_v4();
    Failure::new(
        format!("StepFunctions.{name}Exception"),
        format!(
            "{message} (Service: AWSStepFunctions; Status Code: 400; Error Code: {name}; Request ID: {request_id}; Proxy: null)"
        ),
    )
}

/// The end of a child as its `.sync` Task sees it: a child that succeeded is the Task's
/// result, one that failed, timed out or was stopped fails the Task with
/// `States.TaskFailed` and the child's description as the cause.
pub fn child_outcome(e: &ExecutionRecord, json: bool) -> Result<Value, Failure> {
    let text_or_json = |text: &str| {
        if json {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        } else {
            Value::String(text.to_string())
        }
    };
    // The keys in the order AWS writes them.
    let mut d = Map::new();
    if let Some(c) = &e.cause {
        d.insert("Cause".into(), json!(c));
    }
    if let Some(er) = &e.error {
        d.insert("Error".into(), json!(er));
    }
    d.insert("ExecutionArn".into(), json!(e.arn));
    d.insert("Input".into(), text_or_json(&e.input));
    d.insert("InputDetails".into(), json!({"Included": true}));
    d.insert("Name".into(), json!(e.name));
    if let Some(o) = &e.output {
        d.insert("Output".into(), text_or_json(o));
        d.insert("OutputDetails".into(), json!({"Included": true}));
    }
    d.insert("RedriveCount".into(), json!(e.redrive_count));
    let (redrive, why) = e.redrive_status();
    d.insert("RedriveStatus".into(), json!(redrive));
    if let Some(why) = why {
        d.insert("RedriveStatusReason".into(), json!(why));
    }
    d.insert("StartDate".into(), millis(e.start));
    d.insert("StateMachineArn".into(), json!(e.state_machine_arn));
    d.insert("Status".into(), json!(e.status.as_str()));
    if let Some(stop) = e.stop {
        d.insert("StopDate".into(), millis(stop));
    }
    let d = Value::Object(d);
    match e.status {
        ExecutionStatus::Succeeded => Ok(d),
        _ => Err(Failure::new(crate::error::names::TASK_FAILED, d.to_string())),
    }
}

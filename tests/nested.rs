//! Nested executions through the daemon: a `.sync:2` child that waits on a callback across a
//! SIGKILL and restart and whose end still reaches its parent, a stopped parent that stops
//! its `.sync` child, and a failed child whose description fails the parent's Task with
//! `States.TaskFailed` (caught by name), in AWS's shapes.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod common;
use common::{
    callback_task, hand_over, history_types, start, token, wait_for_status, workflows, Daemon, ACCOUNT_ARN,
};

fn machine(name: &str) -> String {
    format!("{ACCOUNT_ARN}:stateMachine:{name}")
}

fn child_arn(machine: &str, name: &str) -> String {
    format!("{ACCOUNT_ARN}:execution:{machine}:{name}")
}

/// A Task that starts `child` named `name` with `input` and waits as `resource` says.
fn start_child(resource: &str, child: &str, name: &str, input: Value, extra: Value) -> Value {
    let mut t = json!({
        "Type": "Task",
        "Resource": format!("arn:aws:states:::states:{resource}"),
        "Parameters": {"StateMachineArn": machine(child), "Name": name, "Input": input},
    });
    t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    t
}

#[test]
fn a_sync_child_survives_a_sigkill_and_its_end_reaches_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let functions = hand_over(dir.path());
    let child = json!({"StartAt": "Ask", "States": {"Ask": callback_task(json!({"End": true}))}});
    let parent = json!({
        "StartAt": "Run",
        "States": {
            "Run": start_child(
                "startExecution.sync:2",
                "child",
                "kid",
                json!({"n": 1, "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"}),
                json!({"End": true})
            )
        }
    });
    workflows(dir.path(), &[("child", child), ("parent", parent)]);
    let d = Daemon::start(dir.path(), &functions, &[]);
    let arn = start(&d, "parent", "p1", json!({}));
    let t = token(dir.path(), "1", Duration::from_secs(20));
    // Both wait, parked: the child on its callback (its hand-over committed, so the token
    // read stays its token across the kill), the parent on the child.
    let kid = child_arn("child", "kid");
    assert_eq!(d.describe(&kid)["status"], "RUNNING");
    let until = Instant::now() + Duration::from_secs(10);
    while d.metric("stepgate_executions_parked") < 2.0 {
        assert!(Instant::now() < until, "parent and child never parked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut d = d;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    drop(d);
    let d = Daemon::start(dir.path(), &functions, &[]);
    let (status, r) = d.call("SendTaskSuccess", json!({"taskToken": t, "output": "{\"done\":true}"}));
    assert_eq!(status, 200, "{r}");
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    let out: Value = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();
    // `.sync:2`: the child's description with its input and output as JSON, in AWS's keys.
    let keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "ExecutionArn",
            "Input",
            "InputDetails",
            "Name",
            "Output",
            "OutputDetails",
            "RedriveCount",
            "RedriveStatus",
            "RedriveStatusReason",
            "StartDate",
            "StateMachineArn",
            "Status",
            "StopDate"
        ]
    );
    assert_eq!(out["ExecutionArn"], kid.as_str());
    // The parent's ARN reaches the child the way AWS's console links them.
    assert_eq!(out["Input"], json!({"n": 1, "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": arn}));
    assert_eq!(out["Output"], json!({"done": true}));
    assert_eq!(out["Status"], "SUCCEEDED");
    assert!(out["StartDate"].is_i64() && out["StopDate"].is_i64(), "dates in epoch milliseconds: {out}");
    let types = history_types(&d, &arn);
    let task: Vec<&str> = types.iter().map(String::as_str).filter(|t| t.starts_with("Task")).collect();
    assert_eq!(
        task,
        [
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "TaskStateExited"
        ]
    );
    let (_, h) = d.call("GetExecutionHistory", json!({"executionArn": arn}));
    let submitted = h["events"].as_array().unwrap().iter().find(|e| e["type"] == "TaskSubmitted").unwrap();
    let answer: Value =
        serde_json::from_str(submitted["taskSubmittedEventDetails"]["output"].as_str().unwrap()).unwrap();
    assert_eq!(answer["ExecutionArn"], kid.as_str());
    assert_eq!(answer["SdkHttpMetadata"]["HttpStatusCode"], 200);
    assert_eq!(submitted["taskSubmittedEventDetails"]["resourceType"], "states");
    assert_eq!(submitted["taskSubmittedEventDetails"]["resource"], "startExecution.sync:2");
}

#[test]
fn stopping_a_parent_stops_its_sync_child() {
    let dir = tempfile::tempdir().unwrap();
    let child =
        json!({"StartAt": "Sleep", "States": {"Sleep": {"Type": "Wait", "Seconds": 3600, "End": true}}});
    let parent = json!({
        "StartAt": "Run",
        "States": {"Run": start_child("startExecution.sync", "child", "sleeper", json!({}), json!({"End": true}))}
    });
    workflows(dir.path(), &[("child", child), ("parent", parent)]);
    let d = Daemon::start(dir.path(), "", &[]);
    let arn = start(&d, "parent", "p1", json!({}));
    let kid = child_arn("child", "sleeper");
    let until = Instant::now() + Duration::from_secs(20);
    while d.call("DescribeExecution", json!({"executionArn": kid})).0 != 200 {
        assert!(Instant::now() < until, "the child never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The parent waits for the child, parked.
    let until = Instant::now() + Duration::from_secs(10);
    while d.metric("stepgate_executions_parked") < 2.0 {
        assert!(Instant::now() < until, "parent and child never parked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, r) = d.call("StopExecution", json!({"executionArn": arn, "error": "Enough"}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(d.describe(&arn)["status"], "ABORTED");
    wait_for_status(&d, &kid, "ABORTED", Duration::from_secs(20));
}

#[test]
fn a_failed_child_fails_the_task_with_its_description() {
    let dir = tempfile::tempdir().unwrap();
    let child = json!({"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Boom", "Cause": "it broke"}}});
    let catch =
        |next: &str| json!([{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.failed", "Next": next}]);
    let parent = json!({
        "StartAt": "Run",
        "States": {
            "Run": start_child("startExecution.sync", "child", "doomed", json!({"k": "v"}), json!({"Catch": catch("Missing"), "Next": "Missing"})),
            // A state machine that does not exist, in AWS's words.
            "Missing": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution",
                "Parameters": {"StateMachineArn": machine("nothing")},
                "Catch": [{"ErrorEquals": ["StepFunctions.StateMachineDoesNotExistException"], "ResultPath": "$.missing", "Next": "Done"}],
                "Next": "Done"
            },
            "Done": {"Type": "Pass", "End": true}
        }
    });
    workflows(dir.path(), &[("child", child), ("parent", parent)]);
    let d = Daemon::start(dir.path(), "", &[]);
    let arn = start(&d, "parent", "p1", json!({}));
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    let out: Value = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();
    assert_eq!(out["failed"]["Error"], "States.TaskFailed");
    let cause: Value = serde_json::from_str(out["failed"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(cause["Error"], "Boom");
    assert_eq!(cause["Cause"], "it broke");
    assert_eq!(cause["Status"], "FAILED");
    assert_eq!(cause["RedriveStatus"], "REDRIVABLE");
    // `.sync`: the child's input as text.
    assert_eq!(cause["Input"], "{\"k\":\"v\"}");
    assert_eq!(out["missing"]["Error"], "StepFunctions.StateMachineDoesNotExistException");
    let why = out["missing"]["Cause"].as_str().unwrap();
    let want = format!("State Machine Does Not Exist: '{}' (Service: AWSStepFunctions; Status Code: 400; Error Code: StateMachineDoesNotExist; Request ID: ", machine("nothing"));
    assert!(why.starts_with(&want) && why.ends_with("; Proxy: null)"), "{why}");
}

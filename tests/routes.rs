//! HTTP routes (`[[triggers.http]]`) as API Gateway's Step Functions integration serves them,
//! through the real binary: sync routes answer with the workflow's output (or its error),
//! async ones with 202 and the execution ARN; path parameters, query strings, headers and
//! bodies reach the input; API keys; and every bad request answered, never a crash.

mod common;

use common::Daemon;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn workflow(dir: &Path, name: &str, definition: &Value) {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::write(dir.join("workflows").join(format!("{name}.asl.json")), definition.to_string()).unwrap();
}

/// Echoes its input; fails with the input's `error` when there is one; waits `nap` seconds.
fn echo() -> Value {
    json!({
        "StartAt": "Check",
        "States": {
            "Check": {"Type": "Choice", "Choices": [
                {"Variable": "$.body.error", "IsPresent": true, "Next": "Fail"},
                {"Variable": "$.body.nap", "IsPresent": true, "Next": "Nap"}
            ], "Default": "Done"},
            "Nap": {"Type": "Wait", "SecondsPath": "$.body.nap", "Next": "Done"},
            "Fail": {"Type": "Fail", "ErrorPath": "$.body.error", "Cause": "the input asked for it"},
            "Done": {"Type": "Pass", "End": true}
        }
    })
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Routes on a listener of their own, over an Express and a Standard copy of `echo`.
fn daemon(dir: &Path, routes: &str) -> Daemon {
    workflow(dir, "echo", &echo());
    workflow(dir, "durable", &echo());
    let config = format!(
        "[workflow.echo]\ntype = \"EXPRESS\"\n[http]\nlisten = \"127.0.0.1:0\"\n[limits]\npayload_bytes = 2048\n{routes}"
    );
    Daemon::start(dir, &config, &[])
}

#[test]
fn a_sync_route_answers_with_the_output_and_the_request_reaches_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(
        dir.path(),
        r#"
[[triggers.http]]
method = "POST"
path = "/orders/{id}/lines/{line}"
workflow = "echo"
mode = "sync"
"#,
    );
    let (status, headers, body) = d.route(
        "POST",
        "/orders/A-1/lines/7?verbose=1&tag=x%20y&tag=z",
        &[JSON, ("X-Trace", "abc"), ("x-api-key", "not-kept")],
        br#"{"qty": 2}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains(&("content-type".into(), "application/json".into())), "{headers:?}");
    let out = json_of(&body);
    assert_eq!(out["body"], json!({"qty": 2}));
    assert_eq!(out["path"], json!({"id": "A-1", "line": "7"}));
    assert_eq!(out["query"], json!({"verbose": "1", "tag": "z"}));
    assert_eq!(out["headers"]["x-trace"], "abc");
    assert!(out["headers"].get("x-api-key").is_none(), "credentials stay out of the history: {out}");
    // Text that is not JSON reaches the workflow as a string.
    let (status, _, body) =
        d.route("POST", "/orders/A-1/lines/7", &[("Content-Type", "text/plain")], b"hello, world");
    assert_eq!((status, json_of(&body)["body"].clone()), (200, json!("hello, world")));
    let (status, _, body) = d.route(
        "POST",
        "/orders/A-1/lines/7",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"a=1&b=2",
    );
    assert_eq!((status, json_of(&body)["body"].clone()), (200, json!("a=1&b=2")));
    assert_eq!(d.metric("stepgate_trigger_executions_started_total{kind=\"http\",trigger=\"POST /orders/{id}/lines/{line}\"}"), 3.0);
}

#[test]
fn an_async_route_answers_202_with_the_execution_and_a_standard_sync_route_runs_durably() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(
        dir.path(),
        r#"
[[triggers.http]]
path = "/jobs"
workflow = "durable"
mode = "async"

[[triggers.http]]
method = "PUT"
path = "/jobs"
workflow = "durable"
mode = "sync"
"#,
    );
    let (status, _, body) = d.route("POST", "/jobs", &[JSON], br#"{"nap": 1}"#);
    assert_eq!(status, 202, "{body}");
    let started = json_of(&body);
    let arn = started["executionArn"].as_str().unwrap().to_string();
    assert!(arn.starts_with("arn:aws:states:us-east-1:123456789012:execution:durable:"), "{arn}");
    assert!(started["startDate"].as_f64().is_some(), "{started}");
    assert_eq!(d.describe(&arn)["status"], "RUNNING");
    d.wait_for_finished("durable", 1, Duration::from_secs(20));
    assert_eq!(d.describe(&arn)["status"], "SUCCEEDED");
    // A Standard workflow on a sync route: journaled as any Standard execution, and the route
    // waits for its end (across a Wait).
    let (status, _, body) = d.route("PUT", "/jobs", &[JSON], br#"{"nap": 1, "n": 2}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["body"], json!({"nap": 1, "n": 2}));
    let all = d.executions("durable");
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|e| e["status"] == "SUCCEEDED"), "{all:?}");
    let arn = all[0]["executionArn"].as_str().unwrap();
    let (_, history) = d.call("GetExecutionHistory", json!({"executionArn": arn}));
    let kinds: Vec<&str> =
        history["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"WaitStateEntered") && kinds.last() == Some(&"ExecutionSucceeded"), "{kinds:?}");
}

#[test]
fn failures_timeouts_and_templates_answer_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(
        dir.path(),
        r#"
[[triggers.http]]
path = "/run"
workflow = "echo"
mode = "sync"
timeout_seconds = 1
errors = { ValidationError = 400, "States.Timeout" = 504 }

[[triggers.http]]
method = "GET"
path = "/items/{id}"
workflow = "echo"
mode = "sync"
input = { "body" = { "item.$" = "$.path.id", "q.$" = "$.query.q" } }
"#,
    );
    let (status, _, body) = d.route("POST", "/run", &[JSON], br#"{"error": "ValidationError"}"#);
    assert_eq!(
        (status, json_of(&body)),
        (400, json!({"error": "ValidationError", "cause": "the input asked for it"}))
    );
    let (status, _, body) = d.route("POST", "/run", &[JSON], br#"{"error": "Other"}"#);
    assert_eq!((status, json_of(&body)), (500, json!({"error": "Other", "cause": "the input asked for it"})));
    let (status, _, body) = d.route("POST", "/run", &[JSON], br#"{"nap": 3}"#);
    assert_eq!(status, 504, "{body}");
    assert_eq!(json_of(&body)["message"], "Endpoint request timed out");
    // The template reshapes the request before the workflow sees it.
    let (status, _, body) = d.route("GET", "/items/42?q=blue", &[], b"");
    assert_eq!((status, json_of(&body)), (200, json!({"body": {"item": "42", "q": "blue"}})));
    // A template whose path is missing answers 400, as a state's Parameters would fail.
    let (status, _, body) = d.route("GET", "/items/42", &[], b"");
    assert_eq!(status, 400, "{body}");
    assert_eq!(json_of(&body)["error"], "States.Runtime");
}

#[test]
fn api_keys_guard_a_route() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(
        dir.path(),
        r#"
[[triggers.http]]
path = "/secure"
workflow = "echo"
mode = "sync"
api_keys = ["k-one", "k-two"]
"#,
    );
    for key in [None, Some("wrong"), Some("k-one-"), Some("")] {
        let mut headers = vec![JSON];
        if let Some(k) = key {
            headers.push(("x-api-key", k));
        }
        let (status, _, body) = d.route("POST", "/secure", &headers, b"{}");
        assert_eq!((status, json_of(&body)), (403, json!({"message": "Forbidden"})), "{key:?}");
    }
    for key in ["k-one", "k-two"] {
        let (status, _, _) = d.route("POST", "/secure", &[JSON, ("x-api-key", key)], b"{}");
        assert_eq!(status, 200, "{key}");
    }
    assert_eq!(d.metric("stepgate_trigger_rejected_total{kind=\"http\",trigger=\"POST /secure\"}"), 4.0);
}

#[test]
fn bad_requests_are_answered_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(
        dir.path(),
        r#"
[[triggers.http]]
path = "/in"
workflow = "echo"
mode = "sync"

[[triggers.http]]
method = "DELETE"
path = "/in"
workflow = "echo"
"#,
    );
    let (status, _, body) = d.route("POST", "/in", &[JSON], b"{\"a\": ");
    assert_eq!(status, 400, "{body}");
    assert!(
        json_of(&body)["message"]
            .as_str()
            .unwrap()
            .starts_with("Could not parse request body into json: EOF"),
        "{body}"
    );
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(4000));
    let (status, _, body) = d.route("POST", "/in", &[JSON], big.as_bytes());
    assert_eq!(status, 413, "{body}");
    assert!(json_of(&body)["message"].as_str().unwrap().contains("limits.payload_bytes"), "{body}");
    let (status, _, body) = d.route("POST", "/nowhere", &[JSON], b"{}");
    assert_eq!((status, json_of(&body)), (404, json!({"message": "Not Found"})));
    let (status, headers, body) = d.route("PATCH", "/in", &[JSON], b"{}");
    assert_eq!((status, json_of(&body)), (405, json!({"message": "Method Not Allowed"})));
    let allow = headers.iter().find(|(k, _)| k == "allow").map(|(_, v)| v.as_str()).unwrap_or("");
    let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    methods.sort();
    assert_eq!(methods, ["DELETE", "POST"], "{headers:?}");
    // A good request after all of them.
    let (status, _, body) = d.route("POST", "/in", &[JSON], b"{\"ok\": true}");
    assert_eq!((status, json_of(&body)["body"].clone()), (200, json!({"ok": true})));
    // The API's own listener still serves the API and answers unknown paths in the same way.
    let (status, body) = d.raw("GET", "/healthz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = common::http(&d.addr, "POST", "/in", &[JSON], b"{}");
    assert_eq!((status, json_of(&body)), (404, json!({"message": "Not Found"})));
}

#[test]
fn routes_share_the_apis_listener_when_http_listen_is_not_set() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "echo", &echo());
    let d = Daemon::start(
        dir.path(),
        "[workflow.echo]\ntype = \"EXPRESS\"\n[[triggers.http]]\npath = \"/hooks/{name}\"\nworkflow = \"echo\"\nmode = \"sync\"\n",
        &[],
    );
    assert!(d.routes.is_none());
    let (status, _, body) = d.route("POST", "/hooks/github", &[JSON], b"{\"x\": 1}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["path"], json!({"name": "github"}));
    // The API answers beside it.
    let (status, reply) = d.call("ListStateMachines", json!({}));
    assert_eq!(status, 200);
    assert_eq!(reply["stateMachines"][0]["name"], "echo");
}

/// `[workflow.NAME] history = false` on an Express workflow: its executions are listed and
/// described as before, and keep no history in memory.
#[test]
fn an_express_workflow_without_history_keeps_its_executions_but_no_events() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "quiet", &echo());
    let d = Daemon::start(
        dir.path(),
        "[workflow.quiet]\ntype = \"EXPRESS\"\nhistory = false\n[[triggers.http]]\npath = \"/q\"\nworkflow = \"quiet\"\nmode = \"sync\"\n",
        &[],
    );
    let (status, _, body) = d.route("POST", "/q", &[JSON], b"{\"n\": 1}");
    assert_eq!((status, json_of(&body)["body"].clone()), (200, json!({"n": 1})));
    let all = d.executions("quiet");
    assert_eq!(all.len(), 1);
    let arn = all[0]["executionArn"].as_str().unwrap();
    let e = d.describe(arn);
    assert_eq!(e["status"], "SUCCEEDED");
    assert_eq!(json_of(e["output"].as_str().unwrap())["body"], json!({"n": 1}));
    let (status, history) = d.call("GetExecutionHistory", json!({"executionArn": arn}));
    assert_eq!((status, history), (200, json!({"events": []})));
}

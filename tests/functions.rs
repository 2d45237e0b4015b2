//! Local functions as a Lambda stand-in, through the daemon: a function that is an HTTP
//! endpoint (a Python server of the test's own) answering results and Lambda's error reports,
//! `InvocationType: "Event"` answered 202 before the call ends, a function's timeout as
//! Lambda's `Sandbox.Timedout`, a command's working directory, a full queue refused with
//! `Lambda.TooManyRequestsException`, and a Map of 1,000 items within a function's
//! concurrency.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod common;
use common::{start, wait_for_status, workflows, Daemon, PythonServer};

/// A Lambda-like endpoint: `/echo` answers `{"got": event}`, `/fail` Lambda's error report
/// with a 500, `/count` counts the calls in flight (each takes 20 ms) and answers the most
/// seen at once.
const LAMBDA: &str = r#"
import http.server, json, sys, threading, time
lock = threading.Lock()
state = {"now": 0, "most": 0}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        event = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"null")
        if self.path == "/fail":
            return self.reply(500, {"errorType": "CardDeclined", "errorMessage": "card ending 0002 was declined"})
        if self.path == "/count":
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            time.sleep(0.02)
            with lock:
                state["now"] -= 1
                most = state["most"]
            return self.reply(200, {"item": event, "most": most})
        self.reply(200, {"got": event})
    def reply(self, code, v):
        data = json.dumps(v).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
srv.serve_forever()
"#;

fn invoke(function: &str, payload: Value, extra: Value) -> Value {
    let mut t = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload": payload}});
    t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    t
}

fn output(d: &Daemon, arn: &str) -> Value {
    let e = wait_for_status(d, arn, "SUCCEEDED", Duration::from_secs(60));
    serde_json::from_str(e["output"].as_str().unwrap()).unwrap()
}

#[test]
fn functions_run_as_lambda_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let lambda = PythonServer::start(dir.path(), "lambda", LAMBDA, &[]);
    let sub = dir.path().join("work");
    std::fs::create_dir(&sub).unwrap();
    let marker = dir.path().join("event-done");
    let catch = |state: &str, error: &str| json!([{"ErrorEquals": [error], "ResultPath": "$.error", "Next": format!("{state}Caught")}]);
    let caught = json!({"Type": "Pass", "End": true});
    let def = json!({
        "StartAt": "All",
        "States": {"All": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "Remote", "States": {"Remote": invoke("remote", json!({"n": 1}), json!({"End": true}))}},
            {"StartAt": "Fails", "States": {
                "Fails": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:declines", "Catch": catch("Fails", "CardDeclined"), "End": true},
                "FailsCaught": caught.clone()}},
            {"StartAt": "Later", "States": {"Later": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "later", "InvocationType": "Event"}, "End": true}}},
            {"StartAt": "Slow", "States": {
                "Slow": invoke("slow", json!({}), json!({"Catch": catch("Slow", "Sandbox.Timedout"), "End": true})),
                "SlowCaught": caught.clone()}},
            {"StartAt": "Where", "States": {"Where": invoke("where", json!({}), json!({"End": true}))}},
            {"StartAt": "Busy", "States": {"Busy": {"Type": "Parallel", "End": true, "Branches": [
                {"StartAt": "B1", "States": {"B1": invoke("busy", json!({}), json!({"Catch": catch("B1", "Lambda.TooManyRequestsException"), "End": true})), "B1Caught": caught.clone()}},
                {"StartAt": "B2", "States": {"B2": invoke("busy", json!({}), json!({"Catch": catch("B2", "Lambda.TooManyRequestsException"), "End": true})), "B2Caught": caught.clone()}},
                {"StartAt": "B3", "States": {"B3": invoke("busy", json!({}), json!({"Catch": catch("B3", "Lambda.TooManyRequestsException"), "End": true})), "B3Caught": caught}}
            ]}}}
        ]}}
    });
    workflows(dir.path(), &[("calls", def)]);
    let config = format!(
        r#"[functions.remote]
url = "{remote}"
[functions.declines]
url = "{fail}"
[functions.later]
command = ["sh", "-c", "sleep 1; touch {marker}"]
[functions.slow]
command = ["sleep", "5"]
timeout_seconds = 1
[functions.where]
command = ["python3", "-c", "import json, os; print(json.dumps(os.getcwd()))"]
cwd = "{sub}"
[functions.busy]
command = ["sh", "-c", "sleep 1; echo '{{}}'"]
concurrency = 1
queue = 1
"#,
        remote = lambda.url("/echo"),
        fail = lambda.url("/fail"),
        marker = marker.display(),
        sub = sub.display(),
    );
    let d = Daemon::start(dir.path(), &config, &[]);
    let began = Instant::now();
    let arn = start(&d, "calls", "c1", json!({}));
    let out = output(&d, &arn);
    assert_eq!(out[0]["Payload"], json!({"got": {"n": 1}}));
    assert_eq!(out[0]["StatusCode"], 200);
    assert_eq!(out[1]["error"]["Error"], "CardDeclined");
    let report: Value = serde_json::from_str(out[1]["error"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(report["errorMessage"], "card ending 0002 was declined");
    // Event: accepted at once, the call goes on after the Task.
    assert_eq!(out[2]["StatusCode"], 202);
    assert_eq!(out[2]["Payload"], "");
    let until = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(Instant::now() < until, "the Event call never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(out[3]["error"]["Error"], "Sandbox.Timedout");
    let report: Value = serde_json::from_str(out[3]["error"]["Cause"].as_str().unwrap()).unwrap();
    assert!(
        report["errorMessage"].as_str().unwrap().ends_with("Task timed out after 1.00 seconds"),
        "{report}"
    );
    assert_eq!(out[4]["Payload"], json!(sub.display().to_string()));
    // One runs, one waits its turn, the third finds the queue full.
    let refused = out[5]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["error"]["Error"] == "Lambda.TooManyRequestsException")
        .count();
    assert_eq!(refused, 1, "{}", out[5]);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the slow call was not cut at 1 s: {:?}",
        began.elapsed()
    );
}

#[test]
fn a_map_of_a_thousand_items_stays_within_the_functions_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let lambda = PythonServer::start(dir.path(), "lambda", LAMBDA, &[]);
    let def = json!({"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:count", "End": true}}}
    }}});
    workflows(dir.path(), &[("wide", def)]);
    let config = format!("[functions.count]\nurl = \"{}\"\nconcurrency = 4\n", lambda.url("/count"));
    let d = Daemon::start(dir.path(), &config, &[]);
    let items: Vec<u32> = (0..1000).collect();
    let arn = start(&d, "wide", "w1", json!(items));
    let out = output(&d, &arn);
    let out = out.as_array().unwrap();
    assert_eq!(out.len(), 1000);
    assert!(out.iter().enumerate().all(|(i, r)| r["item"] == json!(i)), "every item answered in order");
    let most = out.iter().map(|r| r["most"].as_u64().unwrap()).max().unwrap();
    assert!((2..=4).contains(&most), "at most 4 calls at once, and more than one: {most}");
}

//! `stepgate serve` driven the way users drive AWS Step Functions: the real binary on a free
//! loopback port, with a state directory of its own, called by the aws CLI and by boto3
//! (both from PyPI: `pip install awscli boto3`). Also: crash recovery under SIGKILL, and bad
//! requests answered with AWS's errors while the daemon keeps serving.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ACCOUNT_ARN: &str = "arn:aws:states:us-east-1:123456789012";
/// A local function that always fails with `Broken`.
const BROKEN: &str =
    "import json\nprint(json.dumps({'errorType': 'Broken', 'errorMessage': 'always'}))\nraise SystemExit(1)\n";

mod common;
use common::{aws_env, python_function, workflows};

/// The shared daemon, with this suite's ways of calling it.
struct Daemon(common::Daemon);

impl std::ops::Deref for Daemon {
    type Target = common::Daemon;
    fn deref(&self) -> &common::Daemon {
        &self.0
    }
}

impl Daemon {
    /// Starts the daemon over `dir` (which holds `workflows/` and gets `state/`).
    fn start(dir: &Path, extra_config: &str) -> Daemon {
        Daemon(common::Daemon::start(dir, extra_config, &[]))
    }

    fn start_with_env(dir: &Path, extra_config: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon(common::Daemon::start(dir, extra_config, env))
    }

    fn kill(self) {
        drop(self);
    }

    /// `aws stepfunctions ...` against this daemon; the parsed JSON output, or the error text.
    fn aws(&self, args: &[&str]) -> Result<Value, String> {
        let out = Command::new("aws")
            .args(["--endpoint-url", &self.endpoint(), "--output", "json", "stepfunctions"])
            .args(args)
            .envs(aws_env())
            .output()
            .expect("the aws CLI is installed (pip install awscli)");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    /// A raw HTTP POST, for requests no SDK would send.
    fn post(&self, target: Option<&str>, body: &[u8]) -> (u16, Value) {
        let mut headers = vec![("Content-Type", "application/x-amz-json-1.0")];
        if let Some(t) = target {
            headers.push(("X-Amz-Target", t));
        }
        let (status, body) = self.raw("POST", "/", &headers, body);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

fn wait_for_status(d: &Daemon, arn: &str, want: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let e = d.aws(&["describe-execution", "--execution-arn", arn]).unwrap();
        if e["status"] == want {
            return e;
        }
        assert!(Instant::now() < until, "{arn} is {} after {within:?}, not {want}", e["status"]);
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn greeter() -> Value {
    json!({
        "StartAt": "Greet",
        "States": {
            "Greet": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('Hello, {}!', $.name)"}, "Next": "Nap"},
            "Nap": {"Type": "Wait", "SecondsPath": "$$.Execution.Input.nap", "End": true}
        }
    })
}

#[test]
fn the_aws_cli_runs_a_workflow_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    workflows(dir.path(), &[("greeter", greeter())]);
    let d = Daemon::start(dir.path(), "");
    let sm = format!("{ACCOUNT_ARN}:stateMachine:greeter");

    let list = d.aws(&["list-state-machines"]).unwrap();
    assert_eq!(list["stateMachines"][0]["name"], "greeter");
    let desc = d.aws(&["describe-state-machine", "--state-machine-arn", &sm]).unwrap();
    assert_eq!(desc["type"], "STANDARD");
    assert_eq!(serde_json::from_str::<Value>(desc["definition"].as_str().unwrap()).unwrap(), greeter());

    let started = d
        .aws(&[
            "start-execution",
            "--state-machine-arn",
            &sm,
            "--name",
            "first",
            "--input",
            r#"{"name":"Ada","nap":0}"#,
        ])
        .unwrap();
    let arn = started["executionArn"].as_str().unwrap().to_string();
    assert_eq!(arn, format!("{ACCOUNT_ARN}:execution:greeter:first"));
    let done = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    assert_eq!(
        serde_json::from_str::<Value>(done["output"].as_str().unwrap()).unwrap(),
        json!({"greeting": "Hello, Ada!"})
    );

    // The same name and input is the same execution; another input is refused.
    let again = d
        .aws(&[
            "start-execution",
            "--state-machine-arn",
            &sm,
            "--name",
            "first",
            "--input",
            r#"{"name":"Ada","nap":0}"#,
        ])
        .unwrap_err();
    assert!(again.contains("ExecutionAlreadyExists"), "{again}");

    let history = d.aws(&["get-execution-history", "--execution-arn", &arn]).unwrap();
    let types: Vec<&str> =
        history["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "WaitStateEntered",
            "WaitStateExited",
            "ExecutionSucceeded"
        ]
    );
    let ids: Vec<u64> =
        history["events"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    // The CLI pages through with --max-items/--page-size; the server pages with nextToken.
    let page = d
        .aws(&["get-execution-history", "--execution-arn", &arn, "--page-size", "2", "--reverse-order"])
        .unwrap();
    let rev: Vec<u64> =
        page["events"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(rev, [6, 5, 4, 3, 2, 1]);

    let listed =
        d.aws(&["list-executions", "--state-machine-arn", &sm, "--status-filter", "SUCCEEDED"]).unwrap();
    assert_eq!(listed["executions"][0]["executionArn"], arn.as_str());
}

#[test]
fn stop_aborts_a_waiting_execution() {
    let dir = tempfile::tempdir().unwrap();
    workflows(dir.path(), &[("greeter", greeter())]);
    let d = Daemon::start(dir.path(), "");
    let sm = format!("{ACCOUNT_ARN}:stateMachine:greeter");
    let started = d
        .aws(&["start-execution", "--state-machine-arn", &sm, "--input", r#"{"name":"B","nap":3600}"#])
        .unwrap();
    let arn = started["executionArn"].as_str().unwrap();
    wait_for_status(&d, arn, "RUNNING", Duration::from_secs(5));
    d.aws(&["stop-execution", "--execution-arn", arn, "--error", "Operator", "--cause", "not today"])
        .unwrap();
    let e = wait_for_status(&d, arn, "ABORTED", Duration::from_secs(5));
    assert_eq!(e["error"], "Operator");
    assert_eq!(e["cause"], "not today");
    let h = d
        .aws(&["get-execution-history", "--execution-arn", arn, "--reverse-order", "--max-items", "1"])
        .unwrap();
    assert_eq!(h["events"][0]["type"], "ExecutionAborted");
}

#[test]
fn express_workflows_answer_start_sync_execution() {
    let dir = tempfile::tempdir().unwrap();
    let def = json!({"StartAt": "Add", "States": {"Add": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "End": true}}});
    workflows(dir.path(), &[("adder", def)]);
    let d = Daemon::start(dir.path(), "[workflow.adder]\ntype = \"EXPRESS\"\n");
    let sm = format!("{ACCOUNT_ARN}:stateMachine:adder");
    let r = d
        .aws(&["start-sync-execution", "--state-machine-arn", &sm, "--input", r#"{"a": 2, "b": 40}"#])
        .unwrap();
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(serde_json::from_str::<Value>(r["output"].as_str().unwrap()).unwrap(), json!({"sum": 42}));
    assert!(r["executionArn"].as_str().unwrap().starts_with(&format!("{ACCOUNT_ARN}:express:adder:")));
    // Unlike AWS, an Express execution's history can be read back.
    let h =
        d.aws(&["get-execution-history", "--execution-arn", r["executionArn"].as_str().unwrap()]).unwrap();
    assert_eq!(h["events"].as_array().unwrap().len(), 4);
}

#[test]
fn state_machines_created_through_the_api_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    workflows(dir.path(), &[]);
    let d = Daemon::start(dir.path(), "");
    let def =
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 7, "End": true}}}).to_string();
    let bad = d
        .aws(&[
            "create-state-machine",
            "--name",
            "bad",
            "--role-arn",
            "arn:aws:iam::1:role/r",
            "--definition",
            r#"{"StartAt": "Nope", "States": {}}"#,
        ])
        .unwrap_err();
    assert!(bad.contains("InvalidDefinition"), "{bad}");
    let created = d
        .aws(&[
            "create-state-machine",
            "--name",
            "seven",
            "--role-arn",
            "arn:aws:iam::1:role/r",
            "--definition",
            &def,
        ])
        .unwrap();
    let sm = created["stateMachineArn"].as_str().unwrap().to_string();
    d.kill();
    let d = Daemon::start(dir.path(), "");
    let desc = d.aws(&["describe-state-machine", "--state-machine-arn", &sm]).unwrap();
    assert_eq!(desc["name"], "seven");
    let missing = d
        .aws(&["describe-state-machine", "--state-machine-arn", &format!("{ACCOUNT_ARN}:stateMachine:none")])
        .unwrap_err();
    assert!(missing.contains("StateMachineDoesNotExist"), "{missing}");
}

#[test]
fn bad_requests_get_awss_errors_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    workflows(dir.path(), &[("greeter", greeter())]);
    let d = Daemon::start(dir.path(), "");
    let (status, body) = d.post(Some("AWSStepFunctions.ListStateMachines"), b"{not json");
    assert_eq!((status, body["__type"].as_str()), (400, Some("SerializationException")));
    let (status, body) = d.post(Some("AWSStepFunctions.NoSuchOperation"), b"{}");
    assert_eq!((status, body["__type"].as_str()), (400, Some("UnknownOperationException")));
    let (status, body) = d.post(None, b"{}");
    assert_eq!((status, body["__type"].as_str()), (400, Some("UnknownOperationException")));
    let (status, body) = d.post(
        Some("AWSStepFunctions.DescribeExecution"),
        json!({"executionArn": "not-an-arn"}).to_string().as_bytes(),
    );
    assert_eq!((status, body["__type"].as_str()), (400, Some("InvalidArn")));
    let sm = format!("{ACCOUNT_ARN}:stateMachine:greeter");
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    let (status, body) = d.post(
        Some("AWSStepFunctions.StartExecution"),
        json!({"stateMachineArn": sm, "input": big}).to_string().as_bytes(),
    );
    assert_eq!((status, body["__type"].as_str()), (400, Some("InvalidExecutionInput")));
    let (status, body) = d.post(
        Some("AWSStepFunctions.StartExecution"),
        json!({"stateMachineArn": sm, "input": "{'a': 1}"}).to_string().as_bytes(),
    );
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "InvalidExecutionInput");
    assert!(body["message"].as_str().unwrap().contains("was expecting double-quote"), "{body}");
    // Still serving.
    assert!(d.aws(&["list-state-machines"]).is_ok());
}

#[test]
fn boto3_drives_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    workflows(dir.path(), &[("greeter", greeter())]);
    let d = Daemon::start(dir.path(), "");
    let script = r#"
import json, sys, time, boto3
sfn = boto3.client("stepfunctions", endpoint_url=sys.argv[1])
sm = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
arn = sfn.start_execution(stateMachineArn=sm, name="py", input=json.dumps({"name": "Py", "nap": 0}))["executionArn"]
for _ in range(100):
    e = sfn.describe_execution(executionArn=arn)
    if e["status"] != "RUNNING":
        break
    time.sleep(0.1)
pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn, PaginationConfig={"PageSize": 2})
ids = [ev["id"] for page in pages for ev in page["events"]]
print(json.dumps({"status": e["status"], "output": json.loads(e["output"]), "ids": ids}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &d.endpoint()])
        .envs(aws_env())
        .output()
        .expect("python3 with boto3 (pip install boto3)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {"greeting": "Hello, Py!"}, "ids": [1, 2, 3, 4, 5, 6]})
    );
}

/// Hundreds of executions that wait and then call a local function in each iteration of a
/// Map; the daemon is killed with SIGKILL while they run and restarted: every one ends
/// SUCCEEDED with its own output, none is lost, none finishes twice, and each history's event
/// ids run on without a gap.
#[test]
fn executions_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let functions = python_function(
        dir.path(),
        "double",
        "import json,sys\ne=json.load(sys.stdin)\nprint(json.dumps({'n': e['n'], 'double': e['n']*2}))\n",
    );
    let def = json!({
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Each"},
            "Each": {
                "Type": "Map", "ItemsPath": "$.items", "ItemSelector": {"n.$": "$$.Map.Item.Value"},
                "ItemProcessor": {"StartAt": "Double", "States": {
                    "Double": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:double", "End": true}
                }},
                "End": true
            }
        }
    });
    workflows(dir.path(), &[("doubler", def)]);
    let d = Daemon::start(dir.path(), &functions);
    let sm = format!("{ACCOUNT_ARN}:stateMachine:doubler");
    let n = 200;
    for i in 0..n {
        let input = json!({"items": [i, i + 1], "wait": 1 + i % 3});
        let body = json!({"stateMachineArn": sm, "name": format!("e{i}"), "input": input.to_string()});
        let (status, reply) = d.post(Some("AWSStepFunctions.StartExecution"), body.to_string().as_bytes());
        assert_eq!(status, 200, "{reply}");
    }
    // Kill while executions are waiting and calling the function.
    std::thread::sleep(Duration::from_millis(1300));
    let dir_path = d.dir.clone();
    let pid = d.child.id();
    unsafe_kill9(pid);
    drop(d);
    let d = Daemon::start(&dir_path, &functions);
    let until = Instant::now() + Duration::from_secs(120);
    for i in 0..n {
        let arn = format!("{ACCOUNT_ARN}:execution:doubler:e{i}");
        let e = loop {
            let (_, e) = d.post(
                Some("AWSStepFunctions.DescribeExecution"),
                json!({"executionArn": arn}).to_string().as_bytes(),
            );
            if e["status"] != "RUNNING" || Instant::now() > until {
                break e;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(e["status"], "SUCCEEDED", "{arn}: {e}");
        let out: Value = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();
        assert_eq!(out, json!([{"n": i, "double": 2 * i}, {"n": i + 1, "double": 2 * (i + 1)}]));
        let events = history(&d, &arn);
        let ends = events.iter().filter(|e| e["type"] == "ExecutionSucceeded").count();
        assert_eq!(ends, 1, "{arn} finished {ends} times");
        let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "{arn}: event ids");
    }
}

fn unsafe_kill9(pid: u32) {
    let status = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

/// RedriveExecution restarts a failed execution at the state that failed: the states before
/// it do not run again, and the history tells the redrive.
#[test]
fn redrive_restarts_a_failed_execution_where_it_failed() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("ready");
    let functions = python_function(
        dir.path(),
        "flaky",
        &format!(
            "import json,os,sys\ne=json.load(sys.stdin)\nif not os.path.exists({:?}):\n    print(json.dumps({{'errorType': 'NotReady', 'errorMessage': 'not yet'}}))\n    sys.exit(1)\nprint(json.dumps({{'done': e['n']}}))\n",
            flag.display().to_string()
        ),
    );
    let def = json!({
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Call"},
            "Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:flaky", "End": true}
        }
    });
    workflows(dir.path(), &[("flaky", def)]);
    let d = Daemon::start(dir.path(), &functions);
    let sm = format!("{ACCOUNT_ARN}:stateMachine:flaky");
    let arn = d.aws(&["start-execution", "--state-machine-arn", &sm, "--input", r#"{"n": 41}"#]).unwrap()
        ["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = wait_for_status(&d, &arn, "FAILED", Duration::from_secs(20));
    assert_eq!(failed["error"], "NotReady");
    let refused = d
        .aws(&["redrive-execution", "--execution-arn", &format!("{ACCOUNT_ARN}:execution:flaky:nope")])
        .unwrap_err();
    assert!(refused.contains("ExecutionDoesNotExist"), "{refused}");

    std::fs::write(&flag, "").unwrap();
    d.aws(&["redrive-execution", "--execution-arn", &arn]).unwrap();
    let done = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    assert_eq!(serde_json::from_str::<Value>(done["output"].as_str().unwrap()).unwrap(), json!({"done": 42}));
    assert_eq!(done["redriveCount"], 1);
    let h = d.aws(&["get-execution-history", "--execution-arn", &arn]).unwrap();
    let types: Vec<&str> =
        h["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.iter().filter(|t| **t == "PassStateEntered").count(), 1, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "ExecutionRedriven").count(), 1, "{types:?}");
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"));
    let ids: Vec<u64> = h["events"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    // A succeeded execution is not redrivable.
    let again = d.aws(&["redrive-execution", "--execution-arn", &arn]).unwrap_err();
    assert!(again.contains("ExecutionNotRedrivable"), "{again}");
}

/// Under systemd (Type=notify) the daemon says READY=1 on $NOTIFY_SOCKET once it serves.
#[test]
fn the_daemon_tells_systemd_when_it_is_ready() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    workflows(dir.path(), &[("greeter", greeter())]);
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let config = common::config_file(dir.path(), "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("STEPGATE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf);
    let _ = child.kill();
    let _ = child.wait();
    let msg = String::from_utf8_lossy(&buf[..n.expect("a notification within 20 s")]).into_owned();
    assert!(msg.contains("READY=1"), "{msg}");
}

/// A Retry backoff running at a crash resumes with its attempt count: the Task is not given
/// a fresh set of attempts by the restart.
#[test]
fn retry_counts_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let functions = python_function(dir.path(), "broken", BROKEN);
    let def = json!({
        "StartAt": "Call",
        "States": {"Call": {
            "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:broken",
            "Retry": [{"ErrorEquals": ["Broken"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 1}],
            "End": true
        }}
    });
    workflows(dir.path(), &[("broken", def)]);
    let d = Daemon::start(dir.path(), &functions);
    let sm = format!("{ACCOUNT_ARN}:stateMachine:broken");
    let arn = d.aws(&["start-execution", "--state-machine-arn", &sm]).unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    // The first attempt fails at once; kill the daemon during the first 3 s backoff.
    std::thread::sleep(Duration::from_millis(1500));
    let dir_path = d.dir.clone();
    unsafe_kill9(d.child.id());
    drop(d);
    let d = Daemon::start(&dir_path, &functions);
    let e = wait_for_status(&d, &arn, "FAILED", Duration::from_secs(30));
    assert_eq!(e["error"], "Broken");
    let h = d.aws(&["get-execution-history", "--execution-arn", &arn]).unwrap();
    let events = h["events"].as_array().unwrap();
    let calls = events.iter().filter(|e| e["type"] == "LambdaFunctionScheduled").count();
    assert_eq!(calls, 3, "1 attempt + MaxAttempts 2 retries, restart or not: {h}");
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
}

/// A local function that logs each call's `id` (one line per call) and returns it; it fails
/// with `NotReady` for the ids in `failing` until the file `ready` exists.
fn recorder(dir: &Path, failing: &[&str]) -> String {
    python_function(
        dir,
        "record",
        &format!(
            "import json,os,sys\ne=json.load(sys.stdin)\nwith open({log:?}, 'a') as f:\n    f.write(e['id'] + '\\n')\nif e['id'] in {failing:?} and not os.path.exists({ready:?}):\n    print(json.dumps({{'errorType': 'NotReady', 'errorMessage': e['id']}}))\n    sys.exit(1)\nprint(json.dumps({{'id': e['id']}}))\n",
            log = dir.join("calls.log").display().to_string(),
            ready = dir.join("ready").display().to_string(),
        ),
    )
}

/// How often the recorder was called with each id.
fn calls(dir: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut n = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default().lines() {
        *n.entry(line.to_string()).or_insert(0) += 1;
    }
    n
}

/// A Parallel state whose first branch calls the recorder once and whose second maps over
/// `$.items`, calling it for each item and then waiting `$.nap` seconds.
fn fan_out(concurrency: u64) -> Value {
    let record = "arn:aws:lambda:us-east-1:123456789012:function:record";
    json!({
        "StartAt": "Both",
        "States": {"Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Quick", "States": {"Quick": {"Type": "Task", "Resource": record, "Parameters": {"id": "quick"}, "End": true}}},
                {"StartAt": "Settle", "States": {
                    "Settle": {"Type": "Wait", "Seconds": 1, "Next": "Items"},
                    "Items": {
                        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": concurrency,
                        "ItemSelector": {"id.$": "States.Format('item-{}', $$.Map.Item.Value)", "nap.$": "$.nap"},
                        "ItemProcessor": {"StartAt": "Call", "States": {
                            "Call": {"Type": "Task", "Resource": record, "Parameters": {"id.$": "$.id"}, "ResultPath": "$.result", "Next": "Nap"},
                            "Nap": {"Type": "Wait", "SecondsPath": "$.nap", "OutputPath": "$.result", "End": true}
                        }},
                        "End": true
                    }
                }}
            ],
            "End": true
        }}
    })
}

fn history(d: &Daemon, arn: &str) -> Vec<Value> {
    let (status, h) = d.post(
        Some("AWSStepFunctions.GetExecutionHistory"),
        json!({"executionArn": arn, "maxResults": 1000}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{h}");
    h["events"].as_array().unwrap().clone()
}

/// The Map iterations whose MapIterationSucceeded is in `events`.
fn iterations_done(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["type"] == "MapIterationSucceeded")
        .map(|e| e["mapIterationSucceededEventDetails"]["index"].as_u64().unwrap())
        .collect()
}

/// A restart does not run again the Parallel branches and Map iterations that had finished:
/// the first branch's call and every iteration journaled as finished happen once; only the
/// iterations in flight at the SIGKILL may run their Task again (at-least-once).
#[test]
fn map_and_parallel_keep_finished_work_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let functions = recorder(dir.path(), &[]);
    workflows(dir.path(), &[("fanout", fan_out(2))]);
    let d = Daemon::start(dir.path(), &functions);
    let sm = format!("{ACCOUNT_ARN}:stateMachine:fanout");
    let items: Vec<u64> = (0..10).collect();
    let arn = d
        .aws(&[
            "start-execution",
            "--state-machine-arn",
            &sm,
            "--input",
            &json!({"items": items, "nap": 1}).to_string(),
        ])
        .unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    // Ten iterations, two at a time, a second each: kill once some have finished.
    let until = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let events = history(&d, &arn);
        if iterations_done(&events).len() >= 3 {
            break events;
        }
        assert!(Instant::now() < until, "no iterations finished: {events:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let dir_path = d.dir.clone();
    unsafe_kill9(d.child.id());
    drop(d);
    let finished_before = iterations_done(&before);
    assert!(finished_before.len() < 10, "the kill came too late to test anything");

    let d = Daemon::start(&dir_path, &functions);
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(60));
    let expected: Vec<Value> = items.iter().map(|i| json!({"id": format!("item-{i}")})).collect();
    assert_eq!(
        serde_json::from_str::<Value>(e["output"].as_str().unwrap()).unwrap(),
        json!([{"id": "quick"}, expected])
    );
    let n = calls(&dir_path);
    assert_eq!(n.get("quick"), Some(&1), "the finished branch ran again: {n:?}");
    for i in &finished_before {
        assert_eq!(n.get(&format!("item-{i}")), Some(&1), "iteration {i} had finished: {n:?}");
    }
    let total: usize = items.iter().map(|i| n.get(&format!("item-{i}")).copied().unwrap_or(0)).sum();
    assert!(total <= 10 + 2, "only the 2 iterations in flight may call again: {n:?}");
    let events = history(&d, &arn);
    assert_eq!(events.iter().filter(|e| e["type"] == "ExecutionSucceeded").count(), 1);
    assert_eq!(events.iter().filter(|e| e["type"] == "MapStateStarted").count(), 1, "{events:?}");
    let mut done = iterations_done(&events);
    done.sort();
    done.dedup();
    assert_eq!(done, items);
}

/// RedriveExecution runs again only what failed: the Parallel branch that had succeeded and
/// the Map iterations that had succeeded keep their results.
#[test]
fn redrive_reruns_only_the_failed_branch_and_iterations() {
    let dir = tempfile::tempdir().unwrap();
    let functions = recorder(dir.path(), &["item-2"]);
    workflows(dir.path(), &[("fanout", fan_out(1))]);
    let d = Daemon::start(dir.path(), &functions);
    let sm = format!("{ACCOUNT_ARN}:stateMachine:fanout");
    let input = json!({"items": [0, 1, 2, 3, 4], "nap": 0}).to_string();
    let arn = d.aws(&["start-execution", "--state-machine-arn", &sm, "--input", &input]).unwrap()
        ["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = wait_for_status(&d, &arn, "FAILED", Duration::from_secs(30));
    assert_eq!(failed["error"], "NotReady");
    let n = calls(dir.path());
    assert_eq!(
        n.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
        [("item-0", 1), ("item-1", 1), ("item-2", 1), ("quick", 1)]
    );

    std::fs::write(dir.path().join("ready"), "").unwrap();
    d.aws(&["redrive-execution", "--execution-arn", &arn]).unwrap();
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(30));
    let expected: Vec<Value> = (0..5).map(|i| json!({"id": format!("item-{i}")})).collect();
    assert_eq!(
        serde_json::from_str::<Value>(e["output"].as_str().unwrap()).unwrap(),
        json!([{"id": "quick"}, expected])
    );
    let n = calls(dir.path());
    assert_eq!(
        n.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
        [("item-0", 1), ("item-1", 1), ("item-2", 2), ("item-3", 1), ("item-4", 1), ("quick", 1)]
    );
    let events = history(&d, &arn);
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(events.iter().filter(|e| e["type"] == "ExecutionRedriven").count(), 1);
}

fn wait_for_metric(d: &Daemon, name: &str, want: f64, within: Duration) {
    let until = Instant::now() + within;
    while d.metric(name) != want {
        assert!(Instant::now() < until, "{name} is {} after {within:?}, not {want}", d.metric(name));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With `storage.park_after_seconds`, a long Wait or Retry backoff at the top level parks the
/// execution (its timer in the store, nothing in memory) and it wakes on time, also after a
/// SIGKILL while parked.
#[test]
fn long_waits_park_in_the_store_and_wake_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let functions = python_function(
        dir.path(),
        "second_time",
        &format!(
            "import json,os,sys\ne=json.load(sys.stdin)\np={:?}\nn=int(open(p).read()) if os.path.exists(p) else 0\nopen(p,'w').write(str(n+1))\nif n == 0:\n    print(json.dumps({{'errorType': 'NotYet', 'errorMessage': 'first call'}}))\n    sys.exit(1)\nprint(json.dumps({{'calls': n + 1}}))\n",
            count.display().to_string()
        ),
    );
    let def = json!({
        "StartAt": "Nap",
        "States": {
            "Nap": {"Type": "Wait", "Seconds": 6, "Next": "Call"},
            "Call": {
                "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:second_time",
                "Retry": [{"ErrorEquals": ["NotYet"], "IntervalSeconds": 6, "MaxAttempts": 1}],
                "End": true
            }
        }
    });
    workflows(dir.path(), &[("napper", def)]);
    let env = [("STEPGATE_STORAGE__PARK_AFTER_SECONDS", "1")];
    let d = Daemon::start_with_env(dir.path(), &functions, &env);
    let sm = format!("{ACCOUNT_ARN}:stateMachine:napper");
    let started = Instant::now();
    let arn = d.aws(&["start-execution", "--state-machine-arn", &sm]).unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    // Parked in the Wait; killed and restarted while parked, it stays parked. The waits are
    // long enough that a loaded machine still sees each park before its timer is due.
    wait_for_metric(&d, "stepgate_executions_parked", 1.0, Duration::from_secs(5));
    let dir_path = d.dir.clone();
    unsafe_kill9(d.child.id());
    drop(d);
    let d = Daemon::start_with_env(&dir_path, &functions, &env);
    assert_eq!(d.metric("stepgate_executions_parked"), 1.0);
    assert_eq!(d.aws(&["describe-execution", "--execution-arn", &arn]).unwrap()["status"], "RUNNING");
    // Then the Retry backoff after the first call parks it again (for 6 s).
    let until = Instant::now() + Duration::from_secs(15);
    while !history(&d, &arn).iter().any(|e| e["type"] == "LambdaFunctionFailed") {
        assert!(Instant::now() < until, "the first call did not fail");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_metric(&d, "stepgate_executions_parked", 1.0, Duration::from_secs(5));
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(30));
    assert!(started.elapsed() >= Duration::from_secs(12), "6 s of Wait and 6 s of backoff");
    assert_eq!(serde_json::from_str::<Value>(e["output"].as_str().unwrap()).unwrap(), json!({"calls": 2}));
    // The counters follow the status by a moment: the finish is counted once it is stored.
    wait_for_metric(&d, "stepgate_executions_parked", 0.0, Duration::from_secs(5));
    // This daemon entered one state (Call); the states it resumed were counted when entered.
    wait_for_metric(&d, "stepgate_state_transitions_total", 1.0, Duration::from_secs(5));
    let events = history(&d, &arn);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "WaitStateEntered",
            "WaitStateExited",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionFailed",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    // The Wait lasted its 6 seconds across the restart, by the events' own clock.
    let at = |i: usize| events[i]["timestamp"].as_f64().unwrap();
    assert!(at(2) - at(1) >= 6.0 && at(2) - at(1) < 12.0, "{} -> {}", at(1), at(2));

    // A parked execution can be stopped; its timer then finds it ended and leaves it so.
    let arn = d.aws(&["start-execution", "--state-machine-arn", &sm]).unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for_metric(&d, "stepgate_executions_parked", 1.0, Duration::from_secs(5));
    d.aws(&["stop-execution", "--execution-arn", &arn, "--error", "Enough"]).unwrap();
    wait_for_metric(&d, "stepgate_executions_parked", 0.0, Duration::from_secs(10));
    let e = d.aws(&["describe-execution", "--execution-arn", &arn]).unwrap();
    assert_eq!((e["status"].as_str(), e["error"].as_str()), (Some("ABORTED"), Some("Enough")));
    assert_eq!(history(&d, &arn).last().unwrap()["type"], "ExecutionAborted");
}

/// A retried Map runs all its iterations again, as on AWS, even across a restart: the results
/// journaled by the failed attempt are dropped with the retry, not reused after the SIGKILL.
#[test]
fn a_retried_map_starts_over_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let functions = python_function(
        dir.path(),
        "once_flaky",
        &format!(
            "import json,sys\ne=json.load(sys.stdin)\np={log:?}\nseen=open(p).read().split() if __import__('os').path.exists(p) else []\nopen(p,'a').write(e['id'] + '\\n')\nif e['id'] == 'item-1' and 'item-1' not in seen:\n    print(json.dumps({{'errorType': 'Flaky', 'errorMessage': 'first call'}}))\n    sys.exit(1)\nprint(json.dumps({{'id': e['id']}}))\n",
            log = log.display().to_string()
        ),
    );
    let def = json!({
        "StartAt": "Each",
        "States": {"Each": {
            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1,
            "ItemSelector": {"id.$": "States.Format('item-{}', $$.Map.Item.Value)"},
            "ItemProcessor": {"StartAt": "Call", "States": {
                "Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:once_flaky", "End": true}
            }},
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 3, "MaxAttempts": 1}],
            "End": true
        }}
    });
    workflows(dir.path(), &[("retried", def)]);
    let d = Daemon::start(dir.path(), &functions);
    let sm = format!("{ACCOUNT_ARN}:stateMachine:retried");
    let arn = d
        .aws(&["start-execution", "--state-machine-arn", &sm, "--input", r#"{"items": [0, 1, 2]}"#])
        .unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    // Kill during the 3 s backoff that follows item-1's failure.
    let until = Instant::now() + Duration::from_secs(10);
    while !history(&d, &arn).iter().any(|e| e["type"] == "MapIterationFailed") {
        assert!(Instant::now() < until, "item-1 did not fail");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let dir_path = d.dir.clone();
    unsafe_kill9(d.child.id());
    drop(d);
    let d = Daemon::start(&dir_path, &functions);
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    assert_eq!(
        serde_json::from_str::<Value>(e["output"].as_str().unwrap()).unwrap(),
        json!([{"id": "item-0"}, {"id": "item-1"}, {"id": "item-2"}])
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().collect::<Vec<_>>(), ["item-0", "item-1", "item-0", "item-1", "item-2"]);
}

/// An execution goes on with the definition it started with: editing the workflow file and
/// restarting the daemon changes new executions only (on AWS, executions keep their
/// definition across UpdateStateMachine too).
#[test]
fn a_running_execution_keeps_its_definition_across_an_edit_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = json!({
        "StartAt": "Nap",
        "States": {
            "Nap": {"Type": "Wait", "Seconds": 2, "Next": "Say"},
            "Say": {"Type": "Pass", "Result": "v1", "End": true}
        }
    });
    let v2 = json!({
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Result": "v2 first", "Next": "Say"},
            "Say": {"Type": "Pass", "Result": "v2", "End": true}
        }
    });
    workflows(dir.path(), &[("evolving", v1.clone())]);
    let d = Daemon::start(dir.path(), "");
    let sm = format!("{ACCOUNT_ARN}:stateMachine:evolving");
    let old = d.aws(&["start-execution", "--state-machine-arn", &sm]).unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    let dir_path = d.dir.clone();
    unsafe_kill9(d.child.id());
    drop(d);
    workflows(&dir_path, &[("evolving", v2.clone())]);
    let d = Daemon::start(&dir_path, "");
    let new = d.aws(&["start-execution", "--state-machine-arn", &sm]).unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    let output = |arn: &str| {
        let e = wait_for_status(&d, arn, "SUCCEEDED", Duration::from_secs(20));
        serde_json::from_str::<Value>(e["output"].as_str().unwrap()).unwrap()
    };
    assert_eq!(output(&old), json!("v1"));
    assert_eq!(output(&new), json!("v2"));
    let definition = |arn: &str| {
        let d = d.aws(&["describe-state-machine-for-execution", "--execution-arn", arn]).unwrap();
        serde_json::from_str::<Value>(d["definition"].as_str().unwrap()).unwrap()
    };
    assert_eq!(definition(&old), v1);
    assert_eq!(definition(&new), v2);
}

/// TestState runs one state on an input and says where it would go, as AWS's TestState does.
#[test]
fn test_state_runs_one_state() {
    let dir = tempfile::tempdir().unwrap();
    let functions = python_function(dir.path(), "broken", BROKEN);
    workflows(dir.path(), &[]);
    let d = Daemon::start(dir.path(), &functions);
    let role = "arn:aws:iam::123456789012:role/test";
    let test = |def: Value, input: &str| {
        d.aws(&["test-state", "--definition", &def.to_string(), "--role-arn", role, "--input", input])
            .unwrap()
    };
    let pass = test(
        json!({"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, 1)"}, "Next": "After"}),
        r#"{"a": 1}"#,
    );
    assert_eq!(pass["status"], "SUCCEEDED");
    assert_eq!(pass["nextState"], "After");
    assert_eq!(serde_json::from_str::<Value>(pass["output"].as_str().unwrap()).unwrap(), json!({"sum": 2}));

    let choice = test(
        json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericGreaterThan": 5, "Next": "Big"}], "Default": "Small"}),
        r#"{"a": 9}"#,
    );
    assert_eq!((choice["status"].as_str(), choice["nextState"].as_str()), (Some("SUCCEEDED"), Some("Big")));

    let task = json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:broken", "End": true});
    let mut caught = task.clone();
    caught["Catch"] = json!([{"ErrorEquals": ["States.ALL"], "Next": "Recover"}]);
    let r = test(caught, "{}");
    assert_eq!(
        (r["status"].as_str(), r["nextState"].as_str(), r["error"].as_str()),
        (Some("CAUGHT_ERROR"), Some("Recover"), Some("Broken"))
    );

    let mut retried = task.clone();
    retried["Retry"] = json!([{"ErrorEquals": ["Broken"], "IntervalSeconds": 60}]);
    let r = test(retried, "{}");
    assert_eq!((r["status"].as_str(), r["error"].as_str()), (Some("RETRIABLE"), Some("Broken")));

    let r = test(task, "{}");
    assert_eq!((r["status"].as_str(), r["error"].as_str()), (Some("FAILED"), Some("Broken")));
}

/// Regression: after a restart an execution's own `TimeoutSeconds` started again from zero
/// instead of counting the time already spent. A 6 s machine timeout around a function that
/// takes 30 s, killed 3 s in: it must still time out about 6 s after it started, not 3 + 6.
#[test]
fn a_resumed_execution_keeps_what_it_spent_of_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let functions = python_function(dir.path(), "slow", "import time\ntime.sleep(30)\nprint('{}')\n");
    let def = json!({
        "TimeoutSeconds": 6,
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:slow", "End": true}}
    });
    workflows(dir.path(), &[("slow", def)]);
    let d = Daemon::start(dir.path(), &functions);
    let body = json!({"stateMachineArn": format!("{ACCOUNT_ARN}:stateMachine:slow"), "name": "e"});
    let (status, _) = d.post(Some("AWSStepFunctions.StartExecution"), body.to_string().as_bytes());
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_secs(3));
    let dir_path = d.dir.clone();
    unsafe_kill9(d.child.id());
    drop(d);
    let d = Daemon::start(&dir_path, &functions);
    let arn = format!("{ACCOUNT_ARN}:execution:slow:e");
    let e = wait_for_status(&d, &arn, "TIMED_OUT", Duration::from_secs(20));
    let took = e["stopDate"].as_f64().unwrap() - e["startDate"].as_f64().unwrap();
    assert!((5.5..8.5).contains(&took), "timed out {took:.1} s after it started (6 s allowed)");
}

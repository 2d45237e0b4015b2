//! One bad workflow or one bad client never takes the daemon down: poisoned expressions,
//! overflowing retries, a step the daemon keeps dying on, malformed and oversized requests,
//! idle connections, and what is left on disk. Through the real binary (`run`, `validate`,
//! and `serve` over raw HTTP and the aws CLI), except the panic boundary, which needs a
//! connector that panics.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

const SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine";

fn stepgate(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stepgate"));
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STEPGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.output().expect("the stepgate binary runs")
}

/// `stepgate run DEFINITION --format json` with `extra` arguments: the result object.
fn run(dir: &Path, definition: &Value, input: &str, extra: &[&str]) -> Value {
    let file = dir.join("wf.asl.json");
    std::fs::write(&file, definition.to_string()).unwrap();
    let mut args = vec!["run", file.to_str().unwrap(), "--input", input, "--format", "json"];
    args.extend_from_slice(extra);
    let out = stepgate(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("run printed no result ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    })
}

fn jsonata_output(expression: &str) -> Value {
    json!({
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Output": format!("{{% {expression} %}}"), "End": true}}
    })
}

/// A Parallel whose one branch always fails with `X`, retried with `retrier`.
fn failing_retried(retrier: Value) -> Value {
    let mut r = json!({"ErrorEquals": ["States.ALL"]});
    r.as_object_mut().unwrap().extend(retrier.as_object().unwrap().clone());
    json!({
        "StartAt": "P",
        "States": {"P": {
            "Type": "Parallel",
            "Branches": [{"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "X", "Cause": "c"}}}],
            "Retry": [r],
            "End": true
        }}
    })
}

#[test]
fn expressions_that_would_exhaust_memory_or_time_fail_their_state_alone() {
    let dir = tempfile::tempdir().unwrap();
    let memory = "took more than 134217728 bytes of memory (limits.expression_memory_bytes)";
    for (expression, cause) in [
        ("($a := [1..1000]; $a.$a.$a)", "D2015: The maximum sequence length of 1000000 was exceeded."),
        ("$pad('x', -1e18)", memory),
        ("$pad('x', -2147483648)", memory),
        ("$pad('x', 2147483647)", memory),
        ("$pad('x', 1000000000)", memory),
        ("$join([1..1000000].$string($pad('x', 1000)))", memory),
        ("($f := function($n){$f($n)}; $f(1))", "D1012: Evaluation timeout after 5000 milliseconds"),
    ] {
        let v = run(dir.path(), &jsonata_output(expression), "{}", &[]);
        assert_eq!(
            (v["status"].as_str(), v["error"].as_str()),
            (Some("FAILED"), Some("States.QueryEvaluationError")),
            "{expression}: {v}"
        );
        let got = v["cause"].as_str().unwrap();
        assert!(got.contains(cause) && got.contains(expression), "{expression}: {got}");
    }
    // Once quadratic: now a hash lookup per item.
    let v = run(dir.path(), &jsonata_output("$count($distinct([1..100000].($ % 50000)))"), "{}", &[]);
    assert_eq!((v["status"].as_str(), &v["output"]), (Some("SUCCEEDED"), &json!(50000)), "{v}");
}

#[test]
fn format_number_writes_the_largest_numbers_in_digits() {
    let dir = tempfile::tempdir().unwrap();
    let v = run(
        dir.path(),
        &jsonata_output("[$formatNumber(1e308, '#,##0.00'), $formatNumber(1e21, '#,##0.00'), $formatNumber(12345.678, '#,##0.00')]"),
        "{}",
        &[],
    );
    let out = v["output"].as_array().unwrap_or_else(|| panic!("{v}"));
    let big = out[0].as_str().unwrap();
    assert!(big.starts_with("100,000,000,") && big.ends_with(",000.00"), "{big}");
    assert_eq!(big.chars().filter(|c| *c == '0').count(), 308 + 2);
    assert_eq!(out[1], "1,000,000,000,000,000,000,000.00");
    assert_eq!(out[2], "12,345.68");
}

#[test]
fn retry_backoffs_that_overflow_wait_the_longest_wait_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    for retrier in [
        json!({"BackoffRate": 1e300, "MaxAttempts": 5}),
        json!({"IntervalSeconds": 99999999, "BackoffRate": 82000, "MaxAttempts": 3}),
    ] {
        let v = run(dir.path(), &failing_retried(retrier.clone()), "{}", &["--time-scale", "0"]);
        assert_eq!(
            (v["status"].as_str(), v["error"].as_str()),
            (Some("FAILED"), Some("X")),
            "{retrier}: {v}"
        );
    }
    // Retried until the history is full: the execution ends, it does not spin or panic.
    let v = run(
        dir.path(),
        &failing_retried(json!({"MaxAttempts": 99999999, "IntervalSeconds": 1})),
        "{}",
        &["--time-scale", "0"],
    );
    assert_eq!(v["error"], "States.Runtime", "{v}");
    assert!(v["cause"].as_str().unwrap().contains("limits.history_events"), "{v}");
    // A wait as long as an i64 holds.
    let wait = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}});
    let v = run(dir.path(), &wait, r#"{"s": 9223372036854775807}"#, &["--time-scale", "0"]);
    assert_eq!((v["status"].as_str(), v["error"].as_str()), (Some("FAILED"), Some("States.Runtime")), "{v}");
}

#[test]
fn validate_holds_retriers_to_awss_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let check = |retrier: Value| {
        let file = dir.path().join("r.asl.json");
        std::fs::write(&file, failing_retried(retrier).to_string()).unwrap();
        let out = stepgate(&["validate", file.to_str().unwrap()]);
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for (retrier, at) in [
        (json!({"IntervalSeconds": 0}), "/States/P/Retry[0]/IntervalSeconds"),
        (json!({"IntervalSeconds": 100000000}), "/States/P/Retry[0]/IntervalSeconds"),
        (json!({"IntervalSeconds": 1.5}), "/States/P/Retry[0]/IntervalSeconds"),
        (json!({"MaxAttempts": 100000000}), "/States/P/Retry[0]/MaxAttempts"),
        (json!({"MaxDelaySeconds": 31622401}), "/States/P/Retry[0]/MaxDelaySeconds"),
        (json!({"BackoffRate": 0.5}), "/States/P/Retry[0]/BackoffRate"),
        (json!({"JitterStrategy": "full"}), "/States/P/Retry[0]/JitterStrategy"),
    ] {
        let (code, err) = check(retrier.clone());
        assert_eq!(code, 1, "{retrier} passed validate");
        assert!(err.contains("SCHEMA_VALIDATION_FAILED") && err.contains(at), "{retrier}: {err}");
    }
    // AWS sets BackoffRate no upper bound.
    assert_eq!(check(json!({"BackoffRate": 1e300, "MaxDelaySeconds": 31622400})).0, 0);
}

#[test]
fn a_panic_fails_its_execution_with_the_history_written() {
    use stepgate::connectors::{Call, Connector, Registry};
    use stepgate::engine::{Engine, Start};
    const PANICS: &str = "arn:aws:lambda:us-east-1:123456789012:function:panics";
    struct Panics;
    impl Connector for Panics {
        fn handles(&self, resource: &str) -> bool {
            resource == PANICS
        }
        fn describe(&self) -> String {
            PANICS.into()
        }
        fn invoke(
            &self,
            _: Call,
        ) -> futures::future::BoxFuture<'static, Result<stepgate::connectors::Answer, stepgate::error::Failure>>
        {
            Box::pin(async { panic!("a connector's defect") })
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let definition =
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": PANICS, "End": true}}});
    let machine = stepgate::asl::compile(&definition).unwrap();
    let engine = Engine::new(
        Registry::default().with(std::sync::Arc::new(Panics)),
        std::sync::Arc::new(stepgate::time::Clock::new(0.0)),
        Default::default(),
        "us-east-1",
        "123456789012",
    );
    let start = Start { record_history: true, ..Start::new("m".to_string(), "e".to_string(), json!({})) };
    let o = rt.block_on(engine.run(&machine, start));
    assert_eq!((o.status.as_str(), o.error.as_deref()), ("FAILED", Some("States.Runtime")));
    assert!(o.cause.as_deref().unwrap().contains("internal error of stepgate"), "{:?}", o.cause);
    let types: Vec<String> = o.history.iter().map(|e| e.kind.to_string()).collect();
    assert_eq!(types.first().map(String::as_str), Some("ExecutionStarted"));
    assert_eq!(types.last().map(String::as_str), Some("ExecutionFailed"), "{types:?}");
    // The runtime is fine: another execution runs.
    let ok = stepgate::asl::compile(&json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}))
        .unwrap();
    let o = rt.block_on(engine.run(&ok, Start::new("m".to_string(), "f".to_string(), json!({"a": 1}))));
    assert_eq!(o.status.as_str(), "SUCCEEDED");
}

/// The daemon, spoken to in raw HTTP.
struct Daemon(common::Daemon);

impl std::ops::Deref for Daemon {
    type Target = common::Daemon;
    fn deref(&self) -> &common::Daemon {
        &self.0
    }
}

impl Daemon {
    fn start(dir: &Path, config: &str) -> Daemon {
        Daemon(common::Daemon::start(dir, config, &[]))
    }

    fn call(&self, operation: &str, body: &Value) -> (u16, Value) {
        let target = format!("AWSStepFunctions.{operation}");
        let headers = [("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", target.as_str())];
        let (status, text) = self.raw("POST", "/", &headers, body.to_string().as_bytes());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn start_execution(&self, machine: &str, name: &str) -> String {
        let (status, v) =
            self.call("StartExecution", &json!({"stateMachineArn": format!("{SM}:{machine}"), "name": name}));
        assert_eq!(status, 200, "{v}");
        v["executionArn"].as_str().unwrap().to_string()
    }

    fn wait_for(&self, arn: &str, within: Duration) -> Value {
        let until = Instant::now() + within;
        loop {
            let (_, e) = self.call("DescribeExecution", &json!({"executionArn": arn}));
            if e["status"] != "RUNNING" {
                return e;
            }
            assert!(Instant::now() < until, "{arn} still RUNNING after {within:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `/healthz` on a fresh connection that gives up after `patience`.
    fn healthy(&self, patience: Duration) -> bool {
        let Ok(mut s) = TcpStream::connect(&self.addr) else { return false };
        s.set_read_timeout(Some(patience)).unwrap();
        if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
            return false;
        }
        let mut text = String::new();
        s.read_to_string(&mut text).is_ok() && text.starts_with("HTTP/1.1 200")
    }
}

fn workflow(dir: &Path, name: &str, definition: &Value) {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::write(dir.join(format!("workflows/{name}.asl.json")), definition.to_string()).unwrap();
}

#[test]
fn a_poisoned_standard_execution_fails_and_the_daemon_serves_on_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "poison", &jsonata_output("($a := [1..1000]; $a.$a.$a)"));
    workflow(dir.path(), "hog", &jsonata_output("$pad('x', 2147483647)"));
    workflow(dir.path(), "spin", &jsonata_output("($f := function($n){$f($n)}; $f(1))"));
    workflow(dir.path(), "fine", &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}));
    let d = Daemon::start(dir.path(), "");
    let poison = d.start_execution("poison", "p");
    let hog = d.start_execution("hog", "h");
    // As many spinning expressions as there are cores and more.
    let spins: Vec<String> = (0..6).map(|i| d.start_execution("spin", &format!("s{i}"))).collect();
    // While they spin the API answers; a stall of seconds (the expressions' time limit)
    // would show as a refused health check.
    for _ in 0..10 {
        assert!(d.healthy(Duration::from_secs(2)), "/healthz did not answer while expressions spin");
        std::thread::sleep(Duration::from_millis(100));
    }
    let fine = d.start_execution("fine", "f");
    assert_eq!(d.wait_for(&fine, Duration::from_secs(10))["status"], "SUCCEEDED");
    for arn in [&poison, &hog].into_iter().chain(&spins) {
        let e = d.wait_for(arn, Duration::from_secs(30));
        assert_eq!(e["status"], "FAILED", "{e}");
        let (_, h) = d.call(
            "GetExecutionHistory",
            &json!({"executionArn": arn, "reverseOrder": true, "maxResults": 1}),
        );
        assert_eq!(
            h["events"][0]["executionFailedEventDetails"]["error"], "States.QueryEvaluationError",
            "{h}"
        );
    }
    // After a crash the daemon comes back: nothing it resumes brings it down again.
    let mut child = d.0;
    let dir_path = child.dir.clone();
    child.child.kill().unwrap();
    child.child.wait().unwrap();
    drop(child);
    let d = Daemon::start(&dir_path, "");
    assert!(d.healthy(Duration::from_secs(5)));
    let (_, e) = d.call("DescribeExecution", &json!({"executionArn": poison}));
    assert_eq!(e["status"], "FAILED");
    let again = d.start_execution("fine", "f2");
    assert_eq!(d.wait_for(&again, Duration::from_secs(10))["status"], "SUCCEEDED");
}

#[test]
fn a_step_the_daemon_keeps_dying_on_is_failed_after_storage_resume_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Each call leaves a line behind and then takes far longer than the test.
    let calls = dir.path().join("calls");
    let script = dir.path().join("slow.py");
    std::fs::write(
        &script,
        format!(
            "import time\nopen({:?}, 'a').write('call\\n')\ntime.sleep(30)\nprint('{{}}')\n",
            calls.display().to_string()
        ),
    )
    .unwrap();
    let config = format!("[functions.slow]\ncommand = [\"python3\", \"{}\"]\n", script.display());
    // The harness writes [storage] itself; the limit comes from the environment.
    let env = [("STEPGATE_STORAGE__RESUME_LIMIT", "2")];
    workflow(
        dir.path(),
        "slow",
        &json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:slow", "End": true
        }}}),
    );
    let count = || std::fs::read_to_string(&calls).map(|t| t.lines().count()).unwrap_or(0);
    let wait_calls = |n: usize| {
        let until = Instant::now() + Duration::from_secs(20);
        while count() < n {
            assert!(Instant::now() < until, "the Task was called {} times, not {n}", count());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let start = || Daemon(common::Daemon::start(dir.path(), &config, &env));
    let mut d = start();
    let arn = d.start_execution("slow", "e");
    // The daemon dies (SIGKILL) while the Task runs: at its first call, then at each of the
    // two resumes the limit allows.
    for n in 1..=3 {
        wait_calls(n);
        drop(d);
        d = start();
    }
    let e = d.wait_for(&arn, Duration::from_secs(10));
    assert_eq!((e["status"].as_str(), e["error"].as_str()), (Some("FAILED"), Some("States.Runtime")), "{e}");
    let cause = e["cause"].as_str().unwrap();
    assert!(cause.contains("'T'") && cause.contains("storage.resume_limit is 2"), "{cause}");
    assert_eq!(count(), 3, "the step ran once more after the limit");
    // The daemon serves on, and a clean restart changes nothing.
    assert!(d.healthy(Duration::from_secs(5)));
}

/// Connects and sends `head` (no body follows unless the caller writes one).
fn send(addr: &str, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// What the daemon wrote until it closed the connection.
fn answer(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn json_body(reply: &str) -> Value {
    serde_json::from_str(reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")).unwrap_or(Value::Null)
}

#[test]
fn idle_and_half_sent_connections_are_closed_and_cannot_lock_out_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_connections = 20\nheader_timeout_seconds = 1\nbody_timeout_seconds = 1\n",
    );
    // Three times the cap of connections that never finish their headers.
    let opened = Instant::now();
    let idle: Vec<TcpStream> = (0..60).map(|_| send(&d.addr, "POST / HTTP/1.1\r\nHost: x\r\n")).collect();
    for _ in 0..5 {
        assert!(d.healthy(Duration::from_secs(5)), "/healthz was locked out by idle connections");
    }
    let (_, metrics) = d.raw("GET", "/metrics", &[], b"");
    let shed = metrics.lines().find_map(|l| l.strip_prefix("stepgate_http_connections_shed_total ")).unwrap();
    assert!(shed.parse::<u64>().unwrap() >= 40, "{metrics}");
    // Every one of them is closed by the daemon, shed or timed out.
    for s in idle {
        assert_eq!(answer(s), "", "a half-sent request got an answer");
    }
    assert!(opened.elapsed() < Duration::from_secs(9), "idle connections were held {:?}", opened.elapsed());

    // A kept-alive connection that goes quiet after its request is closed too.
    let mut s = send(&d.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut first = [0u8; 1024];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let quiet = Instant::now();
    assert_eq!(answer(s), "");
    assert!(
        quiet.elapsed() < Duration::from_secs(5),
        "an idle kept-alive connection stayed {:?}",
        quiet.elapsed()
    );

    // A body announced and never sent.
    let s = send(
        &d.addr,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AWSStepFunctions.ListStateMachines\r\nContent-Length: 100\r\n\r\n{",
    );
    let reply = answer(s);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert_eq!(json_body(&reply)["__type"], "RequestTimeoutException", "{reply}");
    assert!(d.healthy(Duration::from_secs(5)));
}

#[test]
fn an_oversized_body_gets_a_json_413_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 1000\n");
    let target = "X-Amz-Target: AWSStepFunctions.ListStateMachines\r\n";
    // Announced: answered without sending a byte of it.
    let s = send(&d.addr, &format!("POST / HTTP/1.1\r\nHost: x\r\n{target}Content-Length: 50000000\r\n\r\n"));
    let reply = answer(s);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    let body = json_body(&reply);
    assert_eq!(body["__type"], "RequestEntityTooLargeException", "{reply}");
    assert!(body["message"].as_str().unwrap().contains("server.max_body_bytes"), "{body}");
    // Chunked, so only counting tells.
    let chunk = format!("320\r\n{}\r\n", "x".repeat(800));
    let mut s =
        send(&d.addr, &format!("POST / HTTP/1.1\r\nHost: x\r\n{target}Transfer-Encoding: chunked\r\n\r\n"));
    s.write_all(chunk.as_bytes()).unwrap();
    s.write_all(chunk.as_bytes()).unwrap();
    let reply = answer(s);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // Within the limit, served.
    assert_eq!(d.call("ListStateMachines", &json!({})).0, 200);
}

#[test]
fn an_unsigned_caller_cannot_make_the_daemon_read_a_body() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\n[[server.access_keys]]\naccess_key_id = \"ops\"\nsecret_access_key = \"s3cr3t\"\n",
    );
    let s = send(
        &d.addr,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AWSStepFunctions.ListStateMachines\r\nContent-Length: 900000\r\n\r\n",
    );
    let reply = answer(s);
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert_eq!(json_body(&reply)["__type"], "MissingAuthenticationTokenException");
}

#[test]
fn bad_fields_get_awss_errors_and_never_run_with_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "m", &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}));
    let d = Daemon::start(dir.path(), "");
    let sm = format!("{SM}:m");
    let serialization = |op: &str, body: Value, message: &str| {
        let (status, v) = d.call(op, &body);
        assert_eq!(
            (status, v["__type"].as_str(), v["message"].as_str()),
            (400, Some("SerializationException"), Some(message)),
            "{op} {body}"
        );
    };
    serialization(
        "StartExecution",
        json!({"stateMachineArn": sm, "input": {"a": 1}}),
        "Start of structure or map found where not expected.",
    );
    serialization(
        "StartExecution",
        json!({"stateMachineArn": sm, "name": 12}),
        "NUMBER_VALUE can not be converted to a String",
    );
    let create = json!({"name": "n", "definition": "{}", "roleArn": "arn:aws:iam::123456789012:role/r", "tags": "notalist"});
    serialization("CreateStateMachine", create, "Expected list or null");
    let list = json!({"stateMachineArn": sm});
    let with = |k: &str, v: Value| {
        let mut b = list.clone();
        b[k] = v;
        b
    };
    serialization(
        "ListExecutions",
        with("maxResults", json!("10")),
        "STRING_VALUE can not be converted to an Integer",
    );
    serialization(
        "ListExecutions",
        with("maxResults", json!("abc")),
        "STRING_VALUE can not be converted to an Integer",
    );
    serialization(
        "ListExecutions",
        with("maxResults", json!(true)),
        "TRUE_VALUE can not be converted to an Integer",
    );
    serialization(
        "ListExecutions",
        with("maxResults", json!(1e30)),
        "NUMBER_VALUE can not be converted to an Integer",
    );
    serialization(
        "ListExecutions",
        with("statusFilter", json!(7)),
        "NUMBER_VALUE can not be converted to a String",
    );
    serialization(
        "TagResource",
        json!({"resourceArn": sm, "tags": {"a": "b"}}),
        "Start of structure or map found where not expected.",
    );
    serialization(
        "TagResource",
        json!({"resourceArn": sm, "tags": [{"key": 1, "value": "v"}]}),
        "NUMBER_VALUE can not be converted to a String",
    );
    // No execution started from any of them.
    let (_, v) = d.call("ListExecutions", &list);
    assert_eq!(v["executions"], json!([]), "{v}");

    let validation = |op: &str, body: Value, message: &str| {
        let (status, v) = d.call(op, &body);
        assert_eq!((status, v["__type"].as_str()), (400, Some("ValidationException")), "{op} {body}: {v}");
        assert_eq!(v["message"].as_str().unwrap(), format!("1 validation error detected: {message}"));
    };
    validation("ListExecutions", with("maxResults", json!(-1)), "Value '-1' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 0");
    validation("ListExecutions", with("maxResults", json!(1001)), "Value '1001' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 1000");
    validation("ListExecutions", with("statusFilter", json!("succeeded")), "Value 'succeeded' at 'statusFilter' failed to satisfy constraint: Member must satisfy enum value set: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE]");
    validation("DeleteStateMachine", json!({"stateMachineArn": ""}), "Value '' at 'stateMachineArn' failed to satisfy constraint: Member must have length greater than or equal to 1");
    // What AWS takes: 0 and null are its default page, a fraction is cut.
    for ok in [json!(0), json!(null), json!(1.5)] {
        assert_eq!(d.call("ListExecutions", &with("maxResults", ok.clone())).0, 200, "maxResults {ok}");
    }
    let (status, v) = d.call("DeleteStateMachine", &json!({"stateMachineArn": "x"}));
    assert_eq!(
        (status, v["__type"].as_str(), v["message"].as_str()),
        (400, Some("InvalidArn"), Some("Invalid Arn: 'Invalid ARN prefix: x'"))
    );
    let (status, v) = d.call("ListExecutions", &with("nextToken", json!("garbage!")));
    assert_eq!((status, v["__type"].as_str()), (400, Some("InvalidToken")), "{v}");
    assert!(!v["message"].as_str().unwrap().contains("store"), "{v}");
}

#[test]
fn list_state_machines_pages() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c", "d", "e"] {
        workflow(dir.path(), name, &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}));
    }
    let d = Daemon::start(dir.path(), "");
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({"maxResults": 2});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let (status, v) = d.call("ListStateMachines", &body);
        assert_eq!(status, 200, "{v}");
        pages += 1;
        let page = v["stateMachines"].as_array().unwrap();
        assert!(page.len() <= 2);
        names.extend(page.iter().map(|m| m["name"].as_str().unwrap().to_string()));
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!((names.join(","), pages), ("a,b,c,d,e".to_string(), 3));
    let (status, v) = d.call("ListStateMachines", &json!({"nextToken": "%%%"}));
    assert_eq!((status, v["__type"].as_str()), (400, Some("InvalidToken")));
}

#[test]
fn workflow_files_are_held_to_awss_naming_rules() {
    let dir = tempfile::tempdir().unwrap();
    let pass = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    let long = "n".repeat(90);
    for name in ["a:b", "bad name", "x*y", long.as_str(), "good"] {
        workflow(dir.path(), name, &pass);
    }
    let d = Daemon::start(dir.path(), "");
    let (_, v) = d.call("ListStateMachines", &json!({}));
    assert_eq!(v["stateMachines"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["stateMachines"][0]["name"], "good");
    let out = stepgate(&["validate", "--config", d.dir.join("stepgate.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for name in ["a:b", "bad name", "x*y", long.as_str()] {
        assert!(
            err.contains("error[InvalidName]") && err.contains(&format!("Invalid Name: '{name}'")),
            "{name}: {err}"
        );
    }
    assert!(!err.contains("good"), "{err}");
}

#[cfg(unix)]
#[test]
fn the_state_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let state = d.dir.join("state");
    assert_eq!(mode(&state), 0o700);
    for entry in std::fs::read_dir(&state).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("stepgate.db") {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    assert!(state.join("stepgate.db").exists());
}

#[test]
fn every_member_of_every_operation_is_checked_as_awss_model_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api_model.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(d.endpoint())
        .output()
        .expect("python3 runs (with boto3: pip install boto3)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(" 0 wrong"), "{text}");
}

/// Found by `cargo fuzz run definition`: `validate` accepted a JSONata Map whose ItemSelector
/// has a key ending in `.$`, and the daemon then refused to compile it (the key was read as a
/// JSONPath template's). In JSONata, keys are taken as written.
#[test]
fn a_jsonata_item_selector_keeps_a_key_ending_in_dollar() {
    let dir = tempfile::tempdir().unwrap();
    let definition = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "M",
        "States": {"M": {
            "Type": "Map",
            "Items": "{% [10, 20] %}",
            "ItemSelector": {"li.$": "{% $states.context.Map.Item.Index %}", "v": "{% $states.context.Map.Item.Value %}"},
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "End": true
        }}
    });
    let file = dir.path().join("m.asl.json");
    std::fs::write(&file, definition.to_string()).unwrap();
    assert_eq!(stepgate(&["validate", file.to_str().unwrap()]).status.code(), Some(0));
    let v = run(dir.path(), &definition, "{}", &[]);
    assert_eq!(v["output"], json!([{"li.$": 0, "v": 10}, {"li.$": 1, "v": 20}]), "{v}");
}

/// Found by `cargo fuzz run jsonpath` and `intrinsics`: a path whose union goes on with a
/// multi-byte character made `validate` and `serve` panic instead of refusing the definition.
#[test]
fn a_malformed_path_with_multibyte_text_is_refused_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for value in ["$.j['a', \u{35c}x]", "States.Format('{}', $.j['a', \u{35c}\u{35c}t])"] {
        let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"x.$": value}, "End": true}}});
        let file = dir.path().join("p.asl.json");
        std::fs::write(&file, definition.to_string()).unwrap();
        let out = stepgate(&["validate", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{value}: {err}");
        assert!(err.contains("/States/P/Parameters"), "{value}: {err}");
    }
}

/// A Map without MaxConcurrency over many items does not start a process per item at once:
/// a function runs at most `concurrency` calls at a time, and the daemon at most
/// `limits.running_tasks` Task calls; the rest wait their turn and every item is done.
#[test]
fn a_wide_map_runs_its_calls_a_few_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let log = dir.path().join("seen");
    // Each call counts the calls alive beside it (files in `live`) and logs the count.
    let script = dir.path().join("count.py");
    std::fs::write(
        &script,
        format!(
            "import json,os,sys,time\ne=json.load(sys.stdin)\nme=os.path.join({live:?},str(os.getpid()))\nopen(me,'w').close()\ntime.sleep(0.15)\nn=len(os.listdir({live:?}))\nopen({log:?},'a').write(f'{{n}}\\n')\nos.remove(me)\nprint(json.dumps(e['i']))\n",
            live = live.display().to_string(),
            log = log.display().to_string()
        ),
    )
    .unwrap();
    let definition = |function: &str| {
        json!({
            "StartAt": "Each",
            "States": {"Each": {
                "Type": "Map", "ItemsPath": "$.items", "ItemSelector": {"i.$": "$$.Map.Item.Value"},
                "ItemProcessor": {"StartAt": "Call", "States": {"Call": {
                    "Type": "Task", "Resource": format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"), "End": true
                }}},
                "End": true
            }}
        })
    };
    let items: Vec<u32> = (0..40).collect();
    let input = json!({"items": items}).to_string();
    let config = dir.path().join("stepgate.toml");
    let python = format!("[\"python3\", {:?}]", script.display().to_string());
    std::fs::write(
        &config,
        format!("[limits]\nrunning_tasks = 3\n[functions.four]\ncommand = {python}\nconcurrency = 4\n[functions.many]\ncommand = {python}\nconcurrency = 100\n"),
    )
    .unwrap();
    let most = || {
        let seen = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_file(&log).unwrap();
        seen.lines().map(|l| l.parse::<usize>().unwrap()).max().unwrap()
    };
    let cfg = config.to_str().unwrap();
    let r = run(dir.path(), &definition("many"), &input, &["--config", cfg]);
    assert_eq!((r["status"].as_str(), &r["output"]), (Some("SUCCEEDED"), &json!(items)), "{r}");
    let n = most();
    assert!((2..=3).contains(&n), "{n} calls at once under limits.running_tasks = 3");
    std::fs::write(&config, format!("[functions.four]\ncommand = {python}\nconcurrency = 4\n")).unwrap();
    let r = run(dir.path(), &definition("four"), &input, &["--config", cfg]);
    assert_eq!((r["status"].as_str(), &r["output"]), (Some("SUCCEEDED"), &json!(items)), "{r}");
    let n = most();
    assert!((2..=4).contains(&n), "{n} calls at once under concurrency = 4");
}

//! The daemon's life under systemd, through the real binary: READY=1 only once every
//! listener and trigger is up, the watchdog fed; SIGHUP swaps in a good config (workflows,
//! routes, rules) and refuses a bad one whole while the old keeps running; SIGTERM lets the
//! work in progress finish (a sync request answered, MQTT starts committed and acknowledged)
//! and exits 0 with nothing lost; logs are plain off a terminal, or JSON lines.

mod common;

use common::{Broker, Daemon};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn workflow(dir: &Path, name: &str, definition: &Value) {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::write(dir.join("workflows").join(format!("{name}.asl.json")), definition.to_string()).unwrap();
}

fn pass(result: &str) -> Value {
    json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"by": result}, "End": true}}})
}

/// Rewrites the daemon's config (the harness's own lines, then `extra`).
fn rewrite_config(d: &Daemon, extra: &str) {
    let file = d.dir.join("stepgate.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let head = text.split("#-- test --\n").next().unwrap().to_string();
    std::fs::write(&file, format!("{head}#-- test --\n{extra}")).unwrap();
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < until, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_applies_a_good_config_and_refuses_a_bad_one_whole() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    workflow(dir.path(), "one", &pass("one"));
    let rule = r#"
[[triggers.mqtt]]
name = "kept"
broker = "local"
sql = "SELECT * FROM 'kept'"
workflow = "one"
"#;
    let first = format!(
        "#-- test --\n{}[workflow.one]\ntype = \"EXPRESS\"\n{rule}\n[[triggers.http]]\npath = \"/a\"\nworkflow = \"one\"\nmode = \"sync\"\n",
        broker.config("local")
    );
    let d = Daemon::start(dir.path(), &first, &[]);
    d.wait_for_health("connected", Duration::from_secs(10));
    assert_eq!(d.route("POST", "/a", &[], b"{}").0, 200);
    broker.publish("kept", 1, &[r#"{"n": 1}"#.into()]);
    d.wait_for_finished("one", 2, Duration::from_secs(10));

    // Good: a new workflow and route, /a gone, the MQTT rule and its broker unchanged.
    workflow(dir.path(), "two", &pass("two"));
    rewrite_config(
        &d,
        &format!(
            "{}[workflow.one]\ntype = \"EXPRESS\"\n{rule}\n[[triggers.http]]\npath = \"/b\"\nworkflow = \"two\"\nmode = \"sync\"\n",
            broker.config("local")
        ),
    );
    d.signal("HUP");
    wait_until("/b serves", Duration::from_secs(10), || d.route("POST", "/b", &[], b"{}").0 == 200);
    let (_, _, body) = d.route("POST", "/b", &[], b"{}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"by": "two"}));
    assert_eq!(d.route("POST", "/a", &[], b"{}").0, 404);
    broker.publish("kept", 1, &[r#"{"n": 2}"#.into()]);
    d.wait_for_finished("one", 3, Duration::from_secs(10));
    assert_eq!(
        d.metric("stepgate_trigger_events_total{kind=\"mqtt\",trigger=\"kept\"}"),
        2.0,
        "one rule, counted on"
    );

    // Bad: every problem refuses the whole file; the running config goes on untouched.
    rewrite_config(
        &d,
        &format!(
            "{}{rule}\n[[triggers.http]]\npath = \"/c\"\nworkflow = \"ghost\"\n[[triggers.mqtt]]\nbroker = \"local\"\nsql = \"SELECT FROM 'x'\"\nworkflow = \"one\"\n",
            broker.config("local")
        ),
    );
    d.signal("HUP");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(d.route("POST", "/b", &[], b"{}").0, 200, "the old routes still serve");
    assert_eq!(d.route("POST", "/c", &[], b"{}").0, 404, "nothing of the refused config ran");
    broker.publish("kept", 1, &[r#"{"n": 3}"#.into()]);
    d.wait_for_finished("one", 4, Duration::from_secs(10));
    let (_, machines) = d.call("ListStateMachines", json!({}));
    let names: BTreeSet<&str> =
        machines["stateMachines"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["one", "two"]));
}

/// SIGTERM in the middle of an MQTT burst and of a sync request: the request is answered, the
/// daemon exits 0, and after a restart every message has its execution exactly once.
#[test]
fn sigterm_finishes_the_work_in_progress_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    workflow(dir.path(), "ingest", &pass("ingest"));
    workflow(
        dir.path(),
        "slow",
        &json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "Next": "P"}, "P": {"Type": "Pass", "Result": "done", "End": true}}}),
    );
    let config = format!(
        "{}[workflow.slow]\ntype = \"EXPRESS\"\n{}",
        broker.config("local"),
        r#"
[[triggers.mqtt]]
name = "burst"
broker = "local"
sql = "SELECT * FROM 'burst'"
workflow = "ingest"
execution_name = "concat('m-', n)"

[[triggers.http]]
path = "/slow"
workflow = "slow"
mode = "sync"
"#
    );
    let mut d = Daemon::start(dir.path(), &config, &[]);
    d.wait_for_health("connected", Duration::from_secs(10));
    let n = 2000;
    let messages: Vec<String> = (0..n).map(|i| json!({"n": i}).to_string()).collect();
    broker.publish("burst", 1, &messages);
    let addr = d.addr.clone();
    let request = std::thread::spawn(move || common::http(&addr, "POST", "/slow", &[], b"{}"));
    wait_until("the burst is under way", Duration::from_secs(30), || {
        d.metric("stepgate_trigger_executions_started_total{kind=\"mqtt\",trigger=\"burst\"}") >= 50.0
    });
    // The request is in progress (it reached its route) before the signal: one that had not
    // reached the daemon yet would rightly be refused.
    wait_until("the request is in progress", Duration::from_secs(30), || {
        d.metric("stepgate_trigger_events_total{kind=\"http\",trigger=\"POST /slow\"}") >= 1.0
    });
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    let (code, _, body) = request.join().unwrap();
    assert_eq!((code, body.as_str()), (200, "\"done\""), "the request in progress was answered");
    drop(d);
    let d = Daemon::start(dir.path(), &config, &[]);
    let all = d.wait_for_finished("ingest", n, Duration::from_secs(120));
    let names: BTreeSet<String> = all.iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
    assert_eq!((all.len(), names.len()), (n, n), "one execution a message");
}

/// READY=1 comes once the listeners and the triggers are up (the route answers at once), and
/// the watchdog is fed twice a period.
#[test]
fn ready_comes_once_everything_is_up_and_the_watchdog_is_fed() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "one", &pass("one"));
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let port = common::free_port();
    let config = common::config_file(
        dir.path(),
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[workflow.one]\ntype = \"EXPRESS\"\n\
             [[triggers.http]]\npath = \"/r\"\nworkflow = \"one\"\nmode = \"sync\"\n"
        ),
    );
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env("STEPGATE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY within 20 s");
    let ready_after = started.elapsed();
    let (code, _, _) = common::http(&format!("127.0.0.1:{port}"), "POST", "/r", &[], b"{}");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    let mut kinds = vec![msg];
    for _ in 0..2 {
        let n = socket.recv(&mut buf).expect("a watchdog ping");
        kinds.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(kinds[0].contains("READY=1"), "{kinds:?}");
    assert_eq!(code, 200, "the route served as soon as READY came");
    assert!(kinds[1..].iter().all(|k| k.contains("WATCHDOG=1")), "{kinds:?}");
    eprintln!("READY after {ready_after:?} (with the process start)");
}

/// `log.format = "json"`: one JSON object per line; text logs carry no colour codes when
/// stderr is not a terminal (a journal).
#[test]
fn logs_are_plain_off_a_terminal_or_json_lines() {
    for (format, json_lines) in [("text", false), ("json", true)] {
        let dir = tempfile::tempdir().unwrap();
        workflow(dir.path(), "one", &pass("one"));
        let config = common::config_file(dir.path(), &format!("[log]\nformat = \"{format}\"\n"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("STEPGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
        let _ = child.kill();
        let _ = child.wait();
        for line in &first {
            assert!(!line.contains('\x1b'), "no escape codes: {line:?}");
            if json_lines {
                let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(v["fields"]["message"].is_string() && v["level"].is_string(), "{v}");
            } else {
                assert!(line.contains(" INFO "), "{line}");
            }
        }
    }
}

//! MQTT triggers (`[[triggers.mqtt]]`) against a real Mosquitto started by each test on a free
//! loopback port (the `mosquitto` and `mosquitto-clients` Debian packages), published to with
//! `mosquitto_pub` as a device would: the SQL's output becomes the input, messages published
//! while the daemon is down start when it returns, a SIGKILL in the middle of a burst loses and
//! doubles nothing, failures go to the error topic, and a broker restarted under the daemon
//! is reconnected. And the other way: Tasks that publish (`aws-sdk:iotdata:publish`), seen by
//! a subscriber.

mod common;

use common::{Broker, Daemon};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn workflow(dir: &Path, name: &str, definition: &Value) {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::write(dir.join("workflows").join(format!("{name}.asl.json")), definition.to_string()).unwrap();
}

fn pass() -> Value {
    json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}})
}

/// The daemon over `dir` with `broker` as `[brokers.local]` and `rules`.
fn daemon(dir: &Path, broker: &Broker, rules: &str) -> Daemon {
    Daemon::start(dir, &format!("{}{rules}", broker.config("local")), &[])
}

#[test]
fn a_message_whose_where_holds_starts_the_workflow_with_the_sqls_output() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    workflow(dir.path(), "alert", &pass());
    let d = daemon(
        dir.path(),
        &broker,
        r#"
[[triggers.mqtt]]
name = "hot"
broker = "local"
sql = "SELECT temperature, topic(2) AS device, upper(unit) AS unit FROM 'sensors/+/temperature' WHERE temperature > 30"
workflow = "alert"
"#,
    );
    d.wait_for_health("mqtt broker local", Duration::from_secs(10));
    d.wait_for_health("connected", Duration::from_secs(10));
    broker.publish(
        "sensors/kitchen/temperature",
        1,
        &[r#"{"temperature": 42.5, "unit": "c", "noise": 1}"#.into(), r#"{"temperature": 20}"#.into()],
    );
    // A topic the filter does not match starts nothing either.
    broker.publish("sensors/kitchen/humidity", 1, &[r#"{"temperature": 99}"#.into()]);
    let done = d.wait_for_finished("alert", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.executions("alert").len(), 1, "{done:?}");
    let e = d.describe(done[0]["executionArn"].as_str().unwrap());
    let input: Value = serde_json::from_str(e["input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"temperature": 42.5, "device": "kitchen", "unit": "C"}));
    assert_eq!(d.metric("stepgate_trigger_events_total{kind=\"mqtt\",trigger=\"hot\"}"), 2.0);
    assert_eq!(d.metric("stepgate_trigger_filtered_total{kind=\"mqtt\",trigger=\"hot\"}"), 1.0);
    assert_eq!(d.metric("stepgate_trigger_executions_started_total{kind=\"mqtt\",trigger=\"hot\"}"), 1.0);
    assert_eq!(d.metric("stepgate_mqtt_broker_connected{broker=\"local\"}"), 1.0);
}

/// The persistent session keeps what was published while the daemon was stopped: 1,000 QoS 1
/// messages give exactly 1,000 executions once it is back.
#[test]
fn messages_published_while_the_daemon_is_stopped_start_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    workflow(dir.path(), "ingest", &pass());
    let rules = r#"
[[triggers.mqtt]]
broker = "local"
sql = "SELECT * FROM 'meters/#'"
workflow = "ingest"
"#;
    let mut d = daemon(dir.path(), &broker, rules);
    // The first start makes the session and its subscription.
    d.wait_for_health("connected", Duration::from_secs(10));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(30)).success());
    drop(d);
    let messages: Vec<String> = (0..1000).map(|i| json!({"n": i}).to_string()).collect();
    broker.publish("meters/m1/reading", 1, &messages);
    let d = daemon(dir.path(), &broker, rules);
    let all = d.wait_for_finished("ingest", 1000, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    let all_after = d.executions("ingest");
    assert_eq!(all_after.len(), 1000, "exactly one execution a message");
    let mut seen = vec![0u32; 1000];
    for e in &all {
        let input: Value =
            serde_json::from_str(d.describe(e["executionArn"].as_str().unwrap())["input"].as_str().unwrap())
                .unwrap();
        seen[input["n"].as_u64().unwrap() as usize] += 1;
    }
    assert!(
        seen.iter().all(|n| *n == 1),
        "every message once: {:?}",
        seen.iter().enumerate().filter(|(_, n)| **n != 1).collect::<Vec<_>>()
    );
}

/// SIGKILL while a burst is being consumed: a message whose execution started but whose
/// acknowledgement was lost comes back, finds its execution by name, and starts nothing.
#[test]
fn a_sigkill_during_a_burst_starts_every_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    workflow(dir.path(), "ingest", &pass());
    let rules = r#"
[[triggers.mqtt]]
name = "burst"
broker = "local"
sql = "SELECT * FROM 'burst/+'"
workflow = "ingest"
execution_name = "concat(topic(2), '-', msgId)"
"#;
    let d = daemon(dir.path(), &broker, rules);
    d.wait_for_health("connected", Duration::from_secs(10));
    let n = 1500;
    let messages: Vec<String> = (0..n).map(|i| json!({"msgId": i, "v": i * 2}).to_string()).collect();
    broker.publish("burst/dev1", 1, &messages);
    // Killed once part of the burst has started.
    let until = Instant::now() + Duration::from_secs(30);
    while d.metric("stepgate_trigger_executions_started_total{kind=\"mqtt\",trigger=\"burst\"}") < 100.0 {
        assert!(Instant::now() < until, "the burst did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    d.signal("KILL");
    drop(d);
    let d = daemon(dir.path(), &broker, rules);
    let all = d.wait_for_finished("ingest", n, Duration::from_secs(120));
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for e in &all {
        *names.entry(e["name"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(names.len(), n, "every message has its execution");
    assert!(names.values().all(|c| *c == 1));
    for i in 0..n {
        assert!(names.contains_key(&format!("dev1-{i}")), "dev1-{i} is missing");
    }
    let arn = format!("{}:execution:ingest:dev1-7", common::ACCOUNT_ARN);
    let input: Value = serde_json::from_str(d.describe(&arn)["input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"msgId": 7, "v": 14}));
}

#[test]
fn failing_messages_go_to_the_error_topic_and_the_trigger_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    workflow(dir.path(), "ingest", &pass());
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}[limits]\npayload_bytes = 1024\n{}",
            broker.config("local"),
            r#"
[[triggers.mqtt]]
name = "strict"
broker = "local"
sql = "SELECT *, topic() AS t FROM 'in/+'"
workflow = "ingest"
execution_name = "concat('m-', id)"
error_topic = "stepgate/errors"
"#
        ),
        &[],
    );
    d.wait_for_health("connected", Duration::from_secs(10));
    let errors = broker.subscribe("stepgate/errors", 4, Duration::from_secs(20));
    // Not JSON: the SQL sees bytes, and `*` beside another item fails on them (AWS: a binary
    // payload can only be selected alone).
    broker.publish_bytes("in/a", b"\x00\x01 not json");
    // JSON, but without the field execution_name needs: the start is refused.
    broker.publish("in/b", 1, &[r#"{"no_id": true}"#.into()]);
    // Over limits.payload_bytes.
    broker.publish("in/c", 1, &[json!({"id": 1, "pad": "x".repeat(2000)}).to_string()]);
    // The name of an execution that exists already with another input.
    broker.publish("in/d", 1, &[r#"{"id": 7, "v": 1}"#.into()]);
    d.wait_for_finished("ingest", 1, Duration::from_secs(10));
    broker.publish("in/d", 1, &[r#"{"id": 7, "v": 2}"#.into()]);
    let got = errors.collect();
    assert_eq!(got.len(), 4, "{got:?}");
    let reports: Vec<Value> = got.iter().map(|(_, p)| serde_json::from_str(p).unwrap()).collect();
    for r in &reports {
        assert_eq!(r["ruleName"], "strict");
        assert_eq!(r["failures"][0]["failedAction"], "StepFunctionsAction");
        assert_eq!(r["failures"][0]["failedResource"], "ingest");
    }
    let by_topic = |t: &str| {
        reports.iter().find(|r| r["topic"] == t).unwrap_or_else(|| panic!("no report for {t}: {reports:?}"))
    };
    use base64::Engine as _;
    let original = base64::engine::general_purpose::STANDARD
        .decode(by_topic("in/a")["base64OriginalPayload"].as_str().unwrap())
        .unwrap();
    assert_eq!(original, b"\x00\x01 not json");
    assert!(by_topic("in/a")["failures"][0]["errorMessage"].as_str().unwrap().contains("SQL"), "{reports:?}");
    assert!(
        by_topic("in/b")["failures"][0]["errorMessage"].as_str().unwrap().contains("execution_name"),
        "{reports:?}"
    );
    assert!(
        by_topic("in/c")["failures"][0]["errorMessage"].as_str().unwrap().contains("limits.payload_bytes"),
        "{reports:?}"
    );
    assert!(
        by_topic("in/d")["failures"][0]["errorMessage"].as_str().unwrap().contains("ExecutionAlreadyExists"),
        "{reports:?}"
    );
    // And the trigger goes on.
    broker.publish("in/e", 1, &[r#"{"id": 8}"#.into()]);
    d.wait_for_finished("ingest", 2, Duration::from_secs(10));
    assert_eq!(d.metric("stepgate_trigger_rejected_total{kind=\"mqtt\",trigger=\"strict\"}"), 3.0);
    assert_eq!(d.metric("stepgate_trigger_errors_total{kind=\"mqtt\",trigger=\"strict\"}"), 1.0);
}

/// With no broker the daemon starts and serves; when the broker comes it connects, and when
/// the broker restarts under it, it reconnects and resubscribes.
#[test]
fn a_broker_that_is_down_or_restarts_is_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "ingest", &pass());
    let broker_dir = dir.path().join("broker");
    let mut broker = Broker::start(&broker_dir);
    broker.stop();
    let d = daemon(
        dir.path(),
        &broker,
        r#"
[[triggers.mqtt]]
broker = "local"
sql = "SELECT * FROM 'x/y'"
workflow = "ingest"
"#,
    );
    d.wait_for_health("unreachable", Duration::from_secs(10));
    assert_eq!(d.metric("stepgate_mqtt_broker_connected{broker=\"local\"}"), 0.0);
    let (status, _) = d.call("ListStateMachines", json!({}));
    assert_eq!(status, 200, "the API serves without the broker");
    broker.restart();
    d.wait_for_health("connected", Duration::from_secs(40));
    broker.publish("x/y", 1, &[r#"{"n": 1}"#.into()]);
    d.wait_for_finished("ingest", 1, Duration::from_secs(10));
    // The broker goes away and comes back (with its saved session) under the daemon.
    broker.restart();
    d.wait_for_health("connected", Duration::from_secs(40));
    broker.publish("x/y", 1, &[r#"{"n": 2}"#.into()]);
    d.wait_for_finished("ingest", 2, Duration::from_secs(20));
}

/// Two daemons in one shared subscription split the messages: each message starts once in all.
#[test]
fn a_shared_group_splits_the_messages_between_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let rules = |id: &str| {
        format!(
            "[brokers.local]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"daemon-{id}\"\n{}",
            broker.port,
            r#"
[[triggers.mqtt]]
broker = "local"
sql = "SELECT * FROM 'jobs'"
workflow = "ingest"
shared_group = "workers"
"#
        )
    };
    workflow(&one, "ingest", &pass());
    workflow(&two, "ingest", &pass());
    let a = Daemon::start(&one, &rules("one"), &[]);
    let b = Daemon::start(&two, &rules("two"), &[]);
    a.wait_for_health("connected", Duration::from_secs(10));
    b.wait_for_health("connected", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let messages: Vec<String> = (0..200).map(|i| json!({"n": i}).to_string()).collect();
    broker.publish("jobs", 1, &messages);
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (x, y) = (a.executions("ingest").len(), b.executions("ingest").len());
        if x + y >= 200 {
            std::thread::sleep(Duration::from_millis(300));
            let (x, y) = (a.executions("ingest").len(), b.executions("ingest").len());
            assert_eq!(x + y, 200, "{x} + {y}");
            assert!(x > 0 && y > 0, "both daemons took a share: {x} and {y}");
            break;
        }
        assert!(Instant::now() < until, "{x} + {y} of 200");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Regression: with a wide in-flight window (here 1,000, as a busy broker is set up) a fast
/// burst once stalled for good after a few thousand messages: the acknowledgements were
/// queued to rumqttc while holding the lock that the task reading the events needed, and
/// only that task's progress could drain them. Every message of the burst must start.
#[test]
fn a_fast_burst_through_a_wide_inflight_window_never_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with_inflight(&dir.path().join("broker"), 1000);
    workflow(dir.path(), "ingest", &pass());
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}[workflow.ingest]\ntype = \"EXPRESS\"\n{}",
            broker.config("local"),
            r#"
[[triggers.mqtt]]
name = "fast"
broker = "local"
sql = "SELECT * FROM 'fast'"
workflow = "ingest"
"#
        ),
        &[],
    );
    d.wait_for_health("connected", Duration::from_secs(10));
    let n = 20_000;
    let messages: Vec<String> = (0..n).map(|i| json!({"n": i}).to_string()).collect();
    broker.publish("fast", 1, &messages);
    let until = Instant::now() + Duration::from_secs(120);
    let metric = "stepgate_trigger_executions_started_total{kind=\"mqtt\",trigger=\"fast\"}";
    loop {
        let started = d.metric(metric);
        if started >= n as f64 {
            break;
        }
        assert!(Instant::now() < until, "{started} of {n} messages started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn publish_tasks_reach_a_subscriber_through_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let publish = |topic: &str, extra: Value| {
        let mut params = json!({"Topic": topic});
        params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:iotdata:publish", "Parameters": params})
    };
    let mut json_pub = publish("out/json", json!({"Qos": 1, "Payload.$": "$.reading"}));
    json_pub["ResultPath"] = json!("$.published");
    json_pub["Next"] = json!("Text");
    let mut text = publish("out/text", json!({"Payload": "plain words"}));
    text["ResultPath"] = Value::Null;
    text["Next"] = json!("Retained");
    let mut retained = publish("out/retained", json!({"Qos": 1, "Retain": true, "Payload": {"last": true}}));
    retained["ResultPath"] = Value::Null;
    retained["Next"] = json!("Wildcard");
    let mut wildcard = publish("out/#", json!({"Payload": "x"}));
    wildcard["Catch"] = json!([{"ErrorEquals": ["IoTDataPlane.InvalidRequestException"], "ResultPath": "$.refused", "Next": "Done"}]);
    wildcard["Next"] = json!("Done");
    workflow(
        dir.path(),
        "report",
        &json!({"StartAt": "Json", "States": {
            "Json": json_pub, "Text": text, "Retained": retained, "Wildcard": wildcard,
            "Done": {"Type": "Pass", "End": true}
        }}),
    );
    let d = daemon(dir.path(), &broker, "");
    let sub = broker.subscribe("out/#", 3, Duration::from_secs(20));
    let (status, r) = d.call(
        "StartExecution",
        json!({"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:report", "input": "{\"reading\": {\"t\": 21.5}}"}),
    );
    assert_eq!(status, 200, "{r}");
    let arn = r["executionArn"].as_str().unwrap().to_string();
    let got = sub.collect();
    assert_eq!(
        got,
        [
            ("out/json".to_string(), r#"{"t":21.5}"#.to_string()),
            ("out/text".to_string(), "plain words".to_string()),
            ("out/retained".to_string(), r#"{"last":true}"#.to_string())
        ]
    );
    let until = Instant::now() + Duration::from_secs(20);
    let e = loop {
        let e = d.describe(&arn);
        if e["status"] != "RUNNING" || Instant::now() > until {
            break e;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(e["status"], "SUCCEEDED", "{e}");
    let out: Value = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();
    assert_eq!(out["published"], json!({}));
    assert_eq!(out["refused"]["Error"], "IoTDataPlane.InvalidRequestException");
    // Retained: a subscriber that comes later still gets it.
    let late = broker.subscribe("out/retained", 1, Duration::from_secs(10)).collect();
    assert_eq!(late, [("out/retained".to_string(), r#"{"last":true}"#.to_string())]);
}

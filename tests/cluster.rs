//! Several daemons on one PostgreSQL database, through the real binary: executions started
//! across them finish exactly once when one is SIGKILLed (the survivors take its executions
//! over after its lease), a daemon paused past its lease writes nothing once another took
//! over, a schedule fires once per tick across three daemons, MQTT messages split over two
//! daemons through a shared subscription lose nothing when one is killed, and a state machine
//! created through one daemon is used through another at once. Each test has a schema of its
//! own on the PostgreSQL server the tests use (see `common::PgSchema`).

mod common;

use common::{Broker, Daemon, PgSchema, ACCOUNT_ARN};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// A daemon of the cluster over its own folder, with `workflows` in it and `extra` config.
fn node(schema: &PgSchema, dir: &Path, workflows: &[(&str, Value)], extra: &str, lease: u64) -> Daemon {
    common::workflows(dir, workflows);
    let lease = lease.to_string();
    Daemon::start(
        dir,
        extra,
        &[
            ("STEPGATE_STORAGE__BACKEND", "postgres"),
            ("STEPGATE_STORAGE__URL", &schema.url),
            ("STEPGATE_STORAGE__LEASE_SECONDS", &lease),
            ("STEPGATE_STORAGE__POOL_SIZE", "4"),
        ],
    )
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < until, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Executions by status, from the database.
fn statuses(schema: &PgSchema) -> String {
    schema.sql("SELECT string_agg(status || '=' || n, ',' ORDER BY status) FROM (SELECT status, count(*) n FROM executions GROUP BY status) s")
}

/// Executions whose history is not one unbroken run of ids from 1 with exactly one start and
/// one end, as (ARN, what is wrong): none when every execution ran exactly once.
fn broken_histories(schema: &PgSchema) -> String {
    schema.sql(
        "SELECT string_agg(arn || ' ' || n || '/' || top || '/' || starts || '/' || ends, E'\\n') FROM (
           SELECT x.arn, count(*) n, max(v.id) top,
             count(*) FILTER (WHERE v.event::json->>'type' = 'ExecutionStarted') starts,
             count(*) FILTER (WHERE v.event::json->>'type' IN ('ExecutionSucceeded', 'ExecutionFailed')) ends,
             bool_and((v.event::json->>'previousEventId')::bigint = v.id - 1 OR v.id = 1) chained
           FROM executions x JOIN events v ON v.execution = x.seq GROUP BY x.arn) h
         WHERE n <> top OR starts <> 1 OR ends <> 1 OR NOT chained",
    )
}

fn steps() -> Value {
    json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "Nap"},
        "Nap": {"Type": "Wait", "Seconds": 2, "Next": "B"},
        "B": {"Type": "Pass", "Next": "C"},
        "C": {"Type": "Pass", "Result": {"done": true}, "End": true}
    }})
}

#[test]
fn executions_started_across_three_daemons_finish_once_when_one_is_killed() {
    let schema = PgSchema::new();
    let dir = tempfile::tempdir().unwrap();
    let mut daemons: Vec<Daemon> = (0..3)
        .map(|i| node(&schema, &dir.path().join(format!("d{i}")), &[("steps", steps())], "", 3))
        .collect();
    let total = 1000;
    let mut killed = false;
    for n in 0..total {
        // Half-way through, one daemon dies with executions of its own in flight.
        if n == total / 2 {
            daemons[0].signal("KILL");
            let _ = daemons[0].wait_exit(Duration::from_secs(10));
            killed = true;
        }
        let d = &daemons[if killed { 1 + n % 2 } else { n % 3 }];
        common::start(d, "steps", &format!("e{n}"), json!({"n": n}));
    }
    let started = Instant::now();
    wait_until("every execution succeeded", Duration::from_secs(90), || {
        statuses(&schema) == format!("SUCCEEDED={total}")
    });
    eprintln!("all {total} ended {:?} after the last start; {}", started.elapsed(), statuses(&schema));
    assert_eq!(broken_histories(&schema), "", "histories that are not exactly one run");
    // Every API call answers the same on every survivor.
    let a = daemons[1].executions("steps").len();
    let b = daemons[2].executions("steps").len();
    assert_eq!((a, b), (total, total));
}

/// A loop of short waits, long enough to be taken over in the middle.
fn looping() -> Value {
    json!({"QueryLanguage": "JSONata", "StartAt": "Count", "States": {
        "Count": {"Type": "Pass", "Output": {"i": "{% $states.input.i + 1 %}"}, "Next": "More"},
        "More": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.i < 12 %}", "Next": "Nap"}], "Default": "Done"},
        "Nap": {"Type": "Wait", "Seconds": 1, "Next": "Count"},
        "Done": {"Type": "Succeed"}
    }})
}

#[test]
fn a_daemon_paused_past_its_lease_writes_nothing_after_another_took_over() {
    let schema = PgSchema::new();
    let dir = tempfile::tempdir().unwrap();
    let a = node(&schema, &dir.path().join("a"), &[("loop", looping())], "", 2);
    let b = node(&schema, &dir.path().join("b"), &[("loop", looping())], "", 2);
    for n in 0..5 {
        common::start(&a, "loop", &format!("l{n}"), json!({"i": 0}));
    }
    std::thread::sleep(Duration::from_millis(500));
    a.signal("STOP");
    // B takes A's executions once A's lease has run out.
    wait_until("B owns A's executions", Duration::from_secs(20), || {
        schema.sql("SELECT count(*) FROM executions WHERE owner LIKE '%/b/state'") == "5"
            || schema.sql("SELECT count(*) FROM executions WHERE status = 'SUCCEEDED'") == "5"
    });
    a.signal("CONT");
    wait_until("every loop ended", Duration::from_secs(60), || statuses(&schema) == "SUCCEEDED=5");
    assert_eq!(b.executions("loop").len(), 5);
    assert_eq!(broken_histories(&schema), "");
    // Each execution counted 1..12 once, in order: no step of A's landed among B's.
    let counts = schema.sql(
        "SELECT string_agg(c, ';' ORDER BY arn) FROM (SELECT x.arn, string_agg(
             (v.event::json->'stateExitedEventDetails'->>'output')::json->>'i', ',' ORDER BY v.id) c
           FROM executions x JOIN events v ON v.execution = x.seq
           WHERE v.event::json->>'type' = 'PassStateExited' GROUP BY x.arn) s",
    );
    let one: Vec<String> = (1..=12).map(|i| i.to_string()).collect();
    let want = vec![one.join(","); 5].join(";");
    assert_eq!(counts, want);
    // A came back: it found its lease gone (from its renewal, or from a refused commit
    // first), took a new one, and runs new work; B counts what it took.
    wait_until("A sees its lease lost", Duration::from_secs(10), || {
        a.metric("stepgate_leases_lost_total") >= 1.0
    });
    assert_eq!(b.metric("stepgate_executions_taken_over_total"), 5.0);
    let arn = common::start(&a, "loop", "after", json!({"i": 10}));
    common::wait_for_status(&a, &arn, "SUCCEEDED", Duration::from_secs(20));
}

#[test]
fn a_schedule_fires_once_per_tick_across_three_daemons() {
    let schema = PgSchema::new();
    let dir = tempfile::tempdir().unwrap();
    let pass = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    let schedule =
        "[[triggers.schedule]]\nname = \"every\"\nexpression = \"rate(1 second)\"\nworkflow = \"tick\"\n";
    let daemons: Vec<Daemon> = (0..3)
        .map(|i| node(&schema, &dir.path().join(format!("d{i}")), &[("tick", pass.clone())], schedule, 3))
        .collect();
    std::thread::sleep(Duration::from_secs(60));
    let fired: f64 = daemons
        .iter()
        .map(|d| d.metric("stepgate_trigger_events_total{kind=\"schedule\",trigger=\"every\"}"))
        .sum();
    let duplicates: f64 = daemons
        .iter()
        .map(|d| d.metric("stepgate_trigger_duplicates_total{kind=\"schedule\",trigger=\"every\"}"))
        .sum();
    // The database's record: one tick row per tick fired and one execution named after each,
    // read in one statement (one snapshot: read one after the other, a tick that fired
    // between the two reads showed its execution without its row). The newest tick may sit
    // between its claim and its start while this looks.
    let record = schema.sql(
        "SELECT coalesce((SELECT string_agg(tick::text, ',' ORDER BY tick) FROM schedule_ticks \
         WHERE schedule = 'every'), '') || '|' || coalesce((SELECT string_agg(name, ',' ORDER BY name) FROM executions), '')",
    );
    let (ticks, names) = record.split_once('|').expect("ticks and executions");
    let ticks: Vec<String> = ticks
        .split(',')
        .map(|t| {
            let t = chrono::DateTime::from_timestamp_nanos(t.parse().unwrap());
            format!("every-{}", t.format("%Y%m%dT%H%M%SZ"))
        })
        .collect();
    let names: Vec<String> = names.split(',').map(str::to_string).collect();
    eprintln!("{fired} ticks fired, {} tick rows, {} executions", ticks.len(), names.len());
    assert!((57.0..=62.0).contains(&fired), "{fired} ticks in a minute");
    assert_eq!(duplicates, 0.0, "a tick fired on two daemons");
    let settled = ticks.len() - 1;
    assert!(
        names.len() == settled || names.len() == ticks.len(),
        "{} executions for {} ticks",
        names.len(),
        ticks.len()
    );
    assert_eq!(names[..settled], ticks[..settled], "each tick started exactly its own execution");
}

#[test]
fn mqtt_messages_split_over_two_daemons_lose_nothing_when_one_is_killed() {
    let schema = PgSchema::new();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let pass = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    let rule = |i: usize| {
        format!(
            "{}[[triggers.mqtt]]\nbroker = \"local\"\nsql = \"SELECT * FROM 'readings/+'\"\nworkflow = \"reading\"\nqos = 1\n\
             execution_name = \"concat('r-', id)\"\nshared_group = \"gateways\"\n",
            broker.config("local").replace("stepgate-test-local", &format!("gw-{i}"))
        )
    };
    let dirs = [dir.path().join("a"), dir.path().join("b")];
    let mut a = node(&schema, &dirs[0], &[("reading", pass.clone())], &rule(0), 3);
    let b = node(&schema, &dirs[1], &[("reading", pass.clone())], &rule(1), 3);
    a.wait_for_health("connected", Duration::from_secs(10));
    b.wait_for_health("connected", Duration::from_secs(10));
    let total = 1000;
    let payloads: Vec<String> = (0..total).map(|n| json!({"id": n}).to_string()).collect();
    broker.publish("readings/1", 1, &payloads[..total / 2]);
    // One daemon dies with messages taken from the broker and not yet acknowledged.
    a.signal("KILL");
    let _ = a.wait_exit(Duration::from_secs(10));
    broker.publish("readings/2", 1, &payloads[total / 2..]);
    // The killed daemon comes back under its name: its session's messages reach it.
    a = node(&schema, &dirs[0], &[("reading", pass.clone())], &rule(0), 3);
    wait_until("every message started its execution", Duration::from_secs(60), || {
        schema.sql("SELECT count(DISTINCT name) FROM executions") == total.to_string()
    });
    let by_a = a.metric("stepgate_trigger_executions_started_total{kind=\"mqtt\",trigger=\"mqtt-0\"}");
    let by_b = b.metric("stepgate_trigger_executions_started_total{kind=\"mqtt\",trigger=\"mqtt-0\"}");
    eprintln!("after the restart, a started {by_a}, b started {by_b}");
    assert!(by_b > 0.0 && by_b < total as f64, "the broker did not split the messages: b started {by_b}");
}

#[test]
fn a_state_machine_created_through_one_daemon_runs_through_another_and_tokens_and_stops_cross() {
    let schema = PgSchema::new();
    let dir = tempfile::tempdir().unwrap();
    let a = node(&schema, &dir.path().join("a"), &[], "", 3);
    let b = node(&schema, &dir.path().join("b"), &[], "", 3);
    let role = "arn:aws:iam::123456789012:role/r";
    // Created through A, started through B at once.
    let pass = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "made on a", "End": true}}});
    let (status, r) = a
        .call("CreateStateMachine", json!({"name": "made", "definition": pass.to_string(), "roleArn": role}));
    assert_eq!(status, 200, "{r}");
    let arn = common::start(&b, "made", "on-b", json!({}));
    let out = common::wait_for_status(&b, &arn, "SUCCEEDED", Duration::from_secs(10));
    assert_eq!(out["output"], json!("\"made on a\""));
    let (status, r) = a.call("DescribeExecution", json!({"executionArn": arn}));
    assert_eq!((status, r["status"].as_str()), (200, Some("SUCCEEDED")));

    // An execution that A runs in memory (one branch naps) waits on an activity's worker; the
    // worker polls B, and its SendTaskSuccess goes through B too.
    let (status, r) = a.call("CreateActivity", json!({"name": "work"}));
    assert_eq!(status, 200, "{r}");
    let activity = r["activityArn"].as_str().unwrap().to_string();
    let both = json!({"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 5, "End": true}}},
        {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": activity, "End": true}}}
    ]}}});
    let (status, r) = a
        .call("CreateStateMachine", json!({"name": "both", "definition": both.to_string(), "roleArn": role}));
    assert_eq!(status, 200, "{r}");
    let arn = common::start(&a, "both", "crossed", json!({"job": 7}));
    let (status, task) = b.call("GetActivityTask", json!({"activityArn": activity, "workerName": "w"}));
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["input"], json!("{\"job\":7}"));
    let owner = schema.sql(&format!("SELECT owner FROM executions WHERE arn = '{arn}'"));
    assert!(owner.ends_with("/a/state"), "the execution left A: {owner}");
    let (status, r) =
        b.call("SendTaskSuccess", json!({"taskToken": task["taskToken"], "output": "{\"done\":7}"}));
    assert_eq!(status, 200, "{r}");
    let out = common::wait_for_status(&b, &arn, "SUCCEEDED", Duration::from_secs(20));
    assert_eq!(out["output"], json!("[{\"job\":7},{\"done\":7}]"));
    // The same token again: the Task has closed, as AWS answers.
    let (status, r) = b.call("SendTaskSuccess", json!({"taskToken": task["taskToken"], "output": "{}"}));
    assert_eq!((status, r["__type"].as_str()), (400, Some("TaskTimedOut")), "{r}");

    // StopExecution through B stops what A runs.
    let arn = common::start(&a, "both", "stopped", json!({}));
    std::thread::sleep(Duration::from_millis(300));
    let (status, r) =
        b.call("StopExecution", json!({"executionArn": arn, "error": "Halt", "cause": "from b"}));
    assert_eq!(status, 200, "{r}");
    let out = common::wait_for_status(&a, &arn, "ABORTED", Duration::from_secs(10));
    assert_eq!(out["error"], json!("Halt"));
    let _ = ACCOUNT_ARN;
}

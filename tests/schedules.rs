//! Schedules (`[[triggers.schedule]]`) end to end on the real clock: a `rate(2 seconds)`
//! schedule starts one execution per tick, named after the schedule and the tick, with
//! EventBridge Scheduler's placeholders filled in; no tick fires twice across a restart
//! (clean or SIGKILL), and ticks missed while the daemon was down are skipped or, with
//! `missed = "last"`, the latest of them runs. The calendar rules (cron, L, W, #, years,
//! daylight saving in Europe/Dublin and America/New_York) are table tests of
//! `src/triggers/schedule_expr.rs` on a controlled clock.

mod common;

use chrono::{DateTime, NaiveDateTime, Utc};
use common::Daemon;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn echo(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    std::fs::write(dir.join("workflows").join(format!("{name}.asl.json")), def.to_string()).unwrap();
}

/// The tick an execution of `schedule` is named after.
fn tick_of(schedule: &str, e: &Value) -> DateTime<Utc> {
    let name = e["name"].as_str().unwrap();
    let t = name.strip_prefix(&format!("{schedule}-")).unwrap_or_else(|| panic!("{name}"));
    NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").unwrap().and_utc()
}

/// The ticks `schedule` has fired so far, in order.
fn ticks(d: &Daemon, workflow: &str, schedule: &str) -> Vec<DateTime<Utc>> {
    let mut t: Vec<DateTime<Utc>> = d.executions(workflow).iter().map(|e| tick_of(schedule, e)).collect();
    t.sort();
    t
}

fn wait_for_ticks(d: &Daemon, workflow: &str, schedule: &str, n: usize) -> Vec<DateTime<Utc>> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let t = ticks(d, workflow, schedule);
        if t.len() >= n {
            return t;
        }
        assert!(Instant::now() < until, "{schedule}: {} of {n} ticks", t.len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

const EVERY_2S: &str = r#"
[[triggers.schedule]]
name = "tick"
expression = "rate(2 seconds)"
workflow = "poll"
input = { at = "<aws.scheduler.scheduled-time>", schedule = "<aws.scheduler.schedule-arn>", id = "<aws.scheduler.execution-id>" }
"#;

#[test]
fn a_rate_schedule_starts_one_execution_per_tick_and_none_twice_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    echo(dir.path(), "poll");
    let d = Daemon::start(dir.path(), EVERY_2S, &[]);
    let first = wait_for_ticks(&d, "poll", "tick", 2);
    // Ticks are the multiples of 2 s since the epoch, one apart.
    assert_eq!(first[0].timestamp() % 2, 0);
    assert_eq!(first[1] - first[0], chrono::Duration::seconds(2));
    let e = d.executions("poll").into_iter().find(|e| tick_of("tick", e) == first[0]).unwrap();
    let input: Value =
        serde_json::from_str(d.describe(e["executionArn"].as_str().unwrap())["input"].as_str().unwrap())
            .unwrap();
    assert_eq!(
        input,
        json!({
            "at": first[0].format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "schedule": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/tick",
            "id": e["name"],
        })
    );
    // SIGKILL right after a tick: the restart goes on after the stored tick.
    let before = ticks(&d, "poll", "tick").len();
    while ticks(&d, "poll", "tick").len() == before {
        std::thread::sleep(Duration::from_millis(20));
    }
    d.signal("KILL");
    drop(d);
    let d = Daemon::start(dir.path(), EVERY_2S, &[]);
    let n = ticks(&d, "poll", "tick").len();
    let after = wait_for_ticks(&d, "poll", "tick", n + 2);
    // A clean stop and start between two ticks.
    let mut d = d;
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success());
    drop(d);
    let d = Daemon::start(dir.path(), EVERY_2S, &[]);
    let last = wait_for_ticks(&d, "poll", "tick", after.len() + 2);
    // Never a tick twice (a second start of a tick would be the same execution, counted as a
    // duplicate), and never one off the 2 s grid.
    assert_eq!(d.metric("stepgate_trigger_duplicates_total{kind=\"schedule\",trigger=\"tick\"}"), 0.0);
    for w in last.windows(2) {
        assert!(w[1] > w[0], "{last:?}");
        assert_eq!((w[1] - w[0]).num_seconds() % 2, 0, "{last:?}");
    }
}

#[test]
fn ticks_missed_while_down_are_skipped_or_the_last_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    echo(dir.path(), "skipper");
    echo(dir.path(), "catcher");
    let config = r#"
[[triggers.schedule]]
name = "skip"
expression = "rate(2 seconds)"
workflow = "skipper"

[[triggers.schedule]]
name = "last"
expression = "rate(2 seconds)"
workflow = "catcher"
missed = "last"
"#;
    let mut d = Daemon::start(dir.path(), config, &[]);
    wait_for_ticks(&d, "skipper", "skip", 1);
    wait_for_ticks(&d, "catcher", "last", 1);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success());
    drop(d);
    let stopped = Utc::now();
    std::thread::sleep(Duration::from_secs(5));
    let restarted = Utc::now();
    let d = Daemon::start(dir.path(), config, &[]);
    let n = ticks(&d, "catcher", "last").len();
    let caught = wait_for_ticks(&d, "catcher", "last", n.max(2));
    let missed: Vec<_> = caught.iter().filter(|t| **t > stopped && **t <= restarted).collect();
    assert_eq!(missed.len(), 1, "the latest missed tick ran, once: {caught:?}");
    assert!(restarted - *missed[0] <= chrono::Duration::seconds(2), "it is the latest: {missed:?}");
    wait_for_ticks(&d, "skipper", "skip", 2);
    let skipped = ticks(&d, "skipper", "skip");
    assert!(
        skipped.iter().all(|t| *t <= stopped || *t > restarted),
        "no tick of the downtime ran: {skipped:?} (down {stopped} to {restarted})"
    );
}

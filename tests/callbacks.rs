//! Task states that wait for the world, driven through boto3 as users drive AWS: a
//! `.waitForTaskToken` callback completed after the daemon was killed and restarted,
//! heartbeats that keep a Task alive and their absence that times it out, a Map of a
//! hundred callbacks parked and completed in random order, a token sent several times at
//! once, a stop during a callback, and activities served to a boto3 worker (including one
//! that dies).

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::{
    callback_task, hand_over, history_types, python_function, start, token, wait_for_status, workflows,
    Daemon, ACCOUNT_ARN,
};

/// boto3's SendTask* calls; prints what each answered (`ok` or the error code).
const SEND: &str = r#"
import json, sys, boto3
sfn = boto3.client("stepfunctions", endpoint_url=sys.argv[1])
out = []
for call in json.loads(sys.argv[2]):
    try:
        op = call.pop("op")
        getattr(sfn, op)(**call)
        out.append("ok")
    except sfn.exceptions.ClientError as e:
        out.append(e.response["Error"]["Code"])
print(json.dumps(out))
"#;

fn send(d: &Daemon, calls: Value) -> Value {
    d.boto3(SEND, &[&calls.to_string()])
}

#[test]
fn a_callback_completes_after_a_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let functions = hand_over(dir.path());
    let def = json!({
        "StartAt": "Ask",
        "States": {
            "Ask": callback_task(json!({"ResultPath": "$.answer", "Next": "Done"})),
            "Done": {"Type": "Pass", "End": true}
        }
    });
    workflows(dir.path(), &[("ask", def)]);
    let d = Daemon::start(dir.path(), &functions, &[]);
    let arn = start(&d, "ask", "one", json!({"n": 1}));
    let t = token(dir.path(), "1", Duration::from_secs(20));
    assert!(t.len() <= 2048, "a token is at most 2,048 characters: {}", t.len());
    // Handed over and parked: nothing of it is in memory.
    let until = Instant::now() + Duration::from_secs(10);
    while d.metric("stepgate_executions_parked") < 1.0 {
        assert!(Instant::now() < until, "the execution never parked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut d = d;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let dir_path = d.dir.clone();
    drop(d);
    let d = Daemon::start(&dir_path, &functions, &[]);
    let answers = send(
        &d,
        json!([
            {"op": "send_task_success", "taskToken": t, "output": "{\"yes\": true}"},
            // A token is valid once.
            {"op": "send_task_success", "taskToken": t, "output": "{}"},
            {"op": "send_task_heartbeat", "taskToken": t},
            {"op": "send_task_failure", "taskToken": "not-a-token", "error": "E"},
            {"op": "send_task_success", "taskToken": t, "output": "not json"},
        ]),
    );
    assert_eq!(answers, json!(["ok", "TaskTimedOut", "TaskTimedOut", "InvalidToken", "InvalidOutput"]));
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    let output: Value = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, json!({"n": 1, "answer": {"yes": true}}));
    let types = history_types(&d, &arn);
    let at = types.iter().position(|t| t == "TaskSubmitted").expect("a TaskSubmitted event");
    assert_eq!(&types[at - 2..=at + 1], ["TaskScheduled", "TaskStarted", "TaskSubmitted", "TaskSucceeded"]);
}

#[test]
fn heartbeats_keep_a_task_alive_and_their_absence_times_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let functions = hand_over(dir.path());
    let def = json!({
        "StartAt": "Ask",
        "States": {
            "Ask": callback_task(json!({"HeartbeatSeconds": 2, "TimeoutSeconds": 60, "End": true}))
        }
    });
    let caught = json!({
        "StartAt": "Ask",
        "States": {
            "Ask": callback_task(json!({
                "HeartbeatSeconds": 1,
                "Catch": [{"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": true
            })),
            "Caught": {"Type": "Pass", "End": true}
        }
    });
    workflows(dir.path(), &[("beat", def), ("caught", caught)]);
    let d = Daemon::start(dir.path(), &functions, &[]);
    let alive = start(&d, "beat", "alive", json!({"n": "alive"}));
    let silent = start(&d, "beat", "silent", json!({"n": "silent"}));
    let catches = start(&d, "caught", "catches", json!({"n": "catches"}));
    let t = token(dir.path(), "alive", Duration::from_secs(20));
    // Five seconds of heartbeats, more than twice HeartbeatSeconds.
    let script = r#"
import json, sys, time, boto3
sfn = boto3.client("stepfunctions", endpoint_url=sys.argv[1])
for _ in range(10):
    sfn.send_task_heartbeat(taskToken=sys.argv[2])
    time.sleep(0.5)
sfn.send_task_success(taskToken=sys.argv[2], output='"alive"')
print(json.dumps("done"))
"#;
    assert_eq!(d.boto3(script, &[&t]), json!("done"));
    let e = wait_for_status(&d, &alive, "SUCCEEDED", Duration::from_secs(10));
    assert_eq!(e["output"], "\"alive\"");
    // No heartbeat: AWS fails the Task with States.Timeout, its event TaskTimedOut.
    let e = wait_for_status(&d, &silent, "FAILED", Duration::from_secs(10));
    assert_eq!(e["error"], "States.Timeout", "{e}");
    assert!(e.get("cause").is_none(), "{e}");
    assert!(history_types(&d, &silent).contains(&"TaskTimedOut".to_string()));
    let silent_token = token(dir.path(), "silent", Duration::from_secs(1));
    assert_eq!(
        send(&d, json!([{"op": "send_task_heartbeat", "taskToken": silent_token}])),
        json!(["TaskTimedOut"])
    );
    // ErrorEquals States.HeartbeatTimeout catches it; the error is States.Timeout.
    let e = wait_for_status(&d, &catches, "SUCCEEDED", Duration::from_secs(10));
    let output: Value = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["error"]["Error"], "States.Timeout", "{output}");
}

/// A token sent several times at once: one send completes the Task, and every other is
/// `TaskTimedOut`, also those that reach the execution while it is ending (they were left
/// unanswered, and read as an internal error, until its end was stored).
#[test]
fn a_token_sent_again_as_its_execution_ends_is_task_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let functions = hand_over(dir.path());
    let def = json!({"StartAt": "Ask", "States": {"Ask": callback_task(json!({"End": true}))}});
    workflows(dir.path(), &[("ask", def)]);
    let d = Daemon::start(dir.path(), &functions, &[]);
    for n in 0..12 {
        let arn = start(&d, "ask", &format!("e{n}"), json!({"n": n}));
        let t = token(dir.path(), &n.to_string(), Duration::from_secs(20));
        let body = json!({"taskToken": t, "output": "{}"});
        let answers: Vec<String> = std::thread::scope(|s| {
            let sends: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| match d.call("SendTaskSuccess", body.clone()) {
                        (200, _) => "ok".to_string(),
                        (_, e) => e["__type"].as_str().unwrap_or("?").rsplit('#').next().unwrap().to_string(),
                    })
                })
                .collect();
            sends.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut answers = answers;
        answers.sort();
        assert_eq!(answers, ["TaskTimedOut", "TaskTimedOut", "TaskTimedOut", "ok"], "execution {n}");
        wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    }
}

#[test]
fn a_map_of_a_hundred_callbacks_parks_and_completes_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let functions = hand_over(dir.path());
    let def = json!({
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"n.$": "$$.Map.Item.Value"},
                "ItemProcessor": {"StartAt": "Ask", "States": {"Ask": callback_task(json!({"End": true}))}},
                "End": true
            }
        }
    });
    workflows(dir.path(), &[("many", def)]);
    let d = Daemon::start(dir.path(), &functions, &[]);
    let n = 100;
    let arn = start(&d, "many", "hundred", json!({"items": (0..n).collect::<Vec<_>>()}));
    let mut tokens: Vec<(u64, String)> =
        (0..n).map(|i| (i, token(dir.path(), &i.to_string(), Duration::from_secs(60)))).collect();
    let until = Instant::now() + Duration::from_secs(10);
    while d.metric("stepgate_executions_parked") < 1.0 {
        assert!(Instant::now() < until, "the Map never parked");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("a Map of {n} callbacks parked: the daemon's resident memory is {} KiB", rss_kib(&d));
    // A fixed shuffle: the answers come in an order unlike the items'.
    tokens.sort_by_key(|(i, _)| (i * 37) % n);
    let calls: Vec<Value> = tokens
        .iter()
        .map(|(i, t)| json!({"op": "send_task_success", "taskToken": t, "output": json!({"i": i}).to_string()}))
        .collect();
    let answers = send(&d, Value::Array(calls));
    assert!(answers.as_array().unwrap().iter().all(|a| a == "ok"), "{answers}");
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(30));
    let output: Value = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, Value::Array((0..n).map(|i| json!({"i": i})).collect()));
}

/// The daemon's resident memory.
fn rss_kib(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn stop_ends_a_callback_wait_and_cancels_a_running_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut functions = hand_over(dir.path());
    let pid_file = dir.path().join("slow.pid");
    functions.push_str(&python_function(
        dir.path(),
        "slow",
        &format!(
            "import os,time\nopen({:?},'w').write(str(os.getpid()))\ntime.sleep(60)\n",
            pid_file.display().to_string()
        ),
    ));
    let slow = json!({
        "StartAt": "Slow",
        "States": {"Slow": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:slow", "End": true}}
    });
    let ask = json!({"StartAt": "Ask", "States": {"Ask": callback_task(json!({"End": true}))}});
    workflows(dir.path(), &[("ask", ask), ("slow", slow)]);
    let d = Daemon::start(dir.path(), &functions, &[]);
    let waiting = start(&d, "ask", "waiting", json!({"n": "waiting"}));
    let t = token(dir.path(), "waiting", Duration::from_secs(20));
    let (status, r) =
        d.call("StopExecution", json!({"executionArn": waiting, "error": "Enough", "cause": "no answer"}));
    assert_eq!(status, 200, "{r}");
    let e = d.describe(&waiting);
    assert_eq!((e["status"].as_str(), e["error"].as_str()), (Some("ABORTED"), Some("Enough")), "{e}");
    assert_eq!(
        send(&d, json!([{"op": "send_task_success", "taskToken": t, "output": "{}"}])),
        json!(["TaskTimedOut"])
    );

    let running = start(&d, "slow", "running", json!({}));
    let until = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Ok(p) = std::fs::read_to_string(&pid_file) {
            break p;
        }
        assert!(Instant::now() < until, "the slow function never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (status, r) = d.call("StopExecution", json!({"executionArn": running}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(d.describe(&running)["status"], "ABORTED");
    let types = history_types(&d, &running);
    assert_eq!(types.last().map(String::as_str), Some("ExecutionAborted"), "{types:?}");
    // The function's process is gone with the call.
    let until = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < until, "the function's process {pid} outlived the stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A boto3 worker: the first poll takes a task and dies with it (no heartbeat, no answer);
/// the Task times out on its heartbeat, Retry schedules it again, and a second worker takes
/// it, heartbeats and answers. Three tasks and three pollers at once: each task goes to one.
#[test]
fn activities_serve_a_boto3_worker_including_one_that_dies() {
    let dir = tempfile::tempdir().unwrap();
    let activity = format!("{ACCOUNT_ARN}:activity:resize");
    let def = json!({
        "StartAt": "Resize",
        "States": {
            "Resize": {
                "Type": "Task",
                "Resource": activity,
                "HeartbeatSeconds": 2,
                "TimeoutSeconds": 60,
                "Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 2}],
                "End": true
            }
        }
    });
    workflows(dir.path(), &[("resize", def)]);
    let d = Daemon::start(dir.path(), "", &[]);
    let setup = r#"
import json, sys, boto3
sfn = boto3.client("stepfunctions", endpoint_url=sys.argv[1])
a = sfn.create_activity(name="resize")
again = sfn.create_activity(name="resize")
other = sfn.create_activity(name="archive")["activityArn"]
described = sfn.describe_activity(activityArn=a["activityArn"])
listed = [x["name"] for x in sfn.list_activities()["activities"]]
sfn.delete_activity(activityArn=other)
try:
    sfn.describe_activity(activityArn=other)
    gone = "still there"
except sfn.exceptions.ActivityDoesNotExist:
    gone = "ActivityDoesNotExist"
print(json.dumps({"arn": a["activityArn"], "same": again["activityArn"] == a["activityArn"],
                  "name": described["name"], "listed": listed, "gone": gone}))
"#;
    let v = d.boto3(setup, &[]);
    assert_eq!(
        v,
        json!({"arn": activity, "same": true, "name": "resize", "listed": ["archive", "resize"], "gone": "ActivityDoesNotExist"})
    );
    let arn = start(&d, "resize", "photo", json!({"n": 7}));
    let worker = r#"
import json, sys, time, boto3
from botocore.config import Config
# GetActivityTask holds the request up to 60 seconds: the client must wait longer.
sfn = boto3.client("stepfunctions", endpoint_url=sys.argv[1], config=Config(read_timeout=70))
activity = sys.argv[2]
first = sfn.get_activity_task(activityArn=activity, workerName="dies")
# This worker dies: no heartbeat, no answer. The Task times out and Retry schedules it again.
second = sfn.get_activity_task(activityArn=activity, workerName="lives")
for _ in range(3):
    sfn.send_task_heartbeat(taskToken=second["taskToken"])
    time.sleep(1)
n = json.loads(second["input"])["n"]
sfn.send_task_success(taskToken=second["taskToken"], output=json.dumps({"resized": n}))
try:
    sfn.send_task_success(taskToken=first["taskToken"], output="{}")
    late = "ok"
except sfn.exceptions.TaskTimedOut:
    late = "TaskTimedOut"
print(json.dumps({"same_input": first["input"] == second["input"],
                  "new_token": first["taskToken"] != second["taskToken"], "late": late}))
"#;
    let v = d.boto3(worker, &[&activity]);
    assert_eq!(v, json!({"same_input": true, "new_token": true, "late": "TaskTimedOut"}));
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    assert_eq!(e["output"], "{\"resized\":7}");
    let (_, h) = d.call("GetExecutionHistory", json!({"executionArn": arn, "maxResults": 1000}));
    let events = h["events"].as_array().unwrap();
    let kinds: Vec<&str> =
        events.iter().map(|e| e["type"].as_str().unwrap()).filter(|t| t.starts_with("Activity")).collect();
    assert_eq!(
        kinds,
        [
            "ActivityScheduled",
            "ActivityStarted",
            "ActivityTimedOut",
            "ActivityScheduled",
            "ActivityStarted",
            "ActivitySucceeded"
        ]
    );
    let workers: Vec<&str> =
        events.iter().filter_map(|e| e["activityStartedEventDetails"]["workerName"].as_str()).collect();
    assert_eq!(workers, ["dies", "lives"]);
    let scheduled = events.iter().find(|e| e["type"] == "ActivityScheduled").unwrap();
    assert_eq!(scheduled["activityScheduledEventDetails"]["resource"], activity.as_str());
    assert_eq!(scheduled["activityScheduledEventDetails"]["heartbeatInSeconds"], 2);

    // Three tasks, three pollers at once: each task to exactly one of them.
    let arns: Vec<String> =
        (0..3).map(|i| start(&d, "resize", &format!("batch{i}"), json!({"n": i}))).collect();
    let pollers = r#"
import json, sys, threading, boto3
from botocore.config import Config
got = []
def poll():
    sfn = boto3.client("stepfunctions", endpoint_url=sys.argv[1], config=Config(read_timeout=70))
    t = sfn.get_activity_task(activityArn=sys.argv[2], workerName=threading.current_thread().name)
    got.append(t)
    sfn.send_task_success(taskToken=t["taskToken"], output=t["input"])
threads = [threading.Thread(target=poll) for _ in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(sorted(json.loads(t["input"])["n"] for t in got)))
"#;
    assert_eq!(d.boto3(pollers, &[&activity]), json!([0, 1, 2]));
    for (i, arn) in arns.iter().enumerate() {
        let e = wait_for_status(&d, arn, "SUCCEEDED", Duration::from_secs(20));
        assert_eq!(e["output"], json!({"n": i}).to_string());
    }
}

/// A long poll with nothing to hand out ends when the daemon shuts down, with no token, and
/// the daemon exits cleanly.
#[test]
fn shutdown_ends_the_workers_long_polls() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", &[]);
    let (status, a) = d.call("CreateActivity", json!({"name": "idle"}));
    assert_eq!(status, 200, "{a}");
    let endpoint = d.addr.clone();
    let arn = a["activityArn"].as_str().unwrap().to_string();
    let poll = std::thread::spawn(move || {
        let began = Instant::now();
        let body = json!({"activityArn": arn, "workerName": "w"}).to_string();
        let headers = [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("X-Amz-Target", "AWSStepFunctions.GetActivityTask"),
        ];
        let (status, _, body) = common::http(&endpoint, "POST", "/", &headers, body.as_bytes());
        (status, body, began.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    d.signal("TERM");
    let (status, body, took) = poll.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert!(took < Duration::from_secs(10), "the poll took {took:?}");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

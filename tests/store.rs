//! The store contract, run against every implementation: the same behavioural suite for
//! `MemoryStore`, `SqliteStore` and `PostgresStore` (on the PostgreSQL server the tests use,
//! each test in a schema of its own), then what only the durable ones promise (surviving a
//! reopen, group commit under many concurrent committers, visibility once answered) and what
//! only the shared one does (leases and fencing, claims, ticks, messages between daemons).

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use stepgate::store::memory::MemoryStore;
#[cfg(feature = "postgres")]
use stepgate::store::postgres::PostgresStore;
use stepgate::store::sqlite::SqliteStore;
use stepgate::store::{
    ActivityRecord, Created, Event, ExecutionRecord, ExecutionStatus, Frame, MachineType, ParentLink,
    StateMachineRecord, Store, StoreError, Write,
};

const SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:";
const EX: &str = "arn:aws:states:us-east-1:123456789012:execution:";

fn t0() -> DateTime<Utc> {
    // Sub-second nanos on purpose: a store must hand back exactly the time it was given.
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + Duration::nanoseconds(123_456_789)
}

fn machine(name: &str) -> StateMachineRecord {
    StateMachineRecord {
        name: name.into(),
        arn: format!("{SM}{name}"),
        definition: r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#.into(),
        machine_type: MachineType::Standard,
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        created: t0(),
        updated: t0(),
        tags: BTreeMap::from([("team".to_string(), "edge".to_string())]),
        revision: 1,
    }
}

fn execution(machine: &str, name: &str, start: DateTime<Utc>) -> ExecutionRecord {
    ExecutionRecord {
        arn: format!("{EX}{machine}:{name}"),
        name: name.into(),
        state_machine_arn: format!("{SM}{machine}"),
        state_machine_name: machine.into(),
        status: ExecutionStatus::Running,
        input: r#"{"n":1}"#.into(),
        output: None,
        error: None,
        cause: None,
        start,
        stop: None,
        redrive_count: 0,
        parent: None,
    }
}

fn event(arn: &str, id: u64) -> Write {
    Write::Event {
        execution_arn: arn.into(),
        event: Event {
            id,
            previous_event_id: id - 1,
            timestamp: t0(),
            kind: "PassStateEntered",
            details: None,
        },
    }
}

fn frame(arn: &str, path: &str, data: Value) -> Write {
    Write::Frame(Frame { execution_arn: arn.into(), path: path.into(), data })
}

fn finish(arn: &str, status: ExecutionStatus, stop: DateTime<Utc>) -> Write {
    Write::Finish {
        execution_arn: arn.into(),
        status,
        output: Some(r#"{"done":true}"#.into()),
        error: None,
        cause: None,
        stop,
    }
}

fn ids(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["id"].as_u64().unwrap()).collect()
}

fn paths(store: &dyn Store, arn: &str) -> Vec<String> {
    store.frames(arn).unwrap().into_iter().map(|f| f.path).collect()
}

async fn create(store: &dyn Store, e: &ExecutionRecord) {
    let created = store.create_execution(e.clone(), vec![]).await.unwrap();
    assert_eq!(created, Created::New);
}

async fn state_machine_crud(store: &dyn Store) {
    store.put_state_machine(&machine("zeta")).unwrap();
    store.put_state_machine(&machine("alpha")).unwrap();
    assert_eq!(store.get_state_machine(&format!("{SM}zeta")).unwrap(), Some(machine("zeta")));
    assert_eq!(store.get_state_machine(&format!("{SM}nope")).unwrap(), None);
    let names: Vec<String> = store.list_state_machines().unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["alpha", "zeta"]);

    let mut updated = machine("zeta");
    updated.definition = r#"{"StartAt":"B","States":{"B":{"Type":"Succeed"}}}"#.into();
    updated.revision = 2;
    updated.updated = t0() + Duration::seconds(5);
    store.put_state_machine(&updated).unwrap();
    assert_eq!(store.get_state_machine(&updated.arn).unwrap(), Some(updated.clone()));
    assert_eq!(store.list_state_machines().unwrap().len(), 2);

    assert!(store.delete_state_machine(&updated.arn).unwrap());
    assert!(!store.delete_state_machine(&updated.arn).unwrap());
    assert_eq!(store.get_state_machine(&updated.arn).unwrap(), None);
    assert_eq!(store.list_state_machines().unwrap(), vec![machine("alpha")]);
}

async fn create_is_idempotent(store: &dyn Store) {
    let e = execution("m", "once", t0());
    let first = store.create_execution(e.clone(), vec![event(&e.arn, 1), frame(&e.arn, "", json!(1))]).await;
    assert_eq!(first.unwrap(), Created::New);

    let mut again = e.clone();
    again.input = r#"{"other":true}"#.into();
    let second = store.create_execution(again, vec![event(&e.arn, 2), frame(&e.arn, "/x.0", json!(2))]).await;
    // The existing record comes back untouched, and the second call's writes are dropped.
    assert_eq!(second.unwrap(), Created::Existing(Box::new(e.clone())));
    assert_eq!(store.last_event_id(&e.arn).unwrap(), 1);
    assert_eq!(paths(store, &e.arn), [""]);
    assert_eq!(store.get_execution(&e.arn).unwrap(), Some(e));
}

async fn commit_and_read_back(store: &dyn Store) {
    let e = execution("m", "run", t0());
    let start = vec![event(&e.arn, 1), frame(&e.arn, "", json!({"state": "A", "input": {"n": 1}}))];
    assert_eq!(store.create_execution(e.clone(), start).await.unwrap(), Created::New);
    assert_eq!(store.get_execution(&e.arn).unwrap(), Some(e.clone()));
    assert_eq!(store.get_execution(&format!("{EX}m:missing")).unwrap(), None);

    store
        .commit(vec![event(&e.arn, 2), event(&e.arn, 3), frame(&e.arn, "", json!({"state": "B"}))])
        .await
        .unwrap();
    store.commit(vec![frame(&e.arn, "/P.0", json!({"branch": 0}))]).await.unwrap();
    assert_eq!(ids(&store.history(&e.arn, 0, 100, false).unwrap()), [1, 2, 3]);
    assert_eq!(
        store.frames(&e.arn).unwrap(),
        vec![
            Frame { execution_arn: e.arn.clone(), path: "".into(), data: json!({"state": "B"}) },
            Frame { execution_arn: e.arn.clone(), path: "/P.0".into(), data: json!({"branch": 0}) },
        ]
    );

    let stop = t0() + Duration::milliseconds(1500);
    store.commit(vec![event(&e.arn, 4), finish(&e.arn, ExecutionStatus::Succeeded, stop)]).await.unwrap();
    let done = store.get_execution(&e.arn).unwrap().unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.output.as_deref(), Some(r#"{"done":true}"#));
    assert_eq!(done.stop, Some(stop));
    assert_eq!(done.start, e.start);
    assert_eq!(store.last_event_id(&e.arn).unwrap(), 4);
    // Finishing leaves the frames for the engine to delete.
    assert_eq!(paths(store, &e.arn), ["", "/P.0"]);

    let failed = execution("m", "fails", t0());
    create(store, &failed).await;
    store
        .commit(vec![Write::Finish {
            execution_arn: failed.arn.clone(),
            status: ExecutionStatus::Failed,
            output: None,
            error: Some("States.TaskFailed".into()),
            cause: Some("boom".into()),
            stop,
        }])
        .await
        .unwrap();
    let failed = store.get_execution(&failed.arn).unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref(), failed.cause.as_deref()),
        (ExecutionStatus::Failed, Some("States.TaskFailed"), Some("boom"))
    );
    assert_eq!(failed.output, None);

    // Events come back as AWS's JSON, exactly, key order included.
    let rich = Event {
        id: 5,
        previous_event_id: 4,
        timestamp: t0(),
        kind: "TaskScheduled",
        details: Some(("taskScheduledEventDetails", json!({"z": 1, "b": [1, "x", null]}).into())),
    };
    store.commit(vec![Write::Event { execution_arn: e.arn.clone(), event: rich.clone() }]).await.unwrap();
    let expected = json!({"timestamp": "2024-05-01T12:00:00.123Z", "type": "TaskScheduled", "id": 5,
        "previousEventId": 4, "taskScheduledEventDetails": {"z": 1, "b": [1, "x", null]}});
    assert_eq!(store.history(&e.arn, 4, 1, false).unwrap(), vec![expected.clone()]);
    assert_eq!(store.history(&e.arn, 4, 1, false).unwrap()[0].to_string(), expected.to_string());
}

async fn history_paging(store: &dyn Store) {
    let e = execution("m", "long", t0());
    create(store, &e).await;
    let other = execution("m", "other", t0());
    create(store, &other).await;
    store.commit((1..=10).map(|i| event(&e.arn, i)).collect()).await.unwrap();
    store.commit(vec![event(&other.arn, 1)]).await.unwrap();

    assert_eq!(ids(&store.history(&e.arn, 0, 4, false).unwrap()), [1, 2, 3, 4]);
    assert_eq!(ids(&store.history(&e.arn, 4, 4, false).unwrap()), [5, 6, 7, 8]);
    assert_eq!(ids(&store.history(&e.arn, 8, 4, false).unwrap()), [9, 10]);
    assert!(store.history(&e.arn, 10, 4, false).unwrap().is_empty());

    assert_eq!(ids(&store.history(&e.arn, u64::MAX, 4, true).unwrap()), [10, 9, 8, 7]);
    assert_eq!(ids(&store.history(&e.arn, 0, 4, true).unwrap()), [10, 9, 8, 7], "0 in reverse is the end");
    assert_eq!(ids(&store.history(&e.arn, 7, 4, true).unwrap()), [6, 5, 4, 3]);
    assert_eq!(ids(&store.history(&e.arn, 3, 4, true).unwrap()), [2, 1]);
    assert!(store.history(&e.arn, 1, 4, true).unwrap().is_empty());

    assert_eq!(store.last_event_id(&e.arn).unwrap(), 10);
    assert_eq!(store.last_event_id(&other.arn).unwrap(), 1);
    assert_eq!(store.last_event_id("arn:none").unwrap(), 0);
    assert!(store.history("arn:none", 0, 10, false).unwrap().is_empty());

    // A crash can leave a gap (events numbered but never stored): new events must follow the
    // last id, not the count, or they would overwrite stored ones.
    store.commit(vec![event(&other.arn, 3)]).await.unwrap();
    assert_eq!(store.last_event_id(&other.arn).unwrap(), 3);
}

async fn list_paging_and_filtering(store: &dyn Store) {
    // Seven executions of "a" one second apart, two more sharing one start time (the ARN
    // breaks the tie), and one of "b" that must never show up in "a"'s listing.
    let mut all = Vec::new();
    for i in 0..7 {
        all.push(execution("a", &format!("e{i}"), t0() + Duration::seconds(i)));
    }
    all.push(execution("a", "tie-x", t0() + Duration::seconds(3)));
    all.push(execution("a", "tie-y", t0() + Duration::seconds(3)));
    for e in &all {
        create(store, e).await;
    }
    create(store, &execution("b", "e0", t0() + Duration::seconds(100))).await;
    for name in ["e1", "e4", "tie-x"] {
        store
            .commit(vec![finish(
                &format!("{EX}a:{name}"),
                ExecutionStatus::Succeeded,
                t0() + Duration::hours(1),
            )])
            .await
            .unwrap();
    }

    let mut expected = all.clone();
    expected.sort_by(|x, y| (y.start, &y.arn).cmp(&(x.start, &x.arn)));
    let expected: Vec<String> = expected.into_iter().map(|e| e.name).collect();
    assert_eq!(expected[..6], ["e6", "e5", "e4", "tie-y", "tie-x", "e3"]);

    let a = format!("{SM}a");
    let (mut seen, mut token, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let (items, next) = store.list_executions(&a, None, token.as_deref(), 4).unwrap();
        assert!(items.len() <= 4);
        seen.extend(items.into_iter().map(|e| e.name));
        pages += 1;
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);

    let (one_page, next) = store.list_executions(&a, None, None, 100).unwrap();
    assert_eq!(one_page.len(), 9);
    assert_eq!(next, None);

    let (done, next) = store.list_executions(&a, Some(ExecutionStatus::Succeeded), None, 2).unwrap();
    assert_eq!(done.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["e4", "tie-x"]);
    let (rest, last) =
        store.list_executions(&a, Some(ExecutionStatus::Succeeded), next.as_deref(), 2).unwrap();
    assert_eq!(rest.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["e1"]);
    assert_eq!(last, None);
    assert!(store.list_executions(&a, Some(ExecutionStatus::Aborted), None, 10).unwrap().0.is_empty());
    let (running, _) = store.list_executions(&a, Some(ExecutionStatus::Running), None, 100).unwrap();
    assert_eq!(running.len(), 6);

    let (b, _) = store.list_executions(&format!("{SM}b"), None, None, 10).unwrap();
    assert_eq!(b.len(), 1);
    assert!(store.list_executions(&format!("{SM}none"), None, None, 10).unwrap().0.is_empty());

    let bad = store.list_executions(&a, None, Some("not a token!"), 10);
    assert!(matches!(bad, Err(StoreError::BadToken(_))), "{bad:?}");
}

async fn delete_frames_by_prefix(store: &dyn Store) {
    let e = execution("m", "frames", t0());
    create(store, &e).await;
    let other = execution("m", "untouched", t0());
    create(store, &other).await;
    let all = [
        "",
        "/3.1",
        "/3.1/Inner.0",
        "/3.1/Inner.0/Deep.2",
        "/3.10",
        "/3.10/Inner.0",
        "/3.11",
        "/3.1_",
        "/3.1%",
        "/3.1.0",
        "/3.2",
    ];
    store.commit(all.iter().map(|p| frame(&e.arn, p, json!(p))).collect()).await.unwrap();
    store.commit(vec![frame(&other.arn, "/3.1", json!(0))]).await.unwrap();

    store
        .commit(vec![Write::DeleteFrames { execution_arn: e.arn.clone(), prefix: "/3.1".into() }])
        .await
        .unwrap();
    let mut left = paths(store, &e.arn);
    left.sort();
    assert_eq!(left, ["", "/3.1%", "/3.1.0", "/3.10", "/3.10/Inner.0", "/3.11", "/3.1_", "/3.2"]);
    assert_eq!(paths(store, &other.arn), ["/3.1"]);

    store
        .commit(vec![Write::DeleteFrames { execution_arn: e.arn.clone(), prefix: "/3.10".into() }])
        .await
        .unwrap();
    let mut left = paths(store, &e.arn);
    left.sort();
    assert_eq!(left, ["", "/3.1%", "/3.1.0", "/3.11", "/3.1_", "/3.2"]);

    // A frame replaced, not duplicated.
    store.commit(vec![frame(&e.arn, "/3.2", json!("new"))]).await.unwrap();
    let f = store.frames(&e.arn).unwrap();
    assert_eq!(
        f.iter().filter(|f| f.path == "/3.2").map(|f| f.data.clone()).collect::<Vec<_>>(),
        [json!("new")]
    );

    store
        .commit(vec![Write::DeleteFrames { execution_arn: e.arn.clone(), prefix: "".into() }])
        .await
        .unwrap();
    assert!(store.frames(&e.arn).unwrap().is_empty());
    assert_eq!(paths(store, &other.arn), ["/3.1"]);
}

async fn purge_finished(store: &dyn Store) {
    let cut = t0() + Duration::days(30);
    let old = execution("m", "old", t0());
    let older = execution("m", "older", t0());
    let recent = execution("m", "recent", t0());
    let running = execution("m", "running", t0());
    for e in [&old, &older, &recent, &running] {
        store
            .create_execution(e.clone(), vec![event(&e.arn, 1), frame(&e.arn, "", json!({}))])
            .await
            .unwrap();
    }
    store
        .commit(vec![
            finish(&old.arn, ExecutionStatus::Succeeded, cut - Duration::seconds(1)),
            finish(&older.arn, ExecutionStatus::Aborted, cut - Duration::days(10)),
            finish(&recent.arn, ExecutionStatus::Failed, cut + Duration::seconds(1)),
        ])
        .await
        .unwrap();

    assert_eq!(store.purge_finished_before(cut).unwrap(), 2);
    for gone in [&old, &older] {
        assert_eq!(store.get_execution(&gone.arn).unwrap(), None);
        assert_eq!(store.last_event_id(&gone.arn).unwrap(), 0);
        assert!(store.frames(&gone.arn).unwrap().is_empty());
    }
    for kept in [&recent, &running] {
        assert!(store.get_execution(&kept.arn).unwrap().is_some());
        assert_eq!(store.last_event_id(&kept.arn).unwrap(), 1);
    }
    let (listed, _) = store.list_executions(&format!("{SM}m"), None, None, 10).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(store.purge_finished_before(cut).unwrap(), 0);
    // A running execution is never purged, however old.
    assert_eq!(store.purge_finished_before(DateTime::<Utc>::MAX_UTC).unwrap(), 1);
    assert!(store.get_execution(&running.arn).unwrap().is_some());
}

async fn running_and_redrive(store: &dyn Store) {
    let a = execution("m", "a", t0() + Duration::seconds(2));
    let b = execution("m", "b", t0());
    let c = execution("n", "c", t0() + Duration::seconds(1));
    for e in [&a, &b, &c] {
        create(store, e).await;
    }
    let names = |s: &dyn Store| s.running().unwrap().into_iter().map(|e| e.name).collect::<Vec<_>>();
    assert_eq!(names(store), ["b", "c", "a"]);

    store.commit(vec![finish(&c.arn, ExecutionStatus::Failed, t0() + Duration::seconds(9))]).await.unwrap();
    assert_eq!(names(store), ["b", "a"]);

    store.commit(vec![Write::Redrive { execution_arn: c.arn.clone() }]).await.unwrap();
    let redriven = store.get_execution(&c.arn).unwrap().unwrap();
    assert_eq!(redriven.status, ExecutionStatus::Running);
    assert_eq!(redriven.redrive_count, 1);
    assert_eq!((redriven.output, redriven.stop), (None, None));
    assert_eq!(names(store), ["b", "c", "a"]);

    // Redriving a running execution changes nothing.
    store.commit(vec![Write::Redrive { execution_arn: c.arn.clone() }]).await.unwrap();
    assert_eq!(store.get_execution(&c.arn).unwrap().unwrap().redrive_count, 1);

    // The first end wins: a task finishing just after StopExecution does not undo the stop.
    store.commit(vec![finish(&b.arn, ExecutionStatus::Aborted, t0() + Duration::seconds(3))]).await.unwrap();
    store
        .commit(vec![finish(&b.arn, ExecutionStatus::Succeeded, t0() + Duration::seconds(4))])
        .await
        .unwrap();
    let b = store.get_execution(&b.arn).unwrap().unwrap();
    assert_eq!((b.status, b.stop), (ExecutionStatus::Aborted, Some(t0() + Duration::seconds(3))));
}

async fn resumes_are_counted_per_place(store: &dyn Store) {
    let e = execution("m", "a", t0());
    create(store, &e).await;
    assert_eq!(store.count_resume(&e.arn, 3).unwrap(), 1);
    assert_eq!(store.count_resume(&e.arn, 3).unwrap(), 2);
    assert_eq!(store.count_resume(&e.arn, 3).unwrap(), 3);
    // Progress starts the count again.
    assert_eq!(store.count_resume(&e.arn, 5).unwrap(), 1);
    assert_eq!(store.count_resume(&e.arn, 5).unwrap(), 2);
    // A redrive is a new run: its first resume is its first.
    store.commit(vec![finish(&e.arn, ExecutionStatus::Failed, t0() + Duration::seconds(1))]).await.unwrap();
    store.commit(vec![Write::Redrive { execution_arn: e.arn.clone() }]).await.unwrap();
    assert_eq!(store.count_resume(&e.arn, 5).unwrap(), 1);
}

async fn definitions_stay_with_their_executions(store: &dyn Store) {
    let a = execution("m", "a", t0());
    let b = execution("m", "b", t0());
    let c = execution("m", "c", t0());
    for e in [&a, &b, &c] {
        create(store, e).await;
    }
    let v1: std::sync::Arc<str> =
        std::sync::Arc::from(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#);
    let v2: std::sync::Arc<str> =
        std::sync::Arc::from(r#"{"StartAt":"B","States":{"B":{"Type":"Pass","End":true}}}"#);
    let def = |e: &ExecutionRecord, hash: &str, text: &std::sync::Arc<str>| Write::Definition {
        execution_arn: e.arn.clone(),
        hash: hash.into(),
        text: text.clone(),
    };
    store.commit(vec![def(&a, "h1", &v1), def(&b, "h1", &v1), def(&c, "h2", &v2)]).await.unwrap();
    let text = |e: &ExecutionRecord| store.definition_of(&e.arn).unwrap().map(|(h, t)| (h, t.to_string()));
    assert_eq!(text(&a), Some(("h1".to_string(), v1.to_string())));
    assert_eq!(text(&b), Some(("h1".to_string(), v1.to_string())));
    assert_eq!(text(&c), Some(("h2".to_string(), v2.to_string())));
    assert_eq!(store.definition_of("arn:none").unwrap(), None);
    // Purged with their executions; the others keep theirs.
    store.commit(vec![finish(&a.arn, ExecutionStatus::Succeeded, t0())]).await.unwrap();
    assert_eq!(store.purge_finished_before(t0() + Duration::seconds(1)).unwrap(), 1);
    assert_eq!(text(&a), None);
    assert_eq!(text(&b), Some(("h1".to_string(), v1.to_string())));
}

async fn writes_to_an_unknown_execution_are_refused_whole(store: &dyn Store) {
    let e = execution("m", "real", t0());
    create(store, &e).await;
    let nope = format!("{EX}m:nope");
    let refused = store.commit(vec![event(&e.arn, 1), event(&nope, 1)]).await;
    assert!(matches!(&refused, Err(e) if e.to_string().contains(&nope)), "{refused:?}");
    // Nothing of a refused commit is kept, not even its writes for a real execution.
    assert_eq!(store.last_event_id(&e.arn).unwrap(), 0);
    for w in [
        frame(&nope, "", json!(1)),
        Write::DeleteFrames { execution_arn: nope.clone(), prefix: "".into() },
        finish(&nope, ExecutionStatus::Succeeded, t0()),
        Write::Redrive { execution_arn: nope.clone() },
    ] {
        assert!(store.commit(vec![w]).await.is_err());
    }

    let f = execution("m", "refused", t0());
    assert!(store.create_execution(f.clone(), vec![event(&f.arn, 1), event(&nope, 1)]).await.is_err());
    assert_eq!(store.get_execution(&f.arn).unwrap(), None);
    assert_eq!(store.last_event_id(&f.arn).unwrap(), 0);
    assert_eq!(store.list_executions(&format!("{SM}m"), None, None, 10).unwrap().0, vec![e.clone()]);

    store.commit(vec![event(&e.arn, 1)]).await.unwrap();
    assert_eq!(store.last_event_id(&e.arn).unwrap(), 1);
}

async fn parked_executions_wait_in_their_own_table(store: &dyn Store) {
    let (a, b, c) = (execution("m", "a", t0()), execution("m", "b", t0()), execution("m", "c", t0()));
    for e in [&a, &b, &c] {
        create(store, e).await;
    }
    let park = |e: &ExecutionRecord, until: Option<i64>| Write::Park {
        execution_arn: e.arn.clone(),
        until: until.map(|s| t0() + Duration::seconds(s)),
    };
    store.commit(vec![park(&a, Some(60)), park(&b, None), park(&c, Some(5))]).await.unwrap();
    // Parked ones are not resumed at start; their timers come soonest first; one waiting on a
    // token only has none.
    assert!(store.running().unwrap().is_empty());
    assert_eq!(store.parked().unwrap(), 3);
    let due = store.due_timers(10).unwrap();
    assert_eq!(
        due,
        vec![(t0() + Duration::seconds(5), c.arn.clone()), (t0() + Duration::seconds(60), a.arn.clone())]
    );
    assert_eq!(store.due_timers(1).unwrap().len(), 1);
    // A park replaces the earlier one; an unpark makes it a running one; an end removes it.
    store.commit(vec![park(&c, Some(90))]).await.unwrap();
    assert_eq!(store.due_timers(1).unwrap()[0].1, a.arn);
    store.commit(vec![Write::Unpark { execution_arn: a.arn.clone() }]).await.unwrap();
    assert_eq!(store.running().unwrap(), vec![a.clone()]);
    store.commit(vec![finish(&b.arn, ExecutionStatus::Aborted, t0())]).await.unwrap();
    assert_eq!(store.parked().unwrap(), 1);
    assert_eq!(store.due_timers(10).unwrap(), vec![(t0() + Duration::seconds(90), c.arn.clone())]);
}

async fn activity_tasks_go_to_one_worker_each(store: &dyn Store) {
    let arn = "arn:aws:states:us-east-1:123456789012:activity:resize".to_string();
    let activity = ActivityRecord { arn: arn.clone(), name: "resize".into(), created: t0() };
    assert_eq!(store.put_activity(activity.clone()).await.unwrap(), activity);
    // CreateActivity again: the activity as it was.
    let later = ActivityRecord { created: t0() + Duration::seconds(5), ..activity.clone() };
    assert_eq!(store.put_activity(later).await.unwrap(), activity);
    let other = ActivityRecord { arn: format!("{arn}-small"), name: "a-small".into(), created: t0() };
    store.put_activity(other.clone()).await.unwrap();
    assert_eq!(store.list_activities().unwrap(), vec![other.clone(), activity.clone()]);
    assert_eq!(store.get_activity(&arn).unwrap(), Some(activity.clone()));

    let (a, b) = (execution("m", "a", t0()), execution("m", "b", t0()));
    create(store, &a).await;
    create(store, &b).await;
    let task = |e: &ExecutionRecord, token: &str| Write::ActivityTask {
        execution_arn: e.arn.clone(),
        activity_arn: arn.clone(),
        token: token.into(),
        input: format!("{{\"from\":\"{}\"}}", e.name),
    };
    store.commit(vec![task(&a, "t1"), task(&b, "t2"), task(&a, "t3")]).await.unwrap();
    // Oldest first, each once, only to its activity's workers.
    assert_eq!(store.take_activity_task(&other.arn).await.unwrap(), None);
    let first = store.take_activity_task(&arn).await.unwrap().unwrap();
    assert_eq!((first.execution_arn.as_str(), first.token.as_str()), (a.arn.as_str(), "t1"));
    assert_eq!(first.input, r#"{"from":"a"}"#);
    // An execution's end takes its tasks away.
    store.commit(vec![finish(&a.arn, ExecutionStatus::Failed, t0())]).await.unwrap();
    assert_eq!(store.take_activity_task(&arn).await.unwrap().map(|t| t.token), Some("t2".into()));
    assert_eq!(store.take_activity_task(&arn).await.unwrap(), None);
    // Deleting an activity takes its waiting tasks with it.
    store.commit(vec![task(&b, "t4")]).await.unwrap();
    assert!(store.delete_activity(&arn).await.unwrap());
    assert!(!store.delete_activity(&arn).await.unwrap());
    assert_eq!(store.get_activity(&arn).unwrap(), None);
    assert_eq!(store.take_activity_task(&arn).await.unwrap(), None);
}

async fn children_keep_their_link_until_reported(store: &dyn Store) {
    let parent = execution("p", "parent", t0());
    let link =
        |token: &str| ParentLink { execution_arn: parent.arn.clone(), token: token.into(), json: false };
    let a = ExecutionRecord { parent: Some(link("t1")), ..execution("c", "a", t0()) };
    let b = ExecutionRecord { parent: Some(link("t1")), ..execution("c", "b", t0() + Duration::seconds(1)) };
    let other = execution("c", "unlinked", t0());
    for e in [&parent, &a, &b, &other] {
        create(store, e).await;
    }
    // Read back with the link; the running children of the parent, oldest first.
    assert_eq!(store.get_execution(&a.arn).unwrap().unwrap().parent, Some(link("t1")));
    assert_eq!(store.children(&parent.arn).unwrap(), vec![a.clone(), b.clone()]);
    assert!(store.unreported().unwrap().is_empty());
    // A parent that runs its Task again waits with another token.
    store.commit(vec![Write::Link { execution_arn: b.arn.clone(), parent: Some(link("t2")) }]).await.unwrap();
    assert_eq!(store.get_execution(&b.arn).unwrap().unwrap().parent, Some(link("t2")));
    // An ended child is unreported until its link goes; it is no longer a running child.
    store.commit(vec![finish(&a.arn, ExecutionStatus::Succeeded, t0())]).await.unwrap();
    let unreported: Vec<String> = store.unreported().unwrap().into_iter().map(|e| e.arn).collect();
    assert_eq!(unreported, vec![a.arn.clone()]);
    assert_eq!(store.children(&parent.arn).unwrap().len(), 1);
    store.commit(vec![Write::Link { execution_arn: a.arn.clone(), parent: None }]).await.unwrap();
    assert!(store.unreported().unwrap().is_empty());
    assert_eq!(store.get_execution(&a.arn).unwrap().unwrap().parent, None);
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&stepgate::store::memory::MemoryStore::new()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("state.db");
                    let store = stepgate::store::sqlite::SqliteStore::open(&path).unwrap();
                    super::$name(&store).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let schema = super::common::PgSchema::new();
                    let store = super::postgres_store(&schema, "node-a");
                    super::$name(&store).await;
                }
            )*
        }
    };
}

#[cfg(feature = "postgres")]
fn postgres_store(schema: &common::PgSchema, node: &str) -> PostgresStore {
    PostgresStore::open(&stepgate::store::postgres::Settings {
        url: schema.url.clone(),
        pool_size: 4,
        lease: std::time::Duration::from_secs(15),
        node: node.into(),
        writers: 1,
    })
    .unwrap()
}

suite!(
    state_machine_crud,
    create_is_idempotent,
    commit_and_read_back,
    history_paging,
    list_paging_and_filtering,
    delete_frames_by_prefix,
    purge_finished,
    running_and_redrive,
    resumes_are_counted_per_place,
    definitions_stay_with_their_executions,
    writes_to_an_unknown_execution_are_refused_whole,
    parked_executions_wait_in_their_own_table,
    activity_tasks_go_to_one_worker_each,
    children_keep_their_link_until_reported,
);

#[tokio::test]
async fn memory_store_is_a_store_object() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    create(store.as_ref(), &execution("m", "x", t0())).await;
    assert_eq!(store.running().unwrap().len(), 1);
}

#[tokio::test]
async fn bounded_memory_store_evicts_the_oldest_finished_executions() {
    let store = MemoryStore::bounded(2);
    let (a, b, c) = (execution("m", "a", t0()), execution("m", "b", t0()), execution("m", "c", t0()));
    create(&store, &a).await;
    create(&store, &b).await;
    store.commit(vec![event(&b.arn, 1), finish(&b.arn, ExecutionStatus::Succeeded, t0())]).await.unwrap();
    // "a" is older but still running: the finished "b" goes instead.
    create(&store, &c).await;
    assert!(store.get_execution(&a.arn).unwrap().is_some());
    assert_eq!(store.get_execution(&b.arn).unwrap(), None);
    assert_eq!(store.last_event_id(&b.arn).unwrap(), 0);
    assert!(store.get_execution(&c.arn).unwrap().is_some());
}

#[tokio::test]
async fn sqlite_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/state.db");
    let e = execution("m", "durable", t0());
    {
        let store = SqliteStore::open(&path).unwrap();
        store.put_state_machine(&machine("m")).unwrap();
        create(&store, &e).await;
        store
            .commit(vec![event(&e.arn, 1), event(&e.arn, 2), frame(&e.arn, "/W.0", json!({"until": 5}))])
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get_state_machine(&machine("m").arn).unwrap(), Some(machine("m")));
    assert_eq!(store.get_execution(&e.arn).unwrap(), Some(e.clone()));
    assert_eq!(store.running().unwrap(), vec![e.clone()]);
    assert_eq!(ids(&store.history(&e.arn, 0, 10, false).unwrap()), [1, 2]);
    assert_eq!(store.frames(&e.arn).unwrap()[0].data, json!({"until": 5}));
    // Reopening ran no migration twice: one row per migration.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let versions: i64 = raw.query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0)).unwrap();
    let distinct: i64 =
        raw.query_row("SELECT COUNT(DISTINCT version) FROM schema_version", [], |r| r.get(0)).unwrap();
    assert_eq!(versions, distinct);
    assert_eq!(versions, 6);
}

#[test]
fn sqlite_open_reports_the_path() {
    let dir = tempfile::tempdir().unwrap();
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Open { path, .. }) => assert_eq!(path, dir.path().display().to_string()),
        other => panic!("a directory opened as a store: {:?}", other.map(|_| ())),
    }
}

#[test]
fn sqlite_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path).unwrap().execute("INSERT INTO schema_version VALUES (99)", []).unwrap();
    let err = SqliteStore::open(&path).err().expect("a newer schema must not open");
    assert!(err.to_string().contains("newer"), "{err}");
}

/// Many executions committing at once share transactions; `transactions` reads the store's
/// count of them.
async fn group_commits_many_concurrent_committers<S: Store>(store: Arc<S>, transactions: fn(&S) -> u64) {
    let (tasks, commits) = (200u64, 20u64);
    for t in 0..tasks {
        create(store.as_ref(), &execution("m", &format!("t{t}"), t0() + Duration::seconds(t as i64))).await;
    }
    let before = transactions(&store);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let arn = format!("{EX}m:t{t}");
                for i in 1..=commits {
                    store.commit(vec![event(&arn, i), frame(&arn, "", json!({"at": i}))]).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let transactions = transactions(&store) - before;
    let total = tasks * commits;
    assert!(transactions * 4 < total, "{transactions} transactions for {total} commits: no grouping");
    for t in 0..tasks {
        let arn = format!("{EX}m:t{t}");
        assert_eq!(store.last_event_id(&arn).unwrap(), commits);
        assert_eq!(store.frames(&arn).unwrap()[0].data, json!({"at": commits}));
    }
    eprintln!("{total} commits in {transactions} transactions");
}

async fn a_bad_commit_fails_alone_in_its_group(store: &dyn Store) {
    let e = execution("m", "good", t0());
    create(store, &e).await;
    // All queued before any is awaited, so the writer takes most of them in one group.
    let mut pending: Vec<_> = (1..=40).map(|i| store.commit(vec![event(&e.arn, i)])).collect();
    let bad = store.commit(vec![event(&format!("{EX}m:nope"), 1)]);
    pending.extend((41..=80).map(|i| store.commit(vec![event(&e.arn, i)])));
    for result in futures::future::join_all(pending).await {
        result.unwrap();
    }
    assert!(bad.await.is_err());
    assert_eq!(store.last_event_id(&e.arn).unwrap(), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_commits_many_concurrent_committers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("state.db")).unwrap());
    group_commits_many_concurrent_committers(store, SqliteStore::transactions).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_commits_many_concurrent_committers() {
    let schema = common::PgSchema::new();
    // Two writers: each execution's commits keep their order in the one its ARN picks.
    let store = Arc::new(
        PostgresStore::open(&stepgate::store::postgres::Settings {
            url: schema.url.clone(),
            pool_size: 4,
            lease: std::time::Duration::from_secs(15),
            node: "node-a".into(),
            writers: 2,
        })
        .unwrap(),
    );
    group_commits_many_concurrent_committers(store, PostgresStore::transactions).await;
}

#[tokio::test]
async fn sqlite_a_bad_commit_fails_alone_in_its_group() {
    let dir = tempfile::tempdir().unwrap();
    a_bad_commit_fails_alone_in_its_group(&SqliteStore::open(&dir.path().join("state.db")).unwrap()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_a_bad_commit_fails_alone_in_its_group() {
    let schema = common::PgSchema::new();
    a_bad_commit_fails_alone_in_its_group(&postgres_store(&schema, "node-a")).await;
}

/// A daemon whose lease ran out loses its executions to the one that claims them, and from
/// then on every write of the first is refused.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_daemon_past_its_lease_is_fenced_by_the_one_that_takes_over() {
    let schema = common::PgSchema::new();
    let a = postgres_store(&schema, "node-a");
    let b = postgres_store(&schema, "node-b");
    let (ca, cb) = (a.cluster().unwrap(), b.cluster().unwrap());
    let e = execution("m", "x", t0());
    create(&a, &e).await;
    a.commit(vec![event(&e.arn, 2)]).await.unwrap();
    // A lives: B cannot take its execution, and B's start-up claims nothing of it.
    assert_eq!(cb.claim(&e.arn).unwrap(), Some("node-a".to_string()));
    assert!(b.running().unwrap().is_empty());
    assert!(b.commit(vec![event(&e.arn, 3)]).await.is_err(), "B wrote to A's execution");
    // A stops renewing (paused): its lease runs out, and B takes its executions.
    schema.sql("UPDATE daemons SET lease_until = now() - interval '1 second' WHERE id = 'node-a'");
    let taken: Vec<String> = b.running().unwrap().into_iter().map(|e| e.arn).collect();
    assert_eq!(taken, vec![e.arn.clone()]);
    let refused = a.commit(vec![event(&e.arn, 3)]).await.expect_err("A wrote after B took over");
    assert!(refused.to_string().contains("taken over"), "{refused}");
    b.commit(vec![event(&e.arn, 3)]).await.unwrap();
    assert_eq!(b.last_event_id(&e.arn).unwrap(), 3);
    // Nor can A take it back while B lives.
    assert_eq!(ca.claim(&e.arn).unwrap(), Some("node-b".to_string()));
}

/// A parked execution is nobody's: the first daemon to claim it gets it, the other is told
/// who has it; an ended one is nobody's to claim.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_parked_execution_goes_to_the_first_daemon_that_claims_it() {
    let schema = common::PgSchema::new();
    let a = postgres_store(&schema, "node-a");
    let b = postgres_store(&schema, "node-b");
    let e = execution("m", "parked", t0());
    create(&a, &e).await;
    a.commit(vec![Write::Park { execution_arn: e.arn.clone(), until: Some(t0()) }]).await.unwrap();
    assert_eq!(b.due_timers(10).unwrap().len(), 1, "a parked timer is every daemon's to see");
    assert_eq!(b.cluster().unwrap().claim(&e.arn).unwrap(), None);
    assert_eq!(a.cluster().unwrap().claim(&e.arn).unwrap(), Some("node-b".to_string()));
    b.commit(vec![Write::Unpark { execution_arn: e.arn.clone() }, event(&e.arn, 2)]).await.unwrap();
    b.commit(vec![finish(&e.arn, ExecutionStatus::Succeeded, t0())]).await.unwrap();
    assert_eq!(a.cluster().unwrap().claim(&e.arn).unwrap(), Some(String::new()));
}

/// Each tick of a schedule goes to one daemon, however many ask at once.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_schedule_tick_is_claimed_once() {
    let schema = common::PgSchema::new();
    let stores: Vec<_> = ["a", "b", "c"].iter().map(|n| postgres_store(&schema, n)).collect();
    for s in 0..20 {
        let tick = t0() + Duration::seconds(s);
        let claims = futures::future::join_all(
            stores.iter().map(|st| st.cluster().unwrap().claim_tick("every", tick)),
        )
        .await;
        let won = claims.into_iter().filter(|c| *c.as_ref().unwrap()).count();
        assert_eq!(won, 1, "tick {s}");
    }
    assert_eq!(stores[0].last_tick("every").unwrap(), Some(t0() + Duration::seconds(19)));
}

/// A message for an execution that another daemon runs reaches it through the database and
/// comes back with its answer.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commands_reach_the_owner_and_bring_its_answer_back() {
    let schema = common::PgSchema::new();
    let a = postgres_store(&schema, "node-a");
    let b = postgres_store(&schema, "node-b");
    let sent = b.cluster().unwrap().send_command("node-a", "arn:x", r#"{"stop":{}}"#.into());
    let owner = async {
        loop {
            let cmds = a.cluster().unwrap().commands().await.unwrap();
            if let Some(c) = cmds.into_iter().next() {
                assert_eq!((c.execution_arn.as_str(), c.body.as_str()), ("arn:x", r#"{"stop":{}}"#));
                a.cluster().unwrap().answer_command(c.id, true).await.unwrap();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let (answer, ()) = tokio::join!(sent, owner);
    assert_eq!(answer.unwrap(), Some(true));
    assert!(b.cluster().unwrap().commands().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_commit_is_readable_from_a_fresh_connection_once_answered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let e = execution("m", "visible", t0());
    create(store.as_ref(), &e).await;
    for n in 0..20 {
        create(store.as_ref(), &execution("m", &format!("noise{n}"), t0())).await;
    }
    // Other committers keep the writer busy so that answers come from grouped transactions.
    let noise: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let arn = format!("{EX}m:noise{n}");
                for i in 1..=50 {
                    store.commit(vec![event(&arn, i)]).await.unwrap();
                }
            })
        })
        .collect();
    for i in 1..=50u64 {
        store.commit(vec![event(&e.arn, i), frame(&e.arn, "", json!(i))]).await.unwrap();
        let fresh = rusqlite::Connection::open(&path).unwrap();
        let count: i64 = fresh
            .query_row(
                "SELECT COUNT(*) FROM events JOIN executions ON seq = execution WHERE arn = ?1",
                [&e.arn],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(count as u64, i);
        let data: String = fresh
            .query_row(
                "SELECT data FROM frames JOIN executions ON seq = execution WHERE arn = ?1",
                [&e.arn],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(data, i.to_string());
    }
    for h in noise {
        h.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dropped_commit_futures_still_land_before_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let e = execution("m", "dropped", t0());
    {
        let store = SqliteStore::open(&path).unwrap();
        create(&store, &e).await;
        for i in 1..=100 {
            drop(store.commit(vec![event(&e.arn, i)]));
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.last_event_id(&e.arn).unwrap(), 100);
}

/// Durable commits per second with 200 concurrent committers, each commit one event and one
/// frame, fsync on. Run with:
/// `cargo test --release --test store -- --ignored --nocapture sqlite_throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn sqlite_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("state.db")).unwrap());
    let (tasks, commits) = (200u64, 250u64);
    for t in 0..tasks {
        create(store.as_ref(), &execution("m", &format!("t{t}"), t0() + Duration::seconds(t as i64))).await;
    }
    let tx_before = store.transactions();
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let arn = format!("{EX}m:t{t}");
                for i in 1..=commits {
                    let ev = Event {
                        id: i,
                        previous_event_id: i - 1,
                        timestamp: t0(),
                        kind: "TaskStateEntered",
                        details: Some((
                            "stateEnteredEventDetails",
                            json!({"name": "Step", "input": "{\"n\":1}"}).into(),
                        )),
                    };
                    let fr = json!({"state": "Step", "input": {"n": i}, "retries": {}});
                    store
                        .commit(vec![
                            Write::Event { execution_arn: arn.clone(), event: ev },
                            frame(&arn, "", fr),
                        ])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let total = tasks * commits;
    let transactions = store.transactions() - tx_before;
    eprintln!(
        "{total} durable commits (1 event + 1 frame each) by {tasks} committers in {secs:.2}s: \
         {:.0} commits/s, \
         {transactions} transactions ({:.1} commits each)",
        total as f64 / secs,
        total as f64 / transactions as f64
    );
}

/// A store whose commits fail while `fail` is set (a full disk, a locked or lost database);
/// everything else goes to the store under it.
struct FailingStore {
    inner: SqliteStore,
    fail: std::sync::atomic::AtomicBool,
}

impl Store for FailingStore {
    fn put_state_machine(&self, sm: &StateMachineRecord) -> Result<(), StoreError> {
        self.inner.put_state_machine(sm)
    }
    fn get_state_machine(&self, arn: &str) -> Result<Option<StateMachineRecord>, StoreError> {
        self.inner.get_state_machine(arn)
    }
    fn list_state_machines(&self) -> Result<Vec<StateMachineRecord>, StoreError> {
        self.inner.list_state_machines()
    }
    fn delete_state_machine(&self, arn: &str) -> Result<bool, StoreError> {
        self.inner.delete_state_machine(arn)
    }
    fn create_execution(
        &self,
        e: ExecutionRecord,
        writes: Vec<Write>,
    ) -> futures::future::BoxFuture<'static, Result<Created, StoreError>> {
        self.inner.create_execution(e, writes)
    }
    fn get_execution(&self, arn: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.inner.get_execution(arn)
    }
    fn list_executions(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
        token: Option<&str>,
        limit: usize,
    ) -> Result<stepgate::store::Page<ExecutionRecord>, StoreError> {
        self.inner.list_executions(state_machine_arn, status, token, limit)
    }
    fn children(&self, parent_arn: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.inner.children(parent_arn)
    }
    fn unreported(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.inner.unreported()
    }
    fn running(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.inner.running()
    }
    fn due_timers(&self, limit: usize) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        self.inner.due_timers(limit)
    }
    fn parked(&self) -> Result<u64, StoreError> {
        self.inner.parked()
    }
    fn history(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> Result<Vec<Value>, StoreError> {
        self.inner.history(arn, after, limit, reverse)
    }
    fn last_event_id(&self, arn: &str) -> Result<u64, StoreError> {
        self.inner.last_event_id(arn)
    }
    fn frames(&self, arn: &str) -> Result<Vec<Frame>, StoreError> {
        self.inner.frames(arn)
    }
    fn definition_of(&self, arn: &str) -> Result<Option<(String, String)>, StoreError> {
        self.inner.definition_of(arn)
    }
    fn commit(&self, writes: Vec<Write>) -> futures::future::BoxFuture<'static, Result<(), StoreError>> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Backend("disk full (injected)".into())) });
        }
        self.inner.commit(writes)
    }
    fn count_resume(&self, arn: &str, last_event_id: u64) -> Result<u32, StoreError> {
        self.inner.count_resume(arn, last_event_id)
    }
    fn purge_finished_before(&self, t: DateTime<Utc>) -> Result<usize, StoreError> {
        self.inner.purge_finished_before(t)
    }
    fn last_tick(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.last_tick(name)
    }
    fn record_tick(
        &self,
        name: &str,
        tick: DateTime<Utc>,
    ) -> futures::future::BoxFuture<'static, Result<(), StoreError>> {
        self.inner.record_tick(name, tick)
    }
    fn put_activity(
        &self,
        a: ActivityRecord,
    ) -> futures::future::BoxFuture<'static, Result<ActivityRecord, StoreError>> {
        self.inner.put_activity(a)
    }
    fn get_activity(&self, arn: &str) -> Result<Option<ActivityRecord>, StoreError> {
        self.inner.get_activity(arn)
    }
    fn list_activities(&self) -> Result<Vec<ActivityRecord>, StoreError> {
        self.inner.list_activities()
    }
    fn delete_activity(&self, arn: &str) -> futures::future::BoxFuture<'static, Result<bool, StoreError>> {
        self.inner.delete_activity(arn)
    }
    fn take_activity_task(
        &self,
        activity_arn: &str,
    ) -> futures::future::BoxFuture<'static, Result<Option<stepgate::store::ActivityTask>, StoreError>> {
        self.inner.take_activity_task(activity_arn)
    }
}

/// The durability contract under a store that fails: while commits fail, the Task whose
/// entry could not be committed is not called, the execution stays RUNNING where the store
/// has it and the failure is counted; once the store works again the execution goes on from
/// there and calls the Task once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_stops_the_execution_before_its_task_and_it_goes_on_later() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use stepgate::connectors::function::{Function, Functions};
    use stepgate::connectors::Registry;
    use stepgate::engine::Engine;
    use stepgate::service::{Service, StartRequest};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FailingStore {
        inner: SqliteStore::open(&dir.path().join("state.db")).unwrap(),
        fail: AtomicBool::new(false),
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let mut functions = Functions::default();
    let counted = calls.clone();
    functions.insert(
        "charge",
        Function::Native(Arc::new(move |v| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(v)
        })),
    );
    let engine = Arc::new(Engine::new(
        Registry::new(functions),
        Arc::new(stepgate::time::Clock::default()),
        Default::default(),
        "us-east-1",
        "123456789012",
    ));
    let dyn_store: Arc<dyn Store> = store.clone();
    let activities = Arc::new(stepgate::connectors::activity::Activities::new(dyn_store.clone()));
    let service = Service::new(
        engine.clone(),
        dyn_store,
        Arc::new(MemoryStore::new()),
        Duration::seconds(60),
        3,
        activities,
    );
    service.start_timers();
    let definition = json!({
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Next": "Charge"},
            "Charge": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:charge", "End": true}
        }
    });
    let create = json!({"name": "pay", "definition": definition.to_string(), "roleArn": "arn:aws:iam::123456789012:role/r"});
    let created = stepgate::api::ops::call(&service, "CreateStateMachine", &create).await.unwrap();
    let sm = created["stateMachineArn"].as_str().unwrap().to_string();
    store.fail.store(true, Ordering::SeqCst);
    let started = service
        .starter()
        .start(StartRequest {
            state_machine_arn: sm,
            name: Some("p1".into()),
            input: json!({"amount": 5}),
            parent: None,
        })
        .await
        .unwrap();
    // Two tries of the store fail (the first commit, then the retry 5 s later).
    tokio::time::sleep(std::time::Duration::from_millis(6500)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a Task was called without its entry on disk");
    assert!(engine.commit_failures() >= 2, "{} commit failures counted", engine.commit_failures());
    let e = store.get_execution(&started.execution_arn).unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Running);
    store.fail.store(false, Ordering::SeqCst);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let e = loop {
        let e = store.get_execution(&started.execution_arn).unwrap().unwrap();
        if e.status != ExecutionStatus::Running || std::time::Instant::now() > until {
            break e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!((e.status, e.output.as_deref()), (ExecutionStatus::Succeeded, Some(r#"{"amount":5}"#)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let kinds: Vec<String> = store
        .history(&started.execution_arn, 0, 100, false)
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "LambdaFunctionScheduled").count(), 1, "{kinds:?}");
    let ids: Vec<u64> = store
        .history(&started.execution_arn, 0, 100, false)
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
}

/// TLS as libpq's sslmode asks: `require` encrypts (the server's self-signed certificate is
/// taken as it is), `verify-full` against the system's CAs refuses that certificate.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_speaks_tls_as_sslmode_asks() {
    let schema = common::PgSchema::new();
    let base = common::postgres_base();
    assert_eq!(
        common::psql(&base, "SHOW ssl"),
        "on",
        "the test server must accept TLS (ssl = on, as Debian's postgresql package sets up with its snakeoil certificate)"
    );
    let app = format!("sg_tls_{}", std::process::id());
    let url = format!("{}&sslmode=require&application_name={app}", schema.url);
    let open = |url: String| {
        PostgresStore::open(&stepgate::store::postgres::Settings {
            url,
            pool_size: 1,
            lease: std::time::Duration::from_secs(15),
            node: "tls".into(),
            writers: 1,
        })
    };
    let store = open(url).unwrap();
    store.put_state_machine(&machine("over-tls")).unwrap();
    assert_eq!(store.list_state_machines().unwrap().len(), 1);
    let encrypted = common::psql(
        &base,
        &format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = '{app}' AND s.ssl"
        ),
    );
    assert!(encrypted.parse::<u32>().unwrap() >= 2, "{encrypted} encrypted connections (writer and reader)");
    let refused = open(format!("{}&sslmode=verify-full", schema.url))
        .err()
        .expect("an untrusted certificate was taken");
    assert!(refused.to_string().contains("certificate"), "{refused}");
}

/// A takeover waits for the transaction the other daemon has in flight (here held open by
/// psql under that daemon's fence lock, as its writer holds it): nothing of it can land after
/// the executions moved.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_takeover_waits_for_the_transaction_in_flight_of_the_daemon_it_fences() {
    let schema = common::PgSchema::new();
    let a = postgres_store(&schema, "node-a");
    let b = postgres_store(&schema, "node-b");
    let e = execution("m", "x", t0());
    create(&a, &e).await;
    schema.sql("UPDATE daemons SET lease_until = now() - interval '1 second' WHERE id = 'node-a'");
    let url = schema.url.clone();
    let in_flight = std::thread::spawn(move || {
        common::psql(
            &url,
            "BEGIN; SELECT pg_advisory_xact_lock_shared(7461003, hashtext('node-a')); SELECT pg_sleep(2); COMMIT",
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let began = std::time::Instant::now();
    let taken = b.running().unwrap();
    let waited = began.elapsed();
    in_flight.join().unwrap();
    assert_eq!(taken.len(), 1);
    assert!(waited >= std::time::Duration::from_millis(1000), "the takeover did not wait: {waited:?}");
    assert!(a.commit(vec![event(&e.arn, 2)]).await.is_err(), "A wrote after the takeover");
}

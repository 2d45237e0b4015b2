//! Unit tests of the pure execution core: [`Core::advance`] driven by hand-made inputs on a
//! controlled clock, with no runtime, connector, journal or tokio around it. They sit between
//! the interpreter's tests (one state at a time, no clock) and the integration tests under
//! `tests/` (the daemon end to end): here each row is a definition and a script of inputs at
//! chosen times, and what the core must answer after each input is spelled out as a compact
//! summary of its actions (see [`Driver::step`]).

use super::*;
use crate::engine::{frame_write, FrameWrite, Status};
use chrono::TimeZone;
use std::collections::{BTreeMap, HashMap};

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

const EXEC_ARN: &str = "arn:aws:states:us-east-1:123456789012:execution:sm:run-1";
const LAMBDA_A: &str = "arn:aws:lambda:us-east-1:123456789012:function:A";
const LAMBDA_B: &str = "arn:aws:lambda:us-east-1:123456789012:function:B";
const CALLBACK: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";
const ACTIVITY: &str = "arn:aws:states:us-east-1:123456789012:activity:work";
const SQS: &str = "arn:aws:states:::sqs:sendMessage";
/// Every tick carries the same seed: the tokens a row draws are the same on every run.
const SEED: [u8; 32] = [7; 32];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// T0 + `secs`, to the millisecond.
fn time(secs: f64) -> DateTime<Utc> {
    t0() + chrono::Duration::milliseconds((secs * 1000.0).round() as i64)
}

/// A time as the summaries show it: seconds after T0.
fn rel(t: DateTime<Utc>) -> String {
    format!("{}", (t - t0()).num_milliseconds() as f64 / 1000.0)
}

/// A tick at T0 + `secs` on both clocks.
fn at(secs: f64) -> Tick {
    Tick { now: time(secs), real: time(secs), seed: SEED }
}

/// A tick where the workflow's clock (`now`, which a time scale runs ahead) and the real
/// clock disagree: Wait states and the machine's TimeoutSeconds follow the first, Task
/// deadlines and heartbeats the second.
fn at2(now: f64, real: f64) -> Tick {
    Tick { now: time(now), real: time(real), seed: SEED }
}

/// The connector registry's answer, by the shape of the ARN.
fn family(resource: &Arc<str>) -> EventFamily {
    let parts: Vec<&str> = resource.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", ..] => EventFamily::LambdaFunction,
        ["arn", _, "states", _, _, "activity", _] => EventFamily::Activity,
        _ => EventFamily::Task,
    }
}

fn offload(work: &mut dyn FnMut()) {
    work()
}

fn fail(error: &str, cause: &str) -> Failure {
    Failure::new(error, cause)
}

/// A well-formed token of this execution that no Task was given.
fn strange_token() -> String {
    new_token(EXEC_ARN, &mut rand::rngs::StdRng::from_seed([9; 32]))
}

/// A core as `run_parking` builds it for a journaled Standard execution that started at T0.
fn new_core(def: &Value, state: ExecState) -> Core<'static> {
    // A core borrows its machine and limits for its whole life; leaking the few small ones a
    // test makes keeps the harness free of lifetimes.
    let machine: &'static Machine = Box::leak(Box::new(
        crate::asl::compile(def).unwrap_or_else(|e| panic!("invalid definition {def}: {e:?}")),
    ));
    let limits: &'static Limits = Box::leak(Box::new(Limits::default()));
    let x = Execution {
        machine,
        arn: EXEC_ARN.into(),
        name: "run-1".into(),
        state_machine_name: "sm".into(),
        state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:sm".into(),
        role_arn: "arn:aws:iam::123456789012:role/stepgate".into(),
        start_time: t0(),
        input: Value::Null,
        express: false,
        redrive_count: 0,
        deadline: machine.timeout_seconds.map(|t| crate::time::after(t0(), t)),
        limits,
        region: "us-east-1",
        record_history: true,
        durable: true,
        offload: &offload,
        answers_now: false,
    };
    Core::new(x, state, &|r: &Arc<str>| (family(r), None))
}

/// An input of a script. Tasks are named by path: the harness fills in the invocation number
/// and the token of the latest call it saw there.
#[derive(Clone)]
enum In {
    Start(Value),
    Resume,
    /// The connector's answer to the latest call at a path.
    Done(&'static str, Result<Value, Failure>),
    /// An answer to an earlier call at a path (invocation number given).
    Late(&'static str, u64, Result<Value, Failure>),
    /// The connector handed the latest call at a path over (`{"StatusCode": 200}`).
    Submitted(&'static str),
    Timers,
    /// SendTaskSuccess / SendTaskFailure with the token of the latest call at a path.
    Token(&'static str, Result<Value, Failure>),
    /// SendTaskSuccess with a token of this execution that no Task was given.
    StrangeToken(Result<Value, Failure>),
    /// SendTaskHeartbeat with the token of the latest call at a path.
    Beat(&'static str),
    StrangeBeat,
    /// GetActivityTask by a worker of this name, for the latest call at a path.
    Worker(&'static str, &'static str),
    Stop(Option<&'static str>, Option<&'static str>),
    TimedOut,
}

/// One core and what a runtime would have made of its actions so far.
struct Driver {
    def: Value,
    core: Core<'static>,
    /// The latest call at each path: (invocation, token).
    calls: HashMap<String, (u64, Option<String>)>,
    /// The frames as a journal holds them after every commit so far (`frame_write`'s JSON).
    journal: BTreeMap<String, Value>,
    history: Vec<Event>,
    end: Option<End>,
}

impl Driver {
    fn new(def: &Value) -> Driver {
        Driver::with_state(def, ExecState::default())
    }

    fn with_state(def: &Value, state: ExecState) -> Driver {
        Driver {
            def: def.clone(),
            core: new_core(def, state),
            calls: HashMap::new(),
            journal: BTreeMap::new(),
            history: Vec::new(),
            end: None,
        }
    }

    /// A core built as a restarted runtime builds it: from the journaled frames (read back
    /// with serde) and the id of the last event stored, invocations numbered anew.
    fn from_journal(def: &Value, journal: BTreeMap<String, Value>, last_event_id: u64) -> Driver {
        let frames = journal
            .iter()
            .map(|(path, data)| {
                let frame = serde_json::from_value::<Frame>(data.clone())
                    .unwrap_or_else(|e| panic!("journaled frame '{path}' {data}: {e}"));
                (path.clone(), frame)
            })
            .collect();
        let state = ExecState { frames, last_event_id, next_invocation: 0, transitions: 0 };
        Driver { journal, ..Driver::with_state(def, state) }
    }

    /// This execution after a crash: a new core from what was committed. Tokens handed out
    /// before stay known to the harness (their senders still hold them).
    fn restarted(&self) -> Driver {
        let last = self.history.last().map_or(0, |e| e.id);
        Driver { calls: self.calls.clone(), ..Driver::from_journal(&self.def, self.journal.clone(), last) }
    }

    fn call(&self, path: &str) -> (u64, Option<String>) {
        self.calls.get(path).cloned().unwrap_or_else(|| panic!("no Task was invoked at '{path}'"))
    }

    fn token(&self, path: &str) -> String {
        self.call(path).1.unwrap_or_else(|| panic!("the Task at '{path}' has no token"))
    }

    /// Advances the core; also says whether a token input was for this execution
    /// (`owns_token`, asked before the advance as the runtime asks it).
    fn feed(&mut self, tick: Tick, input: In) -> (Option<bool>, Vec<Action>) {
        let (token, input) = match input {
            In::Start(input) => (None, Input::Start { input }),
            In::Resume => (None, Input::Resume { redrive: false }),
            In::Done(path, result) => {
                (None, Input::TaskDone { path: path.into(), invocation: self.call(path).0, result })
            }
            In::Late(path, invocation, result) => {
                (None, Input::TaskDone { path: path.into(), invocation, result })
            }
            In::Submitted(path) => (
                None,
                Input::TaskSubmitted {
                    path: path.into(),
                    invocation: self.call(path).0,
                    output: json!({"StatusCode": 200}),
                },
            ),
            In::Timers => (None, Input::Timers),
            In::Token(path, result) => {
                let token = self.token(path);
                (Some(token.clone()), Input::TokenDone { token, result })
            }
            In::StrangeToken(result) => {
                let token = strange_token();
                (Some(token.clone()), Input::TokenDone { token, result })
            }
            In::Beat(path) => {
                let token = self.token(path);
                (Some(token.clone()), Input::Heartbeat { token })
            }
            In::StrangeBeat => {
                let token = strange_token();
                (Some(token.clone()), Input::Heartbeat { token })
            }
            In::Worker(path, name) => {
                let token = self.token(path);
                (Some(token.clone()), Input::ActivityStarted { token, worker: Some(name.into()) })
            }
            In::Stop(error, cause) => {
                (None, Input::Stop { error: error.map(Into::into), cause: cause.map(Into::into) })
            }
            In::TimedOut => (None, Input::TimedOut),
        };
        let taken = token.map(|t| self.core.owns_token(&t));
        let actions = self.core.advance(input, tick);
        self.record(&actions);
        (taken, actions)
    }

    /// Carries the actions out as far as a test can: commits go to the journal and the
    /// history, calls are remembered by path, the end is kept.
    fn record(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::Commit(c) => {
                    self.history.extend(c.events.iter().cloned());
                    for (path, frame) in &c.frames {
                        match frame_write((path.clone(), frame.clone())) {
                            FrameWrite::Put { path, data } => {
                                self.journal.insert(path, data);
                            }
                            FrameWrite::Remove { path } => {
                                let below = format!("{path}/");
                                self.journal.retain(|k, _| *k != path && !k.starts_with(&below));
                            }
                        }
                    }
                }
                Action::Invoke(inv) => {
                    self.calls.insert(inv.path.clone(), (inv.invocation, inv.token.clone()));
                }
                Action::Cancel { .. } => {}
                Action::Finish(end) => self.end = Some(end.clone()),
            }
        }
    }

    /// Advances the core and summarizes what it answered, one group per action, in order:
    ///
    /// - `taken` / `refused`: a token input was (not) for a Task of this execution;
    /// - `commit[Event Event | path=State:Status -removed]`: the events' kinds, the frames
    ///   written (`top` is the top level; `Waiting(10)`, `Backoff(3)`: until T0 + 10 s, 3 s;
    ///   `Task(#2,tok,sub,dl=30,hb=9)`: invocation 2, with a token, handed over, deadline and
    ///   heartbeat deadline; `[1]`: Retry attempts) and the prefixes removed;
    /// - `invoke[path Resource#n tok dl=30 {params}]` (the token in the params shown `TOKEN`);
    /// - `cancel[path#n]`;
    /// - `finish[STATUS output error "cause"]`;
    /// - `(idle)`: nothing is in flight afterwards (the runtime may park the execution).
    fn step(&mut self, tick: Tick, input: In) -> String {
        let (taken, actions) = self.feed(tick, input);
        let mut groups = Vec::new();
        if let Some(taken) = taken {
            groups.push(if taken { "taken" } else { "refused" }.to_string());
        }
        groups.extend(actions.iter().map(|a| self.render(a)));
        if self.core.idle() {
            groups.push("(idle)".into());
        }
        groups.join(" ")
    }

    fn render(&self, action: &Action) -> String {
        match action {
            Action::Commit(c) => {
                let events: Vec<&str> = c.events.iter().map(|e| e.kind).collect();
                let frames: Vec<String> = c
                    .frames
                    .iter()
                    .map(|(path, frame)| match frame {
                        Some(f) => format!("{}={}", show_path(path), self.show_frame(path, f)),
                        None => format!("-{}", show_path(path)),
                    })
                    .collect();
                let mut parts = vec![events.join(" ")];
                if !frames.is_empty() {
                    parts.push("|".into());
                    parts.push(frames.join(" "));
                }
                format!("commit[{}]", parts.join(" ").trim_start())
            }
            Action::Invoke(inv) => {
                let short = inv.resource.rsplit(':').next().unwrap_or_default();
                let mut params = inv.params.to_string();
                let mut s = format!("invoke[{} {short}#{}", show_path(&inv.path), inv.invocation);
                if let Some(t) = &inv.token {
                    params = params.replace(t.as_str(), "TOKEN");
                    s.push_str(" tok");
                }
                if let Some(d) = inv.deadline {
                    s.push_str(&format!(" dl={}", rel(d)));
                }
                format!("{s} {params}]")
            }
            Action::Cancel { path, invocation } => format!("cancel[{}#{invocation}]", show_path(path)),
            Action::Finish(end) => {
                let mut s = format!("finish[{}", end.status.as_str());
                if let Some(o) = &end.output {
                    s.push_str(&format!(" {o}"));
                }
                if let Some(e) = &end.error {
                    s.push_str(&format!(" {e}"));
                }
                if let Some(c) = &end.cause {
                    s.push_str(&format!(" {c:?}"));
                }
                s + "]"
            }
        }
    }

    fn show_frame(&self, path: &str, f: &Frame) -> String {
        let name = machine_at(self.core.x.machine, path)
            .and_then(|m| m.states.get(f.state))
            .map_or("?".to_string(), |s| s.name.to_string());
        let status = match &f.status {
            FrameStatus::Ready => "Ready".to_string(),
            FrameStatus::Waiting { until, .. } => format!("Waiting({})", rel(*until)),
            FrameStatus::Backoff { until } => format!("Backoff({})", rel(*until)),
            FrameStatus::Task(t) => {
                let mut parts = vec![format!("#{}", t.invocation)];
                if t.token.is_some() {
                    parts.push("tok".into());
                }
                if t.submitted {
                    parts.push("sub".into());
                }
                if let Some(d) = t.deadline {
                    parts.push(format!("dl={}", rel(d)));
                }
                if let Some(d) = t.heartbeat_deadline {
                    parts.push(format!("hb={}", rel(d)));
                }
                format!("Task({})", parts.join(","))
            }
            FrameStatus::Children(_) => "Children".into(),
            FrameStatus::Done { output } => format!("Done({output})"),
            FrameStatus::Failed { error, .. } => format!("Failed({error})"),
        };
        let attempts = if f.attempts.iter().any(|&a| a > 0) {
            let a: Vec<String> = f.attempts.iter().map(u32::to_string).collect();
            format!("[{}]", a.join(","))
        } else {
            String::new()
        };
        format!("{name}:{status}{attempts}")
    }
}

fn show_path(path: &str) -> &str {
    if path.is_empty() {
        "top"
    } else {
        path
    }
}

/// `next_timers()` as seconds after T0: (on the workflow's clock, on the real clock).
type Timers = (Option<f64>, Option<f64>);

/// A line of a script: the input, when, and the summary the core must answer with.
type Line = (Tick, In, &'static str);

/// A definition, a script, and what else must hold once it has run.
struct Row {
    name: &'static str,
    def: Value,
    steps: Vec<Line>,
    /// The details that the last event of a kind must have.
    details: Vec<(&'static str, Value)>,
    /// `next_timers()` after step `i`, as seconds after T0.
    timers: Vec<(usize, Timers)>,
}

fn row(name: &'static str, def: Value, steps: Vec<Line>) -> Row {
    Row { name, def, steps, details: Vec::new(), timers: Vec::new() }
}

/// A row whose whole story is the first advance.
fn start_row(name: &'static str, def: Value, input: Value, want: &'static str) -> Row {
    row(name, def, vec![(at(0.0), In::Start(input), want)])
}

impl Row {
    fn details(mut self, kind: &'static str, details: Value) -> Row {
        self.details.push((kind, details));
        self
    }

    fn timers_after(mut self, step: usize, wf: Option<f64>, real: Option<f64>) -> Row {
        self.timers.push((step, (wf, real)));
        self
    }
}

fn play(d: &mut Driver, name: &str, steps: &[Line], timers: &[(usize, Timers)]) {
    for (i, (tick, input, want)) in steps.iter().enumerate() {
        let got = d.step(*tick, input.clone());
        assert_eq!(got, *want, "row '{name}', step {i}");
        // What the runtime sleeps on is never later than the exact soonest timers (taken
        // first: the exact scan refreshes it).
        let (kept, exact) = (d.core.soonest_timers(), d.core.next_timers());
        let not_later =
            |k: Option<DateTime<Utc>>, e: Option<DateTime<Utc>>| e.is_none_or(|e| k.is_some_and(|k| k <= e));
        assert!(
            not_later(kept.0, exact.0) && not_later(kept.1, exact.1),
            "row '{name}', step {i}: soonest_timers {kept:?} later than next_timers {exact:?}"
        );
        for (_, (wf, real)) in timers.iter().filter(|(s, _)| *s == i) {
            let want = (wf.map(time), real.map(time));
            assert_eq!(d.core.next_timers(), want, "row '{name}', next_timers after step {i}");
        }
    }
}

/// Plays a row on a new execution and checks what it says; the driver, for more checks.
fn play_row(row: &Row) -> Driver {
    let mut d = Driver::new(&row.def);
    play(&mut d, row.name, &row.steps, &row.timers);
    check_details(&d, row.name, &row.details);
    // Whatever the row: event ids run on from 1 and each event follows an earlier one.
    for (i, e) in d.history.iter().enumerate() {
        assert_eq!(e.id, i as u64 + 1, "row '{}': ids of {:?}", row.name, d.history);
        assert!(e.previous_event_id < e.id, "row '{}': event {e:?} follows a later one", row.name);
    }
    d
}

fn play_rows(rows: &[Row]) -> Vec<Driver> {
    rows.iter().map(play_row).collect()
}

fn check_details(d: &Driver, name: &str, details: &[(&'static str, Value)]) {
    for (kind, want) in details {
        let e = d.history.iter().rev().find(|e| e.kind == *kind);
        let got = e.and_then(|e| e.details.as_ref()).map(|(_, v)| v.to_value());
        assert_eq!(got.as_ref(), Some(want), "row '{name}': details of the last {kind}");
    }
}

fn ok(v: Value) -> Result<Value, Failure> {
    Ok(v)
}

fn err(error: &str, cause: &str) -> Result<Value, Failure> {
    Err(fail(error, cause))
}

/// `{"StartAt": first, "States": {...}}`.
fn machine(first: &str, states: Value) -> Value {
    json!({"StartAt": first, "States": states})
}

/// A one-Task branch or processor.
fn task_branch(name: &str, resource: &str) -> Value {
    machine(name, json!({name: {"Type": "Task", "Resource": resource, "End": true}}))
}

/// A callback Task state whose Payload carries its token.
fn callback(function: &str) -> Value {
    json!({
        "Type": "Task",
        "Resource": CALLBACK,
        "Parameters": {"FunctionName": function, "Payload": {"token.$": "$$.Task.Token"}},
    })
}

/// `base` with the keys of `extra` added.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// `{"Type": "Map", ...}` over `$.items`, each item through a Lambda Task `A`.
fn lambda_map(extra: Value) -> Value {
    let map = json!({
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": task_branch("A", LAMBDA_A),
        "End": true,
    });
    machine("M", json!({"M": with(map, extra)}))
}

/// A Parallel state of two Lambda Task branches, `A` and `B`.
fn lambda_parallel(extra: Value) -> Value {
    let par = json!({
        "Type": "Parallel",
        "Branches": [task_branch("A", LAMBDA_A), task_branch("B", LAMBDA_B)],
        "End": true,
    });
    machine("Par", json!({"Par": with(par, extra)}))
}

/// A Task `T` of `resource` with `extra` fields.
fn task_machine(resource: &str, extra: Value) -> Value {
    with_caught(machine(
        "T",
        json!({"T": with(json!({"Type": "Task", "Resource": resource, "End": true}), extra)}),
    ))
}

/// With a catcher in the definition, the `Caught` state it goes to: a Pass state that keeps
/// the caught error's name only (what a Catch row is about).
fn with_caught(mut def: Value) -> Value {
    if def.to_string().contains("\"Caught\"") {
        def["States"]["Caught"] =
            json!({"Type": "Pass", "Parameters": {"error.$": "$.err.Error"}, "End": true});
    }
    def
}

fn catch_to_caught(errors: Value) -> Value {
    json!([{"ErrorEquals": errors, "ResultPath": "$.err", "Next": "Caught"}])
}

// ------------------------------------------------------------------------------------------
// 1. State types
// ------------------------------------------------------------------------------------------

#[test]
fn pass_states() {
    let rows = [
        start_row(
            "Result replaces the input",
            machine("P", json!({"P": {"Type": "Pass", "Result": {"a": 1}, "End": true}})),
            json!({"x": 0}),
            r#"commit[ExecutionStarted PassStateEntered PassStateExited ExecutionSucceeded | top=P:Ready] finish[SUCCEEDED {"a":1}]"#,
        ),
        start_row(
            "ResultPath puts the Result into the input",
            machine("P", json!({"P": {"Type": "Pass", "Result": {"b": 2}, "ResultPath": "$.r", "End": true}})),
            json!({"a": 1}),
            r#"commit[ExecutionStarted PassStateEntered PassStateExited ExecutionSucceeded | top=P:Ready] finish[SUCCEEDED {"a":1,"r":{"b":2}}]"#,
        ),
        start_row(
            "ResultPath null keeps the input",
            machine("P", json!({"P": {"Type": "Pass", "Result": 5, "ResultPath": null, "End": true}})),
            json!({"a": 1}),
            r#"commit[ExecutionStarted PassStateEntered PassStateExited ExecutionSucceeded | top=P:Ready] finish[SUCCEEDED {"a":1}]"#,
        ),
        start_row(
            "Parameters pick from the input",
            machine("P", json!({"P": {"Type": "Pass", "Parameters": {"x.$": "$.a", "k": "v"}, "End": true}})),
            json!({"a": 1}),
            r#"commit[ExecutionStarted PassStateEntered PassStateExited ExecutionSucceeded | top=P:Ready] finish[SUCCEEDED {"x":1,"k":"v"}]"#,
        ),
        // Nothing but pure states: the whole chain is one commit, the last frame in it.
        start_row(
            "a chain of Pass states is one advance",
            machine(
                "P1",
                json!({
                    "P1": {"Type": "Pass", "Result": {"n": 1}, "Next": "P2"},
                    "P2": {"Type": "Pass", "Parameters": {"m.$": "$.n"}, "End": true},
                }),
            ),
            json!({}),
            r#"commit[ExecutionStarted PassStateEntered PassStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=P2:Ready] finish[SUCCEEDED {"m":1}]"#,
        )
        .details("PassStateExited", json!({"name": "P2", "output": "{\"m\":1}", "outputDetails": {"truncated": false}}))
        .details("ExecutionSucceeded", json!({"output": "{\"m\":1}", "outputDetails": {"truncated": false}})),
    ];
    play_rows(&rows);
}

#[test]
fn choice_states() {
    let states = |default: bool| {
        let c = json!({
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
                {"Variable": "$.n", "NumericEquals": 0, "Next": "Zero"},
            ],
        });
        let mut states = json!({
            "C": c,
            "Big": {"Type": "Pass", "Result": "big", "End": true},
            "Zero": {"Type": "Pass", "Result": "zero", "End": true},
        });
        if default {
            states["C"]["Default"] = json!("Small");
            states["Small"] = json!({"Type": "Pass", "Result": "small", "End": true});
        }
        machine("C", states)
    };
    let rows = [
        start_row(
            "the first rule that holds",
            states(true),
            json!({"n": 42}),
            r#"commit[ExecutionStarted ChoiceStateEntered ChoiceStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=Big:Ready] finish[SUCCEEDED "big"]"#,
        ),
        start_row(
            "a later rule",
            states(true),
            json!({"n": 0}),
            r#"commit[ExecutionStarted ChoiceStateEntered ChoiceStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=Zero:Ready] finish[SUCCEEDED "zero"]"#,
        ),
        start_row(
            "no rule holds: Default",
            states(true),
            json!({"n": 5}),
            r#"commit[ExecutionStarted ChoiceStateEntered ChoiceStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=Small:Ready] finish[SUCCEEDED "small"]"#,
        ),
        start_row(
            "no rule holds and no Default: States.Runtime, as AWS records it",
            states(false),
            json!({"n": 5}),
            r#"commit[ExecutionStarted ChoiceStateEntered ExecutionFailed | top=C:Failed(States.Runtime)] finish[FAILED States.Runtime "An error occurred while executing the state 'C' (entered at the event id #2). Failed to transition out of the state. The state does not point to a next state."]"#,
        )
        .details(
            "ExecutionFailed",
            json!({"error": "States.Runtime", "cause": "An error occurred while executing the state 'C' (entered at the event id #2). Failed to transition out of the state. The state does not point to a next state."}),
        ),
    ];
    play_rows(&rows);
}

#[test]
fn wait_states() {
    let then_pass = |wait: Value| {
        machine("W", json!({"W": with(wait, json!({"Next": "P"})), "P": {"Type": "Pass", "End": true}}))
    };
    let rows = [
        row(
            "Seconds: waits, nothing before its time, goes on at it",
            then_pass(json!({"Type": "Wait", "Seconds": 10})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), "commit[ExecutionStarted WaitStateEntered | top=W:Waiting(10)] (idle)"),
                (at(5.0), In::Timers, "(idle)"),
                (at(9.999), In::Timers, "(idle)"),
                (
                    at(10.0),
                    In::Timers,
                    r#"commit[WaitStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=P:Ready] finish[SUCCEEDED {"a":1}]"#,
                ),
            ],
        )
        .timers_after(0, Some(10.0), None),
        row(
            "SecondsPath",
            then_pass(json!({"Type": "Wait", "SecondsPath": "$.s"})),
            vec![
                (at(0.0), In::Start(json!({"s": 3})), "commit[ExecutionStarted WaitStateEntered | top=W:Waiting(3)] (idle)"),
                (at(2.999), In::Timers, "(idle)"),
                (
                    at(3.0),
                    In::Timers,
                    r#"commit[WaitStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=P:Ready] finish[SUCCEEDED {"s":3}]"#,
                ),
            ],
        ),
        // The Wait's end follows the workflow's clock, whatever the real clock says.
        row(
            "Timestamp, on the workflow's clock",
            then_pass(json!({"Type": "Wait", "Timestamp": "2024-01-01T00:01:00Z"})),
            vec![
                (at(0.0), In::Start(json!({})), "commit[ExecutionStarted WaitStateEntered | top=W:Waiting(60)] (idle)"),
                (at2(59.0, 120.0), In::Timers, "(idle)"),
                (
                    at2(60.0, 61.0),
                    In::Timers,
                    "commit[WaitStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=P:Ready] finish[SUCCEEDED {}]",
                ),
            ],
        ),
        row(
            "a Timestamp already past ends at once",
            then_pass(json!({"Type": "Wait", "TimestampPath": "$.t"})),
            vec![(
                at(0.0),
                In::Start(json!({"t": "2023-12-31T23:59:00Z"})),
                r#"commit[ExecutionStarted WaitStateEntered WaitStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=P:Ready] finish[SUCCEEDED {"t":"2023-12-31T23:59:00Z"}]"#,
            )],
        ),
        row(
            "a Wait that ends the machine",
            machine("W", json!({"W": {"Type": "Wait", "Seconds": 2, "End": true}})),
            vec![
                (at(0.0), In::Start(json!([1])), "commit[ExecutionStarted WaitStateEntered | top=W:Waiting(2)] (idle)"),
                (at(2.5), In::Timers, "commit[WaitStateExited ExecutionSucceeded] finish[SUCCEEDED [1]]"),
            ],
        ),
    ];
    play_rows(&rows);
}

#[test]
fn succeed_and_fail_states() {
    let fail_state = |f: Value| machine("F", json!({"F": with(json!({"Type": "Fail"}), f)}));
    let rows = [
        start_row(
            "Succeed",
            machine("S", json!({"S": {"Type": "Succeed"}})),
            json!({"a": 1}),
            r#"commit[ExecutionStarted SucceedStateEntered SucceedStateExited ExecutionSucceeded | top=S:Ready] finish[SUCCEEDED {"a":1}]"#,
        ),
        start_row(
            "Succeed with OutputPath",
            machine("S", json!({"S": {"Type": "Succeed", "OutputPath": "$.a"}})),
            json!({"a": [1, 2]}),
            "commit[ExecutionStarted SucceedStateEntered SucceedStateExited ExecutionSucceeded | top=S:Ready] finish[SUCCEEDED [1,2]]",
        ),
        start_row(
            "Fail with Error and Cause",
            fail_state(json!({"Error": "Oops", "Cause": "it broke"})),
            json!({}),
            r#"commit[ExecutionStarted FailStateEntered ExecutionFailed | top=F:Failed(Oops)] finish[FAILED Oops "it broke"]"#,
        )
        .details("ExecutionFailed", json!({"error": "Oops", "cause": "it broke"})),
        // AWS leaves out what was not given, in the result and in the event.
        start_row(
            "Fail with Error only: no cause",
            fail_state(json!({"Error": "Oops"})),
            json!({}),
            "commit[ExecutionStarted FailStateEntered ExecutionFailed | top=F:Failed(Oops)] finish[FAILED Oops]",
        )
        .details("ExecutionFailed", json!({"error": "Oops"})),
        start_row(
            "Fail with neither",
            fail_state(json!({})),
            json!({}),
            "commit[ExecutionStarted FailStateEntered ExecutionFailed | top=F:Failed()] finish[FAILED]",
        )
        .details("ExecutionFailed", json!({})),
        start_row(
            "Fail with ErrorPath and CausePath, after a Pass",
            machine(
                "P",
                json!({
                    "P": {"Type": "Pass", "Next": "F"},
                    "F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"},
                }),
            ),
            json!({"e": "E1", "c": "C1"}),
            r#"commit[ExecutionStarted PassStateEntered PassStateExited FailStateEntered ExecutionFailed | top=F:Failed(E1)] finish[FAILED E1 "C1"]"#,
        ),
    ];
    play_rows(&rows);
}

#[test]
fn task_states() {
    let rows = [
        row(
            "the result lands at ResultPath",
            task_machine(LAMBDA_A, json!({"Parameters": {"x.$": "$.a"}, "ResultPath": "$.r"})),
            vec![
                (
                    at(0.0),
                    In::Start(json!({"a": 1})),
                    r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"x":1}]"#,
                ),
                (
                    at(1.0),
                    In::Done("", ok(json!({"y": 2}))),
                    r#"commit[LambdaFunctionSucceeded TaskStateExited ExecutionSucceeded] finish[SUCCEEDED {"a":1,"r":{"y":2}}]"#,
                ),
            ],
        )
        .details(
            "LambdaFunctionScheduled",
            json!({"input": "{\"x\":1}", "inputDetails": {"truncated": false}, "resource": LAMBDA_A}),
        )
        .details(
            "LambdaFunctionSucceeded",
            json!({"output": "{\"y\":2}", "outputDetails": {"truncated": false}}),
        ),
        row(
            "a service integration: Task* events",
            task_machine(SQS, json!({"Parameters": {"QueueUrl": "q", "MessageBody.$": "$.m"}})),
            vec![
                (
                    at(0.0),
                    In::Start(json!({"m": "hi"})),
                    r#"commit[ExecutionStarted TaskStateEntered TaskScheduled TaskStarted | top=T:Task(#1)] invoke[top sendMessage#1 {"QueueUrl":"q","MessageBody":"hi"}]"#,
                ),
                (
                    at(1.0),
                    In::Done("", ok(json!({"MessageId": "m1"}))),
                    r#"commit[TaskSucceeded TaskStateExited ExecutionSucceeded] finish[SUCCEEDED {"MessageId":"m1"}]"#,
                ),
            ],
        )
        .details(
            "TaskScheduled",
            json!({
                "resourceType": "sqs",
                "resource": "sendMessage",
                "region": "us-east-1",
                "parameters": "{\"QueueUrl\":\"q\",\"MessageBody\":\"hi\"}",
            }),
        )
        .details("TaskStarted", json!({"resourceType": "sqs", "resource": "sendMessage"})),
        row(
            "a failure that nothing handles fails the execution",
            task_machine(LAMBDA_A, json!({})),
            vec![
                (
                    at(0.0),
                    In::Start(json!({"a": 1})),
                    r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"a":1}]"#,
                ),
                (
                    at(1.0),
                    In::Done("", err("Boom", "bad")),
                    r#"commit[LambdaFunctionFailed ExecutionFailed | top=T:Failed(Boom)] finish[FAILED Boom "bad"]"#,
                ),
                (at(2.0), In::Done("", ok(json!(1))), ""),
            ],
        )
        .details("LambdaFunctionFailed", json!({"error": "Boom", "cause": "bad"})),
        // Backoff: IntervalSeconds × BackoffRate^attempt from the failure; each attempt sees
        // its count in $$.State.RetryCount; a late answer to an earlier attempt is dropped.
        row(
            "Retry backs off, calls again, and gives up after MaxAttempts",
            task_machine(
                LAMBDA_A,
                json!({
                    "Parameters": {"n.$": "$$.State.RetryCount"},
                    "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 2}],
                }),
            ),
            vec![
                (
                    at(0.0),
                    In::Start(json!({"a": 1})),
                    r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"n":0}]"#,
                ),
                (at(1.0), In::Done("", err("Boom", "bad")), "commit[LambdaFunctionFailed | top=T:Backoff(3)[1]] (idle)"),
                (at(2.9), In::Timers, "(idle)"),
                (
                    at(3.0),
                    In::Timers,
                    r#"commit[LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#2)[1]] invoke[top A#2 {"n":1}]"#,
                ),
                (at(3.5), In::Late("", 1, ok(json!("late"))), ""),
                (at(4.0), In::Done("", err("Boom", "bad")), "commit[LambdaFunctionFailed | top=T:Backoff(10)[2]] (idle)"),
                (
                    at(10.0),
                    In::Timers,
                    r#"commit[LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#3)[2]] invoke[top A#3 {"n":2}]"#,
                ),
                (
                    at(11.0),
                    In::Done("", err("Boom", "bad")),
                    r#"commit[LambdaFunctionFailed ExecutionFailed | top=T:Failed(Boom)[2]] finish[FAILED Boom "bad"]"#,
                ),
            ],
        )
        .timers_after(1, Some(3.0), None),
        row(
            "Retry's MaxDelaySeconds caps the backoff",
            task_machine(
                LAMBDA_A,
                json!({"Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 4, "MaxDelaySeconds": 5}]}),
            ),
            vec![
                (
                    at(0.0),
                    In::Start(json!({})),
                    "commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {}]",
                ),
                (at(0.0), In::Done("", err("Boom", "")), "commit[LambdaFunctionFailed | top=T:Backoff(4)[1]] (idle)"),
                (
                    at(4.0),
                    In::Timers,
                    "commit[LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#2)[1]] invoke[top A#2 {}]",
                ),
                (at(4.0), In::Done("", err("Boom", "")), "commit[LambdaFunctionFailed | top=T:Backoff(9)[2]] (idle)"),
            ],
        ),
        row(
            "Catch goes to its Next with the error output",
            machine(
                "T",
                json!({
                    "T": {
                        "Type": "Task",
                        "Resource": LAMBDA_A,
                        "Catch": [
                            {"ErrorEquals": ["Other"], "Next": "Wrong"},
                            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Recovered"},
                        ],
                        "End": true,
                    },
                    "Wrong": {"Type": "Fail", "Error": "Wrong"},
                    "Recovered": {"Type": "Pass", "End": true},
                }),
            ),
            vec![
                (
                    at(0.0),
                    In::Start(json!({"a": 1})),
                    r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"a":1}]"#,
                ),
                (
                    at(1.0),
                    In::Done("", err("Boom", "bad")),
                    r#"commit[LambdaFunctionFailed TaskStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=Recovered:Ready] finish[SUCCEEDED {"a":1,"err":{"Error":"Boom","Cause":"bad"}}]"#,
                ),
            ],
        ),
        row(
            "Retry first, then Catch",
            task_machine(
                LAMBDA_A,
                json!({
                    "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                    "Catch": catch_to_caught(json!(["States.ALL"])),
                }),
            ),
            vec![
                (
                    at(0.0),
                    In::Start(json!({"a": 1})),
                    r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"a":1}]"#,
                ),
                (at(1.0), In::Done("", err("Boom", "bad")), "commit[LambdaFunctionFailed | top=T:Backoff(2)[1]] (idle)"),
                (
                    at(2.0),
                    In::Timers,
                    r#"commit[LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#2)[1]] invoke[top A#2 {"a":1}]"#,
                ),
                (
                    at(3.0),
                    In::Done("", err("Boom", "bad")),
                    r#"commit[LambdaFunctionFailed TaskStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=Caught:Ready] finish[SUCCEEDED {"error":"Boom"}]"#,
                ),
            ],
        ),
    ];
    play_rows(&rows);
}

#[test]
fn parallel_states() {
    const START: &str = r#"commit[ExecutionStarted ParallelStateEntered ParallelStateStarted TaskStateEntered TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionScheduled LambdaFunctionStarted | top=Par:Children /0/0=A:Task(#1) /0/1=B:Task(#2)] invoke[/0/0 A#1 {"in":1}] invoke[/0/1 B#2 {"in":1}]"#;
    let rows = [
        row(
            "every branch at once; outputs in branch order, not completion order",
            lambda_parallel(json!({})),
            vec![
                (at(0.0), In::Start(json!({"in": 1})), START),
                (at(1.0), In::Done("/0/1", ok(json!("b"))), r#"commit[LambdaFunctionSucceeded TaskStateExited | /0/1=B:Done("b")]"#),
                (
                    at(2.0),
                    In::Done("/0/0", ok(json!("a"))),
                    r#"commit[LambdaFunctionSucceeded TaskStateExited ParallelStateSucceeded ParallelStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED ["a","b"]]"#,
                ),
            ],
        ),
        row(
            "a failing branch cancels the others and fails the state",
            lambda_parallel(json!({})),
            vec![
                (at(0.0), In::Start(json!({"in": 1})), START),
                (
                    at(1.0),
                    In::Done("/0/0", err("Boom", "bad")),
                    r#"commit[LambdaFunctionFailed ParallelStateFailed ExecutionFailed | /0/0=A:Failed(Boom) top=Par:Failed(Boom)] cancel[/0/1#2] finish[FAILED Boom "bad"]"#,
                ),
                (at(2.0), In::Done("/0/1", ok(json!("b"))), ""),
            ],
        ),
        row(
            "a branch's failure caught on the Parallel state",
            machine(
                "Par",
                json!({
                    "Par": {
                        "Type": "Parallel",
                        "Branches": [task_branch("A", LAMBDA_A), task_branch("B", LAMBDA_B)],
                        "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.err", "Next": "R"}],
                        "End": true,
                    },
                    "R": {"Type": "Pass", "End": true},
                }),
            ),
            vec![
                (at(0.0), In::Start(json!({"in": 1})), START),
                (
                    at(1.0),
                    In::Done("/0/1", err("Boom", "bad")),
                    r#"commit[LambdaFunctionFailed ParallelStateFailed ParallelStateExited PassStateEntered PassStateExited ExecutionSucceeded | -/0 top=R:Ready] cancel[/0/0#1] finish[SUCCEEDED {"in":1,"err":{"Error":"Boom","Cause":"bad"}}]"#,
                ),
            ],
        ),
        // A retried Parallel state begins anew: its branches' frames go, new calls are made.
        row(
            "Retry on the Parallel state runs every branch again",
            lambda_parallel(json!({"Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 1}]})),
            vec![
                (at(0.0), In::Start(json!({"in": 1})), START),
                (
                    at(1.0),
                    In::Done("/0/0", err("Boom", "bad")),
                    "commit[LambdaFunctionFailed ParallelStateFailed | -/0 top=Par:Backoff(2)[1]] cancel[/0/1#2] (idle)",
                ),
                (
                    at(2.0),
                    In::Timers,
                    r#"commit[ParallelStateStarted TaskStateEntered TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionScheduled LambdaFunctionStarted | top=Par:Children[1] /0/0=A:Task(#3) /0/1=B:Task(#4)] invoke[/0/0 A#3 {"in":1}] invoke[/0/1 B#4 {"in":1}]"#,
                ),
                (at(2.5), In::Late("/0/1", 2, ok(json!("stale"))), ""),
                (at(3.0), In::Done("/0/1", ok(json!("b"))), r#"commit[LambdaFunctionSucceeded TaskStateExited | /0/1=B:Done("b")]"#),
                (
                    at(4.0),
                    In::Done("/0/0", ok(json!("a"))),
                    r#"commit[LambdaFunctionSucceeded TaskStateExited ParallelStateSucceeded ParallelStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED ["a","b"]]"#,
                ),
            ],
        ),
        start_row(
            "branches of Pass states end in the same advance",
            machine(
                "Par",
                json!({"Par": {
                    "Type": "Parallel",
                    "Branches": (["x", "y", "z"]
                        .map(|r| machine(r, json!({r: {"Type": "Pass", "Result": r, "End": true}})))),
                    "End": true,
                }}),
            ),
            json!({}),
            r#"commit[ExecutionStarted ParallelStateEntered ParallelStateStarted PassStateEntered PassStateEntered PassStateEntered PassStateExited PassStateExited PassStateExited ParallelStateSucceeded ParallelStateExited ExecutionSucceeded | top=Par:Children -/0] finish[SUCCEEDED ["x","y","z"]]"#,
        ),
    ];
    play_rows(&rows);
}

#[test]
fn map_states() {
    let items = || In::Start(json!({"items": [1, 2, 3]}));
    const ALL_AT_ONCE: &str = "commit[ExecutionStarted MapStateEntered MapStateStarted MapIterationStarted TaskStateEntered MapIterationStarted TaskStateEntered MapIterationStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionScheduled LambdaFunctionStarted | top=M:Children /0/0=A:Task(#1) /0/1=A:Task(#2) /0/2=A:Task(#3)] invoke[/0/0 A#1 1] invoke[/0/1 A#2 2] invoke[/0/2 A#3 3]";
    let rows = [
        row(
            "MaxConcurrency 1: one iteration at a time, in order",
            lambda_map(json!({"MaxConcurrency": 1})),
            vec![
                (
                    at(0.0),
                    items(),
                    "commit[ExecutionStarted MapStateEntered MapStateStarted MapIterationStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=M:Children /0/0=A:Task(#1)] invoke[/0/0 A#1 1]",
                ),
                (
                    at(1.0),
                    In::Done("/0/0", ok(json!(10))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapIterationStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | /0/0=A:Done(10) /0/1=A:Task(#2)] invoke[/0/1 A#2 2]",
                ),
                (
                    at(2.0),
                    In::Done("/0/1", ok(json!(20))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapIterationStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | /0/1=A:Done(20) /0/2=A:Task(#3)] invoke[/0/2 A#3 3]",
                ),
                (
                    at(3.0),
                    In::Done("/0/2", ok(json!(30))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapStateSucceeded MapStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED [10,20,30]]",
                ),
            ],
        )
        .details("MapStateStarted", json!({"length": 3}))
        .details("MapIterationSucceeded", json!({"name": "M", "index": 2})),
        row(
            "MaxConcurrency 0: all at once; outputs in item order",
            lambda_map(json!({"MaxConcurrency": 0})),
            vec![
                (at(0.0), items(), ALL_AT_ONCE),
                (
                    at(1.0),
                    In::Done("/0/2", ok(json!(30))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded | /0/2=A:Done(30)]",
                ),
                (
                    at(2.0),
                    In::Done("/0/0", ok(json!(10))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded | /0/0=A:Done(10)]",
                ),
                (
                    at(3.0),
                    In::Done("/0/1", ok(json!(20))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapStateSucceeded MapStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED [10,20,30]]",
                ),
            ],
        ),
        row(
            "MaxConcurrency 2: the third begins when one ends",
            lambda_map(json!({"MaxConcurrency": 2})),
            vec![
                (
                    at(0.0),
                    items(),
                    "commit[ExecutionStarted MapStateEntered MapStateStarted MapIterationStarted TaskStateEntered MapIterationStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionScheduled LambdaFunctionStarted | top=M:Children /0/0=A:Task(#1) /0/1=A:Task(#2)] invoke[/0/0 A#1 1] invoke[/0/1 A#2 2]",
                ),
                (
                    at(1.0),
                    In::Done("/0/1", ok(json!(20))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapIterationStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | /0/1=A:Done(20) /0/2=A:Task(#3)] invoke[/0/2 A#3 3]",
                ),
                (
                    at(2.0),
                    In::Done("/0/2", ok(json!(30))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded | /0/2=A:Done(30)]",
                ),
                (
                    at(3.0),
                    In::Done("/0/0", ok(json!(10))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapStateSucceeded MapStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED [10,20,30]]",
                ),
            ],
        ),
        row(
            "ToleratedFailureCount 1: one failure is kept in the output",
            lambda_map(json!({"MaxConcurrency": 0, "ToleratedFailureCount": 1})),
            vec![
                (at(0.0), items(), ALL_AT_ONCE),
                (
                    at(1.0),
                    In::Done("/0/1", err("Boom", "bad")),
                    "commit[LambdaFunctionFailed MapIterationFailed | /0/1=A:Failed(Boom)]",
                ),
                (
                    at(2.0),
                    In::Done("/0/0", ok(json!(10))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded | /0/0=A:Done(10)]",
                ),
                (
                    at(3.0),
                    In::Done("/0/2", ok(json!(30))),
                    r#"commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapStateSucceeded MapStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED [10,{"Error":"Boom","Cause":"bad"},30]]"#,
                ),
            ],
        ),
        row(
            "ToleratedFailureCount 1: a second failure exceeds it",
            lambda_map(json!({"MaxConcurrency": 0, "ToleratedFailureCount": 1})),
            vec![
                (at(0.0), items(), ALL_AT_ONCE),
                (
                    at(1.0),
                    In::Done("/0/1", err("Boom", "bad")),
                    "commit[LambdaFunctionFailed MapIterationFailed | /0/1=A:Failed(Boom)]",
                ),
                (
                    at(2.0),
                    In::Done("/0/2", err("Boom", "bad")),
                    r#"commit[LambdaFunctionFailed MapIterationFailed MapStateFailed ExecutionFailed | /0/2=A:Failed(Boom) top=M:Failed(States.ExceedToleratedFailureThreshold)] cancel[/0/0#1] finish[FAILED States.ExceedToleratedFailureThreshold "The specified tolerance threshold was exceeded"]"#,
                ),
            ],
        ),
        row(
            "no tolerance: the first failure fails the Map and cancels the rest",
            lambda_map(json!({"MaxConcurrency": 0})),
            vec![
                (at(0.0), items(), ALL_AT_ONCE),
                (
                    at(1.0),
                    In::Done("/0/0", err("Boom", "bad")),
                    r#"commit[LambdaFunctionFailed MapIterationFailed MapStateFailed ExecutionFailed | /0/0=A:Failed(Boom) top=M:Failed(Boom)] cancel[/0/1#2] cancel[/0/2#3] finish[FAILED Boom "bad"]"#,
                ),
            ],
        )
        .details("MapIterationFailed", json!({"name": "M", "index": 0})),
        start_row(
            "no items",
            lambda_map(json!({})),
            json!({"items": []}),
            "commit[ExecutionStarted MapStateEntered MapStateStarted MapStateSucceeded MapStateExited ExecutionSucceeded | top=M:Children -/0] finish[SUCCEEDED []]",
        ),
        start_row(
            "ItemSelector sees $$.Map.Item",
            machine(
                "M",
                json!({"M": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                    "ItemProcessor": machine("P", json!({"P": {"Type": "Pass", "End": true}})),
                    "End": true,
                }}),
            ),
            json!({"items": ["a", "b"]}),
            r#"commit[ExecutionStarted MapStateEntered MapStateStarted MapIterationStarted PassStateEntered MapIterationStarted PassStateEntered PassStateExited MapIterationSucceeded PassStateExited MapIterationSucceeded MapStateSucceeded MapStateExited ExecutionSucceeded | top=M:Children -/0] finish[SUCCEEDED [{"v":"a","i":0},{"v":"b","i":1}]]"#,
        ),
    ];
    play_rows(&rows);
}

// ------------------------------------------------------------------------------------------
// 2. Timers
// ------------------------------------------------------------------------------------------

#[test]
fn timers_at_depth() {
    let waits = |max: u64| {
        json!({
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": max,
            "ItemProcessor": machine("W", json!({"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}})),
            "End": true,
        })
    };
    let items = json!({"items": [{"s": 30}, {"s": 10}, {"s": 20}]});
    // (row, definition, a frame that waits after the start, the timers due in turn, output)
    let rows: [(&str, Value, &str, Vec<f64>, Value); 3] = [
        (
            "Map iterations wait at once: the soonest first",
            machine("M", json!({"M": waits(0)})),
            "/0/1",
            vec![10.0, 20.0, 30.0],
            json!([{"s": 30}, {"s": 10}, {"s": 20}]),
        ),
        (
            "MaxConcurrency 1: each wait begins when the one before ends",
            machine("M", json!({"M": waits(1)})),
            "/0/0",
            vec![30.0, 40.0, 60.0],
            json!([{"s": 30}, {"s": 10}, {"s": 20}]),
        ),
        (
            "a Map inside a Parallel branch, beside a Wait in the other branch",
            machine(
                "Par",
                json!({"Par": {
                    "Type": "Parallel",
                    "Branches": [
                        machine("M", json!({"M": waits(0)})),
                        machine("W2", json!({"W2": {"Type": "Wait", "Seconds": 15, "End": true}})),
                    ],
                    "End": true,
                }}),
            ),
            "/0/0/0/1",
            vec![10.0, 15.0, 20.0, 30.0],
            json!([[{"s": 30}, {"s": 10}, {"s": 20}], items.clone()]),
        ),
    ];
    for (name, def, deep, due, output) in rows {
        let mut d = Driver::new(&def);
        d.step(at(0.0), In::Start(items.clone()));
        assert!(
            matches!(d.core.state.frames.get(deep).map(|f| &f.status), Some(FrameStatus::Waiting { .. })),
            "row '{name}': {deep} waits"
        );
        for t in due {
            assert!(d.core.idle(), "row '{name}': idle before {t}");
            assert_eq!(d.core.next_timers(), (Some(time(t)), None), "row '{name}': the next timer");
            assert_eq!(d.step(at(t - 0.001), In::Timers), "(idle)", "row '{name}': just before {t}");
            d.step(at(t), In::Timers);
        }
        let want = End { status: Status::Succeeded, output: Some(output), error: None, cause: None };
        assert_eq!(d.end, Some(want), "row '{name}'");
    }
}

#[test]
fn task_timeouts() {
    let start = r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1,dl=30)] invoke[top A#1 dl=30 {"a":1}]"#;
    let timeout = |extra: Value| task_machine(LAMBDA_A, with(json!({"TimeoutSeconds": 30}), extra));
    let rows = [
        // The deadline is on the real clock: a workflow's clock that runs ahead does not count.
        row(
            "nothing before the deadline; at it the call is cancelled and the execution fails",
            timeout(json!({})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), start),
                (at(29.9), In::Timers, ""),
                (at2(40.0, 29.9), In::Timers, ""),
                (
                    at(30.0),
                    In::Timers,
                    "commit[LambdaFunctionTimedOut ExecutionFailed | top=T:Failed(States.Timeout)] cancel[top#1] finish[FAILED States.Timeout]",
                ),
                (at(31.0), In::Done("", ok(json!("late"))), ""),
            ],
        )
        .timers_after(0, None, Some(30.0))
        .details("LambdaFunctionTimedOut", json!({"error": "States.Timeout"}))
        .details("ExecutionFailed", json!({"error": "States.Timeout"})),
        row(
            "a service integration times out with TaskTimedOut",
            task_machine(SQS, json!({"TimeoutSeconds": 5, "Parameters": {"QueueUrl": "q", "MessageBody": "m"}})),
            vec![
                (
                    at(0.0),
                    In::Start(json!({})),
                    r#"commit[ExecutionStarted TaskStateEntered TaskScheduled TaskStarted | top=T:Task(#1,dl=5)] invoke[top sendMessage#1 dl=5 {"QueueUrl":"q","MessageBody":"m"}]"#,
                ),
                (
                    at(5.0),
                    In::Timers,
                    "commit[TaskTimedOut ExecutionFailed | top=T:Failed(States.Timeout)] cancel[top#1] finish[FAILED States.Timeout]",
                ),
            ],
        )
        .details("TaskTimedOut", json!({"error": "States.Timeout"})),
        row(
            "Catch States.Timeout",
            timeout(json!({"Catch": catch_to_caught(json!(["States.Timeout"]))})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), start),
                (
                    at(30.0),
                    In::Timers,
                    r#"commit[LambdaFunctionTimedOut TaskStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=Caught:Ready] cancel[top#1] finish[SUCCEEDED {"error":"States.Timeout"}]"#,
                ),
            ],
        ),
        row(
            "Retry States.Timeout: a new call with a new deadline",
            timeout(json!({"Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 1}]})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), start),
                (at(30.0), In::Timers, "commit[LambdaFunctionTimedOut | top=T:Backoff(31)[1]] cancel[top#1] (idle)"),
                (
                    at(31.0),
                    In::Timers,
                    r#"commit[LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#2,dl=61)[1]] invoke[top A#2 dl=61 {"a":1}]"#,
                ),
                (
                    at(32.0),
                    In::Done("", ok(json!("ok"))),
                    r#"commit[LambdaFunctionSucceeded TaskStateExited ExecutionSucceeded] finish[SUCCEEDED "ok"]"#,
                ),
            ],
        ),
        row(
            "States.TaskFailed does not catch a timeout",
            timeout(json!({"Catch": catch_to_caught(json!(["States.TaskFailed"]))})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), start),
                (
                    at(30.0),
                    In::Timers,
                    "commit[LambdaFunctionTimedOut ExecutionFailed | top=T:Failed(States.Timeout)] cancel[top#1] finish[FAILED States.Timeout]",
                ),
            ],
        ),
        row(
            "a branch's Task times out: the Parallel state fails and the other call is cancelled",
            machine(
                "Par",
                json!({"Par": {
                    "Type": "Parallel",
                    "Branches": [
                        machine("A", json!({"A": {"Type": "Task", "Resource": LAMBDA_A, "TimeoutSeconds": 10, "End": true}})),
                        task_branch("B", LAMBDA_B),
                    ],
                    "End": true,
                }}),
            ),
            vec![
                (
                    at(0.0),
                    In::Start(json!({})),
                    "commit[ExecutionStarted ParallelStateEntered ParallelStateStarted TaskStateEntered TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionScheduled LambdaFunctionStarted | top=Par:Children /0/0=A:Task(#1,dl=10) /0/1=B:Task(#2)] invoke[/0/0 A#1 dl=10 {}] invoke[/0/1 B#2 {}]",
                ),
                (
                    at(10.0),
                    In::Timers,
                    "commit[LambdaFunctionTimedOut ParallelStateFailed ExecutionFailed | /0/0=A:Failed(States.Timeout) top=Par:Failed(States.Timeout)] cancel[/0/0#1] cancel[/0/1#2] finish[FAILED States.Timeout]",
                ),
            ],
        )
        .timers_after(0, None, Some(10.0)),
    ];
    play_rows(&rows);
}

// ------------------------------------------------------------------------------------------
// 3. Callback tokens
// ------------------------------------------------------------------------------------------

#[test]
fn callback_tokens() {
    let then_wait = machine(
        "CB",
        json!({
            "CB": with(callback("f"), json!({"ResultPath": "$.r", "Next": "W"})),
            "W": {"Type": "Wait", "Seconds": 100, "End": true},
        }),
    );
    let start = r#"commit[ExecutionStarted TaskStateEntered TaskScheduled TaskStarted | top=CB:Task(#1,tok)] invoke[top invoke.waitForTaskToken#1 tok {"FunctionName":"f","Payload":{"token":"TOKEN"}}]"#;
    let submitted = "commit[TaskSubmitted | top=CB:Task(#1,tok,sub)] (idle)";
    let rows = [
        // After the Task has settled the execution goes on (a Wait), so a second answer has a
        // live core to disturb, and the final output shows it did not.
        row(
            "SendTaskSuccess; an unknown token and a second answer change nothing",
            then_wait.clone(),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), start),
                (at(1.0), In::Submitted(""), submitted),
                (at(2.0), In::StrangeToken(ok(json!("no"))), "refused (idle)"),
                (
                    at(3.0),
                    In::Token("", ok(json!({"v": 1}))),
                    "taken commit[TaskSucceeded TaskStateExited WaitStateEntered | top=W:Waiting(103)] (idle)",
                ),
                (at(4.0), In::Token("", ok(json!({"v": 2}))), "refused (idle)"),
                (at(5.0), In::Token("", err("Late", "too late")), "refused (idle)"),
                (
                    at(103.0),
                    In::Timers,
                    r#"commit[WaitStateExited ExecutionSucceeded] finish[SUCCEEDED {"a":1,"r":{"v":1}}]"#,
                ),
            ],
        )
        .details(
            "TaskSubmitted",
            json!({
                "output": "{\"StatusCode\":200}",
                "outputDetails": {"truncated": false},
                "resourceType": "lambda",
                "resource": "invoke.waitForTaskToken",
            }),
        )
        .details(
            "TaskSucceeded",
            json!({
                "output": "{\"v\":1}",
                "outputDetails": {"truncated": false},
                "resourceType": "lambda",
                "resource": "invoke.waitForTaskToken",
            }),
        ),
        row(
            "SendTaskFailure",
            then_wait.clone(),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), start),
                (at(1.0), In::Submitted(""), submitted),
                (
                    at(3.0),
                    In::Token("", err("Nope", "no")),
                    r#"taken commit[TaskFailed ExecutionFailed | top=CB:Failed(Nope)] finish[FAILED Nope "no"]"#,
                ),
            ],
        )
        .details(
            "TaskFailed",
            json!({"error": "Nope", "cause": "no", "resourceType": "lambda", "resource": "invoke.waitForTaskToken"}),
        ),
        // A fast worker can answer before the connector's hand-over is back.
        row(
            "a token answered before the hand-over; the late hand-over changes nothing",
            then_wait,
            vec![
                (at(0.0), In::Start(json!({"a": 1})), start),
                (
                    at(1.0),
                    In::Token("", ok(json!({"v": 1}))),
                    "taken commit[TaskSucceeded TaskStateExited WaitStateEntered | top=W:Waiting(101)] (idle)",
                ),
                (at(1.5), In::Submitted(""), "(idle)"),
            ],
        ),
        row(
            "an activity: scheduled, taken by a worker, answered",
            machine("Work", json!({"Work": {"Type": "Task", "Resource": ACTIVITY, "End": true}})),
            vec![
                (
                    at(0.0),
                    In::Start(json!({"a": 1})),
                    r#"commit[ExecutionStarted TaskStateEntered ActivityScheduled | top=Work:Task(#1,tok)] invoke[top work#1 tok {"a":1}]"#,
                ),
                (at(0.5), In::Submitted(""), "commit[| top=Work:Task(#1,tok,sub)] (idle)"),
                (at(1.0), In::Worker("", "w1"), "taken commit[ActivityStarted | top=Work:Task(#1,tok,sub)] (idle)"),
                (
                    at(2.0),
                    In::Token("", ok(json!("done"))),
                    r#"taken commit[ActivitySucceeded TaskStateExited ExecutionSucceeded] finish[SUCCEEDED "done"]"#,
                ),
            ],
        )
        .details(
            "ActivityScheduled",
            json!({"input": "{\"a\":1}", "inputDetails": {"truncated": false}, "resource": ACTIVITY}),
        )
        .details("ActivityStarted", json!({"workerName": "w1"})),
    ];
    for (row, d) in rows.iter().zip(play_rows(&rows)) {
        let token = d.token("");
        assert_eq!(token_execution(&token).as_deref(), Some(EXEC_ARN), "row '{}'", row.name);
        assert!(!d.core.owns_token(&token), "row '{}': the token is spent", row.name);
    }
    assert_eq!(token_execution("not-a-token"), None);
    assert_eq!(token_execution(&strange_token()).as_deref(), Some(EXEC_ARN));
}

// ------------------------------------------------------------------------------------------
// 4. Heartbeats
// ------------------------------------------------------------------------------------------

fn heartbeat_machine(extra: Value) -> Value {
    let cb = with(callback("f"), with(json!({"HeartbeatSeconds": 5, "End": true}), extra));
    with_caught(machine("CB", json!({"CB": cb})))
}

const HB_START: &str = r#"commit[ExecutionStarted TaskStateEntered TaskScheduled TaskStarted | top=CB:Task(#1,tok,hb=5)] invoke[top invoke.waitForTaskToken#1 tok {"FunctionName":"f","Payload":{"token":"TOKEN"}}]"#;
const HB_SUBMITTED: &str = "commit[TaskSubmitted | top=CB:Task(#1,tok,sub,hb=5)] (idle)";

#[test]
fn heartbeats() {
    let rows = [
        row(
            "a heartbeat moves the deadline; a missed one times the Task out",
            heartbeat_machine(json!({})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), HB_START),
                (at(0.0), In::Submitted(""), HB_SUBMITTED),
                (at(4.0), In::Timers, "(idle)"),
                (at(4.0), In::Beat(""), "taken commit[| top=CB:Task(#1,tok,sub,hb=9)] (idle)"),
                (at(8.0), In::Timers, "(idle)"),
                (
                    at(9.5),
                    In::Timers,
                    "commit[TaskTimedOut ExecutionFailed | top=CB:Failed(States.Timeout)] cancel[top#1] finish[FAILED States.Timeout]",
                ),
            ],
        )
        .timers_after(1, None, Some(5.0))
        .timers_after(3, None, Some(9.0))
        .details("TaskTimedOut", json!({"error": "States.Timeout"}))
        .details("ExecutionFailed", json!({"error": "States.Timeout"})),
        row(
            "no heartbeat: HeartbeatSeconds after the call; a strange token's beat counts for nothing",
            heartbeat_machine(json!({})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), HB_START),
                (at(0.0), In::Submitted(""), HB_SUBMITTED),
                (at(4.0), In::StrangeBeat, "refused (idle)"),
                (at(4.999), In::Timers, "(idle)"),
                (
                    at(5.0),
                    In::Timers,
                    "commit[TaskTimedOut ExecutionFailed | top=CB:Failed(States.Timeout)] cancel[top#1] finish[FAILED States.Timeout]",
                ),
            ],
        ),
        row(
            "Retry States.HeartbeatTimeout matches it",
            heartbeat_machine(
                json!({"Retry": [{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 1, "MaxAttempts": 1}]}),
            ),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), HB_START),
                (at(0.0), In::Submitted(""), HB_SUBMITTED),
                (at(5.0), In::Timers, "commit[TaskTimedOut | top=CB:Backoff(6)[1]] cancel[top#1] (idle)"),
                (
                    at(6.0),
                    In::Timers,
                    r#"commit[TaskScheduled TaskStarted | top=CB:Task(#2,tok,hb=11)[1]] invoke[top invoke.waitForTaskToken#2 tok {"FunctionName":"f","Payload":{"token":"TOKEN"}}]"#,
                ),
                (at(7.0), In::Submitted(""), "commit[TaskSubmitted | top=CB:Task(#2,tok,sub,hb=11)[1]] (idle)"),
                (
                    at(8.0),
                    In::Token("", ok(json!("ok"))),
                    r#"taken commit[TaskSucceeded TaskStateExited ExecutionSucceeded] finish[SUCCEEDED "ok"]"#,
                ),
            ],
        ),
        row(
            "Retry States.Timeout matches it too",
            heartbeat_machine(
                json!({"Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 1}]}),
            ),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), HB_START),
                (at(0.0), In::Submitted(""), HB_SUBMITTED),
                (at(5.0), In::Timers, "commit[TaskTimedOut | top=CB:Backoff(6)[1]] cancel[top#1] (idle)"),
            ],
        ),
        row(
            "Catch States.Timeout: the error output says States.Timeout",
            heartbeat_machine(json!({"Catch": catch_to_caught(json!(["States.Timeout"]))})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), HB_START),
                (at(0.0), In::Submitted(""), HB_SUBMITTED),
                (
                    at(5.0),
                    In::Timers,
                    r#"commit[TaskTimedOut TaskStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=Caught:Ready] cancel[top#1] finish[SUCCEEDED {"error":"States.Timeout"}]"#,
                ),
            ],
        ),
        row(
            "Catch States.HeartbeatTimeout: the error output still says States.Timeout",
            heartbeat_machine(json!({"Catch": catch_to_caught(json!(["States.HeartbeatTimeout"]))})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), HB_START),
                (at(0.0), In::Submitted(""), HB_SUBMITTED),
                (
                    at(5.0),
                    In::Timers,
                    r#"commit[TaskTimedOut TaskStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=Caught:Ready] cancel[top#1] finish[SUCCEEDED {"error":"States.Timeout"}]"#,
                ),
            ],
        ),
    ];
    play_rows(&rows);
}

/// AWS raises a missed heartbeat as `States.Timeout` (its docs: "a Task state either ran longer
/// than the TimeoutSeconds value, or failed to send a heartbeat for a period longer than the
/// HeartbeatSeconds value"), and `States.TaskFailed` matches every error but `States.Timeout`:
/// so it must not catch or retry a missed heartbeat, as it does not a TimeoutSeconds timeout
/// (`task_timeouts`, row "States.TaskFailed does not catch a timeout").
#[test]
fn task_failed_does_not_match_a_missed_heartbeat() {
    let timed_out = "commit[TaskTimedOut ExecutionFailed | top=CB:Failed(States.Timeout)] cancel[top#1] finish[FAILED States.Timeout]";
    let rows = [
        row(
            "Catch States.TaskFailed",
            heartbeat_machine(json!({"Catch": catch_to_caught(json!(["States.TaskFailed"]))})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), HB_START),
                (at(0.0), In::Submitted(""), HB_SUBMITTED),
                (at(5.0), In::Timers, timed_out),
            ],
        ),
        row(
            "Retry States.TaskFailed",
            heartbeat_machine(json!({"Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 1}]})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), HB_START),
                (at(0.0), In::Submitted(""), HB_SUBMITTED),
                (at(5.0), In::Timers, timed_out),
            ],
        ),
    ];
    // Every row's answers at once, so that the failure shows all the rows that go wrong.
    let mut got = Vec::new();
    let mut want = Vec::new();
    for r in &rows {
        let mut d = Driver::new(&r.def);
        let lines: Vec<String> =
            r.steps.iter().map(|(tick, input, _)| d.step(*tick, input.clone())).collect();
        got.push((r.name, lines));
        want.push((r.name, r.steps.iter().map(|(_, _, line)| line.to_string()).collect::<Vec<_>>()));
    }
    assert_eq!(got, want);
}

// ------------------------------------------------------------------------------------------
// 5. Stop
// ------------------------------------------------------------------------------------------

#[test]
fn stop() {
    let task_start = r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"a":1}]"#;
    let rows = [
        row(
            "a Task in flight is cancelled; nothing moves the execution after",
            task_machine(LAMBDA_A, json!({})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), task_start),
                (
                    at(1.0),
                    In::Stop(Some("Halt"), Some("by operator")),
                    r#"commit[ExecutionAborted] cancel[top#1] finish[ABORTED Halt "by operator"]"#,
                ),
                (at(2.0), In::Done("", ok(json!("late"))), ""),
                (at(3.0), In::Timers, ""),
                (at(4.0), In::Stop(None, None), ""),
                (at(5.0), In::TimedOut, ""),
            ],
        )
        .details("ExecutionAborted", json!({"error": "Halt", "cause": "by operator"})),
        row(
            "no error or cause given: none recorded",
            task_machine(LAMBDA_A, json!({})),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), task_start),
                (at(1.0), In::Stop(None, None), "commit[ExecutionAborted] cancel[top#1] finish[ABORTED]"),
            ],
        )
        .details("ExecutionAborted", json!({})),
        row(
            "every branch's call is cancelled",
            lambda_parallel(json!({})),
            vec![
                (
                    at(0.0),
                    In::Start(json!({})),
                    "commit[ExecutionStarted ParallelStateEntered ParallelStateStarted TaskStateEntered TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionScheduled LambdaFunctionStarted | top=Par:Children /0/0=A:Task(#1) /0/1=B:Task(#2)] invoke[/0/0 A#1 {}] invoke[/0/1 B#2 {}]",
                ),
                (at(1.0), In::Stop(None, None), "commit[ExecutionAborted] cancel[/0/0#1] cancel[/0/1#2] finish[ABORTED]"),
                (at(2.0), In::Done("/0/0", ok(json!("a"))), ""),
            ],
        ),
        row(
            "a waiting execution: nothing to cancel, and its timer does nothing after",
            machine("W", json!({"W": {"Type": "Wait", "Seconds": 10, "End": true}})),
            vec![
                (at(0.0), In::Start(json!({})), "commit[ExecutionStarted WaitStateEntered | top=W:Waiting(10)] (idle)"),
                (at(5.0), In::Stop(Some("Halt"), None), "commit[ExecutionAborted] finish[ABORTED Halt]"),
                (at(10.0), In::Timers, ""),
            ],
        ),
    ];
    play_rows(&rows);
}

// ------------------------------------------------------------------------------------------
// 6. Parking at depth
// ------------------------------------------------------------------------------------------

#[test]
fn parking_at_depth() {
    let two_callbacks = |a: Value, b: Value| {
        machine(
            "Par",
            json!({"Par": {
                "Type": "Parallel",
                "Branches": [
                    machine("A", json!({"A": with(callback("a"), with(json!({"End": true}), a))})),
                    machine("B", json!({"B": with(callback("b"), with(json!({"End": true}), b))})),
                ],
                "End": true,
            }}),
        )
    };
    let events = "ExecutionStarted ParallelStateEntered ParallelStateStarted TaskStateEntered TaskStateEntered TaskScheduled TaskStarted TaskScheduled TaskStarted";
    // (frames written, what follows `tok` in the first invocation)
    let start = |frames: &str, a: &str| {
        format!(
            r#"commit[{events} | top=Par:Children {frames}] invoke[/0/0 invoke.waitForTaskToken#1 tok{a} {{"FunctionName":"a","Payload":{{"token":"TOKEN"}}}}] invoke[/0/1 invoke.waitForTaskToken#2 tok {{"FunctionName":"b","Payload":{{"token":"TOKEN"}}}}]"#
        )
    };
    let end = r#"taken commit[TaskSucceeded TaskStateExited ParallelStateSucceeded ParallelStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED ["a","b"]]"#;
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let rows = [
        row(
            "two callbacks: idle once both are handed over, and after one answer",
            two_callbacks(json!({}), json!({})),
            vec![
                (at(0.0), In::Start(json!({})), leak(start("/0/0=A:Task(#1,tok) /0/1=B:Task(#2,tok)", ""))),
                (at(1.0), In::Submitted("/0/0"), "commit[TaskSubmitted | /0/0=A:Task(#1,tok,sub)]"),
                (at(1.0), In::Submitted("/0/1"), "commit[TaskSubmitted | /0/1=B:Task(#2,tok,sub)] (idle)"),
                (
                    at(2.0),
                    In::Token("/0/1", ok(json!("b"))),
                    r#"taken commit[TaskSucceeded TaskStateExited | /0/1=B:Done("b")] (idle)"#,
                ),
                (at(3.0), In::Token("/0/0", ok(json!("a"))), end),
            ],
        )
        .timers_after(2, None, None)
        .timers_after(3, None, None),
        row(
            "a branch's TimeoutSeconds is the next timer until it answers",
            two_callbacks(json!({"TimeoutSeconds": 60}), json!({})),
            vec![
                (at(0.0), In::Start(json!({})), leak(start("/0/0=A:Task(#1,tok,dl=60) /0/1=B:Task(#2,tok)", " dl=60"))),
                (at(1.0), In::Submitted("/0/0"), "commit[TaskSubmitted | /0/0=A:Task(#1,tok,sub,dl=60)]"),
                (at(1.0), In::Submitted("/0/1"), "commit[TaskSubmitted | /0/1=B:Task(#2,tok,sub)] (idle)"),
                (
                    at(2.0),
                    In::Token("/0/0", ok(json!("a"))),
                    r#"taken commit[TaskSucceeded TaskStateExited | /0/0=A:Done("a")] (idle)"#,
                ),
                (at(3.0), In::Token("/0/1", ok(json!("b"))), end),
            ],
        )
        .timers_after(2, None, Some(60.0))
        .timers_after(3, None, None),
        row(
            "a heartbeat deadline at depth, moved by a beat",
            two_callbacks(json!({"TimeoutSeconds": 60}), json!({"HeartbeatSeconds": 10})),
            vec![
                (at(0.0), In::Start(json!({})), leak(start("/0/0=A:Task(#1,tok,dl=60) /0/1=B:Task(#2,tok,hb=10)", " dl=60"))),
                (at(1.0), In::Submitted("/0/0"), "commit[TaskSubmitted | /0/0=A:Task(#1,tok,sub,dl=60)]"),
                (at(1.0), In::Submitted("/0/1"), "commit[TaskSubmitted | /0/1=B:Task(#2,tok,sub,hb=10)] (idle)"),
                (at(5.0), In::Beat("/0/1"), "taken commit[| /0/1=B:Task(#2,tok,sub,hb=15)] (idle)"),
                (
                    at(6.0),
                    In::Token("/0/1", ok(json!("b"))),
                    r#"taken commit[TaskSucceeded TaskStateExited | /0/1=B:Done("b")] (idle)"#,
                ),
            ],
        )
        .timers_after(2, None, Some(10.0))
        .timers_after(3, None, Some(15.0))
        .timers_after(4, None, Some(60.0)),
        row(
            "Map iterations on callbacks, under the machine's TimeoutSeconds",
            json!({
                "TimeoutSeconds": 300,
                "StartAt": "M",
                "States": {"M": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "ItemProcessor": machine("CB", json!({"CB": {
                        "Type": "Task",
                        "Resource": CALLBACK,
                        "Parameters": {"FunctionName": "f", "Payload": {"item.$": "$", "token.$": "$$.Task.Token"}},
                        "End": true,
                    }})),
                    "End": true,
                }},
            }),
            vec![
                (
                    at(0.0),
                    In::Start(json!({"items": ["x", "y"]})),
                    r#"commit[ExecutionStarted MapStateEntered MapStateStarted MapIterationStarted TaskStateEntered MapIterationStarted TaskStateEntered TaskScheduled TaskStarted TaskScheduled TaskStarted | top=M:Children /0/0=CB:Task(#1,tok) /0/1=CB:Task(#2,tok)] invoke[/0/0 invoke.waitForTaskToken#1 tok {"FunctionName":"f","Payload":{"item":"x","token":"TOKEN"}}] invoke[/0/1 invoke.waitForTaskToken#2 tok {"FunctionName":"f","Payload":{"item":"y","token":"TOKEN"}}]"#,
                ),
                (at(1.0), In::Submitted("/0/0"), "commit[TaskSubmitted | /0/0=CB:Task(#1,tok,sub)]"),
                (at(1.0), In::Submitted("/0/1"), "commit[TaskSubmitted | /0/1=CB:Task(#2,tok,sub)] (idle)"),
                (
                    at(2.0),
                    In::Token("/0/0", ok(json!("X"))),
                    r#"taken commit[TaskSucceeded TaskStateExited MapIterationSucceeded | /0/0=CB:Done("X")] (idle)"#,
                ),
                (
                    at(3.0),
                    In::Token("/0/1", ok(json!("Y"))),
                    r#"taken commit[TaskSucceeded TaskStateExited MapIterationSucceeded MapStateSucceeded MapStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED ["X","Y"]]"#,
                ),
            ],
        )
        .timers_after(0, Some(300.0), None)
        .timers_after(2, Some(300.0), None),
    ];
    for (row, d) in rows.iter().zip(play_rows(&rows)) {
        // Two tokens drawn in one advance must differ, or one answer would settle both.
        assert_ne!(d.token("/0/0"), d.token("/0/1"), "row '{}'", row.name);
    }
}

// ------------------------------------------------------------------------------------------
// 7. Resume from the journal
// ------------------------------------------------------------------------------------------

/// An execution played up to a crash, and what the core restarted from its journal answers.
struct ResumeRow {
    name: &'static str,
    def: Value,
    before: Vec<Line>,
    /// Frames written by hand instead of by `before` (path, frame JSON), and the last event id.
    journal: Option<(Vec<(&'static str, Value)>, u64)>,
    after: Vec<Line>,
}

#[test]
fn resume() {
    let task_start = r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"a":1}]"#;
    let cb_wait = machine(
        "CB",
        json!({
            "CB": with(callback("f"), json!({"ResultPath": "$.r", "Next": "W"})),
            "W": {"Type": "Wait", "Seconds": 100, "End": true},
        }),
    );
    let rows = [
        // The core runs every Ready frame it writes in the same advance, so a Ready row comes
        // from an older journal (its frames read back as Ready) and must run on resume.
        ResumeRow {
            name: "a Ready frame runs",
            def: machine(
                "P",
                json!({
                    "P": {"Type": "Pass", "Result": {"b": 2}, "ResultPath": "$.r", "Next": "T"},
                    "T": {"Type": "Task", "Resource": LAMBDA_A, "End": true},
                }),
            ),
            before: vec![],
            journal: Some((
                vec![(
                    "",
                    json!({"state": 0, "input": {"a": 1}, "entered_event_id": 2, "last_event_id": 2, "status": {"kind": "Ready"}}),
                )],
                2,
            )),
            after: vec![
                (
                    at(5.0),
                    In::Resume,
                    r#"commit[PassStateExited TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"a":1,"r":{"b":2}}]"#,
                ),
                (
                    at(6.0),
                    In::Done("", ok(json!("x"))),
                    r#"commit[LambdaFunctionSucceeded TaskStateExited ExecutionSucceeded] finish[SUCCEEDED "x"]"#,
                ),
            ],
        },
        ResumeRow {
            name: "a Task called and not answered is called again",
            def: task_machine(LAMBDA_A, json!({})),
            before: vec![(at(0.0), In::Start(json!({"a": 1})), task_start)],
            journal: None,
            after: vec![
                (
                    at(5.0),
                    In::Resume,
                    r#"commit[LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"a":1}]"#,
                ),
                (
                    at(6.0),
                    In::Done("", ok(json!("x"))),
                    r#"commit[LambdaFunctionSucceeded TaskStateExited ExecutionSucceeded] finish[SUCCEEDED "x"]"#,
                ),
            ],
        },
        ResumeRow {
            name: "a callback handed over is not called again and still owns its token",
            def: cb_wait,
            before: vec![
                (
                    at(0.0),
                    In::Start(json!({"a": 1})),
                    r#"commit[ExecutionStarted TaskStateEntered TaskScheduled TaskStarted | top=CB:Task(#1,tok)] invoke[top invoke.waitForTaskToken#1 tok {"FunctionName":"f","Payload":{"token":"TOKEN"}}]"#,
                ),
                (at(1.0), In::Submitted(""), "commit[TaskSubmitted | top=CB:Task(#1,tok,sub)] (idle)"),
            ],
            journal: None,
            after: vec![
                (at(5.0), In::Resume, "(idle)"),
                (
                    at(6.0),
                    In::Token("", ok(json!({"v": 1}))),
                    "taken commit[TaskSucceeded TaskStateExited WaitStateEntered | top=W:Waiting(106)] (idle)",
                ),
            ],
        },
        ResumeRow {
            name: "a Wait keeps its until",
            def: machine(
                "W",
                json!({"W": {"Type": "Wait", "Seconds": 10, "Next": "P"}, "P": {"Type": "Pass", "End": true}}),
            ),
            before: vec![(
                at(0.0),
                In::Start(json!({"a": 1})),
                "commit[ExecutionStarted WaitStateEntered | top=W:Waiting(10)] (idle)",
            )],
            journal: None,
            after: vec![
                (at(3.0), In::Resume, "(idle)"),
                (at(9.999), In::Timers, "(idle)"),
                (
                    at(10.0),
                    In::Timers,
                    r#"commit[WaitStateExited PassStateEntered PassStateExited ExecutionSucceeded | top=P:Ready] finish[SUCCEEDED {"a":1}]"#,
                ),
            ],
        },
        ResumeRow {
            name: "a Retry backoff keeps its until and its attempts",
            def: task_machine(
                LAMBDA_A,
                json!({
                    "Parameters": {"n.$": "$$.State.RetryCount"},
                    "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 3}],
                }),
            ),
            before: vec![
                (
                    at(0.0),
                    In::Start(json!({"a": 1})),
                    r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"n":0}]"#,
                ),
                (at(1.0), In::Done("", err("Boom", "bad")), "commit[LambdaFunctionFailed | top=T:Backoff(3)[1]] (idle)"),
            ],
            journal: None,
            after: vec![
                (at(2.0), In::Resume, "(idle)"),
                (at(2.999), In::Timers, "(idle)"),
                (
                    at(3.0),
                    In::Timers,
                    r#"commit[LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)[1]] invoke[top A#1 {"n":1}]"#,
                ),
            ],
        },
        ResumeRow {
            name: "a Parallel branch that ended keeps its result; the other is called again",
            def: lambda_parallel(json!({})),
            before: vec![
                (
                    at(0.0),
                    In::Start(json!({"in": 1})),
                    r#"commit[ExecutionStarted ParallelStateEntered ParallelStateStarted TaskStateEntered TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionScheduled LambdaFunctionStarted | top=Par:Children /0/0=A:Task(#1) /0/1=B:Task(#2)] invoke[/0/0 A#1 {"in":1}] invoke[/0/1 B#2 {"in":1}]"#,
                ),
                (at(1.0), In::Done("/0/1", ok(json!("b"))), r#"commit[LambdaFunctionSucceeded TaskStateExited | /0/1=B:Done("b")]"#),
            ],
            journal: None,
            after: vec![
                (
                    at(5.0),
                    In::Resume,
                    r#"commit[LambdaFunctionScheduled LambdaFunctionStarted | /0/0=A:Task(#1)] invoke[/0/0 A#1 {"in":1}]"#,
                ),
                (
                    at(6.0),
                    In::Done("/0/0", ok(json!("a"))),
                    r#"commit[LambdaFunctionSucceeded TaskStateExited ParallelStateSucceeded ParallelStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED ["a","b"]]"#,
                ),
            ],
        },
        ResumeRow {
            name: "a Map with MaxConcurrency 1 goes on from the iteration in flight",
            def: lambda_map(json!({"MaxConcurrency": 1})),
            before: vec![
                (
                    at(0.0),
                    In::Start(json!({"items": [1, 2, 3]})),
                    "commit[ExecutionStarted MapStateEntered MapStateStarted MapIterationStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=M:Children /0/0=A:Task(#1)] invoke[/0/0 A#1 1]",
                ),
                (
                    at(1.0),
                    In::Done("/0/0", ok(json!(10))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapIterationStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | /0/0=A:Done(10) /0/1=A:Task(#2)] invoke[/0/1 A#2 2]",
                ),
            ],
            journal: None,
            after: vec![
                (
                    at(5.0),
                    In::Resume,
                    "commit[LambdaFunctionScheduled LambdaFunctionStarted | /0/1=A:Task(#1)] invoke[/0/1 A#1 2]",
                ),
                (
                    at(6.0),
                    In::Done("/0/1", ok(json!(20))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapIterationStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | /0/1=A:Done(20) /0/2=A:Task(#2)] invoke[/0/2 A#2 3]",
                ),
                (
                    at(7.0),
                    In::Done("/0/2", ok(json!(30))),
                    "commit[LambdaFunctionSucceeded TaskStateExited MapIterationSucceeded MapStateSucceeded MapStateExited ExecutionSucceeded | -/0] finish[SUCCEEDED [10,20,30]]",
                ),
            ],
        },
    ];
    for row in rows {
        let (mut d, last) = match row.journal {
            Some((frames, last)) => {
                let journal = frames.into_iter().map(|(p, v)| (p.to_string(), v)).collect();
                (Driver::from_journal(&row.def, journal, last), last)
            }
            None => {
                let mut d = Driver::new(&row.def);
                play(&mut d, row.name, &row.before, &[]);
                let last = d.history.last().map_or(0, |e| e.id);
                (d.restarted(), last)
            }
        };
        play(&mut d, row.name, &row.after, &[]);
        // The restarted history goes on from the stored one.
        if let Some(first) = d.history.first() {
            assert_eq!(first.id, last + 1, "row '{}': the first event after the restart", row.name);
        }
    }
}

// ------------------------------------------------------------------------------------------
// 8. The machine's TimeoutSeconds
// ------------------------------------------------------------------------------------------

#[test]
fn machine_timeout() {
    let waiting = json!({"TimeoutSeconds": 10, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}});
    let tasking = json!({"TimeoutSeconds": 10, "StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA_A, "End": true}}});
    let task_start = r#"commit[ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted | top=T:Task(#1)] invoke[top A#1 {"a":1}]"#;
    let rows = [
        row(
            "the deadline comes before the Wait's end",
            waiting.clone(),
            vec![
                (
                    at(0.0),
                    In::Start(json!({})),
                    "commit[ExecutionStarted WaitStateEntered | top=W:Waiting(60)] (idle)",
                ),
                (at(9.999), In::Timers, "(idle)"),
                (at(10.0), In::Timers, "commit[ExecutionTimedOut] finish[TIMED_OUT]"),
                (at(60.0), In::Timers, ""),
            ],
        )
        .timers_after(0, Some(10.0), None)
        .details("ExecutionTimedOut", json!({"error": "States.Timeout"})),
        row(
            "a Task in flight at the deadline is cancelled",
            tasking.clone(),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), task_start),
                (at(10.0), In::Timers, "commit[ExecutionTimedOut] cancel[top#1] finish[TIMED_OUT]"),
                (at(11.0), In::Done("", ok(json!("late"))), ""),
            ],
        )
        .timers_after(0, Some(10.0), None),
        // The machine's deadline is on the workflow's clock.
        row(
            "the workflow's clock past the deadline, the real clock not",
            tasking.clone(),
            vec![
                (at(0.0), In::Start(json!({"a": 1})), task_start),
                (at2(10.0, 3.0), In::Timers, "commit[ExecutionTimedOut] cancel[top#1] finish[TIMED_OUT]"),
            ],
        ),
        row(
            "the runtime's real-time deadline (Input::TimedOut)",
            tasking,
            vec![
                (at(0.0), In::Start(json!({"a": 1})), task_start),
                (at(5.0), In::TimedOut, "commit[ExecutionTimedOut] cancel[top#1] finish[TIMED_OUT]"),
            ],
        ),
    ];
    play_rows(&rows);
}

/// AWS ends an execution at its TimeoutSeconds: an answer that reaches the core after the
/// deadline (the runtime's timer had not fired yet) must neither make it succeed nor move it
/// on (a regression test: the deadline was once checked only after the input was taken).
#[test]
fn machine_timeout_wins_over_a_late_answer() {
    let rows = [
        (
            "the last Task's result after the deadline",
            json!({"TimeoutSeconds": 10, "StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA_A, "End": true}}}),
            vec![(at(0.0), In::Start(json!({}))), (at(11.0), In::Done("", ok(json!("late"))))],
        ),
        (
            "a Task's result after the deadline, more states after it",
            json!({"TimeoutSeconds": 10, "StartAt": "T", "States": {
                "T": {"Type": "Task", "Resource": LAMBDA_A, "Next": "W"},
                "W": {"Type": "Wait", "Seconds": 5, "End": true},
            }}),
            vec![(at(0.0), In::Start(json!({}))), (at(11.0), In::Done("", ok(json!("late"))))],
        ),
        (
            "SendTaskSuccess after the deadline",
            json!({"TimeoutSeconds": 10, "StartAt": "CB", "States": {"CB": with(callback("f"), json!({"End": true}))}}),
            vec![
                (at(0.0), In::Start(json!({}))),
                (at(1.0), In::Submitted("")),
                (at(11.0), In::Token("", ok(json!("late")))),
            ],
        ),
    ];
    // (row, how it ended, the events stamped past the deadline), every row at once.
    let mut got = Vec::new();
    let mut want = Vec::new();
    for (name, def, steps) in rows {
        let mut d = Driver::new(&def);
        for (tick, input) in steps {
            d.feed(tick, input);
        }
        let late: Vec<&str> =
            d.history.iter().filter(|e| e.timestamp >= time(10.0)).map(|e| e.kind).collect();
        got.push((name, d.end.map(|e| e.status), late));
        want.push((name, Some(Status::TimedOut), vec!["ExecutionTimedOut"]));
    }
    assert_eq!(got, want);
}

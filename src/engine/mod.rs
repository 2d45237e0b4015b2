//! The engine runs executions: it calls [`interpreter::step`] for one state at a time and
//! carries out the effects it returns (Task calls through the connector [`Registry`],
//! waits on the [`Clock`], Parallel branches and Map iterations run concurrently),
//! applies Retry and Catch, and records history events under AWS's names.
//!
//! This in-memory engine is what `stepgate run` uses; durable executions build on it.

pub mod history;
pub mod input;

use crate::asl::compile::{Kind, Machine, State};
use crate::asl::Env;
use crate::connectors::{self, Call, EventFamily, Registry};
use crate::error::{names, Failure};
use crate::interpreter::{
    self, map_item_input, recover, Assigned, Ctx, Invoke, Limits, MapRun, Recovery, Step, WaitUntil,
};
use crate::mock::TestCase;
use crate::time::{iso, Clock};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use history::{payload, Event, History};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Aborted => "ABORTED",
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub history: Vec<Event>,
    /// States entered, across branches and iterations.
    pub transitions: u64,
}

/// What identifies one execution.
#[derive(Clone)]
pub struct Start {
    pub state_machine_name: String,
    pub execution_name: String,
    pub input: Value,
    pub record_history: bool,
    /// Express executions carry `express` ARNs and no redrive count.
    pub express: bool,
    /// The random part of an Express execution's ARN (drawn when absent).
    pub express_id: Option<uuid::Uuid>,
    /// When the execution started (now when absent).
    pub start_time: Option<DateTime<Utc>>,
    /// Where durable progress goes (Standard executions of the daemon).
    pub journal: Option<Arc<dyn Journal>>,
    /// Resume a journaled execution instead of starting it.
    pub resume: Option<Resume>,
}

impl Start {
    /// A Standard execution of `state_machine_name` named `execution_name`, no history kept.
    pub fn new(
        state_machine_name: impl Into<String>,
        execution_name: impl Into<String>,
        input: Value,
    ) -> Self {
        Start {
            state_machine_name: state_machine_name.into(),
            execution_name: execution_name.into(),
            input,
            record_history: false,
            express: false,
            express_id: None,
            start_time: None,
            journal: None,
            resume: None,
        }
    }
}

/// Receives an execution's progress so that it survives a restart: the events since the
/// last call and the frames of the machines that moved (the top level, Parallel branches,
/// Map iterations). The future resolves once both are durable; the engine waits for it
/// before the state runs.
pub trait Journal: Send + Sync {
    fn checkpoint(&self, events: Vec<Event>, frames: Vec<FrameWrite>) -> BoxFuture<'static, ()>;
}

/// A change to the journaled frames; a checkpoint applies its changes in order.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameWrite {
    /// Stores `data` at `path`, replacing what was there.
    Put { path: String, data: Value },
    /// Removes the frame at `path` and every frame below it.
    Remove { path: String },
}

/// Where one journaled machine stood: the state it had entered, with that state's input and
/// the machine's own variables, the deadline of a Wait or Retry backoff it was in, and how
/// far a Map or Parallel state had got. The top level is stored at path "", a branch or
/// iteration at "<parent path>/<state index>/<branch or item index>".
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    pub state: usize,
    pub input: Value,
    pub variables: Map<String, Value>,
    /// The id of the last event journaled when the state was entered.
    pub last_event_id: u64,
    pub wake_at: Option<DateTime<Utc>>,
    /// The id of the state's entered event, when events came after it (a Retry).
    #[serde(default)]
    pub entered_event_id: Option<u64>,
    /// How often each retrier of the state has been used.
    #[serde(default)]
    pub attempts: Vec<u32>,
    /// The id of the state's MapStateStarted or ParallelStateStarted event once its
    /// iterations or branches have begun: a restart goes on with them instead of anew.
    #[serde(default)]
    pub started_event_id: Option<u64>,
}

/// A journaled execution to go on with (after a restart) or to redrive.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// The journaled frames by path. A finished branch or iteration is stored as
    /// `{"done": output}` (or `{"failed": {"error", "cause"}}` for a tolerated failure).
    pub frames: HashMap<String, Value>,
    /// The id of the last event stored: new events follow it.
    pub last_event_id: u64,
    /// RedriveExecution: each unfinished machine enters its state anew, with fresh retry
    /// counts; finished branches and iterations keep their results.
    pub redrive: bool,
}

impl Resume {
    /// An execution whose first `last_event_id` events are stored and nothing more.
    pub fn fresh(last_event_id: u64) -> Resume {
        Resume { last_event_id, ..Resume::default() }
    }
}

pub struct Engine {
    registry: Registry,
    clock: Arc<Clock>,
    limits: Limits,
    region: Arc<str>,
    account: Arc<str>,
    /// Long JSONata evaluations, one per core at most, run beside the async workers.
    long_evaluations: Gate,
}

impl Engine {
    pub fn new(registry: Registry, clock: Arc<Clock>, limits: Limits, region: &str, account: &str) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Engine {
            registry,
            clock,
            limits,
            region: Arc::from(region),
            account: Arc::from(account),
            long_evaluations: Gate::new(cores),
        }
    }

    /// Runs `work`, an evaluation that outlasted its inline slice, off the async workers
    /// (`block_in_place`: the worker's other tasks move to another thread meanwhile), once
    /// one of the slots for long evaluations is free; so expressions that burn their whole
    /// time limit never stall the API or the executions beside them. On a current-thread
    /// runtime (`stepgate run`) there is nothing else to hold up: it runs in place.
    fn offload(&self, work: &mut dyn FnMut()) {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| {
                let _slot = self.long_evaluations.enter();
                work()
            }),
            _ => work(),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn state_machine_arn(&self, name: &str) -> String {
        format!("arn:aws:states:{}:{}:stateMachine:{name}", self.region, self.account)
    }

    /// Runs an execution to its end.
    /// The ARN of an execution.
    pub fn execution_arn(&self, state_machine: &str, name: &str, express_id: Option<uuid::Uuid>) -> String {
        match express_id {
            Some(id) => {
                format!("arn:aws:states:{}:{}:express:{state_machine}:{name}:{id}", self.region, self.account)
            }
            None => {
                format!("arn:aws:states:{}:{}:execution:{state_machine}:{name}", self.region, self.account)
            }
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub async fn run(&self, machine: &Machine, start: Start, mocks: Option<&TestCase>) -> Outcome {
        match self.run_parking(machine, start, mocks, None).await {
            Progress::Ended(o) => o,
            Progress::Parked { .. } => unreachable!("nothing parks without park_after"),
        }
    }

    /// Runs a journaled execution until it ends or, with `park_after`, until its top level
    /// is to sleep (a Wait, a Retry backoff) for longer than that: the deadline is journaled
    /// and the execution leaves memory, to be resumed from the journal when it is due.
    pub async fn run_parking(
        &self,
        machine: &Machine,
        start: Start,
        mocks: Option<&TestCase>,
        park_after: Option<chrono::Duration>,
    ) -> Progress {
        let start_time = start.start_time.unwrap_or_else(|| self.clock.now());
        let (frames, redrive, journaled) = match start.resume {
            Some(r) => (r.frames, r.redrive, Some(r.last_event_id)),
            None => (HashMap::new(), false, None),
        };
        let history = History::resuming(start.record_history, self.clock.clone(), journaled.unwrap_or(0));
        // Only a journaled execution can leave memory: its deadline must be durable.
        let park_after = park_after.filter(|_| start.journal.is_some());
        let mut x = Exec {
            engine: self,
            // Express ARNs end in a random part; Standard ones are the name itself.
            express: start.express.then(|| start.express_id.unwrap_or_else(uuid::Uuid::new_v4)),
            journal: start.journal,
            frames: std::sync::Mutex::new(frames),
            redrive,
            park_after,
            parked: std::sync::Mutex::new(None),
            deadline: machine.timeout_seconds.map(|t| crate::time::after(start_time, t)),
            timed_out: AtomicBool::new(false),
            sm_name: start.state_machine_name,
            name: start.execution_name,
            start_time,
            input: start.input,
            history,
            transitions: AtomicU64::new(0),
            mocks,
        };
        let started = match journaled {
            Some(id) => id,
            None => x.history.emit(0, "ExecutionStarted", || {
                let mut d = payload(None, "input", &x.input);
                d["roleArn"] = json!(format!("arn:aws:iam::{}:role/stepgate", self.account));
                Some(("executionStartedEventDetails", d))
            }),
        };
        let input = if machine.uses_context { x.input.clone() } else { std::mem::take(&mut x.input) };
        let path = x.journal.is_some().then(String::new);
        // A panic in the execution (a defect of ours, or of a crate under us) ends this
        // execution alone, FAILED with the history it has, instead of leaving it RUNNING to
        // panic again at every restart.
        let run = std::panic::AssertUnwindSafe(x.run_machine(machine, input, started, None, path))
            .catch_unwind()
            .map(|r| r.unwrap_or_else(|panic| Err(internal_error(panic.as_ref()))));
        // The machine's TimeoutSeconds holds in real time (work that takes too long) and in
        // the workflow's time (Waits and Retry intervals past the deadline, which a time
        // scale below 1 shortens in real time).
        let result = match machine.timeout_seconds {
            // What is left of it: a resumed or woken execution has spent some already.
            Some(t) => match tokio::time::timeout(remaining(t, start_time, self.clock.now()), run).await {
                Ok(r) => r.map_err(Ended::Failed),
                Err(_) => Err(Ended::TimedOut),
            },
            None => run.await.map_err(Ended::Failed),
        };
        if let Some(until) = *x.parked.lock().unwrap_or_else(|e| e.into_inner()) {
            let transitions = x.transitions.load(Ordering::Relaxed);
            return Progress::Parked { until, history: x.history.into_events(), transitions };
        }
        let result = match result {
            Err(Ended::Failed(_)) if x.timed_out.load(Ordering::Relaxed) => Err(Ended::TimedOut),
            other => other,
        };
        let last = x.history.count();
        let (status, output, error, cause) = match result {
            Ok((out, _)) => match check_size(&out, self.limits.payload_bytes) {
                Ok(()) => {
                    x.history.emit(last, "ExecutionSucceeded", || {
                        Some(("executionSucceededEventDetails", payload(None, "output", &out)))
                    });
                    (Status::Succeeded, Some(out), None, None)
                }
                Err(f) => {
                    x.history
                        .emit(last, "ExecutionFailed", || failed_details("executionFailedEventDetails", &f));
                    (Status::Failed, None, given(f.error), given(f.cause))
                }
            },
            Err(Ended::Failed(f)) => {
                x.history.emit(last, "ExecutionFailed", || failed_details("executionFailedEventDetails", &f));
                (Status::Failed, None, given(f.error), given(f.cause))
            }
            Err(Ended::TimedOut) => {
                x.history.emit(last, "ExecutionTimedOut", || {
                    Some(("executionTimedOutEventDetails", json!({"error": names::TIMEOUT})))
                });
                (Status::TimedOut, None, None, None)
            }
        };
        let transitions = x.transitions.load(Ordering::Relaxed);
        // With a journal, `history` holds only what was not journaled yet: the caller
        // commits it with the execution's end.
        Progress::Ended(Outcome {
            status,
            output,
            error,
            cause,
            history: x.history.into_events(),
            transitions,
        })
    }
}

/// The part of a machine's `TimeoutSeconds` of `t` seconds left at `now` for an execution that
/// started at `start`.
fn remaining(t: u64, start: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    let spent = (now - start).to_std().unwrap_or(Duration::ZERO);
    Duration::from_secs(t).saturating_sub(spent)
}

/// A counting semaphore for threads (the long evaluations wait on it outside the runtime).
struct Gate {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

struct Slot<'g>(&'g Gate);

impl Gate {
    fn new(slots: usize) -> Gate {
        Gate { free: std::sync::Mutex::new(slots.max(1)), freed: std::sync::Condvar::new() }
    }

    fn enter(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// Where [`Engine::run_parking`] left an execution.
#[derive(Debug)]
pub enum Progress {
    Ended(Outcome),
    /// Its top level sleeps until `until` (a Wait, a Retry backoff or the machine's
    /// deadline), journaled; `history` holds what was not journaled yet.
    Parked {
        until: DateTime<Utc>,
        history: Vec<Event>,
        transitions: u64,
    },
}

enum Ended {
    Failed(Failure),
    TimedOut,
}

/// The failure of an execution that panicked, with the panic's message.
fn internal_error(panic: &(dyn std::any::Any + Send)) -> Failure {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    tracing::error!(panic = %message, "An execution panicked; it is failed with States.Runtime.");
    Failure::runtime(format!(
        "The execution stopped on an internal error of stepgate ({message}); it was failed so that \
         nothing else is affected."
    ))
}

fn failed_details(key: &'static str, f: &Failure) -> Option<(&'static str, Value)> {
    Some((key, error_and_cause(f)))
}

/// `{"error", "cause"}` of a failure, without the ones that are empty: AWS omits an error or
/// cause that was not given (a Fail state with only `Error`, a timeout's cause).
fn error_and_cause(f: &Failure) -> Value {
    let mut d = Map::new();
    if !f.error.is_empty() {
        d.insert("error".into(), Value::String(f.error.clone()));
    }
    if !f.cause.is_empty() {
        d.insert("cause".into(), Value::String(f.cause.clone()));
    }
    Value::Object(d)
}

/// A failure's error or cause as an execution reports it: absent when empty.
fn given(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// An upper bound of `v`'s serialized size that stops counting once past `limit`:
/// small documents (nearly all) pass without being serialized.
fn size_bound(v: &Value, limit: usize) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        // Every character escaped as \uXXXX at worst.
        Value::String(s) => 2 + 6 * s.len(),
        Value::Array(a) => {
            let mut n = 2;
            for x in a {
                n += 1 + size_bound(x, limit);
                if n > limit {
                    break;
                }
            }
            n
        }
        Value::Object(o) => {
            let mut n = 2;
            for (k, x) in o {
                n += 4 + 6 * k.len() + size_bound(x, limit);
                if n > limit {
                    break;
                }
            }
            n
        }
    }
}

fn check_size(v: &Value, limit: usize) -> Result<(), Failure> {
    if size_bound(v, limit) <= limit {
        return Ok(());
    }
    let mut counter = ByteCounter(0);
    // Serializing into a counter costs no allocation.
    let _ = serde_json::to_writer(&mut counter, v);
    if counter.0 > limit {
        return Err(Failure::new(
            names::DATA_LIMIT_EXCEEDED,
            format!(
                "The state/task returned a result with a size exceeding the maximum number of bytes service limit ({limit} bytes; raise limits.payload_bytes to allow more)."
            ),
        ));
    }
    Ok(())
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One running execution: what its context object and history need.
struct Exec<'e> {
    engine: &'e Engine,
    name: String,
    sm_name: String,
    start_time: DateTime<Utc>,
    /// The execution's input, kept for `$$.Execution.Input` when the machine reads `$$`.
    input: Value,
    history: History,
    transitions: AtomicU64,
    mocks: Option<&'e TestCase>,
    express: Option<uuid::Uuid>,
    journal: Option<Arc<dyn Journal>>,
    /// Journaled frames by path, each taken by its machine when it starts again.
    frames: std::sync::Mutex<HashMap<String, Value>>,
    redrive: bool,
    /// Sleeps of the top level longer than this park the execution instead.
    park_after: Option<chrono::Duration>,
    parked: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// When the machine's TimeoutSeconds runs out, on the workflow's clock.
    deadline: Option<DateTime<Utc>>,
    timed_out: AtomicBool,
}

/// Workflow variables of one scope: the top level, a Parallel branch or a Map iteration.
/// Inner scopes read the outer ones and cannot assign them.
struct Vars<'p> {
    local: HashMap<String, Value>,
    parent: Option<&'p Vars<'p>>,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.local.get(name).or_else(|| self.parent.and_then(|p| p.get(name)))
    }
}

/// The context object, variables and randomness as one state sees them.
struct StateEnv<'a> {
    x: &'a Exec<'a>,
    vars: &'a Vars<'a>,
    state: &'a State,
    retry_count: Option<u32>,
    item: Option<(usize, &'a Value)>,
    /// When the state was entered (read once, when a history or `$$` needs it).
    entered_at: Option<DateTime<Utc>>,
}

impl Env for StateEnv<'_> {
    fn context(&self) -> Cow<'_, Value> {
        let x = self.x;
        let mut state = Map::new();
        state.insert(
            "EnteredTime".into(),
            Value::String(iso(self.entered_at.unwrap_or_else(|| x.engine.clock.now()))),
        );
        state.insert("Name".into(), Value::String(self.state.name.to_string()));
        if let Some(n) = self.retry_count {
            state.insert("RetryCount".into(), Value::from(n));
        }
        let mut ctx = json!({
            "Execution": {
                "Id": x.arn(),
                "Input": x.input,
                "StartTime": iso(x.start_time),
                "Name": x.name,
                "RoleArn": format!("arn:aws:iam::{}:role/stepgate", x.engine.account),
            },
            "StateMachine": {"Id": x.engine.state_machine_arn(&x.sm_name), "Name": x.sm_name},
            "State": state,
        });
        if x.express.is_none() {
            ctx["Execution"]["RedriveCount"] = Value::from(0);
        }
        if let Some((i, v)) = self.item {
            ctx["Map"] = json!({"Item": {"Index": i, "Value": v}});
        }
        Cow::Owned(ctx)
    }

    fn variable(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.vars.get(name).map(Cow::Borrowed)
    }

    fn random(&self) -> u64 {
        rand::random()
    }

    fn now(&self) -> DateTime<Utc> {
        self.x.engine.clock.now()
    }

    fn expression_memory_bytes(&self) -> usize {
        self.x.engine.limits.expression_memory_bytes
    }

    fn offload(&self, work: &mut dyn FnMut()) {
        self.x.engine.offload(work)
    }
}

type Run<'a> = BoxFuture<'a, Result<(Value, u64), Failure>>;

/// The event names of a state type: (entered, exited).
fn event_names(kind: &Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Pass { .. } => ("PassStateEntered", "PassStateExited"),
        Kind::Task(_) => ("TaskStateEntered", "TaskStateExited"),
        Kind::Choice { .. } => ("ChoiceStateEntered", "ChoiceStateExited"),
        Kind::Wait(_) => ("WaitStateEntered", "WaitStateExited"),
        Kind::Succeed => ("SucceedStateEntered", "SucceedStateExited"),
        Kind::Fail { .. } => ("FailStateEntered", "FailStateExited"),
        Kind::Parallel { .. } => ("ParallelStateEntered", "ParallelStateExited"),
        Kind::Map(_) => ("MapStateEntered", "MapStateExited"),
    }
}

/// A journaled machine's place while one of its states runs: where its frame is stored, and
/// the frame written when the state was entered.
#[derive(Clone, Copy)]
struct Place<'a> {
    path: &'a str,
    frame: &'a Frame,
}

fn put(path: &str, frame: &Frame) -> FrameWrite {
    FrameWrite::Put { path: path.to_string(), data: serde_json::to_value(frame).unwrap_or(Value::Null) }
}

/// The path of a branch or iteration of state `index` (or, without `child`, the prefix of
/// them all) under the machine at `path`.
fn child_path(path: &str, index: usize, child: Option<usize>) -> String {
    match child {
        Some(i) => format!("{path}/{index}/{i}"),
        None => format!("{path}/{index}"),
    }
}

/// Map and Parallel states run machines of their own, journaled below theirs.
fn has_children(state: &State) -> bool {
    matches!(state.kind, Kind::Map(_) | Kind::Parallel { .. })
}

/// What the top level returns once it has parked (the engine reads `Exec::parked`, not this).
fn parked() -> Failure {
    Failure::new("stepgate.Parked", "")
}

/// The execution ran past its deadline: nothing in it may recover from this.
fn timed_out() -> Failure {
    Failure::new(names::TIMEOUT, "")
}

impl<'e> Exec<'e> {
    /// The execution's ARN, built when something reads it (most executions never do).
    fn arn(&self) -> String {
        let e = self.engine;
        match self.express {
            Some(id) => {
                format!(
                    "arn:aws:states:{}:{}:express:{}:{}:{id}",
                    e.region, e.account, self.sm_name, self.name
                )
            }
            None => {
                format!("arn:aws:states:{}:{}:execution:{}:{}", e.region, e.account, self.sm_name, self.name)
            }
        }
    }

    /// Parks the execution instead of sleeping until `t` (its top level's deadline is
    /// journaled already) when that is further off than `park_after`.
    fn park(&self, top: bool, t: DateTime<Utc>) -> bool {
        let Some(after) = self.park_after.filter(|_| top) else { return false };
        let until = self.deadline.map_or(t, |d| d.min(t));
        if until - self.engine.clock.now() <= after {
            return false;
        }
        *self.parked.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
        true
    }

    /// Takes the frame journaled at `path` to resume from (not a finished marker).
    fn take_frame(&self, path: &str) -> Option<Frame> {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        let data = frames.remove(path)?;
        serde_json::from_value(data).ok()
    }

    fn has_frame(&self, path: &str) -> bool {
        self.frames.lock().unwrap_or_else(|e| e.into_inner()).contains_key(path)
    }

    /// The result of the branch or iteration at `path` if it had finished before a restart.
    /// A redrive runs tolerated failures again, as AWS redrives failed iterations.
    fn finished(&self, path: &str) -> Option<Result<Value, Failure>> {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        let data = frames.get(path)?;
        if data.get("done").is_none() && data.get("failed").is_none() {
            return None; // A frame to resume from, for run_machine.
        }
        let mut data = frames.remove(path)?;
        if let Some(v) = data.get_mut("done") {
            return Some(Ok(v.take()));
        }
        let text = |k: &str| data["failed"].get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        (!self.redrive).then(|| Err(Failure::new(text("error"), text("cause"))))
    }

    /// Forgets the frames of the branches or iterations of state `index` of the machine at
    /// `path` (the state has ended or begins anew) and returns the write that removes them
    /// from the journal.
    fn drop_children(&self, path: &str, index: usize) -> FrameWrite {
        let children = child_path(path, index, None);
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if !frames.is_empty() {
            let below = format!("{children}/");
            frames.retain(|k, _| !k.starts_with(&below));
        }
        FrameWrite::Remove { path: children }
    }

    /// Journals that the branch or iteration at `path` has finished, with the events so far;
    /// its own frames (and those of anything inside it) go.
    async fn record_finished(&self, path: &str, r: Result<&Value, &Failure>) {
        let Some(j) = &self.journal else { return };
        let data = match r {
            Ok(v) => json!({"done": v}),
            Err(f) => json!({"failed": {"error": f.error, "cause": f.cause}}),
        };
        let writes = vec![
            FrameWrite::Remove { path: path.to_string() },
            FrameWrite::Put { path: path.to_string(), data },
        ];
        j.checkpoint(self.history.take_new(), writes).await;
    }

    /// Records a Map or Parallel state's started event and journals that its iterations or
    /// branches have begun; a state resumed after that goes on with them instead.
    async fn begin(
        &self,
        entered_id: u64,
        kind: &'static str,
        place: Option<Place<'_>>,
        details: impl FnOnce() -> Option<(&'static str, Value)>,
    ) -> u64 {
        if let Some(id) = place.and_then(|p| p.frame.started_event_id) {
            return id;
        }
        let id = self.history.emit(entered_id, kind, details);
        if let (Some(p), Some(j)) = (place, &self.journal) {
            let frame = Frame { started_event_id: Some(id), wake_at: None, ..p.frame.clone() };
            j.checkpoint(self.history.take_new(), vec![put(p.path, &frame)]).await;
        }
        id
    }

    /// Sleeps until `t` on the workflow's clock, or until the execution's deadline if
    /// that comes first; `false` when the deadline cut it short.
    async fn sleep_until(&self, t: DateTime<Utc>) -> bool {
        match self.deadline {
            Some(d) if d < t => {
                self.engine.clock.sleep_until(d).await;
                self.timed_out.store(true, Ordering::Relaxed);
                false
            }
            _ => {
                self.engine.clock.sleep_until(t).await;
                true
            }
        }
    }

    /// Runs `machine` from its StartAt with `input`; returns its output and the id of the
    /// last event it recorded. With a `path` (a journaled execution) the machine journals
    /// each state it enters there, and starts from the frame journaled there if any.
    ///
    /// Effects, Retry waits and recursion into branches are boxed futures awaited only
    /// when a state needs them, so this future stays small and the effect-free path
    /// (Pass, Choice, Succeed) runs without moving large state machines around.
    fn run_machine<'a>(
        &'a self,
        machine: &'a Machine,
        input: Value,
        prev: u64,
        outer: Option<&'a Vars<'a>>,
        path: Option<String>,
    ) -> Run<'a> {
        async move {
            let limits = &self.engine.limits;
            let mut vars = Vars { local: HashMap::new(), parent: outer };
            let mut index = machine.start;
            let mut input = input;
            let mut last = prev;
            let journal = match &path {
                Some(p) => self.journal.clone().map(|j| (j, p.as_str())),
                None => None,
            };
            let top = path.as_deref() == Some("");
            let mut resumed: Option<Frame> = None;
            if let Some(mut f) = path.as_deref().and_then(|p| self.take_frame(p)) {
                if f.state >= machine.states.len() {
                    // Only an execution journaled before definitions were kept with it can
                    // meet a definition that has changed under it.
                    return Err(Failure::runtime(format!(
                        "The execution's journal names state #{} of a definition that has {} states: the state machine changed under it.",
                        f.state,
                        machine.states.len()
                    )));
                }
                index = f.state;
                input = std::mem::take(&mut f.input);
                vars.local = std::mem::take(&mut f.variables).into_iter().collect();
                // A redriven machine enters its state anew.
                if !self.redrive {
                    resumed = Some(f);
                }
            }
            // The branches and iterations of the Map or Parallel state just left: their
            // frames go with the next checkpoint, so a crash before it still finds them.
            let mut left_children: Option<FrameWrite> = None;
            loop {
                let state = &machine.states[index];
                if self.history.count() >= limits.history_events {
                    return Err(Failure::runtime(format!(
                        "The execution reached the limit of {} history events (limits.history_events).",
                        limits.history_events
                    )));
                }
                // A state resumed after a restart or parking was counted when entered.
                if resumed.is_none() {
                    self.transitions.fetch_add(1, Ordering::Relaxed);
                }
                let (entered, exited) = event_names(&state.kind);
                // One clock read serves the entered event and `$$.State.EnteredTime`.
                let entered_at =
                    (self.history.recording() || machine.uses_context).then(|| self.engine.clock.now());
                let (entered_id, journaled) = match resumed.as_ref() {
                    // The state was entered before the restart: its events are journaled.
                    Some(r) => (r.entered_event_id.unwrap_or(r.last_event_id), r.last_event_id),
                    None => {
                        let id = self.history.emit_at(last, entered, entered_at, || {
                            Some((
                                "stateEnteredEventDetails",
                                payload(Some(("name", &state.name)), "input", &input),
                            ))
                        });
                        (id, id)
                    }
                };
                last = journaled;
                let (wake_at, resumed_attempts, started_event_id) = match resumed.take() {
                    Some(r) => (r.wake_at, r.attempts, r.started_event_id),
                    None => (None, Vec::new(), None),
                };
                let mut entry_frame = None;
                if let Some((j, p)) = &journal {
                    let frame = Frame {
                        state: index,
                        input: input.clone(),
                        variables: vars.local.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        last_event_id: journaled,
                        entered_event_id: Some(entered_id),
                        wake_at,
                        attempts: resumed_attempts.clone(),
                        started_event_id,
                    };
                    let mut writes = Vec::with_capacity(2);
                    writes.extend(left_children.take());
                    writes.push(put(p, &frame));
                    j.checkpoint(self.history.take_new(), writes).await;
                    entry_frame = Some(frame);
                }
                let recoverable = !state.retry.is_empty() || !state.catch.is_empty();
                // Retry counts survive a restart; so does a backoff that was running.
                let mut attempts = if resumed_attempts.len() == state.retry.len() {
                    resumed_attempts
                } else {
                    vec![0u32; state.retry.len()]
                };
                if let (Some(t), false) = (wake_at, matches!(state.kind, Kind::Wait(_))) {
                    if self.park(top, t) {
                        return Err(parked());
                    }
                    if !Box::pin(self.sleep_until(t)).await {
                        return Err(timed_out());
                    }
                }
                let step = loop {
                    let raw = if recoverable { Some(input.clone()) } else { None };
                    let retry_count =
                        matches!(state.kind, Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_))
                            .then(|| attempts.iter().sum());
                    let env = StateEnv { x: self, vars: &vars, state, retry_count, item: None, entered_at };
                    let ctx = Ctx { machine, env: &env, limits };
                    let step = match interpreter::step(&ctx, index, input) {
                        Step::Wait { until, then } if journal.is_some() => {
                            // The deadline is journaled before the wait, so a restart
                            // wakes at the same moment instead of waiting again.
                            let now = self.engine.clock.now();
                            let t = wake_at.unwrap_or_else(|| match until {
                                WaitUntil::Seconds(n) => crate::time::after(now, n),
                                WaitUntil::Timestamp(t) => t.with_timezone(&Utc),
                            });
                            if let (Some((j, p)), None, Some(f)) = (&journal, wake_at, &entry_frame) {
                                let frame = Frame { wake_at: Some(t), ..f.clone() };
                                j.checkpoint(self.history.take_new(), vec![put(p, &frame)]).await;
                            }
                            if self.park(top, t) {
                                return Err(parked());
                            }
                            let (s, l) = Box::pin(self.wait(state, t, *then, entered_id)).await;
                            last = l;
                            s
                        }
                        s @ (Step::Invoke(_) | Step::Wait { .. } | Step::Parallel(_) | Step::Map(_)) => {
                            let place = journal
                                .as_ref()
                                .zip(entry_frame.as_ref())
                                .map(|((_, path), frame)| Place { path, frame });
                            let (s, l) = Box::pin(self.effect(&ctx, &vars, index, s, last, place)).await;
                            last = l;
                            s
                        }
                        Step::Error(f) => {
                            let f = locate(f, state, entered_id);
                            if f.error == names::QUERY_EVALUATION_ERROR {
                                last = self
                                    .history
                                    .emit(last, "EvaluationFailed", || evaluation_failed(state, &f));
                            }
                            Step::Error(f)
                        }
                        done => done,
                    };
                    let failure = match step {
                        Step::Error(f) => f,
                        done => break done,
                    };
                    let raw = match raw {
                        Some(raw) if !self.timed_out.load(Ordering::Relaxed) => raw,
                        _ => break Step::Error(failure),
                    };
                    match recover(&ctx, state, failure, &attempts, raw.clone(), rand::random::<f64>()) {
                        Recovery::Retry { delay_seconds, retrier } => {
                            // Each attempt adds events: a state retried without end must
                            // meet the history limit here, not only when the next state is
                            // entered.
                            if self.history.count() >= limits.history_events {
                                break Step::Error(Failure::runtime(format!(
                                    "The execution reached the limit of {} history events (limits.history_events).",
                                    limits.history_events
                                )));
                            }
                            attempts[retrier] = attempts[retrier].saturating_add(1);
                            let delay = chrono::Duration::microseconds((delay_seconds.max(0.0) * 1e6) as i64);
                            let now = self.engine.clock.now();
                            let wake = now.checked_add_signed(delay).unwrap_or(now);
                            if let (Some((j, p)), Some(f)) = (&journal, &mut entry_frame) {
                                let events = self.history.take_new();
                                *f = Frame {
                                    last_event_id: events
                                        .last()
                                        .map(|e| e.id)
                                        .unwrap_or(f.last_event_id)
                                        .max(last),
                                    wake_at: Some(wake),
                                    attempts: attempts.clone(),
                                    // A retried Map or Parallel state begins anew.
                                    started_event_id: None,
                                    ..f.clone()
                                };
                                let mut writes = Vec::with_capacity(2);
                                if has_children(state) {
                                    writes.push(self.drop_children(p, index));
                                }
                                writes.push(put(p, f));
                                j.checkpoint(events, writes).await;
                                if self.park(top, wake) {
                                    return Err(parked());
                                }
                            }
                            if !Box::pin(self.sleep_until(wake)).await {
                                break Step::Error(timed_out());
                            }
                            input = raw;
                        }
                        Recovery::Catch { next, output, assign } => {
                            break Step::Next { next, output, assign }
                        }
                        Recovery::Fail(f) => break Step::Error(f),
                    }
                };
                let exit = |output: &Value, assign: &Assigned| {
                    let mut d = payload(Some(("name", &state.name)), "output", output);
                    if let Some(a) = assign {
                        // AWS records each assigned value as JSON text.
                        let shown: Map<String, Value> = a
                            .iter()
                            .map(|(k, v)| {
                                (k.clone(), Value::String(serde_json::to_string(v).unwrap_or_default()))
                            })
                            .collect();
                        d["assignedVariables"] = Value::Object(shown);
                        d["assignedVariablesDetails"] = json!({"truncated": false});
                    }
                    Some(("stateExitedEventDetails", d))
                };
                match step {
                    Step::Next { next, output, assign } => {
                        last = self.history.emit(last, exited, || exit(&output, &assign));
                        if let Some(a) = assign {
                            vars.local.extend(*a);
                        }
                        if let (Some((_, p)), true) = (&journal, has_children(state)) {
                            left_children = Some(self.drop_children(p, index));
                        }
                        index = next;
                        input = output;
                    }
                    Step::End { output, assign } => {
                        last = self.history.emit(last, exited, || exit(&output, &assign));
                        return Ok((output, last));
                    }
                    Step::Fail(f) | Step::Error(f) => return Err(f),
                    other => unreachable!("effects are resolved before a state ends, got {other:?}"),
                }
            }
        }
        .boxed()
    }

    /// A Wait state's timer: sleeps until `t` on the workflow's clock, then goes on with
    /// `then`.
    async fn wait(&self, state: &State, t: DateTime<Utc>, then: Step, entered_id: u64) -> (Step, u64) {
        if (t - self.engine.clock.now()).num_seconds() > self.engine.limits.max_wait_seconds as i64 {
            let f = locate(Failure::runtime("Wait state delay is too long."), state, entered_id);
            return (Step::Error(f), entered_id);
        }
        if !self.sleep_until(t).await {
            return (Step::Error(timed_out()), entered_id);
        }
        (then, entered_id)
    }

    /// Carries out the effect a step asks for; returns a step without effects.
    async fn effect(
        &self,
        ctx: &Ctx<'_>,
        vars: &Vars<'_>,
        index: usize,
        step: Step,
        entered_id: u64,
        place: Option<Place<'_>>,
    ) -> (Step, u64) {
        let state = &ctx.machine.states[index];
        let located = |f: Failure| Step::Error(locate(f, state, entered_id));
        match step {
            Step::Error(f) => (located(f), entered_id),
            Step::Invoke(mut inv) => {
                let raw_input = std::mem::take(&mut inv.raw);
                let (r, last) = self.invoke(state, *inv, entered_id).await;
                match r {
                    Ok(result) => match interpreter::finish(ctx, index, raw_input, result) {
                        Step::Error(f) => (located(f), last),
                        s => (s, last),
                    },
                    Err(f) => (Step::Error(f), last),
                }
            }
            Step::Wait { until, then } => {
                let t = match until {
                    WaitUntil::Seconds(n) => crate::time::after(self.engine.clock.now(), n),
                    WaitUntil::Timestamp(t) => t.with_timezone(&Utc),
                };
                self.wait(state, t, *then, entered_id).await
            }
            Step::Parallel(io) => {
                let (input, raw) = *io;
                let Kind::Parallel { branches } = &state.kind else {
                    unreachable!("a Parallel step comes from a Parallel state")
                };
                let started = self.begin(entered_id, "ParallelStateStarted", place, || None).await;
                let runs = branches.iter().enumerate().map(|(b, branch)| {
                    let path = place.map(|p| child_path(p.path, index, Some(b)));
                    let input = input.clone();
                    async move {
                        if let Some(done) = path.as_deref().and_then(|p| self.finished(p)) {
                            return done.map(|v| (v, started));
                        }
                        let r = self.run_machine(branch, input, started, Some(vars), path.clone()).await;
                        if let (Some(p), Ok((v, _))) = (&path, &r) {
                            self.record_finished(p, Ok(v)).await;
                        }
                        r
                    }
                });
                let results = futures::future::try_join_all(runs).await;
                match results {
                    Ok(outs) => {
                        let last = self.history.emit(started, "ParallelStateSucceeded", || None);
                        let result = Value::Array(outs.into_iter().map(|(v, _)| v).collect());
                        match interpreter::finish(ctx, index, raw, result) {
                            Step::Error(f) => (located(f), last),
                            s => (s, last),
                        }
                    }
                    Err(f) => {
                        let last = self.history.emit(started, "ParallelStateFailed", || None);
                        (Step::Error(f), last)
                    }
                }
            }
            Step::Map(run) => self.run_map(ctx, vars, index, *run, entered_id, place).await,
            done => (done, entered_id),
        }
    }

    async fn run_map(
        &self,
        ctx: &Ctx<'_>,
        vars: &Vars<'_>,
        index: usize,
        run: MapRun,
        entered_id: u64,
        place: Option<Place<'_>>,
    ) -> (Step, u64) {
        let state = &ctx.machine.states[index];
        let Kind::Map(spec) = &state.kind else { unreachable!("a Map step comes from a Map state") };
        let total = run.items.len();
        let started = self
            .begin(entered_id, "MapStateStarted", place, || {
                Some(("mapStateStartedEventDetails", json!({"length": total})))
            })
            .await;
        let limit = if run.max_concurrency == 0 { total.max(1) } else { run.max_concurrency };
        let tolerant = run.tolerated_count.is_some() || run.tolerated_percentage.is_some();
        let mut run = run;
        let items = std::mem::take(&mut run.items);
        let run = &run;
        // Items move into their iterations: without an ItemSelector the item itself is the
        // input and is never copied.
        let plain =
            spec.item_selector.is_none() && spec.item_selector_jsonata.is_none() && spec.batcher.is_none();
        let iterations = futures::stream::iter(items.into_iter().enumerate()).map(|(i, item)| async move {
            let path = place.map(|p| child_path(p.path, index, Some(i)));
            // An iteration that finished before a restart keeps its result.
            if let Some(done) = path.as_deref().and_then(|p| self.finished(p)) {
                return Ok(done);
            }
            let input = if plain {
                item
            } else {
                let env = StateEnv {
                    x: self,
                    vars,
                    state,
                    retry_count: None,
                    item: Some((i, &item)),
                    entered_at: None,
                };
                let item_ctx = Ctx { machine: ctx.machine, env: &env, limits: ctx.limits };
                match map_item_input(&item_ctx, spec, run, item.clone()) {
                    Ok(v) => v,
                    Err(f) => return Err(locate(f, state, entered_id)),
                }
            };
            // An iteration that was running at a restart has its started event journaled.
            let it_started = match path.as_deref() {
                Some(p) if !self.redrive && self.has_frame(p) => started,
                _ => self.history.emit(started, "MapIterationStarted", || {
                    Some(("mapIterationStartedEventDetails", json!({"name": &*state.name, "index": i})))
                }),
            };
            let r = self.run_machine(&spec.processor, input, it_started, Some(vars), path.clone()).await;
            let kind = if r.is_ok() { "MapIterationSucceeded" } else { "MapIterationFailed" };
            let prev = r.as_ref().map(|(_, l)| *l).unwrap_or(it_started);
            self.history.emit(prev, kind, || {
                Some((
                    if r.is_ok() {
                        "mapIterationSucceededEventDetails"
                    } else {
                        "mapIterationFailedEventDetails"
                    },
                    json!({"name": &*state.name, "index": i}),
                ))
            });
            let r = r.map(|(v, _)| v);
            if let Some(p) = &path {
                // A failed iteration is journaled only when the Map tolerates it; otherwise
                // the Map fails and the iteration's frame stays for RedriveExecution.
                if r.is_ok() || tolerant {
                    self.record_finished(p, r.as_ref()).await;
                }
            }
            Ok(r)
        });
        let mut stream = iterations.buffered(limit);
        let mut outputs = Vec::with_capacity(total);
        let mut failures = 0usize;
        let mut failure = None;
        while let Some(r) = stream.next().await {
            match r {
                Err(f) => {
                    failure = Some(f);
                    break;
                }
                Ok(Ok(v)) => outputs.push(v),
                Ok(Err(f)) if tolerant => {
                    failures += 1;
                    let over_count = run.tolerated_count.is_none_or(|c| failures as u64 > c);
                    let over_pct = run
                        .tolerated_percentage
                        .is_none_or(|p| (failures as f64) * 100.0 / (total as f64) > p);
                    if over_count && over_pct {
                        failure = Some(Failure::new(
                            names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                            "The specified tolerance threshold was exceeded",
                        ));
                        break;
                    }
                    outputs.push(json!({"Error": f.error, "Cause": f.cause}));
                }
                Ok(Err(f)) => {
                    failure = Some(f);
                    break;
                }
            }
        }
        drop(stream);
        if let Some(f) = failure {
            let last = self.history.emit(self.history.count(), "MapStateFailed", || None);
            return (Step::Error(f), last);
        }
        let last = self.history.emit(self.history.count(), "MapStateSucceeded", || None);
        match interpreter::finish(ctx, index, run.raw.clone(), Value::Array(outputs)) {
            Step::Error(f) => (Step::Error(locate(f, state, entered_id)), last),
            s => (s, last),
        }
    }

    async fn invoke(&self, state: &State, inv: Invoke, entered_id: u64) -> (Result<Value, Failure>, u64) {
        let Invoke { resource, params, timeout_seconds, heartbeat_seconds: _, raw: _ } = inv;
        let resolved = self.engine.registry.resolve(&resource);
        let family = resolved.as_ref().map(|(_, f)| *f).unwrap_or(EventFamily::Task);
        let connector = resolved.map(|(c, _)| c);
        let (scheduled, started, succeeded, failed, timed_out, prefix) = match family {
            EventFamily::LambdaFunction => (
                "LambdaFunctionScheduled",
                "LambdaFunctionStarted",
                "LambdaFunctionSucceeded",
                "LambdaFunctionFailed",
                "LambdaFunctionTimedOut",
                "lambdaFunction",
            ),
            EventFamily::Task => {
                ("TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskFailed", "TaskTimedOut", "task")
            }
        };
        let (resource_type, resource_name) = resource_parts(&resource);
        let mut last = self.history.emit(entered_id, scheduled, || {
            let d = match family {
                EventFamily::LambdaFunction => {
                    let mut d = payload(None, "input", &params);
                    d["resource"] = json!(&*resource);
                    d
                }
                EventFamily::Task => json!({
                    "resourceType": resource_type, "resource": resource_name, "region": &*self.engine.region,
                    "parameters": serde_json::to_string(&params).unwrap_or_default(),
                }),
            };
            Some((leak_key(prefix, "ScheduledEventDetails"), d))
        });
        last = self.history.emit(last, started, || match family {
            EventFamily::LambdaFunction => None,
            EventFamily::Task => Some((
                "taskStartedEventDetails",
                json!({"resourceType": resource_type, "resource": resource_name}),
            )),
        });
        let call = async {
            if let Some(r) = self.mocks.and_then(|m| m.response(&state.name)) {
                return r;
            }
            match connector {
                Some(c) => {
                    let call = Call {
                        resource: resource.clone(),
                        params,
                        region: self.engine.region.clone(),
                        account: self.engine.account.clone(),
                    };
                    c.invoke(call).await
                }
                None => Err(connectors::unknown_resource(&resource)),
            }
        };
        let r = match timeout_seconds {
            Some(t) => match tokio::time::timeout(Duration::from_secs(t), call).await {
                Ok(r) => r,
                Err(_) => {
                    let f = Failure::new(names::TIMEOUT, "");
                    last = self.history.emit(last, timed_out, || {
                        Some((leak_key(prefix, "TimedOutEventDetails"), json!({"error": names::TIMEOUT})))
                    });
                    return (Err(f), last);
                }
            },
            None => call.await,
        };
        let r = r.and_then(|v| {
            check_size(&v, self.engine.limits.payload_bytes).map(|()| v).map_err(|f| {
                // AWS names the task by its integration ("lambda") or its resource ARN.
                let task = if resource_type.is_empty() { &*resource } else { resource_type };
                Failure::new(
                    f.error,
                    format!(
                        "The state/task '{task}' returned a result with a size exceeding the maximum number of bytes service limit."
                    ),
                )
            })
        });
        match &r {
            Ok(v) => {
                last = self.history.emit(last, succeeded, || {
                    let mut d = payload(None, "output", v);
                    if family == EventFamily::Task {
                        d["resourceType"] = json!(resource_type);
                        d["resource"] = json!(resource_name);
                    }
                    Some((leak_key(prefix, "SucceededEventDetails"), d))
                });
            }
            Err(f) => {
                last = self.history.emit(last, failed, || {
                    let mut d = error_and_cause(f);
                    if family == EventFamily::Task {
                        d["resourceType"] = json!(resource_type);
                        d["resource"] = json!(resource_name);
                    }
                    Some((leak_key(prefix, "FailedEventDetails"), d))
                });
            }
        }
        (r, last)
    }
}

/// The few detail keys of Task events, as static names.
fn leak_key(prefix: &str, suffix: &str) -> &'static str {
    match (prefix, suffix) {
        ("lambdaFunction", "ScheduledEventDetails") => "lambdaFunctionScheduledEventDetails",
        ("lambdaFunction", "SucceededEventDetails") => "lambdaFunctionSucceededEventDetails",
        ("lambdaFunction", "FailedEventDetails") => "lambdaFunctionFailedEventDetails",
        ("lambdaFunction", "TimedOutEventDetails") => "lambdaFunctionTimedOutEventDetails",
        (_, "ScheduledEventDetails") => "taskScheduledEventDetails",
        (_, "SucceededEventDetails") => "taskSucceededEventDetails",
        (_, "FailedEventDetails") => "taskFailedEventDetails",
        _ => "taskTimedOutEventDetails",
    }
}

/// `arn:aws:states:::lambda:invoke` -> ("lambda", "invoke"), as AWS's Task events name it.
fn resource_parts(resource: &str) -> (&str, &str) {
    match resource.strip_prefix("arn:aws:states:::") {
        Some(rest) => rest.split_once(':').unwrap_or((rest, "")),
        None => ("", resource),
    }
}

/// AWS records a failed JSONata evaluation as its own event, naming the field.
fn evaluation_failed(state: &State, f: &Failure) -> Option<(&'static str, Value)> {
    let location = f
        .cause
        .split_once("specified for the field '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(field, _)| field)
        .unwrap_or_default();
    Some((
        "evaluationFailedEventDetails",
        json!({"error": f.error, "cause": f.cause, "location": location, "state": &*state.name}),
    ))
}

/// Runtime failures raised while a state runs carry where they happened, as AWS words it.
fn locate(f: Failure, state: &State, entered_id: u64) -> Failure {
    if f.error == names::RUNTIME || f.error == names::QUERY_EVALUATION_ERROR {
        Failure::new(
            f.error,
            format!(
                "An error occurred while executing the state '{}' (entered at the event id #{entered_id}). {}",
                state.name, f.cause
            ),
        )
    } else {
        f
    }
}

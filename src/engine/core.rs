//! The execution core: an execution as data and one pure function that moves it on.
//!
//! An execution is an [`ExecState`]: a [`Frame`] for its top level and one for every Parallel
//! branch and Map iteration that has begun, each at a state and in a [`FrameStatus`]
//! (`Ready` to run its state, `Waiting` on a timer, in a Retry `Backoff`, waiting on a
//! `Task`, on its `Children`, or `Done` / `Failed`). [`Core::advance`] takes the state and one
//! [`Input`] (the execution started or resumed, a Task's result, a timer that fired, a
//! token completed or beaten, a stop) and returns the [`Action`]s the runtime must carry
//! out, in order: commit these events and frames (before anything else happens), invoke
//! these Tasks, cancel those, finish. It reads no clock and draws no random number of its
//! own: the time and a seed come with each input ([`Tick`]). The interpreter's
//! [`step`](interpreter::step) does the work of each state; the core strings the steps
//! together, records the history under AWS's names, and keeps Retry counts, timers, Map
//! concurrency and tolerated failures.
//!
//! Frames are keyed by path: `""` for the top level, `"<parent>/<state>/<branch or item>"`
//! below it. The same paths name the journal's rows, so a restarted runtime loads the
//! frames it finds and gives them back to the core ([`Input::Resume`]).
//!
//! What is committed is what survives: transitions between effects (Pass, Choice, a chain
//! of them) are committed together with the effect that follows them, and no effect (a
//! Task invocation) is asked for before the commit that leads to it. A crash in between
//! runs the same pure states again from the last committed frame.
//!
//! One exception to "actions out, inputs in", for executions without a journal only (nothing
//! is committed there for a call to run ahead of): a Task whose connector can answer at once
//! from what it holds (`Connector::answer_now`: the mocked responses of `stepgate run
//! --mock-config`) is answered inside the step, so a workflow tested against mocks does not
//! pay a round trip through the runtime for every Task.

use super::frames::Frames;
use crate::asl::compile::{Kind, Machine, State, Transition};
use crate::asl::Env;
use crate::connectors::{AnsweredNow, AtOnce, Connector, EventFamily};
use crate::error::{names, Failure};
use crate::interpreter::{
    self, io, map_item_input, recover, Assigned, Ctx, Invoke, Limits, MapRun, Recovery, Step, WaitUntil,
};
use crate::store::{Details, Event};
use crate::time::iso;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

/// Where each running machine of an execution stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecState {
    pub frames: Frames,
    /// The id of the last history event drawn.
    pub last_event_id: u64,
    /// Task invocations are numbered, so a late result of an abandoned one is recognized.
    pub next_invocation: u64,
    /// States entered (AWS's state transitions), across branches and iterations.
    pub transitions: u64,
}

/// One machine of an execution: the top level, a Parallel branch or a Map iteration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame {
    /// The state it is in (an index of its machine).
    pub state: usize,
    /// The state's input as it entered it (a Retry runs it again on this).
    pub input: Value,
    /// The machine's own variables (outer scopes are read through the parent frames).
    #[serde(default)]
    pub variables: Map<String, Value>,
    /// The state's entered event.
    pub entered_event_id: u64,
    /// The last event of this machine: the next one follows it.
    pub last_event_id: u64,
    /// How often each retrier of the state has been used.
    #[serde(default)]
    pub attempts: Vec<u32>,
    pub status: FrameStatus,
}

impl Frame {
    /// The frame enters state `next` (with `retriers` fresh Retry counts) at event `id`, with
    /// the input it holds.
    fn move_to(&mut self, next: usize, id: u64, retriers: usize) {
        self.state = next;
        self.entered_event_id = id;
        self.last_event_id = id;
        self.attempts.clear();
        self.attempts.resize(retriers, 0);
    }
}

/// What a frame waits for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum FrameStatus {
    /// Its state runs at the next advance.
    Ready,
    /// A Wait state, until `until` on the workflow's clock; then it leaves with `after`.
    Waiting { until: DateTime<Utc>, after: Leave },
    /// A Retry backoff: the state runs again at `until`.
    Backoff { until: DateTime<Utc> },
    /// A Task invocation is out.
    Task(TaskWait),
    /// A Map or Parallel state's branches or iterations run.
    Children(Children),
    /// A branch or iteration finished with this output.
    Done { output: Value },
    /// A branch or iteration failed (a Map that tolerates it keeps it).
    Failed { error: String, cause: String },
}

/// How a state leaves once its wait is over: the transition and what it carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Leave {
    /// `None`: the machine ends.
    pub next: Option<usize>,
    pub output: Value,
    #[serde(default)]
    pub assign: Option<Map<String, Value>>,
}

/// A Task that has been invoked and not answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskWait {
    pub invocation: u64,
    /// The state's raw input, which ResultPath merges the result into.
    pub raw: Value,
    /// The Task's deadline (its TimeoutSeconds), on the real clock.
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    #[serde(default)]
    pub heartbeat_seconds: Option<u64>,
    #[serde(default)]
    pub heartbeat_deadline: Option<DateTime<Utc>>,
    /// The callback token of a `.waitForTaskToken` Task.
    #[serde(default)]
    pub token: Option<String>,
    /// The connector has answered "submitted": the Task waits for its token only.
    #[serde(default)]
    pub submitted: bool,
}

/// The branches or iterations of a Map or Parallel state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Children {
    pub started_event_id: u64,
    /// The state's raw input, which ResultPath merges the results into.
    pub raw: Value,
    pub of: ChildrenOf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum ChildrenOf {
    /// Every branch begins at once on the same input.
    Parallel { branches: usize },
    /// Iterations begin in order, at most `max_concurrency` at once (0: all).
    Map {
        /// Each iteration's item (ItemSelector and the batcher make its input as it begins).
        inputs: Vec<Value>,
        /// The Map state's effective input: `$` inside ItemSelector.
        effective: Value,
        #[serde(default)]
        batch_input: Option<Value>,
        max_concurrency: usize,
        tolerated_count: Option<u64>,
        tolerated_percentage: Option<f64>,
    },
}

/// What moves an execution on.
#[derive(Debug, Clone)]
pub enum Input {
    /// A new execution, on its input.
    Start { input: Value },
    /// An execution loaded from the journal: what was in flight is asked for again (a
    /// Task at-least-once), timers are armed again. `redrive`: RedriveExecution, whose
    /// failed machines enter their states anew.
    Resume { redrive: bool },
    /// A Task answered.
    TaskDone { path: String, invocation: u64, result: Result<Value, Failure> },
    /// A connector handed the work over: the Task now waits for its callback token.
    /// `output` is the service's answer, for the history's `TaskSubmitted` event.
    TaskSubmitted { path: String, invocation: u64, output: Value },
    /// The time has come for the timers due at the tick's time.
    Timers,
    /// SendTaskSuccess / SendTaskFailure with a frame's token.
    TokenDone { token: String, result: Result<Value, Failure> },
    /// SendTaskHeartbeat.
    Heartbeat { token: String },
    /// A worker took an activity Task's work (GetActivityTask).
    ActivityStarted { token: String, worker: Option<String> },
    /// StopExecution.
    Stop { error: Option<String>, cause: Option<String> },
    /// The machine's TimeoutSeconds ran out on the real clock (work that took too long).
    TimedOut,
}

/// What the runtime carries out, in the order given.
#[derive(Debug)]
pub enum Action {
    /// Make these durable before anything after it happens.
    Commit(Commit),
    /// Call a Task's resource; answer with [`Input::TaskDone`] (or `TaskSubmitted`).
    Invoke(Box<Invocation>),
    /// Stop a call whose answer is no longer wanted.
    Cancel { path: String, invocation: u64 },
    /// The execution has ended (its end event is in the commit before it).
    Finish(End),
}

/// One commit: the events drawn since the last one, and the frames that changed.
#[derive(Debug, Default)]
pub struct Commit {
    pub events: Vec<Event>,
    /// Frames to store (by path), in order; `None` removes the frame and every frame below it.
    pub frames: Vec<(String, Option<Frame>)>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.frames.is_empty()
    }
}

/// A Task call for the runtime to make.
#[derive(Debug)]
pub struct Invocation {
    pub path: String,
    pub invocation: u64,
    pub state_name: Arc<str>,
    pub resource: Arc<str>,
    pub params: Value,
    /// The callback token, for a `.waitForTaskToken` or activity resource.
    pub token: Option<String>,
    /// How long the call may take, in real seconds.
    pub timeout_seconds: Option<u64>,
    /// The Task's deadline on the real clock.
    pub deadline: Option<DateTime<Utc>>,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub struct End {
    pub status: super::Status,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// The time of an input and a seed for what must be random (jitter, UUIDs, tokens); a
/// ChaCha generator (`StdRng`) runs on it, so one token tells nothing of another.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// The workflow's time.
    pub now: DateTime<Utc>,
    /// The real time (Task deadlines and heartbeats are real time).
    pub real: DateTime<Utc>,
    /// From the OS: callback tokens are drawn from it and must not be guessable.
    pub seed: [u8; 32],
}

/// What identifies an execution to its states (the context object) and how it records.
pub struct Execution<'m> {
    pub machine: &'m Machine,
    /// Shared with the calls' contexts and [`AtOnce`], so a connector that keeps something per
    /// execution (the mock's call counts) knows its execution by address before comparing.
    pub arn: Arc<str>,
    pub name: String,
    pub state_machine_name: String,
    pub state_machine_arn: String,
    pub role_arn: String,
    pub start_time: DateTime<Utc>,
    /// For `$$.Execution.Input`, when the machine reads the context.
    pub input: Value,
    pub express: bool,
    pub redrive_count: u32,
    /// When the machine's TimeoutSeconds runs out, on the workflow's clock.
    pub deadline: Option<DateTime<Utc>>,
    pub limits: &'m Limits,
    pub region: &'m str,
    /// Whether history events are built (ids are counted either way).
    pub record_history: bool,
    /// Whether frames are written for a journal.
    pub durable: bool,
    /// Runs expensive evaluations where they hold nothing else up.
    pub offload: &'m (dyn Fn(&mut dyn FnMut()) + Sync),
    /// Whether a Task's connector is asked for an answer it gives at once (see
    /// [`crate::connectors::Connector::answer_now`]); asked only without a journal.
    pub answers_now: bool,
}

/// What the registry says of a Task resource: how its events are named, and its connector.
pub type Resolve<'m> = dyn Fn(&Arc<str>) -> (EventFamily, Option<Arc<dyn Connector>>) + Sync + 'm;

/// Tasks answered within one step before the next goes out as an [`Action::Invoke`]: the
/// runtime then gets its turn to look at its deadline and its messages, and to yield.
const AT_ONCE_IN_A_STEP: u32 = 128;

/// The core of one execution.
pub struct Core<'m> {
    pub x: Execution<'m>,
    pub state: ExecState,
    /// Begun and ended children by the path of their Map or Parallel state; looked up at every
    /// child's end, hence a fast hasher (the paths are the core's own, not an attacker's).
    counts: std::collections::HashMap<String, Counts, foldhash::fast::RandomState>,
    /// How a Task resource's events are named (the connector registry knows).
    family: Families<'m>,
    /// Once ended, inputs change nothing.
    ended: bool,
    /// Tasks answered within steps since the runtime last asked ([`Core::take_at_once`]).
    at_once: u64,
    /// The soonest timers (workflow clock, real clock) as last found, kept as timers are set
    /// (see [`Core::soonest_timers`]); `None`: look at every frame again. Spares a wide Map a
    /// scan of all its iterations after every answer.
    soonest: std::cell::Cell<Option<Timers>>,
}

/// The event families and connectors of the Task resources an execution calls, asked of the
/// registry once each: a Task asks at every step of its call (three times when answered at
/// once), and the registry's lookup takes a lock.
struct Families<'m> {
    resolve: &'m Resolve<'m>,
    /// By the address of the machine's own resource string (the machine outlives the core,
    /// so no other string takes that address meanwhile).
    seen: std::cell::RefCell<Vec<(usize, Resolved)>>,
}

/// A resource's family and connector.
type Resolved = (EventFamily, Option<Arc<dyn Connector>>);

impl Families<'_> {
    fn resolved<R>(&self, resource: &Arc<str>, f: impl FnOnce(&Resolved) -> R) -> R {
        let address = Arc::as_ptr(resource) as *const u8 as usize;
        if let Some((_, r)) = self.seen.borrow().iter().find(|(a, _)| *a == address) {
            return f(r);
        }
        let r = (self.resolve)(resource);
        let out = f(&r);
        let mut seen = self.seen.borrow_mut();
        if seen.is_empty() {
            seen.reserve_exact(FAMILIES_KEPT);
        }
        if seen.len() < FAMILIES_KEPT {
            seen.push((address, r));
        }
        out
    }

    fn of(&self, resource: &Arc<str>) -> EventFamily {
        self.resolved(resource, |r| r.0)
    }

    fn connector(&self, resource: &Arc<str>) -> Option<Arc<dyn Connector>> {
        self.resolved(resource, |r| r.1.clone())
    }
}

/// Resources whose family an execution keeps (a workflow calls a few).
const FAMILIES_KEPT: usize = 16;

/// The soonest timer on the workflow's clock and on the real clock.
type Timers = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

pub fn sooner(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The transient work of one [`Core::advance`].
struct Work {
    tick: Tick,
    rng: LazyRng,
    events: Vec<Event>,
    writes: Writes,
    invokes: Vec<Action>,
    cancels: Vec<Action>,
    ready: VecDeque<String>,
    end: Option<End>,
    /// Tasks answered within this step.
    at_once: u32,
}

/// The machine a frame at `path` runs, under `top`.
pub fn machine_at<'m>(top: &'m Machine, path: &str) -> Option<&'m Machine> {
    if path.is_empty() {
        return Some(top);
    }
    let (parent, state, child) = parent_of(path)?;
    match &machine_at(top, &parent)?.states.get(state)?.kind {
        Kind::Parallel { branches } => branches.get(child).map(|b| &**b),
        Kind::Map(spec) => Some(&spec.processor),
        _ => None,
    }
}

/// `"/1/2/3/4"` -> `("/1/2", 3, 4)`: the parent machine's path, the state of it whose branch
/// or iteration the path is, and which one.
pub fn parent_of(path: &str) -> Option<(String, usize, usize)> {
    let mut parts = path.rsplitn(3, '/');
    let child = parts.next()?.parse().ok()?;
    let state = parts.next()?.parse().ok()?;
    Some((parts.next()?.to_string(), state, child))
}

/// The path of branch or iteration `child` of state `state` of the machine at `path`.
pub fn child_path(path: &str, state: usize, child: usize) -> String {
    format!("{path}/{state}/{child}")
}

/// The prefix that every branch or iteration of state `state` of the machine at `path`
/// (and everything below them) shares: a store removes them all by it.
pub fn children_prefix(path: &str, state: usize) -> String {
    format!("{path}/{state}")
}

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

/// Per Map or Parallel state that runs: how many of its branches or iterations have begun
/// and ended, and how many of them failed. Kept beside the frames (rebuilt from them on
/// resume), so that a Map of many iterations never rewrites its own frame as they end.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    begun: usize,
    ended: usize,
    failed: usize,
}

/// Frames changed by one advance, in order: a later write of a path replaces an earlier one,
/// and a removal drops the writes below it that came before.
#[derive(Default)]
struct Writes(indexmap::IndexMap<String, Option<Frame>>);

impl Writes {
    fn put(&mut self, path: &str, frame: &Frame) {
        self.0.shift_remove(path);
        self.0.insert(path.to_string(), Some(frame.clone()));
    }

    fn remove_below(&mut self, prefix: &str) {
        let below = format!("{prefix}/");
        self.0.retain(|k, _| k != prefix && !k.starts_with(&below));
        self.0.insert(prefix.to_string(), None);
    }
}

/// `{"error", "cause"}` of a failure, without the ones that are empty: AWS omits an error or
/// cause that was not given (a Fail state with only `Error`, a timeout's cause).
pub fn error_and_cause(f: &Failure) -> Value {
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

/// AWS records a failed JSONata evaluation as its own event, naming the field.
fn evaluation_failed(state: &State, f: &Failure) -> Value {
    let location = f
        .cause
        .split_once("specified for the field '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(field, _)| field)
        .unwrap_or_default();
    json!({"error": f.error, "cause": f.cause, "location": location, "state": &*state.name})
}

/// `arn:aws:states:::lambda:invoke` -> ("lambda", "invoke"), as AWS's Task events name it.
pub fn resource_parts(resource: &str) -> (&str, &str) {
    match resource.strip_prefix("arn:aws:states:::") {
        Some(rest) => rest.split_once(':').unwrap_or((rest, "")),
        None => ("", resource),
    }
}

/// The events of a Task call, by the family its connector gives it: Lambda ARNs are
/// `LambdaFunction*` events, activities `Activity*`, everything else `Task*`.
struct TaskEvents {
    scheduled: (&'static str, &'static str),
    started: &'static str,
    succeeded: (&'static str, &'static str),
    failed: (&'static str, &'static str),
    timed_out: (&'static str, &'static str),
}

fn task_events(family: EventFamily) -> TaskEvents {
    match family {
        EventFamily::LambdaFunction => TaskEvents {
            scheduled: ("LambdaFunctionScheduled", "lambdaFunctionScheduledEventDetails"),
            started: "LambdaFunctionStarted",
            succeeded: ("LambdaFunctionSucceeded", "lambdaFunctionSucceededEventDetails"),
            failed: ("LambdaFunctionFailed", "lambdaFunctionFailedEventDetails"),
            timed_out: ("LambdaFunctionTimedOut", "lambdaFunctionTimedOutEventDetails"),
        },
        EventFamily::Activity => TaskEvents {
            scheduled: ("ActivityScheduled", "activityScheduledEventDetails"),
            started: "ActivityStarted",
            succeeded: ("ActivitySucceeded", "activitySucceededEventDetails"),
            failed: ("ActivityFailed", "activityFailedEventDetails"),
            timed_out: ("ActivityTimedOut", "activityTimedOutEventDetails"),
        },
        EventFamily::Task => TaskEvents {
            scheduled: ("TaskScheduled", "taskScheduledEventDetails"),
            started: "TaskStarted",
            succeeded: ("TaskSucceeded", "taskSucceededEventDetails"),
            failed: ("TaskFailed", "taskFailedEventDetails"),
            timed_out: ("TaskTimedOut", "taskTimedOutEventDetails"),
        },
    }
}

/// An upper bound of `v`'s serialized size that stops counting once past `limit`:
/// small documents (nearly all) pass without being serialized.
fn size_bound(v: &Value, limit: usize) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        // Every character escaped as \\uXXXX at worst.
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

/// Whether `v` is larger than `limit` bytes of JSON.
pub fn too_large(v: &Value, limit: usize) -> bool {
    size_bound(v, limit) > limit && json_len(v) > limit
}

/// The length of `v`'s JSON text, counted as it is serialized: no allocation.
pub fn json_len(v: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, v);
    counter.0
}

fn data_limit(limit: usize) -> Failure {
    Failure::new(
        names::DATA_LIMIT_EXCEEDED,
        format!(
            "The state/task returned a result with a size exceeding the maximum number of bytes service limit ({limit} bytes; raise limits.payload_bytes to allow more)."
        ),
    )
}

/// What a state reads besides its input: the context object, the variables in scope (its
/// machine's and the outer ones'), randomness and the clock of the advance.
struct StateEnv<'a> {
    x: &'a Execution<'a>,
    frames: &'a Frames,
    /// The machine's own variables (read first; `frames` gives the outer scopes').
    local: &'a Map<String, Value>,
    path: &'a str,
    state: &'a State,
    retry_count: Option<u32>,
    entered_at: DateTime<Utc>,
    item: Option<(usize, &'a Value)>,
    token: Option<&'a str>,
    rng: &'a LazyRng,
    now: DateTime<Utc>,
}

impl<'a> StateEnv<'a> {
    /// The env of `state` at `path` as the core evaluates it now: no retry count, Map item or
    /// token unless the caller sets them.
    fn at(
        x: &'a Execution<'a>,
        frames: &'a Frames,
        local: &'a Map<String, Value>,
        path: &'a str,
        state: &'a State,
        rng: &'a LazyRng,
        now: DateTime<Utc>,
    ) -> Self {
        StateEnv {
            x,
            frames,
            local,
            path,
            state,
            retry_count: None,
            entered_at: now,
            item: None,
            token: None,
            rng,
            now,
        }
    }
}

impl StateEnv<'_> {
    /// One field of the context object, built only when read.
    fn context_field(&self, key: &str) -> Option<Value> {
        let x = self.x;
        Some(match key {
            "Execution" => {
                let mut e = Map::new();
                e.insert("Id".into(), json!(&*x.arn));
                e.insert("Input".into(), x.input.clone());
                e.insert("StartTime".into(), json!(iso(x.start_time)));
                e.insert("Name".into(), json!(x.name));
                e.insert("RoleArn".into(), json!(x.role_arn));
                if !x.express {
                    e.insert("RedriveCount".into(), Value::from(x.redrive_count));
                }
                Value::Object(e)
            }
            "StateMachine" => json!({"Id": x.state_machine_arn, "Name": x.state_machine_name}),
            "State" => {
                let mut state = Map::new();
                state.insert("EnteredTime".into(), Value::String(iso(self.entered_at)));
                state.insert("Name".into(), Value::String(self.state.name.to_string()));
                if let Some(n) = self.retry_count {
                    state.insert("RetryCount".into(), Value::from(n));
                }
                Value::Object(state)
            }
            "Map" => {
                let (i, v) = self.item?;
                json!({"Item": {"Index": i, "Value": v.clone()}})
            }
            "Task" => json!({"Token": self.token?}),
            _ => return None,
        })
    }
}

impl Env for StateEnv<'_> {
    fn context(&self) -> Cow<'_, Value> {
        let mut ctx = Map::new();
        for key in ["Execution", "StateMachine", "State", "Map", "Task"] {
            if let Some(v) = self.context_field(key) {
                ctx.insert(key.into(), v);
            }
        }
        Cow::Owned(Value::Object(ctx))
    }

    fn context_part(&self, key: &str) -> Cow<'_, Value> {
        let mut ctx = Map::new();
        if let Some(v) = self.context_field(key) {
            ctx.insert(key.into(), v);
        }
        Cow::Owned(Value::Object(ctx))
    }

    fn variable(&self, name: &str) -> Option<Cow<'_, Value>> {
        if let Some(v) = self.local.get(name) {
            return Some(Cow::Borrowed(v));
        }
        let mut path = self.path.to_string();
        while let Some((parent, _, _)) = parent_of(&path) {
            if let Some(v) = self.frames.get(&parent).and_then(|f| f.variables.get(name)) {
                return Some(Cow::Borrowed(v));
            }
            path = parent;
        }
        None
    }

    fn random(&self) -> u64 {
        self.rng.with(|r| r.gen())
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn expression_memory_bytes(&self) -> usize {
        self.x.limits.expression_memory_bytes
    }

    fn offload(&self, work: &mut dyn FnMut()) {
        (self.x.offload)(work)
    }
}

/// A Task whose resource asks for a callback (`.waitForTaskToken`, an activity): it waits
/// for its token.
pub fn waits_for_token(resource: &str, family: EventFamily) -> bool {
    // A `.sync` Task waits for its job's end, which reaches it through its token as a
    // callback does.
    family == EventFamily::Activity
        || resource.ends_with(".waitForTaskToken")
        || resource.ends_with(".sync")
        || resource.ends_with(".sync:2")
}

impl<'m> Core<'m> {
    pub fn new(x: Execution<'m>, state: ExecState, resolve: &'m Resolve<'m>) -> Self {
        let mut core = Core {
            x,
            state,
            counts: Default::default(),
            family: Families { resolve, seen: Default::default() },
            ended: false,
            at_once: 0,
            soonest: Default::default(),
        };
        core.recount();
        core
    }

    /// Moves the execution on by one input; the actions to carry out, in order.
    pub fn advance(&mut self, input: Input, tick: Tick) -> Vec<Action> {
        if self.ended {
            return Vec::new();
        }
        let mut w = Work {
            tick,
            rng: LazyRng::new(tick.seed),
            events: Vec::new(),
            writes: Writes::default(),
            invokes: Vec::new(),
            cancels: Vec::new(),
            ready: VecDeque::new(),
            end: None,
            at_once: 0,
        };
        // The workflow's clock past the machine's TimeoutSeconds: the execution timed out then,
        // and an input that comes later (a Task's answer before the runtime's timer fired)
        // changes nothing.
        let late = !matches!(input, Input::Start { .. }) && self.x.deadline.is_some_and(|d| w.tick.now >= d);
        if late {
            self.time_out(&mut w);
            return self.actions(w);
        }
        // Frames read back or timers fired: the soonest ones are found anew.
        if matches!(input, Input::Start { .. } | Input::Resume { .. } | Input::Timers) {
            self.soonest.set(None);
        }
        match input {
            Input::Start { input } => self.start(&mut w, input),
            Input::Resume { redrive } => self.resume(&mut w, redrive),
            Input::TaskDone { path, invocation, result } => self.task_done(&mut w, &path, invocation, result),
            Input::TaskSubmitted { path, invocation, output } => {
                self.task_submitted(&mut w, &path, invocation, output)
            }
            Input::Timers => self.timers(&mut w),
            Input::TokenDone { token, result } => {
                if let Some((path, invocation)) = self.token_owner(&token) {
                    self.task_settled(&mut w, &path, invocation, result);
                }
            }
            Input::Heartbeat { token } => self.heartbeat(&mut w, &token),
            Input::ActivityStarted { token, worker } => self.activity_started(&mut w, &token, worker),
            Input::Stop { error, cause } => self.stop(&mut w, error, cause),
            Input::TimedOut => self.time_out(&mut w),
        }
        // The workflow's clock past the machine's TimeoutSeconds: nothing goes on.
        if w.end.is_none() && self.x.deadline.is_some_and(|d| w.tick.now >= d) {
            self.time_out(&mut w);
        }
        while w.end.is_none() {
            let Some(path) = w.ready.pop_front() else { break };
            self.run(&mut w, &path);
        }
        self.actions(w)
    }

    /// The soonest time something is due: (on the workflow's clock, on the real clock).
    pub fn next_timers(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let t = self.scan_timers();
        self.soonest.set(Some(t));
        t
    }

    /// [`Core::next_timers`] as last found and kept since, without looking at every frame:
    /// never later than the soonest timer, possibly earlier (a timer whose frame moved on), in
    /// which case waking then finds nothing due and the next answer is exact again.
    pub fn soonest_timers(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        match self.soonest.get() {
            Some(t) => t,
            None => self.next_timers(),
        }
    }

    /// A timer was set: the soonest ones known take it in.
    fn timer_set(&self, workflow: Option<DateTime<Utc>>, real: Option<DateTime<Utc>>) {
        if let Some((w, r)) = self.soonest.get() {
            self.soonest.set(Some((sooner(w, workflow), sooner(r, real))));
        }
    }

    fn scan_timers(&self) -> Timers {
        let mut workflow = self.x.deadline;
        let mut real = None;
        for f in self.state.frames.values() {
            match &f.status {
                FrameStatus::Waiting { until, .. } | FrameStatus::Backoff { until } => {
                    workflow = sooner(workflow, Some(*until))
                }
                FrameStatus::Task(t) => real = sooner(real, sooner(t.deadline, t.heartbeat_deadline)),
                _ => {}
            }
        }
        (workflow, real)
    }

    /// Whether nothing is in flight: every open frame waits on a timer or on a callback
    /// token, so the execution may leave memory until one of them is due.
    pub fn idle(&self) -> bool {
        !self.ended
            && self.state.frames.values().all(|f| match &f.status {
                FrameStatus::Ready => false,
                FrameStatus::Task(t) => t.submitted,
                _ => true,
            })
    }

    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Tasks answered within steps since the last time this was asked.
    pub fn take_at_once(&mut self) -> u64 {
        std::mem::take(&mut self.at_once)
    }

    /// The frames that wait on a token: (token, path).
    pub fn tokens(&self) -> impl Iterator<Item = (&str, &str)> {
        self.state.frames.iter().filter_map(|(p, f)| match &f.status {
            FrameStatus::Task(TaskWait { token: Some(t), .. }) => Some((t.as_str(), p)),
            _ => None,
        })
    }

    fn actions(&mut self, w: Work) -> Vec<Action> {
        let mut out = Vec::with_capacity(2 + w.invokes.len() + w.cancels.len());
        let commit = Commit { events: w.events, frames: w.writes.0.into_iter().collect() };
        if !commit.is_empty() {
            out.push(Action::Commit(commit));
        }
        out.extend(w.cancels);
        if let Some(end) = w.end {
            self.ended = true;
            out.push(Action::Finish(end));
        } else {
            out.extend(w.invokes);
        }
        out
    }

    fn put(&self, w: &mut Work, path: &str) {
        if self.x.durable {
            if let Some(f) = self.state.frames.get(path) {
                w.writes.put(path, f);
            }
        }
    }

    fn remove_children(&mut self, w: &mut Work, path: &str, state: usize) {
        let prefix = children_prefix(path, state);
        let below = format!("{prefix}/");
        let gone = self.state.frames.paths_under(&below);
        for k in gone {
            if let Some(FrameStatus::Task(t)) = self.state.frames.remove(&k).map(|f| f.status) {
                w.cancels.push(Action::Cancel { path: k.clone(), invocation: t.invocation });
            }
            self.counts.remove(&k);
        }
        if self.x.durable {
            w.writes.remove_below(&prefix);
        }
    }

    /// Rebuilds the counts of every running Map and Parallel state from the frames.
    fn recount(&mut self) {
        self.counts.clear();
        for (path, f) in self.state.frames.iter() {
            let Some((parent, _, _)) = parent_of(path) else { continue };
            // Only the direct children of a frame waiting on its children count.
            if !matches!(self.state.frames.get(&parent).map(|p| &p.status), Some(FrameStatus::Children(_))) {
                continue;
            }
            let c = self.counts.entry(parent).or_default();
            c.begun += 1;
            match f.status {
                FrameStatus::Done { .. } => c.ended += 1,
                FrameStatus::Failed { .. } => {
                    c.ended += 1;
                    c.failed += 1;
                }
                _ => {}
            }
        }
    }

    fn start(&mut self, w: &mut Work, input: Value) {
        // Started in the journal already (its ExecutionStarted is there): it begins after it.
        if self.state.last_event_id > 0 {
            let after = self.state.last_event_id;
            return self.enter(w, "", self.x.machine.start, input, Some(Map::new()), after);
        }
        let started =
            emit_to(&mut self.state.last_event_id, self.x.record_history, w, 0, "ExecutionStarted", || {
                let d = Details::payload(None, false, &input)
                    .with("roleArn", Value::String(self.x.role_arn.clone()));
                Some(("executionStartedEventDetails", d))
            });
        self.enter(w, "", self.x.machine.start, input, Some(Map::new()), started);
    }

    /// A machine enters state `index` with `input`: its entered event, its frame (journaled),
    /// and it runs at once. The frame is new with `variables`, or, with `None`, the one at
    /// `path` moving on to its next state with the variables it has.
    fn enter(
        &mut self,
        w: &mut Work,
        path: &str,
        index: usize,
        input: Value,
        variables: Option<Map<String, Value>>,
        previous: u64,
    ) {
        let Some(machine) = machine_at(self.x.machine, path) else { return };
        let state = &machine.states[index];
        // Express executions keep no history on AWS, and no limit on it.
        if !self.x.express && self.state.last_event_id >= self.x.limits.history_events {
            let f = Failure::runtime(format!(
                "The execution reached the limit of {} history events (limits.history_events).",
                self.x.limits.history_events
            ));
            self.place(path, index, input, variables, previous, 0);
            self.machine_failed(w, path, f);
            return;
        }
        self.state.transitions += 1;
        let (entered, _) = event_names(&state.kind);
        let id = emit_to(&mut self.state.last_event_id, self.x.record_history, w, previous, entered, || {
            Some(("stateEnteredEventDetails", Details::payload(Some(&state.name), false, &input)))
        });
        self.place(path, index, input, variables, id, state.retry.len());
        self.put(w, path);
        w.ready.push_back(path.to_string());
    }

    /// Puts a `Ready` frame at `path` for state `index`, entered at event `id` with `retriers`
    /// Retry counts: a new one with `variables`, or the one there, in place, with `None`.
    fn place(
        &mut self,
        path: &str,
        index: usize,
        input: Value,
        variables: Option<Map<String, Value>>,
        id: u64,
        retriers: usize,
    ) {
        match (variables, self.state.frames.get_mut(path)) {
            (None, Some(f)) => {
                f.input = input;
                f.status = FrameStatus::Ready;
                f.move_to(index, id, retriers);
            }
            (variables, _) => {
                let frame = Frame {
                    state: index,
                    input,
                    variables: variables.unwrap_or_default(),
                    entered_event_id: id,
                    last_event_id: id,
                    attempts: vec![0; retriers],
                    status: FrameStatus::Ready,
                };
                self.state.frames.insert(path.to_string(), frame);
            }
        }
    }

    /// Runs the state of a `Ready` frame through the interpreter and acts on its step.
    fn run(&mut self, w: &mut Work, path: &str) {
        let Some(machine) = machine_at(self.x.machine, path) else { return };
        let Some(frame) = self.state.frames.get_mut(path) else { return };
        if !matches!(frame.status, FrameStatus::Ready) {
            return;
        }
        // An execution that records nothing (no history, no journal) moves through Pass states
        // that change nothing, and plain Tasks whose connector answers at once (a mock), in
        // place, counting each one's transition and event ids as the full path does; the last
        // state, a Task's failure or result over the size limit, and any state past the
        // history limit take that path.
        if !self.x.record_history && !self.x.durable {
            let limited = !self.x.express;
            let limit = self.x.limits.history_events;
            loop {
                let state = &machine.states[frame.state];
                if state.passes_through {
                    let Transition::Next(next) = state.transition else { break };
                    // Its exited event, then the next state's entered event.
                    if limited && self.state.last_event_id + 1 >= limit {
                        break;
                    }
                    self.state.last_event_id += 2;
                    self.state.transitions += 1;
                    frame.move_to(next, self.state.last_event_id, machine.states[next].retry.len());
                    continue;
                }
                let (true, true, Kind::Task(task)) =
                    (state.plain_task && self.x.answers_now, w.at_once < AT_ONCE_IN_A_STEP, &state.kind)
                else {
                    break;
                };
                // An activity or a callback waits for a worker or a token: never at once.
                let connector = self.family.resolved(&task.resource, |(family, c)| {
                    (*family != EventFamily::Activity && !waits_for_token(&task.resource, *family))
                        .then(|| c.clone())
                        .flatten()
                });
                let Some(connector) = connector else { break };
                let call = AtOnce {
                    resource: &task.resource,
                    params: &frame.input,
                    state_name: &state.name,
                    execution_arn: &self.x.arn,
                };
                let Some(answer) = connector.answer_now(&call) else { break };
                w.at_once += 1;
                self.at_once += 1;
                self.state.next_invocation += 1;
                let invocation = self.state.next_invocation;
                // Its scheduled and started events.
                self.state.last_event_id += 2;
                frame.last_event_id = self.state.last_event_id;
                // The result is its output.
                let bytes = self.x.limits.payload_bytes;
                match answer {
                    AnsweredNow::Lent(v, size) if size <= bytes => io::replace_with_copy(&mut frame.input, v),
                    AnsweredNow::Made(Ok(v)) if !too_large(&v, bytes) => frame.input = v,
                    failed_or_too_large => {
                        let raw = if state.jsonata { frame.input.clone() } else { Value::Null };
                        frame.status = FrameStatus::Task(TaskWait {
                            invocation,
                            raw,
                            deadline: None,
                            heartbeat_seconds: None,
                            heartbeat_deadline: None,
                            token: None,
                            submitted: false,
                        });
                        return self.task_settled(w, path, invocation, failed_or_too_large.into_result());
                    }
                }
                // Its succeeded event.
                self.state.last_event_id += 1;
                frame.last_event_id = self.state.last_event_id;
                match state.transition {
                    Transition::Next(next) if !(limited && self.state.last_event_id + 1 >= limit) => {
                        self.state.last_event_id += 2;
                        self.state.transitions += 1;
                        frame.move_to(next, self.state.last_event_id, machine.states[next].retry.len());
                    }
                    transition => {
                        let next = match transition {
                            Transition::Next(n) => Some(n),
                            Transition::End => None,
                        };
                        let output = std::mem::take(&mut frame.input);
                        return self.leave(w, path, next, output, None);
                    }
                }
            }
        }
        let index = frame.state;
        let state = &machine.states[index];
        // The frame keeps its input when Retry may run the state again or a journal may need
        // it after a restart; otherwise it moves on into the state.
        let keep = self.x.durable || !state.retry.is_empty() || !state.catch.is_empty();
        let input = if keep { frame.input.clone() } else { std::mem::take(&mut frame.input) };
        // A callback Task's token is in `$$.Task.Token` for its Parameters.
        let token = match &state.kind {
            Kind::Task(t) if waits_for_token(&t.resource, self.family.of(&t.resource)) => {
                Some(w.rng.with(|r| new_token(&self.x.arn, r)))
            }
            _ => None,
        };
        let retry_count = matches!(state.kind, Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_))
            .then(|| frame.attempts.iter().sum());
        let step = {
            let Some(frame) = self.state.frames.get(path) else { return };
            let env = StateEnv {
                retry_count,
                token: token.as_deref(),
                ..StateEnv::at(&self.x, &self.state.frames, &frame.variables, path, state, &w.rng, w.tick.now)
            };
            let ctx = Ctx { machine, env: &env, limits: self.x.limits };
            interpreter::step(&ctx, index, input)
        };
        let step = match step {
            Step::Error(f) => Step::Error(self.step_error(w, path, f)),
            s => s,
        };
        self.handle(w, path, step, token);
    }

    /// Acts on what a state's step asks for.
    fn handle(&mut self, w: &mut Work, path: &str, step: Step, token: Option<String>) {
        let Some(machine) = machine_at(self.x.machine, path) else { return };
        let Some(frame) = self.state.frames.get(path) else { return };
        let index = frame.state;
        let state = &machine.states[index];
        match step {
            Step::Next { next, output, assign } => self.leave(w, path, Some(next), output, assign),
            Step::End { output, assign } => self.leave(w, path, None, output, assign),
            Step::Fail(f) => self.machine_failed(w, path, f),
            Step::Error(f) => self.error(w, path, f),
            Step::Invoke(inv) => self.invoke(w, path, *inv, token),
            Step::Wait { until, then } => {
                let t = match until {
                    WaitUntil::Seconds(n) => crate::time::after(w.tick.now, n),
                    WaitUntil::Timestamp(t) => t.with_timezone(&Utc),
                };
                if (t - w.tick.now).num_seconds() > self.x.limits.max_wait_seconds as i64 {
                    let f = self.step_error(w, path, Failure::runtime("Wait state delay is too long."));
                    return self.error(w, path, f);
                }
                let after = match *then {
                    Step::Next { next, output, assign } => {
                        Leave { next: Some(next), output, assign: assign.map(|a| *a) }
                    }
                    Step::End { output, assign } => Leave { next: None, output, assign: assign.map(|a| *a) },
                    other => return self.handle(w, path, other, None),
                };
                if let Some(f) = self.state.frames.get_mut(path) {
                    f.status = FrameStatus::Waiting { until: t, after };
                }
                self.timer_set(Some(t), None);
                self.put(w, path);
                // A wait already over (a timestamp in the past) ends at once.
                if t <= w.tick.now {
                    self.timers_of(w, path);
                }
            }
            Step::Parallel(io) => {
                let (input, raw) = *io;
                let Kind::Parallel { branches } = &state.kind else { return };
                let count = branches.len();
                let prev = frame.last_event_id;
                let started = emit_to(
                    &mut self.state.last_event_id,
                    self.x.record_history,
                    w,
                    prev,
                    "ParallelStateStarted",
                    || None,
                );
                if let Some(f) = self.state.frames.get_mut(path) {
                    f.last_event_id = started;
                    f.status = FrameStatus::Children(Children {
                        started_event_id: started,
                        raw,
                        of: ChildrenOf::Parallel { branches: count },
                    });
                }
                self.put(w, path);
                self.counts.insert(path.to_string(), Counts { begun: count, ended: 0, failed: 0 });
                let mut done = 0;
                for (b, branch) in branches.iter().enumerate() {
                    let child = child_path(path, index, b);
                    // A redriven Parallel state keeps the branches that had succeeded, and
                    // those a redrive entered anew where they had failed run on.
                    match self.state.frames.get(&child).map(|f| &f.status) {
                        Some(FrameStatus::Done { .. }) => {
                            done += 1;
                            continue;
                        }
                        Some(_) => continue,
                        None => {}
                    }
                    self.enter(w, &child, branch.start, input.clone(), Some(Map::new()), started);
                }
                if let Some(c) = self.counts.get_mut(path) {
                    c.ended += done;
                }
                if done == count {
                    self.children_done(w, path);
                }
            }
            Step::Map(run) => {
                let run = *run;
                let total = run.items.len();
                let prev = frame.last_event_id;
                let started = emit_to(
                    &mut self.state.last_event_id,
                    self.x.record_history,
                    w,
                    prev,
                    "MapStateStarted",
                    || Some(("mapStateStartedEventDetails", json!({"length": total}).into())),
                );
                let MapRun {
                    items,
                    effective,
                    raw,
                    max_concurrency,
                    tolerated_count,
                    tolerated_percentage,
                    batch_input,
                } = run;
                if let Some(f) = self.state.frames.get_mut(path) {
                    f.last_event_id = started;
                    f.status = FrameStatus::Children(Children {
                        started_event_id: started,
                        raw,
                        of: ChildrenOf::Map {
                            inputs: items,
                            effective,
                            batch_input,
                            max_concurrency,
                            tolerated_count,
                            tolerated_percentage,
                        },
                    });
                }
                self.put(w, path);
                self.counts.insert(path.to_string(), Counts::default());
                self.launch(w, path);
            }
        }
    }

    /// A state ends and its machine goes to `next` (or ends, with `None`).
    fn leave(&mut self, w: &mut Work, path: &str, next: Option<usize>, output: Value, assign: Assigned) {
        let Some(machine) = machine_at(self.x.machine, path) else { return };
        let Some(frame) = self.state.frames.get(path) else { return };
        let state = &machine.states[frame.state];
        let (_, exited) = event_names(&state.kind);
        let prev = frame.last_event_id;
        let had_children = matches!(state.kind, Kind::Map(_) | Kind::Parallel { .. });
        let index = frame.state;
        let id = emit_to(&mut self.state.last_event_id, self.x.record_history, w, prev, exited, || {
            let mut d = Details::payload(Some(&state.name), true, &output);
            if let Some(a) = &assign {
                // AWS records each assigned value as JSON text.
                let shown: Map<String, Value> = a
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(serde_json::to_string(v).unwrap_or_default())))
                    .collect();
                d = d
                    .with("assignedVariables", Value::Object(shown))
                    .with("assignedVariablesDetails", json!({"truncated": false}));
            }
            Some(("stateExitedEventDetails", d))
        });
        if had_children {
            self.remove_children(w, path, index);
        }
        // The frame stays where it is and takes the next state (or its end) in place.
        match next {
            Some(n) => {
                if let (Some(a), Some(f)) = (assign, self.state.frames.get_mut(path)) {
                    f.variables.extend(*a);
                }
                self.enter(w, path, n, output, None, id)
            }
            None => {
                let done = Frame {
                    state: index,
                    input: Value::Null,
                    variables: Map::new(),
                    entered_event_id: id,
                    last_event_id: id,
                    attempts: Vec::new(),
                    status: FrameStatus::Done { output },
                };
                match self.state.frames.get_mut(path) {
                    Some(f) => *f = done,
                    None => self.state.frames.insert(path.to_string(), done),
                }
                self.machine_done(w, path);
            }
        }
    }

    /// A failure the interpreter raised in the state at `path` (not one handed up by a
    /// branch, an iteration or a connector): it says where, as AWS words it, and a failed
    /// JSONata evaluation is recorded as its own event.
    fn step_error(&mut self, w: &mut Work, path: &str, f: Failure) -> Failure {
        let Some(machine) = machine_at(self.x.machine, path) else { return f };
        let Some(frame) = self.state.frames.get(path) else { return f };
        let state = &machine.states[frame.state];
        let f = locate(f, state, frame.entered_event_id);
        if f.error == names::QUERY_EVALUATION_ERROR {
            let prev = frame.last_event_id;
            let last = emit_to(
                &mut self.state.last_event_id,
                self.x.record_history,
                w,
                prev,
                "EvaluationFailed",
                || Some(("evaluationFailedEventDetails", evaluation_failed(state, &f).into())),
            );
            self.set_last(path, last);
        }
        f
    }

    /// A state failed: Retry and Catch decide.
    fn error(&mut self, w: &mut Work, path: &str, f: Failure) {
        let Some(machine) = machine_at(self.x.machine, path) else { return };
        let Some(frame) = self.state.frames.get(path) else { return };
        let index = frame.state;
        let state = &machine.states[index];
        if state.retry.is_empty() && state.catch.is_empty() {
            return self.machine_failed(w, path, interpreter::errors::shown(f));
        }
        let random = w.rng.with(|r| r.gen::<f64>());
        let recovery = {
            let env =
                StateEnv::at(&self.x, &self.state.frames, &frame.variables, path, state, &w.rng, w.tick.now);
            let ctx = Ctx { machine, env: &env, limits: self.x.limits };
            recover(&ctx, state, f, &frame.attempts, frame.input.clone(), random)
        };
        match recovery {
            Recovery::Retry { delay_seconds, retrier } => {
                // Each attempt adds events: a state retried without end meets the history
                // limit here, not only when the next state is entered.
                if !self.x.express && self.state.last_event_id >= self.x.limits.history_events {
                    let f = Failure::runtime(format!(
                        "The execution reached the limit of {} history events (limits.history_events).",
                        self.x.limits.history_events
                    ));
                    return self.machine_failed(w, path, f);
                }
                if matches!(state.kind, Kind::Map(_) | Kind::Parallel { .. }) {
                    // A retried Map or Parallel state begins anew.
                    self.remove_children(w, path, index);
                }
                let delay = chrono::Duration::microseconds((delay_seconds.max(0.0) * 1e6) as i64);
                let until = w.tick.now.checked_add_signed(delay).unwrap_or(w.tick.now);
                if let Some(f) = self.state.frames.get_mut(path) {
                    if let Some(a) = f.attempts.get_mut(retrier) {
                        *a = a.saturating_add(1);
                    }
                    f.status = FrameStatus::Backoff { until };
                }
                self.timer_set(Some(until), None);
                self.put(w, path);
                if until <= w.tick.now {
                    self.timers_of(w, path);
                }
            }
            Recovery::Catch { next, output, assign } => self.leave(w, path, Some(next), output, assign),
            Recovery::Fail(f) => self.machine_failed(w, path, f),
        }
    }

    /// A Task's call goes out: its events, its frame waiting on it, the invocation.
    fn invoke(&mut self, w: &mut Work, path: &str, inv: Invoke, token: Option<String>) {
        let Some(machine) = machine_at(self.x.machine, path) else { return };
        let Some(frame) = self.state.frames.get(path) else { return };
        let state = &machine.states[frame.state];
        let Invoke { resource, params, raw, timeout_seconds, heartbeat_seconds } = inv;
        let family = self.family.of(&resource);
        let ev = task_events(family);
        let (resource_type, resource_name) = resource_parts(&resource);
        let region = self.x.region;
        let mut last = emit_to(
            &mut self.state.last_event_id,
            self.x.record_history,
            w,
            frame.last_event_id,
            ev.scheduled.0,
            || {
                let d = match family {
                    EventFamily::LambdaFunction => {
                        Details::payload(None, false, &params).with("resource", json!(&*resource))
                    }
                    EventFamily::Activity => {
                        let mut d =
                            Details::payload(None, false, &params).with("resource", json!(&*resource));
                        if let Some(t) = timeout_seconds {
                            d = d.with("timeoutInSeconds", json!(t));
                        }
                        if let Some(h) = heartbeat_seconds {
                            d = d.with("heartbeatInSeconds", json!(h));
                        }
                        d
                    }
                    EventFamily::Task => {
                        let mut d = json!({
                            "resourceType": resource_type, "resource": resource_name, "region": region,
                            "parameters": serde_json::to_string(&params).unwrap_or_default(),
                        });
                        if let Some(t) = timeout_seconds {
                            d["timeoutInSeconds"] = json!(t);
                        }
                        if let Some(h) = heartbeat_seconds {
                            d["heartbeatInSeconds"] = json!(h);
                        }
                        Details::Json(d)
                    }
                };
                Some((ev.scheduled.1, d))
            },
        );
        // An activity starts when a worker takes it (GetActivityTask), not when scheduled.
        if family != EventFamily::Activity {
            last = emit_to(&mut self.state.last_event_id, self.x.record_history, w, last, ev.started, || {
                match family {
                    EventFamily::Task => Some((
                        "taskStartedEventDetails",
                        json!({"resourceType": resource_type, "resource": resource_name}).into(),
                    )),
                    _ => None,
                }
            });
        }
        self.state.next_invocation += 1;
        let invocation = self.state.next_invocation;
        let real = w.tick.real;
        let after =
            |s: u64| real.checked_add_signed(chrono::Duration::seconds(s.min(i64::MAX as u64) as i64));
        let deadline = timeout_seconds.and_then(after);
        let heartbeat_deadline = heartbeat_seconds.and_then(after);
        if let Some(f) = self.state.frames.get_mut(path) {
            f.last_event_id = last;
            f.status = FrameStatus::Task(TaskWait {
                invocation,
                raw,
                deadline,
                heartbeat_seconds,
                heartbeat_deadline,
                token: token.clone(),
                submitted: false,
            });
        }
        self.timer_set(None, sooner(deadline, heartbeat_deadline));
        self.put(w, path);
        // Without a journal nothing is committed that a call could run ahead of: a connector
        // that answers at once (a mock) answers here, without a round trip through the runtime.
        let connector = match self.x.answers_now && !self.x.durable && w.at_once < AT_ONCE_IN_A_STEP {
            true => self.family.connector(&resource),
            false => None,
        };
        if let Some(c) = connector {
            let call = AtOnce {
                resource: &resource,
                params: &params,
                state_name: &state.name,
                execution_arn: &self.x.arn,
            };
            if let Some(answer) = c.answer_now(&call) {
                w.at_once += 1;
                self.at_once += 1;
                return self.task_settled(w, path, invocation, answer.into_result());
            }
        }
        w.invokes.push(Action::Invoke(Box::new(Invocation {
            path: path.to_string(),
            invocation,
            state_name: state.name.clone(),
            resource,
            params,
            token,
            timeout_seconds,
            deadline,
        })));
    }

    /// A callback Task's connector handed the work over: the Task waits for its token, and
    /// the history shows the hand-over (`TaskSubmitted`; an activity shows nothing until a
    /// worker takes it).
    fn task_submitted(&mut self, w: &mut Work, path: &str, invocation: u64, output: Value) {
        let Some(machine) = machine_at(self.x.machine, path) else { return };
        let Some(frame) = self.state.frames.get(path) else { return };
        let FrameStatus::Task(t) = &frame.status else { return };
        if t.invocation != invocation || t.submitted {
            return;
        }
        let Kind::Task(task) = &machine.states[frame.state].kind else { return };
        let family = self.family.of(&task.resource);
        let prev = frame.last_event_id;
        let last = if family == EventFamily::Activity {
            prev
        } else {
            let (resource_type, resource_name) = resource_parts(&task.resource);
            emit_to(&mut self.state.last_event_id, self.x.record_history, w, prev, "TaskSubmitted", || {
                let d = Details::payload(None, true, &output)
                    .with("resourceType", json!(resource_type))
                    .with("resource", json!(resource_name));
                Some(("taskSubmittedEventDetails", d))
            })
        };
        if let Some(Frame { status: FrameStatus::Task(t), last_event_id, .. }) =
            self.state.frames.get_mut(path)
        {
            t.submitted = true;
            *last_event_id = last;
        }
        self.put(w, path);
    }

    /// A worker took an activity's work: `ActivityStarted`, with the worker's name.
    fn activity_started(&mut self, w: &mut Work, token: &str, worker: Option<String>) {
        let Some((path, _)) = self.token_owner(token) else { return };
        let Some(prev) = self.state.frames.get(&path).map(|f| f.last_event_id) else { return };
        let last =
            emit_to(&mut self.state.last_event_id, self.x.record_history, w, prev, "ActivityStarted", || {
                let mut d = Map::new();
                if let Some(name) = &worker {
                    d.insert("workerName".into(), json!(name));
                }
                Some(("activityStartedEventDetails", Value::Object(d).into()))
            });
        self.set_last(&path, last);
        self.put(w, &path);
    }

    /// A connector answered a call with the Task's result or failure.
    fn task_done(&mut self, w: &mut Work, path: &str, invocation: u64, result: Result<Value, Failure>) {
        self.task_settled(w, path, invocation, result)
    }

    /// A Task's result (a call's answer, or its callback token's).
    fn task_settled(&mut self, w: &mut Work, path: &str, invocation: u64, result: Result<Value, Failure>) {
        let Some(machine) = machine_at(self.x.machine, path) else { return };
        let Some(frame) = self.state.frames.get(path) else { return };
        let FrameStatus::Task(t) = &frame.status else { return };
        if t.invocation != invocation {
            return;
        }
        let state = &machine.states[frame.state];
        let Kind::Task(task) = &state.kind else { return };
        let resource = task.resource.clone();
        let family = self.family.of(&resource);
        let ev = task_events(family);
        // A connector's runtime failure (an activity that does not exist) says where, as
        // the interpreter's do.
        let result = result.map_err(|f| locate(f, state, frame.entered_event_id));
        let (resource_type, resource_name) = resource_parts(&resource);
        let limit = self.x.limits.payload_bytes;
        let result = result.and_then(|v| {
            if too_large(&v, limit) {
                // AWS names the task by its integration ("lambda") or its resource ARN.
                let task = if resource_type.is_empty() { &*resource } else { resource_type };
                Err(Failure::new(
                    names::DATA_LIMIT_EXCEEDED,
                    format!("The state/task '{task}' returned a result with a size exceeding the maximum number of bytes service limit."),
                ))
            } else {
                Ok(v)
            }
        });
        let prev = frame.last_event_id;
        let last = match &result {
            Ok(v) => {
                emit_to(&mut self.state.last_event_id, self.x.record_history, w, prev, ev.succeeded.0, || {
                    let mut d = Details::payload(None, true, v);
                    if family == EventFamily::Task {
                        d = d
                            .with("resourceType", json!(resource_type))
                            .with("resource", json!(resource_name));
                    }
                    Some((ev.succeeded.1, d))
                })
            }
            Err(f) => {
                emit_to(&mut self.state.last_event_id, self.x.record_history, w, prev, ev.failed.0, || {
                    let mut d = error_and_cause(f);
                    if family == EventFamily::Task {
                        d["resourceType"] = json!(resource_type);
                        d["resource"] = json!(resource_name);
                    }
                    Some((ev.failed.1, d.into()))
                })
            }
        };
        let Some(frame) = self.state.frames.get_mut(path) else { return };
        frame.last_event_id = last;
        let raw = match std::mem::replace(&mut frame.status, FrameStatus::Ready) {
            FrameStatus::Task(t) => t.raw,
            _ => Value::Null,
        };
        match result {
            Ok(v) => {
                let index = frame.state;
                let step = match self.finish_state(w, path, index, raw, v) {
                    Step::Error(f) => Step::Error(self.step_error(w, path, f)),
                    s => s,
                };
                self.handle(w, path, step, None);
            }
            Err(f) => self.error(w, path, f),
        }
    }

    /// A Task, Map or Parallel state's result through ResultSelector, ResultPath and the rest.
    fn finish_state(&mut self, w: &mut Work, path: &str, index: usize, raw: Value, result: Value) -> Step {
        let Some(machine) = machine_at(self.x.machine, path) else {
            return Step::Fail(Failure::runtime("lost"));
        };
        let Some(frame) = self.state.frames.get(path) else { return Step::Fail(Failure::runtime("lost")) };
        let state = &machine.states[index];
        let env =
            StateEnv::at(&self.x, &self.state.frames, &frame.variables, path, state, &w.rng, w.tick.now);
        let ctx = Ctx { machine, env: &env, limits: self.x.limits };
        interpreter::finish(&ctx, index, raw, result)
    }
}

/// Draws the next event id and, when the history is recorded, builds the event.
fn emit_to(
    last: &mut u64,
    record: bool,
    w: &mut Work,
    previous: u64,
    kind: &'static str,
    details: impl FnOnce() -> Option<(&'static str, Details)>,
) -> u64 {
    *last += 1;
    let id = *last;
    if record {
        w.events.push(Event {
            id,
            previous_event_id: previous,
            timestamp: w.tick.now,
            kind,
            details: details(),
        });
    }
    id
}

/// A callback token: the execution it belongs to (so that SendTaskSuccess finds it, parked
/// or not, without an index of tokens) and 48 random bytes that make it unguessable; well
/// within AWS's 2,048 characters for any execution ARN.
/// The advance's random numbers, seeded from the tick and set up only when a state draws one
/// (a token, a UUID, a Retry's jitter): most advances draw none.
struct LazyRng {
    seed: [u8; 32],
    rng: std::sync::Mutex<Option<rand::rngs::StdRng>>,
}

impl LazyRng {
    fn new(seed: [u8; 32]) -> LazyRng {
        LazyRng { seed, rng: std::sync::Mutex::new(None) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut rand::rngs::StdRng) -> R) -> R {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        f(rng.get_or_insert_with(|| rand::rngs::StdRng::from_seed(self.seed)))
    }
}

fn new_token(execution_arn: &str, rng: &mut rand::rngs::StdRng) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 48];
    rng.fill_bytes(&mut bytes);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}", b64.encode(execution_arn), b64.encode(bytes))
}

/// The execution ARN inside a callback token, if it is one of ours.
pub fn token_execution(token: &str) -> Option<String> {
    use base64::Engine as _;
    let (arn, secret) = token.split_once('.')?;
    if secret.len() != 64 {
        return None;
    }
    let arn = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(arn).ok()?;
    String::from_utf8(arn).ok().filter(|a| a.starts_with("arn:"))
}

impl Core<'_> {
    /// The machine at `path` ended with a `Done` frame: the execution ends, or its parent
    /// counts a branch or iteration more.
    fn machine_done(&mut self, w: &mut Work, path: &str) {
        if path.is_empty() {
            let output = match self
                .state
                .frames
                .get_mut("")
                .map(|f| std::mem::replace(&mut f.status, FrameStatus::Ready))
            {
                Some(FrameStatus::Done { output }) => output,
                _ => Value::Null,
            };
            if too_large(&output, self.x.limits.payload_bytes) {
                return self.end_failed(w, data_limit(self.x.limits.payload_bytes));
            }
            let last = self.state.last_event_id;
            emit_to(
                &mut self.state.last_event_id,
                self.x.record_history,
                w,
                last,
                "ExecutionSucceeded",
                || Some(("executionSucceededEventDetails", Details::payload(None, true, &output))),
            );
            w.end = Some(End {
                status: super::Status::Succeeded,
                output: Some(output),
                error: None,
                cause: None,
            });
            return;
        }
        self.put(w, path);
        self.child_ended(w, path, None);
    }

    /// The machine at `path` failed (nothing in it caught the failure).
    fn machine_failed(&mut self, w: &mut Work, path: &str, f: Failure) {
        if path.is_empty() {
            if let Some(frame) = self.state.frames.get_mut("") {
                frame.status = FrameStatus::Failed { error: f.error.clone(), cause: f.cause.clone() };
            }
            // A failed execution keeps its frame: RedriveExecution starts again from it.
            self.put(w, "");
            return self.end_failed(w, f);
        }
        if let Some(frame) = self.state.frames.get_mut(path) {
            frame.status = FrameStatus::Failed { error: f.error.clone(), cause: f.cause.clone() };
        }
        self.put(w, path);
        self.child_ended(w, path, Some(f));
    }

    fn end_failed(&mut self, w: &mut Work, f: Failure) {
        let last = self.state.last_event_id;
        emit_to(&mut self.state.last_event_id, self.x.record_history, w, last, "ExecutionFailed", || {
            Some(("executionFailedEventDetails", error_and_cause(&f).into()))
        });
        self.cancel_all(w);
        w.end = Some(End {
            status: super::Status::Failed,
            output: None,
            error: given(f.error),
            cause: given(f.cause),
        });
    }

    fn cancel_all(&mut self, w: &mut Work) {
        for (path, f) in self.state.frames.iter() {
            if let FrameStatus::Task(t) = &f.status {
                w.cancels.push(Action::Cancel { path: path.to_string(), invocation: t.invocation });
            }
        }
    }

    /// A branch or iteration at `path` ended (`failure`: failed).
    fn child_ended(&mut self, w: &mut Work, path: &str, failure: Option<Failure>) {
        let Some((parent, index, child)) = parent_of(path) else { return };
        let Some(machine) = machine_at(self.x.machine, &parent) else { return };
        let state = &machine.states[index];
        let Some(FrameStatus::Children(children)) = self.state.frames.get(&parent).map(|f| &f.status) else {
            return;
        };
        let started = children.started_event_id;
        let c = self.counts.entry(parent.clone()).or_default();
        c.ended += 1;
        match (&children.of, failure) {
            (ChildrenOf::Parallel { .. }, Some(f)) => {
                let last = emit_to(
                    &mut self.state.last_event_id,
                    self.x.record_history,
                    w,
                    started,
                    "ParallelStateFailed",
                    || None,
                );
                self.set_last(&parent, last);
                // The branches that succeeded keep their frames: a redrive keeps them.
                self.cancel_children(w, &parent, index);
                self.error(w, &parent, f);
            }
            (ChildrenOf::Parallel { branches }, None) => {
                let branches = *branches;
                if self.counts.get(&parent).is_some_and(|c| c.ended >= branches) {
                    self.children_done(w, &parent);
                }
            }
            (ChildrenOf::Map { inputs, tolerated_count, tolerated_percentage, .. }, failure) => {
                let total = inputs.len();
                let tolerant = tolerated_count.is_some() || tolerated_percentage.is_some();
                let (tolerated_count, tolerated_percentage) = (*tolerated_count, *tolerated_percentage);
                let child_last = self.state.frames.get(path).map_or(started, |f| f.last_event_id);
                let (kind, key) = if failure.is_none() {
                    ("MapIterationSucceeded", "mapIterationSucceededEventDetails")
                } else {
                    ("MapIterationFailed", "mapIterationFailedEventDetails")
                };
                let name = state.name.clone();
                emit_to(&mut self.state.last_event_id, self.x.record_history, w, child_last, kind, || {
                    Some((key, json!({"name": &*name, "index": child}).into()))
                });
                if let Some(f) = failure {
                    let failed = {
                        let c = self.counts.entry(parent.clone()).or_default();
                        c.failed += 1;
                        c.failed
                    };
                    let over_count = tolerated_count.is_none_or(|n| failed as u64 > n);
                    let over_pct = tolerated_percentage
                        .is_none_or(|p| (failed as f64) * 100.0 / (total.max(1) as f64) > p);
                    if !tolerant || (over_count && over_pct) {
                        let f = if tolerant {
                            Failure::new(
                                names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                                "The specified tolerance threshold was exceeded",
                            )
                        } else {
                            f
                        };
                        let last = self.state.last_event_id;
                        let last = emit_to(
                            &mut self.state.last_event_id,
                            self.x.record_history,
                            w,
                            last,
                            "MapStateFailed",
                            || None,
                        );
                        self.set_last(&parent, last);
                        self.cancel_children(w, &parent, index);
                        return self.error(w, &parent, f);
                    }
                }
                let ended = self.counts.get(&parent).map_or(0, |c| c.ended);
                if ended >= total {
                    self.children_done(w, &parent);
                } else {
                    self.launch(w, &parent);
                }
            }
        }
    }

    fn set_last(&mut self, path: &str, last: u64) {
        if let Some(f) = self.state.frames.get_mut(path) {
            f.last_event_id = last;
        }
    }

    /// Stops the branches or iterations of a Map that failed, keeping the journaled frames of
    /// those that had ended (a redrive keeps their results) and of the one that failed.
    fn cancel_children(&mut self, w: &mut Work, path: &str, state: usize) {
        let below = format!("{}/", children_prefix(path, state));
        let open: Vec<String> = self
            .state
            .frames
            .under(&below)
            .filter(|(_, f)| !matches!(f.status, FrameStatus::Done { .. } | FrameStatus::Failed { .. }))
            .map(|(k, _)| k.to_string())
            .collect();
        for k in open {
            if let Some(FrameStatus::Task(t)) = self.state.frames.get(&k).map(|f| &f.status) {
                w.cancels.push(Action::Cancel { path: k.clone(), invocation: t.invocation });
            }
            if let Some(f) = self.state.frames.get_mut(&k) {
                // Cut short: it begins its state anew on a redrive.
                f.status = FrameStatus::Failed { error: names::BRANCH_FAILED.into(), cause: String::new() };
            }
        }
        self.counts.remove(path);
    }

    /// Every branch or iteration of the Map or Parallel state at `path` ended well: the
    /// state's result is their outputs, in order.
    fn children_done(&mut self, w: &mut Work, path: &str) {
        let Some(frame) = self.state.frames.get(path) else { return };
        let index = frame.state;
        let FrameStatus::Children(children) = &frame.status else { return };
        let (started, is_map) = (children.started_event_id, matches!(children.of, ChildrenOf::Map { .. }));
        let total = match &children.of {
            ChildrenOf::Parallel { branches } => *branches,
            ChildrenOf::Map { inputs, .. } => inputs.len(),
        };
        let mut outputs = Vec::with_capacity(total);
        for i in 0..total {
            let p = child_path(path, index, i);
            match self.state.frames.get_mut(&p).map(|f| &mut f.status) {
                Some(FrameStatus::Done { output }) => outputs.push(std::mem::take(output)),
                Some(FrameStatus::Failed { error, cause }) => {
                    outputs.push(json!({"Error": error, "Cause": cause}))
                }
                _ => outputs.push(Value::Null),
            }
        }
        let last = self.state.last_event_id;
        let last = if is_map {
            emit_to(
                &mut self.state.last_event_id,
                self.x.record_history,
                w,
                last,
                "MapStateSucceeded",
                || None,
            )
        } else {
            emit_to(
                &mut self.state.last_event_id,
                self.x.record_history,
                w,
                started,
                "ParallelStateSucceeded",
                || None,
            )
        };
        let Some(frame) = self.state.frames.get_mut(path) else { return };
        frame.last_event_id = last;
        let raw = match std::mem::replace(&mut frame.status, FrameStatus::Ready) {
            FrameStatus::Children(c) => c.raw,
            _ => Value::Null,
        };
        self.counts.remove(path);
        let step = match self.finish_state(w, path, index, raw, Value::Array(outputs)) {
            Step::Error(f) => Step::Error(self.step_error(w, path, f)),
            s => s,
        };
        self.handle(w, path, step, None);
    }

    /// Begins the next iterations of the Map at `path`, up to its MaxConcurrency.
    fn launch(&mut self, w: &mut Work, path: &str) {
        let Some(machine) = machine_at(self.x.machine, path) else { return };
        let Some(frame) = self.state.frames.get(path) else { return };
        let index = frame.state;
        let state = &machine.states[index];
        let Kind::Map(spec) = &state.kind else { return };
        let FrameStatus::Children(Children {
            started_event_id,
            of: ChildrenOf::Map { inputs, max_concurrency, .. },
            ..
        }) = &frame.status
        else {
            return;
        };
        let (started, total, limit) = (*started_event_id, inputs.len(), *max_concurrency);
        if total == 0 {
            return self.children_done(w, path);
        }
        let plain =
            spec.item_selector.is_none() && spec.item_selector_jsonata.is_none() && spec.batcher.is_none();
        loop {
            // An iteration entered just now may have ended the Map or the execution (the
            // history's limit reached, say): nothing more starts then.
            let open = self.state.frames.get(path).is_some_and(|f| {
                matches!(&f.status, FrameStatus::Children(Children { of: ChildrenOf::Map { .. }, .. }))
            });
            if w.end.is_some() || !open {
                break;
            }
            let c = self.counts.get(path).copied().unwrap_or_default();
            let running = c.begun - c.ended;
            if c.begun >= total || (limit > 0 && running >= limit) {
                break;
            }
            let i = c.begun;
            self.counts.entry(path.to_string()).or_default().begun += 1;
            let child = child_path(path, index, i);
            // An iteration that ended before a restart keeps its result; a failed one (its
            // failure tolerated) too, unless a redrive runs it again.
            match self.state.frames.get(&child).map(|f| &f.status) {
                Some(FrameStatus::Done { .. }) => {
                    self.counts.entry(path.to_string()).or_default().ended += 1;
                    continue;
                }
                Some(FrameStatus::Failed { .. }) => {
                    let c = self.counts.entry(path.to_string()).or_default();
                    c.ended += 1;
                    c.failed += 1;
                    continue;
                }
                // Running already (a redrive entered it anew where it had failed).
                Some(_) => continue,
                None => {}
            }
            let input = match self.iteration_input(w, path, i, plain) {
                Ok(v) => v,
                Err(f) => {
                    let f = self.step_error(w, path, f);
                    let last = self.state.last_event_id;
                    let last = emit_to(
                        &mut self.state.last_event_id,
                        self.x.record_history,
                        w,
                        last,
                        "MapStateFailed",
                        || None,
                    );
                    self.set_last(path, last);
                    self.cancel_children(w, path, index);
                    return self.error(w, path, f);
                }
            };
            let name = state.name.clone();
            let it = emit_to(
                &mut self.state.last_event_id,
                self.x.record_history,
                w,
                started,
                "MapIterationStarted",
                || Some(("mapIterationStartedEventDetails", json!({"name": &*name, "index": i}).into())),
            );
            self.enter(w, &child, spec.processor.start, input, Some(Map::new()), it);
        }
        // Every iteration had ended already (kept from before a restart or a redrive).
        if self.counts.get(path).is_some_and(|c| c.ended >= total) {
            self.children_done(w, path);
        }
    }

    /// Iteration `i`'s input: its item through ItemSelector (with `$$.Map.Item`) and the
    /// batcher, or the item itself (moved out: nothing else reads it).
    fn iteration_input(&mut self, w: &mut Work, path: &str, i: usize, plain: bool) -> Result<Value, Failure> {
        let Some(machine) = machine_at(self.x.machine, path) else { return Err(Failure::runtime("lost")) };
        let Some(frame) = self.state.frames.get_mut(path) else { return Err(Failure::runtime("lost")) };
        let FrameStatus::Children(Children { of: ChildrenOf::Map { inputs, .. }, .. }) = &mut frame.status
        else {
            return Err(Failure::runtime("lost"));
        };
        if plain && !self.x.durable {
            return Ok(std::mem::take(&mut inputs[i]));
        }
        let item = inputs[i].clone();
        if plain {
            return Ok(item);
        }
        let Some(frame) = self.state.frames.remove(path) else { return Err(Failure::runtime("lost")) };
        let state = &machine.states[frame.state];
        let r = {
            let FrameStatus::Children(Children {
                of: ChildrenOf::Map { effective, batch_input, .. }, ..
            }) = &frame.status
            else {
                return Err(Failure::runtime("lost"));
            };
            let Kind::Map(spec) = &state.kind else { return Err(Failure::runtime("lost")) };
            let env = StateEnv {
                item: Some((i, &item)),
                ..StateEnv::at(&self.x, &self.state.frames, &frame.variables, path, state, &w.rng, w.tick.now)
            };
            let ctx = Ctx { machine, env: &env, limits: self.x.limits };
            map_item_input(&ctx, spec, effective, batch_input.as_ref(), item.clone())
        };
        self.state.frames.insert(path.to_string(), frame);
        r
    }

    /// Timers due at the tick: Waits that are over, backoffs to run again, Task deadlines
    /// and heartbeats missed.
    fn timers(&mut self, w: &mut Work) {
        let due: Vec<String> = self
            .state
            .frames
            .iter()
            .filter(|(_, f)| match &f.status {
                FrameStatus::Waiting { until, .. } | FrameStatus::Backoff { until } => *until <= w.tick.now,
                FrameStatus::Task(t) => {
                    t.deadline.is_some_and(|d| d <= w.tick.real)
                        || t.heartbeat_deadline.is_some_and(|d| d <= w.tick.real)
                }
                _ => false,
            })
            .map(|(p, _)| p.to_string())
            .collect();
        for path in due {
            if w.end.is_some() {
                return;
            }
            self.timers_of(w, &path);
        }
    }

    fn timers_of(&mut self, w: &mut Work, path: &str) {
        let Some(frame) = self.state.frames.get_mut(path) else { return };
        match std::mem::replace(&mut frame.status, FrameStatus::Ready) {
            FrameStatus::Waiting { until, after } if until <= w.tick.now => {
                let Leave { next, output, assign } = after;
                self.leave(w, path, next, output, assign.map(Box::new));
            }
            FrameStatus::Backoff { until } if until <= w.tick.now => {
                self.put(w, path);
                w.ready.push_back(path.to_string());
            }
            FrameStatus::Task(t) => {
                let heartbeat = t.heartbeat_deadline.is_some_and(|d| d <= w.tick.real);
                let timeout = t.deadline.is_some_and(|d| d <= w.tick.real);
                if !(heartbeat || timeout) {
                    frame.status = FrameStatus::Task(t);
                    return;
                }
                w.cancels.push(Action::Cancel { path: path.to_string(), invocation: t.invocation });
                let Some(machine) = machine_at(self.x.machine, path) else { return };
                let state = &machine.states[frame.state];
                let family = match &state.kind {
                    Kind::Task(task) => self.family.of(&task.resource),
                    _ => EventFamily::Task,
                };
                let ev = task_events(family);
                let prev = frame.last_event_id;
                // AWS records a missed heartbeat as a Task timeout: `States.Timeout`.
                let last = emit_to(
                    &mut self.state.last_event_id,
                    self.x.record_history,
                    w,
                    prev,
                    ev.timed_out.0,
                    || Some((ev.timed_out.1, json!({"error": names::TIMEOUT}).into())),
                );
                self.set_last(path, last);
                let f = if heartbeat && !timeout {
                    Failure::new(names::HEARTBEAT_TIMEOUT, "")
                } else {
                    Failure::new(names::TIMEOUT, "")
                };
                self.error(w, path, f);
            }
            other => frame.status = other,
        }
    }

    /// The machine's TimeoutSeconds ran out.
    fn time_out(&mut self, w_end: &mut Work) {
        let last = self.state.last_event_id;
        emit_to(
            &mut self.state.last_event_id,
            self.x.record_history,
            w_end,
            last,
            "ExecutionTimedOut",
            || Some(("executionTimedOutEventDetails", json!({"error": names::TIMEOUT}).into())),
        );
        self.cancel_all(w_end);
        w_end.end = Some(End { status: super::Status::TimedOut, output: None, error: None, cause: None });
    }

    /// StopExecution of an execution in memory: what it has in flight is cancelled.
    fn stop(&mut self, w: &mut Work, error: Option<String>, cause: Option<String>) {
        let last = self.state.last_event_id;
        let mut d = Map::new();
        if let Some(e) = &error {
            d.insert("error".into(), json!(e));
        }
        if let Some(c) = &cause {
            d.insert("cause".into(), json!(c));
        }
        emit_to(&mut self.state.last_event_id, self.x.record_history, w, last, "ExecutionAborted", || {
            Some(("executionAbortedEventDetails", Value::Object(d).into()))
        });
        self.cancel_all(w);
        w.end = Some(End { status: super::Status::Aborted, output: None, error, cause });
    }

    fn heartbeat(&mut self, w: &mut Work, token: &str) {
        let Some((path, _)) = self.token_owner(token) else { return };
        let real = w.tick.real;
        if let Some(FrameStatus::Task(t)) = self.state.frames.get_mut(&path).map(|f| &mut f.status) {
            if let Some(h) = t.heartbeat_seconds {
                t.heartbeat_deadline =
                    real.checked_add_signed(chrono::Duration::seconds(h.min(i64::MAX as u64) as i64));
                let next = t.heartbeat_deadline;
                self.timer_set(None, next);
            }
        }
        self.put(w, &path);
    }

    /// Whether a Task of this execution waits on `token` now.
    pub fn owns_token(&self, token: &str) -> bool {
        self.token_owner(token).is_some()
    }

    fn token_owner(&self, token: &str) -> Option<(String, u64)> {
        self.state.frames.iter().find_map(|(p, f)| match &f.status {
            FrameStatus::Task(t) if t.token.as_deref() == Some(token) => Some((p.to_string(), t.invocation)),
            _ => None,
        })
    }

    /// An execution loaded from its journal goes on: states that were running run again
    /// (a Task is called again: at-least-once), callbacks keep waiting, timers stand.
    fn resume(&mut self, w: &mut Work, redrive: bool) {
        let paths: Vec<String> = self.state.frames.keys().map(str::to_string).collect();
        for path in paths {
            let Some(frame) = self.state.frames.get_mut(&path) else { continue };
            match &frame.status {
                FrameStatus::Done { .. } | FrameStatus::Children(_) => {}
                // RedriveExecution: every machine that had not finished (failed, cut short,
                // tolerated as a failure) enters its state anew, with fresh retry counts.
                _ if redrive => {
                    let (index, input, variables, prev) = (
                        frame.state,
                        std::mem::take(&mut frame.input),
                        std::mem::take(&mut frame.variables),
                        self.state.last_event_id,
                    );
                    self.enter(w, &path, index, input, Some(variables), prev);
                }
                FrameStatus::Ready => w.ready.push_back(path),
                FrameStatus::Task(t) if t.submitted => {}
                // The call may or may not have happened: it is made again (at-least-once).
                FrameStatus::Task(_) => {
                    frame.status = FrameStatus::Ready;
                    w.ready.push_back(path);
                }
                _ => {}
            }
        }
        self.recount();
        // Map and Parallel states whose children had all ended, or whose next iterations had
        // not begun when the daemon stopped.
        let waiting: Vec<String> = self
            .state
            .frames
            .iter()
            .filter(|(_, f)| matches!(f.status, FrameStatus::Children(_)))
            .map(|(p, _)| p.to_string())
            .collect();
        for path in waiting {
            let (total, is_map) = match self.state.frames.get(&path).map(|f| &f.status) {
                Some(FrameStatus::Children(Children { of: ChildrenOf::Map { inputs, .. }, .. })) => {
                    (inputs.len(), true)
                }
                Some(FrameStatus::Children(Children { of: ChildrenOf::Parallel { branches }, .. })) => {
                    (*branches, false)
                }
                _ => continue,
            };
            let c = self.counts.get(&path).copied().unwrap_or_default();
            if c.ended >= total && c.failed == 0 {
                self.children_done(w, &path);
            } else if is_map {
                // Launching goes on from the first iteration that has no frame.
                self.counts.entry(path.clone()).or_default().begun = 0;
                let begun = self.count_begun(&path);
                self.counts.entry(path.clone()).or_default().begun = begun;
                self.launch(w, &path);
            }
        }
    }

    /// How many of a Map's iterations, from the first, have a frame.
    fn count_begun(&self, path: &str) -> usize {
        let Some(frame) = self.state.frames.get(path) else { return 0 };
        let mut n = 0;
        while self.state.frames.contains_key(&child_path(path, frame.state, n)) {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

//! The engine runs executions. Their logic is the pure [`core`]: an execution as data
//! ([`core::ExecState`]) moved on by inputs into actions. This module is the runtime that
//! carries the actions out for one execution: it commits through the [`Journal`] (a Standard
//! execution of the daemon) before anything the commit leads to happens, calls Task resources
//! through the connector [`Registry`] (several at once for Parallel branches and Map
//! iterations), sleeps until the next timer on the [`Clock`], and feeds every answer back to
//! the core. An execution with nothing in flight whose next timer is far off leaves memory
//! (it "parks"): its frames and timers are in the journal.
//!
//! `stepgate run` uses the same runtime without a journal.

pub mod core;
pub mod frames;
pub mod history;
pub mod input;

use crate::asl::compile::Machine;
use crate::connectors::{self, Answer, Call, CancellationToken, EventFamily, Registry, TaskContext};
use crate::error::Failure;
use crate::interpreter::Limits;
use crate::metrics::CallOutcome;
use crate::time::Clock;
use chrono::{DateTime, Utc};
use core::{Action, Core, ExecState, Execution, Frame, FrameStatus, Input, Tick};
use futures::future::{AbortHandle, Abortable, BoxFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
pub use history::Event;
use serde_json::Value;
use std::collections::HashMap;
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
    /// The history (without a journal), or the events not yet journaled (with one: the
    /// caller commits them with the execution's end, in one commit).
    pub history: Vec<Event>,
    /// The frame writes not yet journaled, for the same commit.
    pub frames: Vec<FrameWrite>,
    /// States entered, across branches and iterations.
    pub transitions: u64,
}

/// What identifies one execution.
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
    /// What reaches the execution from outside while it runs (callback tokens, heartbeats,
    /// a stop).
    pub inbox: Option<Inbox>,
}

/// The receiving end of an execution's messages.
pub type Inbox = tokio::sync::mpsc::UnboundedReceiver<Message>;

/// A message for a running execution: an input, and where to say whether it was taken
/// (a token that no Task of the execution waits on any more is not).
#[derive(Debug)]
pub struct Message {
    pub input: Input,
    pub taken: Option<tokio::sync::oneshot::Sender<bool>>,
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
            inbox: None,
        }
    }
}

/// Receives an execution's progress so that it survives a restart: the events since the
/// last call and the frames of the machines that moved (the top level, Parallel branches,
/// Map iterations). The future resolves once both are durable, or with the store's error:
/// nothing the commit leads to (a Task call, a timer) happens before it succeeds.
pub trait Journal: Send + Sync {
    fn checkpoint(
        &self,
        events: Vec<Event>,
        frames: Vec<FrameWrite>,
    ) -> BoxFuture<'static, Result<(), String>>;
}

/// A change to the journaled frames; a checkpoint applies its changes in order.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameWrite {
    /// Stores `data` at `path`, replacing what was there.
    Put { path: String, data: Value },
    /// Removes the frame at `path` and every frame below it.
    Remove { path: String },
}

/// A journaled execution to go on with (after a restart) or to redrive.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// The journaled frames by path ([`core::Frame`] as JSON).
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
    /// Commits the journal refused, for `/metrics`.
    commit_failures: std::sync::atomic::AtomicU64,
    clock: Arc<Clock>,
    limits: Limits,
    region: Arc<str>,
    account: Arc<str>,
    /// Long JSONata evaluations, one per core at most, run beside the async workers.
    long_evaluations: Gate,
    /// Task calls in flight, across executions (`limits.running_tasks`): a call waits for a
    /// turn before its connector runs.
    task_turns: Arc<tokio::sync::Semaphore>,
    /// Task calls by connector, for /metrics.
    call_stats: Arc<crate::metrics::CallStats>,
    task_limit: usize,
    /// Calls waiting for a turn, for `/metrics`.
    tasks_waiting: Arc<std::sync::atomic::AtomicU64>,
}

impl Engine {
    pub fn new(registry: Registry, clock: Arc<Clock>, limits: Limits, region: &str, account: &str) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Engine {
            registry,
            commit_failures: Default::default(),
            clock,
            limits,
            region: Arc::from(region),
            account: Arc::from(account),
            long_evaluations: Gate::new(cores),
            task_turns: Arc::new(tokio::sync::Semaphore::new(crate::config::DEFAULT_RUNNING_TASKS)),
            call_stats: Arc::default(),
            task_limit: crate::config::DEFAULT_RUNNING_TASKS,
            tasks_waiting: Arc::default(),
        }
    }

    /// At most `n` Task calls in flight at once (at least one); more wait their turn.
    pub fn with_task_limit(mut self, n: usize) -> Self {
        let n = n.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self.task_turns = Arc::new(tokio::sync::Semaphore::new(n));
        self.task_limit = n;
        self
    }

    /// Task calls answered so far, by connector.
    pub fn call_stats(&self) -> &crate::metrics::CallStats {
        &self.call_stats
    }

    /// Task calls in flight and calls waiting for their turn.
    pub fn tasks(&self) -> (u64, u64) {
        let running = self.task_limit - self.task_turns.available_permits();
        (running as u64, self.tasks_waiting.load(std::sync::atomic::Ordering::Relaxed))
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
        self.arn("stateMachine", &[name])
    }

    /// The ARN of an execution.
    pub fn execution_arn(&self, state_machine: &str, name: &str, express_id: Option<uuid::Uuid>) -> String {
        match express_id {
            Some(id) => {
                let mut buf = uuid::Uuid::encode_buffer();
                self.arn("express", &[state_machine, name, id.hyphenated().encode_lower(&mut buf)])
            }
            None => self.arn("execution", &[state_machine, name]),
        }
    }

    /// `arn:aws:states:REGION:ACCOUNT:KIND:PART:...`, built by appending: every execution
    /// makes two, and `format!`'s machinery cost more than the copying.
    fn arn(&self, kind: &str, parts: &[&str]) -> String {
        let len = 16
            + self.region.len()
            + self.account.len()
            + kind.len()
            + parts.iter().map(|p| p.len() + 1).sum::<usize>();
        let mut arn = String::with_capacity(len);
        for piece in ["arn:aws:states:", &self.region, ":", &self.account, ":", kind] {
            arn.push_str(piece);
        }
        for p in parts {
            arn.push(':');
            arn.push_str(p);
        }
        arn
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

    /// Commits the journal refused since the daemon started.
    pub fn commit_failures(&self) -> u64 {
        self.commit_failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs an execution to its end (without a journal nothing parks).
    pub async fn run(&self, machine: &Machine, start: Start) -> Outcome {
        match self.run_parking(machine, start, None).await {
            Progress::Ended { outcome, .. } => outcome,
            // Only a journaled execution parks or stalls: its state is in the store.
            Progress::Parked { transitions, .. } | Progress::Stalled { transitions, .. } => Outcome {
                status: Status::Failed,
                output: None,
                error: Some(crate::error::names::RUNTIME.into()),
                cause: Some("The execution left memory without a journal to come back from.".into()),
                history: Vec::new(),
                frames: Vec::new(),
                transitions,
            },
        }
    }

    /// Runs an execution until it ends or, with `park_after` and a journal, until nothing
    /// is in flight and its next timer is further off than that (a Wait, a Retry backoff, a
    /// callback's deadline, at any depth): its frames are journaled and it leaves memory, to
    /// be resumed from the journal when it is due or when its token comes.
    pub async fn run_parking(
        &self,
        machine: &Machine,
        start: Start,
        park_after: Option<chrono::Duration>,
    ) -> Progress {
        let Start {
            state_machine_name,
            execution_name,
            input,
            record_history,
            express,
            express_id,
            start_time,
            journal,
            resume,
            mut inbox,
        } = start;
        let start_time = start_time.unwrap_or_else(|| self.clock.now());
        let express_id = express.then(|| express_id.unwrap_or_else(uuid::Uuid::new_v4));
        let (state, first) = match resume {
            Some(r) if !r.frames.is_empty() => match frames_from_journal(r.frames) {
                Ok(frames) => (
                    ExecState { frames, last_event_id: r.last_event_id, next_invocation: 0, transitions: 0 },
                    Input::Resume { redrive: r.redrive },
                ),
                Err(cause) => {
                    let outcome = failed_outcome(r.last_event_id, self.clock.now(), record_history, cause);
                    return Progress::Ended { outcome, inbox };
                }
            },
            // Started (its ExecutionStarted journaled) and nothing more: it begins at StartAt.
            Some(r) => (
                ExecState { last_event_id: r.last_event_id, ..ExecState::default() },
                Input::Start { input: Value::Null },
            ),
            None => (ExecState::default(), Input::Start { input: Value::Null }),
        };
        // `$$.Execution.Input` reads the input only when the machine reads the context.
        let (first, context_input) = match first {
            Input::Start { .. } if machine.uses_context => (Input::Start { input: input.clone() }, input),
            Input::Start { .. } => (Input::Start { input }, Value::Null),
            other => (other, input),
        };
        let resolve = |r: &Arc<str>| match self.registry.resolve(r) {
            Some((c, family)) => (family, Some(c)),
            None => (EventFamily::Task, None),
        };
        let offload = |work: &mut dyn FnMut()| self.offload(work);
        let execution = Execution {
            machine,
            arn: self.execution_arn(&state_machine_name, &execution_name, express_id).into(),
            state_machine_arn: self.state_machine_arn(&state_machine_name),
            name: execution_name,
            state_machine_name,
            role_arn: ["arn:aws:iam::", &self.account, ":role/stepgate"].concat(),
            start_time,
            input: context_input,
            express,
            redrive_count: 0,
            deadline: machine.timeout_seconds.map(|t| crate::time::after(start_time, t)),
            limits: &self.limits,
            region: &self.region,
            record_history,
            durable: journal.is_some(),
            offload: &offload,
            answers_now: true,
        };
        let mut core = Core::new(execution, state, &resolve);
        // The machine's TimeoutSeconds holds in real time too (work that takes too long),
        // counting what a resumed execution spent before.
        let real_deadline = machine
            .timeout_seconds
            .map(|t| tokio::time::Instant::now() + remaining(t, start_time, self.clock.now()));
        let mut inflight = FuturesUnordered::new();
        let mut aborts: HashMap<(String, u64), (AbortHandle, CancellationToken)> = HashMap::new();
        let cancel_all = |aborts: &mut HashMap<(String, u64), (AbortHandle, CancellationToken)>| {
            for (_, (h, c)) in aborts.drain() {
                h.abort();
                c.cancel();
            }
        };
        // The execution's and its machine's ARNs as every call's context carries them (made at
        // the first call: most executions of Pass and Choice states make none).
        let mut arns: Option<(Arc<str>, Arc<str>)> = None;
        let mut history = Vec::new();
        // Answers that came as the calls were made, taken one an advance, in order.
        let mut answered = std::collections::VecDeque::new();
        let mut at_once = 0u64;
        let mut input = first;
        loop {
            let real = Utc::now();
            let tick = Tick { now: self.clock.at(real), real, seed: rand::random() };
            let advanced =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.advance(input, tick)));
            let actions = match advanced {
                Ok(a) => a,
                // A panic (a defect of ours, or of a crate under us) ends this execution alone,
                // FAILED with the history it has, instead of leaving it RUNNING to panic again
                // at every restart.
                Err(panic) => {
                    let f = internal_error(panic.as_ref());
                    cancel_all(&mut aborts);
                    let mut o = failed_outcome(core.state.last_event_id, tick.now, record_history, f.cause);
                    history.append(&mut o.history);
                    o.history = history;
                    o.transitions = core.state.transitions;
                    return Progress::Ended { outcome: o, inbox };
                }
            };
            let ends = matches!(actions.last(), Some(Action::Finish(_)));
            let mut frames = Vec::new();
            for action in actions {
                match action {
                    Action::Commit(c) => {
                        let writes = c.frames.into_iter().map(frame_write).collect::<Vec<_>>();
                        match (&journal, ends) {
                            // The end's events and frames go with the end, in the caller's commit.
                            (Some(_), true) | (None, _) => {
                                history.extend(c.events);
                                frames.extend(writes);
                            }
                            (Some(j), false) => {
                                if let Err(e) = j.checkpoint(c.events, writes).await {
                                    // Nothing it leads to may happen: the execution stops
                                    // here and goes on from the journal once it works again.
                                    self.commit_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    cancel_all(&mut aborts);
                                    return Progress::Stalled {
                                        error: e,
                                        transitions: core.state.transitions,
                                    };
                                }
                            }
                        }
                    }
                    Action::Cancel { path, invocation } => {
                        if let Some((h, c)) = aborts.remove(&(path, invocation)) {
                            h.abort();
                            c.cancel();
                        }
                    }
                    Action::Invoke(inv) => {
                        let cancel = CancellationToken::new();
                        let key = (inv.path.clone(), inv.invocation);
                        let arns = arns.get_or_insert_with(|| {
                            (core.x.arn.clone(), core.x.state_machine_arn.as_str().into())
                        });
                        let mut call = self.call(arns, *inv, cancel.clone());
                        // A connector that answers at once (a mock, an in-process function)
                        // is taken at once, without the bookkeeping of a call in flight. One
                        // that is not done yet is polled again, with this task's waker, as
                        // one of the calls in flight.
                        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
                        if let std::task::Poll::Ready((path, invocation, answer)) =
                            call.as_mut().poll(&mut cx)
                        {
                            answered.push_back(answer_input(path, invocation, answer));
                            continue;
                        }
                        let (handle, registration) = AbortHandle::new_pair();
                        aborts.insert(key, (handle, cancel));
                        inflight.push(Abortable::new(call, registration));
                    }
                    Action::Finish(end) => {
                        cancel_all(&mut aborts);
                        let outcome = Outcome {
                            status: end.status,
                            output: end.output,
                            error: end.error,
                            cause: end.cause,
                            history,
                            frames,
                            transitions: core.state.transitions,
                        };
                        return Progress::Ended { outcome, inbox };
                    }
                }
            }
            // The real clock's deadlines (Task timeouts) as the workflow's clock reads them.
            let next_of = |(workflow, real): (Option<DateTime<Utc>>, Option<DateTime<Utc>>)| {
                core::sooner(workflow, real.map(|t| self.clock.now() + (t - Utc::now())))
            };
            // Never later than the soonest timer; waking early finds nothing due.
            let next = next_of(core.soonest_timers());
            let unread = inbox.as_ref().is_some_and(|rx| !rx.is_empty());
            // `idle` and the exact timers look at every frame: asked last, only when parking is
            // possible at all.
            let parks = park_after
                .filter(|_| journal.is_some() && inflight.is_empty() && answered.is_empty() && !unread);
            if let Some(after) = parks.filter(|_| core.idle()) {
                let next = next_of(core.next_timers());
                if next.is_none_or(|t| t - self.clock.now() > after) {
                    return Progress::Parked {
                        until: next,
                        history,
                        transitions: core.state.transitions,
                        inbox,
                    };
                }
            }
            // Tasks the core had answered within its step count as answered at once too.
            at_once += core.take_at_once();
            if let Some(i) = answered.pop_front() {
                at_once += 1;
                // A loop of Tasks answered at once never waits on anything: now and then it
                // lets the runtime's other tasks run and looks at its deadline and its messages
                // (a stop), as the wait below would.
                if at_once >= AT_ONCE_BEFORE_YIELD {
                    at_once = 0;
                    tokio::task::yield_now().await;
                    let late = real_deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                    let message = if late { None } else { inbox.as_mut().and_then(|rx| rx.try_recv().ok()) };
                    let first =
                        if late { Some(Input::TimedOut) } else { message.and_then(|m| taken(&core, m)) };
                    if let Some(first) = first {
                        answered.push_front(i);
                        input = first;
                        continue;
                    }
                }
                input = i;
                continue;
            }
            // The wait lets the runtime's other tasks run.
            at_once = 0;
            input = loop {
                let next = tokio::select! {
                    Some(done) = inflight.next(), if !inflight.is_empty() => match done {
                        Ok((path, invocation, answer)) => {
                            aborts.remove(&(path.clone(), invocation));
                            Some(answer_input(path, invocation, answer))
                        }
                        // A cancelled call answers nothing.
                        Err(_) => None,
                    },
                    _ = sleep_until(&self.clock, next) => Some(Input::Timers),
                    _ = real_sleep(real_deadline) => Some(Input::TimedOut),
                    Some(message) = recv(&mut inbox) => taken(&core, message),
                };
                if let Some(i) = next {
                    break i;
                }
            };
        }
    }

    /// One Task call, through the resource's connector.
    fn call(
        &self,
        arns: &(Arc<str>, Arc<str>),
        inv: core::Invocation,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, (String, u64, Result<Answer, Failure>)> {
        let core::Invocation { path, invocation, state_name, resource, params, token, deadline, .. } = inv;
        match self.registry.resolve(&resource) {
            Some((c, family)) => {
                let label: std::borrow::Cow<'static, str> = match family {
                    EventFamily::LambdaFunction => "lambda".into(),
                    EventFamily::Activity => "activity".into(),
                    EventFamily::Task => core::resource_parts(&resource).0.to_string().into(),
                };
                let stats = self.call_stats.clone();
                let context = TaskContext {
                    execution_arn: arns.0.clone(),
                    state_machine_arn: arns.1.clone(),
                    state_name,
                    token,
                    deadline,
                    cancel,
                };
                let call = Call {
                    resource,
                    params,
                    region: self.region.clone(),
                    account: self.account.clone(),
                    context,
                };
                let (turns, waiting) = (self.task_turns.clone(), self.tasks_waiting.clone());
                async move {
                    let turn = {
                        let _waiting = Waiting::count(&waiting);
                        turns.acquire_owned().await
                    };
                    // Held until the connector answers (a callback's hand-over, not its token).
                    let _turn = turn.ok();
                    let timer = crate::metrics::CallTimer::start(stats, label);
                    // A connector that panics fails its Task (States.Runtime, which nothing
                    // catches), not the daemon's task.
                    let r = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.invoke(call))) {
                        Ok(answer) => std::panic::AssertUnwindSafe(answer)
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|panic| Err(internal_error(panic.as_ref()))),
                        Err(panic) => Err(internal_error(panic.as_ref())),
                    };
                    let outcome = match &r {
                        Ok(Answer::Result(_)) => CallOutcome::Ok,
                        Ok(Answer::Submitted(_)) => CallOutcome::Submitted,
                        Err(_) => CallOutcome::Error,
                    };
                    timer.answered(outcome);
                    (path, invocation, r)
                }
                .boxed()
            }
            None => futures::future::ready((path, invocation, Err(connectors::unknown_resource(&resource))))
                .boxed(),
        }
    }
}

/// Answers taken at once in a row before the execution yields to the runtime.
const AT_ONCE_BEFORE_YIELD: u64 = 128;

/// A connector's answer as the core's input.
fn answer_input(path: String, invocation: u64, answer: Result<Answer, Failure>) -> Input {
    match answer {
        Ok(Answer::Result(v)) => Input::TaskDone { path, invocation, result: Ok(v) },
        Ok(Answer::Submitted(output)) => Input::TaskSubmitted { path, invocation, output },
        Err(f) => Input::TaskDone { path, invocation, result: Err(f) },
    }
}

/// Sleeps until `t` on the workflow's clock; for ever without one.
async fn sleep_until(clock: &Clock, t: Option<DateTime<Utc>>) {
    match t {
        Some(t) => clock.sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn real_sleep(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A message's input, once it is known to be for this execution: a token that no Task waits
/// on (any more) is answered "not taken" and changes nothing.
fn taken(core: &Core<'_>, m: Message) -> Option<Input> {
    let ok = match &m.input {
        Input::TokenDone { token, .. }
        | Input::Heartbeat { token }
        | Input::ActivityStarted { token, .. } => core.owns_token(token),
        _ => true,
    };
    if let Some(tx) = m.taken {
        let _ = tx.send(ok);
    }
    ok.then_some(m.input)
}

async fn recv(inbox: &mut Option<Inbox>) -> Option<Message> {
    match inbox {
        Some(rx) => match rx.recv().await {
            Some(m) => Some(m),
            // Nobody can send any more: wait on the rest.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The part of a machine's `TimeoutSeconds` of `t` seconds left at `now` for an execution that
/// started at `start`.
fn remaining(t: u64, start: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    let spent = (now - start).to_std().unwrap_or(Duration::ZERO);
    Duration::from_secs(t).saturating_sub(spent)
}

fn frame_write((path, frame): (String, Option<Frame>)) -> FrameWrite {
    match frame {
        Some(f) => FrameWrite::Put { data: serde_json::to_value(&f).unwrap_or(Value::Null), path },
        None => FrameWrite::Remove { path },
    }
}

/// The journal's frames as the core's, including those journaled by earlier versions (which
/// stored a frame's state and input, a Wait's or backoff's deadline, and `{"done": output}` /
/// `{"failed": ...}` markers for ended branches and iterations). A frame that cannot be read
/// is an error: starting its machine over would repeat what it did.
fn frames_from_journal(raw: HashMap<String, Value>) -> Result<frames::Frames, String> {
    let mut out = frames::Frames::default();
    for (path, data) in raw {
        let frame = match serde_json::from_value::<Frame>(data.clone()) {
            Ok(f) => f,
            Err(e) => legacy_frame(&data).ok_or_else(|| {
                format!("The journal of this execution cannot be read (the frame at '{path}': {e}); it was failed rather than started over.")
            })?,
        };
        out.insert(path, frame);
    }
    Ok(out)
}

fn legacy_frame(data: &Value) -> Option<Frame> {
    let ended = |status| Frame {
        state: 0,
        input: Value::Null,
        variables: Default::default(),
        entered_event_id: 0,
        last_event_id: 0,
        attempts: Vec::new(),
        status,
    };
    if let Some(v) = data.get("done") {
        return Some(ended(FrameStatus::Done { output: v.clone() }));
    }
    if let Some(f) = data.get("failed") {
        let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        return Some(ended(FrameStatus::Failed { error: text("error"), cause: text("cause") }));
    }
    let last = data.get("last_event_id")?.as_u64()?;
    let until = data.get("wake_at").and_then(|t| serde_json::from_value::<DateTime<Utc>>(t.clone()).ok());
    Some(Frame {
        state: data.get("state")?.as_u64()? as usize,
        input: data.get("input").cloned().unwrap_or(Value::Null),
        variables: data.get("variables").and_then(Value::as_object).cloned().unwrap_or_default(),
        entered_event_id: data.get("entered_event_id").and_then(Value::as_u64).unwrap_or(last),
        last_event_id: last,
        attempts: serde_json::from_value(data.get("attempts").cloned().unwrap_or(Value::Null))
            .unwrap_or_default(),
        // A backoff goes on; any other state (a Wait too) runs again.
        status: match until {
            Some(until) if data.get("attempts").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) => {
                FrameStatus::Backoff { until }
            }
            _ => FrameStatus::Ready,
        },
    })
}

/// An execution failed outside its states (a journal that cannot be read, a panic), with its
/// end event.
fn failed_outcome(last_event_id: u64, now: DateTime<Utc>, record: bool, cause: String) -> Outcome {
    let f = Failure::runtime(cause);
    let history = if record {
        vec![Event {
            id: last_event_id + 1,
            previous_event_id: last_event_id,
            timestamp: now,
            kind: "ExecutionFailed",
            details: Some(("executionFailedEventDetails", core::error_and_cause(&f).into())),
        }]
    } else {
        Vec::new()
    };
    Outcome {
        status: Status::Failed,
        output: None,
        error: Some(f.error),
        cause: Some(f.cause),
        history,
        frames: Vec::new(),
        transitions: 0,
    }
}

/// Where a journaled execution was at work: the newest state entered among its machines that
/// were running (a Task called again after a restart does not enter its state again, so this
/// stays put while the daemon keeps dying on the same step).
pub fn work_marker(frames: &HashMap<String, Value>) -> u64 {
    frames
        .values()
        .filter_map(|d| serde_json::from_value::<Frame>(d.clone()).ok())
        .filter(|f| matches!(f.status, FrameStatus::Ready | FrameStatus::Task(_)))
        .map(|f| f.entered_event_id)
        .max()
        .unwrap_or(0)
}

/// What an execution's journaled frames say of it after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journaled {
    /// Something of it was at work: it runs now.
    AtWork,
    /// Every machine waits: on its soonest timer (`None`: only on callback tokens).
    Waiting(Option<DateTime<Utc>>),
}

/// What a journaled execution was doing, from its frames (none: it had just started).
pub fn journaled(frames: &HashMap<String, Value>) -> Journaled {
    if frames.is_empty() {
        return Journaled::AtWork;
    }
    let mut soonest: Option<DateTime<Utc>> = None;
    for data in frames.values() {
        let Ok(f) = serde_json::from_value::<Frame>(data.clone()) else { return Journaled::AtWork };
        let t = match &f.status {
            FrameStatus::Waiting { until, .. } | FrameStatus::Backoff { until } => Some(*until),
            FrameStatus::Task(t) if t.submitted => t.deadline.into_iter().chain(t.heartbeat_deadline).min(),
            FrameStatus::Ready | FrameStatus::Task(_) => return Journaled::AtWork,
            _ => None,
        };
        if let Some(t) = t {
            soonest = Some(soonest.map_or(t, |s| s.min(t)));
        }
    }
    Journaled::Waiting(soonest)
}

/// One call counted as waiting for its turn while it lives (a cancelled call stops counting).
struct Waiting<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Waiting<'a> {
    fn count(n: &'a std::sync::atomic::AtomicU64) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
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
    Ended {
        outcome: Outcome,
        /// Messages that came in as it ended: whoever commits the end answers them, so that
        /// their senders learn that no Task waits any more only once the end is stored.
        inbox: Option<Inbox>,
    },
    /// Nothing of it is in flight and everything waits, journaled, until `until` (its
    /// soonest timer; `None`: only callback tokens); `history` holds what was not journaled.
    Parked {
        until: Option<DateTime<Utc>>,
        history: Vec<Event>,
        transitions: u64,
        /// The execution's messages: whoever parks it checks, under the lock its senders
        /// take, that none came in meanwhile.
        inbox: Option<Inbox>,
    },
    /// The journal refused a commit: it stopped where the journal has it, and goes on
    /// from there once the store works again.
    Stalled { error: String, transitions: u64 },
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

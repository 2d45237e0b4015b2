//! The interpreter: one state at a time, no I/O, no clock. The engine hands it a compiled
//! state and its input; it answers with a [`Step`]: where to go next, or which effect the
//! engine must carry out (a Task call, a timer, branches, Map iterations) before calling
//! [`finish`] with the effect's result. Failures go through [`recover`] for Retry/Catch.
//!
//! Data moves by value: a state's input is consumed and becomes its output, so a chain of
//! Pass states copies nothing.

pub mod errors;
pub mod io;
mod states;

use crate::asl::compile::{Kind, Machine, Transition};
use crate::asl::Env;
use crate::error::Failure;
use serde_json::Value;

pub use errors::{recover, Recovery};
pub use io::finish;
pub use states::map::{map_item_input, MapRun};

/// The clock-free description of what the engine does next.
#[derive(Debug)]
pub enum Step {
    /// Go on with state `next` and this input, after assigning these variables.
    Next { next: usize, output: Value, assign: Assigned },
    /// The machine (or branch, or iteration) ends with this output.
    End { output: Value, assign: Assigned },
    /// A Fail state ended the machine: not caught by Catch.
    Fail(Failure),
    /// The state failed; the engine asks [`recover`] what Retry and Catch make of it.
    Error(Failure),
    /// Call the Task's resource, then [`finish`] with its result. (Effects are boxed:
    /// a small `Step` is cheap to return from every state.)
    Invoke(Box<Invoke>),
    /// Wait, then carry on with `then`.
    Wait { until: WaitUntil, then: Box<Step> },
    /// Run every branch on the input (first), then [`finish`] with the array of their
    /// outputs merged into the raw input (second).
    Parallel(Box<(Value, Value)>),
    /// Run the iterations, then [`finish`] with the array of their outputs.
    Map(Box<MapRun>),
}

#[derive(Debug)]
pub struct Invoke {
    pub resource: std::sync::Arc<str>,
    pub params: Value,
    /// The state's raw input, which ResultPath merges the result into.
    pub raw: Value,
    pub timeout_seconds: Option<u64>,
    pub heartbeat_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitUntil {
    Seconds(u64),
    /// RFC 3339, already checked.
    Timestamp(chrono::DateTime<chrono::FixedOffset>),
}

/// Variables a state assigns when it ends (None: none). Every expression of the state
/// saw the values from before, so the engine applies them only after the state.
pub type Assigned = Option<Box<serde_json::Map<String, Value>>>;

/// Limits the interpreter enforces (configuration, AWS's values by default).
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest state input or output, in bytes (AWS: 256 KiB).
    pub payload_bytes: usize,
    /// The longest Wait, in seconds (AWS: one year).
    pub max_wait_seconds: u64,
    /// The most events one execution's history may hold (AWS: 25,000).
    pub history_events: u64,
    /// The most memory one JSONata evaluation may take, in bytes (AWS states none).
    pub expression_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            payload_bytes: 256 * 1024,
            max_wait_seconds: 31_622_400,
            history_events: 25_000,
            expression_memory_bytes: crate::asl::jsonata::MEMORY_BYTES,
        }
    }
}

/// What a state evaluation can read besides its input.
pub struct Ctx<'a> {
    pub machine: &'a Machine,
    pub env: &'a dyn Env,
    pub limits: &'a Limits,
}

/// Enters state `index` of `ctx.machine` with `input`.
pub fn step(ctx: &Ctx<'_>, index: usize, input: Value) -> Step {
    let state = &ctx.machine.states[index];
    let result = match &state.kind {
        Kind::Pass { result } => states::pass::enter(ctx, index, state, result.as_ref(), input),
        Kind::Task(task) => states::task::enter(ctx, state, task, input),
        Kind::Choice { rules, default } => states::choice::enter(ctx, state, rules, *default, input),
        Kind::Wait(wait) => states::wait::enter(ctx, state, wait, input),
        Kind::Succeed if state.jsonata => {
            io::jsonata_exit(ctx, state, input, None, state.output.as_ref(), None)
                .map(|(output, assign)| Step::End { output, assign })
        }
        Kind::Succeed => io::effective_input(ctx, state, input)
            .and_then(|v| io::output(ctx, state, v))
            .map(|output| Step::End { output, assign: None }),
        Kind::Fail { error, cause } => states::fail::enter(ctx, state, error, cause, input),
        Kind::Parallel { .. } => states::parallel::enter(ctx, state, input),
        Kind::Map(spec) => states::map::enter(ctx, state, spec, input),
    };
    result.unwrap_or_else(Step::Error)
}

/// The step that leaves a state with `output`, along its transition.
pub(crate) fn transition(t: Transition, output: Value, assign: Assigned) -> Step {
    match t {
        Transition::Next(next) => Step::Next { next, output, assign },
        Transition::End => Step::End { output, assign },
    }
}

//! The Amazon States Language, pure: parsing and checking a definition ([`validate`]),
//! its serde model ([`model`]), and the expression languages evaluated inside states
//! (JSONPath [`path`], payload templates [`template`], intrinsic functions
//! [`intrinsics`], Choice rules [`choice`]). Nothing here does I/O or reads a clock:
//! what varies (the context object, variables, randomness) comes in through [`Env`].

pub mod choice;
pub mod compile;
pub mod intrinsics;
pub mod jsonata;
pub mod model;
pub mod path;
pub mod template;
pub mod validate;

pub use compile::{compile, Machine};

use serde_json::Value;
use std::borrow::Cow;

/// What an expression may read besides the state's input: the context object (`$$`),
/// workflow variables (`$name`) and a source of randomness. The interpreter provides it.
pub trait Env: Sync {
    /// The value a path's root stands for: `$` is handled by the caller; this answers
    /// `$$` and `$name`. `None` when a variable is not defined.
    fn context(&self) -> Cow<'_, Value>;
    /// The context object with only its field `key` (`Map`, `Execution`, ...): all a path
    /// that starts there reads, without building the rest (the execution's input is large).
    fn context_part(&self, key: &str) -> Cow<'_, Value> {
        let _ = key;
        self.context()
    }
    fn variable(&self, name: &str) -> Option<Cow<'_, Value>>;
    /// A fresh random 64-bit number (States.UUID, States.MathRandom without a seed).
    fn random(&self) -> u64;
    /// The workflow's time (JSONata's `$now()` and `$millis()`): the engine's clock, which a
    /// time scale below 1 runs ahead of the wall clock.
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
    /// The memory one JSONata evaluation may take (`limits.expression_memory_bytes`).
    fn expression_memory_bytes(&self) -> usize {
        jsonata::MEMORY_BYTES
    }
    /// Runs `work`, a JSONata evaluation that has outlasted its inline slice, where it holds
    /// up nothing else. By default: right here.
    fn offload(&self, work: &mut dyn FnMut()) {
        work()
    }
}

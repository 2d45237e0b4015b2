#![allow(dead_code)] // each target uses its own part of this
//! What the targets share: an environment for expressions (a context object, two variables,
//! deterministic randomness) and a document to evaluate them on.

use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use stepgate::asl::Env;

/// The daemon's allocator meter, so that memory bounds hold here as they do in `stepgate`.
#[global_allocator]
static ALLOCATOR: stepgate::memory::Metered<std::alloc::System> =
    stepgate::memory::Metered(std::alloc::System);

pub fn document() -> Value {
    json!({
        "a": [1, 2.5, -3, "x", null, true, {"b": [4, 5]}],
        "s": "Hello, {}! a,b,c",
        "n": 12,
        "o": {"k": "v", "nested": {"deep": [[1], [2, [3]]]}},
        "big": 1.7976931348623157e308
    })
}

pub struct FuzzEnv {
    context: Value,
    draws: AtomicU64,
}

impl Default for FuzzEnv {
    fn default() -> Self {
        let context = json!({
            "Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:m:e", "Name": "e", "Input": document()},
            "State": {"Name": "S", "EnteredTime": "2024-03-01T12:00:00Z"},
            "StateMachine": {"Name": "m"}
        });
        FuzzEnv { context, draws: AtomicU64::new(0) }
    }
}

impl Env for FuzzEnv {
    fn context(&self) -> Cow<'_, Value> {
        Cow::Borrowed(&self.context)
    }
    fn variable(&self, name: &str) -> Option<Cow<'_, Value>> {
        match name {
            "list" => Some(Cow::Owned(json!([3, 1, 2]))),
            "text" => Some(Cow::Owned(json!("It's {}!"))),
            _ => None,
        }
    }
    fn random(&self) -> u64 {
        self.draws.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_709_294_400, 0).unwrap_or_default()
    }
}

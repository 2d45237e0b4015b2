//! A JSONata expression with AWS's functions ($partition, $range, $hash, $random, $uuid,
//! $parse), compiled and evaluated within the daemon's time and memory limits.
#![no_main]

#[path = "common.rs"]
mod common;

use serde_json::json;
use stepgate::asl::jsonata::{compile, Bindings, MEMORY_BYTES};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(expr) = compile(text) else { return };
    let states = json!({"input": common::document(), "context": {"Execution": {"Name": "e"}}});
    let variables = |name: &str| (name == "list").then(|| json!([3, 1, 2]));
    let random = || 0x9E37_79B9_7F4A_7C15u64;
    let now = || chrono::DateTime::from_timestamp(1_709_294_400, 0).unwrap_or_default();
    let b = Bindings {
        states: &states,
        variables: &variables,
        random: &random,
        now: &now,
        region_partition: "aws",
        memory_bytes: MEMORY_BYTES,
        offload: None,
    };
    let _ = expr.eval(&b);
});

//! An API request as `dispatch` takes it: the body checked against AWS's model for every
//! operation, and the bytes as an Authorization header judged by the SigV4 verifier.
#![no_main]

#[path = "common.rs"]
mod common;

use stepgate::api::{sigv4::Verifier, validate};

const OPERATIONS: &[&str] = &[
    "CreateStateMachine",
    "UpdateStateMachine",
    "DeleteStateMachine",
    "DescribeStateMachine",
    "ListStateMachines",
    "DescribeStateMachineForExecution",
    "ValidateStateMachineDefinition",
    "TestState",
    "StartExecution",
    "StartSyncExecution",
    "StopExecution",
    "RedriveExecution",
    "DescribeExecution",
    "ListExecutions",
    "GetExecutionHistory",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        for op in OPERATIONS {
            let _ = validate::check(op, &body);
        }
    }
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", value);
        headers.insert("x-amz-date", http::HeaderValue::from_static("20240301T120000Z"));
        let verifier = Verifier::new([("AKIDSTEPGATE", "s3cr3t")]);
        let at = chrono::DateTime::from_timestamp(1_709_294_400, 0).unwrap_or_default();
        let _ = verifier.check_headers(&headers, at);
    }
});

//! An intrinsic function call (`States.Format(...)` and the others), parsed and evaluated on a
//! document, the context object and variables.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(call) = stepgate::asl::intrinsics::parse(text) else { return };
    let env = common::FuzzEnv::default();
    let _ = call.eval(&common::document(), &env);
});

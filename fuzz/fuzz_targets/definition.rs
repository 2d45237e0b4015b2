//! A definition as `stepgate validate` and `serve` take it: parsed with line and column
//! errors, validated as AWS validates it, and compiled when valid.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(v) = stepgate::asl::validate::parse_text(text) else { return };
    let diagnostics = stepgate::asl::validate::validate(&v);
    let compiled = stepgate::asl::compile(&v);
    // What validate accepts compiles.
    if !diagnostics.iter().any(|d| d.is_error()) {
        assert!(compiled.is_ok(), "validated but did not compile: {text}");
    }
});

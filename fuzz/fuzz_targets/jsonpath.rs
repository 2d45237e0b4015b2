//! A JSONPath (a state's InputPath, ResultPath, a Choice Variable, a `.$` field): parsed,
//! selected from a document, and written into one.
#![no_main]

#[path = "common.rs"]
mod common;

use stepgate::asl::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let doc = common::document();
    for path in [Path::parse(text), Path::parse_reference(text)].into_iter().flatten() {
        let _ = path.select(&doc);
        let _ = path.select_ref(&doc);
        let _ = path.write(doc.clone(), serde_json::json!({"written": true}));
        let _ = path.to_string();
    }
});

//! The validator against asl-validator's fixture definitions (shared/conformance/validator):
//! every `valid/` file must give no ERROR diagnostic and every `invalid/` file at least one,
//! except where AWS's own verdict differs from asl-validator's. Those files are listed, with the
//! reason, in `tests/conformance/validator-differences.txt`, and a listed file that agrees again
//! fails the test, so the list only shrinks.
//!
//! Run with `STEPGATE_VALIDATOR_DIR=../shared/conformance/validator cargo test --test validator`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use stepgate::asl::validate::{parse_text, validate};

const DIFFERENCES: &str = "tests/conformance/validator-differences.txt";

/// `valid/NAME.json: reason` lines; `#` starts a comment.
fn differences(manifest: &Path) -> BTreeMap<String, String> {
    let path = manifest.join(DIFFERENCES);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, reason) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{}:{}: expected 'valid/NAME.json: reason'", path.display(), n + 1));
        assert!(
            file.starts_with("valid/") || file.starts_with("invalid/"),
            "{}:{}: the file must be under valid/ or invalid/",
            path.display(),
            n + 1
        );
        out.insert(file.to_string(), reason.to_string());
    }
    out
}

/// The ERROR diagnostics of one file, as `CODE: message at location` lines.
fn errors(path: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    match parse_text(&text) {
        Err(e) => vec![e.diagnostic().to_string()],
        Ok(def) => validate(&def).into_iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect(),
    }
}

#[test]
fn asl_validator_fixtures() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let Some(dir) = std::env::var_os("STEPGATE_VALIDATOR_DIR") else {
        panic!("set STEPGATE_VALIDATOR_DIR to ../shared/conformance/validator");
    };
    let dir = manifest.join(dir);
    let mut listed = differences(&manifest);
    let (mut passed, mut failures) = (0usize, Vec::new());
    for folder in ["valid", "invalid"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(folder))
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.join(folder).display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for path in files {
            let name = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
            let errors = errors(&path);
            let difference = listed.remove(&name);
            // asl-validator's verdict, turned over where AWS decides otherwise.
            let expect_valid = (folder == "valid") != difference.is_some();
            let valid = errors.is_empty();
            if valid == expect_valid {
                passed += 1;
                continue;
            }
            let why = match (&difference, valid) {
                (Some(reason), _) => format!(
                    "listed in {DIFFERENCES} ({reason}) but now agrees with asl-validator: remove the line{}",
                    if valid { String::new() } else { format!("\n    {}", errors.join("\n    ")) }
                ),
                (None, true) => "expected at least one ERROR diagnostic, got none".to_string(),
                (None, false) => format!("expected no ERROR diagnostic, got:\n    {}", errors.join("\n    ")),
            };
            failures.push(format!("{name}: {why}"));
        }
    }
    for (name, _) in listed {
        failures.push(format!("{name}: listed in {DIFFERENCES} but there is no such file"));
    }
    let mut out = std::io::stdout();
    for f in &failures {
        writeln!(out, "FAIL {f}").unwrap();
    }
    // Written past the test harness's capture, so that the count shows on a passing run too.
    writeln!(out, "{passed} passed, {} failed", failures.len()).unwrap();
    assert!(failures.is_empty(), "{} fixture(s) failed:\n{}", failures.len(), failures.join("\n"));
}

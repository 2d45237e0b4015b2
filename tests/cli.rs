//! The `stepgate` binary as a user runs it: `validate` and `run` over the example workflows in
//! `workflows/` (with `config/stepgate.toml` and `workflows/order.mock.json`), checking what
//! they print and their exit codes. The examples double as the README's documentation, so a
//! change that breaks one of them fails here first.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs the binary from the crate root (the examples' paths are relative to it), without the
/// caller's `STEPGATE_*` variables: they are config overrides and would change the results.
fn stepgate(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stepgate"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STEPGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.output().expect("the stepgate binary runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("stepgate exited, not killed by a signal")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `stepgate run ... --format json`: the exit code and the one JSON object on stdout.
fn run_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = stepgate(&all);
    let text = stdout(&out);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("stdout of {all:?} is not one JSON object ({e}):\n{text}\nstderr:\n{}", stderr(&out))
    });
    (code(&out), v)
}

/// Runs an example with its input file: `workflows/NAME.asl.json` and `workflows/NAME.input.json`.
fn run_example(name: &str, extra: &[&str]) -> (i32, Value) {
    let def = format!("workflows/{name}.asl.json");
    let input = format!("workflows/{name}.input.json");
    let mut args = vec![def.as_str(), "--input-file", input.as_str()];
    args.extend_from_slice(extra);
    run_json(&args)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn history(v: &Value) -> &Vec<Value> {
    v["history"].as_array().expect("--history adds a history array")
}

fn event_types(v: &Value) -> Vec<&str> {
    history(v).iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn timestamp(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}")))
        .unwrap_or_else(|e| panic!("{v} is not an ISO-8601 timestamp: {e}"))
}

const CONFIG: &str = "config/stepgate.toml";
const MOCKS: &str = "workflows/order.mock.json";

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the examples are missing from {}", dir.display());
    files
}

// ---- validate -------------------------------------------------------------------------------

#[test]
fn validate_accepts_every_example() {
    let files = examples();
    let args: Vec<&str> =
        std::iter::once("validate").chain(files.iter().map(|p| p.to_str().unwrap())).collect();
    let out = stepgate(&args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for f in &files {
        assert!(stdout(&out).contains(&format!("{}: OK", f.display())), "{}", stdout(&out));
    }

    let mut json_args = args.clone();
    json_args.extend_from_slice(&["--format", "json"]);
    let out = stepgate(&json_args);
    assert_eq!(code(&out), 0);
    let reports: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let reports = reports.as_array().expect("one report per file when given several files");
    assert_eq!(reports.len(), files.len());
    for r in reports {
        assert_eq!(r["result"], "OK", "{r}");
        assert_eq!(r["diagnostics"], json!([]), "{r}");
    }
}

/// Every example has an input file, so the README's `run` command works for each of them.
#[test]
fn every_example_has_an_input_file() {
    for f in examples() {
        let input = f.to_string_lossy().replace(".asl.json", ".input.json");
        let text = std::fs::read_to_string(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{input}: {e}"));
    }
}

const BROKEN: &str = r#"{
  "StartAt": "Charge",
  "States": {
    "Charge": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:us-east-1:123456789012:function:charge",
      "HeartbeatSeconds": 60,
      "TimeoutSeconds": 30,
      "Next": "Nowhere"
    },
    "Orphan": {"Type": "Pass", "End": true},
    "Pause": {"Type": "Wait", "End": true}
  }
}
"#;

#[test]
fn validate_reports_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "broken.asl.json", BROKEN);
    let bad = bad.to_str().unwrap();

    let out = stepgate(&["validate", bad, "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["result"], "FAIL");
    let diagnostics = report["diagnostics"].as_array().unwrap();
    for d in diagnostics {
        assert_eq!(d["severity"], "ERROR", "{d}");
        assert!(!d["message"].as_str().unwrap().is_empty(), "{d}");
    }
    let found: Vec<(&str, &str)> =
        diagnostics.iter().map(|d| (d["code"].as_str().unwrap(), d["location"].as_str().unwrap())).collect();
    for want in [
        ("SCHEMA_VALIDATION_FAILED", "/States/Charge/HeartbeatSeconds"),
        ("SCHEMA_VALIDATION_FAILED", "/States/Pause"),
        ("MISSING_TRANSITION_TARGET", "/States/Charge/Next"),
        ("MISSING_TRANSITION_TARGET", "/States/Orphan"),
    ] {
        assert!(found.contains(&want), "{want:?} missing from {found:?}");
    }

    // The text form: one line per problem, each naming the file, the code and the location.
    let out = stepgate(&["validate", bad]);
    assert_eq!(code(&out), 1);
    let text = stderr(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), diagnostics.len(), "{text}");
    assert!(lines.iter().all(|l| l.starts_with(&format!("{bad}: error["))), "{text}");
    assert!(text.contains("[MISSING_TRANSITION_TARGET] at /States/Charge/Next: "), "{text}");
}

#[test]
fn validate_names_line_and_column_of_a_json_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "syntax.asl.json", "{\n  \"StartAt\": \"A\",\n  \"States\": {\n    \"A\": {\"Type\": \"Pass\", \"End\": true,}\n  }\n}\n");
    let bad = bad.to_str().unwrap();

    let out = stepgate(&["validate", bad]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).starts_with(&format!("{bad}:4:")), "{}", stderr(&out));

    let out = stepgate(&["validate", bad, "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["result"], "FAIL");
    assert_eq!(report["diagnostics"][0]["code"], "INVALID_JSON_DESCRIPTION", "{report}");
    assert!(report["diagnostics"][0].to_string().contains("4:"), "{report}");
}

#[test]
fn validate_fails_when_any_file_fails_and_exits_2_on_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "broken.asl.json", BROKEN);
    let out = stepgate(&["validate", "workflows/order.asl.json", bad.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("workflows/order.asl.json: OK"));

    assert_eq!(code(&stepgate(&["validate"])), 2, "no file");
    assert_eq!(code(&stepgate(&["validate", "--bogus", "workflows/order.asl.json"])), 2);
    assert_eq!(code(&stepgate(&["validate", "workflows/missing.asl.json"])), 2, "unreadable file");
    assert_eq!(code(&stepgate(&["frobnicate"])), 2, "unknown subcommand");
}

// ---- run: the examples' exact results ------------------------------------------------------

#[test]
fn order_with_local_functions_charges_the_card() {
    let (rc, v) = run_example("order", &["--config", CONFIG]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "orderId": "A-1001", "status": "CHARGED", "chargeId": "ch_A-1001", "total": 41.9,
            // EUR comes from [functions.price] env in the config.
            "message": "Order A-1001 for Ada charged 41.9 EUR"
        }})
    );
    assert_eq!(rc, 0);
}

#[test]
fn a_function_error_becomes_the_tasks_error_and_cause() {
    // lambda:invoke: the CardDeclined report is caught; its errorMessage becomes the Fail's Cause.
    let declined = r#"{"orderId": "B-7", "customer": {"name": "Bo"}, "items": [{"sku": "LAMP", "qty": 1}], "card": "4000000000000002"}"#;
    let (rc, v) =
        run_json(&["workflows/order.asl.json", "--input", declined, "--config", CONFIG, "--history"]);
    assert_eq!(rc, 1);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "PaymentDeclined");
    assert_eq!(v["cause"], "card ending 0002 was declined");
    let failed = history(&v).iter().find(|e| e["type"] == "TaskFailed").expect("a TaskFailed event");
    let details = &failed["taskFailedEventDetails"];
    assert_eq!(details["error"], "CardDeclined");
    let report: Value = serde_json::from_str(details["cause"].as_str().unwrap()).unwrap();
    assert_eq!(report, json!({"errorType": "CardDeclined", "errorMessage": "card ending 0002 was declined"}));

    // A Lambda ARN: the report, as the function wrote it, is the Cause; the workflow catches it by
    // its errorType and fails with ErrorPath/CausePath.
    let unknown = r#"{"orderId": "C-9", "customer": {"name": "Cy"}, "items": [{"sku": "UFO", "qty": 1}], "card": "4242"}"#;
    let (rc, v) = run_json(&["workflows/order.asl.json", "--input", unknown, "--config", CONFIG]);
    assert_eq!(rc, 1);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "UnknownSku");
    let report: Value = serde_json::from_str(v["cause"].as_str().unwrap()).unwrap();
    assert_eq!(report, json!({"errorType": "UnknownSku", "errorMessage": "no price for SKU UFO"}));
}

#[test]
fn a_function_that_is_not_configured_is_not_found_under_the_configs_region_and_account() {
    let dir = tempfile::tempdir().unwrap();
    let price = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/functions/price.py");
    let config = write(
        dir.path(),
        "stepgate.toml",
        &format!(
            "region = \"eu-central-1\"\naccount = \"999999999999\"\n[functions.price]\ncommand = [\"python3\", {:?}]\n",
            price.to_str().unwrap()
        ),
    );
    let (rc, v) = run_example("order", &["--config", config.to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert_eq!(v["error"], "Lambda.ResourceNotFoundException", "{v}");
    let cause = v["cause"].as_str().unwrap();
    assert!(
        cause.starts_with(
            "Function not found: arn:aws:lambda:eu-central-1:999999999999:function:charge:$LATEST"
        ),
        "{cause}"
    );

    // Without any config, the Lambda ARN's own region and account are named.
    let (rc, v) = run_example("order", &[]);
    assert_eq!(rc, 1);
    assert_eq!(v["error"], "Lambda.ResourceNotFoundException");
    assert!(
        v["cause"]
            .as_str()
            .unwrap()
            .starts_with("Function not found: arn:aws:lambda:us-east-1:123456789012:function:price:$LATEST"),
        "{v}"
    );
}

#[test]
fn shipping_labels_parcels_in_a_map_inside_a_parallel() {
    let (rc, v) = run_example("shipping", &[]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "labels": [
                {"trackingId": "DUB-A-1001-1", "service": "post", "to": "IE"},
                {"trackingId": "DUB-A-1001-2", "service": "freight", "to": "DE"},
                {"trackingId": "DUB-A-1001-3", "service": "post", "to": "FR"},
                {"trackingId": "DUB-A-1001-4", "service": "post", "to": "DE"}
            ],
            "notice": {"subject": "Your order A-1001 ships in 4 parcels", "countries": ["IE", "DE", "FR"]}
        }})
    );
    assert_eq!(rc, 0);
}

#[test]
fn intrinsics_tour() {
    let (rc, mut v) = run_example("intrinsics", &[]);
    assert_eq!(rc, 0, "{v}");
    let id = v["output"].as_object_mut().unwrap().remove("id").expect("States.UUID() output");
    let id = id.as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4), "{id}");
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "greeting": "Hello, stepgate! You have 2 tags.",
            "colors": ["red", "green", "blue", "green"],
            "uniqueColors": ["red", "green", "blue"],
            "hasGreen": true,
            "pages": [[1, 2, 3], [4, 5, 6], [7]],
            "evens": [0, 2, 4, 6, 8, 10],
            "third": 3,
            "mixed": ["stepgate", 42, true],
            "merged": {"retries": 3, "region": "eu-west-1"},
            "asText": "{\"region\":\"eu-west-1\"}",
            "fromText": {"enabled": true, "ports": [80, 443]},
            "base64": "c3RlcGdhdGU=",
            "decoded": "stepgate",
            "sha256": "027e5dba2f2e31de7619a09d64072fe3298079d67881091f824195204155ce08",
            "counter": {"count": 3},
            "limit": 3
        }})
    );
}

#[test]
fn reminder_rejects_a_negative_delay_with_its_fail_state() {
    let (rc, v) =
        run_json(&["workflows/reminder.asl.json", "--input", r#"{"message": "m", "delaySeconds": -5}"#]);
    assert_eq!(
        v,
        json!({"status": "FAILED", "error": "InvalidDelay",
               "cause": "delaySeconds must be a number of seconds, 0 or more"})
    );
    assert_eq!(rc, 1);
}

// ---- run: time scale -------------------------------------------------------------------------

#[test]
fn time_scale_zero_skips_an_hour_of_wait_but_the_workflow_clock_moves_an_hour() {
    let began = Instant::now();
    let (rc, v) = run_example("reminder", &["--time-scale", "0", "--name", "renew-tls"]);
    assert!(began.elapsed() < Duration::from_secs(10), "an hour's Wait took {:?}", began.elapsed());
    assert_eq!(rc, 0, "{v}");
    let out = &v["output"];
    assert_eq!(out["message"], "Reminder: renew the TLS certificate");
    assert_eq!(out["execution"], "renew-tls", "--name gives $$.Execution.Name");
    let waited = timestamp(&out["remindedAt"]) - timestamp(&out["requestedAt"]);
    assert!(
        waited >= chrono::Duration::seconds(3600) && waited < chrono::Duration::seconds(3660),
        "$$.State.EnteredTime after a 3600 s Wait is {waited} after the start"
    );
}

#[test]
fn jsonata_now_and_millis_read_the_workflow_clock() {
    let dir = tempfile::tempdir().unwrap();
    let def = write(
        dir.path(),
        "late.asl.json",
        r#"{"QueryLanguage": "JSONata", "StartAt": "Nap", "States": {
            "Nap": {"Type": "Wait", "Seconds": 3600, "Next": "Look"},
            "Look": {"Type": "Pass", "End": true, "Output": {
                "now": "{% [$now(), $millis()] %}",
                "started": "{% $states.context.Execution.StartTime %}"}}}}"#,
    );
    let (rc, v) = run_json(&[def.to_str().unwrap(), "--time-scale", "0"]);
    assert_eq!(rc, 0, "{v}");
    let out = &v["output"];
    let now = timestamp(&out["now"][0]);
    let waited = now - timestamp(&out["started"]);
    assert!(
        waited >= chrono::Duration::seconds(3600) && waited < chrono::Duration::seconds(3660),
        "$now() after a 3600 s Wait at time scale 0 is {waited} after the start"
    );
    // Within one evaluation both read the clock once, as in jsonata-js.
    assert_eq!(out["now"][1].as_i64(), Some(now.timestamp_millis()));
}

#[test]
fn a_wait_past_the_machines_timeout_times_out_on_the_workflow_clock() {
    // reminder's TimeoutSeconds is a week; the Wait is eight days, skipped by --time-scale 0.
    let began = Instant::now();
    let (rc, v) = run_json(&[
        "workflows/reminder.asl.json",
        "--input",
        r#"{"message": "m", "delaySeconds": 700000}"#,
        "--time-scale",
        "0",
    ]);
    assert_eq!(v["status"], "TIMED_OUT", "{v}");
    assert_eq!(rc, 1);
    assert!(began.elapsed() < Duration::from_secs(10));
}

#[test]
fn time_scale_one_really_waits() {
    let began = Instant::now();
    let (rc, v) =
        run_json(&["workflows/reminder.asl.json", "--input", r#"{"message": "m", "delaySeconds": 1}"#]);
    assert_eq!(rc, 0, "{v}");
    assert!(began.elapsed() >= Duration::from_secs(1), "a 1 s Wait took {:?}", began.elapsed());
}

// ---- run: mock config ------------------------------------------------------------------------

fn mocked(case: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--mock-config", MOCKS, "--test-case", case, "--time-scale", "0"];
    args.extend_from_slice(extra);
    run_example("order", &args)
}

#[test]
fn mock_config_returns() {
    let (rc, v) = mocked("HappyPath", &[]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "orderId": "A-1001", "status": "CHARGED", "chargeId": "ch_mocked", "total": 29.9,
            "message": "Order A-1001 for Ada charged 29.9 EUR"
        }})
    );
    assert_eq!(rc, 0);

    let (rc, v) = mocked("LargeOrder", &[]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "orderId": "A-1001", "status": "HELD", "total": 2599.98,
            "message": "Order A-1001 needs a review: 2599.98 EUR is above the limit of 1000"
        }})
    );
    assert_eq!(rc, 0);
}

#[test]
fn mock_config_throws_into_catch() {
    let (rc, v) = mocked("Declined", &[]);
    assert_eq!(v, json!({"status": "FAILED", "error": "PaymentDeclined", "cause": "insufficient funds"}));
    assert_eq!(rc, 1);
}

#[test]
fn retry_consumes_mocked_throws_in_order() {
    // Throws on invocations 0-1, returns on 2: MaxAttempts 2 is just enough.
    let (rc, v) = mocked("FlakyNetwork", &["--history"]);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["output"]["chargeId"], "ch_third_try");
    let types = event_types(&v);
    assert_eq!(types.iter().filter(|t| **t == "TaskScheduled").count(), 3, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "TaskFailed").count(), 2, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "TaskSucceeded").count(), 1, "{types:?}");

    // Throws on 0-2: the third failure exhausts the retrier and, uncaught, fails the execution.
    let (rc, v) = mocked("NetworkDown", &["--history"]);
    assert_eq!(rc, 1);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "CardNetworkTimeout");
    assert_eq!(v["cause"], "the card network did not answer");
    let types = event_types(&v);
    assert_eq!(types.iter().filter(|t| **t == "TaskFailed").count(), 3, "{types:?}");
    let last = history(&v).last().unwrap();
    assert_eq!(last["type"], "ExecutionFailed");
    assert_eq!(
        last["executionFailedEventDetails"],
        json!({"error": "CardNetworkTimeout", "cause": "the card network did not answer"})
    );
}

#[test]
fn retry_intervals_take_real_time_unless_scaled() {
    // FlakyNetwork retries after 2 s and 4 s (BackoffRate 2): at scale 0.05, 0.3 s in all.
    let began = Instant::now();
    let (rc, _) = run_example(
        "order",
        &["--mock-config", MOCKS, "--test-case", "FlakyNetwork", "--time-scale", "0.05"],
    );
    assert_eq!(rc, 0);
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn mock_config_mistakes_are_usage_errors() {
    let out = stepgate(&["run", "workflows/order.asl.json", "--mock-config", MOCKS]);
    assert_eq!(code(&out), 2, "--mock-config needs --test-case");
    let out = stepgate(&["run", "workflows/order.asl.json", "--mock-config", MOCKS, "--test-case", "Nope"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("Nope"), "{}", stderr(&out));
    // The mock config is keyed by the workflow's name, its file stem.
    let out =
        stepgate(&["run", "workflows/shipping.asl.json", "--mock-config", MOCKS, "--test-case", "HappyPath"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("shipping"), "{}", stderr(&out));
}

// ---- run: history --------------------------------------------------------------------------

#[test]
fn history_has_aws_event_types_ids_and_previous_ids() {
    let (rc, v) = run_example("reminder", &["--time-scale", "0", "--history"]);
    assert_eq!(rc, 0);
    assert_eq!(
        event_types(&v),
        [
            "ExecutionStarted",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "WaitStateEntered",
            "WaitStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    for (i, e) in history(&v).iter().enumerate() {
        assert_eq!(e["id"], i + 1, "{e}");
        assert_eq!(e["previousEventId"], i, "{e}");
        timestamp(&e["timestamp"]);
    }
    let h = history(&v);
    assert_eq!(
        serde_json::from_str::<Value>(h[0]["executionStartedEventDetails"]["input"].as_str().unwrap())
            .unwrap(),
        json!({"message": "renew the TLS certificate", "delaySeconds": 3600})
    );
    assert_eq!(h[3]["stateEnteredEventDetails"]["name"], "Wait");
    let output = h[7]["executionSucceededEventDetails"]["output"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(output).unwrap(), v["output"]);

    // Without --history, no history.
    let (_, v) = run_example("reminder", &["--time-scale", "0"]);
    assert!(v.get("history").is_none(), "{v}");
}

#[test]
fn history_names_lambda_arn_tasks_and_integrations_as_aws_does() {
    let (rc, v) = mocked("HappyPath", &["--history"]);
    assert_eq!(rc, 0);
    let types = event_types(&v);
    // A Lambda ARN resource is recorded as LambdaFunction* events ...
    let price = types.iter().position(|t| *t == "LambdaFunctionScheduled").expect("LambdaFunctionScheduled");
    assert_eq!(
        types[price..price + 3],
        ["LambdaFunctionScheduled", "LambdaFunctionStarted", "LambdaFunctionSucceeded"]
    );
    // ... and the lambda:invoke integration as Task* events with its resource type.
    let charge = types.iter().position(|t| *t == "TaskScheduled").expect("TaskScheduled");
    assert_eq!(types[charge..charge + 3], ["TaskScheduled", "TaskStarted", "TaskSucceeded"]);
    let scheduled = &history(&v)[charge]["taskScheduledEventDetails"];
    assert_eq!(scheduled["resourceType"], "lambda");
    assert_eq!(scheduled["resource"], "invoke");
    let params: Value = serde_json::from_str(scheduled["parameters"].as_str().unwrap()).unwrap();
    assert_eq!(params["FunctionName"], "charge");
    assert_eq!(params["Payload"]["amount"], 29.9);
}

#[test]
fn history_of_map_and_parallel_links_events_to_their_parents() {
    let (rc, v) = run_example("shipping", &["--history"]);
    assert_eq!(rc, 0);
    let h = history(&v);
    let types = event_types(&v);
    for want in [
        "ParallelStateEntered",
        "ParallelStateStarted",
        "MapStateStarted",
        "MapIterationStarted",
        "MapIterationSucceeded",
        "MapStateSucceeded",
        "ParallelStateSucceeded",
    ] {
        assert!(types.contains(&want), "{want} missing from {types:?}");
    }
    assert_eq!(types.iter().filter(|t| **t == "MapIterationStarted").count(), 4);
    for (i, e) in h.iter().enumerate() {
        assert_eq!(e["id"], i + 1);
        let prev = e["previousEventId"].as_u64().unwrap();
        assert!(prev < i as u64 + 1, "{e}");
    }
    assert_eq!(*types.last().unwrap(), "ExecutionSucceeded");
}

// ---- run: usage, formats, repeat -------------------------------------------------------------

#[test]
fn run_prints_a_readable_result_without_format_json() {
    let out =
        stepgate(&["run", "workflows/shipping.asl.json", "--input-file", "workflows/shipping.input.json"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let (status, rest) = text.split_once('\n').unwrap();
    assert_eq!(status, "SUCCEEDED");
    let output: Value = serde_json::from_str(rest).unwrap();
    assert_eq!(output["notice"]["subject"], "Your order A-1001 ships in 4 parcels");

    let out = stepgate(&["run", "workflows/reminder.asl.json", "--input", r#"{"delaySeconds": "soon"}"#]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).starts_with("FAILED\n"), "{}", stdout(&out));
    assert!(stdout(&out).contains("InvalidDelay"), "{}", stdout(&out));
}

#[test]
fn run_exits_2_on_an_invalid_definition_or_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "broken.asl.json", BROKEN);
    let out = stepgate(&["run", bad.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("MISSING_TRANSITION_TARGET"), "{}", stderr(&out));

    let reminder = "workflows/reminder.asl.json";
    for (why, args) in [
        ("input that is not JSON", vec!["run", reminder, "--input", "{nope"]),
        (
            "two inputs",
            vec!["run", reminder, "--input", "{}", "--input-file", "workflows/reminder.input.json"],
        ),
        ("a missing input file", vec!["run", reminder, "--input-file", "workflows/missing.json"]),
        ("a negative time scale", vec!["run", reminder, "--time-scale=-1"]),
        ("a missing config file", vec!["run", reminder, "--config", "config/missing.toml"]),
        ("a missing definition", vec!["run", "workflows/missing.asl.json"]),
        ("an unknown flag", vec!["run", reminder, "--bogus"]),
    ] {
        let out = stepgate(&args);
        assert_eq!(code(&out), 2, "{why}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{why}: {}", stdout(&out));
    }

    // A config key that does not exist is named, with its file.
    let config = write(dir.path(), "stepgate.toml", "[limits]\npayload_byte = 5\n");
    let out = stepgate(&["run", reminder, "--config", config.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("payload_byte"), "{}", stderr(&out));
}

#[test]
fn config_limits_apply() {
    let dir = tempfile::tempdir().unwrap();
    // The shipping input (158 bytes) fits in 300; its output (about 400) does not.
    let config = write(dir.path(), "stepgate.toml", "[limits]\npayload_bytes = 300\n");
    let (rc, v) = run_example("shipping", &["--config", config.to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert_eq!(v["error"], "States.DataLimitExceeded", "{v}");
    assert!(v["cause"].as_str().unwrap().contains("limits.payload_bytes"), "the cause names the key: {v}");

    let dir2 = tempfile::tempdir().unwrap();
    let config = write(dir2.path(), "stepgate.toml", "[limits]\nmax_wait_seconds = 60\n");
    let (rc, v) = run_example("reminder", &["--config", config.to_str().unwrap(), "--time-scale", "0"]);
    assert_eq!(rc, 1);
    assert_eq!(v["error"], "States.Runtime", "an hour's Wait is over a 60 s limit: {v}");
}

#[test]
fn repeat_reports_throughput_on_stderr() {
    let out = stepgate(&[
        "run",
        "workflows/shipping.asl.json",
        "--input-file",
        "workflows/shipping.input.json",
        "--repeat",
        "50",
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 0);
    // stdout still holds the one result, of the last execution.
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["status"], "SUCCEEDED");
    let err = stderr(&out);
    assert!(err.starts_with("50 executions"), "{err}");
    let rate = |unit: &str| -> f64 {
        let before = err.split(unit).next().unwrap_or_else(|| panic!("no {unit} in {err}"));
        before
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("{unit} in {err}: {e}"))
    };
    let executions = rate(" executions/s");
    let transitions = rate(" state transitions/s");
    assert!(executions > 0.0, "{err}");
    // A shipping execution makes more than ten state transitions.
    assert!(transitions > 10.0 * executions, "{err}");
}

/// `--repeat` counts the transitions of the executions that succeeded only, says how many did
/// not and how the first ended, and exits 1 when any failed.
#[test]
fn run_repeat_counts_only_executions_that_succeeded_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fails.asl.json");
    std::fs::write(
        &file,
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "F"}, "F": {"Type": "Fail", "Error": "Boom", "Cause": "on purpose"}}}"#,
    )
    .unwrap();
    let out = stepgate(&["run", file.to_str().unwrap(), "--repeat", "5"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.starts_with("5 executions") && err.contains("(0 succeeded)"), "{err}");
    assert!(err.contains(" 0 state transitions/s of the executions that succeeded"), "{err}");
    assert!(
        err.contains("5 of 5 executions did not succeed; the first (run 1) ended FAILED: Boom on purpose"),
        "{err}"
    );
}

// ---- JSONata and variables: the examples ---------------------------------------------------------

/// The `stateExitedEventDetails` of every exit of `state`, in history order.
fn exits<'a>(v: &'a Value, state: &str) -> Vec<&'a Value> {
    history(v)
        .iter()
        .filter_map(|e| e.get("stateExitedEventDetails"))
        .filter(|d| d["name"] == state)
        .collect()
}

/// `assignedVariables` as AWS records them: each value is JSON text.
fn assigned(details: &Value) -> &Value {
    details.get("assignedVariables").unwrap_or_else(|| panic!("no assignedVariables in {details}"))
}

/// Parses a history field that holds JSON text (`input`, `parameters`, an assigned value).
fn json_text(v: &Value) -> Value {
    let text = v.as_str().unwrap_or_else(|| panic!("not JSON text: {v}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"))
}

/// Writes `definition` as `NAME.asl.json` in `dir` and runs it with `--format json`.
fn run_definition(dir: &Path, name: &str, definition: &str, extra: &[&str]) -> (i32, Value) {
    let file = write(dir, &format!("{name}.asl.json"), definition);
    let mut args = vec![file.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_json(&args)
}

#[test]
fn checkout_in_jsonata_charges_the_card_and_writes_a_receipt() {
    let (rc, v) = run_example("checkout", &["--config", CONFIG]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "orderId": "A-1001", "status": "CHARGED", "chargeId": "ch_A-1001", "total": 41.9,
            // One line per Map iteration, from ItemSelector's Index and Value and the outer $currency.
            "receipt": ["1. 2 x BOOK at 12.5 = 25 EUR", "2. 10 x PEN at 1.2 = 12 EUR"],
            "message": "Order A-1001 for Ada charged 41.9 EUR"
        }})
    );
    assert_eq!(rc, 0);

    // The Choice's Condition reads $total, assigned two states earlier.
    let desk = r#"{"orderId": "D-3", "customer": {"name": "Di"}, "items": [{"sku": "DESK", "qty": 2}], "card": "4242"}"#;
    let (rc, v) = run_json(&["workflows/checkout.asl.json", "--input", desk, "--config", CONFIG]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "orderId": "D-3", "status": "HELD", "total": 2599.98,
            "message": "Order D-3 needs a review: 2599.98 EUR is above the limit of 1000"
        }})
    );
    assert_eq!(rc, 0);
}

#[test]
fn checkout_catches_with_states_error_output() {
    // Charge's Catch: Assign reads $parse($states.errorOutput.Cause), Output keeps the order id,
    // and the Fail state builds its Cause from both.
    let declined = r#"{"orderId": "B-7", "customer": {"name": "Bo"}, "items": [{"sku": "LAMP", "qty": 1}], "card": "4000000000000002"}"#;
    let (rc, v) =
        run_json(&["workflows/checkout.asl.json", "--input", declined, "--config", CONFIG, "--history"]);
    assert_eq!(rc, 1);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "PaymentDeclined");
    assert_eq!(v["cause"], "Order B-7: card ending 0002 was declined");
    let charge = exits(&v, "Charge");
    assert_eq!(charge.len(), 1);
    assert_eq!(
        json_text(&charge[0]["output"]),
        json!({"orderId": "B-7", "error": "CardDeclined", "card": "0002"})
    );
    assert_eq!(assigned(charge[0]), &json!({"reason": "\"card ending 0002 was declined\""}));

    // Price's Catch: the whole error report becomes the output, and Fail's Error and Cause are
    // expressions over it.
    let unknown = r#"{"orderId": "C-9", "customer": {"name": "Cy"}, "items": [{"sku": "UFO", "qty": 1}], "card": "4242"}"#;
    let (rc, v) = run_json(&["workflows/checkout.asl.json", "--input", unknown, "--config", CONFIG]);
    assert_eq!(v, json!({"status": "FAILED", "error": "UnknownSku", "cause": "no price for SKU UFO"}));
    assert_eq!(rc, 1);
}

#[test]
fn checkout_runs_on_its_mock_config() {
    let mocked = |case: &str| {
        run_example(
            "checkout",
            &["--mock-config", "workflows/checkout.mock.json", "--test-case", case, "--time-scale", "0"],
        )
    };
    let (rc, v) = mocked("HappyPath");
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "orderId": "A-1001", "status": "CHARGED", "chargeId": "ch_mocked", "total": 29.9,
            "receipt": ["1. 2 x BOOK at 12.5 = 25 EUR"],
            "message": "Order A-1001 for Ada charged 29.9 EUR"
        }})
    );
    assert_eq!(rc, 0);

    let (rc, v) = mocked("Declined");
    assert_eq!(
        v,
        json!({"status": "FAILED", "error": "PaymentDeclined", "cause": "Order A-1001: insufficient funds"})
    );
    assert_eq!(rc, 1);

    let (rc, v) = mocked("LargeOrder");
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "orderId": "A-1001", "status": "HELD", "total": 2599.98,
            "message": "Order A-1001 needs a review: 2599.98 EUR is above the limit of 1000"
        }})
    );
    assert_eq!(rc, 0);
}

#[test]
fn checkout_history_records_arguments_and_assigned_variables_as_json_text() {
    let (rc, v) = run_example("checkout", &["--config", CONFIG, "--history"]);
    assert_eq!(rc, 0, "{v}");

    // Arguments is what the function receives.
    let h = history(&v);
    let scheduled = h.iter().find(|e| e["type"] == "LambdaFunctionScheduled").unwrap();
    assert_eq!(
        json_text(&scheduled["lambdaFunctionScheduledEventDetails"]["input"]),
        json!({"orderId": "A-1001", "items": [{"sku": "BOOK", "qty": 2}, {"sku": "PEN", "qty": 10}]})
    );
    let task = h.iter().find(|e| e["type"] == "TaskScheduled").unwrap();
    assert_eq!(
        json_text(&task["taskScheduledEventDetails"]["parameters"]),
        json!({"FunctionName": "charge", "Payload": {"orderId": "A-1001", "amount": 41.9, "card": "4242424242424242"}})
    );

    // Every assigned value is recorded as its JSON text: strings keep their quotes.
    let price = exits(&v, "Price");
    assert_eq!(
        assigned(price[0]),
        &json!({
            "orderId": "\"A-1001\"", "customer": "\"Ada\"", "card": "\"4242424242424242\"",
            "total": "41.9", "currency": "\"EUR\""
        })
    );
    assert_eq!(price[0]["assignedVariablesDetails"], json!({"truncated": false}));
    // Output, not the function's result, is the state's output.
    assert_eq!(
        json_text(&price[0]["output"]),
        json!({"items": [{"sku": "BOOK", "qty": 2, "amount": 25}, {"sku": "PEN", "qty": 10, "amount": 12}]})
    );
    assert_eq!(
        assigned(exits(&v, "Write receipt")[0]),
        &json!({"receipt": "[\"1. 2 x BOOK at 12.5 = 25 EUR\",\"2. 10 x PEN at 1.2 = 12 EUR\"]"})
    );
    // Inside the Map: one exit per iteration (two run at once, so in either order).
    let mut units: Vec<Value> = exits(&v, "Format line").iter().map(|d| assigned(d).clone()).collect();
    units.sort_by_key(|u| u.to_string());
    assert_eq!(units, [json!({"unit": "1.2"}), json!({"unit": "12.5"})]);
    // A state without Assign records no assignedVariables.
    for state in ["Check total", "Receipt line", "Charge"] {
        for d in exits(&v, state) {
            assert!(d.get("assignedVariables").is_none(), "{state}: {d}");
        }
    }
}

#[test]
fn invoice_mixes_jsonpath_with_a_jsonata_state_and_variables() {
    let (rc, v) = run_example("invoice", &[]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "to": "ada@example.com",
            // The Map's iterations read $lineCount and $currency from the outer scope.
            "lines": ["1/2 BOOK: 25 EUR", "2/2 PEN: 12 EUR"],
            "total": 37,
            "shipping": 4.9,
            "subject": "Invoice for Ada: 37 EUR plus 4.9 shipping"
        }})
    );
    assert_eq!(rc, 0);

    // 49 + 3 x 1.1 (3.3000000000000003 before $round) is over 50: the Choice on $total picks
    // free shipping.
    let big = r#"{"customer": {"name": "Bo", "email": "bo@example.com"},
                  "lines": [{"sku": "LAMP", "qty": 1, "price": 49}, {"sku": "PEN", "qty": 3, "price": 1.1}]}"#;
    let (rc, v) = run_json(&["workflows/invoice.asl.json", "--input", big]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "to": "bo@example.com",
            "lines": ["1/2 LAMP: 49 EUR", "2/2 PEN: 3.3 EUR"],
            "total": 52.3,
            "shipping": 0,
            "subject": "Invoice for Bo: 52.3 EUR plus 0 shipping"
        }})
    );
    assert_eq!(rc, 0);
}

#[test]
fn invoice_history_shows_variables_assigned_in_jsonpath() {
    let (rc, v) = run_example("invoice", &["--history"]);
    assert_eq!(rc, 0);
    // "total.$": "$.sum" and the others: paths, an intrinsic and a literal.
    let remember = exits(&v, "Remember");
    assert_eq!(
        assigned(remember[0]),
        &json!({
            "total": "37",
            "customer": "{\"name\":\"Ada\",\"email\":\"ada@example.com\"}",
            "lineCount": "2",
            "currency": "\"EUR\""
        })
    );
    assert_eq!(assigned(exits(&v, "Add shipping")[0]), &json!({"shipping": "4.9"}));
    assert!(exits(&v, "Free shipping").is_empty());
    // The JSONata state assigns nothing, so its exit has no assignedVariables.
    assert!(exits(&v, "Add up")[0].get("assignedVariables").is_none());
}

#[test]
fn batches_tours_aws_jsonata_functions() {
    let (rc, mut v) = run_example("batches", &["--history"]);
    assert_eq!(rc, 0, "{v}");
    let history = v.as_object_mut().unwrap().remove("history").unwrap();
    let run_id = v["output"].as_object_mut().unwrap().remove("runId").expect("$uuid() output");
    let run_id = run_id.as_str().unwrap();
    assert!(uuid::Uuid::parse_str(run_id).is_ok_and(|u| u.get_version_num() == 4), "{run_id}");
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            "schedule": [
                // $partition by batchSize 2, $range(0, 59, 20) for the minutes, a SHA-256 prefix
                // of the order ids.
                {"batch": 1, "orders": ["A-1001", "A-1002"], "at": "07:00", "fingerprint": "59826f01e1c5"},
                {"batch": 2, "orders": ["A-1003", "A-1004"], "at": "07:20", "fingerprint": "2bf6284be34c"},
                {"batch": 3, "orders": ["A-1005"], "at": "07:40", "fingerprint": "20ed599f2e38"}
            ],
            // MD5 of "A-1001,A-1002,A-1003,A-1004,A-1005".
            "checksum": "0aac9aa6ec72679706f79e33793b981d"
        }})
    );
    // $parse turned the settings text into an object; the recorded variable is that object's JSON.
    let v = json!({"history": history});
    let read = exits(&v, "Read settings");
    assert_eq!(
        json_text(&assigned(read[0])["settings"]),
        json!({"batchSize": 2, "everyMinutes": 20, "hour": "07"})
    );
    assert_eq!(json_text(&assigned(read[0])["runId"]), json!(run_id));
    assert_eq!(assigned(exits(&v, "Plan")[0]), &json!({"minutes": "[0,20,40]"}));

    // A fresh $uuid() per execution.
    let (_, again) = run_example("batches", &[]);
    assert_ne!(again["output"]["runId"], run_id);
}

// ---- JSONata and variables: scopes, errors, validation --------------------------------------------

const MAP_SCOPE: &str = r#"{
  "StartAt": "Set",
  "States": {
    "Set": {"Type": "Pass", "Assign": {"greeting": "Hello", "count": 0}, "Next": "Each"},
    "Each": {
      "Type": "Map",
      "ItemsPath": "$.names",
      "ItemProcessor": {
        "StartAt": "Greet",
        "States": {
          "Greet": {
            "Type": "Pass",
            "Parameters": {"text.$": "States.Format('{}, {}!', $greeting, $)"},
            "Assign": {"inner.$": "$.text"},
            "Next": "Read"
          },
          "Read": {"Type": "Pass", "Parameters": {"text.$": "$inner", "count.$": "$count"}, "End": true}
        }
      },
      "Next": "After"
    },
    "After": {
      "Type": "Pass",
      "QueryLanguage": "JSONata",
      "Output": {"results": "{% $states.input %}", "count": "{% $count %}", "innerVisible": "{% $exists($inner) %}"},
      "End": true
    }
  }
}"#;

#[test]
fn a_map_iteration_reads_outer_variables_and_its_own_do_not_leak() {
    let dir = tempfile::tempdir().unwrap();
    let (rc, v) = run_definition(dir.path(), "scope", MAP_SCOPE, &["--input", r#"{"names": ["Ada", "Bo"]}"#]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            // Each iteration reads the outer $greeting and $count and its own $inner ...
            "results": [{"text": "Hello, Ada!", "count": 0}, {"text": "Hello, Bo!", "count": 0}],
            "count": 0,
            // ... which is gone once the Map is done.
            "innerVisible": false
        }})
    );
    assert_eq!(rc, 0);
}

const PARALLEL_SCOPE: &str = r#"{
  "QueryLanguage": "JSONata",
  "StartAt": "Init",
  "States": {
    "Init": {"Type": "Pass", "Assign": {"a": 1, "b": 10}, "Next": "Swap"},
    "Swap": {
      "Type": "Pass",
      "Assign": {"a": "{% $b %}", "b": "{% $a %}", "sum": "{% $a + $b %}"},
      "Output": {"aBefore": "{% $a %}"},
      "Next": "Both"
    },
    "Both": {
      "Type": "Parallel",
      "Branches": [
        {"StartAt": "L", "States": {"L": {"Type": "Pass", "Assign": {"local": "left"}, "Output": "{% $a & '-' & $b & '-' & $local %}", "Next": "L2"},
                                    "L2": {"Type": "Pass", "Output": "{% $states.input & '/' & $local %}", "End": true}}},
        {"StartAt": "R", "States": {"R": {"Type": "Pass", "Output": "{% $exists($local) %}", "End": true}}}
      ],
      "Output": {
        "branches": "{% $states.result %}", "input": "{% $states.input %}",
        "a": "{% $a %}", "b": "{% $b %}", "sum": "{% $sum %}", "localVisible": "{% $exists($local) %}"
      },
      "End": true
    }
  }
}"#;

#[test]
fn assign_reads_the_values_from_before_it_and_parallel_branches_are_scopes_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (rc, v) = run_definition(dir.path(), "swap", PARALLEL_SCOPE, &[]);
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": {
            // Both branches read the outer a and b. $local, assigned in the left branch's first
            // state, is read by its next state only: not by the first state's Output (Assign takes
            // effect when the state exits; `&` reads the undefined as ""), not by the other branch,
            // not after the Parallel.
            "branches": ["10-1-/left", false],
            // Output and every Assign expression saw a = 1, b = 10: the swap worked.
            "input": {"aBefore": 1},
            "a": 10, "b": 1, "sum": 11,
            "localVisible": false
        }})
    );
    assert_eq!(rc, 0);
}

const UNDEFINED_OUTPUT: &str = r#"{
  "QueryLanguage": "JSONata",
  "StartAt": "Shape",
  "States": {
    "Shape": {"Type": "Pass", "Output": {"x": "{% $states.input.missing %}"}, "End": true}
  }
}"#;

const UNDEFINED_CAUSE: &str = "An error occurred while executing the state 'Shape' (entered at the event id #2). \
     The JSONata expression '$states.input.missing' specified for the field 'Output/x' returned nothing (undefined).";

#[test]
fn a_jsonata_expression_that_returns_nothing_fails_with_query_evaluation_error() {
    let dir = tempfile::tempdir().unwrap();
    let (rc, v) = run_definition(dir.path(), "undefined", UNDEFINED_OUTPUT, &["--history"]);
    assert_eq!(rc, 1);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "States.QueryEvaluationError");
    assert_eq!(v["cause"], UNDEFINED_CAUSE);
    let last = history(&v).last().unwrap();
    assert_eq!(last["type"], "ExecutionFailed");
    assert_eq!(
        last["executionFailedEventDetails"],
        json!({"error": "States.QueryEvaluationError", "cause": UNDEFINED_CAUSE})
    );
    assert!(!event_types(&v).contains(&"PassStateExited"), "{:?}", event_types(&v));

    // In Assign, the field is named after the variable; an undefined variable is undefined too.
    let assign = r#"{"StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "QueryLanguage": "JSONata",
        "Assign": {"total": "{% $nothing %}"}, "End": true}}}"#;
    let (rc, v) = run_definition(dir.path(), "assign", assign, &[]);
    assert_eq!(
        v,
        json!({"status": "FAILED", "error": "States.QueryEvaluationError",
               "cause": "An error occurred while executing the state 'Keep' (entered at the event id #2). \
                         The JSONata expression '$nothing' specified for the field 'Assign/total' returned nothing (undefined)."})
    );
    assert_eq!(rc, 1);
}

#[test]
fn eval_is_not_a_function_in_aws_jsonata() {
    let dir = tempfile::tempdir().unwrap();
    let call = r#"{"QueryLanguage": "JSONata", "StartAt": "Eval", "States": {
        "Eval": {"Type": "Pass", "Output": {"x": "{% $eval('1 + 1') %}"}, "End": true}}}"#;
    let (rc, v) = run_definition(dir.path(), "eval", call, &[]);
    assert_eq!(
        v,
        json!({"status": "FAILED", "error": "States.QueryEvaluationError",
               "cause": "An error occurred while executing the state 'Eval' (entered at the event id #2). \
                         The JSONata expression '$eval('1 + 1')' specified for the field 'Output/x' threw an error \
                         during evaluation. T1006: Attempted to invoke a non-function"})
    );
    assert_eq!(rc, 1);

    // As a value, $eval is an unbound variable: undefined.
    let value = r#"{"QueryLanguage": "JSONata", "StartAt": "Eval", "States": {
        "Eval": {"Type": "Pass", "Output": {"x": "{% $eval %}"}, "End": true}}}"#;
    let (rc, v) = run_definition(dir.path(), "eval-value", value, &[]);
    assert_eq!(v["error"], "States.QueryEvaluationError");
    assert!(
        v["cause"]
            .as_str()
            .unwrap()
            .ends_with("'$eval' specified for the field 'Output/x' returned nothing (undefined)."),
        "{v}"
    );
    assert_eq!(rc, 1);
}

#[test]
fn a_query_evaluation_error_in_a_tasks_output_is_caught_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let definition = r#"{
      "QueryLanguage": "JSONata",
      "StartAt": "Price",
      "States": {
        "Price": {
          "Type": "Task",
          "Resource": "arn:aws:lambda:us-east-1:123456789012:function:price",
          "Arguments": {"items": "{% $states.input.items %}"},
          "Output": {"total": "{% $states.result.totl %}"},
          "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Output": "{% $states.errorOutput %}", "Next": "Caught"}],
          "End": true
        },
        "Caught": {"Type": "Pass", "End": true}
      }
    }"#;
    let input = r#"{"items": [{"sku": "PEN", "qty": 1}]}"#;
    let (rc, v) = run_definition(dir.path(), "typo", definition, &["--input", input, "--config", CONFIG]);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["output"]["Error"], "States.QueryEvaluationError");
    let cause = v["output"]["Cause"].as_str().unwrap();
    assert!(
        cause.ends_with(
            "The JSONata expression '$states.result.totl' specified for the field 'Output/total' returned nothing (undefined)."
        ),
        "{cause}"
    );
}

#[test]
fn jsonata_wait_seconds_and_timestamp_are_expressions_on_the_workflow_clock() {
    let dir = tempfile::tempdir().unwrap();
    let definition = r#"{
      "QueryLanguage": "JSONata",
      "StartAt": "Pause",
      "States": {
        "Pause": {"Type": "Wait", "Seconds": "{% $states.input.minutes * 60 %}", "Next": "Until"},
        "Until": {
          "Type": "Wait",
          "Timestamp": "{% $states.context.State.EnteredTime %}",
          "Output": {"started": "{% $states.context.Execution.StartTime %}", "now": "{% $states.context.State.EnteredTime %}"},
          "End": true
        }
      }
    }"#;
    let began = Instant::now();
    let (rc, v) = run_definition(
        dir.path(),
        "pause",
        definition,
        &["--input", r#"{"minutes": 90}"#, "--time-scale", "0"],
    );
    assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
    assert_eq!(rc, 0, "{v}");
    let waited = timestamp(&v["output"]["now"]) - timestamp(&v["output"]["started"]);
    assert!(
        waited >= chrono::Duration::seconds(5400) && waited < chrono::Duration::seconds(5460),
        "a 90-minute Wait moved the clock {waited}"
    );
}

const JSONPATH_FIELDS_IN_JSONATA: &str = r#"{
  "QueryLanguage": "JSONata",
  "StartAt": "Shape",
  "States": {
    "Shape": {
      "Type": "Pass",
      "InputPath": "$.order",
      "Parameters": {"id.$": "$.id"},
      "ResultPath": "$.shaped",
      "Next": "Report"
    },
    "Report": {"Type": "Pass", "Output": {"e": "{% $states.errorOutput %}"}, "Next": "Done"},
    "Done": {"Type": "Succeed", "QueryLanguage": "JSONPath"}
  }
}"#;

#[test]
fn validate_rejects_jsonpath_fields_in_a_jsonata_state() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "mixed.asl.json", JSONPATH_FIELDS_IN_JSONATA);
    let bad = bad.to_str().unwrap();

    let out = stepgate(&["validate", bad, "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["result"], "FAIL");
    let wrong = |field: &str| {
        json!({
            "severity": "ERROR",
            "code": "SCHEMA_VALIDATION_FAILED",
            "message": format!("The QueryLanguage is set to 'JSONata', but field '{field}' is only supported for the 'JSONPath' QueryLanguage"),
            "location": "/States/Shape"
        })
    };
    assert_eq!(
        report["diagnostics"],
        json!([
            wrong("InputPath"),
            wrong("Parameters"),
            wrong("ResultPath"),
            // $states.errorOutput exists in a Catch only.
            {"severity": "ERROR", "code": "UNSUPPORTED_JSONATA_EXPRESSION",
             "message": "Field '$states.errorOutput' does not exist.", "location": "/States/Report/Output/e"},
            // A JSONata machine holds JSONata states only (the other way round is allowed).
            {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
             "message": "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
             "location": "/States/Done"}
        ])
    );

    // The text form names the file, the code, the location and the field.
    let out = stepgate(&["validate", bad]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(&format!(
            "{bad}: error[SCHEMA_VALIDATION_FAILED] at /States/Shape: The QueryLanguage is set to 'JSONata', \
             but field 'InputPath' is only supported for the 'JSONPath' QueryLanguage"
        )),
        "{}",
        stderr(&out)
    );

    // run refuses it before it starts.
    let out = stepgate(&["run", bad]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("'ResultPath' is only supported"), "{}", stderr(&out));
}

// ---- regressions --------------------------------------------------------------------------------

/// `STEPGATE_*` variables that are not config keys (the test suites' STEPGATE_CONFORMANCE_DIR)
/// must not break `stepgate run`.
#[test]
fn run_ignores_stepgate_variables_that_are_not_config_keys() {
    let out = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["run", "workflows/reminder.asl.json", "--input", r#"{"message": "m", "delaySeconds": 0}"#])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("STEPGATE_CONFORMANCE_DIR", "../shared/conformance/asl")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// Regression: a Map whose iterations reached limits.history_events went on starting
/// iterations on a Map that had failed, and the execution failed with the cause "lost".
#[test]
fn a_map_that_reaches_the_history_limit_fails_with_that_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "stepgate.toml", "[limits]\nhistory_events = 30\n");
    let def = r#"{"StartAt": "Each", "States": {"Each": {"Type": "Map", "MaxConcurrency": 1,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}"#;
    let items: Vec<u32> = (0..20).collect();
    let input = serde_json::to_string(&items).unwrap();
    let (rc, v) =
        run_definition(dir.path(), "wide", def, &["--config", config.to_str().unwrap(), "--input", &input]);
    assert_eq!(
        v,
        json!({"status": "FAILED", "error": "States.Runtime",
               "cause": "The execution reached the limit of 30 history events (limits.history_events)."})
    );
    assert_eq!(rc, 1);
}

/// The history's timestamps are on the workflow's clock, like `$$.State.EnteredTime`: with
/// `--time-scale 0` the events after an hour's Wait are an hour later, as on AWS.
#[test]
fn history_timestamps_follow_the_workflow_clock() {
    let (rc, v) = run_example("reminder", &["--time-scale", "0", "--history"]);
    assert_eq!(rc, 0);
    let h = history(&v);
    let entered = timestamp(&h[3]["timestamp"]);
    let exited = timestamp(&h[4]["timestamp"]);
    assert_eq!(h[4]["type"], "WaitStateExited");
    assert!(exited - entered >= chrono::Duration::seconds(3600), "{entered} -> {exited}");
    let remind_entered = timestamp(&h[5]["timestamp"]);
    assert_eq!(remind_entered, timestamp(&v["output"]["remindedAt"]));
}

/// AWS records an `EvaluationFailed` event, naming the state and the field, between the state's
/// entry and `ExecutionFailed` when a JSONata expression fails (recorded on AWS:
/// localstack `test_assign_reference_variables.snapshot.json`, `test_undefined_reference`).
#[test]
fn a_failed_jsonata_evaluation_is_recorded_as_an_evaluation_failed_event() {
    let dir = tempfile::tempdir().unwrap();
    let (rc, v) = run_definition(dir.path(), "undefined", UNDEFINED_OUTPUT, &["--history"]);
    assert_eq!(rc, 1);
    assert_eq!(
        event_types(&v),
        ["ExecutionStarted", "PassStateEntered", "EvaluationFailed", "ExecutionFailed"]
    );
    let h = history(&v);
    assert_eq!(
        h[2]["evaluationFailedEventDetails"],
        json!({"error": "States.QueryEvaluationError", "cause": UNDEFINED_CAUSE, "location": "Output/x", "state": "Shape"})
    );
    assert_eq!(h[3]["previousEventId"], 3);
}

/// The cause quotes JSONata's error as jsonata-js words it (`T1006: Attempted to invoke a
/// non-function` on AWS): for T2009 that is `The values {{value}} and {{value2}} either side of
/// operator {{token}} must be of the same data type` (jsonata-js `errorCodes`), each value as JSON.
#[test]
#[ignore = "bug: T2009 keeps jsonata-core's wording (\"The expressions on either side of operator\") instead of jsonata-js's"]
fn a_comparison_of_mixed_types_fails_with_jsonata_js_wording() {
    let dir = tempfile::tempdir().unwrap();
    let definition = r#"{"QueryLanguage": "JSONata", "StartAt": "Compare", "States": {
        "Compare": {"Type": "Pass", "Output": {"big": "{% $states.input.n > 10 %}"}, "End": true}}}"#;
    let (rc, v) = run_definition(dir.path(), "compare", definition, &["--input", r#"{"n": "x"}"#]);
    assert_eq!(rc, 1);
    assert_eq!(v["error"], "States.QueryEvaluationError");
    let cause = v["cause"].as_str().unwrap();
    assert!(
        cause.ends_with(
            "threw an error during evaluation. \
             T2009: The values \"x\" and 10 either side of operator \">\" must be of the same data type"
        ),
        "{cause}"
    );
}

/// `limits.history_events` bounds an execution's history (AWS's 25,000-event quota): a loop
/// that would go past it fails with States.Runtime naming the key that raises it.
#[test]
fn an_execution_stops_at_the_history_event_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stepgate.toml"), "[limits]\nhistory_events = 40\n").unwrap();
    let config = dir.path().join("stepgate.toml");
    let counter = r#"{"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Result": {"n": 0}, "Next": "Check"},
        "Check": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThanEquals": 100, "Next": "Done"}], "Default": "Inc"},
        "Inc": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Check"},
        "Done": {"Type": "Succeed"}}}"#;
    let (rc, v) = run_definition(dir.path(), "counter", counter, &["--config", config.to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "States.Runtime");
    assert!(
        v["cause"].as_str().unwrap().contains("limit of 40 history events (limits.history_events)"),
        "{v}"
    );
}

/// What the systemd unit runs before starting the daemon: the config and every workflow of
/// its folder, with the bad key or workflow named.
#[test]
fn validate_config_checks_the_config_and_its_workflows() {
    let out = stepgate(&["validate", "--config", "config/stepgate.toml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("workflows/order.asl.json: OK"));

    let dir = tempfile::tempdir().unwrap();
    let bad_key = write(dir.path(), "bad.toml", "[server]\nlisen = \"127.0.0.1:1\"\n");
    let out = stepgate(&["validate", "--config", bad_key.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("lisen"), "{}", stderr(&out));

    let wf = dir.path().join("wf");
    std::fs::create_dir(&wf).unwrap();
    write(
        &wf,
        "broken.asl.json",
        r#"{"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "End": true}}}"#,
    );
    let cfg = write(dir.path(), "ok.toml", &format!("[workflows]\ndir = \"{}\"\n", wf.display()));
    let out = stepgate(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("broken.asl.json"), "{}", stderr(&out));
}

/// `validate --config` runs the compile step `serve` runs: a workflow is checked as its type,
/// every key that names something is checked against it, every trigger is compiled, and every
/// problem is listed at once, each at its key.
#[test]
fn validate_config_checks_types_triggers_and_every_reference_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir(&wf).unwrap();
    write(
        &wf,
        "sync.asl.json",
        r#"{"StartAt": "Run", "States": {"Run": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2", "End": true}}}"#,
    );
    write(&wf, "ok.asl.json", r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#);
    let config = format!(
        r#"[workflows]
dir = "{}"
[workflow.sync]
type = "EXPRESS"
[workflow.ghost]
type = "express"
[workflow.ok]
history = false
[brokers.local]
port = 1883
[[triggers.http]]
path = "/orders/{{id}}"
workflow = "nope"
[[triggers.http]]
path = "/x/{{a+}}/y"
workflow = "ok"
mode = "sync"
errors = {{ Boom = 302 }}
[[triggers.mqtt]]
broker = "remote"
sql = "SELECT * FRM 'a/b'"
workflow = "ok"
[[triggers.mqtt]]
broker = "local"
sql = "SELECT aws_lambda('arn', *) FROM 'a/#'"
workflow = "ok"
qos = 2
[[triggers.schedule]]
expression = "cron(0 8 ? * MON-FRI)"
workflow = "ok"
[[triggers.schedule]]
expression = "rate(5 minutes)"
timezone = "Europe/Dubln"
workflow = "sync"
"#,
        wf.display()
    );
    let cfg = write(dir.path(), "stepgate.toml", &config);
    let out = stepgate(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    for expected in [
        // An EXPRESS workflow is checked as an Express machine.
        "sync.asl.json: error[SCHEMA_VALIDATION_FAILED] at /States/Run/Resource: Express state machine does not support '.sync' service integration",
        "error[CONFIG] at workflow.ghost: no workflow file ghost.asl.json",
        "error[CONFIG] at workflow.ok.history: a Standard workflow's history is its journal and is always kept",
        "error[CONFIG] at triggers.http[0].workflow: no workflow is named 'nope' (the workflows folder has: ok)",
        "error[CONFIG] at triggers.http[1].path: the greedy parameter '{a+}' must be the last segment of '/x/{a+}/y'",
        "error[CONFIG] at triggers.http[1].errors.Boom: 302 is not an error status (400 to 599)",
        "error[CONFIG] at triggers.mqtt[0].broker: no [brokers.remote] (configured: local)",
        "error[CONFIG] at triggers.mqtt[0].sql: line 1, column 10",
        "error[CONFIG] at triggers.mqtt[1].sql: line 1, column 8: aws_lambda calls an AWS service; stepgate does not offer it",
        "error[CONFIG] at triggers.mqtt[1].qos: 2 is not 0 or 1",
        "error[CONFIG] at triggers.schedule[0].expression: cron(...) needs 6 fields",
        "error[CONFIG] at triggers.schedule[1].timezone: unknown time zone `Europe/Dubln`",
        "error[CONFIG] at triggers.schedule[1].workflow: the workflow 'sync' does not load",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(stdout(&out).contains("ok.asl.json: OK"), "{}", stdout(&out));
}

#[test]
fn validate_config_names_each_task_resource_no_connector_serves() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir(&wf).unwrap();
    let lambda = |name: &str| format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
    let def = json!({
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "Ghost", "States": {"Ghost": {"Type": "Task", "Resource": lambda("ghost"), "End": true}}}],
                "Next": "Each"
            },
            "Each": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Invoke", "States": {"Invoke": {
                    "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "also-ghost", "Payload.$": "$"}, "End": true}}},
                "Next": "Echo"
            },
            "Echo": {"Type": "Task", "Resource": lambda("echo"), "Next": "Dynamic"},
            "Dynamic": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName.$": "$.f"}, "Next": "Nowhere"},
            "Nowhere": {"Type": "Task", "Resource": "arn:aws:states:::nowhere:doIt", "End": true}
        }
    });
    write(&wf, "tasks.asl.json", &def.to_string());
    let config = format!(
        "[workflows]\ndir = \"{}\"\n[functions.echo]\ncommand = [\"cat\"]\n[functions.both]\ncommand = [\"cat\"]\nurl = \"http://127.0.0.1:9/x\"\n[functions.neither]\nconcurrency = 2\n[functions.ftp]\nurl = \"ftp://host/x\"\ntimeout_seconds = 0\n",
        wf.display()
    );
    let cfg = write(dir.path(), "stepgate.toml", &config);
    let out = stepgate(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    for expected in [
        "error[STATES.UNSERVED_RESOURCE] at /States/Fan/Branches/0/States/Ghost/Resource: the function ghost is not configured: add [functions.ghost] with its command or url (Lambda function ARNs and arn:aws:states:::lambda:invoke[.waitForTaskToken] with the local functions of [functions] (both, echo, ftp, neither))",
        "error[STATES.UNSERVED_RESOURCE] at /States/Each/ItemProcessor/States/Invoke/Resource: the function also-ghost is not configured",
        "error[STATES.UNSERVED_RESOURCE] at /States/Nowhere/Resource: no connector here serves arn:aws:states:::nowhere:doIt; the connectors here serve ",
        "activity ARNs",
        "arn:aws:states:::states:startExecution[.sync|.sync:2|.waitForTaskToken]",
        "error[CONFIG] at functions.both.url: a function is a command or a url, not both",
        "error[CONFIG] at functions.neither: needs a command or a url",
        "error[CONFIG] at functions.ftp.url: 'ftp://host/x' is not an http:// or https:// URL",
        "error[CONFIG] at functions.ftp.timeout_seconds: must be at least 1",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // A configured function, and a FunctionName chosen at run time, are not errors.
    assert!(!err.contains("/States/Echo/"), "{err}");
    assert!(!err.contains("/States/Dynamic/"), "{err}");
}

/// Regression: `$states.context.Execution.Input` was null unless the text `$$` appeared in the
/// definition (the engine dropped the input after a test of the text that knew only JSONPath).
#[test]
fn a_jsonata_workflow_reads_the_execution_input_from_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let def = r#"{"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass",
        "Output": {"whole": "{% $states.context.Execution.Input %}", "a": "{% $states.input.a %}"}, "End": true}}}"#;
    let (rc, v) = run_definition(dir.path(), "context", def, &["--input", r#"{"a": 1}"#]);
    assert_eq!((rc, v), (0, json!({"status": "SUCCEEDED", "output": {"whole": {"a": 1}, "a": 1}})));
}

/// Regression: a Fail state with only `Error` (or only `Cause`) reported the other as "" in the
/// result and the history; AWS leaves out what was not given.
#[test]
fn a_fail_state_reports_only_what_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    for (name, fail, expected, details) in [
        (
            "only-error",
            json!({"Type": "Fail", "Error": "Oops"}),
            json!({"status": "FAILED", "error": "Oops"}),
            json!({"error": "Oops"}),
        ),
        (
            "only-cause",
            json!({"Type": "Fail", "Cause": "why"}),
            json!({"status": "FAILED", "cause": "why"}),
            json!({"cause": "why"}),
        ),
    ] {
        let def = json!({"StartAt": "F", "States": {"F": fail}}).to_string();
        let (rc, mut v) = run_definition(dir.path(), name, &def, &["--history"]);
        assert_eq!(rc, 1);
        let history = v.as_object_mut().unwrap().remove("history").unwrap();
        assert_eq!(v, expected, "{name}");
        let failed = history.as_array().unwrap().last().unwrap();
        assert_eq!(
            (failed["type"].as_str(), &failed["executionFailedEventDetails"]),
            (Some("ExecutionFailed"), &details)
        );
    }
}

/// Mocked responses count a state's calls within each execution, as Step Functions Local
/// does: with `--repeat`, every execution gets the table from its first row, not the rows
/// the executions before it used up.
#[test]
fn run_repeat_gives_every_execution_the_mocked_responses_from_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("caught.asl.json");
    std::fs::write(
        &file,
        r#"{"StartAt": "Call", "States": {
            "Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
                     "Catch": [{"ErrorEquals": ["Boom"], "Next": "Caught"}], "End": true},
            "Caught": {"Type": "Pass", "Result": "caught", "End": true}}}"#,
    )
    .unwrap();
    let mocks = dir.path().join("mocks.json");
    std::fs::write(
        &mocks,
        r#"{"StateMachines": {"caught": {"TestCases": {"FailsFirst": {"Call": "FailsFirst"}}}},
            "MockedResponses": {"FailsFirst": {"0": {"Throw": {"Error": "Boom", "Cause": "first call"}},
                                               "1": {"Return": "answered"}}}}"#,
    )
    .unwrap();
    let args = ["--mock-config", mocks.to_str().unwrap(), "--test-case", "FailsFirst", "--format", "json"];
    let mut all = vec!["run", file.to_str().unwrap(), "--repeat", "3"];
    all.extend(args);
    let out = stepgate(&all);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The output is the last execution's: its first call threw, as every execution's does.
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"status": "SUCCEEDED", "output": "caught"}));
}

/// A plain Task (no Parameters, paths or selectors) that a mock answers is moved on within the
/// step when no history is kept; with `--history` it takes the recorded path. Both give the
/// same result: through Retry and Catch, and past the answers one step takes.
#[test]
fn plain_tasks_answered_at_once_end_as_the_recorded_path_ends() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.asl.json");
    std::fs::write(
        &file,
        r#"{"StartAt": "Each", "States": {
            "Each": {"Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.results", "Next": "Flaky",
                "ItemProcessor": {"StartAt": "Call", "States": {"Call": {"Type": "Task",
                    "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": true}}}},
            "Flaky": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:g",
                "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.caught", "Next": "Done"}],
                "End": true},
            "Done": {"Type": "Pass", "End": true}}}"#,
    )
    .unwrap();
    let mocks = dir.path().join("mocks.json");
    std::fs::write(
        &mocks,
        r#"{"StateMachines": {"plain": {"TestCases": {
                "Recovers": {"Call": "Answer", "Flaky": "ThirdTime"},
                "GivesUp": {"Call": "Answer", "Flaky": "Never"}}}},
            "MockedResponses": {
                "Answer": {"0": {"Return": {"ok": true}}},
                "ThirdTime": {"0-1": {"Throw": {"Error": "Boom", "Cause": "not yet"}}, "2": {"Return": "third"}},
                "Never": {"0": {"Throw": {"Error": "Boom", "Cause": "down"}}}}}"#,
    )
    .unwrap();
    let items: Vec<u32> = (0..300).collect();
    let input = serde_json::to_string(&json!({ "items": items })).unwrap();
    for case in ["Recovers", "GivesUp"] {
        let run = |extra: &[&str]| {
            let mut args = vec!["run", file.to_str().unwrap(), "--input", &input, "--time-scale", "0"];
            args.extend(["--mock-config", mocks.to_str().unwrap(), "--test-case", case, "--format", "json"]);
            args.extend(extra);
            let out = stepgate(&args);
            let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
            v.as_object_mut().unwrap().remove("history");
            (code(&out), v)
        };
        let (fast, recorded) = (run(&[]), run(&["--history"]));
        assert_eq!(fast, recorded, "{case}");
        match case {
            "Recovers" => assert_eq!(fast.1, json!({"status": "SUCCEEDED", "output": "third"})),
            _ => {
                assert_eq!(fast.1["output"]["caught"], json!({"Error": "Boom", "Cause": "down"}), "{case}");
                let answers = fast.1["output"]["results"].as_array().unwrap();
                assert_eq!(answers.len(), 300);
                assert!(answers.iter().all(|a| *a == json!({"ok": true})));
            }
        }
        assert_eq!(fast.0, 0, "{case}");
    }
}

/// Plain Tasks in a row whose mocked answers change the document's shape (values, key order,
/// arrays that shrink and grow, one type for another): each answer is the next Task's input
/// and the last is the output, as on the recorded path; in every execution of a repeated run.
#[test]
fn plain_tasks_answered_at_once_hand_on_each_answer_whatever_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shapes.asl.json");
    let answers = [
        json!({"hello": "a longer text than the input's", "n": 2.5}),
        json!({"n": 3, "hello": "x"}),
        json!([1, {"b": null}, "s"]),
        json!([false]),
        json!("text"),
        json!({"hello": "world", "n": 1, "list": [true, {"c": 1}]}),
        json!({"n": 1, "hello": "world", "list": [true]}),
    ];
    let mut states = serde_json::Map::new();
    for (i, _) in answers.iter().enumerate() {
        let mut state =
            json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f"});
        match i + 1 < answers.len() {
            true => state["Next"] = json!(format!("T{}", i + 1)),
            false => state["End"] = json!(true),
        }
        states.insert(format!("T{i}"), state);
    }
    std::fs::write(&file, json!({"StartAt": "T0", "States": states}).to_string()).unwrap();
    let cases: serde_json::Map<String, Value> =
        (0..answers.len()).map(|i| (format!("T{i}"), json!(format!("A{i}")))).collect();
    let responses: serde_json::Map<String, Value> =
        answers.iter().enumerate().map(|(i, a)| (format!("A{i}"), json!({"0": {"Return": a}}))).collect();
    let mocks = dir.path().join("mocks.json");
    let config =
        json!({"StateMachines": {"shapes": {"TestCases": {"Shapes": cases}}}, "MockedResponses": responses});
    std::fs::write(&mocks, config.to_string()).unwrap();
    let input = json!({"hello": "world", "n": 1}).to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", file.to_str().unwrap(), "--input", &input];
        args.extend(["--mock-config", mocks.to_str().unwrap(), "--test-case", "Shapes", "--format", "json"]);
        args.extend(extra);
        let out = stepgate(&args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["status"].clone(), v["output"].clone(), v["history"].clone())
    };
    let last = answers.last().unwrap().clone();
    for extra in [&[][..], &["--repeat", "3"][..]] {
        let (status, output, _) = run(extra);
        assert_eq!((status, &output), (json!("SUCCEEDED"), &last), "{extra:?}");
        // Key order too: the output is the last answer as written, not the input's order.
        assert_eq!(output.to_string(), last.to_string(), "{extra:?}");
    }
    // The recorded path shows each answer as the next state's input.
    let (_, _, history) = run(&["--history"]);
    let entered: Vec<Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "TaskStateEntered")
        .map(|e| serde_json::from_str(e["stateEnteredEventDetails"]["input"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(entered[1..], answers[..answers.len() - 1]);
}

/// A Map of many Tasks that a mock answers at once: past the answers an execution takes in a
/// row before it lets the runtime's other tasks run, none is lost or taken twice.
#[test]
fn a_map_of_tasks_answered_at_once_takes_every_answer_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.asl.json");
    std::fs::write(
        &file,
        r#"{"StartAt": "Each", "States": {"Each": {"Type": "Map", "ItemsPath": "$.items", "End": true,
            "ItemSelector": {"n.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"StartAt": "Call", "States": {"Call": {"Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
                "ResultPath": "$.answer", "End": true}}}}}}"#,
    )
    .unwrap();
    let mocks = dir.path().join("mocks.json");
    std::fs::write(
        &mocks,
        r#"{"StateMachines": {"many": {"TestCases": {"AtOnce": {"Call": "Answer"}}}},
            "MockedResponses": {"Answer": {"0": {"Return": {"ok": true}}}}}"#,
    )
    .unwrap();
    let items: Vec<u32> = (0..700).collect();
    let input = serde_json::to_string(&json!({ "items": items })).unwrap();
    let out = stepgate(&[
        "run",
        file.to_str().unwrap(),
        "--input",
        &input,
        "--mock-config",
        mocks.to_str().unwrap(),
        "--test-case",
        "AtOnce",
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<Value> = (0..700).map(|n| json!({ "n": n, "answer": {"ok": true} })).collect();
    assert_eq!(v, json!({"status": "SUCCEEDED", "output": want}));
}

//! Conformance against AWS's own recorded results: every case under the folder that
//! `STEPGATE_CONFORMANCE_DIR` names (one folder per category, one JSON file per case) is
//! run through the library's validator and engine, and its status, output, error and cause
//! are compared with what AWS returned. Cases whose `needs` stepgate does not support yet
//! are counted as skipped and named in the table. `tests/conformance/expected-failures.txt`
//! lists the known differences with a reason; the run fails on an unlisted failure and on a
//! listed case that passes, so the list only shrinks.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use stepgate::asl::validate::{self, MachineType};
use stepgate::connectors::activity::Activities;
use stepgate::connectors::function::{Function, Functions};
use stepgate::connectors::states::Nested;
use stepgate::connectors::Registry;
use stepgate::engine::core::Input;
use stepgate::engine::{Engine, Inbox, Message, Start};
use stepgate::error::Failure;
use stepgate::interpreter::Limits;
use stepgate::service::start::Waited;
use stepgate::service::{Service, StartRequest};
use stepgate::store::memory::MemoryStore;
use stepgate::store::{ActivityRecord, ExecutionRecord, ExecutionStatus, Store};
use stepgate::time::Clock;

/// `needs` tags the interpreter and the local function connector cover.
const SUPPORTED: &[&str] = &[
    "contextObject",
    "distributedMap",
    "variables",
    "jsonata",
    "wait",
    "waitTimestamp",
    "retryDelay",
    "lambda",
    "timeouts",
    "express",
    "clockRelativeInput",
    "activity",
    "stepfunctions",
    "sync",
    // Against moto server, which the runner starts (see `Services`).
    "sqs",
    "sns",
    "dynamodb",
    "events",
    // Tokens handed over through SQS or SNS, answered by a consumer as the recorded test's
    // (see `token_consumer`).
    "taskToken",
];

/// `needs` tags served by AWS's services, which the runner calls on moto server.
const AWS_NEEDS: &[&str] = &["sqs", "sns", "dynamodb", "events"];

const EXPECTED_FAILURES: &str = "tests/conformance/expected-failures.txt";

/// Python wrapper that runs a recorded Lambda handler as a local function command.
const LAMBDA_SHIM: &str = r#"
import json, linecache, sys, traceback, types, uuid
# Compiled under Lambda's own path so stack traces read as AWS records them.
src = open(sys.argv[1]).read()
linecache.cache["/var/task/handler.py"] = (len(src), None, src.splitlines(True), "/var/task/handler.py")
mod = types.ModuleType("handler")
exec(compile(src, "/var/task/handler.py", "exec"), mod.__dict__)
event = json.loads(sys.stdin.read() or "null")
try:
    result = mod.handler(event, None)
except Exception as e:
    tb = traceback.format_tb(e.__traceback__)[1:]
    print(json.dumps({"errorMessage": str(e), "errorType": type(e).__name__, "requestId": str(uuid.uuid4()), "stackTrace": tb}))
    sys.exit(1)
if isinstance(result, (bytes, bytearray)):
    sys.stdout.write(result.decode())
else:
    print(json.dumps(result))
"#;

struct Case {
    category: String,
    file: String,
    doc: Value,
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

fn main() {
    let Some(dir) = std::env::var_os("STEPGATE_CONFORMANCE_DIR").map(PathBuf::from) else {
        eprintln!(
            "conformance: set STEPGATE_CONFORMANCE_DIR to the recorded cases (../shared/conformance/asl from the project root)"
        );
        std::process::exit(2);
    };
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut cases = load(&dir);
    // Our own cases, in the same format: AWS's behaviour found outside the recorded corpus,
    // each naming where it was seen.
    cases.extend(load(Path::new(OWN_CASES)));
    let expected = expected_failures();
    let shim_dir = tempfile::tempdir().expect("a temporary folder for Lambda handlers");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");

    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let mut skipped_needs: BTreeMap<String, usize> = BTreeMap::new();
    let mut services: Option<Services> = None;
    for case in &cases {
        let id = format!("{}/{}", case.category, case.file);
        if filter.as_deref().is_some_and(|f| !id.contains(f)) {
            continue;
        }
        let t = tally.entry(case.category.clone()).or_default();
        let needs: Vec<&str> = case.doc["needs"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let unsupported: Vec<&str> = needs.iter().copied().filter(|n| !SUPPORTED.contains(n)).collect();
        if !unsupported.is_empty() {
            t.skipped += 1;
            for n in unsupported {
                *skipped_needs.entry(n.to_string()).or_default() += 1;
            }
            continue;
        }
        let calls_aws = needs.iter().any(|n| AWS_NEEDS.contains(n));
        if calls_aws && services.is_none() {
            services = Some(Services::start());
        }
        let verbose = std::env::var_os("VERBOSE").is_some();
        if verbose {
            eprintln!("running {id}");
        }
        let began = std::time::Instant::now();
        // A case that never ends fails with a message instead of holding the run (and CI) for
        // good.
        let result = rt.block_on(async {
            let run = run_case(case, shim_dir.path(), services.as_ref().filter(|_| calls_aws));
            tokio::time::timeout(CASE_TIME_LIMIT, run)
                .await
                .unwrap_or_else(|_| Err(format!("did not end within {} s", CASE_TIME_LIMIT.as_secs())))
        });
        if verbose {
            eprintln!("  {:.2} s", began.elapsed().as_secs_f64());
        }
        match (result, expected.contains_key(&id)) {
            (Ok(()), false) => t.passed += 1,
            (Ok(()), true) => {
                t.passed += 1;
                fixed.push(id);
            }
            (Err(why), true) => {
                t.failed += 1;
                if verbose {
                    println!("expected failure {id}: {why}");
                }
            }
            (Err(why), false) => {
                t.failed += 1;
                unexpected.push((id, why));
            }
        }
    }

    println!("{:<24} {:>7} {:>7} {:>8}", "category", "passed", "failed", "skipped");
    let (mut p, mut f, mut s) = (0, 0, 0);
    for (cat, t) in &tally {
        println!("{cat:<24} {:>7} {:>7} {:>8}", t.passed, t.failed, t.skipped);
        p += t.passed;
        f += t.failed;
        s += t.skipped;
    }
    if !skipped_needs.is_empty() {
        let list: Vec<String> = skipped_needs.iter().map(|(k, v)| format!("{k} ({v})")).collect();
        println!("skipped, needing what stepgate does not support yet: {}", list.join(", "));
    }
    for (id, why) in &unexpected {
        println!("UNEXPECTED FAILURE {id}\n    {}", why.replace('\n', "\n    "));
    }
    for id in &fixed {
        println!("NOW PASSES (remove it from {EXPECTED_FAILURES}): {id}");
    }
    println!("{p} passed, {f} failed, {s} skipped");
    drop(services);
    if !unexpected.is_empty() || !fixed.is_empty() {
        std::process::exit(1);
    }
}

/// moto server (an AWS API emulator: `pip install 'moto[server]'`) for the cases that call
/// SQS, SNS, DynamoDB or EventBridge, under the recorded tests' account, and the connectors
/// that call it.
struct Services {
    child: std::process::Child,
    endpoint: String,
    sdk: Arc<stepgate::connectors::aws::Sdk>,
}

impl Services {
    fn start() -> Services {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ACCOUNT_ID", "111111111111")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("moto_server does not start ({e}); the conformance cases of AWS services need it: pip install 'moto[server]'")
            });
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < until, "moto_server did not listen on {port}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            std::env::set_var(k, v);
        }
        let settings =
            stepgate::connectors::aws::AwsConfig { endpoint_url: Some(endpoint.clone()), region: None };
        let sdk = stepgate::connectors::aws::Sdk::new(&settings, "us-east-1");
        Services { child, endpoint, sdk }
    }

    /// The connectors of the AWS services, calling moto.
    fn with(&self, registry: Registry) -> Registry {
        stepgate::connectors::with_aws(registry, self.sdk.clone(), self.sdk.clone())
    }

    /// Empties moto, then creates what the recorded test had created before it ran the case:
    /// the queues, topics and tables its input names (a table keyed by `id`), except the one
    /// the case shows missing.
    fn prepare(&self, case: &Value) -> Result<(), String> {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                SERVICES_SETUP,
                &self.endpoint,
                &case["input"].to_string(),
                case["name"].as_str().unwrap_or(""),
            ])
            .envs([
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
            ])
            .output()
            .map_err(|e| format!("python3 with boto3 runs: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the services could not be prepared: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVICES_SETUP: &str = r#"
import json, re, sys, urllib.request, boto3
endpoint, doc, case = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
# Each case starts from empty services, as each recorded test did.
urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"))
kw = dict(endpoint_url=endpoint, region_name="us-east-1")
sqs, sns, ddb = boto3.client("sqs", **kw), boto3.client("sns", **kw), boto3.client("dynamodb", **kw)
def strings(v):
    if isinstance(v, str): yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            if k == "TableName" and isinstance(x, str): yield "table:" + x
            yield from strings(x)
    elif isinstance(v, list):
        for x in v: yield from strings(x)
for s in strings(doc):
    m = re.match(r"https://sqs\.[^/]+/\d+/([^/]+)$", s)
    if m:
        name = m.group(1)
        attrs = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if name.endswith(".fifo") else {}
        sqs.create_queue(QueueName=name, Attributes=attrs)
    m = re.match(r"arn:aws:sns:[^:]+:\d+:([^:]+)$", s)
    if m and "error_topic_arn" not in case:
        name = m.group(1)
        attrs = {"FifoTopic": "true"} if name.endswith(".fifo") else {}
        sns.create_topic(Name=name, Attributes=attrs)
    if m and "wait_for_task_token" in case:
        consumer = sqs.create_queue(QueueName="sns-consumer")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=consumer, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=s, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    if s.startswith("table:") and "no_such_table" not in case:
        name = s[6:]
        if name not in ddb.list_tables()["TableNames"]:
            ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
"#;

/// The project's own cases (`tests/conformance/cases/CATEGORY/*.json`).
const OWN_CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/cases");

fn load(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut cats: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .collect();
    cats.sort_by_key(|e| e.file_name());
    for cat in cats {
        let mut files: Vec<_> = std::fs::read_dir(cat.path()).unwrap().filter_map(Result::ok).collect();
        files.sort_by_key(|e| e.file_name());
        for f in files {
            let path = f.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let doc: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cases.push(Case {
                category: cat.file_name().to_string_lossy().into_owned(),
                file: f.file_name().to_string_lossy().into_owned(),
                doc,
            });
        }
    }
    cases
}

fn expected_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(EXPECTED_FAILURES).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((id, why)) => (id.to_string(), why.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

async fn run_case(case: &Case, shim_dir: &Path, services: Option<&Services>) -> Result<(), String> {
    let d = &case.doc;
    let expected = &d["expected"];
    let want_status = expected["status"].as_str().unwrap_or_default();
    let masks = Masks::new(d);
    let kind =
        if d["state_machine_type"] == "EXPRESS" { MachineType::Express } else { MachineType::Standard };
    let parsed = match (&d["definition"], d["definition_text"].as_str()) {
        (Value::Null, Some(text)) => validate::parse_text(text).map_err(|e| e.diagnostic()),
        (v, _) => Ok(v.clone()),
    };
    let (definition, diags) = match parsed {
        Ok(v) => {
            let diags = validate::validate_for(&v, kind);
            (v, diags)
        }
        Err(diag) => (Value::Null, vec![diag]),
    };
    match d["kind"].as_str() {
        Some("validate_definition") => {
            let errors: Vec<_> = diags.iter().filter(|d| d.severity == validate::Severity::Error).collect();
            let got = if errors.is_empty() { "VALIDATE_OK" } else { "VALIDATE_FAIL" };
            if got != want_status {
                return Err(format!("expected {want_status}, got {got}: {diags:?}"));
            }
            let want: Vec<(String, String, String)> = expected["diagnostics"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            let s = |k: &str| x[k].as_str().unwrap_or_default().to_string();
                            (s("code"), s("location"), s("message"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let have: Vec<(String, String, String)> =
                diags.iter().map(|d| (d.code.clone(), d.location.clone(), d.message.clone())).collect();
            if want != have {
                return Err(format!("diagnostics differ:\n  want {want:?}\n  have {have:?}"));
            }
            return Ok(());
        }
        Some("api_error") if want_status != "START_FAILED" => {
            if !diags.iter().any(|d| d.severity == validate::Severity::Error) {
                return Err(format!("expected {want_status}, but the definition was accepted"));
            }
            return check_api_error(
                want_status,
                "InvalidDefinition",
                &validate::cause(&diags),
                expected,
                &masks,
            );
        }
        _ if diags.iter().any(|d| d.severity == validate::Severity::Error) => {
            return Err(format!("definition rejected: {}", validate::cause(&diags)));
        }
        _ => {}
    }

    let machine = stepgate::asl::compile(&definition).map_err(|d| format!("definition rejected: {d:?}"))?;
    let input = match (&d["input"], d["input_text"].as_str()) {
        (Value::Null, Some(text)) => match stepgate::engine::input::parse(text) {
            Ok(v) => v,
            Err(message) => {
                return check_api_error(want_status, "InvalidExecutionInput", &message, expected, &masks)
            }
        },
        (v, _) => v.clone(),
    };
    let name: String = d["name"]
        .as_str()
        .unwrap_or("case")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(60)
        .collect();
    if d["needs"].as_array().is_some_and(|n| n.iter().any(|x| x == "stepfunctions")) {
        return run_nested(d, &definition, input, shim_dir, &masks).await;
    }
    let execution_name = uuid::Uuid::new_v4().to_string();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let activities = Arc::new(Activities::new(store.clone()));
    let mut registry = Registry::new(lambdas(d, shim_dir)).with(activities.clone());
    if let Some(services) = services {
        services.prepare(d)?;
        registry = services.with(registry);
    }
    let engine =
        Engine::new(registry, Arc::new(Clock::new(0.0)), Limits::default(), "us-east-1", "111111111111");
    let (inbox, consumer) = match services {
        Some(services) => token_consumer(case, services, &input).unzip(),
        None => {
            (activity_worker(case, &engine, &store, &activities, &name, &execution_name, &input).await, None)
        }
    };
    let start = Start {
        state_machine_name: name,
        execution_name,
        input,
        record_history: false,
        express: d["state_machine_type"] == "EXPRESS",
        inbox,
        ..Start::new(String::new(), String::new(), Value::Null)
    };
    let o = engine.run(&machine, start).await;
    // The consumer ends with its case: left polling, it would take the next case's messages
    // from the queue of the same name (moto is reset, the names are not), hiding each for the
    // queue's 30 s visibility timeout.
    if let Some(consumer) = consumer {
        consumer.stop().await;
    }
    compare(d, &masks, o.status.as_str(), o.output, o.error, o.cause)
}

/// The recorded end against the one stepgate gave.
fn compare(
    d: &Value,
    masks: &Masks,
    status: &str,
    output: Option<Value>,
    error: Option<String>,
    cause: Option<String>,
) -> Result<(), String> {
    let expected = &d["expected"];
    let want_status = expected["status"].as_str().unwrap_or_default();
    let mut problems = Vec::new();
    if status != want_status {
        problems.push(format!("status: want {want_status}, got {status}"));
    }
    if want_status == "SUCCEEDED" {
        let got = output.unwrap_or(Value::Null);
        if !masks.same("output", &expected["output"], &got) {
            problems.push(format!("output:\n  want {}\n  got  {}", expected["output"], got));
        }
    } else {
        for (field, got) in [("error", &error), ("cause", &cause)] {
            let want = &expected[field];
            let got_v = got.clone().map(Value::String).unwrap_or(Value::Null);
            let same = if d["compare"][field] == "json" {
                let parse =
                    |v: &Value| v.as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
                masks.same(field, &parse(want), &parse(&got_v))
            } else {
                masks.same(field, &nullable(want), &nullable(&got_v))
            };
            if !same {
                problems.push(format!("{field}:\n  want {want}\n  got  {got_v}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// A case whose Task starts another execution: the daemon's service runs both, with the
/// child state machine the recorded test created (LocalStack's templates BASE_PASS_RESULT,
/// BASE_RAISE_FAILURE and LAMBDA_WAIT_WITH_TIMEOUT_SECONDS), under the name the case's input
/// gives it. The `..._no_such_arn` case names one that does not exist.
async fn run_nested(
    d: &Value,
    definition: &Value,
    input: Value,
    shim_dir: &Path,
    masks: &Masks,
) -> Result<(), String> {
    let source = d["source"].as_str().unwrap_or_default();
    let account = "111111111111";
    let mut functions = lambdas(d, shim_dir);
    let child = if source.contains("delegate_failure") {
        json!({"StartAt": "FailState", "States": {"FailState": {"Type": "Fail", "Error": "SomeFailure", "Cause": "This state machines raises a 'SomeFailure' failure."}}})
    } else if source.contains("delegate_timeout") {
        functions.insert(
            "wait60",
            Function::Command { argv: vec!["sleep".into(), "60".into()], env: Default::default(), cwd: None },
        );
        let lambda = format!("arn:aws:lambda:us-east-1:{account}:function:wait60");
        json!({"StartAt": "Start", "States": {"Start": {"Type": "Task", "TimeoutSeconds": 1, "Resource": lambda, "Parameters": {"Payload.$": "$.Payload"}, "End": true}}})
    } else {
        json!({"StartAt": "State_1", "States": {"State_1": {"Type": "Pass", "Result": {"Arg1": "argument1"}, "End": true}}})
    };
    let target = input["StateMachineArn"].as_str().unwrap_or_default();
    let child_name = target.rsplit(':').next().unwrap_or_default();
    let child_name = child_name.split("NoSuchArn").next().unwrap_or(child_name);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let nested = Nested::new();
    let engine = Arc::new(Engine::new(
        Registry::new(functions).with(nested.clone()),
        Arc::new(Clock::new(0.0)),
        Limits::default(),
        "us-east-1",
        account,
    ));
    let activities = Arc::new(Activities::new(store.clone()));
    let service = Service::new(
        engine,
        store,
        Arc::new(MemoryStore::new()),
        chrono::Duration::seconds(60),
        3,
        activities,
    );
    nested.bind(service.children());
    let role = format!("arn:aws:iam::{account}:role/r");
    let mut arns = Vec::new();
    for (name, def) in [(child_name, child), ("parent", definition.clone())] {
        let create = json!({"name": name, "definition": def.to_string(), "roleArn": role});
        let created = stepgate::api::ops::call(&service, "CreateStateMachine", &create)
            .await
            .map_err(|e| format!("{name} not created: {}", e.message))?;
        arns.push(created["stateMachineArn"].as_str().unwrap_or_default().to_string());
    }
    let req = StartRequest { state_machine_arn: arns[1].clone(), name: None, input, parent: None };
    let waited = service
        .starter()
        .start_sync(req, Some(std::time::Duration::from_secs(30)))
        .await
        .map_err(|e| format!("not started: {}", e.message))?;
    let Waited::Ended(e) = waited else { return Err("still running after 30 s".into()) };
    let output = e.output.as_deref().map(|t| serde_json::from_str(t).unwrap_or(Value::Null));
    compare(d, masks, e.status.as_str(), output, e.error.clone(), e.cause.clone())
}

/// For a case that needs an activity, the activity and a worker as the recorded test had
/// them: the worker answers the task with its input (`..._failure`: fails it with
/// "Programmatic Error" and the input as the cause), there is no worker
/// (`..._start_timeout`), or the activity was deleted before the execution started
/// (`..._on_deleted`). The execution's inbox, which the worker answers through.
async fn activity_worker(
    case: &Case,
    engine: &Engine,
    store: &Arc<dyn Store>,
    activities: &Arc<Activities>,
    machine: &str,
    execution: &str,
    input: &Value,
) -> Option<Inbox> {
    let needs = case.doc["needs"].as_array()?;
    if !needs.iter().any(|n| n == "activity") {
        return None;
    }
    let arn = engine.execution_arn(machine, execution, None);
    let record = ExecutionRecord {
        arn,
        name: execution.into(),
        state_machine_arn: engine.state_machine_arn(machine),
        state_machine_name: machine.into(),
        status: ExecutionStatus::Running,
        input: input.to_string(),
        output: None,
        error: None,
        cause: None,
        start: engine.clock().now(),
        stop: None,
        redrive_count: 0,
        parent: None,
    };
    store.create_execution(record, Vec::new()).await.expect("the execution is recorded");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let activity = "arn:aws:states:us-east-1:111111111111:activity:activity-00000001";
    let stem = case.file.trim_end_matches(".json");
    if stem.ends_with("_on_deleted") {
        return Some(rx);
    }
    let created = chrono::Utc::now();
    let record = ActivityRecord { arn: activity.into(), name: "activity-00000001".into(), created };
    store.put_activity(record).await.expect("the activity is created");
    if stem.ends_with("_start_timeout") {
        return Some(rx);
    }
    let fails = stem.ends_with("_failure");
    let activities = activities.clone();
    tokio::spawn(async move {
        let Ok(Some(task)) = activities.next_task(activity, std::time::Duration::from_secs(60)).await else {
            return;
        };
        let result = if fails {
            Err(Failure::new("Programmatic Error", task.input))
        } else {
            Ok(serde_json::from_str(&task.input).unwrap_or(Value::Null))
        };
        let done = Input::TokenDone { token: task.token, result };
        let _ = tx.send(Message { input: done, taken: None });
    });
    Some(rx)
}

/// For a case whose Task hands its token over through SQS (or SNS to an SQS subscription), a
/// consumer of the queue that answers each token as the recorded test's consumer did: with
/// the message's `Message` (`..._call_chain`), with a failure that gives no error or cause
/// (`..._no_error_field`), with `{}` (the SNS case); the timeout cases have none.
fn token_consumer(case: &Case, services: &Services, input: &Value) -> Option<(Inbox, Consumer)> {
    let needs = case.doc["needs"].as_array()?;
    if !needs.iter().any(|n| n == "taskToken") {
        return None;
    }
    let stem = case.file.trim_end_matches(".json").to_string();
    let answer: fn(&Value) -> Result<Value, Failure> = if stem.contains("call_chain") {
        |body| Ok(body["Message"].clone())
    } else if stem.contains("no_error_field") {
        |_| Err(Failure::from_parts(None, None))
    } else if stem.contains("sns_publish_wait_for_task_token") {
        |_| Ok(json!({}))
    } else {
        return None;
    };
    let queue = match input["QueueUrl"].as_str() {
        Some(q) => q.to_string(),
        None => format!("https://sqs.us-east-1.amazonaws.com/111111111111/{SNS_CONSUMER}"),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let sdk = services.sdk.clone();
    let consumer = tokio::spawn(async move {
        let sqs = aws_sdk_sqs::Client::new(sdk.config().await);
        loop {
            let Ok(got) = sqs.receive_message().queue_url(&queue).wait_time_seconds(1).send().await else {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            };
            if got.messages().is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            for m in got.messages() {
                let body: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
                // Through SNS the message is the text the Task published.
                let body = match body.get("TaskToken") {
                    Some(_) => body,
                    None => {
                        body["Message"].as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(body)
                    }
                };
                let Some(token) = body["TaskToken"].as_str() else { continue };
                let done = Input::TokenDone { token: token.to_string(), result: answer(&body) };
                if tx.send(Message { input: done, taken: None }).is_err() {
                    return;
                }
            }
        }
    });
    Some((rx, Consumer(consumer)))
}

/// A case's token consumer, which ends with its case, also when the case is cut short.
struct Consumer(tokio::task::JoinHandle<()>);

impl Consumer {
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long one case may run (the slowest, with Wait states and retries, take a few seconds).
const CASE_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(180);

/// The queue subscribed to a case's SNS topic, where its consumer reads.
const SNS_CONSUMER: &str = "sns-consumer";

/// AWS omits an empty error or cause; treat "" and null alike.
fn nullable(v: &Value) -> Value {
    match v {
        Value::String(s) if s.is_empty() => Value::Null,
        other => other.clone(),
    }
}

fn check_api_error(
    want_status: &str,
    error: &str,
    cause: &str,
    expected: &Value,
    masks: &Masks,
) -> Result<(), String> {
    if !want_status.ends_with("_FAILED") {
        return Err(format!("expected {want_status}, got {error}: {cause}"));
    }
    let want_error = expected["error"].as_str().unwrap_or_default();
    if want_error != error {
        return Err(format!("error: want {want_error}, got {error} ({cause})"));
    }
    if !masks.same("cause", &expected["cause"], &Value::String(cause.to_string())) {
        return Err(format!("cause:\n  want {}\n  got  {cause}", expected["cause"]));
    }
    Ok(())
}

/// Each recorded Lambda becomes a local function: its Python source run through a shim.
fn lambdas(doc: &Value, dir: &Path) -> Functions {
    let mut f = Functions::default();
    let shim = dir.join("shim.py");
    if !shim.exists() {
        std::fs::write(&shim, LAMBDA_SHIM).unwrap();
    }
    for l in doc["lambdas"].as_array().into_iter().flatten() {
        let name = l["function_name"].as_str().unwrap_or_default();
        let source = l["source"].as_str().unwrap_or_default();
        let file = dir.join(format!("{name}.py"));
        std::fs::write(&file, source).unwrap();
        f.insert(
            name,
            Function::Command {
                argv: vec!["python3".into(), shim.display().to_string(), file.display().to_string()],
                env: Default::default(),
                cwd: None,
            },
        );
    }
    f
}

/// The recorder's placeholders: per field, tokens that stand for any text.
struct Masks {
    tokens: BTreeMap<String, BTreeSet<String>>,
}

impl Masks {
    fn new(doc: &Value) -> Self {
        let mut tokens: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for t in doc["placeholder_tokens"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if let Some((field, token)) = t.split_once(": ") {
                let token = token.split("  (").next().unwrap_or(token).trim();
                tokens.entry(field.to_string()).or_default().insert(token.to_string());
            }
        }
        Masks { tokens }
    }

    fn same(&self, field: &str, want: &Value, got: &Value) -> bool {
        let empty = BTreeSet::new();
        let tokens = self.tokens.get(field).unwrap_or(&empty);
        same(tokens, want, got)
    }
}

fn same(tokens: &BTreeSet<String>, want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(w), _) if tokens.contains(w) => true,
        (Value::String(w), Value::String(g)) => masked_eq(tokens, w, g),
        (Value::Number(w), Value::Number(g)) => w.as_f64() == g.as_f64(),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| same(tokens, a, b))
        }
        (Value::Object(w), Value::Object(g)) => {
            w.len() == g.len() && w.iter().all(|(k, v)| g.get(k).is_some_and(|gv| same(tokens, v, gv)))
        }
        _ => want == got,
    }
}

/// `want` may hold tokens that match any run of text in `got`.
fn masked_eq(tokens: &BTreeSet<String>, want: &str, got: &str) -> bool {
    if want == got {
        return true;
    }
    let present: Vec<&String> = tokens.iter().filter(|t| want.contains(t.as_str())).collect();
    if present.is_empty() {
        return false;
    }
    // Split `want` into literal pieces around every token occurrence.
    let mut pieces = vec![want.to_string()];
    for t in present {
        pieces =
            pieces.iter().flat_map(|p| p.split(t.as_str()).map(str::to_string).collect::<Vec<_>>()).collect();
    }
    let mut rest = got;
    let last = pieces.len() - 1;
    for (i, p) in pieces.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p.as_str()) else { return false };
            rest = r;
        } else if i == last {
            return rest.ends_with(p.as_str());
        } else {
            let Some(at) = rest.find(p.as_str()) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    rest.is_empty()
}

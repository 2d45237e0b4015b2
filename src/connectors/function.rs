//! Local functions, a Lambda stand-in: Lambda ARNs (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`)
//! and the `arn:aws:states:::lambda:invoke` integration (with its `.waitForTaskToken` form, and
//! `InvocationType: "Event"` to start a call and not wait) resolve to functions named in the
//! config: a command that reads the event as JSON on stdin and writes the result as JSON on
//! stdout, an HTTP endpoint the event is POSTed to, or a function registered in-process
//! (benchmarks, embedders). Each has its concurrency (calls beyond it queue, and past the
//! queue's length are refused as Lambda throttles), its timeout, and Lambda's error names.

use super::{Answer, AnsweredNow, AtOnce, Call, Connector, EventFamily};
use crate::error::Failure;
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub type NativeFn = Arc<dyn Fn(Value) -> Result<Value, Failure> + Send + Sync>;

#[derive(Clone)]
pub enum Function {
    /// argv: the program and its arguments, run in `cwd` (default: the daemon's).
    Command {
        argv: Vec<String>,
        env: HashMap<String, String>,
        cwd: Option<String>,
    },
    /// An HTTP endpoint that takes the event as a POSTed JSON body and answers the result.
    Url(String),
    Native(NativeFn),
}

/// How many calls of a function run at once, and how many may wait for their turn.
struct Gate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

impl Gate {
    /// A turn to run; `Lambda.TooManyRequestsException` when the queue is full.
    async fn enter(&self) -> Result<OwnedSemaphorePermit, Failure> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Failure::new(
                "Lambda.TooManyRequestsException",
                format!(
                    "Rate Exceeded. (Service: AWSLambda; Status Code: 429; Error Code: TooManyRequestsException; Request ID: {}; Proxy: null)",
                    uuid::Uuid::new_v4()
                ),
            ));
        }
        // Counted as waiting until it runs or its call is dropped.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&self.waiting);
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::new("Lambda.ServiceException", "the function is closed"))
    }
}

#[derive(Clone, Default)]
pub struct Functions {
    table: HashMap<String, Function>,
    /// Calls of a function at once, by name: more wait their turn (in order).
    gates: HashMap<String, Arc<Gate>>,
    /// How long one call of a function may run, by name.
    timeouts: HashMap<String, Duration>,
    /// The client of the functions that are HTTP endpoints, made at their first call.
    client: Arc<OnceLock<reqwest::Client>>,
}

/// `functions.NAME.queue` unless set: calls that may wait for a turn before more are refused.
pub const DEFAULT_QUEUE: usize = 1000;

impl Functions {
    pub fn insert(&mut self, name: impl Into<String>, f: Function) {
        self.table.insert(name.into(), f);
    }

    /// At most `concurrency` calls of `name` at once (at least one); `DEFAULT_QUEUE` more
    /// wait their turn.
    pub fn limit(&mut self, name: &str, concurrency: usize) {
        self.limit_queue(name, concurrency, DEFAULT_QUEUE);
    }

    /// At most `concurrency` calls of `name` at once, and `queue` more waiting.
    pub fn limit_queue(&mut self, name: &str, concurrency: usize, queue: usize) {
        let permits = Arc::new(Semaphore::new(concurrency.clamp(1, Semaphore::MAX_PERMITS)));
        self.gates.insert(name.to_string(), Arc::new(Gate { permits, waiting: AtomicUsize::new(0), queue }));
    }

    /// A call of `name` that runs longer than `t` fails as Lambda's timeout does.
    pub fn timeout(&mut self, name: &str, t: Duration) {
        self.timeouts.insert(name.to_string(), t);
    }

    pub fn get(&self, name: &str) -> Option<&Function> {
        self.table.get(name)
    }

    fn client(&self) -> reqwest::Client {
        self.client
            .get_or_init(|| {
                super::http::install_tls_provider();
                reqwest::Client::builder().build().unwrap_or_else(|_| reqwest::Client::new())
            })
            .clone()
    }
}

const INVOKE: &str = "arn:aws:states:::lambda:invoke";
const INVOKE_WAIT: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";

/// The parts of `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`: the name
/// when `s` is such an ARN. One pass over the text (this runs for every Task call).
fn lambda_arn_name(s: &str) -> Option<&str> {
    let mut parts = s.splitn(8, ':');
    let ok = parts.next() == Some("arn")
        && parts.next().is_some()
        && parts.next() == Some("lambda")
        && parts.next().is_some()
        && parts.next().is_some()
        && parts.next() == Some("function");
    if !ok {
        return None;
    }
    parts.next().filter(|n| !n.is_empty())
}

/// The function name inside a Lambda ARN (`...:function:NAME[:QUALIFIER]`) or a plain name.
fn function_name(arn_or_name: &str) -> &str {
    lambda_arn_name(arn_or_name).unwrap_or(arn_or_name)
}

fn is_lambda_arn(resource: &str) -> bool {
    lambda_arn_name(resource).is_some()
}

/// The local functions of `[functions]`.
pub fn build(config: &crate::config::Config) -> Functions {
    let mut f = Functions::default();
    for (name, c) in &config.functions {
        let function = match &c.url {
            Some(url) => Function::Url(url.clone()),
            None => Function::Command { argv: c.command.clone(), env: c.env.clone(), cwd: c.cwd.clone() },
        };
        f.insert(name.clone(), function);
        f.limit_queue(name, c.concurrency, c.queue);
        if let Some(t) = c.timeout_seconds {
            f.timeout(name, Duration::from_secs(t));
        }
    }
    f
}

impl Connector for Functions {
    fn describe(&self) -> String {
        let mut names: Vec<&str> = self.table.keys().map(String::as_str).collect();
        names.sort_unstable();
        let names = if names.is_empty() { "none configured".to_string() } else { names.join(", ") };
        format!("Lambda function ARNs and {INVOKE}[.waitForTaskToken] with the local functions of [functions] ({names})")
    }

    fn check(&self, resource: &str, params: Option<&Value>) -> Result<(), String> {
        let name = match lambda_arn_name(resource) {
            Some(n) => n,
            // A FunctionName chosen at run time (a path, an expression) is checked then.
            None => match params.and_then(|p| p.get("FunctionName")).and_then(Value::as_str) {
                Some(n) if !n.starts_with("{%") => function_name(n),
                _ => return Ok(()),
            },
        };
        if self.table.contains_key(name) {
            Ok(())
        } else {
            Err(format!(
                "the function {name} is not configured: add [functions.{name}] with its command or url ({})",
                self.describe()
            ))
        }
    }

    fn handles(&self, resource: &str) -> bool {
        is_lambda_arn(resource) || resource == INVOKE || resource == INVOKE_WAIT
    }

    /// An in-process function called by its Lambda ARN, with no limit on its calls or its
    /// time, answers within the step that calls it: no future, no call in flight.
    fn answer_now(&self, call: &AtOnce<'_>) -> Option<AnsweredNow<'_>> {
        let name = lambda_arn_name(call.resource)?;
        match self.table.get(name)? {
            Function::Native(f) if !self.gates.contains_key(name) && !self.timeouts.contains_key(name) => {
                Some(AnsweredNow::Made(f(call.params.clone())))
            }
            _ => None,
        }
    }

    fn family(&self, resource: &str) -> EventFamily {
        if is_lambda_arn(resource) {
            EventFamily::LambdaFunction
        } else {
            EventFamily::Task
        }
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>> {
        // With `.waitForTaskToken` the function gets the token in its payload (the workflow
        // puts `$$.Task.Token` there) and its answer only hands the work over: the Task
        // waits for SendTaskSuccess / SendTaskFailure.
        let callback = &*call.resource == INVOKE_WAIT;
        let integration = callback || &*call.resource == INVOKE;
        // `InvocationType: "Event"`: Lambda queues the call and answers 202 at once.
        let event = integration && call.params.get("InvocationType").and_then(Value::as_str) == Some("Event");
        let (name_field, payload) = if integration {
            let name =
                call.params.get("FunctionName").and_then(Value::as_str).unwrap_or_default().to_string();
            // Lambda receives Payload as bytes: a string is sent as it is (so the text
            // "0.0" arrives as the number 0.0), and no payload arrives as `{}`.
            let payload = match call.params.get("Payload") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(Value::String(s)) => {
                    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                }
                Some(v) => v.clone(),
            };
            (name, payload)
        } else {
            (call.resource.to_string(), call.params)
        };
        let name = function_name(&name_field).to_string();
        let f = self.table.get(&name).cloned();
        let gate = self.gates.get(&name).cloned();
        let timeout = self.timeouts.get(&name).copied();
        let client = matches!(f, Some(Function::Url(_))).then(|| self.client());
        Box::pin(async move {
            let Some(f) = f else {
                let arn = if name_field.starts_with("arn:") {
                    name_field.clone()
                } else {
                    format!("arn:aws:lambda:{}:{}:function:{name}", call.region, call.account)
                };
                let cause = format!(
                    "Function not found: {arn}:$LATEST (Service: AWSLambda; Status Code: 404; Error Code: ResourceNotFoundException; Request ID: {}; Proxy: null)",
                    uuid::Uuid::new_v4()
                );
                return Err(Failure::new("Lambda.ResourceNotFoundException", cause));
            };
            let run = async move {
                // Held until the call is answered; dropped with the call if it is cancelled.
                let _turn = match &gate {
                    Some(g) => Some(g.enter().await?),
                    None => None,
                };
                let work = async {
                    match &f {
                        Function::Native(f) => {
                            let v = f(payload)?;
                            let n = if integration { crate::engine::core::json_len(&v) } else { 0 };
                            Ok((v, n))
                        }
                        Function::Command { argv, env, cwd } => {
                            run_command(argv, env, cwd.as_deref(), &payload, integration).await
                        }
                        Function::Url(url) => {
                            call_url(
                                client.as_ref().expect("made for a URL function"),
                                url,
                                &payload,
                                integration,
                            )
                            .await
                        }
                    }
                };
                match timeout {
                    None => work.await,
                    Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| Err(timed_out(t))),
                }
            };
            if event {
                let function = name.clone();
                tokio::spawn(async move {
                    if let Err(f) = run.await {
                        tracing::warn!(function = %function, error = %f.error, cause = %f.cause, "A function invoked with InvocationType Event failed.");
                    }
                });
                return Ok(Answer::Result(event_shape()));
            }
            let (result, length) = run.await?;
            Ok(match (integration, callback) {
                (true, true) => Answer::Submitted(invoke_shape(result, length)),
                (true, false) => Answer::Result(invoke_shape(result, length)),
                _ => Answer::Result(result),
            })
        })
    }
}

/// Lambda's report of a call that ran past the function's timeout.
fn timed_out(t: Duration) -> Failure {
    let report = json!({
        "errorType": "Sandbox.Timedout",
        "errorMessage": format!("RequestId: {} Error: Task timed out after {:.2} seconds", uuid::Uuid::new_v4(), t.as_secs_f64()),
    });
    Failure::new("Sandbox.Timedout", report.to_string())
}

/// Lambda's answer to an `Event` invocation: accepted, nothing returned.
fn event_shape() -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    let headers = [
        ("Connection", "keep-alive".to_string()),
        ("x-amzn-RequestId", request_id.clone()),
        ("Content-Length", "0".to_string()),
        ("Date", super::http_date()),
        ("Content-Type", "application/json".to_string()),
    ];
    let (mut http, response) = super::http_metadata(&headers, &request_id);
    http["HttpStatusCode"] = json!(202);
    json!({"Payload": "", "SdkHttpMetadata": http, "SdkResponseMetadata": response, "StatusCode": 202})
}

/// Calls a function that is an HTTP endpoint: the event POSTed as JSON, the answer's body the
/// result; a failure is Lambda's error report in the body of an answer outside 2xx (or of
/// one with `X-Amz-Function-Error`, as Lambda's runtime API marks it).
async fn call_url(
    client: &reqwest::Client,
    url: &str,
    event: &Value,
    integration: bool,
) -> Result<(Value, usize), Failure> {
    let service = |why: String| Failure::new("Lambda.ServiceException", why);
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(event).unwrap_or_default())
        .send()
        .await
        .map_err(|e| service(format!("The function's endpoint {url} could not be called: {e}")))?;
    let status = answer.status();
    let marked = answer.headers().contains_key("x-amz-function-error");
    let text = answer
        .text()
        .await
        .map_err(|e| service(format!("The function's endpoint {url} answered unreadably: {e}")))?;
    let text = text.trim();
    if status.is_success() && !marked {
        if text.is_empty() {
            return Ok((Value::Null, 0));
        }
        let v = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()));
        return Ok((v, text.len()));
    }
    if let Some(f) = function_error(text, integration) {
        return Err(f);
    }
    Err(Failure::new("Lambda.Unknown", format!("The function's endpoint {url} answered {status}: {text}")))
}

/// Lambda's error report `{"errorType", "errorMessage", ...}` as the Task's failure: the type
/// is the Error and the whole report the Cause. A Lambda ARN resource passes the report on as
/// the function wrote it; the lambda:invoke integration re-serializes it compactly, as AWS does.
fn function_error(text: &str, integration: bool) -> Option<Failure> {
    let report @ Value::Object(_) = serde_json::from_str::<Value>(text).ok()? else { return None };
    let kind = report.get("errorType").and_then(Value::as_str)?;
    let cause =
        if integration { serde_json::to_string(&report).unwrap_or_default() } else { text.to_string() };
    Some(Failure::new(kind, cause))
}

/// `lambda:invoke` wraps the function's result the way the Lambda API answers, headers
/// included, so workflows that read them keep working.
fn invoke_shape(payload: Value, content_length: usize) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let headers = [
        ("X-Amz-Executed-Version", "$LATEST".to_string()),
        ("x-amzn-Remapped-Content-Length", "0".to_string()),
        ("Connection", "keep-alive".to_string()),
        ("x-amzn-RequestId", request_id.clone()),
        ("Content-Length", content_length.to_string()),
        ("Date", super::http_date()),
        ("X-Amzn-Trace-Id", format!("Root=1-{}-{};Sampled=0", &id[..8], &id[8..])),
        ("Content-Type", "application/json".to_string()),
    ];
    let (http, response) = super::http_metadata(&headers, &request_id);
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": http,
        "SdkResponseMetadata": response,
        "StatusCode": 200,
    })
}

/// Runs a command function; returns its result and the length of its output in bytes.
async fn run_command(
    argv: &[String],
    env: &HashMap<String, String>,
    cwd: Option<&str>,
    event: &Value,
    integration: bool,
) -> Result<(Value, usize), Failure> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Failure::new("Lambda.Unknown", "the function's command is empty"))?;
    let mut command = tokio::process::Command::new(program);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let mut child = command
        .args(args)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::new("Lambda.ServiceException", format!("cannot start {program}: {e}")))?;
    let input = serde_json::to_vec(event).unwrap_or_default();
    if let Some(mut stdin) = child.stdin.take() {
        // A function that exits without reading its input is not an error of ours.
        let _ = stdin.write_all(&input).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Failure::new("Lambda.ServiceException", format!("{program} failed: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        let text = stdout.trim();
        if text.is_empty() {
            return Ok((Value::Null, 0));
        }
        // Lambda hands back whatever bytes the function returned; text that is not JSON
        // stays a string (and still counts against the payload limit).
        let v = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()));
        return Ok((v, text.len()));
    }
    if let Some(f) = function_error(stdout.trim(), integration) {
        return Err(f);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Failure::new(
        "Lambda.Unknown",
        format!("The function exited with {}: {}", out.status, stderr.trim().lines().last().unwrap_or("")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_out_of_arns() {
        assert_eq!(function_name("arn:aws:lambda:us-east-1:1:function:Echo"), "Echo");
        assert_eq!(function_name("arn:aws:lambda:us-east-1:1:function:Echo:prod"), "Echo");
        assert_eq!(function_name("Echo"), "Echo");
        assert!(is_lambda_arn("arn:aws:lambda:us-east-1:1:function:Echo"));
        assert!(!is_lambda_arn("arn:aws:states:::lambda:invoke"));
    }

    /// An in-process function answers within the step unless a limit on its calls or time
    /// must hold (then it goes through `invoke`, which keeps them); either way each Task
    /// calls it once and gets its answer.
    #[tokio::test]
    async fn in_process_functions_answer_at_once_unless_limited() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let add_one = |calls: Arc<AtomicUsize>| -> NativeFn {
            Arc::new(move |v: Value| {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(json!({"n": v["n"].as_i64().unwrap_or(0) + 1}))
            })
        };
        let mut functions = Functions::default();
        functions.insert("free", Function::Native(add_one(calls.clone())));
        functions.insert("limited", Function::Native(add_one(calls.clone())));
        functions.limit_queue("limited", 1, 10);
        functions.insert("timed", Function::Native(add_one(calls.clone())));
        functions.timeout("timed", Duration::from_secs(5));
        let arn = |name: &str| -> Arc<str> {
            format!("arn:aws:lambda:us-east-1:123456789012:function:{name}").into()
        };
        let execution: Arc<str> = "arn:aws:states:us-east-1:123456789012:execution:m:e".into();
        let params = json!({"n": 1});
        let at_once = |resource: &Arc<str>| {
            let call = AtOnce { resource, params: &params, state_name: "T", execution_arn: &execution };
            functions.answer_now(&call).map(AnsweredNow::into_result)
        };
        assert_eq!(at_once(&arn("free")), Some(Ok(json!({"n": 2}))));
        assert_eq!(at_once(&arn("limited")), None);
        assert_eq!(at_once(&arn("timed")), None);
        assert_eq!(at_once(&Arc::from(INVOKE)), None);
        assert_eq!(calls.swap(0, Ordering::SeqCst), 1);

        let mut states = serde_json::Map::new();
        for (i, name) in ["free", "limited", "free", "timed", "free"].iter().enumerate() {
            let mut state = json!({"Type": "Task", "Resource": &*arn(name)});
            match i < 4 {
                true => state["Next"] = json!(format!("T{}", i + 1)),
                false => state["End"] = json!(true),
            }
            states.insert(format!("T{i}"), state);
        }
        let machine = crate::asl::compile::compile(&json!({"StartAt": "T0", "States": states})).unwrap();
        let engine = crate::engine::Engine::new(
            super::super::Registry::new(functions),
            Arc::new(crate::time::Clock::new(0.0)),
            Default::default(),
            "us-east-1",
            "123456789012",
        );
        let o = engine.run(&machine, crate::engine::Start::new("m", "e", json!({"n": 0}))).await;
        assert_eq!((o.status.as_str(), o.output), ("SUCCEEDED", Some(json!({"n": 5}))));
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}

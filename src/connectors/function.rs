//! Local functions: Lambda ARNs (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`) and the
//! `arn:aws:states:::lambda:invoke` integration (with its `.waitForTaskToken` form) resolve
//! to functions named in the config: a command that reads the event as JSON on stdin and
//! writes the result as JSON on stdout, or a function registered in-process (benchmarks,
//! embedders).

use super::{Answer, Call, Connector, EventFamily};
use crate::error::Failure;
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

pub type NativeFn = Arc<dyn Fn(Value) -> Result<Value, Failure> + Send + Sync>;

#[derive(Clone)]
pub enum Function {
    /// argv: the program and its arguments.
    Command {
        argv: Vec<String>,
        env: HashMap<String, String>,
    },
    Native(NativeFn),
}

#[derive(Clone, Default)]
pub struct Functions {
    table: HashMap<String, Function>,
    /// Calls of a function at once, by name: more wait their turn (in order).
    limits: HashMap<String, Arc<Semaphore>>,
}

impl Functions {
    pub fn insert(&mut self, name: impl Into<String>, f: Function) {
        self.table.insert(name.into(), f);
    }

    /// At most `concurrency` calls of `name` at once (at least one).
    pub fn limit(&mut self, name: &str, concurrency: usize) {
        self.limits
            .insert(name.to_string(), Arc::new(Semaphore::new(concurrency.clamp(1, Semaphore::MAX_PERMITS))));
    }

    pub fn get(&self, name: &str) -> Option<&Function> {
        self.table.get(name)
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
        f.insert(name.clone(), Function::Command { argv: c.command.clone(), env: c.env.clone() });
        f.limit(name, c.concurrency);
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
                "the function {name} is not configured: add [functions.{name}] with its command ({})",
                self.describe()
            ))
        }
    }

    fn handles(&self, resource: &str) -> bool {
        is_lambda_arn(resource) || resource == INVOKE || resource == INVOKE_WAIT
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
        let f = self.table.get(function_name(&name_field)).cloned();
        let limit = self.limits.get(function_name(&name_field)).cloned();
        Box::pin(async move {
            // Held until the call is answered; dropped with the call if it is cancelled.
            let _turn = match &limit {
                Some(l) => l.clone().acquire_owned().await.ok(),
                None => None,
            };
            let Some(f) = f else {
                let name = function_name(&name_field);
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
            let (result, length) = match f {
                Function::Native(f) => {
                    let v = f(payload)?;
                    let n =
                        if integration { serde_json::to_string(&v).map(|s| s.len()).unwrap_or(0) } else { 0 };
                    (v, n)
                }
                Function::Command { argv, env } => run_command(&argv, &env, &payload, integration).await?,
            };
            Ok(match (integration, callback) {
                (true, true) => Answer::Submitted(invoke_shape(result, length)),
                (true, false) => Answer::Result(invoke_shape(result, length)),
                _ => Answer::Result(result),
            })
        })
    }
}

/// `lambda:invoke` wraps the function's result the way the Lambda API answers, headers
/// included, so workflows that read them keep working.
fn invoke_shape(payload: Value, content_length: usize) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let trace = format!("Root=1-{}-{};Sampled=0", &id[..8], &id[8..]);
    let len = content_length.to_string();
    let mut m = Map::new();
    m.insert("ExecutedVersion".into(), json!("$LATEST"));
    m.insert("Payload".into(), payload);
    m.insert(
        "SdkHttpMetadata".into(),
        json!({
            "AllHttpHeaders": {
                "X-Amz-Executed-Version": ["$LATEST"], "x-amzn-Remapped-Content-Length": ["0"],
                "Connection": ["keep-alive"], "x-amzn-RequestId": [request_id], "Content-Length": [len],
                "Date": [date], "X-Amzn-Trace-Id": [trace], "Content-Type": ["application/json"]
            },
            "HttpHeaders": {
                "Connection": "keep-alive", "Content-Length": len, "Content-Type": "application/json",
                "Date": date, "X-Amz-Executed-Version": "$LATEST", "x-amzn-Remapped-Content-Length": "0",
                "x-amzn-RequestId": request_id, "X-Amzn-Trace-Id": trace
            },
            "HttpStatusCode": 200
        }),
    );
    m.insert("SdkResponseMetadata".into(), json!({"RequestId": request_id}));
    m.insert("StatusCode".into(), json!(200));
    Value::Object(m)
}

/// Runs a command function; returns its result and the length of its output in bytes.
async fn run_command(
    argv: &[String],
    env: &HashMap<String, String>,
    event: &Value,
    integration: bool,
) -> Result<(Value, usize), Failure> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Failure::new("Lambda.Unknown", "the function's command is empty"))?;
    let mut child = tokio::process::Command::new(program)
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
    // Lambda reports a function error as {"errorType", "errorMessage", ...}: the type is
    // the Error and the whole report the Cause.
    // A Lambda ARN resource passes the report on as the function wrote it; the
    // lambda:invoke integration re-serializes it compactly, as AWS does.
    if let Ok(report @ Value::Object(_)) = serde_json::from_str::<Value>(stdout.trim()) {
        if let Some(kind) = report.get("errorType").and_then(Value::as_str) {
            let cause = if integration {
                serde_json::to_string(&report).unwrap_or_default()
            } else {
                stdout.trim().to_string()
            };
            return Err(Failure::new(kind, cause));
        }
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
}

//! Local functions: Lambda ARNs (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`) and the
//! `arn:aws:states:::lambda:invoke` integration resolve to functions named in the config:
//! a command that reads the event as JSON on stdin and writes the result as JSON on stdout,
//! or a function registered in-process (benchmarks, embedders).

use super::{Call, Connector, EventFamily};
use crate::error::Failure;
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

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
}

impl Functions {
    pub fn insert(&mut self, name: impl Into<String>, f: Function) {
        self.table.insert(name.into(), f);
    }

    pub fn get(&self, name: &str) -> Option<&Function> {
        self.table.get(name)
    }
}

const INVOKE: &str = "arn:aws:states:::lambda:invoke";

/// The function name inside a Lambda ARN (`...:function:NAME[:QUALIFIER]`) or a plain name.
fn function_name(arn_or_name: &str) -> &str {
    match arn_or_name.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => arn_or_name,
    }
}

fn is_lambda_arn(resource: &str) -> bool {
    resource.starts_with("arn:")
        && resource.split(':').nth(2) == Some("lambda")
        && resource.contains(":function:")
}

impl Connector for Functions {
    fn handles(&self, resource: &str) -> bool {
        is_lambda_arn(resource)
            || resource == INVOKE
            || resource == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    }

    fn family(&self, resource: &str) -> EventFamily {
        if is_lambda_arn(resource) {
            EventFamily::LambdaFunction
        } else {
            EventFamily::Task
        }
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Value, Failure>> {
        let integration = &*call.resource == INVOKE;
        let (name_field, payload) = if integration {
            let name =
                call.params.get("FunctionName").and_then(Value::as_str).unwrap_or_default().to_string();
            let payload = call.params.get("Payload").cloned().unwrap_or(Value::Null);
            (name, payload)
        } else {
            (call.resource.to_string(), call.params)
        };
        let name = function_name(&name_field).to_string();
        let f = self.table.get(&name).cloned();
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
            let result = match f {
                Function::Native(f) => f(payload)?,
                Function::Command { argv, env } => run_command(&argv, &env, &payload).await?,
            };
            Ok(if integration { invoke_shape(result) } else { result })
        })
    }
}

/// `lambda:invoke` wraps the function's result the way the Lambda API answers.
fn invoke_shape(payload: Value) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut m = Map::new();
    m.insert("ExecutedVersion".into(), json!("$LATEST"));
    m.insert("Payload".into(), payload);
    m.insert(
        "SdkHttpMetadata".into(),
        json!({
            "AllHttpHeaders": {"X-Amz-Executed-Version": ["$LATEST"], "x-amzn-RequestId": [request_id], "Content-Type": ["application/json"]},
            "HttpHeaders": {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": request_id},
            "HttpStatusCode": 200
        }),
    );
    m.insert("SdkResponseMetadata".into(), json!({"RequestId": request_id}));
    m.insert("StatusCode".into(), json!(200));
    Value::Object(m)
}

async fn run_command(
    argv: &[String],
    env: &HashMap<String, String>,
    event: &Value,
) -> Result<Value, Failure> {
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
            return Ok(Value::Null);
        }
        return serde_json::from_str(text).map_err(|e| {
            Failure::new("Lambda.Unknown", format!("The function's output is not valid JSON ({e}): {text}"))
        });
    }
    // Lambda reports a function error as {"errorType", "errorMessage", ...}: the type is
    // the Error and the whole report the Cause.
    if let Ok(report @ Value::Object(_)) = serde_json::from_str::<Value>(stdout.trim()) {
        if let Some(kind) = report.get("errorType").and_then(Value::as_str) {
            return Err(Failure::new(kind, serde_json::to_string(&report).unwrap_or_default()));
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

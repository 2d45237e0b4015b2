//! Authentication of `stepgate serve`'s API, driven the way users drive AWS: the real binary
//! with `[[server.access_keys]]`, called by the aws CLI and boto3 (`pip install awscli boto3`),
//! which sign every call with SigV4, and by raw HTTP for what no SDK would send. Without keys
//! the daemon must refuse to listen off loopback.

use serde_json::{json, Value};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEYS: &str = r#"
[[server.access_keys]]
access_key_id = "stepgate-ops"
secret_access_key = "ops-secret/with+symbols"
[[server.access_keys]]
access_key_id = "stepgate-ci"
secret_access_key = "ci-secret"
"#;

mod common;

/// The shared daemon, with this suite's signed and unsigned calls.
struct Daemon(common::Daemon);

impl std::ops::Deref for Daemon {
    type Target = common::Daemon;
    fn deref(&self) -> &common::Daemon {
        &self.0
    }
}

/// The config file over `dir` (which holds `workflows/` and gets `state/`), with `server`
/// (the `[server]` table and any `[[server.access_keys]]`).
fn write_config(dir: &Path, server: &str) -> std::path::PathBuf {
    let config = dir.join("stepgate.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nstate_dir = \"{}\"\n[workflows]\ndir = \"{}\"\n{server}",
            dir.join("state").display(),
            dir.join("workflows").display()
        ),
    )
    .unwrap();
    config
}

impl Daemon {
    fn start(dir: &Path, server: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon(common::Daemon::start(dir, server, env))
    }

    /// `aws stepfunctions ...` signed with `key`/`secret`; the parsed output, or stderr.
    fn aws(&self, key: &str, secret: &str, args: &[&str]) -> Result<Value, String> {
        let out = Command::new("aws")
            .args(["--endpoint-url", &self.endpoint(), "--output", "json", "stepfunctions"])
            .args(args)
            .envs(aws_env(key, secret))
            .output()
            .expect("the aws CLI is installed (pip install awscli)");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    /// An API call without a signature.
    fn unsigned(&self, target: &str, body: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let mut headers = vec![("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", target)];
        headers.extend_from_slice(extra);
        let (status, body) = self.raw("POST", "/", &headers, body.as_bytes());
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

fn aws_env<'a>(key: &'a str, secret: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        // Not the daemon's region (us-east-1): the scope's region is not checked.
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_DISABLE_HOST_PREFIX_INJECTION", "true"),
        ("AWS_PAGER", ""),
        // A refused call must fail at once, not after retries.
        ("AWS_MAX_ATTEMPTS", "1"),
    ]
}

fn workflows(dir: &Path) {
    let w = dir.join("workflows");
    std::fs::create_dir_all(&w).unwrap();
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": true}, "End": true}}});
    std::fs::write(w.join("hello.asl.json"), def.to_string()).unwrap();
}

#[test]
fn signed_calls_pass_and_the_others_get_awss_errors() {
    let dir = tempfile::tempdir().unwrap();
    workflows(dir.path());
    // Off loopback, which access keys allow.
    let d = Daemon::start(dir.path(), &format!("[server]\nlisten = \"0.0.0.0:0\"\n{KEYS}"), &[]);

    for (key, secret) in [("stepgate-ops", "ops-secret/with+symbols"), ("stepgate-ci", "ci-secret")] {
        let list = d.aws(key, secret, &["list-state-machines"]).unwrap();
        assert_eq!(list["stateMachines"][0]["name"], "hello", "{key}");
    }

    let wrong = d.aws("stepgate-ops", "not-the-secret", &["list-state-machines"]).unwrap_err();
    assert!(wrong.contains("InvalidSignatureException"), "{wrong}");
    assert!(wrong.contains("The request signature we calculated does not match the signature you provided"));

    let unknown = d.aws("AKIDNOBODY", "ops-secret/with+symbols", &["list-state-machines"]).unwrap_err();
    assert!(unknown.contains("UnrecognizedClientException"), "{unknown}");
    assert!(unknown.contains("The security token included in the request is invalid."), "{unknown}");

    let (status, body) = d.unsigned("AWSStepFunctions.ListStateMachines", "{}", &[]);
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})
    );
    // Refused before the target or the body are looked at.
    let (status, body) = d.unsigned("AWSStepFunctions.NoSuchOperation", "{not json", &[]);
    assert_eq!((status, body["__type"].as_str()), (403, Some("MissingAuthenticationTokenException")));
    let (status, body) = d.unsigned(
        "AWSStepFunctions.ListStateMachines",
        "{}",
        &[(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=stepgate-ops/20240301/us-east-1/states/aws4_request",
        )],
    );
    assert_eq!((status, body["__type"].as_str()), (403, Some("IncompleteSignatureException")), "{body}");

    // Health and metrics stay open to probes and scrapers.
    let (status, body) = d.raw("GET", "/healthz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _) = d.raw("GET", "/metrics", &[], b"");
    assert_eq!(status, 200);

    let script = r#"
import json, sys, boto3
from botocore.exceptions import ClientError
def client(key, secret):
    return boto3.client("stepfunctions", endpoint_url=sys.argv[1], region_name="ap-southeast-2",
                        aws_access_key_id=key, aws_secret_access_key=secret)
sfn = client("stepgate-ops", "ops-secret/with+symbols")
sm = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
arn = sfn.start_execution(stateMachineArn=sm, name="signed", input="{}")["executionArn"]
try:
    client("stepgate-ci", "wrong").describe_execution(executionArn=arn)
    refused = None
except ClientError as e:
    refused = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
print(json.dumps({"arn": arn, "refused": refused}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &d.endpoint()])
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .expect("python3 with boto3 (pip install boto3)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["arn"], "arn:aws:states:us-east-1:123456789012:execution:hello:signed");
    assert_eq!(v["refused"], json!(["InvalidSignatureException", 403]));
}

#[test]
fn access_keys_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    workflows(dir.path());
    let d = Daemon::start(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        &[(
            "STEPGATE_SERVER__ACCESS_KEYS",
            r#"[{access_key_id="from-env", secret_access_key="env-secret"}]"#,
        )],
    );
    let (status, _) = d.unsigned("AWSStepFunctions.ListStateMachines", "{}", &[]);
    assert_eq!(status, 403);
    let list = d.aws("from-env", "env-secret", &["list-state-machines"]).unwrap();
    assert_eq!(list["stateMachines"][0]["name"], "hello");
}

#[test]
fn without_access_keys_only_loopback_is_served() {
    let dir = tempfile::tempdir().unwrap();
    workflows(dir.path());
    let config = write_config(dir.path(), "[server]\nlisten = \"0.0.0.0:0\"\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started on 0.0.0.0 without access keys");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("server.access_keys"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
    // Refused before anything ran: not even the store was opened.
    assert!(!dir.path().join("state").exists());

    // Loopback without keys is the default and starts.
    let d = Daemon::start(dir.path(), "[server]\nlisten = \"127.0.0.1:0\"\n", &[]);
    let (status, _) = d.unsigned("AWSStepFunctions.ListStateMachines", "{}", &[]);
    assert_eq!(status, 200);
}

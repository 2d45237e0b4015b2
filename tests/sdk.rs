//! `stepgate serve` driven by the official Rust AWS SDK for Step Functions (`aws-sdk-sfn`): the
//! real binary on a free loopback port, called through the SDK's typed client exactly as an
//! application would call AWS, so request shapes, timestamps, pagination tokens and error codes
//! are checked against the SDK's own (de)serializers rather than against our reading of the docs.

use aws_sdk_sfn::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_sfn::config::{BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_sfn::error::BoxError;
use aws_sdk_sfn::operation::describe_state_machine::DescribeStateMachineError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType, StateMachineType, SyncExecutionStatus};
use aws_sdk_sfn::Client;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const ACCOUNT_ARN: &str = "arn:aws:states:us-east-1:123456789012";
const ROLE: &str = "arn:aws:iam::123456789012:role/stepgate";

mod common;

/// The shared daemon, with an SDK client for it.
struct Daemon(common::Daemon);

impl Daemon {
    /// Starts the daemon over `dir` (which holds `workflows/` and gets `state/`).
    fn start(dir: &Path, extra_config: &str) -> Daemon {
        Daemon(common::Daemon::start(dir, extra_config, &[]))
    }

    /// An SDK client configured by hand: no aws-config, so nothing is read from the environment
    /// or ~/.aws and the test behaves the same on every machine. The SDK's default HTTPS client
    /// (rustls over aws-lc) is left out: a plain-HTTP hyper client is all loopback needs, and it
    /// saves compiling a C crypto library.
    fn client(&self) -> Client {
        let config = aws_sdk_sfn::Config::builder()
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .endpoint_url(self.0.endpoint())
            .interceptor(NoHostPrefix)
            .build();
        Client::from_conf(config)
    }
}

/// StartSyncExecution and TestState are modelled with the host prefix `sync-`, and the Rust SDK
/// (unlike botocore's AWS_DISABLE_HOST_PREFIX_INJECTION) has no switch to turn that off, so
/// `http://127.0.0.1:PORT` would become the unresolvable `http://sync-127.0.0.1:PORT`. The
/// endpoint is applied before signing, so undoing the prefix here keeps the signature valid.
#[derive(Debug)]
struct NoHostPrefix;

impl Intercept for NoHostPrefix {
    fn name(&self) -> &'static str {
        "NoHostPrefix"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        if let Some(rest) = request.uri().strip_prefix("http://sync-") {
            let uri = format!("http://{rest}");
            request.set_uri(uri)?;
        }
        Ok(())
    }
}

fn greeter() -> Value {
    json!({
        "StartAt": "Greet",
        "States": {
            "Greet": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('Hello, {}!', $.name)"}, "Next": "Nap"},
            "Nap": {"Type": "Wait", "SecondsPath": "$$.Execution.Input.nap", "End": true}
        }
    })
}

async fn wait_for_status(
    sfn: &Client,
    arn: &str,
    want: ExecutionStatus,
    within: Duration,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let until = Instant::now() + within;
    loop {
        let e = sfn.describe_execution().execution_arn(arn).send().await.unwrap();
        if *e.status() == want {
            return e;
        }
        assert!(Instant::now() < until, "{arn} is {:?} after {within:?}, not {want:?}", e.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_rust_sdk_runs_a_workflow_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "");
    let sfn = d.client();

    let created = sfn
        .create_state_machine()
        .name("greeter")
        .role_arn(ROLE)
        .definition(greeter().to_string())
        .send()
        .await
        .unwrap();
    let sm = created.state_machine_arn().to_string();
    assert_eq!(sm, format!("{ACCOUNT_ARN}:stateMachine:greeter"));

    let desc = sfn.describe_state_machine().state_machine_arn(&sm).send().await.unwrap();
    assert_eq!(desc.name(), "greeter");
    assert_eq!(*desc.r#type(), StateMachineType::Standard);
    assert_eq!(serde_json::from_str::<Value>(desc.definition()).unwrap(), greeter());
    let listed = sfn.list_state_machines().send().await.unwrap();
    assert!(listed.state_machines().iter().any(|m| m.name() == "greeter" && m.state_machine_arn() == sm));

    let started = sfn
        .start_execution()
        .state_machine_arn(&sm)
        .name("first")
        .input(r#"{"name":"Ada","nap":0}"#)
        .send()
        .await
        .unwrap();
    let arn = started.execution_arn().to_string();
    assert_eq!(arn, format!("{ACCOUNT_ARN}:execution:greeter:first"));
    let done = wait_for_status(&sfn, &arn, ExecutionStatus::Succeeded, Duration::from_secs(20)).await;
    assert_eq!(
        serde_json::from_str::<Value>(done.output().unwrap()).unwrap(),
        json!({"greeting": "Hello, Ada!"})
    );
    assert!(done.stop_date().unwrap() >= done.start_date());

    // Once an execution has closed, its name is taken whatever the input (AWS's rule); the SDK
    // surfaces that as its typed error.
    for input in [r#"{"name":"Ada","nap":0}"#, r#"{"name":"Bob","nap":0}"#] {
        let clash = sfn
            .start_execution()
            .state_machine_arn(&sm)
            .name("first")
            .input(input)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(matches!(clash, StartExecutionError::ExecutionAlreadyExists(_)), "{clash:?}");
    }

    // Page through the history two events at a time with the server's nextToken.
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(&arn)
            .max_results(2)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        assert!(page.events().len() <= 2);
        events.extend(page.events().iter().map(|e| (e.id(), e.r#type().clone())));
        pages += 1;
        match page.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
        assert!(pages < 10, "the history never ends");
    }
    assert_eq!(events.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        events.into_iter().map(|(_, t)| t).collect::<Vec<_>>(),
        [
            HistoryEventType::ExecutionStarted,
            HistoryEventType::PassStateEntered,
            HistoryEventType::PassStateExited,
            HistoryEventType::WaitStateEntered,
            HistoryEventType::WaitStateExited,
            HistoryEventType::ExecutionSucceeded,
        ]
    );

    let succeeded = sfn
        .list_executions()
        .state_machine_arn(&sm)
        .status_filter(ExecutionStatus::Succeeded)
        .send()
        .await
        .unwrap();
    assert_eq!(succeeded.executions().len(), 1);
    assert_eq!(succeeded.executions()[0].execution_arn(), arn);
    let running = sfn
        .list_executions()
        .state_machine_arn(&sm)
        .status_filter(ExecutionStatus::Running)
        .send()
        .await
        .unwrap();
    assert!(running.executions().is_empty());

    let missing = sfn
        .describe_state_machine()
        .state_machine_arn(format!("{ACCOUNT_ARN}:stateMachine:none"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(missing, DescribeStateMachineError::StateMachineDoesNotExist(_)), "{missing:?}");
    let nowhere = sfn
        .start_execution()
        .state_machine_arn(format!("{ACCOUNT_ARN}:stateMachine:none"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(nowhere, StartExecutionError::StateMachineDoesNotExist(_)), "{nowhere:?}");
}

#[tokio::test]
async fn the_rust_sdk_stops_a_waiting_execution() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "");
    let sfn = d.client();
    let sm = sfn
        .create_state_machine()
        .name("greeter")
        .role_arn(ROLE)
        .definition(greeter().to_string())
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string();
    let start = || {
        sfn.start_execution()
            .state_machine_arn(&sm)
            .name("sleeper")
            .input(r#"{"name":"B","nap":3600}"#)
            .send()
    };
    let arn = start().await.unwrap().execution_arn().to_string();
    wait_for_status(&sfn, &arn, ExecutionStatus::Running, Duration::from_secs(5)).await;
    // While it runs, the same name and input is the same execution, not an error.
    assert_eq!(start().await.unwrap().execution_arn(), arn);
    sfn.stop_execution().execution_arn(&arn).error("Operator").cause("not today").send().await.unwrap();
    let e = wait_for_status(&sfn, &arn, ExecutionStatus::Aborted, Duration::from_secs(5)).await;
    assert_eq!(e.error(), Some("Operator"));
    assert_eq!(e.cause(), Some("not today"));
    assert!(e.stop_date().is_some());
    let last = sfn
        .get_execution_history()
        .execution_arn(&arn)
        .reverse_order(true)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(*last.events()[0].r#type(), HistoryEventType::ExecutionAborted);
    let aborted = sfn
        .list_executions()
        .state_machine_arn(&sm)
        .status_filter(ExecutionStatus::Aborted)
        .send()
        .await
        .unwrap();
    assert_eq!(aborted.executions()[0].execution_arn(), arn);
}

#[tokio::test]
async fn the_rust_sdk_starts_a_sync_express_execution() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "");
    let sfn = d.client();
    let def = json!({"StartAt": "Add", "States": {"Add": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "End": true}}});
    let sm = sfn
        .create_state_machine()
        .name("adder")
        .r#type(StateMachineType::Express)
        .role_arn(ROLE)
        .definition(def.to_string())
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string();
    let r =
        sfn.start_sync_execution().state_machine_arn(&sm).input(r#"{"a": 2, "b": 40}"#).send().await.unwrap();
    assert_eq!(*r.status(), SyncExecutionStatus::Succeeded);
    assert_eq!(serde_json::from_str::<Value>(r.output().unwrap()).unwrap(), json!({"sum": 42}));
    assert!(r.execution_arn().starts_with(&format!("{ACCOUNT_ARN}:express:adder:")));
}

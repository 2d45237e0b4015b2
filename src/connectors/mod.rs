//! Task resources: the engine hands a Task's resource ARN, its parameters and the
//! execution's context to the [`Registry`], whose rows (one per resource family) each claim
//! the resources they serve. Adding a connector is one new file and one row in
//! [`Registry::new`]. Connectors return workflow failures as data (`Err(Failure)` with AWS
//! error names), and a callback Task's connector answers [`Answer::Submitted`]: the Task
//! then waits for its token (SendTaskSuccess / SendTaskFailure), parked if need be.

pub mod activity;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod function;
pub mod http;
pub mod mqtt;
#[cfg(feature = "aws")]
pub mod sns;
#[cfg(feature = "aws")]
pub mod sqs;
pub mod states;

use crate::error::Failure;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
pub use tokio_util::sync::CancellationToken;

/// One Task invocation as a connector sees it.
#[derive(Debug, Clone)]
pub struct Call {
    pub resource: Arc<str>,
    pub params: Value,
    pub region: Arc<str>,
    pub account: Arc<str>,
    pub context: TaskContext,
}

/// Where a call comes from and what bounds it.
#[derive(Debug, Clone, Default)]
pub struct TaskContext {
    pub execution_arn: Arc<str>,
    pub state_machine_arn: Arc<str>,
    pub state_name: Arc<str>,
    /// The callback token of a `.waitForTaskToken` or activity Task (`$$.Task.Token`).
    pub token: Option<String>,
    /// The Task's TimeoutSeconds as a time on the real clock: the engine times the Task
    /// out then whatever the connector does; a connector may pass it on (an HTTP timeout).
    pub deadline: Option<DateTime<Utc>>,
    /// Cancelled when the call is no longer wanted (a timeout, a stop, a branch that
    /// failed). The engine also drops the call's future then; a connector that started
    /// work outside that future (a queued message, a detached process) watches this.
    pub cancel: CancellationToken,
}

/// A connector's answer to a call that did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The Task's result.
    Result(Value),
    /// The work was handed over with the Task's token: the Task waits for the token's
    /// SendTaskSuccess / SendTaskFailure. The value is what the history's `TaskSubmitted`
    /// event shows (the service's answer to the hand-over).
    Submitted(Value),
}

/// How the history names a Task's events: AWS records a Lambda ARN resource as
/// `LambdaFunction*` events, an activity as `Activity*` events and every other resource as
/// `Task*` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFamily {
    LambdaFunction,
    Activity,
    Task,
}

pub trait Connector: Send + Sync {
    /// Does this connector serve `resource`?
    fn handles(&self, resource: &str) -> bool;
    /// What it serves, as `stepgate validate` lists the connectors a daemon has.
    fn describe(&self) -> String;
    /// Whether a Task of `resource` with these `Parameters` (or JSONata `Arguments`) can be
    /// served as the config stands (a function that is configured, say); `Err` says why not.
    fn check(&self, resource: &str, params: Option<&Value>) -> Result<(), String> {
        let _ = (resource, params);
        Ok(())
    }
    fn family(&self, resource: &str) -> EventFamily {
        let _ = resource;
        EventFamily::Task
    }
    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>>;
    /// The result of a call this connector answers at once from what it holds (a mocked
    /// response), without a future or a call in flight; `None`: the call goes through
    /// [`Connector::invoke`]. Only executions without a journal ask, so nothing is committed
    /// that the answer could run ahead of.
    fn answer_now(&self, call: &AtOnce<'_>) -> Option<AnsweredNow<'_>> {
        let _ = call;
        None
    }
}

/// An answer given by [`Connector::answer_now`].
#[derive(Debug)]
pub enum AnsweredNow<'a> {
    /// A result made for this call, or a failure.
    Made(Result<Value, Failure>),
    /// A result the connector keeps and gives every time (a mocked `Return`), lent with the
    /// length of its JSON text: the state copies it into the document it already holds,
    /// reusing that memory where the two have the same shape, and never measures it.
    Lent(&'a Value, usize),
}

impl AnsweredNow<'_> {
    pub fn into_result(self) -> Result<Value, Failure> {
        match self {
            AnsweredNow::Made(r) => r,
            AnsweredNow::Lent(v, _) => Ok(v.clone()),
        }
    }
}

/// A call offered to [`Connector::answer_now`]: what identifies it, borrowed from the step.
#[derive(Debug, Clone, Copy)]
pub struct AtOnce<'a> {
    pub resource: &'a Arc<str>,
    pub params: &'a Value,
    pub state_name: &'a str,
    pub execution_arn: &'a Arc<str>,
}

/// A resource resolved to its connector, and how its history events are named.
pub type Resolved = Option<(Arc<dyn Connector>, EventFamily)>;

/// The table of connectors, searched in order.
#[derive(Clone, Default)]
pub struct Registry {
    rows: Vec<Arc<dyn Connector>>,
    /// Resources already resolved: a workflow calls the same few resources over and over,
    /// and parsing an ARN costs more than a lookup.
    resolved: Arc<RwLock<HashMap<Arc<str>, Resolved>>>,
    /// The same, by the address of the compiled workflow's own resource string: a Task state
    /// hands the same `Arc<str>` at every call, so hashing a pointer finds its connector without
    /// reading the ARN. Each entry keeps its `Arc` alive, so no other string can take that
    /// address while the entry is there.
    by_address: Arc<RwLock<ByAddress>>,
}

/// Resolved resources by the address of their string, each with the string it keeps alive.
type ByAddress = HashMap<usize, (Arc<str>, Resolved), foldhash::fast::RandomState>;

/// Entries of [`Registry::by_address`] past which it starts over (workflows reloaded many
/// times leave their old resource strings there).
const BY_ADDRESS_LIMIT: usize = 4096;

impl Registry {
    /// The connectors this build has, configured from the config's tables.
    pub fn new(functions: function::Functions) -> Self {
        Registry { rows: vec![Arc::new(functions)], resolved: Arc::default(), by_address: Arc::default() }
    }

    /// The same table with `connector` searched first (an embedder's own resources).
    pub fn with(mut self, connector: Arc<dyn Connector>) -> Self {
        self.rows.insert(0, connector);
        self.resolved = Arc::default();
        self.by_address = Arc::default();
        self
    }

    /// Whether a Task of `resource` with `params` can be served here; `Err` says why not,
    /// naming what is served when no connector serves it.
    pub fn check(&self, resource: &str, params: Option<&Value>) -> Result<(), String> {
        match self.rows.iter().find(|c| c.handles(resource)) {
            Some(c) => c.check(resource, params),
            None => {
                let known: Vec<String> = self.rows.iter().map(|c| c.describe()).collect();
                Err(format!(
                    "no connector here serves {resource}; the connectors here serve {}",
                    known.join("; ")
                ))
            }
        }
    }

    /// Finds the connector for a resource.
    pub fn resolve(&self, resource: &Arc<str>) -> Resolved {
        let address = Arc::as_ptr(resource) as *const u8 as usize;
        if let Some((_, r)) = self.by_address.read().unwrap_or_else(|e| e.into_inner()).get(&address) {
            return r.clone();
        }
        let known = self.resolved.read().unwrap_or_else(|e| e.into_inner()).get(resource).cloned();
        let r = match known {
            Some(r) => r,
            None => {
                let r =
                    self.rows.iter().find(|c| c.handles(resource)).map(|c| (c.clone(), c.family(resource)));
                self.resolved.write().unwrap_or_else(|e| e.into_inner()).insert(resource.clone(), r.clone());
                r
            }
        };
        let mut by_address = self.by_address.write().unwrap_or_else(|e| e.into_inner());
        if by_address.len() >= BY_ADDRESS_LIMIT {
            by_address.clear();
        }
        by_address.insert(address, (resource.clone(), r.clone()));
        r
    }
}

/// The connectors of a daemon, built from its config in one place: each module builds its
/// own from its config section. `nested` is bound to the service once that exists.
pub struct Built {
    pub registry: Registry,
    pub activities: Arc<activity::Activities>,
    pub nested: Arc<states::Nested>,
}

pub fn build(config: &crate::config::Config, store: Arc<dyn crate::store::Store>) -> Built {
    let activities = Arc::new(activity::Activities::new(store));
    let nested = states::Nested::new();
    #[cfg_attr(not(feature = "aws"), allow(unused_mut))]
    let mut registry = Registry::new(function::build(config))
        .with(Arc::new(http::build(config)))
        .with(Arc::new(mqtt::build(config)))
        .with(activities.clone())
        .with(nested.clone());
    #[cfg(feature = "aws")]
    {
        let sdk = aws::Sdk::new(&config.aws, &config.region);
        let events = config.eventbridge.as_ref().map_or_else(
            || sdk.clone(),
            |e| {
                // [eventbridge] overrides [aws] for EventBridge, key by key.
                let merged = aws::AwsConfig {
                    endpoint_url: e.endpoint_url.clone().or_else(|| config.aws.endpoint_url.clone()),
                    region: e.region.clone().or_else(|| config.aws.region.clone()),
                };
                aws::Sdk::new(&merged, &config.region)
            },
        );
        registry = with_aws(registry, sdk, events);
    }
    Built { registry, activities, nested }
}

/// `registry` with the AWS services' connectors: EventBridge as `events` says, SQS, SNS and
/// DynamoDB as `sdk` says.
#[cfg(feature = "aws")]
pub fn with_aws(registry: Registry, sdk: Arc<aws::Sdk>, events: Arc<aws::Sdk>) -> Registry {
    registry
        .with(Arc::new(eventbridge::build(events)))
        .with(Arc::new(sqs::build(sdk.clone())))
        .with(Arc::new(sns::build(sdk.clone())))
        .with(Arc::new(dynamodb::build(sdk)))
}

/// Every Task state of a definition, at any depth (Parallel branches, Map iterations): its
/// JSON pointer, its Resource and its Parameters or Arguments.
pub fn task_states(definition: &Value) -> Vec<(String, &str, Option<&Value>)> {
    fn walk<'v>(machine: &'v Value, at: &str, out: &mut Vec<(String, &'v str, Option<&'v Value>)>) {
        let Some(states) = machine.get("States").and_then(Value::as_object) else { return };
        for (name, state) in states {
            let here = format!("{at}/States/{}", name.replace('~', "~0").replace('/', "~1"));
            match state.get("Type").and_then(Value::as_str) {
                Some("Task") => {
                    if let Some(r) = state.get("Resource").and_then(Value::as_str) {
                        let params = state.get("Parameters").or_else(|| state.get("Arguments"));
                        out.push((format!("{here}/Resource"), r, params));
                    }
                }
                Some("Parallel") => {
                    for (i, b) in
                        state.get("Branches").and_then(Value::as_array).into_iter().flatten().enumerate()
                    {
                        walk(b, &format!("{here}/Branches/{i}"), out);
                    }
                }
                Some("Map") => {
                    for key in ["ItemProcessor", "Iterator"] {
                        if let Some(p) = state.get(key) {
                            walk(p, &format!("{here}/{key}"), out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(definition, "", &mut out);
    out
}

/// The failure for a resource no connector serves, as AWS words an unknown resource.
pub fn unknown_resource(resource: &str) -> Failure {
    Failure::runtime(format!(
        "The resource provided {resource} is not recognized. The value is not a valid resource ARN, or the resource is not available in this region."
    ))
}

/// The metadata AWS's SDK adds to an integration's answer (`SdkHttpMetadata`,
/// `SdkResponseMetadata`): a 200 with the service's `headers`, in its order and spelling.
/// Workflows written for AWS read them.
pub fn http_metadata(headers: &[(&str, String)], request_id: &str) -> (Value, Value) {
    let mut all = Map::new();
    let mut one = Map::new();
    for (k, v) in headers {
        all.insert(k.to_string(), json!([v]));
        one.insert(k.to_string(), json!(v));
    }
    let http = json!({"AllHttpHeaders": all, "HttpHeaders": one, "HttpStatusCode": 200});
    (http, json!({"RequestId": request_id}))
}

/// The date of an HTTP answer (`Date` header).
pub fn http_date() -> String {
    Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// [`http_metadata`] of the services that answer with a request id, the connection, the
/// length, the date and the content type (Step Functions, SQS, SNS) for a body of
/// `content_length` bytes of `content_type`.
pub fn sdk_metadata(content_type: &str, content_length: usize) -> (Value, Value) {
    let request_id = uuid::Uuid::new_v4().to_string();
    let headers = [
        ("x-amzn-RequestId", request_id.clone()),
        ("connection", "keep-alive".to_string()),
        ("Content-Length", content_length.to_string()),
        ("Date", http_date()),
        ("Content-Type", content_type.to_string()),
    ];
    http_metadata(&headers, &request_id)
}

//! The serde model of a definition, exactly as written. [`super::validate`] checks the raw
//! JSON first (so every problem is reported with its location); this model is then
//! deserialized from a definition known to be valid and compiled by [`super::compile`].

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`):
/// `"InputPath": null` means "no input", which is not the default.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum QueryLanguage {
    #[default]
    JSONPath,
    JSONata,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateMachine {
    pub start_at: String,
    pub states: indexmap::IndexMap<String, State>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub query_language: Option<QueryLanguage>,
    /// Only in a Map's ItemProcessor: `{"Mode": "INLINE" | "DISTRIBUTED", ...}`.
    #[serde(default)]
    pub processor_config: Option<Value>,
}

/// Fields every state may have.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Common {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub end: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub input_path: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub output_path: Option<Option<String>>,
    #[serde(default)]
    pub query_language: Option<QueryLanguage>,
    #[serde(default)]
    pub assign: Option<Value>,
    /// `"Output": null` outputs null; an absent Output outputs the default.
    #[serde(default, deserialize_with = "nullable")]
    pub output: Option<Option<Value>>,
}

/// Fields of the states that produce a result (Pass, Task, Parallel, Map).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Results {
    #[serde(default, deserialize_with = "nullable")]
    pub result_path: Option<Option<String>>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub arguments: Option<Value>,
    #[serde(default)]
    pub result_selector: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Recovery {
    #[serde(default)]
    pub retry: Vec<Retrier>,
    #[serde(default)]
    pub catch: Vec<Catcher>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Retrier {
    pub error_equals: Vec<String>,
    #[serde(default)]
    pub interval_seconds: Option<f64>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub backoff_rate: Option<f64>,
    #[serde(default)]
    pub max_delay_seconds: Option<f64>,
    #[serde(default)]
    pub jitter_strategy: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    #[serde(default, deserialize_with = "nullable")]
    pub result_path: Option<Option<String>>,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub assign: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "Type")]
pub enum State {
    Pass(Box<Pass>),
    Task(Box<Task>),
    Choice(Box<Choice>),
    Wait(Box<Wait>),
    Succeed(Box<Succeed>),
    Fail(Box<Fail>),
    Parallel(Box<Parallel>),
    Map(Box<Map>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pass {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub results: Results,
    #[serde(default)]
    pub result: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub results: Results,
    #[serde(flatten)]
    pub recovery: Recovery,
    pub resource: Value,
    #[serde(default)]
    pub timeout_seconds: Option<Value>,
    #[serde(default)]
    pub timeout_seconds_path: Option<String>,
    #[serde(default)]
    pub heartbeat_seconds: Option<Value>,
    #[serde(default)]
    pub heartbeat_seconds_path: Option<String>,
    #[serde(default)]
    pub credentials: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Choice {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub choices: Vec<Value>,
    #[serde(default)]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Wait {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub seconds: Option<Value>,
    #[serde(default)]
    pub timestamp: Option<Value>,
    #[serde(default)]
    pub seconds_path: Option<String>,
    #[serde(default)]
    pub timestamp_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Succeed {
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Fail {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_path: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub cause_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parallel {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub results: Results,
    #[serde(flatten)]
    pub recovery: Recovery,
    pub branches: Vec<StateMachine>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Map {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub results: Results,
    #[serde(flatten)]
    pub recovery: Recovery,
    #[serde(default)]
    pub item_processor: Option<StateMachine>,
    #[serde(default)]
    pub iterator: Option<StateMachine>,
    #[serde(default)]
    pub items_path: Option<String>,
    #[serde(default)]
    pub items: Option<Value>,
    #[serde(default)]
    pub item_selector: Option<Value>,
    #[serde(default)]
    pub item_batcher: Option<ItemBatcher>,
    #[serde(default)]
    pub item_reader: Option<Value>,
    #[serde(default)]
    pub result_writer: Option<Value>,
    #[serde(default)]
    pub max_concurrency: Option<Value>,
    #[serde(default)]
    pub max_concurrency_path: Option<String>,
    #[serde(default)]
    pub tolerated_failure_count: Option<Value>,
    #[serde(default)]
    pub tolerated_failure_count_path: Option<String>,
    #[serde(default)]
    pub tolerated_failure_percentage: Option<Value>,
    #[serde(default)]
    pub tolerated_failure_percentage_path: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ItemBatcher {
    #[serde(default)]
    pub max_items_per_batch: Option<Value>,
    #[serde(default)]
    pub max_items_per_batch_path: Option<String>,
    #[serde(default)]
    pub max_input_bytes_per_batch: Option<Value>,
    #[serde(default)]
    pub max_input_bytes_per_batch_path: Option<String>,
    #[serde(default)]
    pub batch_input: Option<Value>,
}

//! EventBridge Tasks: `arn:aws:states:::events:putEvents` (and `.waitForTaskToken`) with the
//! EventBridge SDK, as `[eventbridge]` (or `[aws]`) says. As AWS does: an object `Detail` is
//! sent as its JSON text, the state machine's and the execution's ARNs are appended to each
//! entry's `Resources`, and an answer with `FailedEntryCount` above 0 fails the Task with
//! `EventBridge.FailedEntry`, the answer as the cause.

use super::aws::{failure, Sdk, Service};
use super::sqs::text;
use super::{Answer, Call, Connector};
use crate::error::Failure;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const PUT: &str = "arn:aws:states:::events:putEvents";
const PUT_WAIT: &str = "arn:aws:states:::events:putEvents.waitForTaskToken";

const EVENTS: Service = Service {
    prefix: "EventBridge",
    name: "AmazonEventBridge",
    base_exception: "AmazonEventBridgeException",
};

pub struct EventBridge {
    sdk: Arc<Sdk>,
}

pub fn build(sdk: Arc<Sdk>) -> EventBridge {
    EventBridge { sdk }
}

impl Connector for EventBridge {
    fn handles(&self, resource: &str) -> bool {
        resource == PUT || resource == PUT_WAIT
    }

    fn describe(&self) -> String {
        format!("{PUT}[.waitForTaskToken] (Amazon EventBridge, as [eventbridge] or [aws] says)")
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>> {
        let sdk = self.sdk.clone();
        async move {
            let client = aws_sdk_eventbridge::Client::new(sdk.config().await);
            let ours = [call.context.state_machine_arn.to_string(), call.context.execution_arn.to_string()];
            let entries = match call.params.get("Entries") {
                Some(Value::Array(a)) => a.iter().map(|e| entry(e, &ours)).collect::<Vec<_>>(),
                _ => {
                    return Err(Failure::new(
                        "EventBridge.AmazonEventBridgeException",
                        "Entries is required: a list of events",
                    ))
                }
            };
            let out = client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| failure(&EVENTS, e))?;
            let entries: Vec<Value> = out
                .entries()
                .iter()
                .map(|e| {
                    let mut m = Map::new();
                    for (k, v) in [
                        ("ErrorCode", e.error_code()),
                        ("ErrorMessage", e.error_message()),
                        ("EventId", e.event_id()),
                    ] {
                        if let Some(v) = v {
                            m.insert(k.into(), json!(v));
                        }
                    }
                    Value::Object(m)
                })
                .collect();
            let answer = json!({"Entries": entries, "FailedEntryCount": out.failed_entry_count()});
            if out.failed_entry_count() > 0 {
                return Err(Failure::new("EventBridge.FailedEntry", answer.to_string()));
            }
            Ok(if &*call.resource == PUT_WAIT { Answer::Submitted(answer) } else { Answer::Result(answer) })
        }
        .boxed()
    }
}

/// One entry of the Task's `Entries`, with the execution's ARNs in its resources.
fn entry(e: &Value, ours: &[String; 2]) -> PutEventsRequestEntry {
    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    let mut resources: Vec<String> =
        e.get("Resources").and_then(Value::as_array).into_iter().flatten().map(text).collect();
    resources.extend(ours.iter().cloned());
    PutEventsRequestEntry::builder()
        .set_source(s("Source"))
        .set_detail_type(s("DetailType"))
        .set_detail(e.get("Detail").map(text))
        .set_event_bus_name(s("EventBusName"))
        .set_trace_header(s("TraceHeader"))
        .set_resources(Some(resources))
        .build()
}

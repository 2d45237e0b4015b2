//! SQS Tasks: `arn:aws:states:::sqs:sendMessage` (and `.waitForTaskToken`, the token handed
//! over in the message for a consumer to answer) with the SQS SDK, endpoint and credentials
//! as `[aws]` says. The answer is SendMessage's, with the SDK's metadata, as on AWS.

use super::aws::{failure, refused, Sdk, Service};
use super::{sdk_metadata, Answer, Call, Connector};
use crate::error::Failure;
use aws_sdk_sqs::types::MessageAttributeValue;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const SEND: &str = "arn:aws:states:::sqs:sendMessage";
const SEND_WAIT: &str = "arn:aws:states:::sqs:sendMessage.waitForTaskToken";

const SQS: Service = Service { prefix: "SQS", name: "AmazonSQS", base_exception: "AmazonSQSException" };

pub struct Sqs {
    sdk: Arc<Sdk>,
}

pub fn build(sdk: Arc<Sdk>) -> Sqs {
    Sqs { sdk }
}

impl Connector for Sqs {
    fn handles(&self, resource: &str) -> bool {
        resource == SEND || resource == SEND_WAIT
    }

    fn describe(&self) -> String {
        format!("{SEND}[.waitForTaskToken] (Amazon SQS, as [aws] says)")
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>> {
        let sdk = self.sdk.clone();
        async move {
            let p = &call.params;
            // SQS takes an empty body for a missing one.
            if p.get("MessageBody").is_none_or(|b| b.is_null() || b.as_str() == Some("")) {
                let why = "The request must contain the parameter MessageBody.";
                return Err(refused(&SQS, SQS.base_exception, "MissingParameter", why));
            }
            let client = aws_sdk_sqs::Client::new(sdk.config().await);
            let mut req = client
                .send_message()
                .set_queue_url(p.get("QueueUrl").and_then(Value::as_str).map(str::to_string))
                .set_message_body(p.get("MessageBody").map(text))
                .set_message_group_id(p.get("MessageGroupId").and_then(Value::as_str).map(str::to_string))
                .set_message_deduplication_id(
                    p.get("MessageDeduplicationId").and_then(Value::as_str).map(str::to_string),
                )
                .set_delay_seconds(p.get("DelaySeconds").and_then(Value::as_i64).map(|d| d as i32));
            for (name, a) in p.get("MessageAttributes").and_then(Value::as_object).into_iter().flatten() {
                req = req.message_attributes(name, attribute(a)?);
            }
            let out = req.send().await.map_err(|e| failure(&SQS, e))?;
            let mut answer = Map::new();
            let mut put = |k: &str, v: Option<&str>| {
                if let Some(v) = v {
                    answer.insert(k.into(), json!(v));
                }
            };
            put("MD5OfMessageAttributes", out.md5_of_message_attributes());
            put("MD5OfMessageBody", out.md5_of_message_body());
            put("MD5OfMessageSystemAttributes", out.md5_of_message_system_attributes());
            put("MessageId", out.message_id());
            put("SequenceNumber", out.sequence_number());
            // The metadata reports the length of SQS's own answer, which is these fields.
            let (http, response) =
                sdk_metadata("application/x-amz-json-1.0", Value::Object(answer.clone()).to_string().len());
            answer.insert("SdkHttpMetadata".into(), http);
            answer.insert("SdkResponseMetadata".into(), response);
            let answer = Value::Object(answer);
            Ok(if &*call.resource == SEND_WAIT { Answer::Submitted(answer) } else { Answer::Result(answer) })
        }
        .boxed()
    }
}

/// A message body or attribute: text as it is, anything else as its JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn attribute(a: &Value) -> Result<MessageAttributeValue, Failure> {
    use base64::Engine as _;
    let binary = match a.get("BinaryValue").and_then(Value::as_str) {
        Some(b) => Some(aws_sdk_sqs::primitives::Blob::new(
            base64::engine::general_purpose::STANDARD.decode(b).map_err(|e| {
                Failure::new("SQS.InvalidParameterValueException", format!("BinaryValue is not base64: {e}"))
            })?,
        )),
        None => None,
    };
    MessageAttributeValue::builder()
        .set_data_type(a.get("DataType").and_then(Value::as_str).map(str::to_string))
        .set_string_value(a.get("StringValue").map(text))
        .set_binary_value(binary)
        .build()
        .map_err(|e| Failure::new("SQS.InvalidParameterValueException", e.to_string()))
}

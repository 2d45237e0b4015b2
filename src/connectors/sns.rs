//! SNS Tasks: `arn:aws:states:::sns:publish` (and `.waitForTaskToken`) with the SNS SDK,
//! endpoint and credentials as `[aws]` says. A Message that is not text is sent as its JSON,
//! as AWS's integration does; the answer is Publish's, with the SDK's metadata.

use super::aws::{failure, refused, Sdk, Service};
use super::sqs::text;
use super::{sdk_metadata, Answer, Call, Connector};
use crate::error::Failure;
use aws_sdk_sns::types::MessageAttributeValue;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const PUBLISH: &str = "arn:aws:states:::sns:publish";
const PUBLISH_WAIT: &str = "arn:aws:states:::sns:publish.waitForTaskToken";

const SNS: Service = Service { prefix: "SNS", name: "AmazonSNS", base_exception: "AmazonSNSException" };

pub struct Sns {
    sdk: Arc<Sdk>,
}

pub fn build(sdk: Arc<Sdk>) -> Sns {
    Sns { sdk }
}

impl Connector for Sns {
    fn handles(&self, resource: &str) -> bool {
        resource == PUBLISH || resource == PUBLISH_WAIT
    }

    fn describe(&self) -> String {
        format!("{PUBLISH}[.waitForTaskToken] (Amazon SNS, as [aws] says)")
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>> {
        let sdk = self.sdk.clone();
        async move {
            let p = &call.params;
            let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
            // A FIFO topic (its name ends in .fifo) takes only messages of a group.
            if s("TopicArn").is_some_and(|t| t.ends_with(".fifo")) && s("MessageGroupId").is_none() {
                let why = "Invalid parameter: The MessageGroupId parameter is required for FIFO topics";
                return Err(refused(&SNS, "InvalidParameterException", "InvalidParameter", why));
            }
            let client = aws_sdk_sns::Client::new(sdk.config().await);
            let mut req = client
                .publish()
                .set_topic_arn(s("TopicArn"))
                .set_target_arn(s("TargetArn"))
                .set_phone_number(s("PhoneNumber"))
                .set_message(p.get("Message").map(text))
                .set_subject(s("Subject"))
                .set_message_structure(s("MessageStructure"))
                .set_message_group_id(s("MessageGroupId"))
                .set_message_deduplication_id(s("MessageDeduplicationId"));
            for (name, a) in p.get("MessageAttributes").and_then(Value::as_object).into_iter().flatten() {
                let v = MessageAttributeValue::builder()
                    .set_data_type(a.get("DataType").and_then(Value::as_str).map(str::to_string))
                    .set_string_value(a.get("StringValue").map(text))
                    .build()
                    .map_err(|e| Failure::new("SNS.InvalidParameterException", e.to_string()))?;
                req = req.message_attributes(name, v);
            }
            let out = req.send().await.map_err(|e| failure(&SNS, e))?;
            let mut answer = Map::new();
            if let Some(id) = out.message_id() {
                answer.insert("MessageId".into(), json!(id));
            }
            if let Some(n) = out.sequence_number() {
                answer.insert("SequenceNumber".into(), json!(n));
            }
            // The metadata reports the length of SNS's own answer, an XML document.
            let (http, response) = sdk_metadata("text/xml", xml_answer_len(&out));
            answer.insert("SdkHttpMetadata".into(), http);
            answer.insert("SdkResponseMetadata".into(), response);
            let answer = Value::Object(answer);
            Ok(if &*call.resource == PUBLISH_WAIT {
                Answer::Submitted(answer)
            } else {
                Answer::Result(answer)
            })
        }
        .boxed()
    }
}

/// The length of SNS's PublishResponse document for `out`.
fn xml_answer_len(out: &aws_sdk_sns::operation::publish::PublishOutput) -> usize {
    let id = out.message_id().unwrap_or_default();
    let sequence = out
        .sequence_number()
        .map(|n| format!("    <SequenceNumber>{n}</SequenceNumber>\n"))
        .unwrap_or_default();
    let request_id = uuid::Uuid::nil();
    format!(
        "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\n  <PublishResult>\n    <MessageId>{id}</MessageId>\n{sequence}  </PublishResult>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</PublishResponse>\n"
    )
    .len()
}

//! DynamoDB Tasks: `arn:aws:states:::dynamodb:getItem`, `putItem`, `updateItem` and
//! `deleteItem` with the DynamoDB SDK, as `[aws]` says. Parameters and answers are in
//! DynamoDB's JSON (`{"id": {"S": "a1"}}`), the answer with the SDK's metadata, as on AWS; a
//! refusal is `DynamoDB.<Exception>` (`DynamoDB.ConditionalCheckFailedException`).

use super::aws::{failure, missing, refused, Sdk, Service};
use super::{http_date, http_metadata, Answer, Call, Connector};
use crate::error::Failure;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

const PREFIX: &str = "arn:aws:states:::dynamodb:";
const OPERATIONS: &[&str] = &["getItem", "putItem", "updateItem", "deleteItem"];

const DYNAMODB: Service =
    Service { prefix: "DynamoDB", name: "AmazonDynamoDBv2", base_exception: "AmazonDynamoDBException" };

pub struct DynamoDb {
    sdk: Arc<Sdk>,
}

pub fn build(sdk: Arc<Sdk>) -> DynamoDb {
    DynamoDb { sdk }
}

impl Connector for DynamoDb {
    fn handles(&self, resource: &str) -> bool {
        resource.strip_prefix(PREFIX).is_some_and(|op| OPERATIONS.contains(&op))
    }

    fn describe(&self) -> String {
        format!("{PREFIX}getItem|putItem|updateItem|deleteItem (Amazon DynamoDB, as [aws] says)")
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>> {
        let sdk = self.sdk.clone();
        async move {
            let client = aws_sdk_dynamodb::Client::new(sdk.config().await);
            let p = &call.params;
            let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
            let map = |k: &str| p.get(k).filter(|v| !v.is_null()).map(item).transpose();
            let op = call.resource.strip_prefix(PREFIX).unwrap_or_default();
            // DynamoDB refuses a request without its required members before anything else.
            let required: &[(&str, &str)] = match op {
                "putItem" => &[("TableName", "tableName"), ("Item", "item")],
                _ => &[("TableName", "tableName"), ("Key", "key")],
            };
            for (param, member) in required {
                if p.get(*param).is_none_or(Value::is_null) {
                    return Err(refused(
                        &DYNAMODB,
                        DYNAMODB.base_exception,
                        "ValidationException",
                        &missing(member),
                    ));
                }
            }
            let names = p.get("ExpressionAttributeNames").and_then(Value::as_object).map(|m| {
                m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
            });
            let values = map("ExpressionAttributeValues")?;
            let returns = s("ReturnValues").map(|r| ReturnValue::from(r.as_str()));
            let mut answer = Map::new();
            // The item read, or what the write answers (ReturnValues).
            let (key, found) = match op {
                "getItem" => {
                    let out = client
                        .get_item()
                        .set_table_name(s("TableName"))
                        .set_key(map("Key")?)
                        .set_consistent_read(p.get("ConsistentRead").and_then(Value::as_bool))
                        .set_projection_expression(s("ProjectionExpression"))
                        .set_expression_attribute_names(names)
                        .send()
                        .await
                        .map_err(|e| failure(&DYNAMODB, e))?;
                    ("Item", out.item)
                }
                "putItem" => {
                    let out = client
                        .put_item()
                        .set_table_name(s("TableName"))
                        .set_item(map("Item")?)
                        .set_condition_expression(s("ConditionExpression"))
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .set_return_values(returns)
                        .send()
                        .await
                        .map_err(|e| failure(&DYNAMODB, e))?;
                    ("Attributes", out.attributes)
                }
                "updateItem" => {
                    let out = client
                        .update_item()
                        .set_table_name(s("TableName"))
                        .set_key(map("Key")?)
                        .set_update_expression(s("UpdateExpression"))
                        .set_condition_expression(s("ConditionExpression"))
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .set_return_values(returns)
                        .send()
                        .await
                        .map_err(|e| failure(&DYNAMODB, e))?;
                    ("Attributes", out.attributes)
                }
                _ => {
                    let out = client
                        .delete_item()
                        .set_table_name(s("TableName"))
                        .set_key(map("Key")?)
                        .set_condition_expression(s("ConditionExpression"))
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .set_return_values(returns)
                        .send()
                        .await
                        .map_err(|e| failure(&DYNAMODB, e))?;
                    ("Attributes", out.attributes)
                }
            };
            if let Some(item) = found {
                answer.insert(key.into(), json_item(&item));
            }
            // DynamoDB's own answer is these fields; the metadata reports its length and CRC.
            let body = Value::Object(answer.clone()).to_string();
            let request_id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
            let headers = [
                ("Server", "Server".to_string()),
                ("Connection", "keep-alive".to_string()),
                ("x-amzn-RequestId", request_id.clone()),
                ("x-amz-crc32", crc32(body.as_bytes()).to_string()),
                ("Content-Length", body.len().to_string()),
                ("Date", http_date()),
                ("Content-Type", "application/x-amz-json-1.0".to_string()),
            ];
            let (http, response) = http_metadata(&headers, &request_id);
            answer.insert("SdkHttpMetadata".into(), http);
            answer.insert("SdkResponseMetadata".into(), response);
            Ok(Answer::Result(Value::Object(answer)))
        }
        .boxed()
    }
}

fn invalid(why: String) -> Failure {
    Failure::new("DynamoDB.AmazonDynamoDBException", why)
}

/// An item (or key, or values) in DynamoDB's JSON.
fn item(v: &Value) -> Result<HashMap<String, AttributeValue>, Failure> {
    let Value::Object(m) = v else {
        return Err(invalid(format!("an item is an object of attributes, not {v}")));
    };
    m.iter().map(|(k, a)| Ok((k.clone(), attribute(a)?))).collect()
}

fn attribute(v: &Value) -> Result<AttributeValue, Failure> {
    use base64::Engine as _;
    let b64 = |s: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_str().unwrap_or_default())
            .map(Blob::new)
            .map_err(|e| invalid(format!("a B value is base64: {e}")))
    };
    let strings = |a: &Value| -> Vec<String> {
        a.as_array()
            .into_iter()
            .flatten()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect()
    };
    let one = v.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next());
    let Some((kind, x)) = one else {
        return Err(invalid(format!(
            "an attribute value is an object of one type, such as {{\"S\": \"text\"}}, not {v}"
        )));
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(x.as_str().map_or_else(|| x.to_string(), str::to_string)),
        "N" => AttributeValue::N(x.as_str().map_or_else(|| x.to_string(), str::to_string)),
        "B" => AttributeValue::B(b64(x)?),
        "BOOL" => AttributeValue::Bool(x.as_bool().unwrap_or(false)),
        "NULL" => AttributeValue::Null(x.as_bool().unwrap_or(true)),
        "SS" => AttributeValue::Ss(strings(x)),
        "NS" => AttributeValue::Ns(strings(x)),
        "BS" => AttributeValue::Bs(x.as_array().into_iter().flatten().map(b64).collect::<Result<_, _>>()?),
        "L" => {
            AttributeValue::L(x.as_array().into_iter().flatten().map(attribute).collect::<Result<_, _>>()?)
        }
        "M" => AttributeValue::M(item(x)?),
        other => return Err(invalid(format!("{other} is not a DynamoDB type"))),
    })
}

/// An item in DynamoDB's JSON, its attributes in name order as DynamoDB answers.
fn json_item(m: &HashMap<String, AttributeValue>) -> Value {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    Value::Object(keys.into_iter().map(|k| (k.clone(), json_attribute(&m[k]))).collect())
}

fn json_attribute(a: &AttributeValue) -> Value {
    use base64::Engine as _;
    let b64 = |b: &Blob| json!(base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
    match a {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b)}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(n) => json!({"NULL": n}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::Bs(v) => json!({"BS": v.iter().map(b64).collect::<Vec<_>>()}),
        AttributeValue::L(v) => json!({"L": v.iter().map(json_attribute).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": json_item(m)}),
        _ => Value::Null,
    }
}

/// CRC-32 (IEEE), as DynamoDB's `x-amz-crc32` header carries it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_go_to_the_sdk_and_back_unchanged() {
        let v = json!({"a": {"S": "x"}, "b": {"N": "1.5"}, "c": {"BOOL": true}, "d": {"NULL": true},
            "e": {"SS": ["p", "q"]}, "f": {"L": [{"S": "y"}, {"M": {"g": {"N": "2"}}}]}, "h": {"B": "aGk="}});
        assert_eq!(json_item(&item(&v).unwrap()), v);
        assert!(item(&json!({"a": {"S": "x", "N": "1"}})).is_err());
        assert!(item(&json!({"a": {"Q": "x"}})).is_err());
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}

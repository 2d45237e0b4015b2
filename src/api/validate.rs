//! Request checks of the API, before an operation sees its body: every member's JSON type and
//! every bound of AWS's service model (`model.json`, trimmed from botocore's by
//! `scripts/api-model`). `dispatch` runs them between reading the body and calling the
//! [`Service`](crate::service::Service), so the operations can take their fields as given.
//!
//! Answers are AWS's (its Coral front end): a member of the wrong JSON type is a
//! `SerializationException` (`STRING_VALUE can not be converted to an Integer`, `Start of
//! structure or map found where not expected.`), the first one ending the check; bounds,
//! enums and required members are one `ValidationException` listing every violation
//! (`2 validation errors detected: Value '1001' at 'maxResults' failed to satisfy
//! constraint: ...; ...`), with the value left out for members the model marks sensitive.
//! A `null` member is an absent one; a fractional number where an integer goes is truncated,
//! as Coral does. Unknown members are ignored. Execution data (`input`) is held to
//! `limits.payload_bytes` by the operations instead of the model's 256 KiB. The model's regular-expression patterns are
//! not checked: the operations apply AWS's own rules for names and ARNs.

use crate::service::ApiError;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Deserialize)]
struct Model {
    operations: HashMap<String, String>,
    shapes: HashMap<String, Shape>,
}

#[derive(Debug, Deserialize)]
struct Shape {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    required: Vec<String>,
    min: Option<f64>,
    max: Option<f64>,
    #[serde(rename = "enum")]
    values: Option<Vec<String>>,
    #[serde(default)]
    sensitive: bool,
    /// Structure members in the model's order.
    #[serde(default)]
    members: indexmap::IndexMap<String, String>,
    /// A list's item shape.
    member: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

static MODEL: LazyLock<Model> =
    LazyLock::new(|| serde_json::from_str(include_str!("model.json")).expect("src/api/model.json is valid"));

/// Checks `body` against the input shape of `operation`; an operation the model does not
/// know passes (the dispatcher answers it).
pub fn check(operation: &str, body: &Value) -> Result<(), ApiError> {
    let Some(input) = MODEL.operations.get(operation) else {
        return Ok(());
    };
    let shape = &MODEL.shapes[input];
    types(shape, body).map_err(|m| ApiError::new("SerializationException", m))?;
    let mut violations = Vec::new();
    bounds(shape, body, "", &mut violations);
    match violations.len() {
        0 => Ok(()),
        1 => Err(ApiError::new(
            "ValidationException",
            format!("1 validation error detected: {}", violations[0]),
        )),
        n => Err(ApiError::new(
            "ValidationException",
            format!("{n} validation errors detected: {}", violations.join("; ")),
        )),
    }
}

fn shape(name: &str) -> &'static Shape {
    &MODEL.shapes[name]
}

/// How Coral names a JSON token it cannot convert.
fn token(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "STRING_VALUE",
        Value::Number(_) => "NUMBER_VALUE",
        Value::Bool(true) => "TRUE_VALUE",
        Value::Bool(false) => "FALSE_VALUE",
        Value::Null => "NULL_VALUE",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

const LIST_HERE: &str = "Start of list found where not expected";
const OBJECT_HERE: &str = "Start of structure or map found where not expected.";

fn types(s: &Shape, v: &Value) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let scalar = |target: &str| match v {
        Value::Array(_) => Err(LIST_HERE.to_string()),
        Value::Object(_) => Err(OBJECT_HERE.to_string()),
        _ => Err(format!("{} can not be converted to {target}", token(v))),
    };
    match s.kind.as_str() {
        "structure" => match v {
            Value::Object(o) => {
                for (name, member) in &s.members {
                    if let Some(m) = o.get(name) {
                        types(shape(member), m)?;
                    }
                }
                Ok(())
            }
            Value::Array(_) => Err(LIST_HERE.into()),
            _ => Err("Expected null".into()),
        },
        "map" => match v {
            Value::Object(o) => {
                let (k, val) = (s.key.as_deref().unwrap_or_default(), s.value.as_deref().unwrap_or_default());
                for (name, m) in o {
                    types(shape(k), &Value::String(name.clone()))?;
                    types(shape(val), m)?;
                }
                Ok(())
            }
            Value::Array(_) => Err(LIST_HERE.into()),
            _ => Err("Expected null".into()),
        },
        "list" => match v {
            Value::Array(items) => {
                let item = shape(s.member.as_deref().unwrap_or_default());
                items.iter().try_for_each(|i| types(item, i))
            }
            Value::Object(_) => Err(OBJECT_HERE.into()),
            _ => Err("Expected list or null".into()),
        },
        "string" => match v {
            Value::String(_) => Ok(()),
            _ => scalar("a String"),
        },
        "boolean" => match v {
            Value::Bool(_) => Ok(()),
            _ => scalar("a Boolean"),
        },
        "integer" | "long" => {
            let (target, limit) = if s.kind == "integer" {
                ("an Integer", i32::MAX as f64)
            } else {
                ("a Long", i64::MAX as f64)
            };
            match v.as_f64() {
                // Coral truncates a fraction; past the type's range the number cannot be read.
                Some(n) if n.trunc().abs() <= limit => Ok(()),
                Some(_) => Err(format!("NUMBER_VALUE can not be converted to {target}")),
                None => scalar(target),
            }
        }
        "timestamp" | "double" | "float" => match v {
            Value::Number(_) => Ok(()),
            Value::String(_) if s.kind == "timestamp" => Ok(()),
            _ => scalar(if s.kind == "timestamp" { "a Timestamp" } else { "a Double" }),
        },
        _ => Ok(()),
    }
}

/// `'value'` as Coral writes it, or nothing for a sensitive member.
fn quoted(s: &Shape, v: &Value) -> String {
    if s.sensitive {
        return String::new();
    }
    match v {
        Value::String(t) => format!(" '{t}'"),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!(" '{}'", f.trunc() as i64),
            _ => format!(" '{n}'"),
        },
        other => format!(" '{other}'"),
    }
}

fn bounds(s: &Shape, v: &Value, path: &str, out: &mut Vec<String>) {
    let at = |v: &Value, rule: String| {
        format!("Value{} at '{path}' failed to satisfy constraint: {rule}", quoted(s, v))
    };
    match (s.kind.as_str(), v) {
        ("structure", Value::Object(o)) => {
            for (name, member) in &s.members {
                let sub = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                let m = shape(member);
                match o.get(name) {
                    None | Some(Value::Null) if s.required.contains(name) => {
                        let value = if m.sensitive { "" } else { " null" };
                        out.push(format!(
                            "Value{value} at '{sub}' failed to satisfy constraint: Member must not be null"
                        ));
                    }
                    None | Some(Value::Null) => {}
                    Some(x) => bounds(m, x, &sub, out),
                }
            }
        }
        ("list", Value::Array(items)) => {
            length(items.len() as f64, s, &mut |rule| out.push(at(v, rule)));
            let item = shape(s.member.as_deref().unwrap_or_default());
            for (i, x) in items.iter().enumerate() {
                bounds(item, x, &format!("{path}.{}.member", i + 1), out);
            }
        }
        ("string", Value::String(t)) => {
            if let Some(allowed) = &s.values {
                if !allowed.contains(t) {
                    out.push(at(v, format!("Member must satisfy enum value set: [{}]", allowed.join(", "))));
                }
            }
            // Execution data (input, output) is held to limits.payload_bytes by the
            // operations, a setting that may be above AWS's 256 KiB.
            if !(s.sensitive && s.max == Some(262_144.0)) {
                length(t.chars().count() as f64, s, &mut |rule| out.push(at(v, rule)));
            }
        }
        ("integer" | "long", Value::Number(n)) => {
            let n = n.as_f64().unwrap_or_default().trunc();
            if let Some(min) = s.min.filter(|m| n < *m) {
                out.push(at(v, format!("Member must have value greater than or equal to {min}")));
            }
            if let Some(max) = s.max.filter(|m| n > *m) {
                out.push(at(v, format!("Member must have value less than or equal to {max}")));
            }
        }
        _ => {}
    }
}

fn length(n: f64, s: &Shape, report: &mut dyn FnMut(String)) {
    if let Some(min) = s.min.filter(|m| n < *m) {
        report(format!("Member must have length greater than or equal to {min}"));
    }
    if let Some(max) = s.max.filter(|m| n > *m) {
        report(format!("Member must have length less than or equal to {max}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(op: &str, body: Value) -> Option<(String, String)> {
        check(op, &body).err().map(|e| (e.kind.to_string(), e.message))
    }

    #[test]
    fn every_operation_dispatched_is_in_the_model() {
        for op in ["StartExecution", "ListExecutions", "TagResource", "CreateStateMachine", "TestState"] {
            assert!(MODEL.operations.contains_key(op), "{op}");
        }
        for shape in MODEL.operations.values() {
            assert!(MODEL.shapes.contains_key(shape), "{shape}");
        }
    }

    #[test]
    fn wrong_types_are_serialization_errors() {
        let arn = "arn:aws:states:us-east-1:123456789012:stateMachine:m";
        let cases = [
            ("StartExecution", json!({"stateMachineArn": arn, "input": {"a": 1}}), OBJECT_HERE),
            (
                "StartExecution",
                json!({"stateMachineArn": arn, "name": 12}),
                "NUMBER_VALUE can not be converted to a String",
            ),
            ("StartExecution", json!({"stateMachineArn": arn, "input": ["x"]}), LIST_HERE),
            (
                "ListExecutions",
                json!({"maxResults": "10"}),
                "STRING_VALUE can not be converted to an Integer",
            ),
            ("ListExecutions", json!({"maxResults": true}), "TRUE_VALUE can not be converted to an Integer"),
            (
                "ListExecutions",
                json!({"maxResults": 1e30}),
                "NUMBER_VALUE can not be converted to an Integer",
            ),
            ("ListExecutions", json!({"statusFilter": 7}), "NUMBER_VALUE can not be converted to a String"),
            ("TagResource", json!({"resourceArn": arn, "tags": "notalist"}), "Expected list or null"),
            ("TagResource", json!({"resourceArn": arn, "tags": {"a": "b"}}), OBJECT_HERE),
            (
                "TagResource",
                json!({"resourceArn": arn, "tags": [{"key": 1}]}),
                "NUMBER_VALUE can not be converted to a String",
            ),
            ("TagResource", json!({"resourceArn": arn, "tags": ["k"]}), "Expected null"),
        ];
        for (op, body, want) in cases {
            assert_eq!(
                answer(op, body.clone()),
                Some(("SerializationException".into(), want.into())),
                "{op} {body}"
            );
        }
    }

    #[test]
    fn bounds_are_validation_errors_listing_every_violation() {
        let arn = "arn:aws:states:us-east-1:123456789012:stateMachine:m";
        let one =
            |m: &str| Some(("ValidationException".to_string(), format!("1 validation error detected: {m}")));
        assert_eq!(
            answer("ListExecutions", json!({"stateMachineArn": arn, "maxResults": 1001})),
            one("Value '1001' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 1000")
        );
        assert_eq!(
            answer("ListExecutions", json!({"stateMachineArn": arn, "maxResults": -1})),
            one("Value '-1' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 0")
        );
        assert_eq!(
            answer("ListExecutions", json!({"stateMachineArn": arn, "statusFilter": "succeeded"})).unwrap().1,
            "1 validation error detected: Value 'succeeded' at 'statusFilter' failed to satisfy constraint: \
             Member must satisfy enum value set: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE]"
        );
        assert_eq!(
            answer("DeleteStateMachine", json!({"stateMachineArn": ""})),
            one("Value '' at 'stateMachineArn' failed to satisfy constraint: Member must have length greater than or equal to 1")
        );
        assert_eq!(
            answer("StartExecution", json!({})),
            one("Value null at 'stateMachineArn' failed to satisfy constraint: Member must not be null")
        );
        // The value of a sensitive member is never echoed.
        let long = "x".repeat(1_048_577);
        assert_eq!(
            answer("ValidateStateMachineDefinition", json!({"definition": long})),
            one("Value at 'definition' failed to satisfy constraint: Member must have length less than or equal to 1048576")
        );
        let (kind, message) =
            answer("TagResource", json!({"resourceArn": "", "tags": [{"key": "", "value": "v"}]})).unwrap();
        assert_eq!(kind, "ValidationException");
        assert!(message.starts_with("2 validation errors detected: Value '' at 'resourceArn'"), "{message}");
        assert!(message.contains("; Value '' at 'tags.1.member.key' failed to satisfy constraint: Member must have length greater than or equal to 1"), "{message}");
    }

    #[test]
    fn what_aws_accepts_passes() {
        let arn = "arn:aws:states:us-east-1:123456789012:stateMachine:m";
        for (op, body) in [
            ("ListExecutions", json!({"stateMachineArn": arn, "maxResults": 0})),
            ("ListExecutions", json!({"stateMachineArn": arn, "maxResults": 1.5, "statusFilter": null})),
            ("StartExecution", json!({"stateMachineArn": arn, "input": "{}", "name": "n", "unknown": [1]})),
            ("ListStateMachines", json!({})),
            ("TagResource", json!({"resourceArn": arn, "tags": [{"key": "k", "value": "v"}]})),
        ] {
            assert_eq!(answer(op, body.clone()), None, "{op} {body}");
        }
    }
}

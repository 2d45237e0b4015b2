//! The HTTP surface of `stepgate serve`: the AWS Step Functions API (AWS JSON 1.0:
//! `POST /` with `X-Amz-Target: AWSStepFunctions.<Operation>`), `/healthz` and
//! Prometheus `/metrics`, on one axum server. Requests go to the [`Service`]; errors
//! come back as AWS's `{"__type", "message"}` with status 400.

use crate::service::{ApiError, Service};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

const JSON_10: &str = "application/x-amz-json-1.0";

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/", post(dispatch))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(service)
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, JSON_10)], body.to_string()).into_response()
}

fn error(e: ApiError) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({"__type": e.kind, "message": e.message}))
}

async fn dispatch(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) else {
        return error(ApiError::new("UnknownOperationException", "Missing the X-Amz-Target header"));
    };
    let Some(op) = target.strip_prefix("AWSStepFunctions.") else {
        return error(ApiError::new("UnknownOperationException", format!("Unknown operation: '{target}'")));
    };
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return error(ApiError::new(
                    "SerializationException",
                    "The request body must be a JSON object",
                ))
            }
            Err(e) => {
                return error(ApiError::new("SerializationException", format!("Malformed request body: {e}")))
            }
        }
    };
    let s = &service;
    let result = match op {
        "CreateStateMachine" => s.create_state_machine(&body),
        "UpdateStateMachine" => s.update_state_machine(&body),
        "DeleteStateMachine" => s.delete_state_machine(&body),
        "DescribeStateMachine" => s.describe_state_machine(&body),
        "ListStateMachines" => s.list_state_machines(&body),
        "DescribeStateMachineForExecution" => s.describe_state_machine_for_execution(&body),
        "ValidateStateMachineDefinition" => s.validate_definition(&body),
        "StartExecution" => s.start_execution(&body).await,
        "StartSyncExecution" => s.start_sync_execution(&body).await,
        "StopExecution" => s.stop_execution(&body).await,
        "DescribeExecution" => s.describe_execution(&body),
        "ListExecutions" => s.list_executions(&body),
        "GetExecutionHistory" => s.get_execution_history(&body),
        "TagResource" => s.tag_resource(&body),
        "UntagResource" => s.untag_resource(&body),
        "ListTagsForResource" => s.list_tags_for_resource(&body),
        other => Err(ApiError::new("UnknownOperationException", format!("Unknown operation: '{other}'"))),
    };
    match result {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => error(e),
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], service.metrics().render())
        .into_response()
}

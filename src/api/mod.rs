//! The HTTP surface of `stepgate serve`: the AWS Step Functions API (AWS JSON 1.0:
//! `POST /` with `X-Amz-Target: AWSStepFunctions.<Operation>`), `/healthz` and
//! Prometheus `/metrics`, on one axum server. Requests go to the [`Service`]; errors
//! come back as AWS's `{"__type", "message"}` with status 400. With access keys configured,
//! [`sigv4`] checks every API call's signature first (403 when it fails); `/healthz` and
//! `/metrics` stay open.

pub mod sigv4;

use crate::service::{ApiError, Service};
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

const JSON_10: &str = "application/x-amz-json-1.0";

/// The API over `service`; `auth` decides which calls are let in (none configured: all).
pub fn router(service: Arc<Service>, auth: sigv4::Verifier) -> Router {
    Router::new()
        .route("/", post(dispatch))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(Api { service, auth: Arc::new(auth) })
}

#[derive(Clone)]
struct Api {
    service: Arc<Service>,
    auth: Arc<sigv4::Verifier>,
}

impl FromRef<Api> for Arc<Service> {
    fn from_ref(api: &Api) -> Self {
        api.service.clone()
    }
}

impl FromRef<Api> for Arc<sigv4::Verifier> {
    fn from_ref(api: &Api) -> Self {
        api.auth.clone()
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, JSON_10)], body.to_string()).into_response()
}

fn error(e: ApiError) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({"__type": e.kind, "message": e.message}))
}

async fn dispatch(
    State(service): State<Arc<Service>>,
    State(auth): State<Arc<sigv4::Verifier>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Before anything is parsed: an unauthenticated caller learns nothing about the request.
    let signed = sigv4::SignedRequest {
        method: "POST",
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    if let Err(e) = auth.verify(&signed, chrono::Utc::now()) {
        tracing::debug!(error = e.kind, message = %e.message, "An API call was refused.");
        return reply(StatusCode::FORBIDDEN, json!({"__type": e.kind, "message": e.message}));
    }
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
        "TestState" => s.test_state(&body).await,
        "StartExecution" => s.start_execution(&body).await,
        "StartSyncExecution" => s.start_sync_execution(&body).await,
        "StopExecution" => s.stop_execution(&body).await,
        "RedriveExecution" => s.redrive_execution(&body).await,
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

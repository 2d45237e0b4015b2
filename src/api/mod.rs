//! The HTTP surface of `stepgate serve`: the AWS Step Functions API (AWS JSON 1.0:
//! `POST /` with `X-Amz-Target: AWSStepFunctions.<Operation>`), `/healthz` and
//! Prometheus `/metrics`, on one axum server (which also carries the HTTP routes of the
//! triggers when they share its listener). Requests go to the [`Service`]; errors
//! come back as AWS's `{"__type", "message"}` with status 400. With access keys configured,
//! [`sigv4`] checks every API call's signature first (403 when it fails); `/healthz` and
//! `/metrics` stay open. A body is read only after its headers pass that check, within
//! `server.max_body_bytes` (413 beyond) and `server.body_timeout_seconds`; [`server`] is the
//! listener under it all.

pub mod ops;
pub mod server;
pub mod sigv4;
pub mod validate;

use crate::service::{ApiError, Service};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

const JSON_10: &str = "application/x-amz-json-1.0";

/// How much of a request body the API takes in, and how long it waits for it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: std::time::Duration,
}

/// The API over `service`; `auth` decides which calls are let in (none configured: all);
/// `connections` are the listener's counts, served in `/metrics`.
pub fn router(
    service: Arc<Service>,
    auth: sigv4::Verifier,
    body: BodyLimits,
    connections: Arc<server::Stats>,
    triggers: Arc<crate::triggers::Stats>,
) -> Router {
    Router::new()
        .route("/", post(dispatch))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .with_state(Api { service, auth: Arc::new(auth), body, connections, triggers })
}

#[derive(Clone)]
struct Api {
    service: Arc<Service>,
    auth: Arc<sigv4::Verifier>,
    body: BodyLimits,
    connections: Arc<server::Stats>,
    triggers: Arc<crate::triggers::Stats>,
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, JSON_10)], body.to_string()).into_response()
}

fn error(e: ApiError) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({"__type": e.kind, "message": e.message}))
}

/// A body over `server.max_body_bytes`: answered before more of it is read.
fn too_large(limit: usize) -> Response {
    reply(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({
            "__type": TOO_LARGE,
            "message": format!("Request body is larger than {limit} bytes (server.max_body_bytes)."),
        }),
    )
}

const TOO_LARGE: &str = "RequestEntityTooLargeException";

/// Reads a request body whole, within the limits; the reply to send instead when it is not.
async fn read_body(body: Body, headers: &HeaderMap, limits: BodyLimits) -> Result<Bytes, Response> {
    server::read_body(body, headers, limits.max_bytes, limits.timeout).await.map_err(|e| match e {
        server::BodyError::TooLarge => too_large(limits.max_bytes),
        server::BodyError::Broken => {
            error(ApiError::new("SerializationException", "The request body could not be read."))
        }
        server::BodyError::TimedOut => reply(
            StatusCode::REQUEST_TIMEOUT,
            json!({
                "__type": "RequestTimeoutException",
                "message": format!(
                    "The request body did not arrive within {} seconds (server.body_timeout_seconds).",
                    limits.timeout.as_secs()
                ),
            }),
        ),
    })
}

async fn dispatch(State(api): State<Api>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let Api { service, auth, body: limits, .. } = api;
    let now = chrono::Utc::now();
    // A caller without a key cannot make the daemon read a body, nor learn anything from it.
    if let Err(e) = auth.check_headers(&headers, now) {
        tracing::debug!(error = e.kind, message = %e.message, "An API call was refused.");
        return reply(StatusCode::FORBIDDEN, json!({"__type": e.kind, "message": e.message}));
    }
    let body = match read_body(body, &headers, limits).await {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let signed = sigv4::SignedRequest {
        method: "POST",
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    if let Err(e) = auth.verify(&signed, now) {
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
            Ok(Value::Array(_)) => {
                return error(ApiError::new(
                    "SerializationException",
                    "Start of list found where not expected",
                ))
            }
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
    if let Err(e) = validate::check(op, &body) {
        return error(e);
    }
    let result = ops::call(&service, op, &body).await;
    match result {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => error(e),
    }
}

/// `ok` while the daemon serves; then a line per MQTT broker with its connection. A broker
/// that is down does not make the daemon unhealthy: it serves everything else meanwhile.
async fn health(State(api): State<Api>) -> String {
    let mut text = String::from("ok\n");
    api.triggers.health(&mut text);
    text
}

async fn metrics(State(api): State<Api>) -> Response {
    let (tasks_running, tasks_waiting) = api.service.engine().tasks();
    let gauges = crate::metrics::Gauges { parked: api.service.parked().ok(), tasks_running, tasks_waiting };
    let mut text = api.service.metrics().render(&gauges);
    text.push_str(&api.service.engine().call_stats().render());
    api.connections.render(&mut text);
    api.triggers.render(&mut text);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

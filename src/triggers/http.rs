//! HTTP routes, as API Gateway's Step Functions integration serves them: `[[triggers.http]]`
//! binds a method and a path (with `{param}` and a greedy `{param+}`, as API Gateway writes
//! them) to a workflow. A request becomes the execution's input
//! (`{"body", "path", "query", "headers"}`, or what the route's `input` template makes of it)
//! and goes to the [`Starter`]: an `async` route answers 202 with the execution ARN, a `sync`
//! route answers with the workflow's output, or with its error and cause.
//!
//! Bad requests are answered as API Gateway answers them (`{"message": ...}`), never with a
//! crash: 400 for a JSON body that does not parse, 403 for a missing or wrong `x-api-key`,
//! 404 for an unknown path, 405 (with `Allow`) for a wrong method, 413 past the payload
//! limit, 504 when a sync route's workflow outlasts `timeout_seconds`.

use super::{Counters, Refs, Stats};
use crate::asl::template::Template;
use crate::config::Problem;
use crate::service::start::Waited;
use crate::service::{ApiError, StartRequest, Starter};
use crate::store::ExecutionStatus;
use axum::body::{Body, Bytes};
use axum::extract::RawPathParams;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, MethodFilter, MethodRouter};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// `[[triggers.http]]`: one route.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The route's name in metrics and logs. Default: "METHOD PATH".
    #[serde(default)]
    pub name: Option<String>,
    /// GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, or ANY. Default: POST.
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    pub workflow: String,
    #[serde(default)]
    pub mode: Mode,
    /// A payload template (as a state's `Parameters`) over the default input.
    #[serde(default)]
    pub input: Option<Value>,
    /// Keys a caller must send in `x-api-key`; none: the route is open (loopback only).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Sync: how long the route waits for the workflow's end (504 past it).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Sync: the status a failed execution answers with, by error name (500 otherwise).
    #[serde(default)]
    pub errors: BTreeMap<String, u16>,
}

fn default_method() -> String {
    "POST".into()
}

/// API Gateway's integration timeout.
fn default_timeout() -> u64 {
    29
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The reply is the workflow's output.
    Sync,
    /// 202 and the execution's ARN.
    #[default]
    Async,
}

/// A route, checked.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// `None`: any method.
    pub method: Option<Method>,
    /// As configured (`/orders/{id}`).
    pub path: String,
    /// As axum writes it (`{proxy+}` becomes `{*proxy}`).
    router_path: String,
    pub workflow: String,
    pub workflow_arn: String,
    pub mode: Mode,
    input: Option<Arc<Template>>,
    keys: Arc<Vec<String>>,
    timeout: Duration,
    errors: Arc<BTreeMap<String, u16>>,
}

impl Route {
    /// An open route (no `api_keys`) must be on a loopback listener.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }
}

const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];

/// Paths that the Step Functions API holds when the routes share its listener.
pub const API_PATHS: [&str; 3] = ["/", "/healthz", "/metrics"];

/// Checks every route, collecting every problem; the routes that pass are returned.
pub fn compile(configs: &[RouteConfig], refs: &Refs, problems: &mut Vec<Problem>) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut names = HashSet::new();
    for (i, c) in configs.iter().enumerate() {
        let key = |field: &str| format!("triggers.http[{i}].{field}");
        let before = problems.len();
        let method_name = c.method.to_ascii_uppercase();
        let method = match method_name.as_str() {
            "ANY" => None,
            m if METHODS.contains(&m) => Method::from_bytes(m.as_bytes()).ok(),
            _ => {
                problems.push(Problem::new(
                    key("method"),
                    format!("'{}' is not one of {}", c.method, METHODS.join(", ")),
                ));
                None
            }
        };
        let router_path = match router_path(&c.path) {
            Ok(p) => p,
            Err(m) => {
                problems.push(Problem::new(key("path"), m));
                String::new()
            }
        };
        let workflow = refs.workflow(&key("workflow"), &c.workflow).map_err(|p| problems.push(p)).ok();
        let input = match &c.input {
            None => None,
            Some(v) => match Template::compile(v) {
                Ok(t) => Some(Arc::new(t)),
                Err(m) => {
                    problems.push(Problem::new(key("input"), m));
                    None
                }
            },
        };
        if c.api_keys.iter().any(|k| k.trim().is_empty()) {
            problems.push(Problem::new(key("api_keys"), "a key is empty"));
        }
        if c.timeout_seconds == 0 {
            problems.push(Problem::new(key("timeout_seconds"), "must be at least 1"));
        }
        for (error, status) in &c.errors {
            if !(400..=599).contains(status) {
                problems.push(Problem::new(
                    format!("{}.{error}", key("errors")),
                    format!("{status} is not an error status (400 to 599)"),
                ));
            }
        }
        if !c.errors.is_empty() && c.mode == Mode::Async {
            problems.push(Problem::new(key("errors"), "only a sync route answers with the workflow's error"));
        }
        let name = c.name.clone().unwrap_or_else(|| format!("{method_name} {}", c.path));
        if !names.insert(name.clone()) {
            problems.push(Problem::new(key("name"), format!("another route is named '{name}' too")));
        }
        let Some((workflow_arn, _)) = workflow else { continue };
        if problems.len() > before {
            continue;
        }
        routes.push(Route {
            name,
            method,
            path: c.path.clone(),
            router_path,
            workflow: c.workflow.clone(),
            workflow_arn,
            mode: c.mode,
            input,
            keys: Arc::new(c.api_keys.clone()),
            timeout: Duration::from_secs(c.timeout_seconds),
            errors: Arc::new(c.errors.clone()),
        });
    }
    routes
}

/// Checks that the routes (and, on a shared listener, the API's paths) can all be told
/// apart, as the router will have to; a collision is a problem at the later route's path.
pub fn check_overlaps(routes: &[Route], shared: bool, problems: &mut Vec<Problem>) {
    let mut paths: matchit::Router<String> = matchit::Router::new();
    if shared {
        for p in API_PATHS {
            let _ = paths.insert(p, "the Step Functions API (server.listen)".to_string());
        }
    }
    let mut methods: BTreeMap<&str, Vec<(Option<&Method>, &str)>> = BTreeMap::new();
    for (i, r) in routes.iter().enumerate() {
        let taken = methods.entry(&r.router_path).or_default();
        if let Some((_, other)) =
            taken.iter().find(|(m, _)| m.is_none() || r.method.is_none() || *m == r.method.as_ref())
        {
            problems.push(Problem::new(
                format!("triggers.http[{i}].path"),
                format!(
                    "{} {} is served by the route '{other}' already",
                    r.method.as_ref().map_or("ANY", |m| m.as_str()),
                    r.path
                ),
            ));
            continue;
        }
        let first = taken.is_empty();
        taken.push((r.method.as_ref(), &r.name));
        if !first {
            continue;
        }
        if let Err(e) = paths.insert(r.router_path.as_str(), r.name.clone()) {
            let with = match &e {
                matchit::InsertError::Conflict { with } => paths
                    .at(with)
                    .map(|m| m.value.clone())
                    .unwrap_or_else(|_| with.replace("{*", "{").replace('}', "+}")),
                _ => String::new(),
            };
            problems.push(Problem::new(
                format!("triggers.http[{i}].path"),
                if with.is_empty() {
                    format!("{} cannot be routed: {e}", r.path)
                } else {
                    format!("{} cannot be told apart from {with}", r.path)
                },
            ));
        }
    }
}

/// API Gateway's path syntax as axum's: `{name}` stays, a greedy `{name+}` (last segment
/// only) becomes `{*name}`.
fn router_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("'{path}' must start with '/'"));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut out = String::new();
    let mut params = HashSet::new();
    for (i, seg) in segments.iter().enumerate() {
        out.push('/');
        if seg.is_empty() && i + 1 < segments.len() {
            return Err(format!("'{path}' has an empty segment"));
        }
        if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!("'{seg}' in '{path}' is not a parameter: write {{name}} or {{name+}}"));
            }
            if !params.insert(name) {
                return Err(format!("'{path}' names the parameter '{name}' twice"));
            }
            if greedy {
                if i + 1 < segments.len() {
                    return Err(format!("the greedy parameter '{seg}' must be the last segment of '{path}'"));
                }
                out.push_str(&format!("{{*{name}}}"));
            } else {
                out.push_str(&format!("{{{name}}}"));
            }
        } else if seg.contains(['{', '}']) {
            return Err(format!("'{seg}' in '{path}': a parameter takes a whole segment"));
        } else {
            out.push_str(seg);
        }
    }
    Ok(out)
}

/// The routes as an axum router, each answering through `starter`. Wrong methods answer 405
/// (with `Allow`) in API Gateway's `{"message"}` shape; the listener's router gives
/// [`not_found`] as its fallback, once, whatever else it carries.
pub fn router(routes: &[Route], starter: &Starter, stats: &Stats, body_timeout: Duration) -> Router {
    // By path: its methods, and whether one route takes any method (it is alone there).
    let mut by_path: BTreeMap<&str, (MethodRouter, bool)> = BTreeMap::new();
    for r in routes {
        let state = Arc::new(Served {
            route: r.clone(),
            starter: starter.clone(),
            counters: stats.counters("http", &r.name),
            body_timeout,
        });
        let handler = move |params: RawPathParams, uri: Uri, headers: HeaderMap, body: Body| {
            let state = state.clone();
            async move { state.serve(params, uri, headers, body).await }
        };
        let (entry, _) = by_path.remove(r.router_path.as_str()).unwrap_or_default();
        let entry = match &r.method {
            None => (any(handler), true),
            Some(m) => {
                let filter = MethodFilter::try_from(m.clone()).unwrap_or(MethodFilter::POST);
                (entry.on(filter, handler), false)
            }
        };
        by_path.insert(&r.router_path, entry);
    }
    let mut router = Router::new();
    for (path, (methods, any_method)) in by_path {
        // `any` is itself a fallback: replacing it would refuse every method.
        let methods = if any_method { methods } else { methods.fallback(method_not_allowed) };
        router = router.route(path, methods);
    }
    router
}

/// The answer to a path no route serves.
pub async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

/// axum's method router has set `Allow` by the time its fallback answers; the body says why.
async fn method_not_allowed() -> Response {
    message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

fn message(status: StatusCode, text: &str) -> Response {
    reply(status, json!({ "message": text }))
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string())
        .into_response()
}

/// One route at work.
struct Served {
    route: Route,
    starter: Starter,
    counters: Arc<Counters>,
    body_timeout: Duration,
}

impl Served {
    async fn serve(&self, params: RawPathParams, uri: Uri, headers: HeaderMap, body: Body) -> Response {
        Counters::add(&self.counters.received);
        if !self.key_accepted(&headers) {
            Counters::add(&self.counters.rejected);
            return message(StatusCode::FORBIDDEN, "Forbidden");
        }
        let limit = self.starter.payload_limit();
        let bytes = match crate::api::server::read_body(body, &headers, limit, self.body_timeout).await {
            Ok(b) => b,
            Err(e) => {
                Counters::add(&self.counters.rejected);
                return match e {
                    crate::api::server::BodyError::TooLarge => message(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("Request body is larger than {limit} bytes (limits.payload_bytes)"),
                    ),
                    crate::api::server::BodyError::TimedOut => message(
                        StatusCode::REQUEST_TIMEOUT,
                        "The request body did not arrive in time (server.body_timeout_seconds)",
                    ),
                    crate::api::server::BodyError::Broken => {
                        message(StatusCode::BAD_REQUEST, "The request body could not be read")
                    }
                };
            }
        };
        let body = match request_body(&headers, &bytes) {
            Ok(b) => b,
            Err(m) => {
                Counters::add(&self.counters.rejected);
                return message(StatusCode::BAD_REQUEST, &m);
            }
        };
        let mut path = Map::new();
        for (k, v) in params.iter() {
            path.insert(k.to_string(), Value::String(v.to_string()));
        }
        let document = json!({
            "body": body,
            "path": path,
            "query": query(uri.query().unwrap_or("")),
            "headers": request_headers(&headers),
        });
        let input = match &self.route.input {
            None => document,
            Some(t) => match t.eval(&document, &RequestEnv) {
                Ok(v) => v,
                Err(f) => {
                    Counters::add(&self.counters.rejected);
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"message": format!("The route's input template failed: {}", f.cause), "error": f.error}),
                    );
                }
            },
        };
        let req = StartRequest {
            state_machine_arn: self.route.workflow_arn.clone(),
            name: None,
            input,
            parent: None,
        };
        match self.route.mode {
            Mode::Async => match self.starter.start(req).await {
                Ok(s) => {
                    Counters::add(&self.counters.started);
                    reply(
                        StatusCode::ACCEPTED,
                        json!({"executionArn": s.execution_arn, "startDate": s.start_date.timestamp_millis() as f64 / 1000.0}),
                    )
                }
                Err(e) => self.refused(e),
            },
            Mode::Sync => match self.starter.start_sync(req, Some(self.route.timeout)).await {
                Ok(Waited::Ended(e)) => {
                    Counters::add(&self.counters.started);
                    self.ended(&e)
                }
                Ok(Waited::Running(s)) => {
                    Counters::add(&self.counters.started);
                    reply(
                        StatusCode::GATEWAY_TIMEOUT,
                        json!({"message": "Endpoint request timed out", "executionArn": s.execution_arn}),
                    )
                }
                Err(e) => self.refused(e),
            },
        }
    }

    /// Constant-time against each key: a caller cannot learn a key from how long a wrong
    /// one takes.
    fn key_accepted(&self, headers: &HeaderMap) -> bool {
        if self.route.keys.is_empty() {
            return true;
        }
        let Some(given) = headers.get("x-api-key").map(HeaderValue::as_bytes) else { return false };
        self.route.keys.iter().fold(false, |ok, k| ok | constant_time_eq(k.as_bytes(), given))
    }

    fn ended(&self, e: &crate::service::Ended) -> Response {
        if e.status == ExecutionStatus::Succeeded {
            let output = e.output.clone().unwrap_or_else(|| "null".into());
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                output,
            )
                .into_response();
        }
        let error = e.error.clone().unwrap_or_else(|| match e.status {
            ExecutionStatus::TimedOut => crate::error::names::TIMEOUT.to_string(),
            _ => e.status.as_str().to_string(),
        });
        let status = self
            .route
            .errors
            .get(&error)
            .and_then(|s| StatusCode::from_u16(*s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        reply(status, json!({"error": error, "cause": e.cause.clone().unwrap_or_default()}))
    }

    /// A start the service refused: the caller's fault (400) or the daemon's (500).
    fn refused(&self, e: ApiError) -> Response {
        let status = match e.kind {
            "InternalServerError" => StatusCode::INTERNAL_SERVER_ERROR,
            "StateMachineDoesNotExist" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        if status.is_server_error() {
            Counters::add(&self.counters.errors);
            tracing::warn!(route = %self.route.name, error = e.kind, message = %e.message, "A route could not start its workflow.");
        } else {
            Counters::add(&self.counters.rejected);
        }
        reply(status, json!({"message": e.message, "error": e.kind}))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body as the workflow sees it: parsed JSON when the content type says JSON (or says
/// nothing and it parses), otherwise the text as a string; bytes that are not UTF-8 are
/// base64-encoded. An empty body is `null`.
fn request_body(headers: &HeaderMap, bytes: &Bytes) -> Result<Value, String> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let media = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let says_json = media.as_deref().is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if says_json {
        return serde_json::from_slice(bytes)
            .map_err(|e| format!("Could not parse request body into json: {e}"));
    }
    if media.is_none() {
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            return Ok(v);
        }
    }
    Ok(match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => {
            use base64::Engine as _;
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    })
}

/// Query parameters by name; a repeated one keeps its last value, as API Gateway's
/// `queryStringParameters` does.
fn query(q: &str) -> Value {
    let mut out = Map::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        out.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    Value::Object(out)
}

/// Request headers by lower-case name, without the credentials (`x-api-key`,
/// `authorization`): the input lands in the execution's history.
fn request_headers(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in headers {
        if name == "x-api-key" || name == header::AUTHORIZATION {
            continue;
        }
        if let Ok(v) = value.to_str() {
            out.insert(name.as_str().to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(out)
}

/// What a route's input template may read: the request document as `$`; no context object
/// or variables.
struct RequestEnv;

impl crate::asl::Env for RequestEnv {
    fn context(&self) -> Cow<'_, Value> {
        Cow::Owned(Value::Object(Map::new()))
    }
    fn variable(&self, _: &str) -> Option<Cow<'_, Value>> {
        None
    }
    fn random(&self) -> u64 {
        rand::random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_gateway_paths_become_axum_paths() {
        for (given, want) in [
            ("/orders/{id}", Ok("/orders/{id}")),
            ("/files/{path+}", Ok("/files/{*path}")),
            ("/", Ok("/")),
            ("/a/{x}/b/{y}", Ok("/a/{x}/b/{y}")),
        ] {
            assert_eq!(
                router_path(given).as_deref(),
                want.map_err(|_: ()| String::new()).as_deref(),
                "{given}"
            );
        }
        for (given, why) in [
            ("orders", "must start with '/'"),
            ("/files/{path+}/x", "must be the last segment"),
            ("/a/{x}/{x}", "twice"),
            ("/a/x{id}", "takes a whole segment"),
            ("/a/{}", "is not a parameter"),
            ("/a//b", "empty segment"),
        ] {
            let e = router_path(given).unwrap_err();
            assert!(e.contains(why), "{given}: {e}");
        }
    }

    #[test]
    fn bodies_are_json_when_they_say_so_and_text_otherwise() {
        let h = |ct: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            }
            h
        };
        let b = |s: &'static [u8]| Bytes::from_static(s);
        assert_eq!(request_body(&h(Some("application/json")), &b(br#"{"a":1}"#)), Ok(json!({"a": 1})));
        assert_eq!(
            request_body(&h(Some("application/vnd.api+json; charset=utf-8")), &b(b"[1]")),
            Ok(json!([1]))
        );
        let e = request_body(&h(Some("application/json")), &b(b"{oops")).unwrap_err();
        assert!(e.starts_with("Could not parse request body into json: key must be a string"), "{e}");
        assert_eq!(request_body(&h(Some("text/plain")), &b(b"{\"a\":1}")), Ok(json!("{\"a\":1}")));
        assert_eq!(
            request_body(&h(Some("application/x-www-form-urlencoded")), &b(b"a=1&b=2")),
            Ok(json!("a=1&b=2"))
        );
        assert_eq!(request_body(&h(None), &b(b"{\"a\":1}")), Ok(json!({"a": 1})));
        assert_eq!(request_body(&h(None), &b(b"hello")), Ok(json!("hello")));
        assert_eq!(request_body(&h(Some("application/octet-stream")), &b(b"\xff\x00")), Ok(json!("/wA=")));
        assert_eq!(request_body(&h(Some("application/json")), &b(b"")), Ok(Value::Null));
    }

    #[test]
    fn query_strings_decode_and_the_last_value_wins() {
        assert_eq!(query("a=1&b=x%20y&a=2&c"), json!({"a": "2", "b": "x y", "c": ""}));
        assert_eq!(query(""), json!({}));
    }
}

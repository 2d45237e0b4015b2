//! The AWS Step Functions API's operations as JSON: each takes the request body (already
//! held to AWS's service model by [`super::validate`]) and answers the response body, or
//! an [`ApiError`]. The work is the [`Service`]'s; executions start through its
//! [`Starter`](crate::service::Starter), as every trigger's do. Only the JSON shapes live
//! here: epoch-second dates, AWS's member names, the paging tokens.

use crate::asl::validate::{self, MachineType as ValidateType};
use crate::engine::{Start, Status};
use crate::service::registry::compile;
use crate::service::start::Waited;
use crate::service::{check_arn, check_name, invalid_token, ApiError, Ended, Loaded, Service, StartRequest};
use crate::store::{ExecutionRecord, ExecutionStatus, MachineType, StateMachineRecord};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::sync::Arc;

type ApiResult = Result<Value, ApiError>;

/// Runs the operation `op` on `body`.
pub async fn call(s: &Arc<Service>, op: &str, body: &Value) -> ApiResult {
    match op {
        "CreateStateMachine" => create_state_machine(s, body),
        "UpdateStateMachine" => update_state_machine(s, body),
        "DeleteStateMachine" => delete_state_machine(s, body),
        "DescribeStateMachine" => describe_state_machine(s, body),
        "ListStateMachines" => list_state_machines(s, body),
        "DescribeStateMachineForExecution" => describe_state_machine_for_execution(s, body),
        "ValidateStateMachineDefinition" => validate_definition(body),
        "TestState" => test_state(s, body).await,
        "StartExecution" => start_execution(s, body).await,
        "StartSyncExecution" => start_sync_execution(s, body).await,
        "StopExecution" => stop_execution(s, body).await,
        "RedriveExecution" => redrive_execution(s, body).await,
        "DescribeExecution" => describe_execution(s, body),
        "ListExecutions" => list_executions(s, body),
        "GetExecutionHistory" => get_execution_history(s, body),
        "TagResource" => tag_resource(s, body),
        "UntagResource" => untag_resource(s, body),
        "ListTagsForResource" => list_tags_for_resource(s, body),
        "SendTaskSuccess" => send_task_success(s, body).await,
        "SendTaskFailure" => send_task_failure(s, body).await,
        "SendTaskHeartbeat" => send_task_heartbeat(s, body).await,
        "CreateActivity" => create_activity(s, body).await,
        "DescribeActivity" => describe_activity(s, body),
        "DeleteActivity" => delete_activity(s, body).await,
        "ListActivities" => list_activities(s, body),
        "GetActivityTask" => get_activity_task(s, body).await,
        other => Err(ApiError::new("UnknownOperationException", format!("Unknown operation: '{other}'"))),
    }
}

fn epoch(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis() as f64 / 1000.0)
}

fn str_field<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    body.get(field).and_then(Value::as_str).ok_or_else(|| {
        ApiError::new("ValidationException", format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"))
    })
}

/// Page sizes: 0 or absent is AWS's default of 100.
fn page_size(body: &Value) -> usize {
    body.get("maxResults")
        .and_then(Value::as_f64)
        .map(|n| n as usize)
        .filter(|n| *n > 0)
        .unwrap_or(100)
        .min(1000)
}

fn create_state_machine(s: &Service, body: &Value) -> ApiResult {
    let name = str_field(body, "name")?;
    check_name(name)?;
    let definition = str_field(body, "definition")?;
    let kind = match body.get("type").and_then(Value::as_str).unwrap_or("STANDARD") {
        "STANDARD" => MachineType::Standard,
        "EXPRESS" => MachineType::Express,
        other => return Err(ApiError::new("ValidationException", format!("Value '{other}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"))),
    };
    let arn = s.engine().state_machine_arn(name);
    if let Ok(existing) = s.state_machine(&arn) {
        if existing.record.definition == definition && existing.record.machine_type == kind {
            return Ok(json!({"stateMachineArn": arn, "creationDate": epoch(existing.record.created)}));
        }
        return Err(ApiError::new(
            "StateMachineAlreadyExists",
            format!("State Machine Already Exists: '{arn}'"),
        ));
    }
    let now = Utc::now();
    let tags = body
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((t.get("key")?.as_str()?.to_string(), t.get("value")?.as_str()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let record = StateMachineRecord {
        name: name.to_string(),
        arn: arn.clone(),
        definition: definition.to_string(),
        machine_type: kind,
        role_arn: body.get("roleArn").and_then(Value::as_str).unwrap_or_default().to_string(),
        created: now,
        updated: now,
        tags,
        revision: 1,
    };
    s.put_state_machine(record)?;
    Ok(json!({"stateMachineArn": arn, "creationDate": epoch(now)}))
}

fn update_state_machine(s: &Service, body: &Value) -> ApiResult {
    let arn = str_field(body, "stateMachineArn")?;
    let old = s.state_machine(arn)?;
    let mut record = old.record.clone();
    if let Some(d) = body.get("definition").and_then(Value::as_str) {
        record.definition = d.to_string();
    }
    if let Some(r) = body.get("roleArn").and_then(Value::as_str) {
        record.role_arn = r.to_string();
    }
    record.updated = Utc::now();
    record.revision += 1;
    let updated = record.updated;
    let revision = record.revision;
    s.put_state_machine(record)?;
    Ok(json!({"updateDate": epoch(updated), "revisionId": revision.to_string()}))
}

fn describe_state_machine(s: &Service, body: &Value) -> ApiResult {
    let arn = str_field(body, "stateMachineArn")?;
    let l = s.state_machine(arn)?;
    Ok(describe_machine(&l.record))
}

fn delete_state_machine(s: &Service, body: &Value) -> ApiResult {
    let arn = str_field(body, "stateMachineArn")?;
    s.delete_state_machine(arn)?;
    Ok(json!({}))
}

fn list_state_machines(s: &Service, body: &Value) -> ApiResult {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    let limit = page_size(body);
    // The token is the name the previous page ended at: names are unique and sorted.
    let after = match body.get("nextToken").and_then(Value::as_str) {
        Some(t) => {
            let raw = URL_SAFE_NO_PAD.decode(t).map_err(|_| invalid_token())?;
            Some(String::from_utf8(raw).map_err(|_| invalid_token())?)
        }
        None => None,
    };
    let mut all: Vec<Arc<Loaded>> = s
        .state_machines()
        .into_iter()
        .filter(|l| after.as_ref().is_none_or(|a| l.record.name > *a))
        .collect();
    all.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    let more = all.len() > limit;
    all.truncate(limit);
    let items: Vec<Value> = all
        .iter()
        .map(|l| {
            json!({
                "stateMachineArn": l.record.arn,
                "name": l.record.name,
                "type": type_name(l.record.machine_type),
                "creationDate": epoch(l.record.created),
            })
        })
        .collect();
    let mut out = json!({"stateMachines": items});
    if let (true, Some(last)) = (more, all.last()) {
        out["nextToken"] = json!(URL_SAFE_NO_PAD.encode(&last.record.name));
    }
    Ok(out)
}

/// TestState: runs one state on an input, outside any state machine, and says what it
/// produced and where it would go. Transitions are not followed: the state's targets
/// become end states that stand for them. A Retry that would retry answers RETRIABLE
/// instead of waiting; a Catch that catches answers CAUGHT_ERROR.
async fn test_state(s: &Service, body: &Value) -> ApiResult {
    const NAME: &str = "TestState";
    let text = str_field(body, "definition")?;
    let mut state: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            "InvalidDefinition",
            format!("Invalid State Machine Definition: 'INVALID_JSON_DESCRIPTION: {e}'"),
        )
    })?;
    let input = crate::engine::input::parse(body.get("input").and_then(Value::as_str).unwrap_or("{}"))
        .map_err(|m| ApiError::new("InvalidExecutionInput", m))?;
    let obj = state.as_object_mut().ok_or_else(|| {
        ApiError::new("InvalidDefinition", "Invalid State Machine Definition: a state must be an object")
    })?;
    // Every transition target becomes a stand-in end state named after its index.
    let mut targets: Vec<String> = Vec::new();
    fn stand_in(targets: &mut Vec<String>, t: &mut Value) {
        if let Some(name) = t.as_str() {
            targets.push(name.to_string());
            *t = json!(format!("__stepgate_target_{}", targets.len() - 1));
        }
    }
    if let Some(n) = obj.get_mut("Next") {
        stand_in(&mut targets, n);
    }
    if let Some(d) = obj.get_mut("Default") {
        stand_in(&mut targets, d);
    }
    for rule in obj.get_mut("Choices").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(n) = rule.get_mut("Next") {
            stand_in(&mut targets, n);
        }
    }
    let catch_from = targets.len();
    for c in obj.get_mut("Catch").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(n) = c.get_mut("Next") {
            stand_in(&mut targets, n);
        }
    }
    let retriers = obj.remove("Retry");
    let mut states = Map::new();
    states.insert(NAME.into(), state.clone());
    for i in 0..targets.len() {
        states.insert(format!("__stepgate_target_{i}"), json!({"Type": "Pass", "End": true}));
    }
    let definition = json!({"StartAt": NAME, "States": states});
    let machine = compile(&definition.to_string(), MachineType::Standard)?;
    let start =
        Start { record_history: true, ..Start::new("TestState", uuid::Uuid::new_v4().to_string(), input) };
    let o = s.engine().run(&machine, start).await;
    // Which stand-in the run ended in, if any: the last state entered.
    let reached = o
        .history
        .iter()
        .rev()
        .find_map(|e| e.details.as_ref().and_then(|(_, d)| d.get_str("name")))
        .and_then(|n| n.strip_prefix("__stepgate_target_"))
        .and_then(|i| i.parse::<usize>().ok());
    let mut out = Map::new();
    match (o.status, reached) {
        (Status::Succeeded, Some(i)) if i >= catch_from => {
            out.insert("status".into(), json!("CAUGHT_ERROR"));
            out.insert("nextState".into(), json!(targets[i]));
            let failed = o.history.iter().rev().find_map(|e| {
                e.details.as_ref().and_then(|(_, d)| Some((d.get_str("error")?, d.get_str("cause")?)))
            });
            if let Some((error, cause)) = failed {
                out.insert("error".into(), json!(error));
                out.insert("cause".into(), json!(cause));
            }
        }
        (Status::Succeeded, reached) => {
            out.insert("status".into(), json!("SUCCEEDED"));
            if let Some(i) = reached {
                out.insert("nextState".into(), json!(targets[i]));
            }
        }
        _ => {
            let error = o.error.clone().unwrap_or_default();
            let retriable = retriers.as_ref().and_then(Value::as_array).is_some_and(|rs| {
                rs.iter().any(|r| {
                    let max = r.get("MaxAttempts").and_then(Value::as_u64).unwrap_or(3);
                    max > 0
                        && r.get("ErrorEquals").and_then(Value::as_array).is_some_and(|es| {
                            es.iter()
                                .filter_map(Value::as_str)
                                .any(|p| crate::interpreter::errors::error_matches(p, &error))
                        })
                })
            });
            out.insert("status".into(), json!(if retriable { "RETRIABLE" } else { "FAILED" }));
            out.insert("error".into(), json!(error));
            out.insert("cause".into(), json!(o.cause.unwrap_or_default()));
        }
    }
    if let Some(v) = o.output {
        out.insert("output".into(), json!(v.to_string()));
    }
    Ok(Value::Object(out))
}

fn validate_definition(body: &Value) -> ApiResult {
    let definition = str_field(body, "definition")?;
    let kind = if body.get("type").and_then(Value::as_str) == Some("EXPRESS") {
        ValidateType::Express
    } else {
        ValidateType::Standard
    };
    let diags = match validate::parse_text(definition) {
        Ok(v) => validate::validate_for(&v, kind),
        Err(e) => vec![e.diagnostic()],
    };
    let failed = diags.iter().any(|d| d.severity == validate::Severity::Error);
    Ok(json!({"result": if failed { "FAIL" } else { "OK" }, "diagnostics": diags, "truncated": false}))
}

fn describe_execution(s: &Service, body: &Value) -> ApiResult {
    let (e, _) = s.find_execution(str_field(body, "executionArn")?)?;
    Ok(describe_exec(&e))
}

fn describe_state_machine_for_execution(s: &Service, body: &Value) -> ApiResult {
    let (e, _) = s.find_execution(str_field(body, "executionArn")?)?;
    let l = s.state_machine(&e.state_machine_arn)?;
    let mut d = describe_machine(&l.record);
    d["updateDate"] = epoch(l.record.updated);
    // The definition the execution runs, which an update may have replaced since.
    if let Some(text) = s.definition_of(&e.arn)? {
        d["definition"] = json!(text);
    }
    Ok(d)
}

fn list_executions(s: &Service, body: &Value) -> ApiResult {
    let sm = str_field(body, "stateMachineArn")?;
    // The request checks held the filter to AWS's enum.
    let status = body.get("statusFilter").and_then(Value::as_str).and_then(ExecutionStatus::parse);
    let limit = page_size(body);
    let token = body.get("nextToken").and_then(Value::as_str);
    let (items, next) = s.list_executions(sm, status, token, limit)?;
    let list: Vec<Value> = items
        .iter()
        .map(|e| {
            let mut v = json!({
                "executionArn": e.arn, "stateMachineArn": e.state_machine_arn, "name": e.name,
                "status": e.status.as_str(), "startDate": epoch(e.start),
            });
            if let Some(t) = e.stop {
                v["stopDate"] = epoch(t);
            }
            v
        })
        .collect();
    let mut out = json!({"executions": list});
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    Ok(out)
}

fn get_execution_history(s: &Service, body: &Value) -> ApiResult {
    let arn = str_field(body, "executionArn")?;
    let reverse = body.get("reverseOrder").and_then(Value::as_bool).unwrap_or(false);
    let include = body.get("includeExecutionData").and_then(Value::as_bool).unwrap_or(true);
    let limit = page_size(body);
    let after = match body.get("nextToken").and_then(Value::as_str) {
        Some(t) => t.parse().map_err(|_| invalid_token())?,
        None if reverse => u64::MAX,
        None => 0,
    };
    let events = s.history(arn, after, limit + 1, reverse)?;
    let more = events.len() > limit;
    let events: Vec<Value> = events.into_iter().take(limit).map(|e| api_event(e, include)).collect();
    let mut out = json!({"events": events});
    if more {
        if let Some(last) = out["events"].as_array().and_then(|a| a.last()).and_then(|e| e["id"].as_u64()) {
            out["nextToken"] = json!(last.to_string());
        }
    }
    Ok(out)
}

/// The state machine a tagging operation names, or AWS's ResourceNotFound.
fn tagged(s: &Service, body: &Value) -> Result<Arc<Loaded>, ApiError> {
    let arn = str_field(body, "resourceArn")?;
    check_arn(arn, &["stateMachine", "activity"])?;
    s.state_machine(arn)
        .map_err(|_| ApiError::new("ResourceNotFound", format!("Resource not found: '{arn}'")))
}

fn tag_resource(s: &Service, body: &Value) -> ApiResult {
    let l = tagged(s, body)?;
    let mut record = l.record.clone();
    for t in body.get("tags").and_then(Value::as_array).into_iter().flatten() {
        if let (Some(k), Some(v)) =
            (t.get("key").and_then(Value::as_str), t.get("value").and_then(Value::as_str))
        {
            record.tags.insert(k.to_string(), v.to_string());
        }
    }
    s.put_state_machine(record)?;
    Ok(json!({}))
}

fn untag_resource(s: &Service, body: &Value) -> ApiResult {
    let l = tagged(s, body)?;
    let mut record = l.record.clone();
    for k in body.get("tagKeys").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        record.tags.remove(k);
    }
    s.put_state_machine(record)?;
    Ok(json!({}))
}

fn list_tags_for_resource(s: &Service, body: &Value) -> ApiResult {
    let l = tagged(s, body)?;
    let tags: Vec<Value> = l.record.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    Ok(json!({"tags": tags}))
}

fn type_name(t: MachineType) -> &'static str {
    match t {
        MachineType::Standard => "STANDARD",
        MachineType::Express => "EXPRESS",
    }
}

fn describe_machine(r: &StateMachineRecord) -> Value {
    json!({
        "stateMachineArn": r.arn,
        "name": r.name,
        "status": "ACTIVE",
        "definition": r.definition,
        "roleArn": r.role_arn,
        "type": type_name(r.machine_type),
        "creationDate": epoch(r.created),
        "loggingConfiguration": {"level": "OFF", "includeExecutionData": false},
        "revisionId": r.revision.to_string(),
    })
}

fn describe_exec(e: &ExecutionRecord) -> Value {
    let mut v = json!({
        "executionArn": e.arn,
        "stateMachineArn": e.state_machine_arn,
        "name": e.name,
        "status": e.status.as_str(),
        "startDate": epoch(e.start),
        "input": e.input,
        "inputDetails": {"included": true},
        "redriveCount": e.redrive_count,
    });
    let (redrive, why) = e.redrive_status();
    v["redriveStatus"] = json!(redrive);
    if let Some(why) = why {
        v["redriveStatusReason"] = json!(why);
    }
    if let Some(s) = e.stop {
        v["stopDate"] = epoch(s);
    }
    if let Some(o) = &e.output {
        v["output"] = json!(o);
        v["outputDetails"] = json!({"included": true});
    }
    if let Some(er) = &e.error {
        v["error"] = json!(er);
    }
    if let Some(c) = &e.cause {
        v["cause"] = json!(c);
    }
    v
}

/// A stored event as the API returns it: epoch-seconds timestamps, data left out on request.
fn api_event(mut e: Value, include_data: bool) -> Value {
    if let Some(t) =
        e.get("timestamp").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        e["timestamp"] = epoch(t.with_timezone(&Utc));
    }
    if !include_data {
        if let Some(obj) = e.as_object_mut() {
            for (_, details) in obj.iter_mut().filter(|(k, _)| k.ends_with("EventDetails")) {
                if let Some(d) = details.as_object_mut() {
                    for key in ["input", "output"] {
                        if d.remove(key).is_some() {
                            d.insert(format!("{key}Details"), json!({"included": false}));
                        }
                    }
                }
            }
        }
    }
    e
}

/// StartExecution: the execution runs in its own task; the reply comes at once.
async fn start_execution(s: &Arc<Service>, body: &Value) -> ApiResult {
    let req = start_request(body)?;
    let started = s.starter().start(req).await?;
    // Only a running execution of the same name and input is the same one (AWS's
    // idempotency); a finished one is not started again.
    if started.existing.is_some_and(|st| st != ExecutionStatus::Running) {
        return Err(ApiError::new(
            "ExecutionAlreadyExists",
            format!("Execution Already Exists: '{}'", started.execution_arn),
        ));
    }
    Ok(json!({"executionArn": started.execution_arn, "startDate": epoch(started.start_date)}))
}

/// The typed start of a StartExecution or StartSyncExecution body.
fn start_request(body: &Value) -> Result<StartRequest, ApiError> {
    let state_machine_arn = str_field(body, "stateMachineArn")?.to_string();
    let text = body.get("input").and_then(Value::as_str).unwrap_or("{}");
    let input = crate::engine::input::parse(text).map_err(|m| ApiError::new("InvalidExecutionInput", m))?;
    let name = body.get("name").and_then(Value::as_str).map(str::to_string);
    Ok(StartRequest { state_machine_arn, name, input, parent: None })
}

/// StartSyncExecution: runs an Express execution and answers with its result.
async fn start_sync_execution(s: &Arc<Service>, body: &Value) -> ApiResult {
    let req = start_request(body)?;
    let starter = s.starter();
    if starter.machine_type(&req.state_machine_arn)? != MachineType::Express {
        return Err(ApiError::new(
            "StateMachineTypeNotSupported",
            "This operation is not supported by this type of state machine",
        ));
    }
    let e = match starter.start_sync(req, None).await? {
        Waited::Ended(e) => e,
        // Not without a limit on the wait; answered rather than assumed.
        Waited::Running(r) => return Err(ApiError::internal(format!("{} did not end", r.execution_arn))),
    };
    Ok(sync_result(&e))
}

/// StartSyncExecution's answer for an execution that has ended.
fn sync_result(e: &Ended) -> Value {
    let mut out = json!({
        "executionArn": e.arn,
        "stateMachineArn": e.state_machine_arn,
        "name": e.name,
        "startDate": epoch(e.start),
        "stopDate": epoch(e.stop.unwrap_or(e.start)),
        "status": e.status.as_str(),
        "input": e.input,
        "inputDetails": {"included": true},
        "billingDetails": {"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": 100},
    });
    match &e.output {
        Some(v) => {
            out["output"] = json!(v);
            out["outputDetails"] = json!({"included": true});
        }
        None => {
            if let Some(er) = &e.error {
                out["error"] = json!(er);
            }
            if let Some(c) = &e.cause {
                out["cause"] = json!(c);
            }
        }
    }
    out
}

async fn stop_execution(s: &Arc<Service>, body: &Value) -> ApiResult {
    let arn = str_field(body, "executionArn")?;
    let error = body.get("error").and_then(Value::as_str).map(str::to_string);
    let cause = body.get("cause").and_then(Value::as_str).map(str::to_string);
    let stopped = s.stop_execution(arn, error, cause).await?;
    Ok(json!({"stopDate": epoch(stopped)}))
}

async fn send_task_success(s: &Arc<Service>, body: &Value) -> ApiResult {
    let token = str_field(body, "taskToken")?;
    let output = crate::engine::input::parse_with(str_field(body, "output")?, "Invalid Output")
        .map_err(|m| ApiError::new("InvalidOutput", m))?;
    s.send_task_success(token, output).await?;
    Ok(json!({}))
}

async fn send_task_failure(s: &Arc<Service>, body: &Value) -> ApiResult {
    let token = str_field(body, "taskToken")?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    s.send_task_failure(token, text("error"), text("cause")).await?;
    Ok(json!({}))
}

async fn send_task_heartbeat(s: &Arc<Service>, body: &Value) -> ApiResult {
    s.send_task_heartbeat(str_field(body, "taskToken")?).await?;
    Ok(json!({}))
}

fn activity_json(a: &crate::store::ActivityRecord) -> Value {
    json!({"activityArn": a.arn, "name": a.name, "creationDate": epoch(a.created)})
}

async fn create_activity(s: &Service, body: &Value) -> ApiResult {
    let a = s.create_activity(str_field(body, "name")?).await?;
    Ok(json!({"activityArn": a.arn, "creationDate": epoch(a.created)}))
}

fn describe_activity(s: &Service, body: &Value) -> ApiResult {
    Ok(activity_json(&s.describe_activity(str_field(body, "activityArn")?)?))
}

async fn delete_activity(s: &Service, body: &Value) -> ApiResult {
    s.delete_activity(str_field(body, "activityArn")?).await?;
    Ok(json!({}))
}

fn list_activities(s: &Service, body: &Value) -> ApiResult {
    let (items, next) = s.list_activities(body.get("nextToken").and_then(Value::as_str), page_size(body))?;
    let mut out = json!({"activities": items.iter().map(activity_json).collect::<Vec<_>>()});
    if let Some(t) = next {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

/// A long poll: answers within 60 seconds, with no token when no task came.
async fn get_activity_task(s: &Arc<Service>, body: &Value) -> ApiResult {
    let arn = str_field(body, "activityArn")?;
    let worker = body.get("workerName").and_then(Value::as_str).map(str::to_string);
    Ok(match s.get_activity_task(arn, worker).await? {
        Some((token, input)) => json!({"taskToken": token, "input": input}),
        None => json!({}),
    })
}

async fn redrive_execution(s: &Arc<Service>, body: &Value) -> ApiResult {
    let arn = str_field(body, "executionArn")?;
    let redriven = s.redrive_execution(arn).await?;
    Ok(json!({"redriveDate": epoch(redriven)}))
}

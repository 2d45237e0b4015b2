//! The Step Functions service behind the API and the triggers: state machines (from the
//! workflows folder and from CreateStateMachine), executions started on the engine in
//! their own tasks, Standard ones journaled to the store so a restarted daemon resumes
//! them, Express ones kept in memory. Operations take and give the AWS API's JSON shapes
//! and fail with AWS's exception names ([`ApiError`]).

use crate::asl::validate::{self, MachineType as ValidateType};
use crate::asl::Machine;
use crate::engine::history::Event;
use crate::engine::{self, Engine, FrameWrite, Journal, Outcome, Progress, Resume, Start, Status};
use crate::store::{
    Created, ExecutionRecord, ExecutionStatus, Frame, MachineType, StateMachineRecord, Store, Write,
};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use tokio::task::AbortHandle;

/// An error as the AWS API reports it: `{"__type": kind, "message": ...}`, HTTP 400.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into() }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::new("InternalServerError", e.to_string())
    }
}

type ApiResult = Result<Value, ApiError>;

/// A state machine ready to run.
struct Loaded {
    record: StateMachineRecord,
    machine: Arc<Machine>,
    /// The definition's text and its SHA-256, recorded with each Standard execution.
    definition: Arc<str>,
    hash: String,
}

impl Loaded {
    fn new(record: StateMachineRecord, machine: Arc<Machine>) -> Arc<Self> {
        let definition: Arc<str> = Arc::from(record.definition.as_str());
        Arc::new(Loaded { hash: definition_hash(&definition), definition, record, machine })
    }
}

fn definition_hash(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Service {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    /// Express executions and their histories, in memory.
    express: Arc<dyn Store>,
    machines: RwLock<HashMap<String, Arc<Loaded>>>,
    running: Mutex<HashMap<String, AbortHandle>>,
    metrics: crate::metrics::Metrics,
    /// Top-level sleeps longer than this park the execution (`storage.park_after_seconds`).
    park_after: chrono::Duration,
    /// Unclean stops in a row at one place after which an execution is failed
    /// (`storage.resume_limit`; 0: never).
    resume_limit: u32,
    timers: Timers,
    /// Definitions that executions started with and their state machines no longer have,
    /// compiled once each, by hash.
    old_definitions: Mutex<HashMap<String, Arc<Machine>>>,
}

type Due = (DateTime<Utc>, String);

/// The parked Standard executions: only their ARN and when they are due stay in memory; all
/// else is in the store, read back when they wake.
#[derive(Default)]
struct Timers {
    /// Earliest first: (when, execution ARN).
    due: Mutex<BinaryHeap<Reverse<Due>>>,
    changed: tokio::sync::Notify,
}

fn epoch(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis() as f64 / 1000.0)
}

fn str_field<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    body.get(field).and_then(Value::as_str).ok_or_else(|| {
        ApiError::new("ValidationException", format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"))
    })
}

/// AWS's check of an ARN's form, made before the resource is looked up: `kinds` are the
/// resource types (`stateMachine`, `execution`, ...) the operation takes.
fn check_arn(arn: &str, kinds: &[&str]) -> Result<(), ApiError> {
    if !arn.starts_with("arn:") {
        return Err(ApiError::new("InvalidArn", format!("Invalid Arn: 'Invalid ARN prefix: {arn}'")));
    }
    let kind = arn.split(':').nth(5).unwrap_or_default();
    if !kinds.contains(&kind) {
        return Err(ApiError::new(
            "InvalidArn",
            format!("Invalid Arn: 'Resource type not valid in this context: {kind}'"),
        ));
    }
    Ok(())
}

/// The answer to a pagination token stepgate did not hand out.
fn invalid_token() -> ApiError {
    ApiError::new("InvalidToken", "Invalid Token: 'Invalid token'")
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

/// AWS's rule for state machine and execution names.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let bad = name.is_empty()
        || name.chars().count() > 80
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c));
    if bad {
        return Err(ApiError::new("InvalidName", format!("Invalid Name: '{name}'")));
    }
    Ok(())
}

impl Service {
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        express: Arc<dyn Store>,
        park_after: chrono::Duration,
        resume_limit: u32,
    ) -> Arc<Self> {
        Arc::new(Service {
            engine,
            store,
            express,
            machines: RwLock::default(),
            running: Mutex::default(),
            metrics: crate::metrics::Metrics::default(),
            park_after,
            resume_limit,
            timers: Timers::default(),
            old_definitions: Mutex::default(),
        })
    }

    /// Wakes parked executions when they are due, on the engine's clock, for as long as the
    /// runtime runs.
    pub fn start_timers(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let next = this.timers.due.lock().unwrap_or_else(|e| e.into_inner()).peek().map(|e| e.0 .0);
                // `notify_one` keeps a permit when nobody waits, so a timer added between
                // the peek and here is not missed.
                let changed = this.timers.changed.notified();
                match next {
                    None => changed.await,
                    Some(t) => {
                        tokio::select! {
                            _ = this.engine.clock().sleep_until(t) => {}
                            _ = changed => continue,
                        }
                    }
                }
                let now = this.engine.clock().now();
                let mut woken = Vec::new();
                {
                    let mut due = this.timers.due.lock().unwrap_or_else(|e| e.into_inner());
                    while due.peek().is_some_and(|e| e.0 .0 <= now) {
                        woken.extend(due.pop().map(|e| e.0 .1));
                    }
                }
                for arn in woken {
                    this.metrics.parked(-1);
                    this.wake(&arn);
                }
            }
        });
    }

    fn park(&self, arn: String, until: DateTime<Utc>) {
        self.metrics.parked(1);
        self.timers.due.lock().unwrap_or_else(|e| e.into_inner()).push(Reverse((until, arn)));
        self.timers.changed.notify_one();
    }

    /// Resumes a parked execution from the store, unless it was stopped meanwhile.
    fn wake(self: &Arc<Self>, arn: &str) {
        let record = match self.store.get_execution(arn) {
            Ok(Some(r)) if r.status == ExecutionStatus::Running => r,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(execution = %arn, error = %e, "A parked execution could not be read; retrying in a minute.");
                self.park(arn.to_string(), self.engine.clock().now() + chrono::Duration::minutes(1));
                return;
            }
        };
        if let Err(e) = self.resume(record, false) {
            tracing::error!(execution = %arn, error = %e.message, "A parked execution could not be resumed.");
        }
    }

    fn state_machine_arn(&self, name: &str) -> String {
        self.engine.state_machine_arn(name)
    }

    fn compile(definition: &str, kind: MachineType) -> Result<Machine, ApiError> {
        let v = validate::parse_text(definition).map_err(|e| {
            ApiError::new(
                "InvalidDefinition",
                format!("Invalid State Machine Definition: '{}'", e.diagnostic()),
            )
        })?;
        let vt = if kind == MachineType::Express { ValidateType::Express } else { ValidateType::Standard };
        let diags = validate::validate_for(&v, vt);
        if diags.iter().any(|d| d.severity == validate::Severity::Error) {
            return Err(ApiError::new("InvalidDefinition", validate::cause(&diags)));
        }
        crate::asl::compile(&v).map_err(|d| ApiError::new("InvalidDefinition", validate::cause(&d)))
    }

    /// Registers a state machine (from the workflows folder or the API) and stores it.
    pub fn put_state_machine(&self, record: StateMachineRecord) -> Result<(), ApiError> {
        let machine = Arc::new(Self::compile(&record.definition, record.machine_type)?);
        self.store.put_state_machine(&record).map_err(ApiError::internal)?;
        let arn = record.arn.clone();
        self.machines.write().unwrap_or_else(|e| e.into_inner()).insert(arn, Loaded::new(record, machine));
        Ok(())
    }

    /// Loads the state machines the store holds (those created through the API earlier).
    pub fn load_stored(&self) -> Result<usize, ApiError> {
        let all = self.store.list_state_machines().map_err(ApiError::internal)?;
        let mut n = 0;
        for record in all {
            match Self::compile(&record.definition, record.machine_type) {
                Ok(m) => {
                    let arn = record.arn.clone();
                    self.machines
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(arn, Loaded::new(record, Arc::new(m)));
                    n += 1;
                }
                Err(e) => {
                    tracing::warn!(state_machine = %record.name, error = %e.message, "A stored state machine no longer compiles; it is skipped.")
                }
            }
        }
        Ok(n)
    }

    fn loaded(&self, arn: &str) -> Result<Arc<Loaded>, ApiError> {
        check_arn(arn, &["stateMachine"])?;
        self.machines.read().unwrap_or_else(|e| e.into_inner()).get(arn).cloned().ok_or_else(|| {
            ApiError::new("StateMachineDoesNotExist", format!("State Machine Does Not Exist: '{arn}'"))
        })
    }

    pub fn create_state_machine(&self, body: &Value) -> ApiResult {
        let name = str_field(body, "name")?;
        check_name(name)?;
        let definition = str_field(body, "definition")?;
        let kind = match body.get("type").and_then(Value::as_str).unwrap_or("STANDARD") {
            "STANDARD" => MachineType::Standard,
            "EXPRESS" => MachineType::Express,
            other => return Err(ApiError::new("ValidationException", format!("Value '{other}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"))),
        };
        let arn = self.state_machine_arn(name);
        if let Ok(existing) = self.loaded(&arn) {
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
        self.put_state_machine(record)?;
        Ok(json!({"stateMachineArn": arn, "creationDate": epoch(now)}))
    }

    pub fn update_state_machine(&self, body: &Value) -> ApiResult {
        let arn = str_field(body, "stateMachineArn")?;
        let old = self.loaded(arn)?;
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
        self.put_state_machine(record)?;
        Ok(json!({"updateDate": epoch(updated), "revisionId": revision.to_string()}))
    }

    pub fn describe_state_machine(&self, body: &Value) -> ApiResult {
        let arn = str_field(body, "stateMachineArn")?;
        let l = self.loaded(arn)?;
        Ok(describe_machine(&l.record))
    }

    pub fn delete_state_machine(&self, body: &Value) -> ApiResult {
        let arn = str_field(body, "stateMachineArn")?;
        check_arn(arn, &["stateMachine"])?;
        self.machines.write().unwrap_or_else(|e| e.into_inner()).remove(arn);
        self.store.delete_state_machine(arn).map_err(ApiError::internal)?;
        Ok(json!({}))
    }

    pub fn list_state_machines(&self, body: &Value) -> ApiResult {
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
        let mut all: Vec<Arc<Loaded>> = self
            .machines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|l| after.as_ref().is_none_or(|a| l.record.name > *a))
            .cloned()
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
    pub async fn test_state(&self, body: &Value) -> ApiResult {
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
        let machine = Self::compile(&definition.to_string(), MachineType::Standard)?;
        let start = Start {
            record_history: true,
            ..Start::new("TestState", uuid::Uuid::new_v4().to_string(), input)
        };
        let o = self.engine.run(&machine, start, None).await;
        // Which stand-in the run ended in, if any: the last state entered.
        let reached = o
            .history
            .iter()
            .rev()
            .find_map(|e| e.details.as_ref().and_then(|(_, d)| d.get("name")).and_then(Value::as_str))
            .and_then(|n| n.strip_prefix("__stepgate_target_"))
            .and_then(|i| i.parse::<usize>().ok());
        let mut out = Map::new();
        match (o.status, reached) {
            (Status::Succeeded, Some(i)) if i >= catch_from => {
                out.insert("status".into(), json!("CAUGHT_ERROR"));
                out.insert("nextState".into(), json!(targets[i]));
                let failed = o.history.iter().rev().find_map(|e| {
                    e.details
                        .as_ref()
                        .and_then(|(_, d)| Some((d.get("error")?.as_str()?, d.get("cause")?.as_str()?)))
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

    pub fn validate_definition(&self, body: &Value) -> ApiResult {
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

    /// StartExecution: the execution runs in its own task; the reply comes at once.
    pub async fn start_execution(self: &Arc<Self>, body: &Value) -> ApiResult {
        let (record, loaded, input) = self.new_execution(body)?;
        if loaded.record.machine_type == MachineType::Express {
            let start_time = record.start;
            let arn = record.arn.clone();
            let this = self.clone();
            tokio::spawn(async move { this.run_express(&loaded, &record, input).await });
            return Ok(json!({"executionArn": arn, "startDate": epoch(start_time)}));
        }
        let started = json!({"input": record.input, "inputDetails": {"truncated": false}, "roleArn": loaded.record.role_arn});
        let first = Write::Event {
            execution_arn: record.arn.clone(),
            event: Event {
                id: 1,
                previous_event_id: 0,
                timestamp: record.start,
                kind: "ExecutionStarted",
                details: Some(("executionStartedEventDetails", started)),
            },
        };
        let definition = Write::Definition {
            execution_arn: record.arn.clone(),
            hash: loaded.hash.clone(),
            text: loaded.definition.clone(),
        };
        let writes = vec![first, definition];
        match self.store.create_execution(record.clone(), writes).await.map_err(ApiError::internal)? {
            Created::New => {}
            Created::Existing(e) => {
                let e = *e;
                return if e.status == ExecutionStatus::Running && e.input == record.input {
                    Ok(json!({"executionArn": e.arn, "startDate": epoch(e.start)}))
                } else {
                    Err(ApiError::new(
                        "ExecutionAlreadyExists",
                        format!("Execution Already Exists: '{}'", e.arn),
                    ))
                };
            }
        }
        let reply = json!({"executionArn": record.arn, "startDate": epoch(record.start)});
        self.metrics.started();
        self.spawn_standard(loaded.machine.clone(), record, input, Some(Resume::fresh(1)));
        Ok(reply)
    }

    fn new_execution(&self, body: &Value) -> Result<(ExecutionRecord, Arc<Loaded>, Value), ApiError> {
        let sm_arn = str_field(body, "stateMachineArn")?;
        let loaded = self.loaded(sm_arn)?;
        let name = match body.get("name").and_then(Value::as_str) {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let text = body.get("input").and_then(Value::as_str).unwrap_or("{}");
        let input =
            crate::engine::input::parse(text).map_err(|m| ApiError::new("InvalidExecutionInput", m))?;
        if text.len() > self.engine.limits().payload_bytes {
            return Err(ApiError::new(
                "InvalidExecutionInput",
                format!("Invalid State Machine Execution Input: 'The input is larger than {} bytes (limits.payload_bytes)'", self.engine.limits().payload_bytes),
            ));
        }
        let express_id = (loaded.record.machine_type == MachineType::Express).then(uuid::Uuid::new_v4);
        let record = ExecutionRecord {
            arn: self.engine.execution_arn(&loaded.record.name, &name, express_id),
            name,
            state_machine_arn: loaded.record.arn.clone(),
            state_machine_name: loaded.record.name.clone(),
            status: ExecutionStatus::Running,
            input: serde_json::to_string(&input).unwrap_or_default(),
            output: None,
            error: None,
            cause: None,
            start: self.engine.clock().now(),
            stop: None,
            redrive_count: 0,
        };
        Ok((record, loaded, input))
    }

    /// Runs a Standard execution in its own task, journaled to the store.
    fn spawn_standard(
        self: &Arc<Self>,
        machine: Arc<Machine>,
        record: ExecutionRecord,
        input: Value,
        resume: Option<Resume>,
    ) {
        let this = self.clone();
        let arn = record.arn.clone();
        let journal: Arc<dyn Journal> =
            Arc::new(StoreJournal { store: self.store.clone(), arn: arn.clone() });
        // Registered before the task can run, so that it is never left out of `running` (or
        // a stale handle left in) when it ends or parks at once.
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let task = tokio::spawn(async move {
            let start = Start {
                state_machine_name: record.state_machine_name.clone(),
                execution_name: record.name.clone(),
                start_time: Some(record.start),
                record_history: true,
                journal: Some(journal),
                resume: resume.clone(),
                ..Start::new(String::new(), String::new(), input)
            };
            match this.engine.run_parking(&machine, start, None, Some(this.park_after)).await {
                Progress::Ended(outcome) => {
                    this.count_finish(&outcome, record.start);
                    this.finish(&record.arn, outcome).await;
                    this.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&record.arn);
                }
                Progress::Parked { until, history, transitions } => {
                    this.metrics.transitions(transitions);
                    if !history.is_empty() {
                        if let Err(e) = this.store.commit(event_writes(&record.arn, history)).await {
                            tracing::error!(execution = %record.arn, error = %e, "The events of a parked execution could not be stored.");
                        }
                    }
                    // Out of `running` before the timer can wake it into a new task.
                    this.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&record.arn);
                    this.park(record.arn.clone(), until);
                }
            }
        });
        running.insert(arn, task.abort_handle());
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    fn count_finish(&self, o: &Outcome, start: DateTime<Utc>) {
        let ms = (self.engine.clock().now() - start).num_milliseconds().max(0) as u64;
        self.metrics.finished(o.status, o.transitions, ms);
    }

    async fn finish(&self, arn: &str, o: Outcome) {
        let mut writes = event_writes(arn, o.history);
        writes.push(Write::Finish {
            execution_arn: arn.to_string(),
            status: status_of(o.status),
            output: o.output.as_ref().map(|v| v.to_string()),
            error: o.error.clone(),
            cause: o.cause.clone(),
            stop: self.engine.clock().now(),
        });
        // A failed, timed-out or aborted execution keeps its frame: RedriveExecution
        // restarts it from there.
        if o.status == Status::Succeeded {
            writes.push(Write::DeleteFrames { execution_arn: arn.to_string(), prefix: String::new() });
        }
        if let Err(e) = self.store.commit(writes).await {
            tracing::error!(execution = %arn, error = %e, "The end of an execution could not be stored.");
        }
    }

    async fn run_express(&self, loaded: &Loaded, record: &ExecutionRecord, input: Value) -> Outcome {
        let express_id = record.arn.rsplit(':').next().and_then(|s| uuid::Uuid::parse_str(s).ok());
        if let Err(e) = self.express.create_execution(record.clone(), Vec::new()).await {
            tracing::warn!(execution = %record.arn, error = %e, "An Express execution could not be recorded.");
        }
        let start = Start {
            state_machine_name: record.state_machine_name.clone(),
            execution_name: record.name.clone(),
            express: true,
            express_id,
            record_history: true,
            start_time: Some(record.start),
            ..Start::new(String::new(), String::new(), input)
        };
        self.metrics.started();
        let o = self.engine.run(&loaded.machine, start, None).await;
        self.count_finish(&o, record.start);
        let mut o = o;
        let mut writes = event_writes(&record.arn, std::mem::take(&mut o.history));
        writes.push(Write::Finish {
            execution_arn: record.arn.clone(),
            status: status_of(o.status),
            output: o.output.as_ref().map(|v| v.to_string()),
            error: o.error.clone(),
            cause: o.cause.clone(),
            stop: self.engine.clock().now(),
        });
        let _ = self.express.commit(writes).await;
        o
    }

    /// StartSyncExecution: runs an Express execution and answers with its result.
    pub async fn start_sync_execution(&self, body: &Value) -> ApiResult {
        let (record, loaded, input) = self.new_execution(body)?;
        if loaded.record.machine_type != MachineType::Express {
            return Err(ApiError::new(
                "StateMachineTypeNotSupported",
                "This operation is not supported by this type of state machine",
            ));
        }
        let o = self.run_express(&loaded, &record, input).await;
        let mut out = json!({
            "executionArn": record.arn,
            "stateMachineArn": record.state_machine_arn,
            "name": record.name,
            "startDate": epoch(record.start),
            "stopDate": epoch(self.engine.clock().now()),
            "status": o.status.as_str(),
            "input": record.input,
            "inputDetails": {"included": true},
            "billingDetails": {"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": 100},
        });
        match o.output {
            Some(v) => {
                out["output"] = json!(v.to_string());
                out["outputDetails"] = json!({"included": true});
            }
            None => {
                if let Some(e) = o.error {
                    out["error"] = json!(e);
                }
                if let Some(c) = o.cause {
                    out["cause"] = json!(c);
                }
            }
        }
        Ok(out)
    }

    fn find_execution(&self, arn: &str) -> Result<(ExecutionRecord, bool), ApiError> {
        check_arn(arn, &["execution", "express"])?;
        if let Some(e) = self.store.get_execution(arn).map_err(ApiError::internal)? {
            return Ok((e, false));
        }
        if let Some(e) = self.express.get_execution(arn).map_err(ApiError::internal)? {
            return Ok((e, true));
        }
        Err(ApiError::new("ExecutionDoesNotExist", format!("Execution Does Not Exist: '{arn}'")))
    }

    pub fn describe_execution(&self, body: &Value) -> ApiResult {
        let (e, _) = self.find_execution(str_field(body, "executionArn")?)?;
        Ok(describe_exec(&e))
    }

    pub fn describe_state_machine_for_execution(&self, body: &Value) -> ApiResult {
        let (e, _) = self.find_execution(str_field(body, "executionArn")?)?;
        let l = self.loaded(&e.state_machine_arn)?;
        let mut d = describe_machine(&l.record);
        d["updateDate"] = epoch(l.record.updated);
        // The definition the execution runs, which an update may have replaced since.
        if let Some((_, text)) = self.store.definition_of(&e.arn).map_err(ApiError::internal)? {
            d["definition"] = json!(text);
        }
        Ok(d)
    }

    pub fn list_executions(&self, body: &Value) -> ApiResult {
        let sm = str_field(body, "stateMachineArn")?;
        let l = self.loaded(sm)?;
        // The request checks held the filter to AWS's enum.
        let status = body.get("statusFilter").and_then(Value::as_str).and_then(ExecutionStatus::parse);
        let limit = page_size(body);
        let token = body.get("nextToken").and_then(Value::as_str);
        let store = if l.record.machine_type == MachineType::Express { &self.express } else { &self.store };
        let (items, next) = store.list_executions(sm, status, token, limit).map_err(|e| match e {
            crate::store::StoreError::BadToken(_) => invalid_token(),
            other => ApiError::internal(other),
        })?;
        let list: Vec<Value> = items
            .iter()
            .map(|e| {
                let mut v = json!({
                    "executionArn": e.arn, "stateMachineArn": e.state_machine_arn, "name": e.name,
                    "status": e.status.as_str(), "startDate": epoch(e.start),
                });
                if let Some(s) = e.stop {
                    v["stopDate"] = epoch(s);
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

    pub fn get_execution_history(&self, body: &Value) -> ApiResult {
        let arn = str_field(body, "executionArn")?;
        let (_, express) = self.find_execution(arn)?;
        let store = if express { &self.express } else { &self.store };
        let reverse = body.get("reverseOrder").and_then(Value::as_bool).unwrap_or(false);
        let include = body.get("includeExecutionData").and_then(Value::as_bool).unwrap_or(true);
        let limit = page_size(body);
        let after = match body.get("nextToken").and_then(Value::as_str) {
            Some(t) => t.parse().map_err(|_| invalid_token())?,
            None if reverse => u64::MAX,
            None => 0,
        };
        let events = store.history(arn, after, limit + 1, reverse).map_err(ApiError::internal)?;
        let more = events.len() > limit;
        let events: Vec<Value> = events.into_iter().take(limit).map(|e| api_event(e, include)).collect();
        let mut out = json!({"events": events});
        if more {
            if let Some(last) = out["events"].as_array().and_then(|a| a.last()).and_then(|e| e["id"].as_u64())
            {
                out["nextToken"] = json!(last.to_string());
            }
        }
        Ok(out)
    }

    pub async fn stop_execution(&self, body: &Value) -> ApiResult {
        let arn = str_field(body, "executionArn")?;
        let (e, express) = self.find_execution(arn)?;
        if express {
            return Err(ApiError::new(
                "ValidationException",
                "Express executions cannot be stopped through this API",
            ));
        }
        if e.status != ExecutionStatus::Running {
            return Err(ApiError::new("ValidationException", format!("Execution is not running: '{arn}'")));
        }
        if let Some(h) = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(arn) {
            h.abort();
        }
        let now = self.engine.clock().now();
        let error = body.get("error").and_then(Value::as_str).map(str::to_string);
        let cause = body.get("cause").and_then(Value::as_str).map(str::to_string);
        let last = self.store.last_event_id(arn).map_err(ApiError::internal)?;
        let mut details = Map::new();
        if let Some(er) = &error {
            details.insert("error".into(), json!(er));
        }
        if let Some(c) = &cause {
            details.insert("cause".into(), json!(c));
        }
        let event = Event {
            id: last + 1,
            previous_event_id: last,
            timestamp: now,
            kind: "ExecutionAborted",
            details: Some(("executionAbortedEventDetails", Value::Object(details))),
        };
        self.store
            .commit(vec![
                Write::Event { execution_arn: arn.to_string(), event },
                Write::Finish {
                    execution_arn: arn.to_string(),
                    status: ExecutionStatus::Aborted,
                    output: None,
                    error,
                    cause,
                    stop: now,
                },
            ])
            .await
            .map_err(ApiError::internal)?;
        Ok(json!({"stopDate": epoch(now)}))
    }

    /// RedriveExecution: a FAILED, TIMED_OUT or ABORTED Standard execution starts again at
    /// the top-level state where it stopped, with that state's input and the variables.
    pub async fn redrive_execution(self: &Arc<Self>, body: &Value) -> ApiResult {
        let arn = str_field(body, "executionArn")?;
        let (record, express) = self.find_execution(arn)?;
        let not_redrivable = |why: &str| {
            ApiError::new("ExecutionNotRedrivable", format!("Execution is not redrivable: {why}"))
        };
        if express {
            return Err(not_redrivable("Express executions cannot be redriven"));
        }
        if !matches!(
            record.status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
        ) {
            return Err(not_redrivable(&format!("its status is {}", record.status.as_str())));
        }
        // The definition it started with, as AWS redrives: not the state machine's newer one.
        let machine = self.machine_of(&record)?.ok_or_else(|| {
            ApiError::new(
                "StateMachineDoesNotExist",
                format!("State Machine Does Not Exist: '{}'", record.state_machine_arn),
            )
        })?;
        let frames = self.store.frames(arn).map_err(ApiError::internal)?;
        let last = self.store.last_event_id(arn).map_err(ApiError::internal)?;
        let now = self.engine.clock().now();
        let redrive_count = record.redrive_count + 1;
        let event = Event {
            id: last + 1,
            previous_event_id: last,
            timestamp: now,
            kind: "ExecutionRedriven",
            details: Some(("executionRedrivenEventDetails", json!({"redriveCount": redrive_count}))),
        };
        self.store
            .commit(vec![
                Write::Redrive { execution_arn: arn.to_string() },
                Write::Event { execution_arn: arn.to_string(), event },
            ])
            .await
            .map_err(ApiError::internal)?;
        // Every machine that had not finished enters its state anew; finished branches and
        // iterations keep their results.
        let resume = Resume {
            frames: frames.into_iter().map(|f| (f.path, f.data)).collect(),
            last_event_id: last + 1,
            redrive: true,
        };
        let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
        self.metrics.started();
        self.spawn_standard(machine, record, input, Some(resume));
        Ok(json!({"redriveDate": epoch(now)}))
    }

    pub fn tag_resource(&self, body: &Value) -> ApiResult {
        let arn = str_field(body, "resourceArn")?;
        check_arn(arn, &["stateMachine", "activity"])?;
        let l = self
            .loaded(arn)
            .map_err(|_| ApiError::new("ResourceNotFound", format!("Resource not found: '{arn}'")))?;
        let mut record = l.record.clone();
        for t in body.get("tags").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(k), Some(v)) =
                (t.get("key").and_then(Value::as_str), t.get("value").and_then(Value::as_str))
            {
                record.tags.insert(k.to_string(), v.to_string());
            }
        }
        self.put_state_machine(record)?;
        Ok(json!({}))
    }

    pub fn untag_resource(&self, body: &Value) -> ApiResult {
        let arn = str_field(body, "resourceArn")?;
        check_arn(arn, &["stateMachine", "activity"])?;
        let l = self
            .loaded(arn)
            .map_err(|_| ApiError::new("ResourceNotFound", format!("Resource not found: '{arn}'")))?;
        let mut record = l.record.clone();
        for k in body.get("tagKeys").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
        {
            record.tags.remove(k);
        }
        self.put_state_machine(record)?;
        Ok(json!({}))
    }

    pub fn list_tags_for_resource(&self, body: &Value) -> ApiResult {
        let arn = str_field(body, "resourceArn")?;
        check_arn(arn, &["stateMachine", "activity"])?;
        let l = self
            .loaded(arn)
            .map_err(|_| ApiError::new("ResourceNotFound", format!("Resource not found: '{arn}'")))?;
        let tags: Vec<Value> = l.record.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        Ok(json!({"tags": tags}))
    }

    /// Resumes every Standard execution that was RUNNING when the daemon stopped. After a
    /// stop without a clean shutdown (`unclean`: a crash, kill -9, the OOM killer), each one
    /// that was at work on a step counts a resume there, and one whose count passes
    /// `storage.resume_limit` is failed instead: the step may be what brought the daemon down.
    pub fn resume_all(self: &Arc<Self>, unclean: bool) -> Result<usize, ApiError> {
        let running = self.store.running().map_err(ApiError::internal)?;
        let n = running.len();
        for record in running {
            self.resume(record, unclean)?;
        }
        Ok(n)
    }

    /// Goes on with a RUNNING Standard execution from what the store holds of it: at once, or
    /// parked until its top level's timer if that is further off than `park_after`.
    /// `count`: the daemon stopped uncleanly, so a resume at work on a step is counted.
    fn resume(self: &Arc<Self>, record: ExecutionRecord, count: bool) -> Result<(), ApiError> {
        let Some(machine) = self.machine_of(&record)? else {
            tracing::warn!(execution = %record.arn, "A running execution's state machine is gone; it stays RUNNING.");
            return Ok(());
        };
        let frames = self.store.frames(&record.arn).map_err(ApiError::internal)?;
        let top = frames
            .iter()
            .find(|f| f.path.is_empty())
            .and_then(|f| <engine::Frame as serde::Deserialize>::deserialize(&f.data).ok());
        let wake_at = top.as_ref().and_then(|f| f.wake_at);
        if let Some(t) = wake_at {
            let deadline = machine.timeout_seconds.map(|s| crate::time::after(record.start, s));
            let until = deadline.map_or(t, |d| d.min(t));
            if until - self.engine.clock().now() > self.park_after {
                self.park(record.arn, until);
                return Ok(());
            }
        }
        let last_event_id = self.store.last_event_id(&record.arn).map_err(ApiError::internal)?.max(1);
        // An execution asleep until a time still to come was not at work when the daemon
        // stopped: its resume is not counted.
        let asleep = wake_at.is_some_and(|t| t > self.engine.clock().now());
        if count && !asleep && self.resume_limit > 0 {
            let n = self.store.count_resume(&record.arn, last_event_id).map_err(ApiError::internal)?;
            if n > self.resume_limit {
                let state = top.as_ref().and_then(|f| machine.states.get(f.state).map(|s| (s, f)));
                return self.fail_stuck(record, state, n - 1, last_event_id);
            }
        }
        // Without a top-level frame it crashed before its first state was journaled: it
        // starts at StartAt, after the events it has.
        let resume = Resume {
            frames: frames.into_iter().map(|f| (f.path, f.data)).collect(),
            last_event_id,
            redrive: false,
        };
        let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
        tracing::debug!(execution = %record.arn, frames = resume.frames.len(), "Resuming an execution.");
        self.spawn_standard(machine, record, input, Some(resume));
        Ok(())
    }

    /// Fails an execution that the daemon stopped under `stops` times in a row at the same
    /// place, with its frames kept so that a redrive can go on from there.
    fn fail_stuck(
        &self,
        record: ExecutionRecord,
        state: Option<(&crate::asl::compile::State, &engine::Frame)>,
        stops: u32,
        last_event_id: u64,
    ) -> Result<(), ApiError> {
        let place = match state {
            Some((s, f)) => format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). ",
                s.name,
                f.entered_event_id.unwrap_or(f.last_event_id)
            ),
            None => String::new(),
        };
        let cause = format!(
            "{place}The daemon stopped without a clean shutdown {stops} times in a row while the \
             execution was at this point (storage.resume_limit is {}); it is failed rather than \
             run a step that may be what brings the daemon down.",
            self.resume_limit
        );
        tracing::error!(execution = %record.arn, stops, "An execution was failed instead of being resumed again.");
        let now = self.engine.clock().now();
        let failed = Event {
            id: last_event_id + 1,
            previous_event_id: last_event_id,
            timestamp: now,
            kind: "ExecutionFailed",
            details: Some((
                "executionFailedEventDetails",
                json!({"error": crate::error::names::RUNTIME, "cause": cause}),
            )),
        };
        let mut writes = event_writes(&record.arn, vec![failed]);
        writes.push(Write::Finish {
            execution_arn: record.arn.clone(),
            status: ExecutionStatus::Failed,
            output: None,
            error: Some(crate::error::names::RUNTIME.to_string()),
            cause: Some(cause),
            stop: now,
        });
        let ms = (now - record.start).num_milliseconds().max(0) as u64;
        self.metrics.finished(Status::Failed, 0, ms);
        let store = self.store.clone();
        let arn = record.arn;
        tokio::spawn(async move {
            if let Err(e) = store.commit(writes).await {
                tracing::error!(execution = %arn, error = %e, "The end of an execution could not be stored.");
            }
        });
        Ok(())
    }

    /// The machine a Standard execution runs: the definition recorded when it started,
    /// which its state machine may have changed or lost since (AWS's executions keep theirs
    /// too; the journal's state indices are that definition's), or, for an execution stored
    /// before definitions were recorded, the state machine's current one.
    fn machine_of(&self, record: &ExecutionRecord) -> Result<Option<Arc<Machine>>, ApiError> {
        let current = self.loaded(&record.state_machine_arn).ok();
        let Some((hash, text)) = self.store.definition_of(&record.arn).map_err(ApiError::internal)? else {
            return Ok(current.map(|l| l.machine.clone()));
        };
        if let Some(l) = current.filter(|l| l.hash == hash) {
            return Ok(Some(l.machine.clone()));
        }
        let mut old = self.old_definitions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = old.get(&hash) {
            return Ok(Some(m.clone()));
        }
        let m = Arc::new(Self::compile(&text, MachineType::Standard)?);
        old.insert(hash, m.clone());
        Ok(Some(m))
    }
}

/// Appends `events` to an execution's history.
fn event_writes(arn: &str, events: Vec<Event>) -> Vec<Write> {
    events.into_iter().map(|event| Write::Event { execution_arn: arn.to_string(), event }).collect()
}

fn status_of(s: Status) -> ExecutionStatus {
    match s {
        Status::Succeeded => ExecutionStatus::Succeeded,
        Status::Failed => ExecutionStatus::Failed,
        Status::TimedOut => ExecutionStatus::TimedOut,
        Status::Aborted => ExecutionStatus::Aborted,
    }
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

/// Journals a Standard execution's progress to the store (group-committed).
struct StoreJournal {
    store: Arc<dyn Store>,
    arn: String,
}

impl Journal for StoreJournal {
    fn checkpoint(&self, events: Vec<Event>, frames: Vec<FrameWrite>) -> BoxFuture<'static, ()> {
        let mut writes: Vec<Write> = event_writes(&self.arn, events);
        writes.extend(frames.into_iter().map(|f| match f {
            FrameWrite::Put { path, data } => {
                Write::Frame(Frame { execution_arn: self.arn.clone(), path, data })
            }
            FrameWrite::Remove { path } => {
                Write::DeleteFrames { execution_arn: self.arn.clone(), prefix: path }
            }
        }));
        let commit = self.store.commit(writes);
        let arn = self.arn.clone();
        Box::pin(async move {
            if let Err(e) = commit.await {
                tracing::error!(execution = %arn, error = %e, "A checkpoint could not be stored.");
            }
        })
    }
}

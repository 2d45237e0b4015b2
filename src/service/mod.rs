//! The Step Functions service behind the API and the triggers, split along its jobs:
//! [`registry`] keeps the state machines (from the workflows folder and from
//! CreateStateMachine), [`start`] is the one door through which the API and every trigger
//! start executions (the [`Starter`]), and [`run`] runs them: Standard ones journaled to the
//! store so a restarted daemon resumes them (parking long waits there), Express ones in
//! memory. The JSON shapes of the AWS API live in `api`, not here; what fails here fails
//! with AWS's exception names ([`ApiError`]).

pub mod activities;
pub mod callbacks;
pub mod children;
pub mod cluster;
pub mod registry;
pub mod run;
pub mod start;

pub use registry::Loaded;
pub use start::{Ended, StartRequest, Started, Starter};

use crate::asl::Machine;
use crate::engine::{Engine, Status};
use crate::store::{Event, ExecutionRecord, ExecutionStatus, Page, Store, StoreError, Write};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
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

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::new("InternalServerError", e.to_string())
    }
}

pub struct Service {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    /// Express executions and their histories, in memory.
    express: Arc<dyn Store>,
    machines: RwLock<HashMap<String, Arc<Loaded>>>,
    /// The state machines that came from the workflows folder (by ARN): a reload removes
    /// those whose file is gone, and leaves the ones created through the API alone.
    from_folder: Mutex<HashSet<String>>,
    /// Standard executions in memory (running, or being resumed): how to reach them.
    running: Mutex<HashMap<String, Live>>,
    /// Callers waiting for a Standard execution to end (sync HTTP routes), by ARN.
    waiters: Mutex<HashMap<String, Vec<tokio::sync::oneshot::Sender<Ended>>>>,
    metrics: crate::metrics::Metrics,
    /// Top-level sleeps longer than this park the execution (`storage.park_after_seconds`).
    park_after: chrono::Duration,
    /// Unclean stops in a row at one place after which an execution is failed
    /// (`storage.resume_limit`; 0: never).
    resume_limit: u32,
    /// Wakes the timer task when an execution parks.
    timers: tokio::sync::Notify,
    /// The activities' queues, which GetActivityTask polls.
    activities: Arc<crate::connectors::activity::Activities>,
    /// Cancelled at shutdown: the workers' long polls answer at once.
    polls_end: crate::connectors::CancellationToken,
    /// Definitions that executions started with and their state machines no longer have,
    /// compiled once each, by hash.
    old_definitions: Mutex<HashMap<String, Arc<Machine>>>,
}

/// A Standard execution in memory. Its messages are sent under the `running` lock, and it
/// leaves the map under that lock only with its inbox empty, so no message is lost to an
/// execution that parks or ends meanwhile.
struct Live {
    inbox: tokio::sync::mpsc::UnboundedSender<crate::engine::Message>,
    /// `None` while it is being read back from the store.
    task: Option<AbortHandle>,
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

/// AWS's check of an ARN's form, made before the resource is looked up: `kinds` are the
/// resource types (`stateMachine`, `execution`, ...) the operation takes.
pub fn check_arn(arn: &str, kinds: &[&str]) -> Result<(), ApiError> {
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
pub fn invalid_token() -> ApiError {
    ApiError::new("InvalidToken", "Invalid Token: 'Invalid token'")
}

impl Service {
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        express: Arc<dyn Store>,
        park_after: chrono::Duration,
        resume_limit: u32,
        activities: Arc<crate::connectors::activity::Activities>,
    ) -> Arc<Self> {
        Arc::new(Service {
            engine,
            store,
            express,
            machines: RwLock::default(),
            from_folder: Mutex::default(),
            running: Mutex::default(),
            waiters: Mutex::default(),
            metrics: crate::metrics::Metrics::default(),
            park_after,
            resume_limit,
            timers: tokio::sync::Notify::new(),
            activities,
            polls_end: Default::default(),
            old_definitions: Mutex::default(),
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// How many Standard executions are parked in the store.
    pub fn parked(&self) -> Result<u64, ApiError> {
        self.store.parked().map_err(ApiError::internal)
    }

    /// The handle through which the API and the triggers start executions.
    pub fn starter(self: &Arc<Self>) -> Starter {
        Starter::new(self.clone())
    }

    /// An execution by ARN, and whether it is an Express one (kept in memory).
    pub fn find_execution(&self, arn: &str) -> Result<(ExecutionRecord, bool), ApiError> {
        check_arn(arn, &["execution", "express"])?;
        if let Some(e) = self.store.get_execution(arn).map_err(ApiError::internal)? {
            return Ok((e, false));
        }
        if let Some(e) = self.express.get_execution(arn).map_err(ApiError::internal)? {
            return Ok((e, true));
        }
        Err(ApiError::new("ExecutionDoesNotExist", format!("Execution Does Not Exist: '{arn}'")))
    }

    /// A page of a state machine's executions, newest first.
    pub fn list_executions(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
        token: Option<&str>,
        limit: usize,
    ) -> Result<Page<ExecutionRecord>, ApiError> {
        let l = self.state_machine(state_machine_arn)?;
        let store = if l.record.machine_type == crate::store::MachineType::Express {
            &self.express
        } else {
            &self.store
        };
        store.list_executions(state_machine_arn, status, token, limit).map_err(|e| match e {
            StoreError::BadToken(_) => invalid_token(),
            other => ApiError::internal(other),
        })
    }

    /// History events of an execution after `after` (before it with `reverse`), at most
    /// `limit`, as the store keeps them.
    pub fn history(
        &self,
        arn: &str,
        after: u64,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Value>, ApiError> {
        let (_, express) = self.find_execution(arn)?;
        let store = if express { &self.express } else { &self.store };
        store.history(arn, after, limit, reverse).map_err(ApiError::internal)
    }

    /// The definition a Standard execution runs, when one was recorded.
    pub fn definition_of(&self, execution_arn: &str) -> Result<Option<String>, ApiError> {
        Ok(self.store.definition_of(execution_arn).map_err(ApiError::internal)?.map(|(_, text)| text))
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

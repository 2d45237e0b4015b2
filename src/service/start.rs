//! The one door to start executions: the AWS API (StartExecution, StartSyncExecution) and
//! every trigger (HTTP routes, MQTT topics, schedules) call the [`Starter`] with a typed
//! request, never an API request body. A start is accepted once it is durable: for a
//! Standard execution the `ExecutionStarted` event is on disk when `start` returns, so a
//! trigger may acknowledge its event then and lose nothing.

use super::{check_name, ApiError, Service};
use crate::engine::Resume;
use crate::store::{Created, Event, ExecutionRecord, ExecutionStatus, MachineType, ParentLink, Write};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// What to start: a state machine by ARN, an execution name (a UUID when absent), an input.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub state_machine_arn: String,
    pub name: Option<String>,
    pub input: Value,
    /// The `.sync` Task of another execution that waits for this one's end.
    pub parent: Option<ParentLink>,
}

/// A start that was accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub execution_arn: String,
    pub start_date: DateTime<Utc>,
    /// `None`: this call started it. `Some(status)`: an execution of that name with the same
    /// input existed already and nothing was started (a redelivered event, a retried call).
    pub existing: Option<ExecutionStatus>,
}

/// An execution as it ended: its record with the final status, output, error and cause.
pub type Ended = ExecutionRecord;

/// The outcome of a start that waits.
#[derive(Debug, Clone)]
pub enum Waited {
    Ended(Box<Ended>),
    /// Still running when the wait was over; it goes on.
    Running(Started),
}

/// The handle through which executions are started.
#[derive(Clone)]
pub struct Starter {
    service: Arc<Service>,
}

impl Starter {
    pub(super) fn new(service: Arc<Service>) -> Self {
        Starter { service }
    }

    /// The ARN of the state machine `name`.
    pub fn state_machine_arn(&self, name: &str) -> String {
        self.service.engine.state_machine_arn(name)
    }

    /// The type of a state machine, or AWS's error when there is none.
    pub fn machine_type(&self, arn: &str) -> Result<MachineType, ApiError> {
        Ok(self.service.state_machine(arn)?.record.machine_type)
    }

    /// The largest input a start takes, in bytes of JSON text (`limits.payload_bytes`).
    pub fn payload_limit(&self) -> usize {
        self.service.engine.limits().payload_bytes
    }

    /// Starts an execution; it runs in its own task. A Standard one is on disk when this
    /// returns. The same name with the same input is the same execution (`existing`); with
    /// another input it is `ExecutionAlreadyExists`.
    pub async fn start(&self, req: StartRequest) -> Result<Started, ApiError> {
        let (record, loaded, input) = self.service.new_execution(req)?;
        let started = Started { execution_arn: record.arn.clone(), start_date: record.start, existing: None };
        if loaded.record.machine_type == MachineType::Express {
            let this = self.service.clone();
            tokio::spawn(async move { this.run_express(&loaded, record, input).await });
            return Ok(started);
        }
        if let Some(existing) = self.create_standard(&record, &loaded).await? {
            return Ok(existing);
        }
        self.service.metrics.started();
        self.service.spawn_standard(loaded.machine.clone(), record, input, Some(Resume::fresh(1)), None);
        Ok(started)
    }

    /// Starts an execution and waits for its end, for at most `wait` (no limit: `None`).
    /// An Express execution runs in this task; a Standard one runs durably as `start` runs
    /// it, and the wait only watches it.
    pub async fn start_sync(&self, req: StartRequest, wait: Option<Duration>) -> Result<Waited, ApiError> {
        let (record, loaded, input) = self.service.new_execution(req)?;
        if loaded.record.machine_type == MachineType::Express {
            let run = self.service.run_express(&loaded, record.clone(), input);
            let ended = match wait {
                None => run.await,
                Some(d) => match tokio::time::timeout(d, run).await {
                    Ok(ended) => ended,
                    // The execution is cut short with the wait: an Express execution lives in
                    // the request that runs it, as AWS's StartSyncExecution does.
                    Err(_) => {
                        let started =
                            Started { execution_arn: record.arn, start_date: record.start, existing: None };
                        return Ok(Waited::Running(started));
                    }
                },
            };
            return Ok(Waited::Ended(Box::new(ended)));
        }
        let ended = self.service.watch(&record.arn);
        let created = match self.create_standard(&record, &loaded).await {
            Ok(c) => c,
            Err(e) => {
                drop(ended);
                self.service.unwatch(&record.arn);
                return Err(e);
            }
        };
        let started = match created {
            Some(existing) => {
                if let Some(e) = self.service.ended_record(&existing.execution_arn)? {
                    return Ok(Waited::Ended(Box::new(e)));
                }
                existing
            }
            None => {
                self.service.metrics.started();
                self.service.spawn_standard(
                    loaded.machine.clone(),
                    record.clone(),
                    input,
                    Some(Resume::fresh(1)),
                    None,
                );
                Started { execution_arn: record.arn.clone(), start_date: record.start, existing: None }
            }
        };
        let ended = self.service.until_ended(&started.execution_arn, ended);
        let got = match wait {
            None => ended.await,
            Some(d) => tokio::time::timeout(d, ended).await.ok().flatten(),
        };
        Ok(match got {
            Some(e) => Waited::Ended(Box::new(e)),
            None => {
                // Nobody waits any more: an execution that runs for days must not keep the
                // gone caller's place.
                self.service.unwatch(&started.execution_arn);
                Waited::Running(started)
            }
        })
    }

    /// Creates a Standard execution in the store with its first event and its definition;
    /// `Some` when one of that name existed already with the same input.
    async fn create_standard(
        &self,
        record: &ExecutionRecord,
        loaded: &super::Loaded,
    ) -> Result<Option<Started>, ApiError> {
        let started = crate::store::Details::payload_text(None, false, record.input.clone())
            .with("roleArn", Value::String(loaded.record.role_arn.clone()));
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
        let created = self
            .service
            .store
            .create_execution(record.clone(), vec![first, definition])
            .await
            .map_err(ApiError::internal)?;
        match created {
            Created::New => Ok(None),
            Created::Existing(e) if e.input == record.input => {
                Ok(Some(Started { execution_arn: e.arn, start_date: e.start, existing: Some(e.status) }))
            }
            Created::Existing(e) => {
                Err(ApiError::new("ExecutionAlreadyExists", format!("Execution Already Exists: '{}'", e.arn)))
            }
        }
    }
}

impl Service {
    /// The record of a new execution of `req`, its state machine and its parsed input, after
    /// AWS's checks of the name and the input's size.
    fn new_execution(
        &self,
        req: StartRequest,
    ) -> Result<(ExecutionRecord, Arc<super::Loaded>, Value), ApiError> {
        let loaded = self.state_machine(&req.state_machine_arn)?;
        let name = match req.name {
            Some(n) => {
                check_name(&n)?;
                n
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let text = serde_json::to_string(&req.input).map_err(ApiError::internal)?;
        let limit = self.engine.limits().payload_bytes;
        if text.len() > limit {
            return Err(ApiError::new(
                "InvalidExecutionInput",
                format!("Invalid State Machine Execution Input: 'The input is larger than {limit} bytes (limits.payload_bytes)'"),
            ));
        }
        let express_id = (loaded.record.machine_type == MachineType::Express).then(uuid::Uuid::new_v4);
        let record = ExecutionRecord {
            arn: self.engine.execution_arn(&loaded.record.name, &name, express_id),
            name,
            state_machine_arn: loaded.record.arn.clone(),
            state_machine_name: loaded.record.name.clone(),
            status: ExecutionStatus::Running,
            input: text,
            output: None,
            error: None,
            cause: None,
            start: self.engine.clock().now(),
            stop: None,
            redrive_count: 0,
            parent: req.parent,
        };
        Ok((record, loaded, req.input))
    }

    /// The record of a Standard execution if it has ended.
    pub(super) fn ended_record(&self, arn: &str) -> Result<Option<Ended>, ApiError> {
        Ok(self
            .store
            .get_execution(arn)
            .map_err(ApiError::internal)?
            .filter(|e| e.status != ExecutionStatus::Running))
    }

    /// A future that resolves with a Standard execution's record when it ends. Taken before
    /// the execution can end, so the end is never missed.
    pub(super) fn watch(&self, arn: &str) -> tokio::sync::oneshot::Receiver<Ended> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).entry(arn.to_string()).or_default().push(tx);
        rx
    }

    /// The end of a Standard execution, told by `ended` (from [`Service::watch`]); where
    /// daemons share the store, the execution may end on another one (it parked and was
    /// read back there), so the store is asked too, every half second.
    pub(super) async fn until_ended(
        &self,
        arn: &str,
        mut ended: tokio::sync::oneshot::Receiver<Ended>,
    ) -> Option<Ended> {
        if self.cluster().is_none() {
            return ended.await.ok();
        }
        loop {
            match tokio::time::timeout(Duration::from_millis(500), &mut ended).await {
                Ok(r) => return r.ok(),
                Err(_) => {
                    if let Ok(Some(e)) = self.ended_record(arn) {
                        self.unwatch(arn);
                        return Some(e);
                    }
                }
            }
        }
    }

    /// Forgets the waiters of an execution that have stopped waiting.
    pub(super) fn unwatch(&self, arn: &str) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = waiters.get_mut(arn) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                waiters.remove(arn);
            }
        }
    }

    /// Tells those who wait for an execution that it has ended.
    pub(super) fn ended(self: &Arc<Self>, record: &Ended) {
        let waiting = self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&record.arn);
        for tx in waiting.into_iter().flatten() {
            let _ = tx.send(record.clone());
        }
        self.ended_in_family(record);
    }
}

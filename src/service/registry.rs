//! The state machines the service runs, by ARN: those of the workflows folder and those
//! created through the API, each compiled once when it is put. An execution keeps the
//! definition it started with; [`Service::machine_of`] finds it again after an update, a
//! deletion or a restart.

use super::{check_arn, ApiError, Service};
use crate::asl::validate::{self, MachineType as ValidateType};
use crate::asl::Machine;
use crate::store::{ExecutionRecord, MachineType, StateMachineRecord};
use std::collections::HashSet;
use std::sync::Arc;

/// A state machine ready to run.
pub struct Loaded {
    pub record: StateMachineRecord,
    pub machine: Arc<Machine>,
    /// Express: whether each execution's history is kept in the in-memory ring
    /// (`[workflow.NAME] history`; a Standard execution's history is its journal, always).
    pub history: bool,
    /// The definition's text and its SHA-256, recorded with each Standard execution.
    pub(super) definition: Arc<str>,
    pub(super) hash: String,
}

impl Loaded {
    pub(super) fn new(record: StateMachineRecord, machine: Arc<Machine>, history: bool) -> Arc<Self> {
        let definition: Arc<str> = Arc::from(record.definition.as_str());
        Arc::new(Loaded { hash: definition_hash(&definition), definition, record, machine, history })
    }
}

fn definition_hash(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A state machine of the workflows folder, compiled, with its settings.
pub struct FolderMachine {
    pub record: StateMachineRecord,
    pub machine: Arc<Machine>,
    pub history: bool,
}

/// Checks a definition as AWS checks one of `kind` and compiles it; the error is AWS's
/// InvalidDefinition with every problem found.
pub fn compile(definition: &str, kind: MachineType) -> Result<Machine, ApiError> {
    let v = validate::parse_text(definition).map_err(|e| {
        ApiError::new("InvalidDefinition", format!("Invalid State Machine Definition: '{}'", e.diagnostic()))
    })?;
    let vt = if kind == MachineType::Express { ValidateType::Express } else { ValidateType::Standard };
    let diags = validate::validate_for(&v, vt);
    if diags.iter().any(|d| d.severity == validate::Severity::Error) {
        return Err(ApiError::new("InvalidDefinition", validate::cause(&diags)));
    }
    crate::asl::compile(&v).map_err(|d| ApiError::new("InvalidDefinition", validate::cause(&d)))
}

impl Service {
    /// Registers a state machine (from the workflows folder or the API) and stores it.
    pub fn put_state_machine(&self, record: StateMachineRecord) -> Result<(), ApiError> {
        let machine = Arc::new(compile(&record.definition, record.machine_type)?);
        // A machine of the folder that the API updates (tags) keeps its history setting.
        let history = self.state_machine(&record.arn).map_or(true, |l| l.history);
        self.put_compiled(FolderMachine { record, machine, history })
    }

    /// Registers a state machine whose definition the caller has compiled already.
    pub fn put_compiled(&self, m: FolderMachine) -> Result<(), ApiError> {
        self.store.put_state_machine(&m.record).map_err(ApiError::internal)?;
        let arn = m.record.arn.clone();
        self.machines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(arn, Loaded::new(m.record, m.machine, m.history));
        Ok(())
    }

    /// Makes `machines` (compiled) the state machines of the workflows folder: each is put
    /// unless it is unchanged, and those that came from the folder before and are not among
    /// them any more are removed. Machines created through the API are left alone.
    pub fn replace_folder(&self, machines: Vec<FolderMachine>) -> Result<(), ApiError> {
        let arns: HashSet<String> = machines.iter().map(|m| m.record.arn.clone()).collect();
        for mut m in machines {
            if let Ok(old) = self.state_machine(&m.record.arn) {
                if old.record.definition == m.record.definition
                    && old.record.machine_type == m.record.machine_type
                    && old.history == m.history
                {
                    continue;
                }
                // An edited file is an update: the machine keeps its creation date and tags.
                m.record.created = old.record.created;
                m.record.tags = old.record.tags.clone();
                m.record.revision = old.record.revision + 1;
            }
            self.put_compiled(m)?;
        }
        let mut folder = self.from_folder.lock().unwrap_or_else(|e| e.into_inner());
        for gone in folder.difference(&arns) {
            self.machines.write().unwrap_or_else(|e| e.into_inner()).remove(gone);
            self.store.delete_state_machine(gone).map_err(ApiError::internal)?;
        }
        *folder = arns;
        Ok(())
    }

    /// Makes the state machines in memory those the store holds: at start, the ones created
    /// through the API earlier; where daemons share the store, also those another daemon
    /// created, updated or deleted since. One that is unchanged is not compiled again; one
    /// that no longer compiles is skipped. Returns how many are loaded.
    pub fn load_stored(&self) -> Result<usize, ApiError> {
        let stored = self.store.list_state_machines().map_err(ApiError::internal)?;
        let mut machines = self.machines.write().unwrap_or_else(|e| e.into_inner());
        let keep: HashSet<&str> = stored.iter().map(|r| r.arn.as_str()).collect();
        machines.retain(|arn, _| keep.contains(arn.as_str()));
        for record in stored {
            let history = match machines.get(&record.arn) {
                Some(l) if l.record == record => continue,
                Some(l) => l.history,
                None => true,
            };
            match compile(&record.definition, record.machine_type) {
                Ok(m) => {
                    let arn = record.arn.clone();
                    machines.insert(arn, Loaded::new(record, Arc::new(m), history));
                }
                Err(e) => {
                    tracing::warn!(state_machine = %record.name, error = %e.message, "A stored state machine no longer compiles; it is skipped.")
                }
            }
        }
        Ok(machines.len())
    }

    /// A state machine by ARN.
    pub fn state_machine(&self, arn: &str) -> Result<Arc<Loaded>, ApiError> {
        check_arn(arn, &["stateMachine"])?;
        if let Some(l) = self.machines.read().unwrap_or_else(|e| e.into_inner()).get(arn).cloned() {
            return Ok(l);
        }
        // Created through another daemon that shares the store: usable here at once.
        if self.cluster().is_some() {
            if let Some(record) = self.store.get_state_machine(arn).map_err(ApiError::internal)? {
                let m = compile(&record.definition, record.machine_type)?;
                let l = Loaded::new(record, Arc::new(m), true);
                self.machines.write().unwrap_or_else(|e| e.into_inner()).insert(arn.to_string(), l.clone());
                return Ok(l);
            }
        }
        Err(ApiError::new("StateMachineDoesNotExist", format!("State Machine Does Not Exist: '{arn}'")))
    }

    /// Every state machine, in no order.
    pub fn state_machines(&self) -> Vec<Arc<Loaded>> {
        self.machines.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    pub fn delete_state_machine(&self, arn: &str) -> Result<(), ApiError> {
        check_arn(arn, &["stateMachine"])?;
        self.machines.write().unwrap_or_else(|e| e.into_inner()).remove(arn);
        self.from_folder.lock().unwrap_or_else(|e| e.into_inner()).remove(arn);
        self.store.delete_state_machine(arn).map_err(ApiError::internal)?;
        Ok(())
    }

    /// The machine a Standard execution runs: the definition recorded when it started,
    /// which its state machine may have changed or lost since (AWS's executions keep theirs
    /// too; the journal's state indices are that definition's), or, for an execution stored
    /// before definitions were recorded, the state machine's current one.
    pub(super) fn machine_of(&self, record: &ExecutionRecord) -> Result<Option<Arc<Machine>>, ApiError> {
        let current = self.state_machine(&record.state_machine_arn).ok();
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
        let m = Arc::new(compile(&text, MachineType::Standard)?);
        old.insert(hash, m.clone());
        Ok(Some(m))
    }
}

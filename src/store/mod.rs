//! Durable state: state machines, executions, their history events and the frames an
//! engine resumes from after a restart, the parked executions' timers, activities and the
//! activity tasks no worker has taken yet. The engine writes through [`Store::commit`],
//! whose writes from many executions are grouped into one transaction (group commit); the
//! API reads executions and histories back. `sqlite` is the embedded default; `memory`
//! serves Express executions and tests.
//!
//! The contract, which a PostgreSQL store will keep too: a commit's writes are durable
//! together or not at all, and its future resolves only then (or with the error, its source
//! kept); commits from one caller apply in the order they were made; writes happen off the
//! async workers (SQLite's single writer thread; a database's own connection pool), and the
//! reads are index lookups that never sync the disk. A parked row exists exactly while the
//! execution's committed frames are a parked state: the first commit after it is read back
//! removes it ([`Write::Unpark`]), and its end does too.
//!
//! `postgres` is the store several daemons share; what sharing adds (leases, the owner of
//! each running execution, messages for executions another daemon runs, schedule ticks
//! claimed once) is the [`Cluster`] side of it, which a store of one daemon has not.

pub mod memory;
mod ops;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub mod postgres_tls;
pub mod sqlite;

use crate::time::iso;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MachineType {
    Standard,
    Express,
}

/// A state machine as the API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateMachineRecord {
    pub name: String,
    pub arn: String,
    /// The definition as the user wrote it (text, so DescribeStateMachine returns it as is).
    pub definition: String,
    pub machine_type: MachineType,
    pub role_arn: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub tags: BTreeMap<String, String>,
    /// Increases with every update (UpdateStateMachine's revisionId).
    pub revision: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RUNNING" => ExecutionStatus::Running,
            "SUCCEEDED" => ExecutionStatus::Succeeded,
            "FAILED" => ExecutionStatus::Failed,
            "TIMED_OUT" => ExecutionStatus::TimedOut,
            "ABORTED" => ExecutionStatus::Aborted,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub state_machine_name: String,
    pub status: ExecutionStatus,
    /// JSON text, as the API returns it.
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub start: DateTime<Utc>,
    pub stop: Option<DateTime<Utc>>,
    pub redrive_count: u32,
    /// The `.sync` Task that started it and waits for its end, until that end is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentLink>,
}

impl ExecutionRecord {
    /// Whether RedriveExecution takes it, in DescribeExecution's words (`redriveStatus`, and
    /// `redriveStatusReason` when it does not).
    pub fn redrive_status(&self) -> (&'static str, Option<String>) {
        match self.status {
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted => {
                ("REDRIVABLE", None)
            }
            s => ("NOT_REDRIVABLE", Some(format!("Execution is {} and cannot be redriven", s.as_str()))),
        }
    }
}

/// A child execution's link to the parent Task that waits for its end
/// (`states:startExecution.sync` or `.sync:2`): the end is reported to the parent's token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentLink {
    pub execution_arn: String,
    pub token: String,
    /// `.sync:2`: the child's output and input reach the parent as JSON, not as text.
    #[serde(default)]
    pub json: bool,
}

/// Where one running machine (the top level, a Parallel branch, a Map iteration) of an
/// execution stands: enough for the engine to resume it. `data` is the engine's own
/// (input, variables, retry counts, timer deadline); the store keeps it as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub execution_arn: String,
    /// "" for the top level; a Parallel branch or Map iteration is
    /// "<parent path>/<state index>/<branch or item index>".
    pub path: String,
    pub data: Value,
}

/// One history event, as the engine records it; stores keep it as the JSON that AWS's
/// GetExecutionHistory returns (serialized straight from this, never through a `Value`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: u64,
    pub previous_event_id: u64,
    pub timestamp: DateTime<Utc>,
    pub kind: &'static str,
    /// `(detailsKey, details)`, e.g. `("stateEnteredEventDetails", {...})`.
    pub details: Option<(&'static str, Details)>,
}

/// An event's `...EventDetails`. Most events of a run carry a state's or the execution's input
/// or output: those are kept as the JSON text AWS shows plus their few fields, and shaped into
/// AWS's object only when someone reads or stores them, so recording a history costs one
/// serialization an event instead of a map of fresh keys (and freeing it, one string).
#[derive(Debug, Clone, PartialEq)]
pub enum Details {
    /// `{"name"?, "input"|"output": text, "inputDetails"|"outputDetails": {"truncated":
    /// false}, extra...}`: `name` for state events, `extra` for what some events add (a
    /// Task's resource, ExecutionStarted's roleArn, a state's assigned variables).
    Payload {
        name: Option<std::sync::Arc<str>>,
        output: bool,
        text: String,
        extra: Vec<(&'static str, Value)>,
    },
    Json(Value),
}

impl Details {
    /// An input (`output` false) or output as AWS records it: the document as JSON text.
    pub fn payload(name: Option<&std::sync::Arc<str>>, output: bool, v: &Value) -> Details {
        Details::payload_text(name, output, serde_json::to_string(v).unwrap_or_default())
    }

    /// The same from a document already serialized (a stored execution input).
    pub fn payload_text(name: Option<&std::sync::Arc<str>>, output: bool, text: String) -> Details {
        Details::Payload { name: name.cloned(), output, text, extra: Vec::new() }
    }

    /// The details with one more field (last, as AWS lists them).
    pub fn with(mut self, key: &'static str, v: Value) -> Details {
        match &mut self {
            Details::Payload { extra, .. } => extra.push((key, v)),
            Details::Json(Value::Object(m)) => {
                m.insert(key.into(), v);
            }
            Details::Json(_) => {}
        }
        self
    }

    /// A text field (`name`, `input`, `output`, `error`, `cause`, ...), if the details have it.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self {
            Details::Payload { name, output, text, extra } => match key {
                "name" => name.as_deref(),
                "input" if !output => Some(text),
                "output" if *output => Some(text),
                _ => extra.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.as_str()),
            },
            Details::Json(v) => v.get(key).and_then(Value::as_str),
        }
    }

    pub fn into_value(self) -> Value {
        match self {
            Details::Json(v) => v,
            Details::Payload { name, output, text, extra } => {
                let mut m = Map::with_capacity(3 + extra.len());
                if let Some(n) = name {
                    m.insert("name".into(), Value::String(n.to_string()));
                }
                let (key, details) =
                    if output { ("output", "outputDetails") } else { ("input", "inputDetails") };
                m.insert(key.into(), Value::String(text));
                m.insert(details.into(), serde_json::json!({"truncated": false}));
                m.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
                Value::Object(m)
            }
        }
    }

    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }
}

impl From<Value> for Details {
    fn from(v: Value) -> Details {
        Details::Json(v)
    }
}

impl Serialize for Details {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Details::Json(v) => v.serialize(s),
            Details::Payload { name, output, text, extra } => {
                let mut m = s.serialize_map(Some(2 + usize::from(name.is_some()) + extra.len()))?;
                if let Some(n) = name {
                    m.serialize_entry("name", &**n)?;
                }
                let (key, details) =
                    if *output { ("output", "outputDetails") } else { ("input", "inputDetails") };
                m.serialize_entry(key, text)?;
                m.serialize_entry(details, &Truncated)?;
                for (k, v) in extra {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

/// `{"truncated": false}`: stepgate keeps every payload whole.
struct Truncated;

impl Serialize for Truncated {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("truncated", &false)?;
        m.end()
    }
}

impl std::fmt::Display for Details {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).unwrap_or_default())
    }
}

impl Event {
    /// The event as the AWS API serializes it (timestamps as ISO-8601 text here; the API
    /// layer turns them into epoch seconds).
    pub fn to_json(&self) -> Value {
        self.clone().into_json()
    }

    /// [`Event::to_json`] without copying the details.
    pub fn into_json(self) -> Value {
        let mut m = Map::with_capacity(5);
        m.insert("timestamp".into(), Value::String(iso(self.timestamp)));
        m.insert("type".into(), Value::String(self.kind.into()));
        m.insert("id".into(), Value::from(self.id));
        m.insert("previousEventId".into(), Value::from(self.previous_event_id));
        if let Some((k, v)) = self.details {
            m.insert(k.into(), v.into_value());
        }
        Value::Object(m)
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(4 + usize::from(self.details.is_some())))?;
        m.serialize_entry("timestamp", &iso(self.timestamp))?;
        m.serialize_entry("type", self.kind)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("previousEventId", &self.previous_event_id)?;
        if let Some((k, v)) = &self.details {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One write of a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Appends a history event (replacing one with its id).
    Event { execution_arn: String, event: Event },
    /// Inserts or replaces a frame.
    Frame(Frame),
    /// Removes an execution's frame at path `prefix` and every frame below it ("" removes all).
    DeleteFrames { execution_arn: String, prefix: String },
    /// Ends a RUNNING execution (its frames stay until deleted); one that has ended already
    /// keeps its first end.
    Finish {
        execution_arn: String,
        status: ExecutionStatus,
        output: Option<String>,
        error: Option<String>,
        cause: Option<String>,
        stop: DateTime<Utc>,
    },
    /// Puts a finished execution back to RUNNING (RedriveExecution), counting the redrive.
    Redrive { execution_arn: String },
    /// The definition an execution runs, kept with it so that a restart or a redrive goes on
    /// with the states it started with, whatever the state machine has become since (AWS's
    /// executions keep their definition too). Stores keep each distinct text once, by `hash`.
    Definition { execution_arn: String, hash: String, text: std::sync::Arc<str> },
    /// The execution has left memory: it is read back at `until` (`None`: only when a
    /// callback token or a stop comes for it). Replaces an earlier park.
    Park { execution_arn: String, until: Option<DateTime<Utc>> },
    /// The execution is in memory again (its frames are about to change).
    Unpark { execution_arn: String },
    /// Work for an activity's workers: handed to one GetActivityTask, once. Removed with its
    /// execution's end.
    ActivityTask { execution_arn: String, activity_arn: String, token: String, input: String },
    /// Sets the parent Task that waits for a child's end (a parent that started it again
    /// after a restart waits with another token); `None` once its end has reached the parent.
    Link { execution_arn: String, parent: Option<ParentLink> },
}

/// An activity (CreateActivity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityRecord {
    pub arn: String,
    pub name: String,
    pub created: DateTime<Utc>,
}

/// An activity task taken by a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTask {
    pub execution_arn: String,
    pub token: String,
    /// JSON text, as GetActivityTask returns it.
    pub input: String,
}

/// What creating an execution found.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New,
    /// An execution with this ARN exists already (the caller compares inputs: same input is
    /// the same execution, another is ExecutionAlreadyExists).
    Existing(Box<ExecutionRecord>),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} cannot be opened: {message}")]
    Open { path: String, message: String },
    #[error("store error: {0}")]
    Backend(String),
    /// The database's own error, kept as the source.
    #[error("the database failed: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the store's writer has stopped")]
    Closed,
    /// A listing's token that the store did not hand out.
    #[error("invalid pagination token: {0:?}")]
    BadToken(String),
}

/// A page of a listing: the items and the token for the next page, if any.
pub type Page<T> = (Vec<T>, Option<String>);

/// Cuts a listing fetched with one item too many (`limit + 1`) to a page: the extra item only
/// says that another page exists, whose token names the last item kept.
pub(crate) fn page(mut items: Vec<ExecutionRecord>, limit: usize) -> Page<ExecutionRecord> {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|e| memory::encode_token(e.start, &e.arn))
    } else {
        None
    };
    (items, next)
}

pub trait Store: Send + Sync + 'static {
    /// Inserts or replaces a state machine (by ARN).
    fn put_state_machine(&self, sm: &StateMachineRecord) -> Result<(), StoreError>;
    fn get_state_machine(&self, arn: &str) -> Result<Option<StateMachineRecord>, StoreError>;
    /// All state machines, ordered by name.
    fn list_state_machines(&self) -> Result<Vec<StateMachineRecord>, StoreError>;
    /// `false` when there was none.
    fn delete_state_machine(&self, arn: &str) -> Result<bool, StoreError>;

    /// Creates a RUNNING execution together with `writes` (its first events and frame), in
    /// one durable transaction; or reports the existing execution with that ARN.
    fn create_execution(
        &self,
        e: ExecutionRecord,
        writes: Vec<Write>,
    ) -> BoxFuture<'static, Result<Created, StoreError>>;
    fn get_execution(&self, arn: &str) -> Result<Option<ExecutionRecord>, StoreError>;
    /// Executions of a state machine, newest first, optionally of one status; `token` is
    /// what the previous page returned.
    fn list_executions(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
        token: Option<&str>,
        limit: usize,
    ) -> Result<Page<ExecutionRecord>, StoreError>;
    /// Every execution that is RUNNING and not parked (to resume after a restart; parked ones
    /// are read back when their timer or a token comes).
    fn running(&self) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// Children of `parent_arn` still RUNNING whose end the parent waits for.
    fn children(&self, parent_arn: &str) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// Children that have ended without their end reported to their parent (a daemon that
    /// stopped in between reports them at its start).
    fn unreported(&self) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// The soonest timers of parked executions: (when, execution ARN), soonest first.
    fn due_timers(&self, limit: usize) -> Result<Vec<(DateTime<Utc>, String)>, StoreError>;
    /// How many executions are parked.
    fn parked(&self) -> Result<u64, StoreError>;
    /// History events with ids after `after` (ascending) or before it (`reverse`, descending),
    /// at most `limit`.
    fn history(
        &self,
        execution_arn: &str,
        after: u64,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Value>, StoreError>;
    /// The id of an execution's last event (0 without any): new events follow it. Ids count
    /// up from 1; a crash may leave a gap where events were numbered but not yet stored.
    fn last_event_id(&self, execution_arn: &str) -> Result<u64, StoreError>;
    fn frames(&self, execution_arn: &str) -> Result<Vec<Frame>, StoreError>;
    /// The definition recorded for an execution (`Write::Definition`): its hash and text.
    fn definition_of(&self, execution_arn: &str) -> Result<Option<(String, String)>, StoreError>;

    /// Makes `writes` durable. Writes from many callers within a short window are committed
    /// in one transaction; the future resolves once this caller's writes are on disk.
    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'static, Result<(), StoreError>>;

    /// Counts one more resume of a RUNNING execution after the daemon stopped without a
    /// clean shutdown, and returns how many such resumes in a row found it at the same
    /// place: the count goes on while its last event is still `last_event_id`, and starts
    /// again at 1 once it has moved on. The daemon fails an execution whose count passes
    /// `storage.resume_limit`, so a step that brings the daemon down cannot do it forever.
    fn count_resume(&self, execution_arn: &str, last_event_id: u64) -> Result<u32, StoreError>;

    /// Deletes executions (with their events and frames) that finished before `t`.
    fn purge_finished_before(&self, t: DateTime<Utc>) -> Result<usize, StoreError>;

    /// The last tick the schedule `name` fired, if it ever did.
    fn last_tick(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Records, durably, that the schedule `name` fired its tick `tick`: a restart goes on
    /// after it and fires no tick twice.
    fn record_tick(&self, name: &str, tick: DateTime<Utc>) -> BoxFuture<'static, Result<(), StoreError>>;

    /// Creates an activity; one of that ARN stays as it is and is returned (CreateActivity is
    /// idempotent).
    fn put_activity(&self, a: ActivityRecord) -> BoxFuture<'static, Result<ActivityRecord, StoreError>>;
    fn get_activity(&self, arn: &str) -> Result<Option<ActivityRecord>, StoreError>;
    /// All activities, ordered by name.
    fn list_activities(&self) -> Result<Vec<ActivityRecord>, StoreError>;
    /// Deletes an activity and the tasks no worker took; `false` when there was none.
    fn delete_activity(&self, arn: &str) -> BoxFuture<'static, Result<bool, StoreError>>;
    /// Takes the oldest task of an activity, if any: it is removed, so no other worker gets it.
    fn take_activity_task(
        &self,
        activity_arn: &str,
    ) -> BoxFuture<'static, Result<Option<ActivityTask>, StoreError>>;

    /// Where several daemons share this store: this daemon's part in it. `None`: the store
    /// is this daemon's alone, and every execution in it is this daemon's to run.
    fn cluster(&self) -> Option<&dyn Cluster> {
        None
    }
}

/// A message from another daemon for an execution this one runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: i64,
    pub execution_arn: String,
    pub body: String,
}

/// A store shared by several daemons. Each RUNNING execution that is not parked is owned by
/// one daemon, which alone writes for it; a daemon holds a lease, and one whose lease runs
/// out loses its executions to the others ([`Store::running`] claims them) and is fenced
/// from writing. A parked execution is nobody's until a daemon claims it.
pub trait Cluster: Send + Sync {
    /// This daemon's id among those sharing the store.
    fn node(&self) -> &str;
    /// How long a lease lasts without renewal.
    fn lease(&self) -> std::time::Duration;
    /// Takes a RUNNING execution for this daemon, unless another live daemon owns it:
    /// `None` when it is ours now, else the owner's id ("" when it has ended).
    fn claim(&self, arn: &str) -> Result<Option<String>, StoreError>;
    /// Claims the RUNNING executions, not parked, of daemons whose lease ran out (fencing
    /// those daemons first) and returns them: the ones this daemon is to resume now.
    fn orphans(&self) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// Hands `body` to the daemon `owner` for its execution `arn` and waits for its answer
    /// (whether the execution took it); `None` when no answer came in time.
    fn send_command(
        &self,
        owner: &str,
        arn: &str,
        body: String,
    ) -> BoxFuture<'static, Result<Option<bool>, StoreError>>;
    /// Messages other daemons sent to this one, oldest first.
    fn commands(&self) -> BoxFuture<'static, Result<Vec<Command>, StoreError>>;
    fn answer_command(&self, id: i64, taken: bool) -> BoxFuture<'static, Result<(), StoreError>>;
    /// Takes the tick `tick` of schedule `name` for this daemon: `true` for exactly one of
    /// the daemons that ask.
    fn claim_tick(&self, name: &str, tick: DateTime<Utc>) -> BoxFuture<'static, Result<bool, StoreError>>;
    /// Changes each time this daemon's lease was taken over while it lived (it was paused
    /// or cut off): what it held in memory is another daemon's now.
    fn lost(&self) -> tokio::sync::watch::Receiver<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_serialize_as_the_object_they_stand_for() {
        let name: std::sync::Arc<str> = "S".into();
        let cases = [
            Details::payload(Some(&name), false, &json!({"a": [1, "x"]})),
            Details::payload(None, true, &json!("done")).with("resource", json!("f")),
            Details::Json(json!({"error": "E"})).with("cause", json!("c")),
        ];
        let want = [
            json!({"name": "S", "input": "{\"a\":[1,\"x\"]}", "inputDetails": {"truncated": false}}),
            json!({"output": "\"done\"", "outputDetails": {"truncated": false}, "resource": "f"}),
            json!({"error": "E", "cause": "c"}),
        ];
        for (d, want) in cases.iter().zip(want) {
            assert_eq!(d.to_value(), want);
            let text = serde_json::to_string(d).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), want, "{text}");
        }
        assert_eq!(cases[0].get_str("name"), Some("S"));
        assert_eq!(cases[0].get_str("input"), Some("{\"a\":[1,\"x\"]}"));
        assert_eq!(cases[0].get_str("output"), None);
        assert_eq!(cases[1].get_str("resource"), Some("f"));
        assert_eq!(cases[2].get_str("cause"), Some("c"));
    }
}

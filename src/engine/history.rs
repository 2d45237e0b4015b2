//! Execution history: events named and shaped as AWS's GetExecutionHistory returns them.
//! Event ids are always counted (AWS quotes them in error causes: "entered at the event
//! id #2"); the events themselves are only built when the caller asked for a history.

pub use crate::store::Event;
use crate::time::Clock;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct History {
    record: bool,
    /// Events carry the workflow's time, which a time scale below 1 runs ahead of.
    clock: Arc<Clock>,
    last_id: AtomicU64,
    events: Mutex<Vec<Event>>,
}

impl History {
    pub fn new(record: bool, clock: Arc<Clock>) -> Self {
        History::resuming(record, clock, 0)
    }

    /// A history that goes on after event `last_id` (an execution resumed after a restart).
    pub fn resuming(record: bool, clock: Arc<Clock>, last_id: u64) -> Self {
        History { record, clock, last_id: AtomicU64::new(last_id), events: Mutex::default() }
    }

    /// Takes the events recorded since the last call (to journal them).
    pub fn take_new(&self) -> Vec<Event> {
        let mut v = std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()));
        v.sort_by_key(|e| e.id);
        v
    }

    pub fn recording(&self) -> bool {
        self.record
    }

    /// Appends an event after `previous` and returns its id. `details` runs only when
    /// the history is recorded.
    pub fn emit(
        &self,
        previous: u64,
        kind: &'static str,
        details: impl FnOnce() -> Option<(&'static str, Value)>,
    ) -> u64 {
        self.emit_at(previous, kind, None, details)
    }

    /// Like [`History::emit`], stamped `at` (when the caller has read the clock already, so
    /// the event and `$$.State.EnteredTime` agree to the millisecond).
    pub fn emit_at(
        &self,
        previous: u64,
        kind: &'static str,
        at: Option<DateTime<Utc>>,
        details: impl FnOnce() -> Option<(&'static str, Value)>,
    ) -> u64 {
        if !self.record {
            return self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        }
        let timestamp = at.unwrap_or_else(|| self.clock.now());
        let details = details();
        // The id is drawn under the lock that `take_new` takes, so a journaled batch never
        // holds an event whose predecessor is still to be pushed: a crash loses only the
        // newest events, and the ids stored stay contiguous.
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        events.push(Event { id, previous_event_id: previous, timestamp, kind, details });
        id
    }

    pub fn count(&self) -> u64 {
        self.last_id.load(Ordering::Relaxed)
    }

    pub fn into_events(self) -> Vec<Event> {
        let mut v = self.events.into_inner().unwrap_or_else(|e| e.into_inner());
        // Concurrent branches may push out of id order.
        v.sort_by_key(|e| e.id);
        v
    }
}

/// `{"name": ..., "input": "<json>", "inputDetails": {"truncated": false}}` and friends.
pub fn payload(name_key: Option<(&str, &str)>, key: &str, v: &Value) -> Value {
    let mut m = Map::new();
    if let Some((k, n)) = name_key {
        m.insert(k.into(), Value::String(n.into()));
    }
    m.insert(key.into(), Value::String(serde_json::to_string(v).unwrap_or_default()));
    let mut d = Map::new();
    d.insert("truncated".into(), Value::Bool(false));
    m.insert(format!("{key}Details"), Value::Object(d));
    Value::Object(m)
}

//! The in-memory [`Store`]: Express executions (which AWS never makes durable) and tests.
//! It keeps the same observable behaviour as the SQLite store (orderings, paging tokens,
//! frame-prefix deletes, redrive and purge rules) so the engine cannot tell them apart,
//! except that nothing survives the process. A commit is applied under one lock and its
//! future is ready at once.

use super::{
    ActivityRecord, ActivityTask, Created, Event, ExecutionRecord, ExecutionStatus, Frame, Page,
    StateMachineRecord, Store, StoreError, Write,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::future::{self, BoxFuture, FutureExt};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The maps of the Express ring are keyed by ARNs and touched several times per execution on
/// every request of a sync route: foldhash (randomly seeded per map, so keys chosen by
/// callers cannot aim at one bucket) hashes them several times faster than SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::{Mutex, MutexGuard};

/// Executions of one machine ordered by (start, arn): listing walks it backwards.
type ByStart = BTreeSet<(DateTime<Utc>, String)>;

/// An execution's data taken out of the store, freed when dropped.
struct Removed {
    _record: Option<ExecutionRecord>,
    _events: Option<BTreeMap<u64, Event>>,
    _frames: Option<BTreeMap<String, Value>>,
}

#[derive(Default)]
struct Inner {
    machines: HashMap<String, StateMachineRecord>,
    executions: HashMap<String, ExecutionRecord>,
    by_machine: HashMap<String, ByStart>,
    /// Kept as the engine recorded them; turned into JSON only when read.
    events: HashMap<String, BTreeMap<u64, Event>>,
    frames: HashMap<String, BTreeMap<String, Value>>,
    /// The definition each execution runs (hash, text); executions of one text share it.
    definitions: HashMap<String, (String, std::sync::Arc<str>)>,
    /// Executions in the order they were created, for a bounded store's evictions.
    order: std::collections::VecDeque<String>,
    /// Resumes after an unclean stop: (count, the last event id they found), by execution.
    resumes: HashMap<String, (u32, u64)>,
    /// The last tick each schedule fired.
    ticks: HashMap<String, chrono::DateTime<chrono::Utc>>,
    /// Parked executions and when they are due.
    parked: HashMap<String, Option<DateTime<Utc>>>,
    activities: HashMap<String, ActivityRecord>,
    /// Tasks no worker has taken, oldest first: (activity ARN, task).
    activity_tasks: std::collections::VecDeque<(String, ActivityTask)>,
    /// About how many bytes each execution holds (its record, events and frames), and their
    /// sum, for a store bounded in memory.
    sizes: HashMap<String, usize>,
    total: usize,
}

/// About what `v` takes in memory: its text plus the nodes' overhead (a `Value`, its map
/// entry and index, the allocator's rounding; calibrated against the daemon's resident memory
/// with 3-state Express executions). Cheap enough for every write of a bounded store, which
/// exists for Express executions that write little.
fn weight(v: &Value) -> usize {
    96 + match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(weight).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() + weight(v)).sum(),
        _ => 0,
    }
}

fn details_weight(d: &super::Details) -> usize {
    match d {
        super::Details::Json(v) => weight(v),
        super::Details::Payload { name, text, extra, .. } => {
            96 + name.as_ref().map_or(0, |n| n.len())
                + text.len()
                + extra.iter().map(|(_, v)| weight(v)).sum::<usize>()
        }
    }
}

fn record_weight(e: &ExecutionRecord) -> usize {
    let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
    768 + 2 * e.arn.len()
        + e.state_machine_arn.len()
        + e.name.len()
        + e.input.len()
        + text(&e.output)
        + text(&e.error)
        + text(&e.cause)
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// At most this many executions are kept; the oldest finished ones go first.
    capacity: Option<usize>,
    /// And at most about this many bytes of them.
    max_bytes: Option<usize>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store that keeps at most `capacity` executions (a ring: the oldest finished
    /// execution goes when a new one comes), so Express histories cannot grow without end.
    pub fn bounded(capacity: usize) -> MemoryStore {
        MemoryStore { inner: Mutex::default(), capacity: Some(capacity.max(1)), max_bytes: None }
    }

    /// A ring bounded in count and in memory: the oldest finished executions go while there
    /// are more than `capacity` or they take more than about `max_bytes` (with their events).
    pub fn bounded_in_memory(capacity: usize, max_bytes: usize) -> MemoryStore {
        MemoryStore { max_bytes: Some(max_bytes), ..MemoryStore::bounded(capacity) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves maps that are each still valid on their own;
        // refusing every later call would turn one bug into a dead daemon.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn execution_of(w: &Write) -> &str {
    match w {
        Write::Event { execution_arn, .. }
        | Write::Frame(Frame { execution_arn, .. })
        | Write::DeleteFrames { execution_arn, .. }
        | Write::Finish { execution_arn, .. }
        | Write::Redrive { execution_arn }
        | Write::Definition { execution_arn, .. }
        | Write::Park { execution_arn, .. }
        | Write::Unpark { execution_arn }
        | Write::ActivityTask { execution_arn, .. }
        | Write::Link { execution_arn, .. } => execution_arn,
    }
}

impl Inner {
    /// Applies all of `writes` or, if one names an execution that does not exist, none.
    fn apply(&mut self, writes: Vec<Write>) -> Result<(), StoreError> {
        if let Some(w) = writes.iter().find(|w| !self.executions.contains_key(execution_of(w))) {
            return Err(StoreError::Backend(format!("there is no execution {}", execution_of(w))));
        }
        for w in writes {
            match w {
                Write::Event { execution_arn, event } => {
                    let n = 320 + event.details.as_ref().map_or(0, |(_, d)| details_weight(d));
                    self.charge(&execution_arn, n);
                    self.events.entry(execution_arn).or_default().insert(event.id, event);
                }
                Write::Frame(Frame { execution_arn, path, data }) => {
                    self.charge(&execution_arn, 128 + path.len() + weight(&data));
                    self.frames.entry(execution_arn).or_default().insert(path, data);
                }
                Write::DeleteFrames { execution_arn, prefix } => {
                    if let Some(frames) = self.frames.get_mut(&execution_arn) {
                        delete_prefix(frames, &prefix);
                        if frames.is_empty() {
                            self.frames.remove(&execution_arn);
                        }
                    }
                }
                Write::Finish { execution_arn, status, output, error, cause, stop } => {
                    // The first end wins (a stop racing a finishing task).
                    if let Some(e) = self
                        .executions
                        .get_mut(&execution_arn)
                        .filter(|e| e.status == ExecutionStatus::Running)
                    {
                        e.status = status;
                        e.output = output;
                        e.error = error;
                        e.cause = cause;
                        e.stop = Some(stop);
                        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
                        let n = text(&e.output) + text(&e.error) + text(&e.cause);
                        self.charge(&execution_arn, n);
                    }
                    self.parked.remove(&execution_arn);
                    self.activity_tasks.retain(|(_, t)| t.execution_arn != execution_arn);
                }
                Write::Park { execution_arn, until } => {
                    self.parked.insert(execution_arn, until);
                }
                Write::Unpark { execution_arn } => {
                    self.parked.remove(&execution_arn);
                }
                Write::ActivityTask { execution_arn, activity_arn, token, input } => {
                    self.activity_tasks
                        .push_back((activity_arn, ActivityTask { execution_arn, token, input }));
                }
                Write::Link { execution_arn, parent } => {
                    if let Some(e) = self.executions.get_mut(&execution_arn) {
                        e.parent = parent;
                    }
                }
                Write::Redrive { execution_arn } => {
                    if let Some(e) = self.executions.get_mut(&execution_arn) {
                        if e.status != ExecutionStatus::Running {
                            redrive(e);
                            self.resumes.remove(&execution_arn);
                        }
                    }
                }
                Write::Definition { execution_arn, hash, text } => {
                    self.definitions.insert(execution_arn, (hash, text));
                }
            }
        }
        Ok(())
    }

    /// Adds `n` bytes to what `arn` is counted to hold.
    fn charge(&mut self, arn: &str, n: usize) {
        if let Some(size) = self.sizes.get_mut(arn) {
            *size += n;
        } else {
            self.sizes.insert(arn.to_string(), n);
        }
        self.total += n;
    }

    /// Forgets an execution. What it held comes back to be freed by the caller once the lock
    /// is released: freeing an execution's events under the lock made every other worker wait.
    #[must_use = "dropped after the lock is released"]
    fn remove_execution(&mut self, arn: &str) -> Removed {
        if let Some(n) = self.sizes.remove(arn) {
            self.total -= n;
        }
        let mut record = self.executions.remove(arn);
        if let Some(e) = &mut record {
            if let Some(set) = self.by_machine.get_mut(&e.state_machine_arn) {
                set.remove(&(e.start, std::mem::take(&mut e.arn)));
                if set.is_empty() {
                    self.by_machine.remove(&e.state_machine_arn);
                }
            }
        }
        self.definitions.remove(arn);
        self.resumes.remove(arn);
        self.parked.remove(arn);
        Removed { _record: record, _events: self.events.remove(arn), _frames: self.frames.remove(arn) }
    }
}

/// What a redrive does to the record: running again, the previous ending forgotten.
pub(crate) fn redrive(e: &mut ExecutionRecord) {
    e.status = ExecutionStatus::Running;
    e.output = None;
    e.error = None;
    e.cause = None;
    e.stop = None;
    e.redrive_count += 1;
}

/// Removes `prefix` itself and every path under `prefix/`, but not a sibling that merely
/// starts with the same characters ("/Map.3" must spare "/Map.30"). Paths below `p` are
/// exactly the range ["p/", "p0"), because '0' is the byte after '/'.
fn delete_prefix(frames: &mut BTreeMap<String, Value>, prefix: &str) {
    if prefix.is_empty() {
        frames.clear();
        return;
    }
    frames.remove(prefix);
    let (lo, hi) = (format!("{prefix}/"), format!("{prefix}0"));
    let doomed: Vec<String> = frames.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in doomed {
        frames.remove(&k);
    }
}

/// The paging token of ListExecutions: the (start, arn) of the last execution returned.
/// Opaque to clients; shared by both stores so a token means the same thing in each.
pub(crate) fn encode_token(start: DateTime<Utc>, arn: &str) -> String {
    let raw = format!("{}.{:09}|{arn}", start.timestamp(), start.timestamp_subsec_nanos());
    URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn decode_token(token: &str) -> Result<(DateTime<Utc>, String), StoreError> {
    let bad = || StoreError::BadToken(token.to_string());
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (time, arn) = raw.split_once('|').ok_or_else(bad)?;
    let (secs, nanos) = time.split_once('.').ok_or_else(bad)?;
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = nanos.parse().map_err(|_| bad())?;
    let start = DateTime::from_timestamp(secs, nanos).ok_or_else(bad)?;
    Ok((start, arn.to_string()))
}

impl Store for MemoryStore {
    fn put_state_machine(&self, sm: &StateMachineRecord) -> Result<(), StoreError> {
        self.lock().machines.insert(sm.arn.clone(), sm.clone());
        Ok(())
    }

    fn get_state_machine(&self, arn: &str) -> Result<Option<StateMachineRecord>, StoreError> {
        Ok(self.lock().machines.get(arn).cloned())
    }

    fn list_state_machines(&self) -> Result<Vec<StateMachineRecord>, StoreError> {
        let mut all: Vec<StateMachineRecord> = self.lock().machines.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.arn.cmp(&b.arn)));
        Ok(all)
    }

    fn delete_state_machine(&self, arn: &str) -> Result<bool, StoreError> {
        Ok(self.lock().machines.remove(arn).is_some())
    }

    fn create_execution(
        &self,
        e: ExecutionRecord,
        writes: Vec<Write>,
    ) -> BoxFuture<'static, Result<Created, StoreError>> {
        let mut inner = self.lock();
        if let Some(existing) = inner.executions.get(&e.arn) {
            return future::ready(Ok(Created::Existing(Box::new(existing.clone())))).boxed();
        }
        inner.by_machine.entry(e.state_machine_arn.clone()).or_default().insert((e.start, e.arn.clone()));
        inner.order.push_back(e.arn.clone());
        let arn = e.arn.clone();
        inner.charge(&arn, record_weight(&e));
        inner.executions.insert(arn.clone(), e);
        if let Err(err) = inner.apply(writes) {
            // Nothing of a refused creation stays, as in a rolled-back transaction.
            let removed = inner.remove_execution(&arn);
            inner.order.retain(|a| *a != arn);
            drop(inner);
            drop(removed);
            return future::ready(Err(err)).boxed();
        }
        let mut evicted = Vec::new();
        if let Some(cap) = self.capacity {
            let max_bytes = self.max_bytes.unwrap_or(usize::MAX);
            // Running executions are skipped (and kept in order) until they finish.
            let mut scanned = 0;
            while (inner.executions.len() > cap || inner.total > max_bytes) && scanned < inner.order.len() {
                let Some(arn) = inner.order.pop_front() else { break };
                let running =
                    inner.executions.get(&arn).is_some_and(|x| x.status == ExecutionStatus::Running);
                if running {
                    inner.order.push_back(arn);
                    scanned += 1;
                } else {
                    evicted.push(inner.remove_execution(&arn));
                }
            }
        }
        drop(inner);
        drop(evicted);
        future::ready(Ok(Created::New)).boxed()
    }

    fn get_execution(&self, arn: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.lock().executions.get(arn).cloned())
    }

    fn list_executions(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
        token: Option<&str>,
        limit: usize,
    ) -> Result<Page<ExecutionRecord>, StoreError> {
        let limit = limit.max(1);
        let after = token.map(decode_token).transpose()?;
        let inner = self.lock();
        let Some(set) = inner.by_machine.get(state_machine_arn) else {
            return Ok((Vec::new(), None));
        };
        let keys: Box<dyn Iterator<Item = &(DateTime<Utc>, String)>> = match &after {
            Some(key) => Box::new(set.range(..key.clone()).rev()),
            None => Box::new(set.iter().rev()),
        };
        let items: Vec<ExecutionRecord> = keys
            .filter_map(|(_, arn)| inner.executions.get(arn))
            .filter(|e| status.is_none_or(|s| e.status == s))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(super::page(items, limit))
    }

    fn running(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        let inner = self.lock();
        let mut all: Vec<ExecutionRecord> = inner
            .executions
            .values()
            .filter(|e| e.status == ExecutionStatus::Running && !inner.parked.contains_key(&e.arn))
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.start, &a.arn).cmp(&(b.start, &b.arn)));
        Ok(all)
    }

    fn children(&self, parent_arn: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        let inner = self.lock();
        let mut all: Vec<ExecutionRecord> = inner
            .executions
            .values()
            .filter(|e| {
                e.status == ExecutionStatus::Running
                    && e.parent.as_ref().is_some_and(|p| p.execution_arn == parent_arn)
            })
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.start, &a.arn).cmp(&(b.start, &b.arn)));
        Ok(all)
    }

    fn unreported(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        let inner = self.lock();
        let mut all: Vec<ExecutionRecord> = inner
            .executions
            .values()
            .filter(|e| e.status != ExecutionStatus::Running && e.parent.is_some())
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.start, &a.arn).cmp(&(b.start, &b.arn)));
        Ok(all)
    }

    fn due_timers(&self, limit: usize) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        let mut due: Vec<(DateTime<Utc>, String)> =
            self.lock().parked.iter().filter_map(|(arn, t)| t.map(|t| (t, arn.clone()))).collect();
        due.sort();
        due.truncate(limit);
        Ok(due)
    }

    fn parked(&self) -> Result<u64, StoreError> {
        Ok(self.lock().parked.len() as u64)
    }

    fn put_activity(&self, a: ActivityRecord) -> BoxFuture<'static, Result<ActivityRecord, StoreError>> {
        let stored = self.lock().activities.entry(a.arn.clone()).or_insert(a).clone();
        future::ready(Ok(stored)).boxed()
    }

    fn get_activity(&self, arn: &str) -> Result<Option<ActivityRecord>, StoreError> {
        Ok(self.lock().activities.get(arn).cloned())
    }

    fn list_activities(&self) -> Result<Vec<ActivityRecord>, StoreError> {
        let mut all: Vec<ActivityRecord> = self.lock().activities.values().cloned().collect();
        all.sort_by(|a, b| (&a.name, &a.arn).cmp(&(&b.name, &b.arn)));
        Ok(all)
    }

    fn delete_activity(&self, arn: &str) -> BoxFuture<'static, Result<bool, StoreError>> {
        let mut inner = self.lock();
        inner.activity_tasks.retain(|(a, _)| a != arn);
        future::ready(Ok(inner.activities.remove(arn).is_some())).boxed()
    }

    fn take_activity_task(
        &self,
        activity_arn: &str,
    ) -> BoxFuture<'static, Result<Option<ActivityTask>, StoreError>> {
        let mut inner = self.lock();
        let at = inner.activity_tasks.iter().position(|(a, _)| a == activity_arn);
        let task = at.and_then(|i| inner.activity_tasks.remove(i)).map(|(_, t)| t);
        future::ready(Ok(task)).boxed()
    }

    fn history(
        &self,
        execution_arn: &str,
        after: u64,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Value>, StoreError> {
        let inner = self.lock();
        let Some(events) = inner.events.get(execution_arn) else {
            return Ok(Vec::new());
        };
        let page = if !reverse {
            events.range(after.saturating_add(1)..).take(limit).map(|(_, e)| e.to_json()).collect()
        } else if after == 0 {
            // Ids start at 1, so "before 0" would always be empty: 0 means "from the end".
            events.iter().rev().take(limit).map(|(_, e)| e.to_json()).collect()
        } else {
            events.range(..after).rev().take(limit).map(|(_, e)| e.to_json()).collect()
        };
        Ok(page)
    }

    fn last_event_id(&self, execution_arn: &str) -> Result<u64, StoreError> {
        Ok(self.lock().events.get(execution_arn).and_then(|e| e.keys().next_back().copied()).unwrap_or(0))
    }

    fn count_resume(&self, execution_arn: &str, last_event_id: u64) -> Result<u32, StoreError> {
        let mut inner = self.lock();
        if !inner.executions.contains_key(execution_arn) {
            return Err(StoreError::Backend(format!("there is no execution {execution_arn}")));
        }
        let entry = inner.resumes.entry(execution_arn.to_string()).or_insert((0, last_event_id));
        *entry = if entry.1 == last_event_id { (entry.0 + 1, last_event_id) } else { (1, last_event_id) };
        Ok(entry.0)
    }

    fn last_tick(&self, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        Ok(self.lock().ticks.get(name).copied())
    }

    fn record_tick(
        &self,
        name: &str,
        tick: chrono::DateTime<chrono::Utc>,
    ) -> futures::future::BoxFuture<'static, Result<(), StoreError>> {
        let mut inner = self.lock();
        let t = inner.ticks.entry(name.to_string()).or_insert(tick);
        *t = (*t).max(tick);
        Box::pin(futures::future::ready(Ok(())))
    }

    fn definition_of(&self, execution_arn: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self.lock().definitions.get(execution_arn).map(|(h, t)| (h.clone(), t.to_string())))
    }

    fn frames(&self, execution_arn: &str) -> Result<Vec<Frame>, StoreError> {
        let inner = self.lock();
        let Some(frames) = inner.frames.get(execution_arn) else {
            return Ok(Vec::new());
        };
        Ok(frames
            .iter()
            .map(|(path, data)| Frame {
                execution_arn: execution_arn.to_string(),
                path: path.clone(),
                data: data.clone(),
            })
            .collect())
    }

    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'static, Result<(), StoreError>> {
        future::ready(self.lock().apply(writes)).boxed()
    }

    fn purge_finished_before(&self, t: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let doomed: Vec<String> = inner
            .executions
            .values()
            .filter(|e| e.status != ExecutionStatus::Running && e.stop.is_some_and(|s| s < t))
            .map(|e| e.arn.clone())
            .collect();
        let removed: Vec<Removed> = doomed.iter().map(|arn| inner.remove_execution(arn)).collect();
        drop(inner);
        drop(removed);
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(i: u32, status: ExecutionStatus) -> ExecutionRecord {
        ExecutionRecord {
            arn: format!("arn:aws:states:us-east-1:1:express:m:e{i}:x"),
            name: format!("e{i}"),
            state_machine_arn: "arn:aws:states:us-east-1:1:stateMachine:m".into(),
            state_machine_name: "m".into(),
            status,
            input: "{}".into(),
            output: None,
            error: None,
            cause: None,
            start: Utc::now(),
            stop: None,
            redrive_count: 0,
            parent: None,
        }
    }

    #[tokio::test]
    async fn a_bounded_store_keeps_the_newest_and_every_running_execution() {
        let store = MemoryStore::bounded(3);
        store.create_execution(exec(0, ExecutionStatus::Running), vec![]).await.unwrap();
        for i in 1..6 {
            store.create_execution(exec(i, ExecutionStatus::Succeeded), vec![]).await.unwrap();
        }
        let kept: Vec<String> = (0..6)
            .filter(|i| store.get_execution(&exec(*i, ExecutionStatus::Running).arn).unwrap().is_some())
            .map(|i| format!("e{i}"))
            .collect();
        assert_eq!(kept, ["e0", "e4", "e5"]);
    }

    #[tokio::test]
    async fn a_store_bounded_in_memory_lets_the_oldest_go_when_the_bytes_run_out() {
        let store = MemoryStore::bounded_in_memory(1000, 20_000);
        let big = |i| ExecutionRecord { input: "x".repeat(4000), ..exec(i, ExecutionStatus::Succeeded) };
        for i in 0..10 {
            store.create_execution(big(i), vec![]).await.unwrap();
        }
        let kept: Vec<u32> = (0..10)
            .filter(|i| store.get_execution(&exec(*i, ExecutionStatus::Running).arn).unwrap().is_some())
            .collect();
        // About 4.9 KB each: four fit in 20 KB, the newest.
        assert_eq!(kept, [6, 7, 8, 9]);
        let inner = store.lock();
        assert_eq!(inner.total, inner.sizes.values().sum::<usize>());
        assert_eq!(inner.sizes.len(), inner.executions.len());
    }
}

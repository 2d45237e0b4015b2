//! The embedded durable [`Store`]: one SQLite file in the state directory (WAL mode,
//! `synchronous=FULL`, so a commit that returned is on disk and survives a power cut).
//!
//! The engine's commits flow into one writer thread that owns the only write connection.
//! It takes whatever has queued up while the previous transaction was being synced (group
//! commit), applies them all in one transaction, commits once, and only then answers every
//! waiter. Reads (the API, resume after restart) use a small pool of separate connections,
//! which WAL lets run beside the writer and which see every commit that has been answered.

use super::ops::{create_ops, event_id, from_nanos, history_bounds, nanos, page_bounds, to_ops, Op};
use super::{
    ActivityRecord, ActivityTask, Created, ExecutionRecord, ExecutionStatus, Frame, Page, StateMachineRecord,
    Store, StoreError, Write,
};
use chrono::{DateTime, Utc};
use futures::future::{self, BoxFuture, FutureExt};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// Schema migrations, in order: the database records how many it has applied in
/// `schema_version`, and `open` applies the rest. Never edit a released entry; append.
///
/// Events and frames name their execution by its small integer `seq`, not its ARN: every
/// commit inserts into the (execution, id) index at one place per execution, and with
/// keys of a few bytes the places of the executions running side by side share a handful
/// of pages, so a group commit writes far fewer pages to the WAL than with ARN keys.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE state_machines (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE executions (
    seq INTEGER PRIMARY KEY,
    arn TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    state_machine_arn TEXT NOT NULL,
    state_machine_name TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    cause TEXT,
    start INTEGER NOT NULL,
    stop INTEGER,
    redrive_count INTEGER NOT NULL
);
CREATE INDEX executions_by_machine ON executions (state_machine_arn, start, arn);
CREATE INDEX executions_running ON executions (start, arn) WHERE status = 'RUNNING';
CREATE INDEX executions_by_stop ON executions (stop) WHERE stop IS NOT NULL;
CREATE TABLE events (
    execution INTEGER NOT NULL,
    id INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (execution, id)
);
CREATE TABLE frames (
    execution INTEGER NOT NULL,
    path TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (execution, path)
);
"#,
    r#"
CREATE TABLE definitions (
    hash TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
ALTER TABLE executions ADD COLUMN definition TEXT;
CREATE INDEX executions_by_definition ON executions (definition) WHERE definition IS NOT NULL;
"#,
    r#"
ALTER TABLE executions ADD COLUMN resume_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN resume_event_id INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
CREATE TABLE schedule_ticks (
    schedule TEXT PRIMARY KEY,
    tick INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE parked (
    execution INTEGER PRIMARY KEY,
    due INTEGER
);
CREATE INDEX parked_by_due ON parked (due) WHERE due IS NOT NULL;
CREATE TABLE activities (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE activity_tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    activity_arn TEXT NOT NULL,
    execution INTEGER NOT NULL,
    token TEXT NOT NULL,
    input TEXT NOT NULL
);
CREATE INDEX activity_tasks_by_activity ON activity_tasks (activity_arn, seq);
CREATE INDEX activity_tasks_by_execution ON activity_tasks (execution);
"#,
    r#"
ALTER TABLE executions ADD COLUMN parent TEXT;
ALTER TABLE executions ADD COLUMN parent_execution TEXT;
CREATE INDEX executions_by_parent ON executions (parent_execution, start) WHERE parent IS NOT NULL;
"#,
];

/// Most jobs folded into one transaction: enough to absorb every waiter of a busy daemon,
/// small enough that one transaction never holds back answers for long.
const MAX_BATCH: usize = 1024;
/// Executions deleted per purge transaction, so a large purge does not stall commits.
const PURGE_CHUNK: usize = 500;
/// Idle read connections kept for reuse; more are opened on demand under load.
const MAX_IDLE_READERS: usize = 8;

const EXEC_COLUMNS: &str = "arn, name, state_machine_arn, state_machine_name, status, input, output, error, \
                            cause, start, stop, redrive_count, parent";

pub struct SqliteStore {
    path: PathBuf,
    /// `None` only while dropping: closing it tells the writer to finish and exit.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    transactions: AtomicU64,
    jobs: AtomicU64,
}

/// `Fn`, not `FnOnce`: a failed group is run again job by job.
type AdminFn = Box<dyn Fn(&Connection) -> rusqlite::Result<usize> + Send>;

enum Work {
    Commit(Vec<Op>),
    Create(Box<ExecutionRecord>, Vec<Op>),
    /// Rare writes (state machines, purge) that also go through the one writer so that no
    /// second connection ever competes for the write lock.
    Admin(AdminFn),
    PutActivity(ActivityRecord),
    /// Takes the oldest task of the activity with this ARN.
    TakeTask(String),
}

enum Answer {
    Done,
    Created(Created),
    Count(usize),
    Activity(ActivityRecord),
    Task(Option<ActivityTask>),
}

enum Reply {
    Async(oneshot::Sender<Result<Answer, StoreError>>),
    /// For the trait's synchronous methods: a tokio oneshot cannot be waited on from
    /// inside a runtime without panicking, a std channel can.
    Blocking(mpsc::SyncSender<Result<Answer, StoreError>>),
}

impl Reply {
    fn send(self, r: Result<Answer, StoreError>) {
        // The caller may have given up waiting (a dropped future): its writes still count.
        match self {
            Reply::Async(tx) => drop(tx.send(r)),
            Reply::Blocking(tx) => drop(tx.send(r)),
        }
    }
}

struct Job {
    work: Work,
    reply: Reply,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(Box::new(e))
}

/// One transaction of the writer, with the execution ARN -> seq look-ups it has made (a
/// commit names its execution in every write). Scoped to one transaction so that a
/// rollback or a purge can never leave a stale entry behind.
struct Tx<'c> {
    conn: &'c Connection,
    seqs: HashMap<String, i64>,
}

fn no_such_execution(arn: &str) -> rusqlite::Error {
    // A variant that displays just our message: the caller sees which ARN was wrong.
    rusqlite::Error::ToSqlConversionFailure(format!("there is no execution {arn}").into())
}

impl Tx<'_> {
    fn seq(&mut self, arn: &str) -> rusqlite::Result<i64> {
        if let Some(&seq) = self.seqs.get(arn) {
            return Ok(seq);
        }
        let seq = self
            .conn
            .prepare_cached("SELECT seq FROM executions WHERE arn = ?1")?
            .query_row(params![arn], |r| r.get(0))
            .optional()?
            .ok_or_else(|| no_such_execution(arn))?;
        self.seqs.insert(arn.to_string(), seq);
        Ok(seq)
    }

    fn apply(&mut self, op: &Op) -> rusqlite::Result<()> {
        match op {
            Op::Event { arn, id, json } => {
                let seq = self.seq(arn)?;
                // Idempotent so that a replayed append after a crash cannot fail a whole batch.
                self.conn
                    .prepare_cached(
                        "INSERT INTO events (execution, id, event) VALUES (?1, ?2, ?3)
                         ON CONFLICT (execution, id) DO UPDATE SET event = excluded.event",
                    )?
                    .execute(params![seq, id, json])?;
            }
            Op::Frame { arn, path, json } => {
                let seq = self.seq(arn)?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO frames (execution, path, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT (execution, path) DO UPDATE SET data = excluded.data",
                    )?
                    .execute(params![seq, path, json])?;
            }
            Op::DeleteFrames { arn, prefix } if prefix.is_empty() => {
                let seq = self.seq(arn)?;
                self.conn.prepare_cached("DELETE FROM frames WHERE execution = ?1")?.execute(params![seq])?;
            }
            Op::DeleteFrames { arn, prefix } => {
                let seq = self.seq(arn)?;
                // Paths under `p` are exactly ["p/", "p0") in byte order ('0' follows '/'); a
                // range, unlike LIKE, needs no escaping of '%' or '_' in state names and uses
                // the primary key index.
                self.conn
                    .prepare_cached(
                        "DELETE FROM frames
                         WHERE execution = ?1 AND (path = ?2 OR (path >= ?3 AND path < ?4))",
                    )?
                    .execute(params![seq, prefix, format!("{prefix}/"), format!("{prefix}0")])?;
            }
            Op::Finish { arn, status, output, error, cause, stop } => {
                let seq = self.seq(arn)?;
                self.conn
                    .prepare_cached(
                        // The first end wins (a stop racing a finishing task).
                        "UPDATE executions SET status = ?2, output = ?3, error = ?4, cause = ?5, stop = ?6
                         WHERE seq = ?1 AND status = 'RUNNING'",
                    )?
                    .execute(params![seq, status, output, error, cause, stop])?;
                self.conn.prepare_cached("DELETE FROM parked WHERE execution = ?1")?.execute(params![seq])?;
                self.conn
                    .prepare_cached("DELETE FROM activity_tasks WHERE execution = ?1")?
                    .execute(params![seq])?;
            }
            Op::Park { arn, due } => {
                let seq = self.seq(arn)?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO parked (execution, due) VALUES (?1, ?2)
                         ON CONFLICT (execution) DO UPDATE SET due = excluded.due",
                    )?
                    .execute(params![seq, due])?;
            }
            Op::Link { arn, parent, parent_execution } => {
                let seq = self.seq(arn)?;
                self.conn
                    .prepare_cached(
                        "UPDATE executions SET parent = ?2, parent_execution = COALESCE(?3, parent_execution) WHERE seq = ?1",
                    )?
                    .execute(params![seq, parent, parent_execution])?;
            }
            Op::Unpark { arn } => {
                let seq = self.seq(arn)?;
                self.conn.prepare_cached("DELETE FROM parked WHERE execution = ?1")?.execute(params![seq])?;
            }
            Op::ActivityTask { arn, activity_arn, token, input } => {
                let seq = self.seq(arn)?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO activity_tasks (activity_arn, execution, token, input) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![activity_arn, seq, token, input])?;
            }
            Op::Definition { arn, hash, text } => {
                let seq = self.seq(arn)?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO definitions (hash, definition) VALUES (?1, ?2) ON CONFLICT (hash) DO NOTHING",
                    )?
                    .execute(params![hash, &**text])?;
                self.conn
                    .prepare_cached("UPDATE executions SET definition = ?2 WHERE seq = ?1")?
                    .execute(params![seq, hash])?;
            }
            Op::Redrive { arn } => {
                let seq = self.seq(arn)?;
                self.conn
                    .prepare_cached(
                        "UPDATE executions SET status = 'RUNNING', output = NULL, error = NULL, cause = NULL,
                         stop = NULL, redrive_count = redrive_count + 1, resume_attempts = 0
                         WHERE seq = ?1 AND status <> 'RUNNING'",
                    )?
                    .execute(params![seq])?;
            }
        }
        Ok(())
    }

    /// Inserts the execution unless one with its ARN exists; its writes go in only if it
    /// is new.
    fn create(&mut self, e: &ExecutionRecord, ops: &[Op]) -> rusqlite::Result<Created> {
        // Both times were checked to be in range before the job was queued.
        let start = e.start.timestamp_nanos_opt().unwrap_or_default();
        let stop = e.stop.and_then(|t| t.timestamp_nanos_opt());
        let parent = e.parent.as_ref().map(|p| serde_json::to_string(p).unwrap_or_default());
        let inserted = self
            .conn
            .prepare_cached(&format!(
                "INSERT INTO executions ({EXEC_COLUMNS}, parent_execution)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (arn) DO NOTHING"
            ))?
            .execute(params![
                e.arn,
                e.name,
                e.state_machine_arn,
                e.state_machine_name,
                e.status.as_str(),
                e.input,
                e.output,
                e.error,
                e.cause,
                start,
                stop,
                i64::from(e.redrive_count),
                parent,
                e.parent.as_ref().map(|p| p.execution_arn.as_str()),
            ])?;
        if inserted == 0 {
            let existing = select_execution(self.conn, &e.arn)?.ok_or_else(|| no_such_execution(&e.arn))?;
            return Ok(Created::Existing(Box::new(existing)));
        }
        self.seqs.insert(e.arn.clone(), self.conn.last_insert_rowid());
        for op in ops {
            self.apply(op)?;
        }
        Ok(Created::New)
    }

    fn run(&mut self, work: &Work) -> rusqlite::Result<Answer> {
        match work {
            Work::Commit(ops) => {
                for op in ops {
                    self.apply(op)?;
                }
                Ok(Answer::Done)
            }
            Work::Create(e, ops) => self.create(e, ops).map(Answer::Created),
            Work::Admin(f) => {
                self.seqs.clear();
                f(self.conn).map(Answer::Count)
            }
            Work::PutActivity(a) => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO activities (arn, name, created) VALUES (?1, ?2, ?3) ON CONFLICT (arn) DO NOTHING",
                    )?
                    .execute(params![a.arn, a.name, a.created.timestamp_nanos_opt().unwrap_or_default()])?;
                self.conn
                    .prepare_cached("SELECT arn, name, created FROM activities WHERE arn = ?1")?
                    .query_row(params![a.arn], row_to_activity)
                    .map(Answer::Activity)
            }
            Work::TakeTask(activity_arn) => {
                let task = self
                    .conn
                    .prepare_cached(
                        "DELETE FROM activity_tasks WHERE seq = (SELECT MIN(seq) FROM activity_tasks WHERE activity_arn = ?1)
                         RETURNING (SELECT arn FROM executions WHERE seq = execution), token, input",
                    )?
                    .query_row(params![activity_arn], |r| {
                        Ok(ActivityTask { execution_arn: r.get(0)?, token: r.get(1)?, input: r.get(2)? })
                    })
                    .optional()?;
                Ok(Answer::Task(task))
            }
        }
    }
}

fn row_to_activity(row: &Row<'_>) -> rusqlite::Result<ActivityRecord> {
    Ok(ActivityRecord { arn: row.get(0)?, name: row.get(1)?, created: from_nanos(row.get(2)?) })
}

fn row_to_execution(row: &Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    let status: String = row.get(4)?;
    let status = ExecutionStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown execution status {status:?}").into(),
        )
    })?;
    let redrive_count: i64 = row.get(11)?;
    Ok(ExecutionRecord {
        arn: row.get(0)?,
        name: row.get(1)?,
        state_machine_arn: row.get(2)?,
        state_machine_name: row.get(3)?,
        status,
        input: row.get(5)?,
        output: row.get(6)?,
        error: row.get(7)?,
        cause: row.get(8)?,
        start: from_nanos(row.get(9)?),
        stop: row.get::<_, Option<i64>>(10)?.map(from_nanos),
        redrive_count: u32::try_from(redrive_count).unwrap_or(u32::MAX),
        parent: row.get::<_, Option<String>>(12)?.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

fn select_execution(conn: &Connection, arn: &str) -> rusqlite::Result<Option<ExecutionRecord>> {
    conn.prepare_cached(&format!("SELECT {EXEC_COLUMNS} FROM executions WHERE arn = ?1"))?
        .query_row(params![arn], row_to_execution)
        .optional()
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs `jobs` in one transaction: all of them commit, or none.
fn transaction(conn: &Connection, jobs: &[Job]) -> rusqlite::Result<Vec<Answer>> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let mut tx = Tx { conn, seqs: HashMap::new() };
    let result = jobs
        .iter()
        .map(|job| tx.run(&job.work))
        .collect::<rusqlite::Result<Vec<_>>>()
        .and_then(|answers| exec(conn, "COMMIT").map(|()| answers));
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// One group commit. A write fails only when it names an execution that does not exist
/// (an engine bug) or the disk fails, so the fast path puts the whole batch in one
/// transaction without per-job savepoints, which would copy every page a job touches into
/// a sub-journal. If it fails anyway, nothing of it was kept, and each job is run again in
/// its own transaction so that only the one at fault (or, for a disk fault, every one) is
/// told.
fn run_batch(conn: &Connection, jobs: Vec<Job>, stats: &Stats) {
    match transaction(conn, &jobs) {
        Ok(answers) => {
            stats.transactions.fetch_add(1, Ordering::Relaxed);
            stats.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);
            for (job, answer) in jobs.into_iter().zip(answers) {
                job.reply.send(Ok(answer));
            }
        }
        Err(e) => {
            let group = jobs.len();
            tracing::warn!(error = %e, group, "A store group failed; each of its jobs is retried alone.");
            for job in jobs {
                let answer = match transaction(conn, std::slice::from_ref(&job)) {
                    Ok(mut answers) => {
                        stats.transactions.fetch_add(1, Ordering::Relaxed);
                        stats.jobs.fetch_add(1, Ordering::Relaxed);
                        Ok(answers.remove(0))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "A store write failed.");
                        Err(backend(e))
                    }
                };
                job.reply.send(answer);
            }
        }
    }
}

fn writer_loop(conn: Connection, jobs: mpsc::Receiver<Job>, stats: Arc<Stats>) {
    // Everything that queued while the previous transaction was syncing goes into the next
    // one: the batch grows with load and no timer delays a lone committer.
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(256);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch, &stats);
    }
}

fn open_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open { path: path.display().to_string(), message: e.to_string() }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(32);
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Applies the migrations this file has not seen yet, in one transaction so that two
/// daemons opening the same new file cannot both create the schema.
fn migrate(conn: &Connection) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    let result = (|| {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(|e| e.to_string())?;
        let current: i64 = conn
            .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        let current = usize::try_from(current).unwrap_or(usize::MAX);
        if current > MIGRATIONS.len() {
            return Err(format!(
                "its schema is at version {current}, newer than this stepgate knows ({}): \
                 run the newer stepgate or restore a backup",
                MIGRATIONS.len()
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            conn.execute_batch(sql).map_err(|e| e.to_string())?;
            conn.execute("INSERT INTO schema_version (version) VALUES (?1)", params![i as i64 + 1])
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

impl SqliteStore {
    /// Opens (creating it if needed) the store at `path` and its schema, and starts the
    /// writer thread. Executions' inputs and outputs are in it: a folder it creates is 0700
    /// and a file 0600, whatever the umask (SQLite gives its -wal and -shm files the database
    /// file's mode).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`SqliteStore::open`] with `cache_bytes` of page cache for the writer (the index pages
    /// every commit touches stay in memory instead of being read back from the file; it fills
    /// with use and stays full, so it is the largest part of a busy daemon's resident memory).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir).map_err(|e| open_error(path, e))?;
        }
        private_file(path).map_err(|e| open_error(path, e))?;
        let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
        configure(&conn).map_err(|e| open_error(path, e))?;
        // Negative: KiB. Readers keep SQLite's default 2 MiB each.
        let kib = i64::try_from(cache_bytes / 1024).unwrap_or(i64::MAX).max(64);
        conn.pragma_update(None, "cache_size", -kib).map_err(|e| open_error(path, e))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| open_error(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_error(path, format!("the file system does not allow WAL mode (got {mode})")));
        }
        // FULL syncs the WAL at every commit: an answered commit survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| open_error(path, e))?;
        migrate(&conn).map_err(|e| open_error(path, e))?;

        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel();
        let writer_stats = stats.clone();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx, writer_stats))
            .map_err(|e| open_error(path, e))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            jobs: Some(tx),
            writer: Some(writer),
            readers: Mutex::new(Vec::new()),
            stats,
        })
    }

    /// Transactions committed so far (each holds one or more callers' writes).
    pub fn transactions(&self) -> u64 {
        self.stats.transactions.load(Ordering::Relaxed)
    }

    /// Jobs (commits, creations, state-machine writes, purge steps) committed so far;
    /// `jobs() / transactions()` is the average group size.
    pub fn jobs(&self) -> u64 {
        self.stats.jobs.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn submit(&self, work: Work, reply: Reply) -> Result<(), StoreError> {
        let jobs = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(Job { work, reply }).map_err(|_| StoreError::Closed)
    }

    fn submit_async(&self, work: Work) -> BoxFuture<'static, Result<Answer, StoreError>> {
        let (tx, rx) = oneshot::channel();
        // Queued now, not at first poll: commits reach the writer in call order.
        if let Err(e) = self.submit(work, Reply::Async(tx)) {
            return future::ready(Err(e)).boxed();
        }
        async move { rx.await.map_err(|_| StoreError::Closed)? }.boxed()
    }

    /// Runs a write on the writer thread and waits for its commit, blocking this thread
    /// for at most one group commit. On a worker of the daemon's runtime the wait hands the
    /// worker's other tasks to another thread first (`block_in_place`): no async worker sits
    /// out an fsync.
    fn admin(
        &self,
        f: impl Fn(&Connection) -> rusqlite::Result<usize> + Send + 'static,
    ) -> Result<usize, StoreError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(Work::Admin(Box::new(f)), Reply::Blocking(tx))?;
        let answer = match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| rx.recv()),
            _ => rx.recv(),
        };
        match answer.map_err(|_| StoreError::Closed)?? {
            Answer::Count(n) => Ok(n),
            _ => Err(StoreError::Backend("the writer gave an unexpected answer".into())),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = Connection::open(&self.path).map_err(backend)?;
                configure(&conn).map_err(backend)?;
                conn.pragma_update(None, "query_only", true).map_err(backend)?;
                conn
            }
        };
        let result = f(&conn).map_err(backend);
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer commit what is queued and exit; waiting for it
        // means a store that is gone has nothing left in flight.
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, col: usize) -> rusqlite::Result<T> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e)))
}

impl Store for SqliteStore {
    fn put_state_machine(&self, sm: &StateMachineRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(sm).map_err(backend)?;
        let (arn, name) = (sm.arn.clone(), sm.name.clone());
        self.admin(move |conn| {
            conn.prepare_cached(
                "INSERT INTO state_machines (arn, name, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (arn) DO UPDATE SET name = excluded.name, record = excluded.record",
            )?
            .execute(params![arn, name, record])
        })?;
        Ok(())
    }

    fn get_state_machine(&self, arn: &str) -> Result<Option<StateMachineRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT record FROM state_machines WHERE arn = ?1")?
                .query_row(params![arn], |r| parse_json(&r.get::<_, String>(0)?, 0))
                .optional()
        })
    }

    fn list_state_machines(&self) -> Result<Vec<StateMachineRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT record FROM state_machines ORDER BY name, arn")?
                .query_map([], |r| parse_json(&r.get::<_, String>(0)?, 0))?
                .collect()
        })
    }

    fn delete_state_machine(&self, arn: &str) -> Result<bool, StoreError> {
        let arn = arn.to_string();
        let n = self.admin(move |conn| {
            conn.prepare_cached("DELETE FROM state_machines WHERE arn = ?1")?.execute(params![arn])
        })?;
        Ok(n > 0)
    }

    fn create_execution(
        &self,
        e: ExecutionRecord,
        writes: Vec<Write>,
    ) -> BoxFuture<'static, Result<Created, StoreError>> {
        let checked = create_ops(&e, writes);
        let ops = match checked {
            Ok(ops) => ops,
            Err(err) => return future::ready(Err(err)).boxed(),
        };
        let answer = self.submit_async(Work::Create(Box::new(e), ops));
        async move {
            match answer.await? {
                Answer::Created(c) => Ok(c),
                _ => Err(StoreError::Backend("the writer gave an unexpected answer".into())),
            }
        }
        .boxed()
    }

    fn get_execution(&self, arn: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.read(|conn| select_execution(conn, arn))
    }

    fn list_executions(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
        token: Option<&str>,
        limit: usize,
    ) -> Result<Page<ExecutionRecord>, StoreError> {
        let limit = limit.max(1);
        let (after, fetch) = page_bounds(token, limit)?;
        let status = status.map(ExecutionStatus::as_str);
        let items = self.read(|conn| match &after {
            // The row-value comparison lets SQLite seek straight to the page in the index
            // instead of skipping every row of the earlier pages.
            Some((start, arn)) => conn
                .prepare_cached(&format!(
                    "SELECT {EXEC_COLUMNS} FROM executions
                     WHERE state_machine_arn = ?1 AND (?2 IS NULL OR status = ?2) AND (start, arn) < (?3, ?4)
                     ORDER BY start DESC, arn DESC LIMIT ?5"
                ))?
                .query_map(params![state_machine_arn, status, start, arn, fetch], row_to_execution)?
                .collect::<rusqlite::Result<Vec<_>>>(),
            None => conn
                .prepare_cached(&format!(
                    "SELECT {EXEC_COLUMNS} FROM executions
                     WHERE state_machine_arn = ?1 AND (?2 IS NULL OR status = ?2)
                     ORDER BY start DESC, arn DESC LIMIT ?3"
                ))?
                .query_map(params![state_machine_arn, status, fetch], row_to_execution)?
                .collect::<rusqlite::Result<Vec<_>>>(),
        })?;
        Ok(super::page(items, limit))
    }

    fn running(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {EXEC_COLUMNS} FROM executions e WHERE status = 'RUNNING'
                 AND NOT EXISTS (SELECT 1 FROM parked p WHERE p.execution = e.seq) ORDER BY start, arn"
            ))?
            .query_map([], row_to_execution)?
            .collect()
        })
    }

    fn children(&self, parent_arn: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {EXEC_COLUMNS} FROM executions WHERE parent_execution = ?1 AND parent IS NOT NULL
                 AND status = 'RUNNING' ORDER BY start, arn"
            ))?
            .query_map(params![parent_arn], row_to_execution)?
            .collect()
        })
    }

    fn unreported(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {EXEC_COLUMNS} FROM executions WHERE parent IS NOT NULL AND status != 'RUNNING'
                 ORDER BY start, arn"
            ))?
            .query_map([], row_to_execution)?
            .collect()
        })
    }

    fn due_timers(&self, limit: usize) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT p.due, e.arn FROM parked p JOIN executions e ON e.seq = p.execution
                 WHERE p.due IS NOT NULL ORDER BY p.due LIMIT ?1",
            )?
            .query_map(params![limit], |r| Ok((from_nanos(r.get(0)?), r.get(1)?)))?
            .collect()
        })
    }

    fn parked(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT COUNT(*) FROM parked")?.query_row([], |r| r.get::<_, i64>(0))
        })
        .map(|n| n as u64)
    }

    fn history(
        &self,
        execution_arn: &str,
        after: u64,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Value>, StoreError> {
        let (after, limit) = history_bounds(after, limit, reverse);
        let sql = if reverse {
            "SELECT event FROM events WHERE execution = (SELECT seq FROM executions WHERE arn = ?1)
             AND id < ?2 ORDER BY id DESC LIMIT ?3"
        } else {
            "SELECT event FROM events WHERE execution = (SELECT seq FROM executions WHERE arn = ?1)
             AND id > ?2 ORDER BY id LIMIT ?3"
        };
        self.read(|conn| {
            conn.prepare_cached(sql)?
                .query_map(params![execution_arn, after, limit], |r| parse_json(&r.get::<_, String>(0)?, 0))?
                .collect()
        })
    }

    fn last_event_id(&self, execution_arn: &str) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT COALESCE(MAX(id), 0) FROM events WHERE execution = (SELECT seq FROM executions WHERE arn = ?1)",
            )?
            .query_row(params![execution_arn], |r| r.get::<_, i64>(0))
        })
        .map(|n| n as u64)
    }

    fn count_resume(&self, execution_arn: &str, last_event_id: u64) -> Result<u32, StoreError> {
        let arn = execution_arn.to_string();
        let id = event_id(last_event_id)?;
        let n = self.admin(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE executions SET resume_attempts = CASE WHEN resume_event_id = ?2 \
                     THEN resume_attempts + 1 ELSE 1 END, resume_event_id = ?2 WHERE arn = ?1",
                )?
                .execute(params![arn, id])?;
            if changed == 0 {
                return Err(no_such_execution(&arn));
            }
            conn.prepare_cached("SELECT resume_attempts FROM executions WHERE arn = ?1")?
                .query_row(params![arn], |r| r.get::<_, i64>(0))
                .map(|n| n as usize)
        })?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn definition_of(&self, execution_arn: &str) -> Result<Option<(String, String)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT d.hash, d.definition FROM executions e JOIN definitions d ON d.hash = e.definition
                 WHERE e.arn = ?1",
            )?
            .query_row(params![execution_arn], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })
    }

    fn frames(&self, execution_arn: &str) -> Result<Vec<Frame>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT path, data FROM frames WHERE execution = (SELECT seq FROM executions WHERE arn = ?1)
                 ORDER BY path",
            )?
            .query_map(params![execution_arn], |r| {
                Ok(Frame {
                    execution_arn: execution_arn.to_string(),
                    path: r.get(0)?,
                    data: parse_json(&r.get::<_, String>(1)?, 1)?,
                })
            })?
            .collect()
        })
    }

    fn last_tick(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT tick FROM schedule_ticks WHERE schedule = ?1")?
                .query_row(params![name], |r| r.get::<_, i64>(0))
                .optional()
        })
        .map(|t| t.map(from_nanos))
    }

    fn record_tick(&self, name: &str, tick: DateTime<Utc>) -> BoxFuture<'static, Result<(), StoreError>> {
        let tick = match nanos(tick) {
            Ok(t) => t,
            Err(e) => return future::ready(Err(e)).boxed(),
        };
        let name = name.to_string();
        let answer = self.submit_async(Work::Admin(Box::new(move |conn| {
            conn.prepare_cached(
                "INSERT INTO schedule_ticks (schedule, tick) VALUES (?1, ?2)
                 ON CONFLICT (schedule) DO UPDATE SET tick = MAX(tick, excluded.tick)",
            )?
            .execute(params![name, tick])
        })));
        async move { answer.await.map(|_| ()) }.boxed()
    }

    fn put_activity(&self, a: ActivityRecord) -> BoxFuture<'static, Result<ActivityRecord, StoreError>> {
        if let Err(e) = nanos(a.created) {
            return future::ready(Err(e)).boxed();
        }
        let answer = self.submit_async(Work::PutActivity(a));
        async move {
            match answer.await? {
                Answer::Activity(a) => Ok(a),
                _ => Err(StoreError::Backend("the writer gave an unexpected answer".into())),
            }
        }
        .boxed()
    }

    fn get_activity(&self, arn: &str) -> Result<Option<ActivityRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT arn, name, created FROM activities WHERE arn = ?1")?
                .query_row(params![arn], row_to_activity)
                .optional()
        })
    }

    fn list_activities(&self) -> Result<Vec<ActivityRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT arn, name, created FROM activities ORDER BY name, arn")?
                .query_map([], row_to_activity)?
                .collect()
        })
    }

    fn delete_activity(&self, arn: &str) -> BoxFuture<'static, Result<bool, StoreError>> {
        let arn = arn.to_string();
        let answer = self.submit_async(Work::Admin(Box::new(move |conn| {
            conn.prepare_cached("DELETE FROM activity_tasks WHERE activity_arn = ?1")?
                .execute(params![arn])?;
            conn.prepare_cached("DELETE FROM activities WHERE arn = ?1")?.execute(params![arn])
        })));
        async move {
            match answer.await? {
                Answer::Count(n) => Ok(n > 0),
                _ => Err(StoreError::Backend("the writer gave an unexpected answer".into())),
            }
        }
        .boxed()
    }

    fn take_activity_task(
        &self,
        activity_arn: &str,
    ) -> BoxFuture<'static, Result<Option<ActivityTask>, StoreError>> {
        let answer = self.submit_async(Work::TakeTask(activity_arn.to_string()));
        async move {
            match answer.await? {
                Answer::Task(t) => Ok(t),
                _ => Err(StoreError::Backend("the writer gave an unexpected answer".into())),
            }
        }
        .boxed()
    }

    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'static, Result<(), StoreError>> {
        let ops = match to_ops(writes) {
            Ok(ops) => ops,
            Err(err) => return future::ready(Err(err)).boxed(),
        };
        let answer = self.submit_async(Work::Commit(ops));
        async move { answer.await.map(|_| ()) }.boxed()
    }

    fn purge_finished_before(&self, t: DateTime<Utc>) -> Result<usize, StoreError> {
        let before = t.timestamp_nanos_opt().unwrap_or(if t.timestamp() > 0 { i64::MAX } else { i64::MIN });
        let mut total = 0;
        loop {
            let n = self.admin(move |conn| {
                let seqs: Vec<i64> = conn
                    .prepare_cached(
                        "SELECT seq FROM executions
                         WHERE stop IS NOT NULL AND stop < ?1 AND status <> 'RUNNING' LIMIT ?2",
                    )?
                    .query_map(params![before, PURGE_CHUNK as i64], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for seq in &seqs {
                    conn.prepare_cached("DELETE FROM events WHERE execution = ?1")?.execute(params![seq])?;
                    conn.prepare_cached("DELETE FROM frames WHERE execution = ?1")?.execute(params![seq])?;
                    conn.prepare_cached("DELETE FROM executions WHERE seq = ?1")?.execute(params![seq])?;
                }
                Ok(seqs.len())
            })?;
            total += n;
            if n < PURGE_CHUNK {
                break;
            }
        }
        if total > 0 {
            // Definitions no execution runs any more, once the executions are gone.
            self.admin(|conn| {
                conn.prepare_cached(
                    "DELETE FROM definitions WHERE NOT EXISTS
                     (SELECT 1 FROM executions WHERE executions.definition = definitions.hash)",
                )?
                .execute([])
            })?;
        }
        Ok(total)
    }
}

/// Creates `dir` and its missing parents with mode 0700; an existing folder keeps its mode
/// (an operator or systemd's `StateDirectoryMode=` chose it).
/// The writer's page cache unless `storage.cache_bytes` says otherwise: 32 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the database file with mode 0600 if it does not exist yet.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

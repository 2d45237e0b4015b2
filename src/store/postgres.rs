//! The shared durable [`Store`]: one PostgreSQL database that several daemons use at once
//! (`storage.backend = "postgres"`). It keeps the contract of the embedded store (a commit's
//! writes are durable together, in call order, answered only once committed) and adds what
//! sharing takes ([`Cluster`]): each daemon holds a lease on its row of `daemons`, every
//! RUNNING execution is owned by one daemon, and each transaction of a daemon's writer
//! first takes its daemon's advisory lock, shared, and checks the epoch it registered with. A
//! daemon that takes over another's executions first takes that lock exclusively (waiting for
//! the other's transactions in flight) and bumps the other's epoch, which fences every later
//! one: a daemon that lost its lease (paused, partitioned) cannot write. An advisory lock, not
//! a row lock: shared row locks of concurrent writers would each cost a multixact.
//!
//! The connections are driven by a runtime of their own on one thread, so the trait's
//! synchronous reads can wait for an answer from any thread, the daemon's async workers
//! included (as the embedded store's reads do), without ever blocking the thread that does
//! the I/O. Commits go to a writer task (each execution always to the same one, were there
//! several) that folds whatever has queued up into one transaction (group commit), with a batch's writes of one kind merged into a single
//! statement over arrays (`unnest`) and every statement pipelined: a transaction is a
//! handful of round trips however many executions it carries.

use super::ops::{create_ops, event_id, from_nanos, history_bounds, nanos, page_bounds, to_ops, Op};
use super::{
    ActivityRecord, ActivityTask, Cluster, Command, Created, ExecutionRecord, ExecutionStatus, Frame, Page,
    StateMachineRecord, Store, StoreError, Write,
};
use chrono::{DateTime, Utc};
use futures::future::{self, BoxFuture, FutureExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Schema migrations, in order: `schema_version` records how many are applied, and `open`
/// applies the rest under an advisory lock, so daemons starting together migrate once.
/// Never edit a released entry; append.
///
/// Frame paths are compared byte by byte (`COLLATE "C"`): a prefix's frames are the range
/// ["p/", "p0"), as in the embedded store.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE state_machines (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE daemons (
    id TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    started TIMESTAMPTZ NOT NULL
);
CREATE TABLE executions (
    seq BIGSERIAL PRIMARY KEY,
    arn TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    state_machine_arn TEXT NOT NULL,
    state_machine_name TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    cause TEXT,
    start BIGINT NOT NULL,
    stop BIGINT,
    redrive_count INTEGER NOT NULL,
    parent TEXT,
    parent_execution TEXT,
    definition TEXT,
    resume_attempts INTEGER NOT NULL DEFAULT 0,
    resume_event_id BIGINT NOT NULL DEFAULT 0,
    owner TEXT,
    epoch BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX executions_by_machine ON executions (state_machine_arn, start, arn);
CREATE INDEX executions_running ON executions (owner, start) WHERE status = 'RUNNING';
CREATE INDEX executions_by_stop ON executions (stop) WHERE stop IS NOT NULL;
CREATE INDEX executions_by_parent ON executions (parent_execution, start) WHERE parent IS NOT NULL;
CREATE INDEX executions_by_definition ON executions (definition) WHERE definition IS NOT NULL;
CREATE TABLE events (
    execution BIGINT NOT NULL,
    id BIGINT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (execution, id)
);
CREATE TABLE frames (
    execution BIGINT NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (execution, path)
);
CREATE TABLE definitions (
    hash TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE parked (
    execution BIGINT PRIMARY KEY,
    due BIGINT
);
CREATE INDEX parked_by_due ON parked (due) WHERE due IS NOT NULL;
CREATE TABLE schedule_ticks (
    schedule TEXT NOT NULL,
    tick BIGINT NOT NULL,
    PRIMARY KEY (schedule, tick)
);
CREATE TABLE activities (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE activity_tasks (
    seq BIGSERIAL PRIMARY KEY,
    activity_arn TEXT NOT NULL,
    execution BIGINT NOT NULL,
    token TEXT NOT NULL,
    input TEXT NOT NULL
);
CREATE INDEX activity_tasks_by_activity ON activity_tasks (activity_arn, seq);
CREATE INDEX activity_tasks_by_execution ON activity_tasks (execution);
CREATE TABLE commands (
    id BIGSERIAL PRIMARY KEY,
    owner TEXT NOT NULL,
    execution_arn TEXT NOT NULL,
    body TEXT NOT NULL,
    seen BOOLEAN NOT NULL DEFAULT false,
    answer BOOLEAN,
    created TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX commands_unseen ON commands (owner, id) WHERE NOT seen;
"#];

/// The advisory lock namespace of the daemons' fences (the second key is the daemon id's hash).
const FENCE_LOCKS: i32 = 7_461_003;
/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 2048;
/// Executions deleted per purge statement, so that a large purge does not hold locks long.
const PURGE_CHUNK: i64 = 500;
/// Ticks of a schedule older than this (before its newest) are deleted as new ones come.
const TICKS_KEPT: i64 = 3_600_000_000_000;

/// What `[storage]` says of the database.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `postgres://user@host:port/db` or a libpq key=value string.
    pub url: String,
    /// Connections for reads and the writer.
    pub pool_size: usize,
    /// How long a daemon's lease lasts without renewal: a daemon that stops renewing for
    /// this long has its executions taken over.
    pub lease: Duration,
    /// This daemon's name among those sharing the database.
    pub node: String,
    /// Writer connections, each with the executions whose ARN hashes to it (each execution's
    /// commits stay in one queue, in order). The daemon uses one: group commit grows a lone
    /// writer's batches with the load, while more writers per daemon split them into more,
    /// smaller transactions, which cost a shared PostgreSQL more as daemons are added
    /// (BENCHMARKS.md has 1, 2 and 4).
    pub writers: usize,
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(Box::new(e))
}

fn open_error(url: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open { path: redact(url), message: e.to_string() }
}

/// An error with its sources ("error performing TLS handshake: invalid peer certificate:
/// UnknownIssuer"): tokio-postgres's own message alone seldom says what to fix.
fn with_sources(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// The URL without its password, for messages and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            let user = user.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// One connection with the statements it has prepared: each SQL text is parsed by the
/// server once per connection.
struct Conn {
    client: Client,
    prepared: Mutex<HashMap<&'static str, Statement>>,
}

/// The statement for `sql` from a connection's cache, prepared on `client` (the connection, or
/// a transaction on it) the first time.
async fn prepared(
    client: &impl tokio_postgres::GenericClient,
    cache: &Mutex<HashMap<&'static str, Statement>>,
    sql: &'static str,
) -> Result<Statement, tokio_postgres::Error> {
    if let Some(s) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql).await?;
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(sql, s.clone());
    Ok(s)
}

impl Conn {
    async fn statement(&self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        prepared(&self.client, &self.prepared, sql).await
    }

    async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let s = self.statement(sql).await?;
        self.client.query(&s, params).await
    }

    async fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let s = self.statement(sql).await?;
        self.client.execute(&s, params).await
    }
}

/// Opens one connection, driven on the store's runtime.
async fn connect(inner: &Inner) -> Result<Conn, tokio_postgres::Error> {
    let (client, connection) = inner.config.connect(inner.tls.clone()).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "A PostgreSQL connection closed; it is opened again when next needed.");
        }
    });
    // A fence waiting on a daemon stuck mid-transaction gives up and is tried again, rather
    // than holding a connection that others share.
    client.batch_execute("SET lock_timeout = '5s'").await?;
    Ok(Conn { client, prepared: Mutex::default() })
}

/// The daemon's registration: its id and the epoch its writes are fenced with.
struct Node {
    id: String,
    epoch: AtomicI64,
    lease: Duration,
    /// Counts the leases lost: the daemon drops what it holds in memory when it moves.
    lost: watch::Sender<u64>,
}

struct Inner {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    url: String,
    handle: tokio::runtime::Handle,
    /// The read connections, used in turn; one that has closed is opened again.
    readers: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
    node: Node,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    transactions: AtomicU64,
    jobs: AtomicU64,
}

enum Work {
    Commit(Vec<Op>),
    Create(Box<ExecutionRecord>, Vec<Op>),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Created, StoreError>>,
}

/// Why a transaction was not committed.
enum TxError {
    Db(tokio_postgres::Error),
    /// This daemon's epoch is no longer the database's: another daemon took over.
    Fenced,
    /// A write names an execution that does not exist, or one another daemon owns.
    Refused(String),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Db(e)
    }
}

impl TxError {
    fn into_store(self) -> StoreError {
        match self {
            TxError::Db(e) => backend(e),
            TxError::Fenced => StoreError::Backend(
                "this daemon's lease was taken over by another daemon; its writes are refused".into(),
            ),
            TxError::Refused(m) => StoreError::Backend(m),
        }
    }
}

fn row_to_execution(r: &Row) -> Result<ExecutionRecord, StoreError> {
    let status: String = r.get(4);
    let status = ExecutionStatus::parse(&status)
        .ok_or_else(|| StoreError::Backend(format!("unknown execution status {status:?}")))?;
    let redrive: i32 = r.get(11);
    Ok(ExecutionRecord {
        arn: r.get(0),
        name: r.get(1),
        state_machine_arn: r.get(2),
        state_machine_name: r.get(3),
        status,
        input: r.get(5),
        output: r.get(6),
        error: r.get(7),
        cause: r.get(8),
        start: from_nanos(r.get(9)),
        stop: r.get::<_, Option<i64>>(10).map(from_nanos),
        redrive_count: u32::try_from(redrive).unwrap_or(0),
        parent: r.get::<_, Option<String>>(12).and_then(|t| serde_json::from_str(&t).ok()),
    })
}

fn executions(rows: Vec<Row>) -> Result<Vec<ExecutionRecord>, StoreError> {
    rows.iter().map(row_to_execution).collect()
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("a stored JSON text does not parse: {e}")))
}

fn row_to_activity(r: &Row) -> ActivityRecord {
    ActivityRecord { arn: r.get(0), name: r.get(1), created: from_nanos(r.get(2)) }
}

pub struct PostgresStore {
    inner: Arc<Inner>,
    /// One queue per writer; empty once dropping.
    jobs: Vec<mpsc::UnboundedSender<Job>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    renewal: Option<tokio::task::JoinHandle<()>>,
    /// Dropped to stop the store's runtime; the thread is joined on drop.
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PostgresStore {
    /// Connects, applies the migrations the database has not seen, registers this daemon
    /// (a new epoch, which fences any earlier run of it that is still writing) and starts
    /// the writer and the lease's renewal.
    pub fn open(settings: &Settings) -> Result<PostgresStore, StoreError> {
        let tls = super::postgres_tls::split(&settings.url).map_err(|e| open_error(&settings.url, e))?;
        let mut config: tokio_postgres::Config = tls.url.parse().map_err(|e| open_error(&settings.url, e))?;
        if config.get_application_name().is_none() {
            config.application_name("stepgate");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let connector = super::postgres_tls::connector(&tls).map_err(|e| open_error(&settings.url, e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| open_error(&settings.url, e))?;
        let handle = runtime.handle().clone();
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-postgres".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stop.await;
                });
            })
            .map_err(|e| open_error(&settings.url, e))?;
        let (lost, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            config,
            tls: connector,
            url: settings.url.clone(),
            handle,
            readers: (0..settings.pool_size.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            node: Node { id: settings.node.clone(), epoch: AtomicI64::new(0), lease: settings.lease, lost },
            stats: Stats::default(),
        });
        let mut store = PostgresStore {
            inner: inner.clone(),
            jobs: Vec::new(),
            writers: Vec::new(),
            renewal: None,
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        let setup = inner.clone();
        let writer_conn = store.block(async move {
            let conn = connect(&setup).await.map_err(|e| open_error(&setup.url, with_sources(&e)))?;
            migrate(&conn).await.map_err(|e| open_error(&setup.url, e))?;
            let epoch = register(&conn, &setup.node).await.map_err(|e| open_error(&setup.url, e))?;
            setup.node.epoch.store(epoch, Ordering::SeqCst);
            writer_session(&conn, setup.node.lease).await.map_err(|e| open_error(&setup.url, e))?;
            Ok::<_, StoreError>(conn)
        })?;
        let mut conns = vec![writer_conn];
        for _ in 1..settings.writers.max(1) {
            let setup = inner.clone();
            conns.push(store.block(async move {
                let conn = connect(&setup).await.map_err(|e| open_error(&setup.url, with_sources(&e)))?;
                writer_session(&conn, setup.node.lease).await.map_err(|e| open_error(&setup.url, e))?;
                Ok::<_, StoreError>(conn)
            })?);
        }
        for conn in conns {
            let (tx, rx) = mpsc::unbounded_channel();
            store.writers.push(inner.handle.spawn(writer(inner.clone(), conn, rx)));
            store.jobs.push(tx);
        }
        store.renewal = Some(inner.handle.spawn(renew(inner.clone())));
        Ok(store)
    }

    /// Transactions committed so far (each holds one or more callers' writes).
    pub fn transactions(&self) -> u64 {
        self.inner.stats.transactions.load(Ordering::Relaxed)
    }

    /// Jobs committed so far; `jobs() / transactions()` is the average group size.
    pub fn jobs(&self) -> u64 {
        self.inner.stats.jobs.load(Ordering::Relaxed)
    }

    /// Waits for `f`, run on the store's runtime, from any thread. On a worker of a
    /// multi-threaded runtime the worker's other tasks move to another thread first.
    fn block<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let task = self.inner.handle.spawn(f);
        let wait = || futures::executor::block_on(task).map_err(|_| StoreError::Closed)?;
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }

    /// Runs `f` on a read connection on the store's runtime and waits for it.
    fn read<T, F>(&self, f: impl FnOnce(Arc<Conn>) -> F + Send + 'static) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, StoreError>> + Send,
    {
        let inner = self.inner.clone();
        self.block(async move { f(inner.reader().await?).await })
    }

    /// [`PostgresStore::read`] as a future, for the trait's asynchronous methods.
    fn spawn<T, F>(
        &self,
        f: impl FnOnce(Arc<Conn>) -> F + Send + 'static,
    ) -> BoxFuture<'static, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, StoreError>> + Send,
    {
        let inner = self.inner.clone();
        let task = self.inner.handle.spawn(async move { f(inner.reader().await?).await });
        async move { task.await.map_err(|_| StoreError::Closed)? }.boxed()
    }

    fn submit(&self, work: Work) -> BoxFuture<'static, Result<Created, StoreError>> {
        let (tx, rx) = oneshot::channel();
        // An execution's writes always go to the same writer (the first write names the
        // execution a commit is for).
        let arn = match &work {
            Work::Create(e, _) => e.arn.as_str(),
            Work::Commit(ops) => ops.first().map_or("", Op::arn),
        };
        let shard = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            arn.hash(&mut h);
            h.finish() as usize
        };
        let Some(jobs) = self.jobs.get(shard % self.jobs.len().max(1)) else {
            return future::ready(Err(StoreError::Closed)).boxed();
        };
        // Queued now, not at first poll: commits reach the writer in call order.
        if jobs.send(Job { work, reply: tx }).is_err() {
            return future::ready(Err(StoreError::Closed)).boxed();
        }
        async move { rx.await.map_err(|_| StoreError::Closed)? }.boxed()
    }
}

impl Inner {
    /// A read connection, in turn; one that has closed (the server restarted) is replaced.
    async fn reader(&self) -> Result<Arc<Conn>, StoreError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let mut slot = self.readers[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(connect(self).await.map_err(backend)?);
        *slot = Some(c.clone());
        Ok(c)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The writer answers what is queued once its queue closes, then ends; waiting for
        // it means a store that is gone has nothing left in flight.
        self.jobs.clear();
        if let Some(r) = self.renewal.take() {
            r.abort();
        }
        let writers = std::mem::take(&mut self.writers);
        let _ = self.block(async move {
            for w in writers {
                let _ = w.await;
            }
            Ok(())
        });
        self.shutdown.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn migrate(conn: &Conn) -> Result<(), String> {
    let c = &conn.client;
    let e = |e: tokio_postgres::Error| e.to_string();
    c.batch_execute("SELECT pg_advisory_lock(7461002)").await.map_err(e)?;
    let result = async {
        c.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)").await.map_err(e)?;
        let current: i32 =
            c.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[]).await.map_err(e)?.get(0);
        let current = usize::try_from(current).unwrap_or(usize::MAX);
        if current > MIGRATIONS.len() {
            return Err(format!(
                "its schema is at version {current}, newer than this stepgate knows ({}): run the newer stepgate",
                MIGRATIONS.len()
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let version = i as i32 + 1;
            c.batch_execute(&format!("BEGIN; {sql}; INSERT INTO schema_version (version) VALUES ({version}); COMMIT"))
                .await
                .map_err(e)?;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = c.batch_execute("ROLLBACK").await;
    }
    let _ = c.batch_execute("SELECT pg_advisory_unlock(7461002)").await;
    result
}

/// Registers the daemon, or starts a new epoch of a registered one: an earlier run still
/// writing under the old epoch is fenced from here on.
async fn register(conn: &Conn, node: &Node) -> Result<i64, tokio_postgres::Error> {
    let secs = node.lease.as_secs_f64();
    let row = conn
        .client
        .query_one(
            "INSERT INTO daemons (id, epoch, lease_until, started)
             VALUES ($1, 1, now() + make_interval(secs => $2), now())
             ON CONFLICT (id) DO UPDATE SET epoch = daemons.epoch + 1,
                 lease_until = excluded.lease_until, started = excluded.started
             RETURNING epoch",
            &[&node.id, &secs],
        )
        .await?;
    Ok(row.get(0))
}

/// The writer's session: a transaction left open (a daemon stopped with SIGSTOP in the
/// middle of one) is ended by the server after a lease, so it cannot hold back a takeover.
async fn writer_session(conn: &Conn, lease: Duration) -> Result<(), tokio_postgres::Error> {
    let ms = lease.as_millis().max(1000);
    // Every statement of the writer looks rows up by key. Its prepared statements keep the
    // plan made when the tables looked empty (a fresh database, before autovacuum's first
    // ANALYZE), which scans whole tables for `= ANY($1)` and gets slower with every row.
    conn.client
        .batch_execute(&format!("SET idle_in_transaction_session_timeout = {ms}; SET enable_seqscan = off"))
        .await
}

/// Renews the lease three times per lease. When the database says the epoch has moved on
/// (another daemon took over while this one was paused or cut off), the daemon registers
/// anew and tells its listeners, which drop what they held in memory.
async fn renew(inner: Arc<Inner>) {
    let period = (inner.node.lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(period).await;
        let conn = match inner.reader().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "The daemon's lease could not be renewed: the database is unreachable.");
                continue;
            }
        };
        let epoch = inner.node.epoch.load(Ordering::SeqCst);
        let secs = inner.node.lease.as_secs_f64();
        let renewed = conn
            .execute(
                "UPDATE daemons SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND epoch = $2",
                &[&inner.node.id, &epoch, &secs],
            )
            .await;
        match renewed {
            Ok(1) => {}
            Ok(_) => {
                tracing::error!(daemon = %inner.node.id, "This daemon's lease was taken over by another daemon; it drops the executions it held and registers again.");
                match register(&conn, &inner.node).await {
                    Ok(e) => {
                        inner.node.epoch.store(e, Ordering::SeqCst);
                        inner.node.lost.send_modify(|n| *n += 1);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "The daemon could not register again; trying at the next renewal.")
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "The daemon's lease could not be renewed."),
        }
    }
}

async fn writer(inner: Arc<Inner>, conn: Conn, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut conn = Some(conn);
    let mut batch = Vec::with_capacity(256);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs_now = std::mem::take(&mut batch);
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = None;
            match reconnect(&inner).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "The store's writer cannot reach PostgreSQL.");
                    fail_all(jobs_now, &backend(e));
                    continue;
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            run_batch(&inner, c, jobs_now).await;
        }
    }
}

async fn reconnect(inner: &Inner) -> Result<Conn, tokio_postgres::Error> {
    let c = connect(inner).await?;
    writer_session(&c, inner.node.lease).await?;
    Ok(c)
}

/// Tells every job of a batch that it failed, with the same message.
fn fail_all(jobs: Vec<Job>, e: &StoreError) {
    let message = match e {
        StoreError::Backend(m) => m.clone(),
        other => other.to_string(),
    };
    for job in jobs {
        let _ = job.reply.send(Err(StoreError::Backend(message.clone())));
    }
}

/// One group commit; if it fails, each job runs again alone so that only the one at fault
/// (or, for a fault of the database or the lease, every one) is told.
async fn run_batch(inner: &Inner, conn: &mut Conn, jobs: Vec<Job>) {
    let works: Vec<&Work> = jobs.iter().map(|j| &j.work).collect();
    match transaction(inner, conn, &works).await {
        Ok(answers) => {
            inner.stats.transactions.fetch_add(1, Ordering::Relaxed);
            inner.stats.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);
            for (job, a) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(Ok(a));
            }
        }
        Err(TxError::Fenced) => fail_all(jobs, &TxError::Fenced.into_store()),
        Err(e) if jobs.len() == 1 => {
            if let TxError::Db(e) = &e {
                tracing::error!(error = %e, "A store write failed.");
            }
            fail_all(jobs, &e.into_store());
        }
        Err(e) => {
            let group = jobs.len();
            if let TxError::Db(e) = &e {
                tracing::warn!(error = %e, group, "A store group failed; each of its jobs is retried alone.");
            }
            for job in jobs {
                let answer = transaction(inner, conn, &[&job.work]).await;
                let answer = match answer {
                    Ok(mut a) => {
                        inner.stats.transactions.fetch_add(1, Ordering::Relaxed);
                        inner.stats.jobs.fetch_add(1, Ordering::Relaxed);
                        Ok(a.remove(0))
                    }
                    Err(e) => Err(e.into_store()),
                };
                let _ = job.reply.send(answer);
            }
        }
    }
}

/// The statements of a batch's writes, each kind merged into one statement over arrays.
#[derive(Default)]
struct Merged<'a> {
    event_exec: Vec<i64>,
    event_id: Vec<i64>,
    event_json: Vec<&'a str>,
    /// Frames written, by (execution, path), after the deletes that cover them.
    frames: HashMap<(i64, &'a str), &'a str>,
    delete_exec: Vec<i64>,
    delete_prefix: Vec<&'a str>,
}

async fn transaction(inner: &Inner, conn: &mut Conn, works: &[&Work]) -> Result<Vec<Created>, TxError> {
    let tx = conn.client.transaction().await?;
    let result = apply(inner, &tx, &conn.prepared, works).await;
    match result {
        Ok(answers) => {
            tx.commit().await?;
            Ok(answers)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn apply(
    inner: &Inner,
    tx: &tokio_postgres::Transaction<'_>,
    cache: &Mutex<HashMap<&'static str, Statement>>,
    works: &[&Work],
) -> Result<Vec<Created>, TxError> {
    let me = &inner.node.id;
    let epoch = inner.node.epoch.load(Ordering::SeqCst);
    let st = |sql| prepared(tx, cache, sql);

    // The fence: the lock, held until the commit, makes a takeover of this daemon wait for
    // this transaction; the epoch, read after the lock in a statement of its own, says whether
    // a takeover came first.
    let lock = st("SELECT pg_advisory_xact_lock_shared($1, hashtext($2))").await?;
    let fence = st("SELECT 1 FROM daemons WHERE id = $1 AND epoch = $2").await?;
    let creates: Vec<&ExecutionRecord> = works
        .iter()
        .filter_map(|w| match w {
            Work::Create(e, _) => Some(&**e),
            Work::Commit(_) => None,
        })
        .collect();
    let fenced = async {
        tx.query(&lock, &[&FENCE_LOCKS, me]).await?;
        tx.query(&fence, &[me, &epoch]).await
    };
    let created = insert_executions(tx, cache, &creates, me, epoch);
    let (fenced, created) = futures::join!(fenced, created);
    if fenced?.is_empty() {
        return Err(TxError::Fenced);
    }
    let mut seqs: HashMap<&str, i64> = created?;
    let inserted: std::collections::HashSet<&str> = seqs.keys().copied().collect();

    // The writes to apply: a creation's only where it created its execution.
    let ops: Vec<&Op> = works
        .iter()
        .flat_map(|w| match w {
            Work::Commit(ops) => ops.as_slice(),
            Work::Create(e, ops) if inserted.contains(e.arn.as_str()) => ops.as_slice(),
            Work::Create(..) => &[],
        })
        .collect();
    // Every other execution named: its seq, and whether it is this daemon's to write.
    let mut named: Vec<&str> = ops.iter().map(|op| op.arn()).filter(|arn| !seqs.contains_key(arn)).collect();
    named.sort_unstable();
    named.dedup();
    if !named.is_empty() {
        let s = st("SELECT arn, seq, owner FROM executions WHERE arn = ANY($1)").await?;
        let rows = tx.query(&s, &[&named]).await?;
        let mut found: HashMap<String, (i64, Option<String>)> =
            rows.into_iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
        for arn in &named {
            match found.remove(*arn) {
                None => return Err(TxError::Refused(format!("there is no execution {arn}"))),
                Some((_, Some(owner))) if owner != *me => {
                    return Err(TxError::Refused(format!(
                        "the execution {arn} is owned by the daemon {owner:?} now; this daemon's writes to it are refused"
                    )))
                }
                Some((seq, _)) => {
                    seqs.insert(arn, seq);
                }
            }
        }
    }

    // Events and frames are tables of their own, so their writes merge whatever lies
    // between them; the other writes keep their order.
    let mut m = Merged::default();
    let mut rest: Vec<(i64, &Op)> = Vec::new();
    for op in &ops {
        let seq = seqs[op.arn()];
        match op {
            Op::Event { id, json, .. } => {
                m.event_exec.push(seq);
                m.event_id.push(*id);
                m.event_json.push(json);
            }
            Op::Frame { path, json, .. } => {
                m.frames.insert((seq, path), json);
            }
            Op::DeleteFrames { prefix, .. } => {
                let under = |p: &str| {
                    prefix.is_empty()
                        || p == prefix
                        || (p.len() > prefix.len()
                            && p.starts_with(prefix.as_str())
                            && p.as_bytes()[prefix.len()] == b'/')
                };
                m.frames.retain(|(s, p), _| *s != seq || !under(p));
                m.delete_exec.push(seq);
                m.delete_prefix.push(prefix);
            }
            other => rest.push((seq, other)),
        }
    }
    dedup_events(&mut m);
    let (frame_exec, (frame_path, frame_json)): (Vec<i64>, (Vec<&str>, Vec<&str>)) =
        m.frames.iter().map(|((s, p), d)| (*s, (*p, *d))).unzip();

    let events = st(
        "INSERT INTO events (execution, id, event) SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[])
         ON CONFLICT (execution, id) DO UPDATE SET event = excluded.event",
    )
    .await?;
    let deletes = st("DELETE FROM frames f USING unnest($1::int8[], $2::text[]) AS d(execution, prefix)
         WHERE f.execution = d.execution AND (d.prefix = '' OR f.path = d.prefix
             OR (f.path >= d.prefix || '/' AND f.path < d.prefix || '0'))")
    .await?;
    let frames = st(
        "INSERT INTO frames (execution, path, data) SELECT * FROM unnest($1::int8[], $2::text[], $3::text[])
         ON CONFLICT (execution, path) DO UPDATE SET data = excluded.data",
    )
    .await?;
    let mut calls: Vec<BoxFuture<'_, Result<u64, tokio_postgres::Error>>> = Vec::new();
    if !m.event_exec.is_empty() {
        calls.push(async { tx.execute(&events, &[&m.event_exec, &m.event_id, &m.event_json]).await }.boxed());
    }
    if !m.delete_exec.is_empty() {
        calls.push(async { tx.execute(&deletes, &[&m.delete_exec, &m.delete_prefix]).await }.boxed());
    }
    if !frame_exec.is_empty() {
        calls.push(async { tx.execute(&frames, &[&frame_exec, &frame_path, &frame_json]).await }.boxed());
    }
    let others = other_statements(tx, cache, &rest, me).await?;
    calls.extend(others);
    // Sent in order, answered together: one round trip for them all.
    futures::future::try_join_all(calls).await?;

    let mut answers = Vec::with_capacity(works.len());
    for w in works {
        answers.push(match w {
            Work::Create(e, _) if !inserted.contains(e.arn.as_str()) => {
                let s = st(SELECT_EXECUTION).await?;
                let row = tx.query_opt(&s, &[&e.arn]).await?;
                match row {
                    Some(r) => Created::Existing(Box::new(
                        row_to_execution(&r).map_err(|e| TxError::Refused(e.to_string()))?,
                    )),
                    None => return Err(TxError::Refused(format!("there is no execution {}", e.arn))),
                }
            }
            _ => Created::New,
        });
    }
    Ok(answers)
}

const SELECT_EXECUTION: &str =
    "SELECT arn, name, state_machine_arn, state_machine_name, status, input, output, \
     error, cause, start, stop, redrive_count, parent FROM executions WHERE arn = $1";

/// Keeps the last write of each (execution, id): one statement cannot upsert a row twice.
fn dedup_events(m: &mut Merged<'_>) {
    let mut seen: HashMap<(i64, i64), usize> = HashMap::with_capacity(m.event_exec.len());
    let mut dup = false;
    for i in 0..m.event_exec.len() {
        if seen.insert((m.event_exec[i], m.event_id[i]), i).is_some() {
            dup = true;
        }
    }
    if !dup {
        return;
    }
    let keep: Vec<usize> = {
        let mut k: Vec<usize> = seen.into_values().collect();
        k.sort_unstable();
        k
    };
    m.event_exec = keep.iter().map(|&i| m.event_exec[i]).collect();
    m.event_id = keep.iter().map(|&i| m.event_id[i]).collect();
    m.event_json = keep.iter().map(|&i| m.event_json[i]).collect();
}

/// Inserts the batch's new executions (owned by this daemon) in one statement; returns the
/// seqs of those inserted. An ARN that exists already is not inserted.
async fn insert_executions<'a>(
    tx: &tokio_postgres::Transaction<'_>,
    cache: &Mutex<HashMap<&'static str, Statement>>,
    creates: &[&'a ExecutionRecord],
    me: &str,
    epoch: i64,
) -> Result<HashMap<&'a str, i64>, tokio_postgres::Error> {
    if creates.is_empty() {
        return Ok(HashMap::new());
    }
    let s = prepared(
        tx,
        cache,
        "INSERT INTO executions (arn, name, state_machine_arn, state_machine_name, status, input, output,
             error, cause, start, stop, redrive_count, parent, parent_execution, owner, epoch)
         SELECT u.*, $15::text, $16::int8 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::int4[], $13::text[],
             $14::text[]) AS u
         ON CONFLICT (arn) DO NOTHING RETURNING arn, seq",
    )
    .await?;
    let col = |f: fn(&ExecutionRecord) -> Option<String>| creates.iter().map(|e| f(e)).collect::<Vec<_>>();
    let arn: Vec<&str> = creates.iter().map(|e| e.arn.as_str()).collect();
    let name: Vec<&str> = creates.iter().map(|e| e.name.as_str()).collect();
    let sm_arn: Vec<&str> = creates.iter().map(|e| e.state_machine_arn.as_str()).collect();
    let sm_name: Vec<&str> = creates.iter().map(|e| e.state_machine_name.as_str()).collect();
    let status: Vec<&str> = creates.iter().map(|e| e.status.as_str()).collect();
    let input: Vec<&str> = creates.iter().map(|e| e.input.as_str()).collect();
    let output = col(|e| e.output.clone());
    let error = col(|e| e.error.clone());
    let cause = col(|e| e.cause.clone());
    let start: Vec<i64> = creates.iter().map(|e| e.start.timestamp_nanos_opt().unwrap_or_default()).collect();
    let stop: Vec<Option<i64>> =
        creates.iter().map(|e| e.stop.and_then(|t| t.timestamp_nanos_opt())).collect();
    let redrive: Vec<i32> =
        creates.iter().map(|e| i32::try_from(e.redrive_count).unwrap_or(i32::MAX)).collect();
    let parent = col(|e| e.parent.as_ref().map(|p| serde_json::to_string(p).unwrap_or_default()));
    let parent_execution = col(|e| e.parent.as_ref().map(|p| p.execution_arn.clone()));
    let rows = tx
        .query(
            &s,
            &[
                &arn,
                &name,
                &sm_arn,
                &sm_name,
                &status,
                &input,
                &output,
                &error,
                &cause,
                &start,
                &stop,
                &redrive,
                &parent,
                &parent_execution,
                &me,
                &epoch,
            ],
        )
        .await?;
    let mut seqs = HashMap::with_capacity(rows.len());
    for r in rows {
        let a: String = r.get(0);
        // Map the returned text back to the caller's borrowed ARN.
        if let Some(e) = creates.iter().find(|e| e.arn == a) {
            seqs.insert(e.arn.as_str(), r.get(1));
        }
    }
    Ok(seqs)
}

/// The writes other than events and frames, in their order, with each run of ends or
/// definitions merged into one statement.
async fn other_statements<'t>(
    tx: &'t tokio_postgres::Transaction<'_>,
    cache: &Mutex<HashMap<&'static str, Statement>>,
    ops: &'t [(i64, &'t Op)],
    me: &'t str,
) -> Result<Vec<BoxFuture<'t, Result<u64, tokio_postgres::Error>>>, tokio_postgres::Error> {
    let st = |sql| prepared(tx, cache, sql);
    let mut calls: Vec<BoxFuture<'t, Result<u64, tokio_postgres::Error>>> = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        let run_end = ops[i..]
            .iter()
            .position(|(_, o)| std::mem::discriminant(*o) != std::mem::discriminant(ops[i].1))
            .map_or(ops.len(), |p| i + p);
        let run = &ops[i..run_end];
        match ops[i].1 {
            Op::Finish { .. } => {
                let mut seq = Vec::new();
                let mut status = Vec::new();
                let mut output = Vec::new();
                let mut error = Vec::new();
                let mut cause = Vec::new();
                let mut stop = Vec::new();
                for (s, op) in run {
                    if let Op::Finish { status: st, output: o, error: e, cause: c, stop: t, .. } = op {
                        seq.push(*s);
                        status.push(*st);
                        output.push(o.as_deref());
                        error.push(e.as_deref());
                        cause.push(c.as_deref());
                        stop.push(*t);
                    }
                }
                // The first end wins (a stop racing a finishing task); an ended execution
                // has no owner.
                let fin = st(
                    "UPDATE executions e SET status = u.status, output = u.output, error = u.error, cause = u.cause,
                         stop = u.stop, owner = NULL
                     FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[])
                         AS u(seq, status, output, error, cause, stop)
                     WHERE e.seq = u.seq AND e.status = 'RUNNING'",
                )
                .await?;
                let unpark = st("DELETE FROM parked WHERE execution = ANY($1)").await?;
                let tasks = st("DELETE FROM activity_tasks WHERE execution = ANY($1)").await?;
                let seq2 = seq.clone();
                let seq3 = seq.clone();
                calls.push(
                    async move { tx.execute(&fin, &[&seq, &status, &output, &error, &cause, &stop]).await }
                        .boxed(),
                );
                calls.push(async move { tx.execute(&unpark, &[&seq2]).await }.boxed());
                calls.push(async move { tx.execute(&tasks, &[&seq3]).await }.boxed());
            }
            Op::Definition { .. } => {
                let mut seq = Vec::new();
                let mut hash = Vec::new();
                let mut texts: HashMap<&str, &str> = HashMap::new();
                for (s, op) in run {
                    if let Op::Definition { hash: h, text, .. } = op {
                        seq.push(*s);
                        hash.push(h.as_str());
                        texts.insert(h.as_str(), text);
                    }
                }
                // In one order in every writer: two inserting the same hashes cannot deadlock.
                let mut texts: Vec<(&str, &str)> = texts.into_iter().collect();
                texts.sort_unstable();
                let (dh, dt): (Vec<&str>, Vec<&str>) = texts.into_iter().unzip();
                let put = st(
                    "INSERT INTO definitions (hash, definition) SELECT * FROM unnest($1::text[], $2::text[])
                     ON CONFLICT (hash) DO NOTHING",
                )
                .await?;
                let set = st(
                    "UPDATE executions e SET definition = u.hash FROM unnest($1::int8[], $2::text[]) AS u(seq, hash)
                     WHERE e.seq = u.seq",
                )
                .await?;
                calls.push(async move { tx.execute(&put, &[&dh, &dt]).await }.boxed());
                calls.push(async move { tx.execute(&set, &[&seq, &hash]).await }.boxed());
            }
            _ => {
                for (seq, op) in run {
                    let seq = *seq;
                    match op {
                        Op::Park { due, .. } => {
                            // A parked execution is nobody's: whichever daemon its timer or
                            // a token reaches first takes it.
                            let park = st("INSERT INTO parked (execution, due) VALUES ($1, $2)
                                 ON CONFLICT (execution) DO UPDATE SET due = excluded.due")
                            .await?;
                            let free = st(
                                "UPDATE executions SET owner = NULL WHERE seq = $1 AND status = 'RUNNING'",
                            )
                            .await?;
                            calls.push(async move { tx.execute(&park, &[&seq, due]).await }.boxed());
                            calls.push(async move { tx.execute(&free, &[&seq]).await }.boxed());
                        }
                        Op::Unpark { .. } => {
                            let s = st("DELETE FROM parked WHERE execution = $1").await?;
                            let own =
                                st("UPDATE executions SET owner = $2 WHERE seq = $1 AND status = 'RUNNING'")
                                    .await?;
                            calls.push(async move { tx.execute(&s, &[&seq]).await }.boxed());
                            calls.push(async move { tx.execute(&own, &[&seq, &me]).await }.boxed());
                        }
                        Op::Redrive { .. } => {
                            let s = st(
                                "UPDATE executions SET status = 'RUNNING', output = NULL, error = NULL, cause = NULL,
                                 stop = NULL, redrive_count = redrive_count + 1, resume_attempts = 0, owner = $2
                                 WHERE seq = $1 AND status <> 'RUNNING'",
                            )
                            .await?;
                            calls.push(async move { tx.execute(&s, &[&seq, &me]).await }.boxed());
                        }
                        Op::Link { parent, parent_execution, .. } => {
                            let s = st(
                                "UPDATE executions SET parent = $2, parent_execution = COALESCE($3, parent_execution)
                                 WHERE seq = $1",
                            )
                            .await?;
                            calls.push(
                                async move { tx.execute(&s, &[&seq, parent, parent_execution]).await }
                                    .boxed(),
                            );
                        }
                        Op::ActivityTask { activity_arn, token, input, .. } => {
                            let s = st(
                                "INSERT INTO activity_tasks (activity_arn, execution, token, input) VALUES ($1, $2, $3, $4)",
                            )
                            .await?;
                            calls.push(
                                async move { tx.execute(&s, &[activity_arn, &seq, token, input]).await }
                                    .boxed(),
                            );
                        }
                        // Merged above, or not among the rest.
                        _ => {}
                    }
                }
            }
        }
        i = run_end;
    }
    Ok(calls)
}

/// Fences the daemons other than `me` whose lease ran out while they own RUNNING executions
/// (only the owner of `arn`, when given): each one's fence lock, taken exclusively, waits for
/// its transaction in flight, and its bumped epoch refuses every later one. One statement,
/// so the lock is held until it commits.
async fn fence_expired(c: &Conn, me: &str, arn: Option<&str>) -> Result<(), StoreError> {
    c.execute(
        "WITH expired AS (SELECT DISTINCT d.id FROM executions e JOIN daemons d ON d.id = e.owner
             WHERE e.status = 'RUNNING' AND d.id <> $1 AND d.lease_until < now()
               AND ($3::text IS NULL OR e.arn = $3)),
         locked AS (SELECT id, pg_advisory_xact_lock($2, hashtext(id)) FROM expired)
         UPDATE daemons d SET epoch = d.epoch + 1, lease_until = now() FROM locked WHERE d.id = locked.id",
        &[&me, &FENCE_LOCKS, &arn],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

impl PostgresStore {
    /// Claims the RUNNING executions, not parked, of no daemon and of daemons whose lease has
    /// run out (fenced first, so that nothing they still had in flight lands after the
    /// claim), with this daemon's own when `own`.
    fn claim_running(&self, own: bool) -> Result<Vec<ExecutionRecord>, StoreError> {
        let inner = self.inner.clone();
        self.read(move |c| async move {
            let me = &inner.node.id;
            // Every statement on its own: the connection is shared with other reads.
            fence_expired(&c, me, None).await?;
            // Its own first: read after the claim, they would hold the claimed ones too.
            let mut rows = Vec::new();
            if own {
                rows = c
                    .query(
                        "SELECT arn, name, state_machine_arn, state_machine_name, status, input, output, error,
                             cause, start, stop, redrive_count, parent FROM executions e
                         WHERE e.owner = $1 AND e.status = 'RUNNING'
                           AND NOT EXISTS (SELECT 1 FROM parked p WHERE p.execution = e.seq)",
                        &[me],
                    )
                    .await
                    .map_err(backend)?;
            }
            let claimed = c
                .query(
                    "UPDATE executions e SET owner = $1, epoch = e.epoch + 1
                     WHERE e.status = 'RUNNING' AND e.owner IS DISTINCT FROM $1
                       AND NOT EXISTS (SELECT 1 FROM parked p WHERE p.execution = e.seq)
                       AND (e.owner IS NULL OR NOT EXISTS
                           (SELECT 1 FROM daemons d WHERE d.id = e.owner AND d.lease_until > now()))
                     RETURNING arn, name, state_machine_arn, state_machine_name, status, input, output, error,
                         cause, start, stop, redrive_count, parent",
                    &[me],
                )
                .await
                .map_err(backend)?;
            rows.extend(claimed);
            let mut v = executions(rows)?;
            v.sort_by(|a, b| (a.start, &a.arn).cmp(&(b.start, &b.arn)));
            Ok(v)
        })
    }
}

impl Store for PostgresStore {
    fn put_state_machine(&self, sm: &StateMachineRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(sm).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (arn, name) = (sm.arn.clone(), sm.name.clone());
        self.read(move |c| async move {
            c.execute(
                "INSERT INTO state_machines (arn, name, record) VALUES ($1, $2, $3)
                 ON CONFLICT (arn) DO UPDATE SET name = excluded.name, record = excluded.record",
                &[&arn, &name, &record],
            )
            .await
            .map_err(backend)?;
            Ok(())
        })
    }

    fn get_state_machine(&self, arn: &str) -> Result<Option<StateMachineRecord>, StoreError> {
        let arn = arn.to_string();
        self.read(move |c| async move {
            let rows = c
                .query("SELECT record FROM state_machines WHERE arn = $1", &[&arn])
                .await
                .map_err(backend)?;
            rows.first().map(|r| parse_json(r.get::<_, &str>(0))).transpose()
        })
    }

    fn list_state_machines(&self) -> Result<Vec<StateMachineRecord>, StoreError> {
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT record FROM state_machines ORDER BY name COLLATE \"C\", arn COLLATE \"C\"",
                    &[],
                )
                .await
                .map_err(backend)?;
            rows.iter().map(|r| parse_json(r.get::<_, &str>(0))).collect()
        })
    }

    fn delete_state_machine(&self, arn: &str) -> Result<bool, StoreError> {
        let arn = arn.to_string();
        self.read(move |c| async move {
            let n = c.execute("DELETE FROM state_machines WHERE arn = $1", &[&arn]).await.map_err(backend)?;
            Ok(n > 0)
        })
    }

    fn create_execution(
        &self,
        e: ExecutionRecord,
        writes: Vec<Write>,
    ) -> BoxFuture<'static, Result<Created, StoreError>> {
        let checked = create_ops(&e, writes);
        match checked {
            Ok(ops) => self.submit(Work::Create(Box::new(e), ops)),
            Err(err) => future::ready(Err(err)).boxed(),
        }
    }

    fn get_execution(&self, arn: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let arn = arn.to_string();
        self.read(move |c| async move {
            let rows = c.query(SELECT_EXECUTION, &[&arn]).await.map_err(backend)?;
            rows.first().map(row_to_execution).transpose()
        })
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
        let status = status.map(|s| s.as_str().to_string());
        let sm = state_machine_arn.to_string();
        let items = self.read(move |c| async move {
            let rows = match &after {
                Some((start, arn)) => c
                    .query(
                        "SELECT arn, name, state_machine_arn, state_machine_name, status, input, output, error,
                             cause, start, stop, redrive_count, parent FROM executions
                         WHERE state_machine_arn = $1 AND ($2::text IS NULL OR status = $2)
                             AND (start, arn COLLATE \"C\") < ($3, $4 COLLATE \"C\")
                         ORDER BY start DESC, arn COLLATE \"C\" DESC LIMIT $5",
                        &[&sm, &status, start, arn, &fetch],
                    )
                    .await,
                None => c
                    .query(
                        "SELECT arn, name, state_machine_arn, state_machine_name, status, input, output, error,
                             cause, start, stop, redrive_count, parent FROM executions
                         WHERE state_machine_arn = $1 AND ($2::text IS NULL OR status = $2)
                         ORDER BY start DESC, arn COLLATE \"C\" DESC LIMIT $3",
                        &[&sm, &status, &fetch],
                    )
                    .await,
            };
            executions(rows.map_err(backend)?)
        })?;
        Ok(super::page(items, limit))
    }

    /// Claims and returns the RUNNING executions, not parked, that this daemon is to run:
    /// its own, those of no daemon, and those of daemons whose lease has run out.
    fn running(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.claim_running(true)
    }

    fn children(&self, parent_arn: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        let p = parent_arn.to_string();
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT arn, name, state_machine_arn, state_machine_name, status, input, output, error,
                         cause, start, stop, redrive_count, parent FROM executions
                     WHERE parent_execution = $1 AND parent IS NOT NULL AND status = 'RUNNING' ORDER BY start, arn",
                    &[&p],
                )
                .await
                .map_err(backend)?;
            executions(rows)
        })
    }

    fn unreported(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT arn, name, state_machine_arn, state_machine_name, status, input, output, error,
                         cause, start, stop, redrive_count, parent FROM executions
                     WHERE parent IS NOT NULL AND status <> 'RUNNING' ORDER BY start, arn",
                    &[],
                )
                .await
                .map_err(backend)?;
            executions(rows)
        })
    }

    fn due_timers(&self, limit: usize) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT p.due, e.arn FROM parked p JOIN executions e ON e.seq = p.execution
                     WHERE p.due IS NOT NULL ORDER BY p.due LIMIT $1",
                    &[&limit],
                )
                .await
                .map_err(backend)?;
            Ok(rows.iter().map(|r| (from_nanos(r.get(0)), r.get(1))).collect())
        })
    }

    fn parked(&self) -> Result<u64, StoreError> {
        self.read(move |c| async move {
            let rows = c.query("SELECT COUNT(*) FROM parked", &[]).await.map_err(backend)?;
            Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
        })
    }

    fn history(
        &self,
        execution_arn: &str,
        after: u64,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Value>, StoreError> {
        let (after, limit) = history_bounds(after, limit, reverse);
        let arn = execution_arn.to_string();
        self.read(move |c| async move {
            let rows = if reverse {
                c.query(
                    "SELECT event FROM events WHERE execution = (SELECT seq FROM executions WHERE arn = $1)
                     AND id < $2 ORDER BY id DESC LIMIT $3",
                    &[&arn, &after, &limit],
                )
                .await
            } else {
                c.query(
                    "SELECT event FROM events WHERE execution = (SELECT seq FROM executions WHERE arn = $1)
                     AND id > $2 ORDER BY id LIMIT $3",
                    &[&arn, &after, &limit],
                )
                .await
            };
            rows.map_err(backend)?.iter().map(|r| parse_json(r.get::<_, &str>(0))).collect()
        })
    }

    fn last_event_id(&self, execution_arn: &str) -> Result<u64, StoreError> {
        let arn = execution_arn.to_string();
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT COALESCE(MAX(id), 0) FROM events WHERE execution = (SELECT seq FROM executions WHERE arn = $1)",
                    &[&arn],
                )
                .await
                .map_err(backend)?;
            Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
        })
    }

    fn frames(&self, execution_arn: &str) -> Result<Vec<Frame>, StoreError> {
        let arn = execution_arn.to_string();
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT path, data FROM frames WHERE execution = (SELECT seq FROM executions WHERE arn = $1)
                     ORDER BY path",
                    &[&arn],
                )
                .await
                .map_err(backend)?;
            rows.iter()
                .map(|r| Ok(Frame { execution_arn: arn.clone(), path: r.get(0), data: parse_json(r.get::<_, &str>(1))? }))
                .collect()
        })
    }

    fn definition_of(&self, execution_arn: &str) -> Result<Option<(String, String)>, StoreError> {
        let arn = execution_arn.to_string();
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT d.hash, d.definition FROM executions e JOIN definitions d ON d.hash = e.definition
                     WHERE e.arn = $1",
                    &[&arn],
                )
                .await
                .map_err(backend)?;
            Ok(rows.first().map(|r| (r.get(0), r.get(1))))
        })
    }

    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'static, Result<(), StoreError>> {
        match to_ops(writes) {
            Ok(ops) => {
                let answer = self.submit(Work::Commit(ops));
                async move { answer.await.map(|_| ()) }.boxed()
            }
            Err(e) => future::ready(Err(e)).boxed(),
        }
    }

    fn count_resume(&self, execution_arn: &str, last_event_id: u64) -> Result<u32, StoreError> {
        let arn = execution_arn.to_string();
        let id = event_id(last_event_id)?;
        self.read(move |c| async move {
            let rows = c
                .query(
                    "UPDATE executions SET resume_attempts = CASE WHEN resume_event_id = $2
                         THEN resume_attempts + 1 ELSE 1 END, resume_event_id = $2
                     WHERE arn = $1 RETURNING resume_attempts",
                    &[&arn, &id],
                )
                .await
                .map_err(backend)?;
            let n: i32 = rows
                .first()
                .ok_or_else(|| StoreError::Backend(format!("there is no execution {arn}")))?
                .get(0);
            Ok(u32::try_from(n).unwrap_or(0))
        })
    }

    fn purge_finished_before(&self, t: DateTime<Utc>) -> Result<usize, StoreError> {
        let before = t.timestamp_nanos_opt().unwrap_or(if t.timestamp() > 0 { i64::MAX } else { i64::MIN });
        self.read(move |c| async move {
            // Messages between daemons whose sender gave up long ago (it died waiting).
            c.execute("DELETE FROM commands WHERE created < now() - interval '1 hour'", &[])
                .await
                .map_err(backend)?;
            let mut total = 0usize;
            loop {
                let rows = c
                    .query(
                        "DELETE FROM executions WHERE seq IN (SELECT seq FROM executions
                             WHERE stop IS NOT NULL AND stop < $1 AND status <> 'RUNNING' LIMIT $2)
                         RETURNING seq",
                        &[&before, &PURGE_CHUNK],
                    )
                    .await
                    .map_err(backend)?;
                let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                if !seqs.is_empty() {
                    c.execute("DELETE FROM events WHERE execution = ANY($1)", &[&seqs])
                        .await
                        .map_err(backend)?;
                    c.execute("DELETE FROM frames WHERE execution = ANY($1)", &[&seqs])
                        .await
                        .map_err(backend)?;
                }
                total += seqs.len();
                if (seqs.len() as i64) < PURGE_CHUNK {
                    break;
                }
            }
            if total > 0 {
                c.execute(
                    "DELETE FROM definitions WHERE NOT EXISTS
                     (SELECT 1 FROM executions WHERE executions.definition = definitions.hash)",
                    &[],
                )
                .await
                .map_err(backend)?;
            }
            Ok(total)
        })
    }

    fn last_tick(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let name = name.to_string();
        self.read(move |c| async move {
            let rows = c
                .query("SELECT MAX(tick) FROM schedule_ticks WHERE schedule = $1", &[&name])
                .await
                .map_err(backend)?;
            Ok(rows.first().and_then(|r| r.get::<_, Option<i64>>(0)).map(from_nanos))
        })
    }

    fn record_tick(&self, name: &str, tick: DateTime<Utc>) -> BoxFuture<'static, Result<(), StoreError>> {
        let claimed = self.claim_tick(name, tick);
        async move { claimed.await.map(drop) }.boxed()
    }

    fn put_activity(&self, a: ActivityRecord) -> BoxFuture<'static, Result<ActivityRecord, StoreError>> {
        let created = match nanos(a.created) {
            Ok(t) => t,
            Err(e) => return future::ready(Err(e)).boxed(),
        };
        self.spawn(move |c| async move {
            c.execute(
                "INSERT INTO activities (arn, name, created) VALUES ($1, $2, $3) ON CONFLICT (arn) DO NOTHING",
                &[&a.arn, &a.name, &created],
            )
            .await
            .map_err(backend)?;
            let rows = c.query("SELECT arn, name, created FROM activities WHERE arn = $1", &[&a.arn]).await.map_err(backend)?;
            rows.first().map(row_to_activity).ok_or_else(|| StoreError::Backend("the activity is gone".into()))
        })
    }

    fn get_activity(&self, arn: &str) -> Result<Option<ActivityRecord>, StoreError> {
        let arn = arn.to_string();
        self.read(move |c| async move {
            let rows = c
                .query("SELECT arn, name, created FROM activities WHERE arn = $1", &[&arn])
                .await
                .map_err(backend)?;
            Ok(rows.first().map(row_to_activity))
        })
    }

    fn list_activities(&self) -> Result<Vec<ActivityRecord>, StoreError> {
        self.read(move |c| async move {
            let rows = c
                .query("SELECT arn, name, created FROM activities ORDER BY name COLLATE \"C\", arn COLLATE \"C\"", &[])
                .await
                .map_err(backend)?;
            Ok(rows.iter().map(row_to_activity).collect())
        })
    }

    fn delete_activity(&self, arn: &str) -> BoxFuture<'static, Result<bool, StoreError>> {
        let arn = arn.to_string();
        self.spawn(move |c| async move {
            c.execute("DELETE FROM activity_tasks WHERE activity_arn = $1", &[&arn])
                .await
                .map_err(backend)?;
            let n = c.execute("DELETE FROM activities WHERE arn = $1", &[&arn]).await.map_err(backend)?;
            Ok(n > 0)
        })
    }

    fn take_activity_task(
        &self,
        activity_arn: &str,
    ) -> BoxFuture<'static, Result<Option<ActivityTask>, StoreError>> {
        let arn = activity_arn.to_string();
        self.spawn(move |c| async move {
            // SKIP LOCKED: two daemons' workers polling at once take different tasks.
            let rows = c
                .query(
                    "DELETE FROM activity_tasks WHERE seq = (SELECT seq FROM activity_tasks WHERE activity_arn = $1
                         ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING (SELECT arn FROM executions WHERE seq = execution), token, input",
                    &[&arn],
                )
                .await
                .map_err(backend)?;
            Ok(rows.first().map(|r| ActivityTask { execution_arn: r.get(0), token: r.get(1), input: r.get(2) }))
        })
    }

    fn cluster(&self) -> Option<&dyn Cluster> {
        Some(self)
    }
}

impl Cluster for PostgresStore {
    fn node(&self) -> &str {
        &self.inner.node.id
    }

    fn lease(&self) -> Duration {
        self.inner.node.lease
    }

    fn orphans(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.claim_running(false)
    }

    fn claim(&self, arn: &str) -> Result<Option<String>, StoreError> {
        let inner = self.inner.clone();
        let arn = arn.to_string();
        self.read(move |c| async move {
            let me = &inner.node.id;
            fence_expired(&c, me, Some(&arn)).await?;
            let rows = c
                .query(
                    "UPDATE executions e SET owner = $2, epoch = e.epoch + 1
                     WHERE e.arn = $1 AND e.status = 'RUNNING' AND (e.owner IS NULL OR e.owner = $2 OR NOT EXISTS
                         (SELECT 1 FROM daemons d WHERE d.id = e.owner AND d.lease_until > now()))
                     RETURNING 1",
                    &[&arn, me],
                )
                .await
                .map_err(backend)?;
            if !rows.is_empty() {
                return Ok(None);
            }
            let rows = c.query("SELECT owner FROM executions WHERE arn = $1", &[&arn]).await.map_err(backend)?;
            Ok(Some(rows.first().and_then(|r| r.get::<_, Option<String>>(0)).unwrap_or_default()))
        })
    }

    fn send_command(
        &self,
        owner: &str,
        arn: &str,
        body: String,
    ) -> BoxFuture<'static, Result<Option<bool>, StoreError>> {
        let (owner, arn) = (owner.to_string(), arn.to_string());
        self.spawn(move |c| async move {
            let id: i64 = c
                .query(
                    "INSERT INTO commands (owner, execution_arn, body) VALUES ($1, $2, $3) RETURNING id",
                    &[&owner, &arn, &body],
                )
                .await
                .map_err(backend)?
                .first()
                .map(|r| r.get(0))
                .ok_or_else(|| StoreError::Backend("the command was not stored".into()))?;
            // The owner polls every few tens of milliseconds; ten seconds covers a busy one.
            let mut wait = Duration::from_millis(5);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(100));
                let rows =
                    c.query("SELECT answer FROM commands WHERE id = $1", &[&id]).await.map_err(backend)?;
                if let Some(a) = rows.first().and_then(|r| r.get::<_, Option<bool>>(0)) {
                    c.execute("DELETE FROM commands WHERE id = $1", &[&id]).await.map_err(backend)?;
                    return Ok(Some(a));
                }
                if tokio::time::Instant::now() > deadline {
                    c.execute("DELETE FROM commands WHERE id = $1", &[&id]).await.map_err(backend)?;
                    return Ok(None);
                }
            }
        })
    }

    fn commands(&self) -> BoxFuture<'static, Result<Vec<Command>, StoreError>> {
        let inner = self.inner.clone();
        self.spawn(move |c| async move {
            let rows = c
                .query(
                    // Each message is handed out once: it is marked seen as it is read.
                    "UPDATE commands SET seen = true WHERE id IN (SELECT id FROM commands
                         WHERE owner = $1 AND NOT seen ORDER BY id LIMIT 256)
                     RETURNING id, execution_arn, body",
                    &[&inner.node.id],
                )
                .await
                .map_err(backend)?;
            let mut v: Vec<Command> = rows
                .iter()
                .map(|r| Command { id: r.get(0), execution_arn: r.get(1), body: r.get(2) })
                .collect();
            v.sort_by_key(|c| c.id);
            Ok(v)
        })
    }

    fn answer_command(&self, id: i64, taken: bool) -> BoxFuture<'static, Result<(), StoreError>> {
        self.spawn(move |c| async move {
            c.execute("UPDATE commands SET answer = $2 WHERE id = $1", &[&id, &taken])
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn claim_tick(&self, name: &str, tick: DateTime<Utc>) -> BoxFuture<'static, Result<bool, StoreError>> {
        let tick = match nanos(tick) {
            Ok(t) => t,
            Err(e) => return future::ready(Err(e)).boxed(),
        };
        let name = name.to_string();
        self.spawn(move |c| async move {
            let n = c
                .execute(
                    "INSERT INTO schedule_ticks (schedule, tick) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&name, &tick],
                )
                .await
                .map_err(backend)?;
            if n > 0 {
                c.execute(
                    "DELETE FROM schedule_ticks WHERE schedule = $1 AND tick < $2",
                    &[&name, &(tick - TICKS_KEPT)],
                )
                .await
                .map_err(backend)?;
            }
            Ok(n > 0)
        })
    }

    fn lost(&self) -> watch::Receiver<u64> {
        self.inner.node.lost.subscribe()
    }
}

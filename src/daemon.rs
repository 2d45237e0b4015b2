//! `stepgate serve`: wiring and lifecycle. From a compiled config it opens the store, builds
//! the engine and the service, registers the workflows, resumes the executions that were
//! running, binds the API's listener (and the routes' own, when `http.listen` differs), and
//! starts every trigger; only then does it tell systemd READY=1 (a broker that is down does
//! not hold that back: it is reported and retried).
//!
//! SIGHUP reloads the config and the workflows as one: a new config with any problem is
//! refused whole (every problem logged) and the old one keeps running; otherwise the
//! workflows, routes, brokers, rules and schedules that changed are swapped in without
//! touching the rest. SIGTERM (or SIGINT) stops taking new events, lets the starts in
//! progress commit within `server.shutdown_grace_seconds`, and exits 0: running executions
//! stay journaled and resume at the next start. Without `server.access_keys` the daemon
//! refuses to listen anywhere but on loopback.

use crate::config::compile::{self, Compiled};
use crate::config::{Config, ServerConfig};
use crate::engine::Engine;
use crate::service::registry::FolderMachine;
use crate::service::Service;
use crate::store::memory::MemoryStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{StateMachineRecord, Store};
use crate::time::Clock;
use crate::triggers::{self, http, mqtt::Mqtt, schedule::Schedules};
use axum::Router;
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir { path: String, source: std::io::Error },
    #[error("cannot listen on {addr} ({key}): {source}")]
    Listen { addr: String, key: &'static str, source: std::io::Error },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error(
        "server.listen is {listen}, which is not a loopback address, and no access keys are configured: \
         set server.access_keys (access_key_id and secret_access_key) so that every API call must be \
         signed, or listen on 127.0.0.1"
    )]
    Unauthenticated { listen: String },
    #[error("the config has {} problem(s):\n{}", .0.len(), .0.join("\n"))]
    Config(Vec<String>),
}

/// The file in the state directory that a running daemon keeps and a clean shutdown removes.
pub const RUNNING_MARKER: &str = "stepgate.running";

/// The state machine records of the compiled workflows.
fn folder_records(compiled: &Compiled) -> Vec<FolderMachine> {
    let now = Utc::now();
    compiled
        .workflows
        .iter()
        .map(|w| {
            let record = StateMachineRecord {
                name: w.name.clone(),
                arn: format!(
                    "arn:aws:states:{}:{}:stateMachine:{}",
                    compiled.config.region, compiled.config.account, w.name
                ),
                definition: w.definition.clone(),
                machine_type: w.machine_type,
                role_arn: format!("arn:aws:iam::{}:role/stepgate", compiled.config.account),
                created: now,
                updated: now,
                tags: Default::default(),
                revision: 1,
            };
            FolderMachine { record, machine: w.machine.clone(), history: w.history }
        })
        .collect()
}

/// Logs the workflow files that do not load: at start they are skipped (the daemon serves
/// the others); the problems of the config itself refuse the start.
fn report_files(compiled: &Compiled) {
    for f in compiled.files.iter().filter(|f| f.checked.has_errors()) {
        let errors: Vec<String> = match &f.checked {
            compile::Checked::Syntax(e) => vec![e.to_string()],
            compile::Checked::Diagnostics(ds) => ds.iter().map(|d| d.to_string()).collect(),
        };
        tracing::error!(file = %f.file.display(), errors = %errors.join("; "), "A workflow is invalid; it is skipped.");
    }
}

/// The running daemon: what a reload replaces.
struct Daemon {
    config_file: PathBuf,
    compiled: Compiled,
    service: Arc<Service>,
    store: Arc<dyn Store>,
    stats: Arc<triggers::Stats>,
    api: Arc<dyn Fn() -> Router + Send + Sync>,
    /// The router of the API's listener, and of the routes' own listener when there is one.
    api_routes: watch::Sender<Router>,
    http_routes: Option<watch::Sender<Router>>,
    mqtt: Mqtt,
    schedules: Schedules,
}

impl Daemon {
    fn grace(&self) -> Duration {
        Duration::from_secs(self.compiled.config.server.shutdown_grace_seconds)
    }

    fn mqtt_context(&self) -> triggers::mqtt::Context {
        triggers::mqtt::Context { starter: self.service.starter(), stats: self.stats.clone() }
    }

    fn schedule_context(&self) -> triggers::schedule::Context {
        triggers::schedule::Context {
            starter: self.service.starter(),
            stats: self.stats.clone(),
            store: self.store.clone(),
        }
    }

    /// The routers for the plan's routes: on the API's listener (with the API), and on their
    /// own listener if they have one.
    fn publish_routes(&self) {
        let c = &self.compiled.config;
        let body_timeout = Duration::from_secs(c.server.body_timeout_seconds.max(1));
        let routes =
            http::router(&self.compiled.plan.routes, &self.service.starter(), &self.stats, body_timeout);
        match &self.http_routes {
            Some(own) => {
                let _ = own.send(routes.fallback(http::not_found));
                let _ = self.api_routes.send((self.api)().fallback(http::not_found));
            }
            None => {
                let _ = self.api_routes.send((self.api)().merge(routes).fallback(http::not_found));
            }
        }
    }

    /// Starts or updates every trigger to the compiled plan.
    async fn apply_triggers(&mut self) {
        self.publish_routes();
        let (mqtt, schedules, grace) = (self.mqtt_context(), self.schedule_context(), self.grace());
        self.mqtt.apply(&self.compiled.plan.mqtt, &mqtt, grace).await;
        self.schedules.apply(&self.compiled.plan.schedules, &schedules).await;
    }

    /// SIGHUP: the config file and the workflows folder read anew and swapped in whole, or
    /// refused whole.
    async fn reload(&mut self) {
        tracing::info!(config = %self.config_file.display(), "Reloading the config and the workflows.");
        let file = self.config_file.clone();
        let loaded =
            tokio::task::spawn_blocking(move || Config::load(Some(&file)).map(compile::compile)).await;
        let compiled = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                for line in e.to_string().lines() {
                    tracing::error!(problem = %line, "The new config is refused; the old one keeps running.");
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "Reading the new config failed; the old one keeps running.");
                return;
            }
        };
        if !compiled.is_clean() {
            for line in compiled.errors() {
                tracing::error!(problem = %line, "The new config is refused; the old one keeps running.");
            }
            return;
        }
        for key in needs_restart(&self.compiled.config, &compiled.config) {
            tracing::warn!(key, "A changed setting takes effect at the next restart.");
        }
        if let Err(e) = self.service.replace_folder(folder_records(&compiled)) {
            tracing::error!(error = %e.message, "The new workflows could not be stored; the old config keeps running.");
            return;
        }
        // The settings read at start stay as they were until a restart.
        let mut compiled = compiled;
        compiled.config.server = self.compiled.config.server.clone();
        compiled.config.http = self.compiled.config.http.clone();
        self.compiled = compiled;
        self.apply_triggers().await;
        tracing::info!(
            workflows = self.compiled.workflows.len(),
            routes = self.compiled.plan.routes.len(),
            mqtt = self.compiled.plan.mqtt.rules.len(),
            schedules = self.compiled.plan.schedules.len(),
            "Reloaded."
        );
    }
}

/// The keys whose change a reload cannot apply.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let same = |a: serde_json::Result<serde_json::Value>, b: serde_json::Result<serde_json::Value>| matches!((a, b), (Ok(a), Ok(b)) if a == b);
    let mut out = Vec::new();
    let mut check = |key, a, b| {
        if !same(a, b) {
            out.push(key);
        }
    };
    check("server", serde_json::to_value(&old.server), serde_json::to_value(&new.server));
    check("storage", serde_json::to_value(&old.storage), serde_json::to_value(&new.storage));
    check("http.listen", serde_json::to_value(&old.http), serde_json::to_value(&new.http));
    check("limits", serde_json::to_value(&old.limits), serde_json::to_value(&new.limits));
    check("functions", serde_json::to_value(&old.functions), serde_json::to_value(&new.functions));
    // The connectors are built once, at start.
    check("connections", serde_json::to_value(&old.connections), serde_json::to_value(&new.connections));
    check("iotdata", serde_json::to_value(&old.iotdata), serde_json::to_value(&new.iotdata));
    #[cfg(feature = "aws")]
    {
        check("aws", serde_json::to_value(&old.aws), serde_json::to_value(&new.aws));
        check("eventbridge", serde_json::to_value(&old.eventbridge), serde_json::to_value(&new.eventbridge));
    }
    check("log", serde_json::to_value(&old.log), serde_json::to_value(&new.log));
    check("region", serde_json::to_value(&old.region), serde_json::to_value(&new.region));
    check("account", serde_json::to_value(&old.account), serde_json::to_value(&new.account));
    out
}

/// Binds `addr` for `key`.
async fn bind(addr: &str, key: &'static str) -> Result<tokio::net::TcpListener, DaemonError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen {
        addr: addr.to_string(),
        key,
        source,
    })
}

/// Runs the daemon on a compiled config (read from `config_file`, which SIGHUP reads again)
/// until SIGINT or SIGTERM.
pub async fn serve(config_file: PathBuf, compiled: Compiled) -> Result<(), DaemonError> {
    if !compiled.problems.is_empty() {
        return Err(DaemonError::Config(compiled.problems.iter().map(|p| p.to_string()).collect()));
    }
    report_files(&compiled);
    let config = compiled.config.clone();
    // Before anything runs: a refused start must not resume executions first.
    require_keys_off_loopback(&config.server).await?;
    let state_dir = PathBuf::from(&config.storage.state_dir);
    // Execution data lives here: private to the daemon's user when the daemon creates it.
    crate::store::sqlite::private_dir(&state_dir)
        .map_err(|source| DaemonError::StateDir { path: state_dir.display().to_string(), source })?;
    let store = open_store(&config.storage, &state_dir)?;
    let express: Arc<dyn Store> = Arc::new(MemoryStore::bounded_in_memory(
        config.storage.express_executions,
        config.storage.express_memory_bytes,
    ));
    let connectors = crate::connectors::build(&config, store.clone());
    let (activities, nested) = (connectors.activities, connectors.nested);
    let engine = Arc::new(
        Engine::new(
            connectors.registry,
            Arc::new(Clock::default()),
            config.limits(),
            &config.region,
            &config.account,
        )
        .with_task_limit(config.limits.running_tasks),
    );
    let park_after = i64::try_from(config.storage.park_after_seconds)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::MAX);
    let service = Service::new(
        engine.clone(),
        store.clone(),
        express,
        park_after,
        config.storage.resume_limit,
        activities,
    );
    nested.bind(service.children());
    match service.load_stored() {
        Ok(n) => tracing::info!(state_machines = n, "Loaded the state machines created through the API."),
        Err(e) => tracing::error!(error = %e.message, "The stored state machines could not be loaded."),
    }
    if let Err(e) = service.replace_folder(folder_records(&compiled)) {
        tracing::error!(error = %e.message, "The workflows could not be stored.");
    }
    tracing::info!(workflows = compiled.workflows.len(), dir = %config.workflows.dir, "Loaded the workflows folder.");
    service.start_timers();
    // Present at start-up: the last run ended without a clean shutdown.
    let marker = state_dir.join(RUNNING_MARKER);
    let unclean = marker.exists();
    if unclean {
        tracing::warn!("The daemon did not shut down cleanly last time; resumes at the same step are counted (storage.resume_limit).");
    }
    std::fs::write(&marker, format!("{}\n", std::process::id()))
        .map_err(|source| DaemonError::StateDir { path: marker.display().to_string(), source })?;
    match service.resume_all(unclean) {
        Ok(n) => tracing::info!(executions = n, "Resumed the executions that were running."),
        Err(e) => tracing::error!(error = %e.message, "Running executions could not be resumed."),
    }
    service.start_cluster();
    match service.report_unreported() {
        Ok(0) => {}
        Ok(n) => tracing::info!(executions = n, "Reporting the ends of child executions to their parents."),
        Err(e) => tracing::error!(error = %e.message, "The ends of child executions could not be read."),
    }
    spawn_purge(store.clone(), config.storage.retention_days);

    let api_listener = bind(&config.server.listen, "server.listen").await?;
    let api_addr = api_listener.local_addr().map_err(DaemonError::Serve)?;
    let shared = compile::routes_share_the_api_listener(&config);
    let http_listener = if shared { None } else { Some(bind(&config.http.listen, "http.listen").await?) };

    let settings = crate::api::server::Settings {
        max_connections: crate::api::server::effective_max_connections(config.server.max_connections),
        header_timeout: Duration::from_secs(config.server.header_timeout_seconds.max(1)),
        grace: Duration::from_secs(config.server.shutdown_grace_seconds),
    };
    let body = crate::api::BodyLimits {
        max_bytes: config.server.max_body_bytes,
        timeout: Duration::from_secs(config.server.body_timeout_seconds.max(1)),
    };
    let connections = Arc::new(crate::api::server::Stats::default());
    let stats = Arc::new(triggers::Stats::default());
    let api = {
        let (service, connections, stats) = (service.clone(), connections.clone(), stats.clone());
        let keys: Vec<(String, String)> = config
            .server
            .access_keys
            .iter()
            .map(|k| (k.access_key_id.clone(), k.secret_access_key.clone()))
            .collect();
        Arc::new(move || {
            let auth = crate::api::sigv4::Verifier::new(keys.iter().cloned());
            crate::api::router(service.clone(), auth, body, connections.clone(), stats.clone())
        })
    };
    let (api_routes, api_rx) = watch::channel(api());
    let (http_routes, http_rx) = match &http_listener {
        Some(_) => {
            let (tx, rx) = watch::channel(Router::new());
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let mut daemon = Daemon {
        config_file,
        compiled,
        service,
        store,
        stats,
        api,
        api_routes,
        http_routes,
        mqtt: Mqtt::default(),
        schedules: Schedules::default(),
    };
    daemon.apply_triggers().await;

    let (stop, stopping) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(crate::api::server::serve(
        api_listener,
        api_rx,
        settings,
        connections.clone(),
        until_stopped(stopping.clone()),
    ));
    tracing::info!(addr = %api_addr, "Serving the AWS Step Functions API.");
    // Tests and supervisors read the bound addresses (useful with port 0).
    announce(&format!("stepgate listening on {api_addr}"));
    if let (Some(listener), Some(rx)) = (http_listener, http_rx) {
        let addr = listener.local_addr().map_err(DaemonError::Serve)?;
        tracing::info!(%addr, routes = daemon.compiled.plan.routes.len(), "Serving the HTTP routes.");
        announce(&format!("stepgate routes listening on {addr}"));
        servers.spawn(crate::api::server::serve(
            listener,
            rx,
            settings,
            connections,
            until_stopped(stopping),
        ));
    }
    notify_systemd();
    release_startup_code(&config.server);

    let mut hangups = hangups();
    let terminate = shutdown();
    tokio::pin!(terminate);
    loop {
        tokio::select! {
            _ = &mut terminate => break,
            Some(()) = hangups.recv() => {
                daemon.reload().await;
                release_startup_code(&daemon.compiled.config.server);
            }
        }
    }
    // Intake stops everywhere at once; what is in progress finishes within the grace time.
    let _ = stop.send(true);
    daemon.service.end_polls();
    let grace = daemon.grace();
    let drain_servers = async { while servers.join_next().await.is_some() {} };
    tokio::join!(daemon.mqtt.shutdown(grace), daemon.schedules.shutdown(), drain_servers);
    let _ = std::fs::remove_file(&marker);
    tracing::info!("Stopped; running executions resume at the next start.");
    Ok(())
}

/// `server.page_out_startup_code`: the code that only starting (or reloading) ran leaves
/// memory a few seconds after the daemon is ready, once what follows READY at once (brokers
/// connecting, the first schedule timers) has run too.
fn release_startup_code(server: &ServerConfig) {
    if server.page_out_startup_code {
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let bytes = crate::memory::page_out_startup_code();
            tracing::debug!(bytes, "The start-up code's pages were handed back to the kernel.");
        });
    }
}

/// A line on stdout for whoever started the daemon; a reader that has gone (a closed pipe)
/// must not take the daemon down, as `println!` would.
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Finished executions older than the retention are purged now and then every hour.
/// The store `[storage]` names: the embedded SQLite file in the state folder, or the
/// PostgreSQL database several daemons share.
fn open_store(
    storage: &crate::config::StorageConfig,
    state_dir: &std::path::Path,
) -> Result<Arc<dyn Store>, DaemonError> {
    match storage.backend {
        crate::config::Backend::Sqlite => {
            Ok(Arc::new(SqliteStore::open_with_cache(&state_dir.join("stepgate.db"), storage.cache_bytes)?))
        }
        #[cfg(feature = "postgres")]
        crate::config::Backend::Postgres => {
            let node = storage.node_id.clone().unwrap_or_else(|| default_node_id(state_dir));
            let settings = crate::store::postgres::Settings {
                url: storage.url.clone().unwrap_or_default(),
                pool_size: storage.pool_size,
                lease: Duration::from_secs(storage.lease_seconds),
                node: node.clone(),
                writers: 1,
            };
            let store = crate::store::postgres::PostgresStore::open(&settings)?;
            tracing::info!(daemon = %node, lease_seconds = storage.lease_seconds, "Opened the PostgreSQL store shared with other daemons.");
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        crate::config::Backend::Postgres => Err(DaemonError::Config(vec![
            "storage.backend: this stepgate was built without the postgres feature".into(),
        ])),
    }
}

/// A daemon's name among those sharing a database when the config gives none: the host's
/// name and the state folder, the same at every restart and different for two daemons of one
/// host (each has its own state folder).
#[cfg(feature = "postgres")]
fn default_node_id(state_dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    format!("{host}:{}", dir.display())
}

fn spawn_purge(store: Arc<dyn Store>, retention_days: u32) {
    let retention = chrono::Duration::days(i64::from(retention_days));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let store = store.clone();
            let purged =
                tokio::task::spawn_blocking(move || store.purge_finished_before(Utc::now() - retention))
                    .await;
            match purged {
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(executions = n, "Purged finished executions past storage.retention_days.")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "Purging finished executions failed."),
                _ => {}
            }
        }
    });
}

/// An API anyone on the network can call without a key is refused: without access keys the
/// daemon only listens on loopback.
async fn require_keys_off_loopback(server: &ServerConfig) -> Result<(), DaemonError> {
    if !server.access_keys.is_empty() {
        return Ok(());
    }
    // Resolved as bind resolves it: a host name may stand for several addresses. One that
    // does not resolve is left for bind to report.
    let Ok(addrs) = tokio::net::lookup_host(&server.listen).await else {
        return Ok(());
    };
    if addrs.into_iter().all(|a| a.ip().to_canonical().is_loopback()) {
        Ok(())
    } else {
        Err(DaemonError::Unauthenticated { listen: server.listen.clone() })
    }
}

/// Tells systemd (Type=notify) that the daemon is ready, and keeps its watchdog fed while the
/// runtime is alive. Outside systemd both are no-ops.
fn notify_systemd() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %e, "sd_notify READY failed (not under systemd?).");
    }
    if let Some(period) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            // Twice per period, as systemd recommends.
            let mut tick = tokio::time::interval(period / 2);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}

/// SIGHUP, as a stream of reload requests.
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                // Several SIGHUPs during one reload make one more reload, not several.
                let _ = tx.try_send(());
            }
        });
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("Shutting down: no new events are taken; those in progress finish within server.shutdown_grace_seconds.");
}

/// The workflows folder's files and names, as `serve` reads them (for the CLI).
pub fn workflow_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    compile::workflow_files(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AccessKey;

    fn server(listen: &str, keys: usize) -> ServerConfig {
        let key = AccessKey { access_key_id: "ops".into(), secret_access_key: "s".into() };
        ServerConfig { access_keys: vec![key; keys], ..ServerConfig::on(listen) }
    }

    #[tokio::test]
    async fn only_loopback_is_served_without_access_keys() {
        for listen in ["127.0.0.1:0", "[::1]:0", "localhost:0", "[::ffff:127.0.0.1]:0"] {
            assert!(require_keys_off_loopback(&server(listen, 0)).await.is_ok(), "{listen}");
        }
        for listen in ["0.0.0.0:8083", "[::]:8083", "192.0.2.7:8083"] {
            let e = require_keys_off_loopback(&server(listen, 0)).await.unwrap_err().to_string();
            assert!(e.contains("server.access_keys") && e.contains(listen), "{e}");
            assert!(require_keys_off_loopback(&server(listen, 1)).await.is_ok(), "{listen}");
        }
    }

    #[test]
    fn a_reload_names_the_settings_that_wait_for_a_restart() {
        let old = Config::default();
        let mut new = Config::default();
        assert!(needs_restart(&old, &new).is_empty());
        new.server.listen = "127.0.0.1:9".into();
        new.limits.payload_bytes = 1;
        new.triggers.schedule.push(crate::triggers::schedule::ScheduleConfig {
            name: None,
            expression: "rate(1 minute)".into(),
            timezone: None,
            workflow: "w".into(),
            input: None,
            missed: Default::default(),
        });
        assert_eq!(needs_restart(&old, &new), ["server", "limits"]);
        new.connections.insert("billing".into(), Default::default());
        assert_eq!(needs_restart(&old, &new), ["server", "limits", "connections"]);
    }
}

//! `stepgate serve`: wiring and lifecycle. Opens the store, builds the engine and the
//! service, registers the workflows of the workflows folder, resumes the executions that
//! were running, serves the API, and shuts down on SIGINT/SIGTERM after the server stops
//! accepting requests (running executions stay journaled and resume at the next start).
//! Without `server.access_keys` it refuses to listen anywhere but on loopback.

use crate::config::{Config, ServerConfig};
use crate::connectors::Registry;
use crate::engine::Engine;
use crate::service::Service;
use crate::store::memory::MemoryStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{MachineType, StateMachineRecord, Store};
use crate::time::Clock;
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir { path: String, source: std::io::Error },
    #[error("cannot listen on {addr} (server.listen): {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("the workflows folder {path} (workflows.dir) cannot be read: {source}")]
    Workflows { path: String, source: std::io::Error },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error(
        "server.listen is {listen}, which is not a loopback address, and no access keys are configured: \
         set server.access_keys (access_key_id and secret_access_key) so that every API call must be \
         signed, or listen on 127.0.0.1"
    )]
    Unauthenticated { listen: String },
}

/// The workflow files of a workflows folder, sorted: every `*.json` but the inputs and mock
/// configs that live beside the workflows.
pub fn workflow_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json") && !name.ends_with(".input.json") && !name.ends_with(".mock.json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The state machine name of a workflow file: its stem, without `.asl`.
pub fn workflow_name(file: &Path) -> String {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    stem.strip_suffix(".asl").unwrap_or(stem).to_string()
}

/// Registers every workflow file of `dir` as a state machine named after its stem. A
/// workflow whose name breaks AWS's naming rules or that does not compile is reported and
/// skipped: the daemon still serves the others.
pub fn load_workflows(
    service: &Service,
    engine: &Engine,
    config: &Config,
    dir: &Path,
) -> Result<usize, DaemonError> {
    let files = workflow_files(dir)
        .map_err(|source| DaemonError::Workflows { path: dir.display().to_string(), source })?;
    let mut n = 0;
    for file in files {
        let name = workflow_name(&file);
        if let Err(e) = crate::service::check_name(&name) {
            tracing::error!(
                file = %file.display(),
                error = %e.message,
                "A workflow's file name is not a valid state machine name (1 to 80 characters; no \
                 whitespace, brackets, wildcards, control characters or any of \"#%\\^|~`$&,;:/); it is skipped."
            );
            continue;
        }
        let definition = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e, "A workflow file cannot be read; it is skipped.");
                continue;
            }
        };
        let machine_type = match config.workflow.get(&name).map(|w| w.kind.as_str()) {
            Some("EXPRESS") => MachineType::Express,
            Some("STANDARD") | None => MachineType::Standard,
            Some(other) => {
                tracing::error!(workflow = %name, r#type = %other, "workflow.{name}.type must be STANDARD or EXPRESS; the workflow is skipped.");
                continue;
            }
        };
        let now = Utc::now();
        let arn = engine.state_machine_arn(&name);
        let record = StateMachineRecord {
            name: name.clone(),
            arn,
            definition,
            machine_type,
            role_arn: format!("arn:aws:iam::{}:role/stepgate", config.account),
            created: now,
            updated: now,
            tags: Default::default(),
            revision: 1,
        };
        match service.put_state_machine(record) {
            Ok(()) => n += 1,
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e.message, "A workflow is invalid; it is skipped.")
            }
        }
    }
    Ok(n)
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<(), DaemonError> {
    // Before anything runs: a refused start must not resume executions first.
    require_keys_off_loopback(&config.server).await?;
    let state_dir = PathBuf::from(&config.storage.state_dir);
    // Execution data lives here: private to the daemon's user when the daemon creates it.
    crate::store::sqlite::private_dir(&state_dir)
        .map_err(|source| DaemonError::StateDir { path: state_dir.display().to_string(), source })?;
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_with_cache(&state_dir.join("stepgate.db"), config.storage.cache_bytes)?);
    let express: Arc<dyn Store> = Arc::new(MemoryStore::bounded_in_memory(
        config.storage.express_executions,
        config.storage.express_memory_bytes,
    ));
    let engine = Arc::new(Engine::new(
        Registry::new(config.functions()),
        Arc::new(Clock::default()),
        config.limits(),
        &config.region,
        &config.account,
    ));
    let park_after = i64::try_from(config.storage.park_after_seconds)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::MAX);
    let service =
        Service::new(engine.clone(), store.clone(), express, park_after, config.storage.resume_limit);
    match service.load_stored() {
        Ok(n) => tracing::info!(state_machines = n, "Loaded the state machines created through the API."),
        Err(e) => tracing::error!(error = %e.message, "The stored state machines could not be loaded."),
    }
    let n = load_workflows(&service, &engine, &config, Path::new(&config.workflows.dir))?;
    tracing::info!(workflows = n, dir = %config.workflows.dir, "Loaded the workflows folder.");
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
    // Finished executions older than the retention are purged now and then every hour.
    let retention = chrono::Duration::days(i64::from(config.storage.retention_days));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
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
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|source| DaemonError::Listen { addr: config.server.listen.clone(), source })?;
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    tracing::info!(%addr, "Serving the AWS Step Functions API.");
    // Tests and supervisors read the bound address (useful with port 0).
    println!("stepgate listening on {addr}");
    notify_systemd();
    let auth = crate::api::sigv4::Verifier::new(
        config.server.access_keys.iter().map(|k| (k.access_key_id.clone(), k.secret_access_key.clone())),
    );
    let settings = crate::api::server::Settings {
        max_connections: crate::api::server::effective_max_connections(config.server.max_connections),
        header_timeout: std::time::Duration::from_secs(config.server.header_timeout_seconds.max(1)),
    };
    let body = crate::api::BodyLimits {
        max_bytes: config.server.max_body_bytes,
        timeout: std::time::Duration::from_secs(config.server.body_timeout_seconds.max(1)),
    };
    let stats = Arc::new(crate::api::server::Stats::default());
    let app = crate::api::router(service, auth, body, stats.clone());
    crate::api::server::serve(listener, app, settings, stats, shutdown()).await;
    let _ = std::fs::remove_file(&marker);
    Ok(())
}

/// The file in the state directory that a running daemon keeps and a clean shutdown removes.
pub const RUNNING_MARKER: &str = "stepgate.running";

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
    tracing::info!("Shutting down; running executions resume at the next start.");
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
}

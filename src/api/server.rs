//! The HTTP listener under the API (and, later, under the HTTP triggers): accepts TCP
//! connections, serves each with hyper's HTTP/1.1 server, and keeps one client from
//! exhausting the daemon. Request headers must arrive within `header_timeout` (hyper also
//! runs that clock while a kept-alive connection waits for its next request, so idle
//! connections close too); bodies are read by the handlers under their own timeout.
//!
//! At most `max_connections` are open at once, never more than the open-file limit allows
//! (the soft limit is raised to the hard one at start). When the cap is reached, the oldest
//! connection with no request in progress is closed to make room: a flood of idle or
//! half-sent connections cannot lock out `/healthz` or a real client, and a request being
//! served is never cut. Only when every connection is busy is a new one refused.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower_service::Service as _;

/// File descriptors kept free for the store, local functions and outgoing connections.
const RESERVED_FDS: u64 = 128;

/// How the listener treats its clients.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// How long requests in progress may take to finish once the daemon is stopping.
    pub grace: Duration,
}

/// Connection counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    open: AtomicUsize,
    accepted: AtomicU64,
    shed: AtomicU64,
    refused: AtomicU64,
}

impl Stats {
    /// Prometheus text exposition lines.
    pub fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP stepgate_http_connections_open HTTP connections open now.");
        let _ = writeln!(out, "# TYPE stepgate_http_connections_open gauge");
        let _ = writeln!(out, "stepgate_http_connections_open {}", self.open.load(Ordering::Relaxed));
        for (name, help, v) in [
            ("accepted", "HTTP connections accepted.", get(&self.accepted)),
            (
                "shed",
                "Idle HTTP connections closed to make room under server.max_connections.",
                get(&self.shed),
            ),
            (
                "refused",
                "HTTP connections refused: server.max_connections were all busy.",
                get(&self.refused),
            ),
        ] {
            let _ = writeln!(out, "# HELP stepgate_http_connections_{name}_total {help}");
            let _ = writeln!(out, "# TYPE stepgate_http_connections_{name}_total counter");
            let _ = writeln!(out, "stepgate_http_connections_{name}_total {v}");
        }
    }
}

/// One open connection, as the cap sees it.
struct Slot {
    /// Requests of the connection being served now.
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
    /// Told to close to make room; counted until its task has let go of the socket, so the
    /// cap holds in file descriptors and not only in intentions.
    closing: bool,
}

/// Handles of an admitted connection: its id, its request count, its close signal.
type Admitted = (u64, Arc<AtomicUsize>, Arc<Notify>);

enum Admission {
    Admitted(Admitted),
    /// Room is being made: an idle connection is closing.
    Wait,
    /// Every open connection is serving a request.
    Full,
}

/// The open connections, oldest first (ids grow).
struct Table {
    max: usize,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Slot>>,
    /// Signalled whenever a connection has gone.
    room: Notify,
}

impl Table {
    fn new(max: usize) -> Table {
        Table {
            max: max.max(1),
            next: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
            room: Notify::new(),
        }
    }

    fn admit(&self, stats: &Stats) -> Admission {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= self.max {
            if open.values().any(|s| s.closing) {
                return Admission::Wait;
            }
            let Some(idle) = open.values_mut().find(|s| s.busy.load(Ordering::Acquire) == 0) else {
                return Admission::Full;
            };
            idle.closing = true;
            // Stored as a permit if the connection's task is not waiting yet.
            idle.close.notify_one();
            stats.shed.fetch_add(1, Ordering::Relaxed);
            return Admission::Wait;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot =
            Slot { busy: Arc::new(AtomicUsize::new(0)), close: Arc::new(Notify::new()), closing: false };
        let handles = (id, slot.busy.clone(), slot.close.clone());
        open.insert(id, slot);
        Admission::Admitted(handles)
    }

    /// Admits a connection, waiting a little for room being made; `None`: refuse it.
    async fn admit_soon(&self, stats: &Stats) -> Option<Admitted> {
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        loop {
            // Listening before looking, so a close in between is not missed.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.admit(stats) {
                Admission::Admitted(handles) => return Some(handles),
                Admission::Full => return None,
                Admission::Wait => tokio::time::timeout_at(until, room).await.ok()?,
            }
        }
    }

    fn leave(&self, id: u64) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.room.notify_waiters();
    }
}

/// Counts a request as in progress for as long as its future lives (a dropped connection
/// drops it too).
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(busy: &Arc<AtomicUsize>) -> Busy {
        busy.fetch_add(1, Ordering::AcqRel);
        Busy(busy.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The cap in force: `wanted`, lowered to what the open-file limit leaves room for.
pub fn effective_max_connections(wanted: usize) -> usize {
    match raise_fd_limit() {
        Some(limit) => {
            let room = usize::try_from(limit.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX).max(1);
            if room < wanted {
                tracing::warn!(
                    max_connections = wanted,
                    open_files = limit,
                    cap = room,
                    "server.max_connections is above what the open-file limit allows (LimitNOFILE / ulimit -n); \
                     connections are capped lower."
                );
            }
            wanted.min(room)
        }
        None => wanted,
    }
}

/// Raises the soft open-file limit to the hard one and returns the soft limit in force.
#[cfg(unix)]
fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        None
    } else {
        Some(lim.rlim_cur)
    }
}

#[cfg(not(unix))]
fn raise_fd_limit() -> Option<u64> {
    None
}

/// Why a request body was not read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Announced or grown past the limit: answered before more of it is read.
    TooLarge,
    TimedOut,
    /// The connection broke while it was read.
    Broken,
}

/// Reads a request body whole, within `max_bytes` and `timeout`; shared by the API and the
/// HTTP routes, which word their answers each in their own service's way.
pub async fn read_body(
    body: axum::body::Body,
    headers: &axum::http::HeaderMap,
    max_bytes: usize,
    timeout: Duration,
) -> Result<axum::body::Bytes, BodyError> {
    let announced =
        headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max_bytes as u64) {
        return Err(BodyError::TooLarge);
    }
    let limited = http_body_util::Limited::new(body, max_bytes);
    match tokio::time::timeout(timeout, http_body_util::BodyExt::collect(limited)).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "A request body could not be read.");
            Err(BodyError::Broken)
        }
        Err(_) => Err(BodyError::TimedOut),
    }
}

/// Serves on `listener` until `shutdown` resolves, then lets the requests in progress finish
/// within `settings.grace` (idle connections close at once) and returns. Each request goes to
/// the router `app` holds at that moment: a reload swaps it without touching connections.
pub async fn serve(
    listener: TcpListener,
    app: watch::Receiver<Router>,
    settings: Settings,
    stats: Arc<Stats>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let table = Arc::new(Table::new(settings.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(settings.header_timeout);
    let (stop, stopping) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: the listener
                    // itself is fine; back off a little rather than spin.
                    tracing::warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Reap what finished, so the set stays as large as what is open.
        while tasks.try_join_next().is_some() {}
        let Some((id, busy, close)) = table.admit_soon(&stats).await else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "Every connection is busy (server.max_connections); one was refused.");
            drop(stream);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::new(&busy);
            let mut app = app.borrow().clone();
            async move {
                let response = app.call(req).await;
                drop(busy);
                response
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let (table, stats, mut stopping) = (table.clone(), stats.clone(), stopping.clone());
        tasks.spawn(async move {
            let stop = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "An HTTP connection ended with an error.");
                    }
                }
                _ = close.notified() => {
                    tracing::debug!(%peer, "An idle connection was closed to make room (server.max_connections).");
                }
                _ = stop => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            table.leave(id);
            stats.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(settings.grace, drained).await.is_err() {
        tracing::warn!(
            grace_seconds = settings.grace.as_secs(),
            "Requests still in progress after the shutdown grace time were cut off."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admission) -> Admitted {
        match a {
            Admission::Admitted(h) => h,
            Admission::Wait => panic!("waits"),
            Admission::Full => panic!("full"),
        }
    }

    #[test]
    fn a_full_table_sheds_its_oldest_idle_connection_and_never_a_busy_one() {
        let stats = Stats::default();
        let table = Table::new(2);
        let (a, a_busy, _) = admitted(table.admit(&stats));
        let (b, _, b_close) = admitted(table.admit(&stats));
        let guard = Busy::new(&a_busy);
        // Full: b is the oldest idle one (a is serving a request); it is told to close, even
        // before its task listens, and the newcomer waits until it has.
        assert!(matches!(table.admit(&stats), Admission::Wait));
        assert!(matches!(table.admit(&stats), Admission::Wait), "one shed at a time");
        assert_eq!(stats.shed.load(Ordering::Relaxed), 1);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), b_close.notified())
                .await
                .expect("b is told to close")
        });
        table.leave(b);
        let (c, c_busy, _) = admitted(table.admit(&stats));
        let open: Vec<u64> = table.open.lock().unwrap().keys().copied().collect();
        assert_eq!(open, [a, c]);
        // a busy, c busy: a newcomer is refused.
        let _c_guard = Busy::new(&c_busy);
        assert!(matches!(table.admit(&stats), Admission::Full));
        drop(guard);
        assert!(matches!(table.admit(&stats), Admission::Wait), "a is idle again and makes room");
    }
}

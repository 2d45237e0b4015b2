//! Daemon load generator: sits outside the crate and drives the real `stepgate serve` binary
//! over loopback HTTP, the way AWS SDK clients would, to measure the whole path (HTTP, the
//! API, the engine, the SQLite journal with fsync) rather than the interpreter alone.
//!
//! Three phases, each against a fresh daemon with its own temporary state and workflows folders:
//! - `standard`: N clients start durable Standard executions of a chain of Pass states
//!   (`StartExecution`), then one poller waits for all of them (`DescribeExecution`);
//!   reports executions/s and state transitions/s.
//! - `map`: the same with a Map state over 10 items (one Pass state per iteration), whose
//!   iterations are journaled like the top level.
//! - `sync`: C keep-alive connections send `StartSyncExecution` to a 3-state Express
//!   workflow back to back for a fixed time; reports requests/s and latency p50/p99.
//! - `route`: the same load on a sync HTTP route (`[[triggers.http]]`) to that workflow;
//!   `quiet`, the same with `history = false` on the workflow (its executions keep no history
//!   in memory); and
//!   `echo`, the same load on a bare axum server that parses the JSON body and answers it back
//!   (this bench's own executable, started as a second process): what the HTTP stack costs
//!   alone on this machine, for the route to be held against.
//! - `mqtt-express`, `mqtt-standard`: a Mosquitto of its own (`max_inflight_messages 1000`,
//!   unlimited queue), one rumqttc publisher sending M QoS 1 messages as fast as the broker
//!   takes them, and an MQTT trigger starting an Express or a Standard (durable) workflow per
//!   message; reports messages/s from the first publish until the daemon has started them all,
//!   and how many were lost (started less than published) or doubled.
//!
//! - `http-task`, `nested`, `mqtt-publish`: the connectors. One execution's Map makes N Task
//!   calls, C at a time (HTTP Tasks POSTing to the bare echo; nested `.sync:2` executions of
//!   the 3-state Express workflow, N/10 of them, from a Standard parent; MQTT publishes at QoS 1
//!   through a Mosquitto of its own); then the bare client makes the same calls C at a time
//!   (keep-alive POSTs to the echo; StartSyncExecution of that workflow; a rumqttc publisher
//!   with C in flight). Reports both rates: what the daemon adds to a call.
//!
//! - `shared`: the `standard` workload on SQLite with one daemon, then on PostgreSQL through
//!   1, 2 and 4 daemons sharing one database (`STEPGATE_LOAD_SHARED_DAEMONS` [1,2,4]), the
//!   clients spread over them; `takeover`: 1,000 executions started on one of two daemons on
//!   PostgreSQL, SIGKILLed at once, and the time until the other has finished them all
//!   (`STEPGATE_LOAD_LEASE_SECONDS` [5], `STEPGATE_LOAD_TAKEOVER_EXECUTIONS` [1000]). Each
//!   makes a schema of its own on `STEPGATE_LOAD_POSTGRES` [postgres://postgres@127.0.0.1:5432/test].
//!
//! Run with `cargo bench --bench load` (optionally `-- standard`, `-- map` or `-- sync`). Sizes come
//! from environment variables (defaults in brackets): `STEPGATE_LOAD_STD_CLIENTS` [64],
//! `STEPGATE_LOAD_STD_EXECUTIONS` [4000], `STEPGATE_LOAD_STD_STATES` [10],
//! `STEPGATE_LOAD_SYNC_CONNECTIONS` [16,64], `STEPGATE_LOAD_SYNC_SECONDS` [5],
//! `STEPGATE_LOAD_SYNC_WARMUP_SECONDS` [1], `STEPGATE_LOAD_SYNC_MAX_REQUESTS` [2000000],
//! `STEPGATE_LOAD_CLIENT_THREADS` [1], `STEPGATE_LOAD_TIMEOUT_SECONDS` [300] (per phase),
//! `STEPGATE_LOAD_MQTT_MESSAGES` [express 50000, standard 25000], `STEPGATE_LOAD_CONNECTOR_CALLS` [10000], `STEPGATE_LOAD_MOSQUITTO`
//! [mosquitto on the PATH or /usr/sbin], `STEPGATE_LOAD_BIN` [the crate's own binary], `STEPGATE_LOAD_PERF` [unset; a folder for
//! `perf record` profiles of the daemon]. Everything is bounded by count and time; the
//! daemons are stopped at the end of each phase. Each result line ends with the cores the
//! daemon, the client and everything else kept busy: the machine is shared, and "others"
//! above ~0.1 means the run was disturbed.
//!
//! HTTP/1.1 is written by hand over `TcpStream`: the requests are fixed-shape, and a client
//! crate would add its own overhead to the client side, which shares the machine's cores
//! with the daemon.

use serde_json::{json, Value};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const REGION_ACCOUNT: &str = "us-east-1:123456789012";
const STANDARD_WORKFLOW: &str = "chain";
/// The `map` phase: one Map state over this many items, one Pass state per iteration.
const MAP_WORKFLOW: &str = "fanout";
const MAP_ITEMS: usize = 10;
const EXPRESS_WORKFLOW: &str = "sync3";
const EXPRESS_STATES: usize = 3;
/// The Standard twin of the Express workflow, for the durable MQTT phase.
const DURABLE3_WORKFLOW: &str = "durable3";
/// The sync HTTP route to the Express workflow.
const ROUTE: &str = "/r";
/// The Express workflow again, with `history = false`, behind its own route.
const QUIET_WORKFLOW: &str = "quiet3";
const QUIET_ROUTE: &str = "/q";
/// One request that takes longer than this means the daemon is stuck, not slow.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

struct Settings {
    bin: PathBuf,
    std_clients: usize,
    std_executions: usize,
    std_states: usize,
    sync_connections: Vec<usize>,
    sync_seconds: f64,
    sync_warmup_seconds: f64,
    sync_max_requests: u64,
    /// Messages per MQTT phase; `None`: the phase's default.
    mqtt_messages: Option<usize>,
    /// Calls per connector phase (a tenth of it for `nested`).
    connector_calls: usize,
    client_threads: usize,
    /// Upper bound on one phase: past it the phase fails instead of waiting on.
    phase_timeout: Duration,
    /// When set, `perf record` samples the daemon during each measured phase into this folder.
    perf_dir: Option<PathBuf>,
}

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let sync_connections = std::env::var("STEPGATE_LOAD_SYNC_CONNECTIONS")
            .unwrap_or_else(|_| "16,64".into())
            .split(',')
            .map(|c| c.trim().parse().expect("STEPGATE_LOAD_SYNC_CONNECTIONS: comma-separated counts"))
            .collect();
        Settings {
            bin: std::env::var_os("STEPGATE_LOAD_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stepgate"))),
            std_clients: env_or("STEPGATE_LOAD_STD_CLIENTS", 64),
            std_executions: env_or("STEPGATE_LOAD_STD_EXECUTIONS", 4000),
            std_states: env_or("STEPGATE_LOAD_STD_STATES", 10),
            sync_connections,
            sync_seconds: env_or("STEPGATE_LOAD_SYNC_SECONDS", 5.0),
            sync_warmup_seconds: env_or("STEPGATE_LOAD_SYNC_WARMUP_SECONDS", 1.0),
            sync_max_requests: env_or("STEPGATE_LOAD_SYNC_MAX_REQUESTS", 2_000_000),
            mqtt_messages: std::env::var("STEPGATE_LOAD_MQTT_MESSAGES").ok().map(|v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("STEPGATE_LOAD_MQTT_MESSAGES={v:?} is not a count"))
            }),
            connector_calls: env_or("STEPGATE_LOAD_CONNECTOR_CALLS", 10_000),
            client_threads: env_or("STEPGATE_LOAD_CLIENT_THREADS", 1),
            phase_timeout: Duration::from_secs_f64(env_or("STEPGATE_LOAD_TIMEOUT_SECONDS", 300.0)),
            perf_dir: std::env::var_os("STEPGATE_LOAD_PERF").map(PathBuf::from),
        }
    }
}

fn chain(states: usize) -> Value {
    let mut map = serde_json::Map::new();
    for i in 1..=states {
        let state = if i == states {
            json!({"Type": "Pass", "End": true})
        } else {
            json!({"Type": "Pass", "Next": format!("P{}", i + 1)})
        };
        map.insert(format!("P{i}"), state);
    }
    json!({"Comment": "stepgate load bench", "StartAt": "P1", "States": map})
}

fn fanout() -> Value {
    json!({
        "Comment": "stepgate load bench: a durable Map",
        "StartAt": "Each",
        "States": {"Each": {
            "Type": "Map", "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "End": true
        }}
    })
}

/// What a Standard phase starts: a workflow, its input, and the states each execution enters.
struct Workload {
    phase: &'static str,
    workflow: &'static str,
    transitions: usize,
    input: fn(usize) -> Value,
}

fn machine_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION_ACCOUNT}:stateMachine:{name}")
}

// ---------------------------------------------------------------------------------------
// The daemon under test.

struct Daemon {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    /// Held open: the daemon's stdout must stay writable for as long as it runs.
    _stdout: BufReader<ChildStdout>,
    perf: Option<std::process::Child>,
}

impl Daemon {
    async fn start(s: &Settings, phase: &str) -> Result<Daemon> {
        Daemon::start_with(s, phase, "", &[]).await
    }

    /// A daemon whose config also holds `extra` (triggers, brokers), and `more` workflows.
    async fn start_with(s: &Settings, phase: &str, extra: &str, more: &[(&str, Value)]) -> Result<Daemon> {
        Daemon::start_env(s, phase, extra, more, &[]).await
    }

    /// [`Daemon::start_with`] with `env` set for the daemon (`STEPGATE_*` config keys).
    async fn start_env(
        s: &Settings,
        phase: &str,
        extra: &str,
        more: &[(&str, Value)],
        env: &[(&str, &str)],
    ) -> Result<Daemon> {
        let dir = tempfile::Builder::new().prefix("stepgate-load-").tempdir()?;
        let workflows = dir.path().join("workflows");
        std::fs::create_dir_all(&workflows)?;
        let write = |name: &str, def: Value| {
            std::fs::write(workflows.join(format!("{name}.asl.json")), serde_json::to_string_pretty(&def)?)
        };
        write(STANDARD_WORKFLOW, chain(s.std_states))?;
        write(MAP_WORKFLOW, fanout())?;
        write(EXPRESS_WORKFLOW, chain(EXPRESS_STATES))?;
        write(DURABLE3_WORKFLOW, chain(EXPRESS_STATES))?;
        write(QUIET_WORKFLOW, chain(EXPRESS_STATES))?;
        for (name, def) in more {
            write(name, def.clone())?;
        }
        let quoted = |p: &Path| serde_json::to_string(&p.display().to_string());
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\nstate_dir = {}\n\n[workflows]\ndir = {}\n\n\
             [workflow.{EXPRESS_WORKFLOW}]\ntype = \"EXPRESS\"\n\n\
             [workflow.{QUIET_WORKFLOW}]\ntype = \"EXPRESS\"\nhistory = false\n\n\
             [[triggers.http]]\npath = \"{ROUTE}\"\nworkflow = \"{EXPRESS_WORKFLOW}\"\nmode = \"sync\"\n\n\
             [[triggers.http]]\npath = \"{QUIET_ROUTE}\"\nworkflow = \"{QUIET_WORKFLOW}\"\nmode = \"sync\"\n\n{extra}",
            quoted(&dir.path().join("state"))?,
            quoted(&workflows)?,
        );
        let config_file = dir.path().join("stepgate.toml");
        std::fs::write(&config_file, config)?;
        let log = std::fs::File::create(dir.path().join("daemon.log"))?;
        let mut child = Command::new(&s.bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_file)
            .env("STEPGATE_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e} (set STEPGATE_LOAD_BIN)", s.bin.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("a piped stdout"));
        let mut line = String::new();
        let ready = tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line)).await;
        let addr = match ready {
            Ok(Ok(_)) => line.trim().strip_prefix("stepgate listening on ").and_then(|a| a.parse().ok()),
            _ => None,
        };
        let Some(addr) = addr else {
            let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
            return Err(
                format!("the daemon did not report its address (stdout {line:?}); its log:\n{log}").into()
            );
        };
        let mut d = Daemon { child, addr, dir, _stdout: stdout, perf: None };
        d.perf = d.start_perf(s, phase);
        Ok(d)
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    fn start_perf(&self, s: &Settings, phase: &str) -> Option<std::process::Child> {
        let dir = s.perf_dir.as_ref()?;
        std::fs::create_dir_all(dir).ok()?;
        let out = dir.join(format!("{phase}.perf.data"));
        let child = std::process::Command::new("perf")
            // DWARF unwinding: the release build keeps debug info but no frame pointers, so
            // `-g` alone loses the callers of allocator and libc frames.
            .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-o"])
            .arg(&out)
            .args(["-p", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => {
                eprintln!("perf: sampling daemon pid {} into {}", self.pid(), out.display());
                // perf needs a moment to attach before the load starts.
                std::thread::sleep(Duration::from_millis(500));
                Some(c)
            }
            Err(e) => {
                eprintln!("perf: {e}; continuing without a profile");
                None
            }
        }
    }

    /// SIGTERM, as a supervisor would send; the daemon drains and exits. SIGKILL past 10 s.
    async fn stop(mut self) {
        if let Some(mut perf) = self.perf.take() {
            signal(perf.id(), "-INT");
            let _ = perf.wait();
        }
        signal(self.pid(), "-TERM");
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            eprintln!("the daemon did not stop within 10 s of SIGTERM; killing it");
            let _ = self.child.kill().await;
        }
        drop(self.dir);
    }
}

/// Signals one process we started, by its id (no libc dependency for `kill(2)`).
fn signal(pid: u32, sig: &str) {
    if pid != 0 {
        let _ = std::process::Command::new("kill").arg(sig).arg(pid.to_string()).status();
    }
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 keep-alive client.

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    request: Vec<u8>,
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Result<Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        // Each request is one small write answered by one small response: Nagle would only
        // add delay.
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::with_capacity(8192), request: Vec::with_capacity(1024) })
    }

    async fn call(&mut self, operation: &str, body: &str) -> Result<Response> {
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n\
                 X-Amz-Target: AWSStepFunctions.{operation}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        self.request.extend_from_slice(body.as_bytes());
        match tokio::time::timeout(CALL_TIMEOUT, self.exchange()).await {
            Ok(r) => r,
            Err(_) => Err(format!("{operation}: no response within {CALL_TIMEOUT:?}").into()),
        }
    }

    /// Sends a request written in full by the caller (the same bytes every time).
    async fn send(&mut self, request: &[u8]) -> Result<Response> {
        self.request.clear();
        self.request.extend_from_slice(request);
        match tokio::time::timeout(CALL_TIMEOUT, self.exchange()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no response within {CALL_TIMEOUT:?}").into()),
        }
    }

    async fn get(&mut self, path: &str) -> Result<Response> {
        self.request.clear();
        self.request.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
        match tokio::time::timeout(CALL_TIMEOUT, self.exchange()).await {
            Ok(r) => r,
            Err(_) => Err(format!("GET {path}: no response within {CALL_TIMEOUT:?}").into()),
        }
    }

    async fn exchange(&mut self) -> Result<Response> {
        self.stream.write_all(&self.request).await?;
        loop {
            if let Some((used, response)) = parse_response(&self.buf)? {
                self.buf.drain(..used);
                return Ok(response);
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(
                    io::Error::new(io::ErrorKind::UnexpectedEof, "the daemon closed the connection").into()
                );
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One complete response at the start of `buf` and the bytes it took, or `None` when more
/// bytes are needed. Handles `Content-Length` and chunked bodies.
fn parse_response(buf: &[u8]) -> Result<Option<(usize, Response)>> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let mut at = head_end + 4;
    if !chunked {
        let length = length.unwrap_or(0);
        if buf.len() < at + length {
            return Ok(None);
        }
        return Ok(Some((at + length, Response { status, body: buf[at..at + length].to_vec() })));
    }
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(&buf[at..], b"\r\n") else { return Ok(None) };
        let size_text = std::str::from_utf8(&buf[at..at + line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        at += line_end + 2;
        if size == 0 {
            // No trailers are sent by the daemon: the terminating empty line follows.
            if buf.len() < at + 2 {
                return Ok(None);
            }
            return Ok(Some((at + 2, Response { status, body })));
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

// ---------------------------------------------------------------------------------------
// Phase 1: durable Standard executions.

struct StandardResult {
    executions: usize,
    states: usize,
    clients: usize,
    starts_seconds: f64,
    server_seconds: f64,
    observed_seconds: f64,
    not_succeeded: usize,
    transitions_metric: Option<u64>,
    /// Cores busy in the daemon and in this client, from the first start to the last finish.
    cores: Cores,
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`. USER_HZ is
/// 100 on every Linux this runs on; reading it would need libc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// CPU time the whole machine has spent busy (not idle, not waiting on I/O), from `/proc/stat`.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    // guest time is already counted in user time.
    let total: u64 = ticks.iter().take(8).sum();
    total.saturating_sub(idle) as f64 / 100.0
}

/// The cores the daemon, this client and everything else on the machine kept busy between
/// two [`CpuMark`]s: the machine is shared, and "others" shows when a run was disturbed.
#[derive(Clone, Copy)]
struct CpuMark {
    at: Instant,
    daemon: f64,
    client: f64,
    machine: f64,
}

struct Cores {
    daemon: f64,
    client: f64,
    others: f64,
}

impl std::fmt::Display for Cores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cores busy: daemon {:.2}, client {:.2}, others {:.2}",
            self.daemon, self.client, self.others
        )
    }
}

impl CpuMark {
    fn now(daemon_pid: u32) -> CpuMark {
        CpuMark::now_all(&[daemon_pid])
    }

    /// With the daemon's cores summed over several daemons.
    fn now_all(daemon_pids: &[u32]) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            daemon: daemon_pids.iter().map(|&p| cpu_seconds(p)).sum(),
            client: cpu_seconds(std::process::id()),
            machine: machine_busy_seconds(),
        }
    }

    fn cores_since(&self, start: &CpuMark) -> Cores {
        let wall = (self.at - start.at).as_secs_f64().max(1e-9);
        let daemon = (self.daemon - start.daemon) / wall;
        let client = (self.client - start.client) / wall;
        let machine = (self.machine - start.machine) / wall;
        Cores { daemon, client, others: (machine - daemon - client).max(0.0) }
    }
}

fn wall_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

async fn standard(s: &Settings, w: &Workload) -> Result<StandardResult> {
    let daemon = Daemon::start(s, w.phase).await?;
    eprintln!(
        "{}: daemon pid {} on {}; {} clients start {} executions of {} ({} states each)",
        w.phase,
        daemon.pid(),
        daemon.addr,
        s.std_clients,
        s.std_executions,
        w.workflow,
        w.transitions
    );
    let result =
        tokio::time::timeout(s.phase_timeout, run_standard(s, w, &[daemon.addr], &[daemon.pid()])).await;
    daemon.stop().await;
    match result {
        Ok(r) => r,
        Err(_) => Err(format!("the {} phase took longer than {:?}", w.phase, s.phase_timeout).into()),
    }
}

/// Starts the executions through `addrs` in turn (client k talks to `addrs[k % n]`) and waits
/// for their ends through the first.
async fn run_standard(
    s: &Settings,
    w: &Workload,
    addrs: &[SocketAddr],
    daemon_pids: &[u32],
) -> Result<StandardResult> {
    let sm = machine_arn(w.workflow);
    let make_input = w.input;
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = CpuMark::now_all(daemon_pids);
    let t0_wall = SystemTime::now();
    let t0 = Instant::now();
    let mut clients = Vec::new();
    let addr = addrs[0];
    for k in 0..s.std_clients {
        let addr = addrs[k % addrs.len()];
        let (next, sm, total) = (next.clone(), sm.clone(), s.std_executions);
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let mut started = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(started);
                }
                let input = make_input(i).to_string();
                let body = json!({"stateMachineArn": sm, "name": format!("load-{i}"), "input": input});
                let r = conn.call("StartExecution", &body.to_string()).await?;
                if r.status != 200 {
                    return Err(format!("StartExecution: HTTP {}: {}", r.status, r.text()).into());
                }
                let arn =
                    r.json()?["executionArn"].as_str().ok_or("StartExecution: no executionArn")?.to_string();
                started.push((i, arn));
            }
        }));
    }
    let mut arns = Vec::with_capacity(s.std_executions);
    for c in clients {
        arns.extend(c.await??);
    }
    let starts_seconds = t0.elapsed().as_secs_f64();
    // Executions finish about in start order, so one poller walking that order waits only
    // on the stragglers and adds little load of its own next to the running executions.
    arns.sort_unstable();
    let mut conn = Conn::connect(addr).await?;
    let mut last_stop = 0.0f64;
    let mut not_succeeded = 0;
    for (_, arn) in &arns {
        let body = json!({"executionArn": arn}).to_string();
        loop {
            let r = conn.call("DescribeExecution", &body).await?;
            if r.status != 200 {
                return Err(format!("DescribeExecution: HTTP {}: {}", r.status, r.text()).into());
            }
            let v = r.json()?;
            let status = v["status"].as_str().unwrap_or("");
            if status == "RUNNING" {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            if status != "SUCCEEDED" {
                not_succeeded += 1;
                if not_succeeded == 1 {
                    eprintln!("standard: {arn} ended {status}: {v}");
                }
            }
            last_stop = last_stop.max(v["stopDate"].as_f64().unwrap_or(0.0));
            break;
        }
    }
    let observed_seconds = t0.elapsed().as_secs_f64();
    let cores = CpuMark::now_all(daemon_pids).cores_since(&cpu0);
    let server_seconds = last_stop - wall_seconds(t0_wall);
    let metrics = conn.get("/metrics").await?.text();
    let transitions_metric = metrics
        .lines()
        .find_map(|l| l.strip_prefix("stepgate_state_transitions_total "))
        .and_then(|n| n.trim().parse().ok());
    Ok(StandardResult {
        executions: arns.len(),
        states: w.transitions,
        clients: s.std_clients,
        starts_seconds,
        server_seconds,
        observed_seconds,
        not_succeeded,
        transitions_metric,
        cores,
    })
}

// ---------------------------------------------------------------------------------------
// Several daemons on one PostgreSQL database.

/// A schema of its own on the PostgreSQL server (`STEPGATE_LOAD_POSTGRES`), dropped at the end.
struct PgSchema {
    base: String,
    name: String,
    url: String,
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = std::process::Command::new("psql")
        .args([url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()?;
    if !out.status.success() {
        return Err(format!("psql {url}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

impl PgSchema {
    fn new(tag: &str) -> Result<PgSchema> {
        let base = std::env::var("STEPGATE_LOAD_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("stepgate_load_{tag}_{}", std::process::id());
        psql(&base, &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"))?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Ok(PgSchema { base, name, url })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = psql(&self.base, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

async fn start_shared(
    s: &Settings,
    schema: &PgSchema,
    phase: &str,
    n: usize,
    lease: u64,
    more: &[(&str, Value)],
) -> Result<Vec<Daemon>> {
    let lease = lease.to_string();
    let env = [
        ("STEPGATE_STORAGE__BACKEND", "postgres"),
        ("STEPGATE_STORAGE__URL", schema.url.as_str()),
        ("STEPGATE_STORAGE__LEASE_SECONDS", lease.as_str()),
    ];
    let mut daemons = Vec::with_capacity(n);
    for i in 0..n {
        daemons.push(Daemon::start_env(s, &format!("{phase}-{i}"), "", more, &env).await?);
    }
    Ok(daemons)
}

/// The `standard` workload through `n` daemons sharing one PostgreSQL database, the clients
/// spread over them.
async fn shared(s: &Settings, w: &Workload, n: usize) -> Result<StandardResult> {
    let schema = PgSchema::new("shared")?;
    let daemons = start_shared(s, &schema, &format!("shared-{n}"), n, 15, &[]).await?;
    let addrs: Vec<SocketAddr> = daemons.iter().map(|d| d.addr).collect();
    let pids: Vec<u32> = daemons.iter().map(Daemon::pid).collect();
    eprintln!(
        "shared: {n} daemon(s) on PostgreSQL, pids {pids:?}; {} clients start {} executions",
        s.std_clients, s.std_executions
    );
    let result = tokio::time::timeout(s.phase_timeout, run_standard(s, w, &addrs, &pids)).await;
    for d in daemons {
        d.stop().await;
    }
    match result {
        Ok(r) => r,
        Err(_) => {
            Err(format!("the shared phase with {n} daemons took longer than {:?}", s.phase_timeout).into())
        }
    }
}

struct TakeoverResult {
    executions: usize,
    lease: u64,
    /// From the SIGKILL to the last execution's end on the survivor.
    seconds: f64,
    /// From the SIGKILL to when the executions' waits ran out (they could end no sooner).
    waits_end: f64,
    not_succeeded: usize,
}

/// Two daemons on one database: `n` executions (Pass, a 2-second Wait, Pass) started on the
/// first, which is SIGKILLed as soon as they are all started; the second takes them over
/// once the first's lease has run out and finishes them.
async fn takeover(s: &Settings, n: usize, lease: u64) -> Result<TakeoverResult> {
    const NAP: f64 = 2.0;
    let nap = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "Nap"},
        "Nap": {"Type": "Wait", "Seconds": NAP as u64, "Next": "B"},
        "B": {"Type": "Pass", "End": true}
    }});
    let schema = PgSchema::new("takeover")?;
    let mut daemons = start_shared(s, &schema, "takeover", 2, lease, &[("nap", nap)]).await?;
    let survivor = daemons.pop().ok_or("no survivor")?;
    let victim = daemons.pop().ok_or("no victim")?;
    let sm = machine_arn("nap");
    let mut conn = Conn::connect(victim.addr).await?;
    let mut arns = Vec::with_capacity(n);
    let t0 = wall_seconds(SystemTime::now());
    for i in 0..n {
        let body = json!({"stateMachineArn": sm, "name": format!("nap-{i}"), "input": "{}"}).to_string();
        let r = conn.call("StartExecution", &body).await?;
        if r.status != 200 {
            return Err(format!("StartExecution: HTTP {}: {}", r.status, r.text()).into());
        }
        arns.push(r.json()?["executionArn"].as_str().ok_or("no executionArn")?.to_string());
    }
    signal(victim.pid(), "-KILL");
    let killed = wall_seconds(SystemTime::now());
    let mut conn = Conn::connect(survivor.addr).await?;
    let (mut last_stop, mut not_succeeded) = (0.0f64, 0);
    let until = Instant::now() + s.phase_timeout;
    for arn in &arns {
        let body = json!({"executionArn": arn}).to_string();
        loop {
            let v = conn.call("DescribeExecution", &body).await?.json()?;
            let status = v["status"].as_str().unwrap_or("");
            if status == "RUNNING" {
                if Instant::now() > until {
                    return Err("the takeover phase timed out".into());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            not_succeeded += usize::from(status != "SUCCEEDED");
            last_stop = last_stop.max(v["stopDate"].as_f64().unwrap_or(0.0));
            break;
        }
    }
    victim.stop().await;
    survivor.stop().await;
    let _ = t0;
    Ok(TakeoverResult {
        executions: n,
        lease,
        seconds: last_stop - killed,
        waits_end: (t0 + NAP - killed).max(0.0),
        not_succeeded,
    })
}

// ---------------------------------------------------------------------------------------
// Phase 2: StartSyncExecution on an Express workflow.

struct SyncResult {
    connections: usize,
    requests: usize,
    seconds: f64,
    errors: u64,
    /// Sorted, in microseconds.
    latencies: Vec<u32>,
    /// Cores busy in the daemon and in this client during the measured window.
    cores: Cores,
}

impl SyncResult {
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[i] as f64 / 1000.0
    }
}

/// The HTTP request of a request-rate phase, written once, and how to tell its answer good.
struct Load {
    request: Vec<u8>,
    ok: fn(&Response) -> bool,
}

/// StartSyncExecution of the 3-state Express workflow.
fn sync_load() -> Load {
    let body =
        json!({"stateMachineArn": machine_arn(EXPRESS_WORKFLOW), "input": r#"{"hello":"world","n":1}"#})
            .to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: AWSStepFunctions.StartSyncExecution\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Load {
        request: request.into_bytes(),
        ok: |r| r.status == 200 && find(&r.body, br#""status":"SUCCEEDED""#).is_some(),
    }
}

/// A JSON POST to `path` (the route, or the echo server), answered 200.
fn post_load(path: &str) -> Load {
    let body = r#"{"hello":"world","n":1}"#;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Load { request: request.into_bytes(), ok: |r| r.status == 200 }
}

async fn sync(s: &Settings, connections: usize, load: Load, phase: &str) -> Result<SyncResult> {
    let daemon = Daemon::start(s, &format!("{phase}-c{connections}")).await?;
    eprintln!(
        "sync: daemon pid {} on {}; {connections} connections for {:.1} s after {:.1} s of warm-up",
        daemon.pid(),
        daemon.addr,
        s.sync_seconds,
        s.sync_warmup_seconds
    );
    let limit = s.phase_timeout;
    let result = tokio::time::timeout(limit, run_sync(s, daemon.addr, daemon.pid(), connections, load)).await;
    daemon.stop().await;
    match result {
        Ok(r) => r,
        Err(_) => Err(format!("the sync phase took longer than {limit:?}").into()),
    }
}

async fn run_sync(
    s: &Settings,
    addr: SocketAddr,
    daemon_pid: u32,
    connections: usize,
    load: Load,
) -> Result<SyncResult> {
    let load = Arc::new(load);
    let begin = Instant::now();
    let measure_from = begin + Duration::from_secs_f64(s.sync_warmup_seconds);
    let measure_to = measure_from + Duration::from_secs_f64(s.sync_seconds);
    let budget = Arc::new(AtomicU64::new(s.sync_max_requests));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let start = CpuMark::now(daemon_pid);
        tokio::time::sleep_until(measure_to.into()).await;
        CpuMark::now(daemon_pid).cores_since(&start)
    });
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (load, budget, errors) = (load.clone(), budget.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            // The last request to end inside the window; the rate is taken over the window
            // actually covered when the request budget ends it early.
            let mut last_end = measure_from;
            loop {
                let sent = Instant::now();
                if sent >= measure_to {
                    break;
                }
                let measured = sent >= measure_from;
                if measured
                    && budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                        .is_err()
                {
                    break;
                }
                let r = conn.send(&load.request).await?;
                let done = Instant::now();
                if !(load.ok)(&r) {
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("HTTP {}: {}", r.status, r.text());
                    }
                    continue;
                }
                if measured && done <= measure_to {
                    latencies.push((done - sent).as_micros().min(u32::MAX as u128) as u32);
                    last_end = done;
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((latencies, last_end))
        }));
    }
    let mut latencies = Vec::new();
    let mut last_end = measure_from;
    for t in tasks {
        let (l, end) = t.await??;
        latencies.extend(l);
        last_end = last_end.max(end);
    }
    latencies.sort_unstable();
    let seconds = if budget.load(Ordering::Relaxed) == 0 {
        (last_end - measure_from).as_secs_f64()
    } else {
        s.sync_seconds
    };
    Ok(SyncResult {
        connections,
        requests: latencies.len(),
        seconds,
        errors: errors.load(Ordering::Relaxed),
        latencies,
        cores: cpu.await?,
    })
}

// ---------------------------------------------------------------------------------------
// The bare axum echo: this executable again, as a process of its own.

const ECHO_ENV: &str = "STEPGATE_LOAD_ECHO_SERVER";

/// Serves `POST /r`: the JSON body parsed and written back, on axum's own server with a
/// default multi-thread runtime. Prints its address, then serves until killed.
fn echo_server() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let app = axum::Router::new().route(
            ROUTE,
            axum::routing::post(|axum::Json(v): axum::Json<Value>| async move { axum::Json(v) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("echo listening on {}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}

async fn echo(s: &Settings, connections: usize) -> Result<SyncResult> {
    let (mut child, addr) = spawn_echo().await?;
    let pid = child.id().unwrap_or(0);
    let result = run_sync(s, addr, pid, connections, post_load(ROUTE)).await;
    let _ = child.kill().await;
    result
}

/// The bare echo server, as a process of its own, and its address.
async fn spawn_echo() -> Result<(Child, SocketAddr)> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(ECHO_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().expect("a piped stdout"));
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line)).await??;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("echo listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the echo server said {line:?}"))?;
    Ok((child, addr))
}

// ---------------------------------------------------------------------------------------
// MQTT: messages through Mosquitto to started executions.

struct MqttResult {
    messages: usize,
    /// From the first publish until the broker acknowledged the last.
    published_seconds: f64,
    /// From the first publish until the daemon had started them all.
    started_seconds: f64,
    started: u64,
    duplicates: u64,
    errors: u64,
    cores: Cores,
}

fn mosquitto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("STEPGATE_LOAD_MOSQUITTO") {
        return PathBuf::from(p);
    }
    let sbin = PathBuf::from("/usr/sbin/mosquitto");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("mosquitto")
    }
}

/// A counter of the trigger `load` on the daemon's `/metrics`.
async fn trigger_counter(conn: &mut Conn, family: &str) -> Result<u64> {
    let text = conn.get("/metrics").await?.text();
    let prefix = format!("stepgate_trigger_{family}{{kind=\"mqtt\",trigger=\"load\"}} ");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// A Mosquitto of the bench's own on a free port (unlimited queue, a wide in-flight window).
async fn spawn_mosquitto() -> Result<(Child, u16, tempfile::TempDir)> {
    let dir = tempfile::Builder::new().prefix("stepgate-load-broker-").tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n\
             max_inflight_messages 1000\nlog_dest none\n"
        ),
    )?;
    let broker = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("mosquitto: {e} (apt-get install mosquitto, or set STEPGATE_LOAD_MOSQUITTO)"))?;
    // Listening before anyone connects.
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > until {
            return Err("mosquitto did not listen within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((broker, port, dir))
}

/// Polls a publisher's event loop, counting the broker's acknowledgements: notified once `n`
/// have come.
fn count_acks(
    mut eventloop: rumqttc::EventLoop,
    n: usize,
) -> (Arc<tokio::sync::Notify>, tokio::task::JoinHandle<()>) {
    use rumqttc::{Event, Packet};
    let all = Arc::new(tokio::sync::Notify::new());
    let acked = AtomicUsize::new(0);
    let notify = all.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    if acked.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        notify.notify_one();
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("publisher: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    (all, poller)
}

async fn mqtt(s: &Settings, workflow: &str, messages: usize) -> Result<MqttResult> {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let (mut broker, port, _dir) = spawn_mosquitto().await?;
    let extra = format!(
        "[brokers.load]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"stepgate-load\"\n\n\
         [[triggers.mqtt]]\nname = \"load\"\nbroker = \"load\"\nsql = \"SELECT * FROM 'load/#'\"\nworkflow = \"{workflow}\"\n"
    );
    let daemon = Daemon::start_with(s, &format!("mqtt-{workflow}"), &extra, &[]).await?;
    let mut conn = Conn::connect(daemon.addr).await?;
    let connected = Instant::now() + Duration::from_secs(20);
    while !conn.get("/healthz").await?.text().contains(": connected") {
        if Instant::now() > connected {
            return Err("the daemon did not connect to the broker within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut options = MqttOptions::new("stepgate-load-publisher", "127.0.0.1", port);
    options.set_inflight(1000).set_max_packet_size(1 << 20, 1 << 20);
    let (client, eventloop) = AsyncClient::new(options, 1024);
    let (all_acked, poller) = count_acks(eventloop, messages);
    let start = CpuMark::now(daemon.pid());
    let began = Instant::now();
    let publish = async {
        for i in 0..messages {
            client
                .publish("load/meter", QoS::AtLeastOnce, false, format!("{{\"n\":{i},\"reading\":21.5}}"))
                .await?;
        }
        all_acked.notified().await;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(began.elapsed())
    };
    let published =
        tokio::time::timeout(s.phase_timeout, publish).await.map_err(|_| "publishing timed out")??;
    let until = began + s.phase_timeout;
    let mut started;
    let mut duplicates;
    loop {
        started = trigger_counter(&mut conn, "executions_started_total").await?;
        duplicates = trigger_counter(&mut conn, "duplicates_total").await?;
        if started + duplicates >= messages as u64 || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started_seconds = began.elapsed().as_secs_f64();
    let cores = CpuMark::now(daemon.pid()).cores_since(&start);
    let errors = trigger_counter(&mut conn, "errors_total").await?
        + trigger_counter(&mut conn, "rejected_total").await?;
    poller.abort();
    daemon.stop().await;
    let _ = broker.kill().await;
    Ok(MqttResult {
        messages,
        published_seconds: published.as_secs_f64(),
        started_seconds,
        started,
        duplicates,
        errors,
        cores,
    })
}

// ---------------------------------------------------------------------------------------
// Connectors: N Task calls of a Map (MaxConcurrency C), and the bare client making the same N
// calls C at a time, in one run against the same server.

struct ConnectorResult {
    calls: usize,
    concurrency: usize,
    daemon_seconds: f64,
    bare_seconds: f64,
    /// Calls whose answer was not the one expected.
    failed: usize,
    cores: Cores,
}

impl ConnectorResult {
    fn line(&self, phase: &str, what: &str, bare: &str) -> String {
        format!(
            "{phase}: {} {what}, C={}: {:.0} calls/s through the daemon ({:.2} s), the bare client {bare}: {:.0} calls/s \
             ({:.2} s), the daemon at {:.0} % of it; {} failed; {}",
            self.calls,
            self.concurrency,
            self.calls as f64 / self.daemon_seconds,
            self.daemon_seconds,
            self.calls as f64 / self.bare_seconds,
            self.bare_seconds,
            100.0 * self.bare_seconds / self.daemon_seconds,
            self.failed,
            self.cores,
        )
    }
}

/// A workflow that makes `task` once per item of `$.items`, `$.c` at a time; each item gets
/// `$.url` and its number.
fn map_of(task: Value) -> Value {
    json!({
        "Comment": "stepgate load bench: a Map of Task calls",
        "StartAt": "Each",
        "States": {"Each": {
            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrencyPath": "$.c",
            "ItemSelector": {"url.$": "$.url", "n.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"StartAt": "Call", "States": {"Call": task}},
            "End": true
        }}
    })
}

/// Runs an Express workflow of the daemon to its end; its output, and how long it took.
async fn run_express(daemon: &Daemon, workflow: &str, input: Value) -> Result<(Value, f64)> {
    let mut conn = Conn::connect(daemon.addr).await?;
    let body = json!({"stateMachineArn": machine_arn(workflow), "input": input.to_string()}).to_string();
    let began = Instant::now();
    let r = conn.call("StartSyncExecution", &body).await?.json()?;
    let took = began.elapsed().as_secs_f64();
    if r["status"] != "SUCCEEDED" {
        return Err(format!("{workflow} ended {}: {} {}", r["status"], r["error"], r["cause"]).into());
    }
    Ok((serde_json::from_str(r["output"].as_str().unwrap_or("null"))?, took))
}

/// `n` requests, `c` connections at a time, each its own bytes; how long they all took and how
/// many were not answered 200.
async fn bare_http(
    addr: SocketAddr,
    n: usize,
    c: usize,
    request: fn(usize) -> Vec<u8>,
) -> Result<(f64, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..c {
        let (next, failed) = (next.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(());
                }
                if conn.send(&request(i)).await?.status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((began.elapsed().as_secs_f64(), failed.load(Ordering::Relaxed)))
}

/// HTTP Tasks (`http:invoke`) POSTing to the bare echo, against the same POSTs from the bare
/// client.
async fn http_tasks(s: &Settings, n: usize, c: usize) -> Result<ConnectorResult> {
    let (mut echo, addr) = spawn_echo().await?;
    let task = json!({"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {"ApiEndpoint.$": "$.url", "Method": "POST", "RequestBody": {"n.$": "$.n"}},
        "ResultSelector": {"s.$": "$.StatusCode"}, "End": true});
    let extra = "[workflow.calls]\ntype = \"EXPRESS\"\nhistory = false\n";
    let daemon = Daemon::start_with(s, "http-task", extra, &[("calls", map_of(task))]).await?;
    let input = json!({"url": format!("http://{addr}{ROUTE}"), "items": (0..n).collect::<Vec<_>>(), "c": c});
    let start = CpuMark::now(daemon.pid());
    let (out, daemon_seconds) = run_express(&daemon, "calls", input).await?;
    let cores = CpuMark::now(daemon.pid()).cores_since(&start);
    let failed = out.as_array().map_or(n, |a| a.iter().filter(|r| r["s"] != 200).count());
    let (bare_seconds, bare_failed) = bare_http(addr, n, c, |i| {
        let body = format!("{{\"n\":{i}}}");
        format!("POST {ROUTE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes()
    })
    .await?;
    daemon.stop().await;
    let _ = echo.kill().await;
    Ok(ConnectorResult {
        calls: n,
        concurrency: c,
        daemon_seconds,
        bare_seconds,
        failed: failed + bare_failed,
        cores,
    })
}

/// Nested `.sync:2` executions of the 3-state Express workflow from a Standard parent,
/// against StartSyncExecution of that workflow from the bare client.
async fn nested(s: &Settings, n: usize, c: usize) -> Result<ConnectorResult> {
    let task = json!({"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": machine_arn(EXPRESS_WORKFLOW), "Input": {"n.$": "$.n"}},
        "ResultSelector": {"s.$": "$.Status"}, "End": true});
    let daemon = Daemon::start_with(s, "nested", "", &[("parent", map_of(task))]).await?;
    let mut conn = Conn::connect(daemon.addr).await?;
    let input = json!({"url": "", "items": (0..n).collect::<Vec<_>>(), "c": c});
    let body = json!({"stateMachineArn": machine_arn("parent"), "input": input.to_string()}).to_string();
    let start = CpuMark::now(daemon.pid());
    let began = Instant::now();
    let arn = conn.call("StartExecution", &body).await?.json()?["executionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let describe = json!({"executionArn": arn}).to_string();
    let ended = loop {
        let e = conn.call("DescribeExecution", &describe).await?.json()?;
        if e["status"] != "RUNNING" {
            break e;
        }
        if began.elapsed() > s.phase_timeout {
            return Err("the nested executions did not end in time".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let daemon_seconds = began.elapsed().as_secs_f64();
    let cores = CpuMark::now(daemon.pid()).cores_since(&start);
    if ended["status"] != "SUCCEEDED" {
        return Err(
            format!("the parent ended {}: {} {}", ended["status"], ended["error"], ended["cause"]).into()
        );
    }
    let out: Value = serde_json::from_str(ended["output"].as_str().unwrap_or("null"))?;
    let failed = out.as_array().map_or(n, |a| a.iter().filter(|r| r["s"] != "SUCCEEDED").count());
    let addr = daemon.addr;
    let (bare_seconds, bare_failed) = bare_http(addr, n, c, |i| {
        let body =
            json!({"stateMachineArn": machine_arn(EXPRESS_WORKFLOW), "input": json!({"n": i}).to_string()})
                .to_string();
        format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n\
             X-Amz-Target: AWSStepFunctions.StartSyncExecution\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
    .await?;
    daemon.stop().await;
    Ok(ConnectorResult {
        calls: n,
        concurrency: c,
        daemon_seconds,
        bare_seconds,
        failed: failed + bare_failed,
        cores,
    })
}

/// MQTT publish Tasks at QoS 1 through Mosquitto, against a rumqttc client publishing the same
/// messages C at a time and waiting for their acknowledgements.
async fn mqtt_publish(s: &Settings, n: usize, c: usize) -> Result<ConnectorResult> {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let (broker, port, _dir) = spawn_mosquitto().await?;
    let task = json!({"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:iotdata:publish",
        "Parameters": {"Topic": "load/out", "Qos": 1, "Payload": {"n.$": "$.n"}}, "End": true});
    let extra = format!(
        "[brokers.load]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"stepgate-load\"\n\n\
         [workflow.pub]\ntype = \"EXPRESS\"\nhistory = false\n"
    );
    let daemon = Daemon::start_with(s, "mqtt-publish", &extra, &[("pub", map_of(task))]).await?;
    let input = json!({"url": "", "items": (0..n).collect::<Vec<_>>(), "c": c});
    let start = CpuMark::now(daemon.pid());
    let (out, daemon_seconds) = run_express(&daemon, "pub", input).await?;
    let cores = CpuMark::now(daemon.pid()).cores_since(&start);
    let failed = out.as_array().map_or(n, |a| a.iter().filter(|r| *r != &json!({})).count());
    let mut options = MqttOptions::new("stepgate-load-publisher", "127.0.0.1", port);
    options.set_inflight(c.clamp(1, u16::MAX as usize) as u16);
    let (client, eventloop) = AsyncClient::new(options, c.max(1));
    let (all, poller) = count_acks(eventloop, n);
    let began = Instant::now();
    for i in 0..n {
        client.publish("load/out", QoS::AtLeastOnce, false, format!("{{\"n\":{i}}}")).await?;
    }
    tokio::time::timeout(s.phase_timeout, all.notified())
        .await
        .map_err(|_| "the bare publisher timed out")?;
    let bare_seconds = began.elapsed().as_secs_f64();
    poller.abort();
    daemon.stop().await;
    drop(broker);
    Ok(ConnectorResult { calls: n, concurrency: c, daemon_seconds, bare_seconds, failed, cores })
}

// ---------------------------------------------------------------------------------------

fn main() -> Result<()> {
    if std::env::var_os(ECHO_ENV).is_some() {
        return echo_server();
    }
    // `cargo bench` passes `--bench`; any other word selects phases by name.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |phase: &str| filters.is_empty() || filters.iter().any(|f| phase.contains(f.as_str()));
    let s = Settings::from_env();
    let rt = if s.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(s.client_threads).enable_all().build()?
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "stepgate daemon load: {} (client: {} thread(s); {cores} cores shared by client and daemon)",
        s.bin.display(),
        s.client_threads
    );
    let mut summary = Vec::new();
    rt.block_on(async {
        let chain = Workload {
            phase: "standard",
            workflow: STANDARD_WORKFLOW,
            transitions: s.std_states,
            input: |i| json!({"hello": "world", "n": i}),
        };
        let map = Workload {
            phase: "map",
            workflow: MAP_WORKFLOW,
            transitions: 1 + MAP_ITEMS,
            input: |i| json!({"n": i, "items": (0..MAP_ITEMS).collect::<Vec<_>>()}),
        };
        for w in [&chain, &map] {
            if !wanted(w.phase) {
                continue;
            }
            let r = standard(&s, w).await?;
            let transitions = r.executions * r.states;
            let line = format!(
                "{}: {} clients, {} executions x {} states of {} (SQLite, fsync on): \
                 {:.0} executions/s, {:.0} transitions/s (last stopDate {:.2} s after the first start; \
                 all starts answered in {:.2} s, at {:.0}/s; all seen finished by the poller at {:.2} s, \
                 {:.0} transitions/s); daemon counted {} transitions; {} not SUCCEEDED; {}",
                w.phase,
                r.clients,
                r.executions,
                r.states,
                w.workflow,
                r.executions as f64 / r.server_seconds,
                transitions as f64 / r.server_seconds,
                r.server_seconds,
                r.starts_seconds,
                r.executions as f64 / r.starts_seconds,
                r.observed_seconds,
                transitions as f64 / r.observed_seconds,
                r.transitions_metric.map_or("?".into(), |n| n.to_string()),
                r.not_succeeded,
                r.cores,
            );
            println!("{line}");
            summary.push(line);
        }
        if wanted("shared") {
            let counts: Vec<usize> = std::env::var("STEPGATE_LOAD_SHARED_DAEMONS")
                .unwrap_or_else(|_| "1,2,4".into())
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect();
            // SQLite on one daemon first, in the same run, to hold PostgreSQL against.
            let mut runs = vec![("SQLite", 1, standard(&s, &chain).await?)];
            for n in counts {
                runs.push(("PostgreSQL", n, shared(&s, &chain, n).await?));
            }
            for (store, n, r) in runs {
                let transitions = r.executions * r.states;
                let line = format!(
                    "shared: {store}, {n} daemon(s), {} clients, {} executions x {} states: {:.0} transitions/s, \
                     {:.0} executions/s (last stopDate {:.2} s after the first start); {} not SUCCEEDED; {} \
                     (others: PostgreSQL and the rest)",
                    r.clients,
                    r.executions,
                    r.states,
                    transitions as f64 / r.server_seconds,
                    r.executions as f64 / r.server_seconds,
                    r.server_seconds,
                    r.not_succeeded,
                    r.cores,
                );
                println!("{line}");
                summary.push(line);
            }
        }
        if wanted("takeover") {
            let lease = env_or("STEPGATE_LOAD_LEASE_SECONDS", 5u64);
            let r = takeover(&s, env_or("STEPGATE_LOAD_TAKEOVER_EXECUTIONS", 1000usize), lease).await?;
            let line = format!(
                "takeover: {} executions (Pass, Wait 2 s, Pass) on a daemon SIGKILLed right after starting them, \
                 lease {} s: the survivor finished them all {:.2} s after the kill (their waits ran out {:.2} s \
                 after it); {} not SUCCEEDED",
                r.executions, r.lease, r.seconds, r.waits_end, r.not_succeeded
            );
            println!("{line}");
            summary.push(line);
        }
        let rate_phases: [(&str, &str); 4] = [
            ("sync", "StartSyncExecution of a 3-state Express workflow"),
            ("route", "POST to a sync HTTP route to a 3-state Express workflow"),
            ("quiet", "POST to a sync HTTP route to a 3-state Express workflow with history = false"),
            ("echo", "POST to a bare axum JSON echo"),
        ];
        for &c in &s.sync_connections {
            for (phase, what) in rate_phases {
                if !wanted(phase) {
                    continue;
                }
                let r = match phase {
                    "sync" => sync(&s, c, sync_load(), phase).await?,
                    "route" => sync(&s, c, post_load(ROUTE), phase).await?,
                    "quiet" => sync(&s, c, post_load(QUIET_ROUTE), phase).await?,
                    _ => echo(&s, c).await?,
                };
                let line = format!(
                    "{phase}: C={}, {} {what} in {:.2} s: \
                     {:.0} requests/s, latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; {} errors; {}",
                    r.connections,
                    r.requests,
                    r.seconds,
                    r.requests as f64 / r.seconds,
                    r.percentile_ms(0.50),
                    r.percentile_ms(0.99),
                    r.percentile_ms(0.999),
                    r.latencies.last().map_or(f64::NAN, |&l| l as f64 / 1000.0),
                    r.errors,
                    r.cores,
                );
                println!("{line}");
                summary.push(line);
            }
        }
        let connector_calls = s.connector_calls;
        for &c in &s.sync_connections {
            if wanted("http-task") {
                let line = http_tasks(&s, connector_calls, c).await?.line(
                    "http-task",
                    "HTTP Tasks (http:invoke POST) to the bare echo from one Express Map",
                    "(keep-alive POSTs)",
                );
                println!("{line}");
                summary.push(line);
            }
            if wanted("nested") {
                let n = connector_calls / 10;
                let line = nested(&s, n, c).await?.line(
                    "nested",
                    "nested startExecution.sync:2 of the 3-state Express workflow from one Standard Map",
                    "(StartSyncExecution of that workflow)",
                );
                println!("{line}");
                summary.push(line);
            }
            if wanted("mqtt-publish") {
                let line = mqtt_publish(&s, connector_calls, c).await?.line(
                    "mqtt-publish",
                    "MQTT publish Tasks (QoS 1) through Mosquitto from one Express Map",
                    "(rumqttc, QoS 1, C in flight)",
                );
                println!("{line}");
                summary.push(line);
            }
        }
        for (phase, workflow, default) in
            [("mqtt-express", EXPRESS_WORKFLOW, 50_000), ("mqtt-standard", DURABLE3_WORKFLOW, 25_000)]
        {
            if !wanted(phase) {
                continue;
            }
            let n = s.mqtt_messages.unwrap_or(default);
            let r = mqtt(&s, workflow, n).await?;
            let line = format!(
                "{phase}: {} QoS 1 messages through Mosquitto to a 3-state {} workflow: {:.0} messages/s started \
                 (all started {:.2} s after the first publish; the broker acknowledged the last publish at {:.2} s, \
                 {:.0}/s); {} started, {} lost, {} doubled, {} errors; {}",
                r.messages,
                if workflow == EXPRESS_WORKFLOW { "Express" } else { "Standard (SQLite, fsync on)" },
                r.messages as f64 / r.started_seconds,
                r.started_seconds,
                r.published_seconds,
                r.messages as f64 / r.published_seconds,
                r.started,
                (r.messages as u64).saturating_sub(r.started + r.duplicates),
                r.duplicates,
                r.errors,
                r.cores,
            );
            println!("{line}");
            summary.push(line);
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    println!("\nsummary:");
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

//! Shared by the daemon's test suites (api, api_auth, sdk, routes, mqtt, lifecycle): starts
//! the real `stepgate serve` over a folder of its own (`workflows/` in it, `state/` made by it)
//! on a free loopback port, speaks raw HTTP to it for what no client would send, and starts a
//! real Mosquitto broker of the test's own on a free loopback port.

#![allow(dead_code)] // each suite uses its own part of this

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const ACCOUNT_ARN: &str = "arn:aws:states:us-east-1:123456789012";

pub struct Daemon {
    pub child: Child,
    /// Where to call it: loopback even when it listens on every interface.
    pub addr: String,
    /// Where its HTTP routes listen, when `http.listen` gives them a listener of their own.
    pub routes: Option<String>,
    pub dir: PathBuf,
    /// Kept open: the daemon writes to it.
    _stdout: BufReader<ChildStdout>,
}

impl Daemon {
    /// Starts the daemon over `dir` with `config` after the storage and workflows keys (it may
    /// hold a `[server]` table; without one the daemon listens on 127.0.0.1:0).
    pub fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Daemon {
        let file = config_file(dir, config);
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .args(["serve", "--config"])
            .arg(&file)
            .env("STEPGATE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the stepgate binary starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let bound = line
            .trim()
            .strip_prefix("stepgate listening on ")
            .unwrap_or_else(|| panic!("the daemon did not start: {line:?}"));
        let addr = bound.replace("0.0.0.0:", "127.0.0.1:");
        // A [http] listen of its own: the routes' address comes next.
        let routes = config.contains("[http]").then(|| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix("stepgate routes listening on ")
                .unwrap_or_else(|| panic!("the routes did not start: {line:?}"))
                .to_string()
        });
        Daemon { child, addr, routes, dir: dir.to_path_buf(), _stdout: stdout }
    }

    /// Sends `signal` (`HUP`, `TERM`, `KILL`) to the daemon.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the daemon to exit, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "the daemon did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An AWS Step Functions API call (`op` as `StartExecution`), its status and answer.
    pub fn call(&self, op: &str, body: Value) -> (u16, Value) {
        let target = format!("AWSStepFunctions.{op}");
        let headers = [("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", target.as_str())];
        let (status, text) = self.raw("POST", "/", &headers, body.to_string().as_bytes());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Every execution of the state machine `name`, newest first.
    pub fn executions(&self, name: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body =
                json!({"stateMachineArn": format!("{ACCOUNT_ARN}:stateMachine:{name}"), "maxResults": 1000});
            if let Some(t) = &token {
                body["nextToken"] = json!(t);
            }
            let (status, page) = self.call("ListExecutions", body);
            assert_eq!(status, 200, "{page}");
            out.extend(page["executions"].as_array().cloned().unwrap_or_default());
            match page["nextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => return out,
            }
        }
    }

    /// Waits until `name` has `n` executions that are not RUNNING (at most `within`).
    pub fn wait_for_finished(&self, name: &str, n: usize, within: Duration) -> Vec<Value> {
        let until = Instant::now() + within;
        loop {
            let all = self.executions(name);
            let done = all.iter().filter(|e| e["status"] != "RUNNING").count();
            if done >= n {
                return all;
            }
            assert!(Instant::now() < until, "{name}: {done} of {n} executions finished after {within:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn describe(&self, execution_arn: &str) -> Value {
        let (status, e) = self.call("DescribeExecution", json!({"executionArn": execution_arn}));
        assert_eq!(status, 200, "{e}");
        e
    }

    /// A metric's value on `/metrics`: `line` is the name with its labels, as printed.
    pub fn metric(&self, line: &str) -> f64 {
        let (status, text) = self.raw("GET", "/metrics", &[], b"");
        assert_eq!(status, 200);
        text.lines()
            .find_map(|l| l.strip_prefix(line).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {line} in {text}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits until `/healthz` holds `text` (at most `within`).
    pub fn wait_for_health(&self, text: &str, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let (_, body) = self.raw("GET", "/healthz", &[], b"");
            if body.contains(text) {
                return;
            }
            assert!(Instant::now() < until, "/healthz never said {text:?}: {body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An HTTP request to the routes (their own listener, or the API's); the status, the
    /// headers (lower-case names) and the body.
    pub fn route(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, String) {
        http(self.routes.as_deref().unwrap_or(&self.addr), method, path, headers, body)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs a Python script with boto3 (`pip install boto3`) against the daemon: the script
    /// gets the endpoint as `sys.argv[1]` and `args` after it, and prints JSON on its last
    /// line of output, which is returned.
    pub fn boto3(&self, script: &str, args: &[&str]) -> Value {
        boto3(script, &self.endpoint(), args)
    }

    /// A raw HTTP request; the status and the body text.
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let (status, _, body) = http(&self.addr, method, path, headers, body);
        (status, body)
    }
}

/// Runs a Python script with boto3 (`pip install boto3`): it gets `endpoint` as `sys.argv[1]`
/// and `args` after it, and prints JSON on its last line of output, which is returned.
pub fn boto3(script: &str, endpoint: &str, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .args(["-c", script, endpoint])
        .args(args)
        .envs(aws_env())
        .output()
        .expect("python3 runs (with boto3: pip install boto3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the boto3 script failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("the boto3 script printed {stdout:?}: {e}"))
}

/// What the aws CLI and boto3 need to call the daemon.
pub fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        // StartSyncExecution's client adds a `sync-` host prefix; this keeps the endpoint.
        ("AWS_DISABLE_HOST_PREFIX_INJECTION", "true"),
        ("AWS_PAGER", ""),
    ]
}

/// Writes workflow definitions into `dir/workflows`, as `NAME.asl.json`.
pub fn workflows(dir: &Path, files: &[(&str, Value)]) {
    let w = dir.join("workflows");
    std::fs::create_dir_all(&w).unwrap();
    for (name, def) in files {
        std::fs::write(w.join(format!("{name}.asl.json")), def.to_string()).unwrap();
    }
}

/// Writes the Python local function `NAME.py` into `dir`; the config that maps
/// `function:NAME` to it.
pub fn python_function(dir: &Path, name: &str, source: &str) -> String {
    let file = dir.join(format!("{name}.py"));
    std::fs::write(&file, source).unwrap();
    format!("[functions.{name}]\ncommand = [\"python3\", \"{}\"]\n", file.display())
}

/// Writes `dir/stepgate.toml`: the state and workflows folders in `dir`, a listener on a free
/// loopback port unless `config` has a `[server]` table, then `config`.
pub fn config_file(dir: &Path, config: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    let server = if config.contains("[server]") { "" } else { "[server]\nlisten = \"127.0.0.1:0\"\n" };
    let file = dir.join("stepgate.toml");
    std::fs::write(
        &file,
        format!(
            "{server}[storage]\nstate_dir = \"{}\"\n[workflows]\ndir = \"{}\"\n{config}",
            dir.join("state").display(),
            dir.join("workflows").display()
        ),
    )
    .unwrap();
    file
}

/// One HTTP/1.1 request on a connection of its own; the status, the headers (lower-case
/// names) and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// A free loopback port (bound and released: a tiny window for another taker).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something listens on `port` (at most `within`).
fn wait_for_port(port: u16, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A Mosquitto broker of the test's own, on a free loopback port, keeping its sessions on
/// disk (persistence) and queueing without limit (`max_queued_messages 0`: Mosquitto's
/// default of 1000 drops QoS 1 messages past it while acknowledging their publisher).
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    /// How many QoS 1 messages the broker sends a client before it waits for acknowledgements.
    inflight: u32,
}

fn need(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    match Command::new("which").arg(program).output() {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => panic!(
            "{program} is not installed; the MQTT tests need a real broker and its clients: \
             apt-get install -y {package} (scripts/test's setup and .ci/run install it)"
        ),
    }
}

impl Broker {
    /// Starts a broker whose files live in `dir`.
    pub fn start(dir: &Path) -> Broker {
        Broker::start_with_inflight(dir, 100)
    }

    /// A broker that sends each client up to `inflight` messages before it waits for their
    /// acknowledgements (`max_inflight_messages`).
    pub fn start_with_inflight(dir: &Path, inflight: u32) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        let mut b = Broker { child: None, port: free_port(), dir: dir.to_path_buf(), inflight };
        b.run();
        b
    }

    fn run(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {dir}/\n\
                 max_queued_messages 0\nmax_inflight_messages {inflight}\nlog_dest file {dir}/mosquitto.log\n",
                port = self.port,
                dir = self.dir.display(),
                inflight = self.inflight
            ),
        )
        .unwrap();
        let child = Command::new(need("mosquitto", "mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "mosquitto did not listen on {}",
            self.port
        );
    }

    /// Stops the broker (SIGTERM: it saves its sessions first).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// Stops the broker and starts it again on the same port, with its saved sessions.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// `[brokers.NAME]` for this broker, with a stable client id.
    pub fn config(&self, name: &str) -> String {
        format!(
            "[brokers.{name}]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"stepgate-test-{name}\"\n",
            self.port
        )
    }

    /// Publishes each of `payloads` to `topic` at `qos` with `mosquitto_pub` (one client,
    /// one line a message), returning once the broker has them all.
    pub fn publish(&self, topic: &str, qos: u8, payloads: &[String]) {
        let mut child = Command::new(need("mosquitto_pub", "mosquitto-clients"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                topic,
                "-q",
                &qos.to_string(),
                "-l",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        {
            let mut stdin = child.stdin.take().unwrap();
            for p in payloads {
                assert!(!p.contains('\n'), "one line a message");
                writeln!(stdin, "{p}").unwrap();
            }
        }
        assert!(child.wait().unwrap().success(), "mosquitto_pub failed");
    }

    /// Publishes one payload (any bytes) to `topic` at QoS 1.
    pub fn publish_bytes(&self, topic: &str, payload: &[u8]) {
        let file = self.dir.join("payload.bin");
        std::fs::write(&file, payload).unwrap();
        let status = Command::new(need("mosquitto_pub", "mosquitto-clients"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", topic, "-q", "1", "-f"])
            .arg(&file)
            .status()
            .unwrap();
        assert!(status.success(), "mosquitto_pub failed");
    }

    /// Subscribes to `topic` now; `collect` then gives the next `count` messages' payloads
    /// (at most `within`).
    pub fn subscribe(&self, topic: &str, count: usize, within: Duration) -> Subscription {
        let child = Command::new(need("mosquitto_sub", "mosquitto-clients"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", topic, "-q", "1", "-v"])
            .args(["-C", &count.to_string(), "-W", &within.as_secs().max(1).to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // mosquitto_sub has subscribed once the broker counts it; a short pause is enough on
        // loopback, and the first message is published only after it.
        std::thread::sleep(Duration::from_millis(300));
        Subscription { child }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Subscription {
    child: Child,
}

impl Subscription {
    /// The messages received, as `(topic, payload)`.
    pub fn collect(self) -> Vec<(String, String)> {
        let out = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(t, p)| (t.to_string(), p.to_string())))
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python program of a test's own that serves HTTP on a free loopback port: it gets the port
/// as `sys.argv[1]` (and `args` after it) and prints `ready` once it listens.
pub struct PythonServer {
    child: Child,
    pub port: u16,
}

impl PythonServer {
    pub fn start(dir: &Path, name: &str, script: &str, args: &[&str]) -> PythonServer {
        let file = dir.join(format!("{name}.py"));
        std::fs::write(&file, script).unwrap();
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(&file)
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the test's HTTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the test's HTTP server {name} did not start");
        PythonServer { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto server (an AWS API emulator: `pip install 'moto[server]'`) of the test's own, on a
/// free loopback port.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "moto_server does not start ({e}); the AWS integration tests need the AWS API emulator: \
                     pip install 'moto[server]' (scripts/test's setup and .ci/run install it)"
                )
            });
        assert!(wait_for_port(port, Duration::from_secs(30)), "moto_server did not listen on {port}");
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs a Python script with boto3 against moto: the script gets moto's endpoint as
    /// `sys.argv[1]` and `args` after it, and prints JSON on its last line, which is returned.
    pub fn boto3(&self, script: &str, args: &[&str]) -> Value {
        boto3(script, &self.endpoint(), args)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Callbacks: a local function that hands its token over, and the waits around it.

/// A local function that hands its Task's token over: it writes the token to
/// `tokens/<n>` in the test's folder and answers at once.
pub fn hand_over(dir: &Path) -> String {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    python_function(
        dir,
        "hand",
        &format!(
            "import json,sys,os\ne=json.load(sys.stdin)\np=os.path.join({:?}, str(e['n']))\nopen(p+'.tmp','w').write(e['token'])\nos.rename(p+'.tmp', p)\nprint(json.dumps({{'handed': e['n']}}))\n",
            tokens.display().to_string()
        ),
    )
}

/// A Task that hands its token to `hand` and waits for it.
pub fn callback_task(extra: Value) -> Value {
    let mut t = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "hand", "Payload": {"token.$": "$$.Task.Token", "n.$": "$.n"}},
    });
    t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    t
}

/// Waits for the token the function wrote for `n`.
pub fn token(dir: &Path, n: &str, within: Duration) -> String {
    let until = Instant::now() + within;
    let path = dir.join("tokens").join(n);
    loop {
        if let Ok(t) = std::fs::read_to_string(&path) {
            return t;
        }
        assert!(Instant::now() < until, "no token for {n} after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_for_status(d: &Daemon, arn: &str, want: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let e = d.describe(arn);
        if e["status"] == want {
            return e;
        }
        assert!(Instant::now() < until, "{arn} is {} after {within:?}, not {want}: {e}", e["status"]);
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn history_types(d: &Daemon, arn: &str) -> Vec<String> {
    let (status, h) = d.call("GetExecutionHistory", json!({"executionArn": arn, "maxResults": 1000}));
    assert_eq!(status, 200, "{h}");
    h["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect()
}

pub fn start(d: &Daemon, machine: &str, name: &str, input: Value) -> String {
    let (status, r) = d.call(
        "StartExecution",
        json!({"stateMachineArn": format!("{ACCOUNT_ARN}:stateMachine:{machine}"), "name": name, "input": input.to_string()}),
    );
    assert_eq!(status, 200, "{r}");
    r["executionArn"].as_str().unwrap().to_string()
}

/// A schema of its own on the PostgreSQL server the tests use (`STEPGATE_TEST_POSTGRES`,
/// default `postgres://postgres@127.0.0.1:5432/test`, the one this machine runs), dropped with
/// everything in it when the value goes. `url` points a store at it.
pub struct PgSchema {
    pub url: String,
    base: String,
    name: String,
}

pub fn postgres_base() -> String {
    std::env::var("STEPGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs SQL on the test server with psql; a server that cannot be reached fails the test
/// with the way to get one.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("psql could not run ({e}): install PostgreSQL's client (Debian: apt-get install postgresql-client)"));
    assert!(
        out.status.success(),
        "PostgreSQL at {url} refused {sql:?}: {}\nThese tests need a PostgreSQL server: on Debian, \
         apt-get install postgresql, then let the user connect (trust auth on 127.0.0.1) to a database \
         named in STEPGATE_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test).",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl PgSchema {
    pub fn new() -> PgSchema {
        let base = postgres_base();
        let name = format!("sg_{}", uuid::Uuid::new_v4().simple());
        psql(&base, &format!("CREATE SCHEMA {name}"));
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        PgSchema { url, base, name }
    }

    /// Runs SQL inside the schema.
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.base, &format!("SET search_path = {}; {sql}", self.name))
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&self.base, "-XAtq", "-c", &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)])
            .output();
    }
}

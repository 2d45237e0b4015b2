//! Configuration: defaults, then the TOML file, then `STEPGATE_*` environment variables
//! (`__` separates nested keys), merged by figment into the raw [`Config`]. Unknown keys are
//! errors that name the key and the file. [`compile`] then checks it whole (every workflow,
//! trigger and cross-reference, every problem at once) into what `serve` runs and
//! `validate --config` reports.

pub mod compile;

use crate::connectors::function::Functions;
use crate::interpreter::Limits;
use crate::triggers::{mqtt::BrokerConfig, TriggersConfig};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Region and account that ARNs carry.
    pub region: String,
    pub account: String,
    pub limits: LimitsConfig,
    /// Local functions that Lambda ARNs resolve to, by function name.
    pub functions: BTreeMap<String, FunctionConfig>,
    /// `stepgate serve`: where the API listens.
    pub server: ServerConfig,
    /// Where durable state lives and for how long finished executions are kept.
    pub storage: StorageConfig,
    /// The workflows folder (file stem = workflow name).
    pub workflows: WorkflowsConfig,
    /// Per-workflow settings, by workflow name: `[workflow.NAME] type = "EXPRESS"`.
    pub workflow: BTreeMap<String, WorkflowConfig>,
    /// How the daemon logs.
    pub log: LogConfig,
    /// Where the HTTP routes listen.
    pub http: HttpConfig,
    /// MQTT brokers, by name, for the MQTT triggers.
    pub brokers: BTreeMap<String, BrokerConfig>,
    /// Credentials of HTTP Tasks, by name: a Task's `Authentication.ConnectionArn` names one
    /// (`arn:aws:events:REGION:ACCOUNT:connection/NAME/ID`).
    pub connections: BTreeMap<String, crate::connectors::http::ConnectionConfig>,
    /// Where the AWS services of Tasks are (EventBridge, SQS, SNS, DynamoDB).
    #[cfg(feature = "aws")]
    pub aws: crate::connectors::aws::AwsConfig,
    /// `[aws]` for EventBridge only, key by key.
    #[cfg(feature = "aws")]
    pub eventbridge: Option<crate::connectors::aws::AwsConfig>,
    /// MQTT publish Tasks (`aws-sdk:iotdata:publish`): the broker they publish through.
    pub iotdata: crate::connectors::mqtt::IotDataConfig,
    /// HTTP routes, MQTT topics and schedules that start workflows.
    pub triggers: TriggersConfig,
}

/// One thing wrong with a config: the key it is at (`triggers.mqtt[0].sql`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { key: key.into(), message: message.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// "text" (one line per event; colours only on a terminal) or "json" (one object per
    /// line, for log shippers).
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the HTTP routes listen; empty: on `server.listen`, beside the API.
    #[serde(default)]
    pub listen: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The AWS Step Functions API, /healthz and /metrics. Loopback by default.
    pub listen: String,
    /// With keys, every API call must carry a SigV4 signature from one of them; without,
    /// the daemon only listens on loopback.
    #[serde(default)]
    pub access_keys: Vec<AccessKey>,
    /// Connections open at once; when reached, the oldest idle one is closed to make room.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A request's headers must arrive within this; also how long an idle kept-alive
    /// connection stays open.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// A request's body must arrive within this.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_seconds: u64,
    /// The largest request body taken in (413 beyond).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// On SIGTERM: how long requests and event starts in progress may take to finish.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_seconds: u64,
    /// Once ready (and after a reload), hand the pages of the code that only starting ran back
    /// to the kernel.
    #[serde(default = "yes")]
    pub page_out_startup_code: bool,
    /// Threads that run the daemon's async work (0: the number of cores, at most 4). Each
    /// keeps a heap and a stack of its own; an edge device gains memory with fewer.
    #[serde(default)]
    pub worker_threads: usize,
}

impl ServerConfig {
    /// The async worker threads to start: `worker_threads`, or the cores (at most 4).
    pub fn workers(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(4),
            n => n,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_shutdown_grace() -> u64 {
    20
}

/// Where Standard executions are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sqlite,
    Postgres,
}

fn default_pool_size() -> usize {
    16
}

fn default_lease_seconds() -> u64 {
    15
}

fn default_cache_bytes() -> usize {
    crate::store::sqlite::DEFAULT_CACHE_BYTES
}

fn default_express_memory() -> usize {
    32 << 20
}

fn default_max_connections() -> usize {
    4096
}
fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    30
}
/// AWS's quota: 1 MB per request.
fn default_max_body_bytes() -> usize {
    1 << 20
}

impl ServerConfig {
    /// Loopback, no keys, default limits.
    pub fn on(listen: impl Into<String>) -> ServerConfig {
        ServerConfig {
            listen: listen.into(),
            access_keys: Vec::new(),
            max_connections: default_max_connections(),
            header_timeout_seconds: default_header_timeout(),
            body_timeout_seconds: default_body_timeout(),
            max_body_bytes: default_max_body_bytes(),
            shutdown_grace_seconds: default_shutdown_grace(),
            page_out_startup_code: true,
            worker_threads: 0,
        }
    }
}

/// `[[server.access_keys]]`: a key pair the aws CLI and SDKs sign requests with.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A config printed in a log or an error must not leak the secret.
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Where Standard executions are kept: the embedded SQLite file, or a PostgreSQL database
    /// that several daemons share.
    #[serde(default)]
    pub backend: Backend,
    /// postgres: the database, as a libpq URL (`postgres://user:password@host:port/db`).
    #[serde(default)]
    pub url: Option<String>,
    /// postgres: connections for reads (the writer has one more).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// postgres: how long a daemon's lease lasts; a daemon that does not renew it for this
    /// long has its executions taken over by the others.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// postgres: this daemon's name among those sharing the database; stable across
    /// restarts so that a restarted daemon takes its own executions back at once. Default:
    /// the host name and the state folder.
    #[serde(default)]
    pub node_id: Option<String>,
    /// The folder of the embedded SQLite store (and, with postgres, of the daemon's marker of
    /// a clean shutdown).
    pub state_dir: String,
    /// Finished executions are purged after this many days.
    pub retention_days: u32,
    /// How many Express executions (with their histories) are kept in memory, newest first.
    pub express_executions: usize,
    /// The SQLite writer's page cache in bytes.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: usize,
    /// And at most about this many bytes of them (records, histories): the oldest go first.
    #[serde(default = "default_express_memory")]
    pub express_memory_bytes: usize,
    /// A Standard execution whose top level is to sleep (Wait, Retry backoff) for longer than
    /// this leaves memory until it is due: its timer is in the store only.
    pub park_after_seconds: u64,
    /// After this many stops of the daemon in a row without a clean shutdown (a crash,
    /// kill -9, the OOM killer) while a Standard execution was at work on the same step, the
    /// execution is failed with States.Runtime instead of being resumed again. 0: never.
    pub resume_limit: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsConfig {
    pub dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    /// STANDARD (durable, the default) or EXPRESS (in memory).
    #[serde(rename = "type", default = "standard")]
    pub kind: WorkflowType,
    /// EXPRESS: keep each execution's history in memory for GetExecutionHistory (the
    /// execution itself stays describable and listed either way).
    #[serde(default = "yes")]
    pub history: bool,
}

/// A workflow's type, as AWS spells it (lower case is taken too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkflowType {
    #[serde(rename = "STANDARD", alias = "standard")]
    Standard,
    #[serde(rename = "EXPRESS", alias = "express")]
    Express,
}

fn standard() -> WorkflowType {
    WorkflowType::Standard
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest state input/output in bytes (AWS: 262144).
    pub payload_bytes: usize,
    /// Longest Wait in seconds (AWS: one year).
    pub max_wait_seconds: u64,
    /// The most events one execution's history may hold (AWS: 25,000).
    pub history_events: u64,
    /// The most memory one JSONata expression or payload template may take while it is
    /// evaluated, in bytes; past it the state fails.
    pub expression_memory_bytes: usize,
    /// The most Task calls in flight at once across all executions; more wait their turn.
    pub running_tasks: usize,
}

/// `limits.running_tasks` unless set: Lambda's default concurrency per account.
pub const DEFAULT_RUNNING_TASKS: usize = 1000;
/// `functions.NAME.concurrency` unless set: a process per call, and a small device runs
/// only so many of them usefully.
pub const DEFAULT_FUNCTION_CONCURRENCY: usize = 16;

fn default_function_concurrency() -> usize {
    DEFAULT_FUNCTION_CONCURRENCY
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// The program and its arguments; it reads the event on stdin, writes the result on stdout.
    #[serde(default)]
    pub command: Vec<String>,
    /// Or an HTTP endpoint the event is POSTed to, whose answer is the result.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub env: HashMap<String, String>,
    /// The command's working directory. Default: the daemon's.
    #[serde(default)]
    pub cwd: Option<String>,
    /// The most calls of this function at once; more wait their turn.
    #[serde(default = "default_function_concurrency")]
    pub concurrency: usize,
    /// The most calls waiting for a turn; past it a call fails with
    /// Lambda.TooManyRequestsException.
    #[serde(default = "default_function_queue")]
    pub queue: usize,
    /// How long one call may run before it fails as Lambda's timeout (Sandbox.Timedout).
    /// Default: none (the Task's TimeoutSeconds bounds it).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

fn default_function_queue() -> usize {
    crate::connectors::function::DEFAULT_QUEUE
}

impl Default for Config {
    fn default() -> Self {
        let limits = Limits::default();
        Config {
            region: "us-east-1".into(),
            account: "123456789012".into(),
            limits: LimitsConfig {
                payload_bytes: limits.payload_bytes,
                max_wait_seconds: limits.max_wait_seconds,
                history_events: limits.history_events,
                expression_memory_bytes: limits.expression_memory_bytes,
                running_tasks: DEFAULT_RUNNING_TASKS,
            },
            functions: BTreeMap::new(),
            server: ServerConfig::on("127.0.0.1:8083"),
            storage: StorageConfig {
                backend: Backend::Sqlite,
                url: None,
                pool_size: default_pool_size(),
                lease_seconds: default_lease_seconds(),
                node_id: None,
                state_dir: "state".into(),
                retention_days: 90,
                express_executions: 10_000,
                express_memory_bytes: default_express_memory(),
                cache_bytes: default_cache_bytes(),
                park_after_seconds: 60,
                resume_limit: 3,
            },
            workflows: WorkflowsConfig { dir: "workflows".into() },
            workflow: BTreeMap::new(),
            log: LogConfig { format: LogFormat::Text },
            http: HttpConfig { listen: String::new() },
            brokers: BTreeMap::new(),
            connections: BTreeMap::new(),
            iotdata: Default::default(),
            #[cfg(feature = "aws")]
            aws: Default::default(),
            #[cfg(feature = "aws")]
            eventbridge: None,
            triggers: TriggersConfig::default(),
        }
    }
}

/// The keys `STEPGATE_*` variables may set (`STEPGATE_LIMITS__PAYLOAD_BYTES=...`).
const TOP_LEVEL_KEYS: &[&str] = &[
    "region",
    "account",
    "limits",
    "functions",
    "server",
    "storage",
    "workflows",
    "workflow",
    "log",
    "http",
    "brokers",
    "connections",
    "iotdata",
    "aws",
    "eventbridge",
    "triggers",
];

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `file` (when given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError(format!("{}: no such config file", f.display())));
            }
            fig = fig.merge(Toml::file(f));
        }
        // Only variables that name a config key: STEPGATE_CONFORMANCE_DIR and the like
        // belong to other tools and must not be read as (unknown) keys.
        // STEPGATE_LOG alone is the log filter (`info`, `stepgate=debug`), not the [log] table.
        let env = Env::prefixed("STEPGATE_").filter(|k| {
            let top = k.as_str().split("__").next().unwrap_or("").to_ascii_lowercase();
            TOP_LEVEL_KEYS.contains(&top.as_str()) && !k.as_str().eq_ignore_ascii_case("log")
        });
        fig = fig.merge(env.split("__"));
        let config: Config = fig.extract().map_err(|e| {
            let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            ConfigError(all.join("\n"))
        })?;
        config.check_access_keys()?;
        Ok(config)
    }

    /// Empty or repeated key ids would make a signature's key ambiguous; every problem is listed.
    fn check_access_keys(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, k) in self.server.access_keys.iter().enumerate() {
            if k.access_key_id.trim().is_empty() {
                problems.push(format!("server.access_keys[{i}].access_key_id is empty"));
            } else if !seen.insert(k.access_key_id.as_str()) {
                problems.push(format!(
                    "server.access_keys[{i}].access_key_id \"{}\" appears more than once",
                    k.access_key_id
                ));
            }
            if k.access_key_id.contains(['/', ' ', ',']) {
                problems.push(format!(
                    "server.access_keys[{i}].access_key_id \"{}\" may not contain '/', ',' or spaces",
                    k.access_key_id
                ));
            }
            if k.secret_access_key.is_empty() {
                problems.push(format!("server.access_keys[{i}].secret_access_key is empty"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems.join("\n")))
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            payload_bytes: self.limits.payload_bytes,
            max_wait_seconds: self.limits.max_wait_seconds,
            history_events: self.limits.history_events,
            expression_memory_bytes: self.limits.expression_memory_bytes,
        }
    }

    pub fn functions(&self) -> Functions {
        crate::connectors::function::build(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_with_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("stepgate.toml");
        std::fs::write(&f, "region = \"eu-west-1\"\n[limits]\npayload_byte = 5\n").unwrap();
        let err = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(err.contains("payload_byte"), "{err}");
        assert!(err.contains("stepgate.toml"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail hands back figment::Error
    fn other_tools_variables_are_not_config_keys() {
        // Regression: STEPGATE_CONFORMANCE_DIR (set by scripts/test) was read as a key.
        figment::Jail::expect_with(|jail| {
            jail.set_env("STEPGATE_CONFORMANCE_DIR", "../shared/conformance/asl");
            jail.set_env("STEPGATE_REGION", "eu-north-1");
            jail.set_env("STEPGATE_LIMITS__PAYLOAD_BYTES", "1024");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.region, "eu-north-1");
            assert_eq!(c.limits.payload_bytes, 1024);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail hands back figment::Error
    fn access_keys_come_from_the_file_and_are_checked() {
        // In a Jail: the environment test below sets STEPGATE_SERVER__ACCESS_KEYS meanwhile.
        figment::Jail::expect_with(|jail| {
            let f = Path::new("stepgate.toml");
            jail.create_file(
                f,
                "[[server.access_keys]]\naccess_key_id = \"ops\"\nsecret_access_key = \"s3cr3t\"\n",
            )?;
            let c = Config::load(Some(f)).map_err(|e| e.to_string())?;
            assert_eq!(c.server.access_keys[0].access_key_id, "ops");
            assert_eq!(c.server.access_keys[0].secret_access_key, "s3cr3t");
            assert!(!format!("{c:?}").contains("s3cr3t"));

            jail.create_file(f, "[[server.access_keys]]\naccess_key_id = \"ops\"\nsecret = \"x\"\n")?;
            let err = Config::load(Some(f)).unwrap_err().to_string();
            assert!(err.contains("secret"), "{err}");

            jail.create_file(
                f,
                "[[server.access_keys]]\naccess_key_id = \"ops\"\nsecret_access_key = \"\"\n\
                 [[server.access_keys]]\naccess_key_id = \"ops\"\nsecret_access_key = \"y\"\n",
            )?;
            let err = Config::load(Some(f)).unwrap_err().to_string();
            assert!(err.contains("server.access_keys[0].secret_access_key is empty"), "{err}");
            assert!(
                err.contains("server.access_keys[1].access_key_id \"ops\" appears more than once"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail hands back figment::Error
    fn access_keys_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "STEPGATE_SERVER__ACCESS_KEYS",
                r#"[{access_key_id="ops", secret_access_key="from-env"}]"#,
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.server.access_keys.len(), 1);
            assert_eq!(c.server.access_keys[0].secret_access_key, "from-env");
            assert_eq!(c.server.listen, "127.0.0.1:8083");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail hands back figment::Error
    fn functions_come_from_the_file() {
        // Inside a Jail: other tests set STEPGATE_* variables, and a Jail runs alone and
        // starts with none of them (regression: this test raced with those).
        figment::Jail::expect_with(|jail| {
            jail.create_file("stepgate.toml", "[functions.Echo]\ncommand = [\"cat\"]\n")?;
            let c = Config::load(Some(std::path::Path::new("stepgate.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.functions["Echo"].command, vec!["cat".to_string()]);
            assert_eq!(c.region, "us-east-1");
            assert!(c.functions().get("Echo").is_some());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail hands back figment::Error
    fn a_connections_secret_can_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "stepgate.toml",
                "[connections.billing]\napi_key = { header = \"x-api-key\", value = \"in-the-file\" }\n",
            )?;
            jail.set_env("STEPGATE_CONNECTIONS__BILLING__API_KEY__VALUE", "from-the-env");
            let c = Config::load(Some(std::path::Path::new("stepgate.toml"))).map_err(|e| e.to_string())?;
            let key = c.connections["billing"].api_key.clone().unwrap();
            assert_eq!((key.header.as_str(), key.value.as_str()), ("x-api-key", "from-the-env"));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail hands back figment::Error
    fn worker_threads_default_to_the_cores_at_most_four() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("stepgate.toml", "[server]\nlisten = \"127.0.0.1:0\"\n")?;
            let c = Config::load(Some(std::path::Path::new("stepgate.toml"))).map_err(|e| e.to_string())?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            assert_eq!(c.server.workers(), cores.min(4));
            jail.set_env("STEPGATE_SERVER__WORKER_THREADS", "1");
            let c = Config::load(Some(std::path::Path::new("stepgate.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.server.workers(), 1);
            Ok(())
        });
    }
}

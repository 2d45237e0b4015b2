//! Triggers: the events from outside that start executions (MQTT topics as AWS IoT Rules do,
//! HTTP routes as API Gateway does, schedules as EventBridge Scheduler does). Each kind owns
//! its config section and a compile function that turns it into a checked plan; the daemon
//! runs the plans, and every trigger reaches the engine through the one
//! [`Starter`](crate::service::Starter). The languages the triggers speak (IoT SQL, schedule
//! expressions) are pure modules here, with no I/O, like `asl/`.
//!
//! ```text
//! config [[triggers.*]] --compile--> Plan --run--> http routes | mqtt brokers | schedules
//!                                                        \            |           /
//!                                                         '--> Starter::start(_sync)
//! ```

pub mod http;
pub mod iot_sql;
pub mod mqtt;
pub mod schedule;
pub mod schedule_expr;

use crate::config::Problem;
use crate::service::{ApiError, StartRequest, Started, Starter};
use crate::store::MachineType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `[triggers]`: the `[[triggers.http]]`, `[[triggers.mqtt]]` and `[[triggers.schedule]]`
/// tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggersConfig {
    #[serde(default)]
    pub http: Vec<http::RouteConfig>,
    #[serde(default)]
    pub mqtt: Vec<mqtt::TriggerConfig>,
    #[serde(default)]
    pub schedule: Vec<schedule::ScheduleConfig>,
}

/// What a trigger's config may refer to, as the config compiles: the workflows that loaded
/// (name and type) and the ARNs they get.
pub struct Refs<'a> {
    pub workflows: &'a BTreeMap<String, MachineType>,
    /// Workflow files that exist but did not load (their own errors are reported with them).
    pub broken: &'a [String],
    pub region: &'a str,
    pub account: &'a str,
    pub payload_bytes: usize,
}

impl Refs<'_> {
    /// The state machine ARN of `workflow`, or the problem with the reference at `key`.
    pub fn workflow(&self, key: &str, workflow: &str) -> Result<(String, MachineType), Problem> {
        match self.workflows.get(workflow) {
            Some(t) => {
                Ok((format!("arn:aws:states:{}:{}:stateMachine:{workflow}", self.region, self.account), *t))
            }
            None if self.broken.iter().any(|b| b == workflow) => Err(Problem::new(
                key,
                format!("the workflow '{workflow}' does not load (its errors are listed with its file)"),
            )),
            None => Err(Problem::new(
                key,
                format!(
                    "no workflow is named '{workflow}' (the workflows folder has: {})",
                    if self.workflows.is_empty() {
                        "none".to_string()
                    } else {
                        self.workflows.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            )),
        }
    }
}

/// Every trigger of a config, checked and ready to run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub routes: Vec<http::Route>,
    pub mqtt: mqtt::Plan,
    pub schedules: Vec<schedule::Schedule>,
}

impl Plan {
    /// Compiles the `[triggers]` and `[brokers]` of a config, collecting every problem.
    pub fn compile(
        triggers: &TriggersConfig,
        brokers: &BTreeMap<String, mqtt::BrokerConfig>,
        refs: &Refs,
        problems: &mut Vec<Problem>,
    ) -> Plan {
        Plan {
            routes: http::compile(&triggers.http, refs, problems),
            mqtt: mqtt::compile(brokers, &triggers.mqtt, refs, problems),
            schedules: schedule::compile(&triggers.schedule, refs, problems),
        }
    }
}

/// Counts of one trigger, served in `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events that reached the trigger (messages, requests, ticks).
    pub received: AtomicU64,
    /// Executions it started.
    pub started: AtomicU64,
    /// Events that found their execution already started (a redelivered message).
    pub duplicates: AtomicU64,
    /// Events that a WHERE clause filtered out.
    pub filtered: AtomicU64,
    /// Events whose start was refused (input too large, a bad name, no such workflow).
    pub rejected: AtomicU64,
    /// Events that failed otherwise (IoT SQL that fails, the store unavailable).
    pub errors: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The connection of a trigger's broker, as `/healthz` and `/metrics` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected,
    Down(String),
}

/// The counters of every trigger and the state of every broker, by name; they outlive a
/// reload, so a trigger that a reload keeps keeps counting.
#[derive(Debug, Default)]
pub struct Stats {
    counters: Mutex<BTreeMap<(&'static str, String), Arc<Counters>>>,
    brokers: Mutex<BTreeMap<String, (String, Link)>>,
}

impl Stats {
    /// The counters of the trigger `name` of `kind` (`http`, `mqtt`, `schedule`).
    pub fn counters(&self, kind: &'static str, name: &str) -> Arc<Counters> {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((kind, name.to_string()))
            .or_default()
            .clone()
    }

    /// Records the link to `broker` (at `address`), logging it once per change.
    pub fn link(&self, broker: &str, address: &str, link: Link) {
        let mut all = self.brokers.lock().unwrap_or_else(|e| e.into_inner());
        let previous = all.insert(broker.to_string(), (address.to_string(), link.clone()));
        if previous.as_ref().map(|p| &p.1) == Some(&link) {
            return;
        }
        match &link {
            Link::Connected => tracing::info!(broker, address, "Connected to the MQTT broker."),
            Link::Down(reason) => {
                tracing::warn!(broker, address, reason = %reason, "The MQTT broker is unreachable; reconnecting with backoff.")
            }
            Link::Connecting => {}
        }
    }

    /// Forgets a broker that a reload removed.
    pub fn forget_broker(&self, broker: &str) {
        self.brokers.lock().unwrap_or_else(|e| e.into_inner()).remove(broker);
    }

    /// `/healthz` lines, one per broker: `broker NAME (ADDRESS): connected`.
    pub fn health(&self, out: &mut String) {
        for (name, (address, link)) in self.brokers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let state = match link {
                Link::Connecting => "connecting".to_string(),
                Link::Connected => "connected".to_string(),
                Link::Down(reason) => format!("unreachable: {reason}"),
            };
            let _ = writeln!(out, "mqtt broker {name} ({address}): {state}");
        }
    }

    /// Prometheus text exposition lines.
    pub fn render(&self, out: &mut String) {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        type Family = (&'static str, &'static str, fn(&Counters) -> &AtomicU64);
        let families: [Family; 6] = [
            ("events_total", "Events that reached a trigger.", |c| &c.received),
            ("executions_started_total", "Executions a trigger started.", |c| &c.started),
            ("duplicates_total", "Events whose execution was started already (redelivered).", |c| {
                &c.duplicates
            }),
            ("filtered_total", "Events that a trigger's WHERE clause filtered out.", |c| &c.filtered),
            ("rejected_total", "Events whose execution start was refused.", |c| &c.rejected),
            ("errors_total", "Events that failed in a trigger otherwise.", |c| &c.errors),
        ];
        for (name, help, get) in families {
            let _ = writeln!(out, "# HELP stepgate_trigger_{name} {help}");
            let _ = writeln!(out, "# TYPE stepgate_trigger_{name} counter");
            for ((kind, trigger), c) in counters.iter() {
                let _ = writeln!(
                    out,
                    "stepgate_trigger_{name}{{kind=\"{kind}\",trigger=\"{}\"}} {}",
                    label(trigger),
                    get(c).load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(out, "# HELP stepgate_mqtt_broker_connected 1 while the MQTT broker is connected.");
        let _ = writeln!(out, "# TYPE stepgate_mqtt_broker_connected gauge");
        for (name, (_, link)) in self.brokers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "stepgate_mqtt_broker_connected{{broker=\"{}\"}} {}",
                label(name),
                u8::from(*link == Link::Connected)
            );
        }
    }
}

/// Starts an execution for an event, trying again for a few seconds while the store cannot
/// take it (busy, or briefly gone): the event is acknowledged only once its start is
/// committed, so giving up leaves it to be delivered (or fired) again.
pub async fn start_for_event(starter: &Starter, req: StartRequest) -> Result<Started, ApiError> {
    let mut wait = Duration::from_millis(50);
    loop {
        match starter.start(req.clone()).await {
            Err(e) if e.kind == "InternalServerError" && wait < Duration::from_secs(5) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

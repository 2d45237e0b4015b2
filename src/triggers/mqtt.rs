//! MQTT topics, as AWS IoT Rules serve them: `[[triggers.mqtt]]` binds an IoT SQL statement
//! (`SELECT ... FROM 'topic/+/filter' WHERE ...`) on a `[brokers.NAME]` to a workflow. A
//! message whose WHERE holds starts the workflow with the SELECT's output as its input.
//!
//! Nothing is lost and nothing starts twice: each broker has one client (rumqttc) with a
//! persistent session (clean session off, a stable client id), subscriptions at QoS 1, and
//! manual acknowledgement. A message is acknowledged only once its execution's start is
//! committed (a Standard one on disk), so a message whose start did not happen is
//! redelivered by the broker; acknowledgements go out in the order the messages came, as
//! MQTT 3.1.1 asks. A redelivered message starts nothing twice when the trigger names its
//! executions (`execution_name`): the same name and input is the same execution.
//!
//! A message whose SQL fails or whose start is refused never stops the trigger: it is
//! counted, logged, acknowledged and, with `error_topic`, republished there in IoT's
//! errorAction shape. A broker that is down or goes away is reconnected with backoff; the
//! daemon serves everything else meanwhile.
//!
//! ```text
//! broker --> event loop task --events--> broker task --spawn--> handle (SQL, Starter)
//!    ^                                        |                        |
//!    '------ requests (subscribe, ack) -------'---------- acks in order'
//! ```
//! The event loop runs in a task of its own that is never cancelled mid-read; acks are sent
//! from the handling tasks, never from the task that consumes the events (rumqttc's requests
//! and events share the event loop: acking from the consumer can deadlock it).

use super::iot_sql::{self, Expression, Message, Outcome, SqlVersion};
use super::{Counters, Link, Refs, Stats};
use crate::config::Problem;
use crate::service::{ApiError, StartRequest, Starter};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode, Transport,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// `[brokers.NAME]`: one MQTT broker.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Names the persistent session: keep it stable and unique per daemon. Default:
    /// `stepgate-HOSTNAME-NAME`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_seconds: u64,
    /// The largest MQTT packet read from the broker.
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: usize,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A config printed in a log must not leak the password.
        f.debug_struct("BrokerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("keep_alive_seconds", &self.keep_alive_seconds)
            .field("max_packet_bytes", &self.max_packet_bytes)
            .finish()
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    1883
}
fn default_keep_alive() -> u64 {
    30
}
/// Well past any payload a workflow takes: a packet larger than this cannot be read at all,
/// and the broker would deliver it again after every reconnect.
fn default_max_packet() -> usize {
    16 << 20
}

/// `tls = { ca_file, cert_file, key_file }` (PEM files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The CA that signed the broker's certificate. Default: the system's bundle.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// A client certificate and its key, for brokers that ask for one.
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
}

const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `[[triggers.mqtt]]`: an IoT rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// The rule's name in metrics, logs and error messages (`ruleName`). Default: `mqtt-N`.
    #[serde(default)]
    pub name: Option<String>,
    pub broker: String,
    pub sql: String,
    /// "2016-03-23" (the default) or "2015-10-08".
    #[serde(default)]
    pub sql_version: Option<String>,
    pub workflow: String,
    /// 0 or 1.
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// An IoT SQL expression over the message naming its execution.
    #[serde(default)]
    pub execution_name: Option<String>,
    /// Where a message that fails is republished, with the reason.
    #[serde(default)]
    pub error_topic: Option<String>,
    /// Subscribe as `$share/GROUP/FILTER`: several daemons split the messages.
    #[serde(default)]
    pub shared_group: Option<String>,
}

fn default_qos() -> u8 {
    1
}

/// A broker, checked, with what connecting to it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub name: String,
    pub config: BrokerConfig,
    pub client_id: String,
    /// The PEM files' contents, read when the config compiled.
    tls: Option<Pem>,
}

impl Broker {
    pub fn address(&self) -> String {
        format!("{}:{}", self.config.host, self.config.port)
    }

    pub(crate) fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new(self.client_id.clone(), self.config.host.clone(), self.config.port);
        o.set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(self.config.keep_alive_seconds.max(1)))
            // Out: an error report carries a message it read, base64-encoded (4/3 of it). A
            // packet over the limit would fail the connection, and the message would come back.
            .set_max_packet_size(
                self.config.max_packet_bytes,
                self.config.max_packet_bytes.saturating_mul(2),
            );
        if let Some(user) = &self.config.username {
            o.set_credentials(user.clone(), self.config.password.clone().unwrap_or_default());
        }
        if let Some((ca, client)) = &self.tls {
            o.set_transport(Transport::tls(ca.clone(), client.clone(), None));
        }
        o
    }
}

/// A CA certificate, and a client certificate with its key.
type Pem = (Vec<u8>, Option<(Vec<u8>, Vec<u8>)>);

/// A rule, checked.
#[derive(Clone)]
pub struct Rule {
    pub name: String,
    pub broker: String,
    sql: Arc<iot_sql::Rule>,
    /// What is subscribed: the filter, or `$share/GROUP/FILTER`.
    pub subscription: String,
    /// What topics are matched against.
    pub filter: String,
    pub workflow: String,
    pub workflow_arn: String,
    pub qos: QoS,
    execution_name: Option<Arc<Expression>>,
    pub error_topic: Option<String>,
    /// The config as written, to tell a changed rule from an unchanged one on reload.
    config: TriggerConfig,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("name", &self.name).field("config", &self.config).finish_non_exhaustive()
    }
}

/// The brokers and rules of a config.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub brokers: BTreeMap<String, Broker>,
    pub rules: Vec<Rule>,
}

/// The brokers of `[brokers]` whose settings are sound, with the problems of the others
/// (shared by the MQTT triggers and the MQTT publish Tasks).
pub fn brokers_of(
    brokers: &BTreeMap<String, BrokerConfig>,
    payload_bytes: usize,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, Broker> {
    let mut out = BTreeMap::new();
    let mut client_ids = HashMap::new();
    for (name, c) in brokers {
        let key = |field: &str| format!("brokers.{name}.{field}");
        let before = problems.len();
        let client_id = c.client_id.clone().unwrap_or_else(|| format!("stepgate-{}-{name}", hostname()));
        if client_id.trim().is_empty() {
            problems
                .push(Problem::new(key("client_id"), "is empty: it names the broker's persistent session"));
        } else if let Some(other) = client_ids.insert(client_id.clone(), name.clone()) {
            problems.push(Problem::new(
                key("client_id"),
                format!("'{client_id}' is brokers.{other}'s too: one session cannot serve two clients"),
            ));
        }
        if c.host.trim().is_empty() {
            problems.push(Problem::new(key("host"), "is empty"));
        }
        if c.keep_alive_seconds == 0 || c.keep_alive_seconds > 65535 {
            problems.push(Problem::new(key("keep_alive_seconds"), "must be 1 to 65535"));
        }
        if c.max_packet_bytes < payload_bytes {
            problems.push(Problem::new(
                key("max_packet_bytes"),
                format!("{} is below limits.payload_bytes ({})", c.max_packet_bytes, payload_bytes),
            ));
        }
        if c.password.is_some() && c.username.is_none() {
            problems.push(Problem::new(key("password"), "is given without a username"));
        }
        let tls = c.tls.as_ref().and_then(|t| {
            let mut unread = Vec::new();
            let mut read = |field: &str, path: &str| {
                std::fs::read(path)
                    .map_err(|e| {
                        unread.push(Problem::new(key(&format!("tls.{field}")), format!("{path}: {e}")))
                    })
                    .ok()
            };
            let ca = read("ca_file", t.ca_file.as_deref().unwrap_or(SYSTEM_CA_BUNDLE));
            let client = match (&t.cert_file, &t.key_file) {
                (Some(cert), Some(k)) => Some((read("cert_file", cert), read("key_file", k))),
                (None, None) => None,
                _ => {
                    unread.push(Problem::new(key("tls"), "cert_file and key_file go together"));
                    None
                }
            };
            problems.extend(unread);
            match (ca, client) {
                (Some(ca), None) => Some((ca, None)),
                (Some(ca), Some((Some(cert), Some(k)))) => Some((ca, Some((cert, k)))),
                _ => None,
            }
        });
        if problems.len() == before {
            out.insert(name.clone(), Broker { name: name.clone(), config: c.clone(), client_id, tls });
        }
    }
    out
}

/// Checks the brokers and the rules, collecting every problem.
pub fn compile(
    brokers: &BTreeMap<String, BrokerConfig>,
    triggers: &[TriggerConfig],
    refs: &Refs,
    problems: &mut Vec<Problem>,
) -> Plan {
    let mut plan = Plan { brokers: brokers_of(brokers, refs.payload_bytes, problems), ..Plan::default() };
    let mut names = HashSet::new();
    for (i, t) in triggers.iter().enumerate() {
        let key = |field: &str| format!("triggers.mqtt[{i}].{field}");
        let before = problems.len();
        let name = t.name.clone().unwrap_or_else(|| format!("mqtt-{i}"));
        if !names.insert(name.clone()) {
            problems.push(Problem::new(key("name"), format!("another MQTT trigger is named '{name}' too")));
        }
        if !brokers.contains_key(&t.broker) {
            problems.push(Problem::new(
                key("broker"),
                format!(
                    "no [brokers.{}] (configured: {})",
                    t.broker,
                    if brokers.is_empty() {
                        "none".into()
                    } else {
                        brokers.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            ));
        }
        let version = match t.sql_version.as_deref() {
            None => SqlVersion::default(),
            Some(v) => v.parse().unwrap_or_else(|_| {
                problems
                    .push(Problem::new(key("sql_version"), format!("'{v}' is not 2016-03-23 or 2015-10-08")));
                SqlVersion::default()
            }),
        };
        let sql = iot_sql::parse_rule(&t.sql, version)
            .map_err(|e| problems.push(Problem::new(key("sql"), e.to_string())))
            .ok();
        if let Some(s) = &sql {
            if let Err(m) = check_filter(s.topic_filter()) {
                problems.push(Problem::new(key("sql"), format!("FROM '{}': {m}", s.topic_filter())));
            }
        }
        let execution_name = t.execution_name.as_ref().and_then(|text| {
            iot_sql::parse_expression(text, version)
                .map_err(|e| problems.push(Problem::new(key("execution_name"), e.to_string())))
                .ok()
        });
        let qos = match t.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            q => {
                problems.push(Problem::new(key("qos"), format!("{q} is not 0 or 1")));
                QoS::AtLeastOnce
            }
        };
        if let Some(topic) = &t.error_topic {
            if topic.is_empty() || topic.contains(['+', '#']) {
                problems.push(Problem::new(
                    key("error_topic"),
                    format!("'{topic}' is not a topic to publish to"),
                ));
            }
        }
        if let Some(g) = &t.shared_group {
            if g.is_empty() || g.contains(['/', '+', '#']) {
                problems
                    .push(Problem::new(key("shared_group"), format!("'{g}' may not be empty or hold / + #")));
            }
        }
        let workflow = refs.workflow(&key("workflow"), &t.workflow).map_err(|p| problems.push(p)).ok();
        let (Some(sql), Some((workflow_arn, _))) = (sql, workflow) else { continue };
        if problems.len() > before {
            continue;
        }
        let filter = sql.topic_filter().to_string();
        let subscription = match &t.shared_group {
            Some(g) => format!("$share/{g}/{filter}"),
            None => filter.clone(),
        };
        plan.rules.push(Rule {
            name,
            broker: t.broker.clone(),
            sql: Arc::new(sql),
            subscription,
            filter,
            workflow: t.workflow.clone(),
            workflow_arn,
            qos,
            execution_name: execution_name.map(Arc::new),
            error_topic: t.error_topic.clone(),
            config: t.clone(),
        });
    }
    plan
}

/// An MQTT topic filter: `+` and `#` only as whole levels, `#` only last.
fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("the topic filter is empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("'#' must be a whole level and the last one".into());
        }
        if level.contains('+') && *level != "+" {
            return Err("'+' must be a whole level".into());
        }
    }
    Ok(())
}

/// This machine's host name, for default client ids.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer given.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    if ok && !name.is_empty() {
        name
    } else {
        "host".into()
    }
}

/// What the handling of messages needs.
#[derive(Clone)]
pub struct Context {
    pub starter: Starter,
    pub stats: Arc<Stats>,
}

/// The running MQTT triggers: one task per broker.
#[derive(Default)]
pub struct Mqtt {
    brokers: HashMap<String, Running>,
}

struct Running {
    broker: Broker,
    rules: watch::Sender<Arc<Vec<Rule>>>,
    stop: watch::Sender<Option<Duration>>,
    task: tokio::task::JoinHandle<()>,
}

impl Mqtt {
    /// Makes the running brokers and rules those of `plan`: a broker whose settings are
    /// unchanged keeps its connection and session, and only its subscriptions follow the
    /// rules; one that changed is drained and reconnected; one that is gone is drained.
    pub async fn apply(&mut self, plan: &Plan, ctx: &Context, grace: Duration) {
        let gone: Vec<String> = self
            .brokers
            .iter()
            .filter(|(name, r)| plan.brokers.get(*name) != Some(&r.broker))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(r) = self.brokers.remove(&name) {
                r.stop(grace).await;
                ctx.stats.forget_broker(&name);
            }
        }
        for (name, broker) in &plan.brokers {
            let rules: Vec<Rule> = plan.rules.iter().filter(|r| &r.broker == name).cloned().collect();
            match self.brokers.get(name) {
                Some(r) => {
                    let _ = r.rules.send(Arc::new(rules));
                }
                None => {
                    let (rules_tx, rules_rx) = watch::channel(Arc::new(rules));
                    let (stop_tx, stop_rx) = watch::channel(None);
                    ctx.stats.link(name, &broker.address(), Link::Connecting);
                    let task = tokio::spawn(run(broker.clone(), rules_rx, ctx.clone(), stop_rx));
                    self.brokers.insert(
                        name.clone(),
                        Running { broker: broker.clone(), rules: rules_tx, stop: stop_tx, task },
                    );
                }
            }
        }
    }

    /// Stops taking messages, lets the ones being handled finish and be acknowledged within
    /// `grace`, and disconnects; what was not acknowledged the broker delivers again.
    pub async fn shutdown(&mut self, grace: Duration) {
        let all: Vec<Running> = self.brokers.drain().map(|(_, r)| r).collect();
        futures::future::join_all(all.into_iter().map(|r| r.stop(grace))).await;
    }
}

impl Running {
    async fn stop(self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        if tokio::time::timeout(grace + Duration::from_secs(3), self.task).await.is_err() {
            tracing::warn!(broker = %self.broker.name, "An MQTT broker's task did not stop in time.");
        }
    }
}

/// How many messages of one broker are handled at once.
const IN_FLIGHT: usize = 1024;

/// One broker: connects (through its event loop task), keeps the subscriptions as the rules
/// say, and hands each message to a handling task.
async fn run(
    broker: Broker,
    mut rules: watch::Receiver<Arc<Vec<Rule>>>,
    ctx: Context,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    // Room for every ack and error report the handling tasks may owe at once, so that none
    // of them waits on a full channel while the event loop waits on this task.
    let (client, eventloop) = AsyncClient::new(broker.options(), 4 * IN_FLIGHT);
    let (events_tx, mut events) = mpsc::channel(256);
    let loop_task = tokio::spawn(poll(eventloop, events_tx, broker.max_packet_hint()));
    let (acks, sending) = AckQueue::new(client.clone());
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let address = broker.address();
    // What the broker's session holds, as far as this task knows.
    let mut subscribed: BTreeMap<String, QoS> = BTreeMap::new();
    let mut connected = false;
    let grace = loop {
        tokio::select! {
            changed = stop.changed() => {
                break if changed.is_ok() { stop.borrow().unwrap_or_default() } else { Duration::ZERO };
            }
            Ok(()) = rules.changed() => {
                if connected {
                    let want = subscriptions(&rules.borrow());
                    sync(&client, &mut subscribed, &want, &broker.name).await;
                }
            }
            event = events.recv() => {
                let Some(event) = event else { break Duration::ZERO };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        connected = true;
                        ctx.stats.link(&broker.name, &address, Link::Connected);
                        if !ack.session_present {
                            subscribed.clear();
                        }
                        let want = subscriptions(&rules.borrow());
                        sync(&client, &mut subscribed, &want, &broker.name).await;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Ok(permit) = permits.clone().acquire_owned().await else { break Duration::ZERO };
                        let slot = acks.push(&p);
                        let (rules, ctx, acks, client) = (rules.borrow().clone(), ctx.clone(), acks.clone(), client.clone());
                        tokio::spawn(async move {
                            let ack = handle(&p, &rules, &ctx, &client).await;
                            acks.done(slot, ack);
                            drop(permit);
                        });
                    }
                    Ok(Event::Incoming(Packet::SubAck(s))) => {
                        if s.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                            tracing::error!(broker = %broker.name, "The MQTT broker refused a subscription (check its ACLs); its trigger receives nothing.");
                        }
                    }
                    Ok(_) => {}
                    Err(reason) => {
                        connected = false;
                        ctx.stats.link(&broker.name, &address, Link::Down(reason));
                    }
                }
            }
        }
    };
    // Draining: messages that arrive now are neither handled nor acknowledged (the broker
    // delivers them again); those being handled finish and are acknowledged, in order.
    let drained = async {
        loop {
            let changed = acks.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if acks.pending() == 0 {
                break;
            }
            tokio::select! {
                _ = changed => {}
                // Read on, so the event loop is never held up by a full channel.
                Some(_) = events.recv() => {}
            }
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(broker = %broker.name, pending = acks.pending(), "MQTT messages still being handled at shutdown are left unacknowledged; the broker delivers them again.");
    }
    // The acknowledgements due go out before the disconnect does.
    drop(acks);
    let _ = tokio::time::timeout(Duration::from_secs(2), sending).await;
    let _ = client.disconnect().await;
    let flushed = async {
        while let Some(e) = events.recv().await {
            if matches!(e, Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), flushed).await;
    loop_task.abort();
}

impl Broker {
    /// How the event loop words a packet over `max_packet_bytes`.
    fn max_packet_hint(&self) -> String {
        format!("brokers.{}.max_packet_bytes is {}", self.name, self.config.max_packet_bytes)
    }
}

/// The event loop, in a task of its own: polls rumqttc for ever (it reconnects on the next
/// poll after an error), with backoff between failed attempts, and forwards what happens.
async fn poll(mut eventloop: EventLoop, events: mpsc::Sender<Result<Event, String>>, packet_hint: String) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match eventloop.poll().await {
            Ok(e) => {
                // Only what the broker task acts on: every ack sent would be an event too.
                let wanted = match &e {
                    Event::Incoming(Packet::ConnAck(_)) => {
                        backoff = Duration::from_millis(500);
                        true
                    }
                    Event::Incoming(Packet::Publish(_) | Packet::SubAck(_)) => true,
                    Event::Outgoing(rumqttc::Outgoing::Disconnect) => true,
                    _ => false,
                };
                if wanted && events.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let mut reason = e.to_string();
                if reason.contains("size") {
                    // A packet over the limit cannot be read, nor acknowledged: the broker
                    // sends it again on every reconnect until its own limit keeps it out.
                    reason =
                        format!("{reason} ({packet_hint}; set the broker's message_size_limit below it)");
                }
                if events.send(Err(reason)).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The subscriptions the rules want, each at the highest QoS a rule on it asks for.
fn subscriptions(rules: &[Rule]) -> BTreeMap<String, QoS> {
    let mut want: BTreeMap<String, QoS> = BTreeMap::new();
    for r in rules {
        let q = want.entry(r.subscription.clone()).or_insert(r.qos);
        if r.qos == QoS::AtLeastOnce {
            *q = QoS::AtLeastOnce;
        }
    }
    want
}

/// Brings the session's subscriptions to `want`.
async fn sync(
    client: &AsyncClient,
    have: &mut BTreeMap<String, QoS>,
    want: &BTreeMap<String, QoS>,
    broker: &str,
) {
    let gone: BTreeSet<&String> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    for topic in gone {
        if let Err(e) = client.unsubscribe(topic.clone()).await {
            tracing::warn!(broker, topic = %topic, error = %e, "An MQTT subscription could not be removed.");
        }
    }
    let new: Vec<rumqttc::SubscribeFilter> = want
        .iter()
        .filter(|(k, q)| have.get(*k) != Some(q))
        .map(|(k, q)| rumqttc::SubscribeFilter::new(k.clone(), *q))
        .collect();
    if !new.is_empty() {
        if let Err(e) = client.subscribe_many(new).await {
            tracing::warn!(broker, error = %e, "MQTT subscriptions could not be sent.");
        }
    }
    *have = want.clone();
}

/// Handles one message with every rule whose filter matches its topic; `true` when it may
/// be acknowledged (every start it asked for was committed, or refused for good).
async fn handle(p: &Publish, rules: &[Rule], ctx: &Context, client: &AsyncClient) -> bool {
    let mut ack = true;
    for rule in rules.iter().filter(|r| iot_sql::topic_matches(&r.filter, &p.topic)) {
        let counters = ctx.stats.counters("mqtt", &rule.name);
        Counters::add(&counters.received);
        // A retained message is delivered because of a subscription, not because it was
        // published: an IoT rule reacts to publishes only.
        if p.retain {
            Counters::add(&counters.filtered);
            continue;
        }
        match start(p, rule, ctx).await {
            Handled::Started => Counters::add(&counters.started),
            Handled::Duplicate => Counters::add(&counters.duplicates),
            Handled::Filtered => Counters::add(&counters.filtered),
            Handled::Failed { rejected, message } => {
                Counters::add(if rejected { &counters.rejected } else { &counters.errors });
                tracing::warn!(trigger = %rule.name, topic = %p.topic, error = %message, "An MQTT message did not start its workflow.");
                report(p, rule, client, &message).await;
            }
            Handled::Unavailable(e) => {
                Counters::add(&counters.errors);
                tracing::error!(trigger = %rule.name, topic = %p.topic, error = %e.message, "An MQTT message's workflow could not be started; it stays unacknowledged and the broker delivers it again.");
                ack = false;
            }
        }
    }
    ack
}

enum Handled {
    Started,
    Duplicate,
    Filtered,
    /// Refused for good (`rejected`: the message's fault) or the SQL failed.
    Failed {
        rejected: bool,
        message: String,
    },
    /// The daemon's fault (the store): the message must not be acknowledged.
    Unavailable(ApiError),
}

/// AWS's `clientid()` for a message whose publisher is not known: MQTT 3.1.1 does not tell
/// subscribers who published.
const UNKNOWN_CLIENT: &str = "n/a";

async fn start(p: &Publish, rule: &Rule, ctx: &Context) -> Handled {
    let limit = ctx.starter.payload_limit();
    if p.payload.len() > limit {
        return Handled::Failed {
            rejected: true,
            message: format!(
                "The message's payload of {} bytes is larger than limits.payload_bytes ({limit})",
                p.payload.len()
            ),
        };
    }
    let new_uuid = || uuid::Uuid::new_v4().to_string();
    let msg = Message {
        topic: &p.topic,
        payload: &p.payload,
        client_id: UNKNOWN_CLIENT,
        principal: "",
        timestamp_ms: chrono::Utc::now().timestamp_millis(),
        new_uuid: &new_uuid,
    };
    let input = match rule.sql.apply(&msg) {
        Ok(Outcome::Filtered) => return Handled::Filtered,
        Ok(Outcome::Output(v)) => v,
        Err(e) => return Handled::Failed { rejected: false, message: format!("The rule's SQL failed: {e}") },
    };
    let name = match &rule.execution_name {
        None => None,
        Some(expr) => match expr.evaluate(&msg) {
            Ok(Some(Value::String(s))) => Some(s),
            Ok(Some(v @ (Value::Number(_) | Value::Bool(_)))) => Some(v.to_string()),
            Ok(Some(v)) => {
                return Handled::Failed {
                    rejected: true,
                    message: format!("execution_name gave {v}, not a string"),
                }
            }
            Ok(None) => {
                return Handled::Failed { rejected: true, message: "execution_name gave Undefined".into() }
            }
            Err(e) => {
                return Handled::Failed { rejected: false, message: format!("execution_name failed: {e}") }
            }
        },
    };
    let req = StartRequest { state_machine_arn: rule.workflow_arn.clone(), name, input, parent: None };
    match super::start_for_event(&ctx.starter, req).await {
        Ok(s) if s.existing.is_some() => Handled::Duplicate,
        Ok(_) => Handled::Started,
        Err(e) if e.kind == "InternalServerError" => Handled::Unavailable(e),
        Err(e) => Handled::Failed { rejected: true, message: format!("{}: {}", e.kind, e.message) },
    }
}

/// Republishes a message that failed to the rule's error topic, in the shape of AWS IoT's
/// errorAction message, at QoS 0 as IoT's republish does by default.
async fn report(p: &Publish, rule: &Rule, client: &AsyncClient, message: &str) {
    let Some(topic) = &rule.error_topic else { return };
    use base64::Engine as _;
    let body = json!({
        "ruleName": rule.name,
        "topic": p.topic,
        "cloudwatchTraceId": uuid::Uuid::new_v4().to_string(),
        "clientId": UNKNOWN_CLIENT,
        "base64OriginalPayload": base64::engine::general_purpose::STANDARD.encode(&p.payload),
        "failures": [{
            "failedAction": "StepFunctionsAction",
            "failedResource": rule.workflow,
            "errorMessage": message,
        }],
    });
    if let Err(e) = client.publish(topic.clone(), QoS::AtMostOnce, false, body.to_string()).await {
        tracing::warn!(trigger = %rule.name, error_topic = %topic, error = %e, "A failed message could not be republished to the error topic.");
    }
}

/// Acknowledgements in the order the messages arrived: a message handled early waits for
/// those before it. Nothing here waits on the event loop: the acknowledgements that are due
/// go, in order, to a task of their own that hands them to rumqttc, so neither the task that
/// reads the events nor a handling task can be held up by a full request channel (which only
/// the event loop drains, and which would wait on them in turn).
struct AckQueue {
    state: std::sync::Mutex<Acks>,
    /// To the sending task, in order.
    due: mpsc::UnboundedSender<Publish>,
    /// Messages pushed and not yet released (for draining).
    pending: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct Acks {
    /// The sequence number of the queue's front.
    front: u64,
    /// Each message: what to acknowledge (`None` for QoS 0) and whether it is done.
    queue: VecDeque<(Option<Publish>, Option<bool>)>,
}

impl AckQueue {
    /// The queue, and the task that sends its acknowledgements through `client`.
    fn new(client: AsyncClient) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (due, mut sending) = mpsc::unbounded_channel::<Publish>();
        let task = tokio::spawn(async move {
            while let Some(p) = sending.recv().await {
                if let Err(e) = client.ack(&p).await {
                    tracing::debug!(error = %e, "An MQTT acknowledgement could not be queued.");
                }
            }
        });
        let queue = AckQueue {
            state: std::sync::Mutex::default(),
            due,
            pending: std::sync::atomic::AtomicUsize::new(0),
            changed: tokio::sync::Notify::new(),
        };
        (Arc::new(queue), task)
    }

    fn pending(&self) -> usize {
        self.pending.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Takes a message's place in the order; called by the one task that reads the events,
    /// so places follow arrival.
    fn push(&self, p: &Publish) -> u64 {
        self.pending.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // The payload is not needed to acknowledge: only the packet id and QoS.
        let keep = (p.qos != QoS::AtMostOnce).then(|| Publish { payload: Default::default(), ..p.clone() });
        state.queue.push_back((keep, None));
        state.front + state.queue.len() as u64 - 1
    }

    /// Marks a message handled (`ack`: acknowledge it) and sends every acknowledgement that
    /// is now due, in order.
    fn done(&self, seq: u64, ack: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let i = (seq - state.front) as usize;
        if let Some(slot) = state.queue.get_mut(i) {
            slot.1 = Some(ack);
        }
        while state.queue.front().is_some_and(|s| s.1.is_some()) {
            let Some((publish, ack)) = state.queue.pop_front() else { break };
            state.front += 1;
            if let (Some(p), Some(true)) = (publish, ack) {
                // Sent under the lock: the order of the channel is the order of the queue.
                let _ = self.due.send(p);
            }
            self.pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
        drop(state);
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_are_checked_as_mqtt_has_them() {
        for ok in ["a/b", "sensors/+/temperature", "#", "a/#", "+", "+/+/x"] {
            assert_eq!(check_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a/#/b", "a/b#", "a/+b", "x+/y"] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_subscription_takes_the_highest_qos_its_rules_ask() {
        let rule = |sub: &str, qos| Rule {
            name: sub.into(),
            broker: "b".into(),
            sql: Arc::new(iot_sql::parse_rule("SELECT * FROM 'a'", SqlVersion::default()).unwrap()),
            subscription: sub.into(),
            filter: sub.into(),
            workflow: "w".into(),
            workflow_arn: "arn".into(),
            qos,
            execution_name: None,
            error_topic: None,
            config: TriggerConfig {
                name: None,
                broker: "b".into(),
                sql: String::new(),
                sql_version: None,
                workflow: "w".into(),
                qos: 0,
                execution_name: None,
                error_topic: None,
                shared_group: None,
            },
        };
        let want = subscriptions(&[
            rule("a", QoS::AtMostOnce),
            rule("a", QoS::AtLeastOnce),
            rule("b", QoS::AtMostOnce),
        ]);
        assert_eq!(want, BTreeMap::from([("a".into(), QoS::AtLeastOnce), ("b".into(), QoS::AtMostOnce)]));
    }
}

//! MQTT publish from a Task: `arn:aws:states:::aws-sdk:iotdata:publish` (`Topic`, `Qos`,
//! `Payload`, `Retain`, the parameters of IoT Data's Publish) sends the message through a
//! broker of `[brokers]` (`[iotdata] broker`, or the only one). A QoS 1 Task succeeds when the
//! broker acknowledges the message; a QoS 0 one when it is written to the connection.
//!
//! Each broker gets a connection of its own for Tasks, opened at the first publish, under
//! the triggers' client id with `-tasks` added: rumqttc reports an acknowledgement only by
//! packet id, and on a connection where nothing else publishes, the ids of this module's
//! publishes can be told apart (the triggers' connection publishes error reports, and
//! retransmits after a reconnect, in its own time).

use super::{Answer, Call, Connector};
use crate::error::Failure;
use crate::triggers::mqtt::Broker;
use futures::future::BoxFuture;
use futures::FutureExt;
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

pub const RESOURCE: &str = "arn:aws:states:::aws-sdk:iotdata:publish";

/// QoS 1 messages of one connection awaiting their acknowledgement at once: below rumqttc's
/// in-flight window, so a packet id is never taken twice.
const IN_FLIGHT: u16 = 100;

/// `[iotdata]`: which broker publishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IotDataConfig {
    /// A broker of `[brokers]`. Default: the only one, when there is one.
    pub broker: Option<String>,
}

pub struct Publisher {
    brokers: BTreeMap<String, Broker>,
    broker: Option<String>,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
}

/// The brokers as the config makes them (those whose settings are sound).
pub fn build(config: &crate::config::Config) -> Publisher {
    let mut problems = Vec::new();
    let brokers =
        crate::triggers::mqtt::brokers_of(&config.brokers, config.limits.payload_bytes, &mut problems);
    let broker = config.iotdata.broker.clone().or_else(|| {
        let mut names = config.brokers.keys();
        match (names.next(), names.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    });
    Publisher { brokers, broker, connections: Mutex::default() }
}

impl Connector for Publisher {
    fn handles(&self, resource: &str) -> bool {
        resource == RESOURCE
    }

    fn describe(&self) -> String {
        match &self.broker {
            Some(b) => format!("{RESOURCE} (MQTT messages through [brokers.{b}])"),
            None => format!("{RESOURCE} (MQTT messages, once [iotdata] broker names one of [brokers])"),
        }
    }

    fn check(&self, _: &str, _: Option<&Value>) -> Result<(), String> {
        match &self.broker {
            Some(b) if self.brokers.contains_key(b) => Ok(()),
            Some(b) => Err(format!("[iotdata] broker names '{b}', which is not a sound [brokers.{b}]")),
            None => Err("an MQTT publish Task needs a broker: configure one [brokers.NAME], or name one in [iotdata] broker".into()),
        }
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>> {
        let connection = self.connection();
        async move {
            let message = message(&call.params)?;
            connection?.publish(message).await?;
            Ok(Answer::Result(json!({})))
        }
        .boxed()
    }
}

impl Publisher {
    /// The connection of the publishing broker, opened at its first use.
    fn connection(&self) -> Result<Arc<Connection>, Failure> {
        let name = self.broker.as_deref().unwrap_or_default();
        let Some(broker) = self.brokers.get(name) else {
            return Err(Failure::runtime(format!(
                "No MQTT broker publishes for this Task: {}.",
                self.check(RESOURCE, None).err().unwrap_or_default()
            )));
        };
        let mut open = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        Ok(open.entry(name.to_string()).or_insert_with(|| Connection::open(broker)).clone())
    }
}

/// One message, from the Task's parameters.
struct Message {
    topic: String,
    qos: QoS,
    retain: bool,
    payload: Vec<u8>,
}

fn message(p: &Value) -> Result<Message, Failure> {
    let invalid = |m: &str| Failure::new("IoTDataPlane.InvalidRequestException", m.to_string());
    let topic = match p.get("Topic") {
        Some(Value::String(t)) if !t.is_empty() && !t.contains(['+', '#']) => t.clone(),
        _ => return Err(invalid("Topic is required: a topic name, without wildcards")),
    };
    let qos = match p.get("Qos").and_then(Value::as_u64) {
        None if p.get("Qos").is_none_or(Value::is_null) => QoS::AtMostOnce,
        Some(0) => QoS::AtMostOnce,
        Some(1) => QoS::AtLeastOnce,
        _ => return Err(invalid("Qos must be 0 or 1")),
    };
    let retain = p.get("Retain").and_then(Value::as_bool).unwrap_or(false);
    // A string is sent as its text; anything else as its JSON.
    let payload = match p.get("Payload") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(v) => serde_json::to_vec(v).unwrap_or_default(),
    };
    Ok(Message { topic, qos, retain, payload })
}

/// A connection for Tasks: the publishes waiting to be sent (in the order they were handed to
/// rumqttc) and those sent at QoS 1 waiting for their acknowledgement, by packet id.
struct Connection {
    client: AsyncClient,
    state: Mutex<Waiting>,
    /// Serializes handing publishes to rumqttc with queuing their waiters.
    handing: tokio::sync::Mutex<()>,
    window: Semaphore,
}

#[derive(Default)]
struct Waiting {
    unsent: VecDeque<(QoS, oneshot::Sender<()>)>,
    unacked: HashMap<u16, oneshot::Sender<()>>,
}

impl Connection {
    fn open(broker: &Broker) -> Arc<Connection> {
        let mut options = broker.options();
        options.set_client_id(format!("{}-tasks", broker.client_id));
        options.set_clean_session(true).set_manual_acks(false).set_inflight(IN_FLIGHT + 1);
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let c = Arc::new(Connection {
            client,
            state: Mutex::default(),
            handing: tokio::sync::Mutex::new(()),
            window: Semaphore::new(IN_FLIGHT as usize),
        });
        let weak = Arc::downgrade(&c);
        let name = broker.name.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                let event = eventloop.poll().await;
                let Some(c) = weak.upgrade() else { return };
                match event {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => c.sent(pkid),
                    Ok(Event::Incoming(Packet::PubAck(ack))) => c.acked(ack.pkid),
                    Ok(Event::Incoming(Packet::ConnAck(_))) => backoff = Duration::from_millis(500),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(broker = %name, error = %e, "The MQTT connection of publish Tasks is down; it reconnects, and their messages wait.");
                        drop(c);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
        c
    }

    /// A publish went out: rumqttc sends them in the order they were handed over. One whose
    /// id still waits for its acknowledgement is a retransmission.
    fn sent(&self, pkid: u16) {
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if pkid != 0 && w.unacked.contains_key(&pkid) {
            return;
        }
        let Some((qos, done)) = w.unsent.pop_front() else { return };
        match qos {
            QoS::AtMostOnce => {
                let _ = done.send(());
            }
            _ => {
                w.unacked.insert(pkid, done);
            }
        }
    }

    fn acked(&self, pkid: u16) {
        if let Some(done) = self.state.lock().unwrap_or_else(|e| e.into_inner()).unacked.remove(&pkid) {
            let _ = done.send(());
        }
    }

    async fn publish(&self, m: Message) -> Result<(), Failure> {
        let _slot =
            self.window.acquire().await.map_err(|_| Failure::runtime("the MQTT connection is closed"))?;
        let (tx, rx) = oneshot::channel();
        {
            let _turn = self.handing.lock().await;
            self.state.lock().unwrap_or_else(|e| e.into_inner()).unsent.push_back((m.qos, tx));
            if let Err(e) = self.client.publish(m.topic, m.qos, m.retain, m.payload).await {
                self.state.lock().unwrap_or_else(|e| e.into_inner()).unsent.pop_back();
                return Err(Failure::new(
                    "IoTDataPlane.InternalFailureException",
                    format!("The message could not be sent: {e}"),
                ));
            }
        }
        rx.await.map_err(|_| {
            Failure::new(
                "IoTDataPlane.InternalFailureException",
                "The MQTT connection closed before the broker acknowledged the message.",
            )
        })
    }
}

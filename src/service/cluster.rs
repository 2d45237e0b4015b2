//! Several daemons on one shared store (`storage.backend = "postgres"`): what a daemon does
//! besides running its own executions. It takes over the executions of daemons whose lease ran
//! out (resumed from their last committed step), answers the messages other daemons send for
//! executions it runs (SendTaskSuccess, StopExecution and the like reached them first), and
//! when its own lease was taken over while it lived (paused, cut off) it drops what it held in
//! memory, which is another daemon's now. The store's [`Cluster`] side does the claiming and
//! the fencing; this is the service's part.

use super::{ApiError, Service};
use crate::engine::core::Input;
use crate::engine::{Inbox, Message};
use crate::error::Failure;
use crate::store::Cluster;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How often a daemon looks for messages from the others: the delay a message for an
/// execution on another daemon adds.
const COMMAND_POLL: Duration = Duration::from_millis(25);

/// How often a daemon reads the state machines that other daemons may have updated or
/// deleted (a new one is read at its first use).
const MACHINES_POLL: Duration = Duration::from_secs(2);

/// A message for an execution, as it travels between daemons.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Remote {
    TokenDone { token: String, result: TokenResult },
    Heartbeat { token: String },
    ActivityStarted { token: String, worker: Option<String> },
    Stop { error: Option<String>, cause: Option<String> },
}

/// SendTaskSuccess's output (any JSON, null included) or SendTaskFailure's error and cause.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TokenResult {
    Output(Value),
    Failure { error: String, cause: String, given: (bool, bool) },
}

impl Remote {
    /// The messages that can come from outside an execution; the others are its own.
    fn of(input: &Input) -> Option<Remote> {
        Some(match input {
            Input::TokenDone { token, result } => Remote::TokenDone {
                token: token.clone(),
                result: match result {
                    Ok(v) => TokenResult::Output(v.clone()),
                    Err(f) => TokenResult::Failure {
                        error: f.error.clone(),
                        cause: f.cause.clone(),
                        given: f.given,
                    },
                },
            },
            Input::Heartbeat { token } => Remote::Heartbeat { token: token.clone() },
            Input::ActivityStarted { token, worker } => {
                Remote::ActivityStarted { token: token.clone(), worker: worker.clone() }
            }
            Input::Stop { error, cause } => Remote::Stop { error: error.clone(), cause: cause.clone() },
            _ => return None,
        })
    }

    fn into_input(self) -> Input {
        match self {
            Remote::TokenDone { token, result: TokenResult::Output(v) } => {
                Input::TokenDone { token, result: Ok(v) }
            }
            Remote::TokenDone { token, result: TokenResult::Failure { error, cause, given } } => {
                let mut f = Failure::new(error, cause);
                f.given = given;
                Input::TokenDone { token, result: Err(f) }
            }
            Remote::Heartbeat { token } => Input::Heartbeat { token },
            Remote::ActivityStarted { token, worker } => Input::ActivityStarted { token, worker },
            Remote::Stop { error, cause } => Input::Stop { error, cause },
        }
    }
}

/// Who runs an execution that is not in this daemon's memory.
pub(super) enum Owner {
    /// This daemon, now (the store's is this daemon's alone, or it was claimed).
    Here,
    /// Another daemon, alive: messages for it go there.
    Elsewhere(String),
    /// Nobody: it has ended.
    Ended,
}

impl Service {
    /// The store's shared side, when several daemons use it.
    pub(super) fn cluster(&self) -> Option<&dyn Cluster> {
        self.store.cluster()
    }

    /// Claims an execution for this daemon before it is run or written here.
    pub(super) fn take(&self, arn: &str) -> Result<Owner, ApiError> {
        let Some(c) = self.cluster() else { return Ok(Owner::Here) };
        Ok(match c.claim(arn).map_err(ApiError::internal)? {
            None => Owner::Here,
            Some(o) if o.is_empty() => Owner::Ended,
            Some(o) => Owner::Elsewhere(o),
        })
    }

    /// Lets go of an execution claimed here that another daemon runs: what queued for it goes
    /// there, each answer coming back to its sender.
    pub(super) fn send_away(self: &Arc<Self>, arn: &str, mut inbox: Inbox, owner: String) {
        {
            // Out of the map under its lock, so no message can queue behind the last one read.
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.remove(arn);
            inbox.close();
        }
        while let Ok(m) = inbox.try_recv() {
            self.forward(arn, &owner, m);
        }
    }

    /// Sends one message to the daemon that runs the execution.
    pub(super) fn forward(self: &Arc<Self>, arn: &str, owner: &str, m: Message) {
        let Some(c) = self.cluster() else { return };
        let Some(remote) = Remote::of(&m.input) else { return };
        let body = match serde_json::to_string(&remote) {
            Ok(b) => b,
            Err(_) => return,
        };
        let sent = c.send_command(owner, arn, body);
        let (arn, owner) = (arn.to_string(), owner.to_string());
        tokio::spawn(async move {
            match sent.await {
                Ok(Some(taken)) => {
                    if let Some(tx) = m.taken {
                        let _ = tx.send(taken);
                    }
                }
                // Unanswered: the sender reads the store to tell "ended" from "try again".
                Ok(None) => {
                    tracing::warn!(execution = %arn, daemon = %owner, "A message for an execution on another daemon was not answered in time.")
                }
                Err(e) => {
                    tracing::error!(execution = %arn, daemon = %owner, error = %e, "A message for an execution on another daemon could not be sent.")
                }
            }
        });
    }

    /// Starts what a daemon sharing its store with others runs beside its executions; nothing
    /// for a store of its own.
    pub fn start_cluster(self: &Arc<Self>) {
        let Some(c) = self.cluster() else { return };
        let lease = c.lease();
        let this = self.clone();
        tokio::spawn(async move { this.answer_commands().await });
        let this = self.clone();
        tokio::spawn(async move {
            // Three looks per lease: a dead daemon's executions move within about a lease
            // and a third.
            let period = (lease / 3).max(Duration::from_millis(200));
            loop {
                tokio::time::sleep(period).await;
                match this.take_over() {
                    Ok(0) => {}
                    Ok(n) => {
                        this.metrics.taken_over(n as u64);
                        tracing::info!(
                            executions = n,
                            "Took over executions of a daemon whose lease ran out."
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.message, "Executions of other daemons could not be taken over; trying again.")
                    }
                }
            }
        });
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MACHINES_POLL).await;
                let this = this.clone();
                let synced = tokio::task::spawn_blocking(move || this.load_stored()).await;
                if let Ok(Err(e)) = synced {
                    tracing::warn!(error = %e.message, "The state machines could not be read from the shared store.");
                }
            }
        });
        let this = self.clone();
        let mut lost = c.lost();
        tokio::spawn(async move {
            while lost.changed().await.is_ok() {
                this.metrics.lease_lost();
                this.drop_all();
                // What is still this daemon's in the store goes on under the new lease.
                if let Err(e) = this.resume_all(true) {
                    tracing::error!(error = %e.message, "The executions still this daemon's could not be resumed.");
                }
            }
        });
    }

    /// Forgets every Standard execution in memory: another daemon runs them now, and this one
    /// may not write for them (its writes are fenced anyway).
    fn drop_all(&self) {
        let lives: Vec<_> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.drain().collect()
        };
        tracing::warn!(
            executions = lives.len(),
            "Dropped the executions held in memory: their lease went to another daemon."
        );
        for (_, live) in lives {
            if let Some(task) = live.task {
                task.abort();
            }
        }
    }

    /// Hands the messages other daemons sent to the executions here, and their answers back.
    async fn answer_commands(self: Arc<Self>) {
        loop {
            tokio::time::sleep(COMMAND_POLL).await;
            let Some(c) = self.cluster() else { return };
            let commands = match c.commands().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "Messages from other daemons could not be read.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for cmd in commands {
                let input = match serde_json::from_str::<Remote>(&cmd.body) {
                    Ok(r) => r.into_input(),
                    Err(e) => {
                        tracing::warn!(error = %e, "A message from another daemon does not parse; it is refused.");
                        let _ = c.answer_command(cmd.id, false).await;
                        continue;
                    }
                };
                let stop = matches!(input, Input::Stop { .. });
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.deliver(&cmd.execution_arn, Message { input, taken: (!stop).then_some(tx) });
                let this = self.clone();
                tokio::spawn(async move {
                    let Some(c) = this.cluster() else { return };
                    // A stop is not answered by the execution: its end, in the store, is.
                    let taken = if stop {
                        Ok(Ok(true))
                    } else {
                        tokio::time::timeout(Duration::from_secs(8), rx).await
                    };
                    if let Ok(Ok(taken)) = taken {
                        if let Err(e) = c.answer_command(cmd.id, taken).await {
                            tracing::warn!(error = %e, "The answer to another daemon's message could not be stored.");
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every message survives the trip between daemons; a null output stays an output.
    #[test]
    fn messages_cross_between_daemons_unchanged() {
        let mut failure = Failure::new("E", "");
        failure.given = (true, false);
        let inputs = [
            Input::TokenDone { token: "t".into(), result: Ok(Value::Null) },
            Input::TokenDone { token: "t".into(), result: Ok(json!({"a": [1, null]})) },
            Input::TokenDone { token: "t".into(), result: Err(failure) },
            Input::Heartbeat { token: "t".into() },
            Input::ActivityStarted { token: "t".into(), worker: Some("w".into()) },
            Input::Stop { error: None, cause: Some("why".into()) },
        ];
        for input in inputs {
            let sent = Remote::of(&input).expect("a message from outside");
            let text = serde_json::to_string(&sent).unwrap();
            let got: Remote = serde_json::from_str(&text).unwrap();
            assert_eq!(got, sent, "{text}");
            assert_eq!(format!("{:?}", got.into_input()), format!("{input:?}"), "{text}");
        }
        assert!(Remote::of(&Input::Timers).is_none());
    }
}

//! Activities: a Task whose Resource is an activity ARN
//! (`arn:aws:states:REGION:ACCOUNT:activity:NAME`) puts its input on the activity's queue in
//! the store, with its token, and waits; a worker takes it with GetActivityTask (a long poll,
//! one task to one worker) and answers with SendTaskSuccess / SendTaskFailure, heartbeating
//! in between. The queue is durable: a task waits for a worker across restarts, and goes with
//! its execution's end.

use super::{Answer, Call, Connector, EventFamily};
use crate::error::Failure;
use crate::store::{ActivityTask, Store, Write};
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct Activities {
    store: Arc<dyn Store>,
    /// Woken when a task is queued for the activity (by ARN), so a long poll answers at once.
    queued: Mutex<HashMap<String, Arc<Notify>>>,
}

/// Whether `resource` is an activity ARN.
pub fn is_activity_arn(resource: &str) -> bool {
    let mut parts = resource.splitn(7, ':');
    parts.next() == Some("arn")
        && parts.next().is_some()
        && parts.next() == Some("states")
        && parts.next().is_some()
        && parts.next().is_some()
        && parts.next() == Some("activity")
        && parts.next().is_some_and(|name| !name.is_empty())
}

impl Activities {
    pub fn new(store: Arc<dyn Store>) -> Activities {
        Activities { store, queued: Mutex::default() }
    }

    fn bell(&self, activity_arn: &str) -> Arc<Notify> {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        queued.entry(activity_arn.to_string()).or_default().clone()
    }

    /// The oldest task of the activity, waiting for one to come until `within` has passed.
    pub async fn next_task(
        &self,
        activity_arn: &str,
        within: std::time::Duration,
    ) -> Result<Option<ActivityTask>, crate::store::StoreError> {
        let until = tokio::time::Instant::now() + within;
        let bell = self.bell(activity_arn);
        loop {
            // Armed before looking, so a task queued in between still wakes this poll.
            let rung = bell.notified();
            if let Some(t) = self.store.take_activity_task(activity_arn).await? {
                return Ok(Some(t));
            }
            // Where daemons share the store, a task another daemon queued rings no bell
            // here: the poll looks again every second.
            let wake = match self.store.cluster() {
                Some(_) => until.min(tokio::time::Instant::now() + std::time::Duration::from_secs(1)),
                None => until,
            };
            if tokio::time::timeout_at(wake, rung).await.is_err() && tokio::time::Instant::now() >= until {
                return Ok(None);
            }
        }
    }

    /// Forgets the bell of an activity that is gone.
    pub fn forget(&self, activity_arn: &str) {
        self.queued.lock().unwrap_or_else(|e| e.into_inner()).remove(activity_arn);
    }
}

impl Connector for Activities {
    fn handles(&self, resource: &str) -> bool {
        is_activity_arn(resource)
    }

    fn describe(&self) -> String {
        "activity ARNs (arn:aws:states:REGION:ACCOUNT:activity:NAME, created with CreateActivity)".into()
    }

    fn family(&self, _: &str) -> EventFamily {
        EventFamily::Activity
    }

    fn invoke(&self, call: Call) -> BoxFuture<'static, Result<Answer, Failure>> {
        let store = self.store.clone();
        let bell = self.bell(&call.resource);
        Box::pin(async move {
            let arn = call.resource.to_string();
            match store.get_activity(&arn) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(Failure::runtime(format!("The activity {arn} does not exist."))),
                Err(e) => return Err(Failure::runtime(format!("The activity {arn} could not be read: {e}"))),
            }
            let token = call.context.token.clone().unwrap_or_default();
            let task = Write::ActivityTask {
                execution_arn: call.context.execution_arn.to_string(),
                activity_arn: arn.clone(),
                token,
                input: call.params.to_string(),
            };
            store.commit(vec![task]).await.map_err(|e| {
                Failure::runtime(format!("The activity {arn} could not be given its task: {e}"))
            })?;
            bell.notify_waiters();
            Ok(Answer::Submitted(Value::Null))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_arns_are_recognized() {
        assert!(is_activity_arn("arn:aws:states:us-east-1:123456789012:activity:resize"));
        assert!(!is_activity_arn("arn:aws:states:us-east-1:123456789012:activity:"));
        assert!(!is_activity_arn("arn:aws:states:us-east-1:123456789012:stateMachine:resize"));
        assert!(!is_activity_arn("arn:aws:states:::lambda:invoke"));
    }
}

//! Activities as AWS serves them: CreateActivity, DescribeActivity, DeleteActivity,
//! ListActivities, and GetActivityTask, the workers' long poll (up to 60 seconds, each task to
//! exactly one worker). A task handed out is told to its execution (`ActivityStarted`, with
//! the worker's name); a task whose Task has closed meanwhile (timed out, stopped) is passed
//! over.

use super::{check_arn, check_name, invalid_token, ApiError, Service};
use crate::engine::core::Input;
use crate::engine::Message;
use crate::store::{ActivityRecord, Page};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;

/// How long GetActivityTask waits for a task, as AWS does.
pub const POLL: Duration = Duration::from_secs(60);

fn does_not_exist(arn: &str) -> ApiError {
    ApiError::new("ActivityDoesNotExist", format!("Activity Does Not Exist: '{arn}'"))
}

impl Service {
    /// CreateActivity: idempotent, as AWS's (the activity of that name as it is).
    pub async fn create_activity(&self, name: &str) -> Result<ActivityRecord, ApiError> {
        check_name(name)?;
        let e = self.engine();
        let record = ActivityRecord {
            arn: format!("arn:aws:states:{}:{}:activity:{name}", e.region(), e.account()),
            name: name.to_string(),
            created: e.clock().now(),
        };
        self.store.put_activity(record).await.map_err(ApiError::internal)
    }

    pub fn describe_activity(&self, arn: &str) -> Result<ActivityRecord, ApiError> {
        check_arn(arn, &["activity"])?;
        self.store.get_activity(arn).map_err(ApiError::internal)?.ok_or_else(|| does_not_exist(arn))
    }

    /// DeleteActivity: the tasks no worker took go with it; deleting one that does not
    /// exist succeeds, as on AWS.
    pub async fn delete_activity(&self, arn: &str) -> Result<(), ApiError> {
        check_arn(arn, &["activity"])?;
        self.store.delete_activity(arn).await.map_err(ApiError::internal)?;
        self.activities.forget(arn);
        Ok(())
    }

    /// A page of the activities, by name; `token` is the one the previous page returned.
    pub fn list_activities(
        &self,
        token: Option<&str>,
        limit: usize,
    ) -> Result<Page<ActivityRecord>, ApiError> {
        let all = self.store.list_activities().map_err(ApiError::internal)?;
        let after = match token {
            Some(t) => {
                let arn = URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(invalid_token)?;
                Some(all.iter().position(|a| a.arn == arn).ok_or_else(invalid_token)? + 1)
            }
            None => None,
        };
        let mut page: Vec<ActivityRecord> =
            all.into_iter().skip(after.unwrap_or(0)).take(limit + 1).collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|a| URL_SAFE_NO_PAD.encode(&a.arn))
        } else {
            None
        };
        Ok((page, next))
    }

    /// GetActivityTask: the next task of the activity for the worker `worker`, waiting for
    /// one up to [`POLL`] (`None`: none came, or the daemon is shutting down).
    pub async fn get_activity_task(
        self: &Arc<Self>,
        arn: &str,
        worker: Option<String>,
    ) -> Result<Option<(String, String)>, ApiError> {
        self.describe_activity(arn)?;
        let until = tokio::time::Instant::now() + POLL;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let next = tokio::select! {
                next = self.activities.next_task(arn, left) => next.map_err(ApiError::internal)?,
                _ = self.polls_end.cancelled() => None,
            };
            let Some(task) = next else { return Ok(None) };
            // Its execution records the start; a Task that closed meanwhile is passed over.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let started = Input::ActivityStarted { token: task.token.clone(), worker: worker.clone() };
            self.deliver(&task.execution_arn, Message { input: started, taken: Some(tx) });
            if rx.await == Ok(true) {
                return Ok(Some((task.token, task.input)));
            }
        }
    }

    /// Ends the workers' long polls at once (the daemon is shutting down).
    pub fn end_polls(&self) {
        self.polls_end.cancel();
    }
}

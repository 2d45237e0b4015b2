//! Callback tokens from outside: SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat
//! reach the execution whose Task waits on the token (its ARN is inside the token), in
//! memory or read back from the store if it was parked, and answer as AWS does: a token
//! that is not ours is `InvalidToken`, one whose Task has closed (answered, timed out,
//! stopped) is `TaskTimedOut`.

use super::{invalid_token, ApiError, Service};
use crate::engine::core::{token_execution, Input};
use crate::engine::Message;
use crate::error::Failure;
use crate::store::ExecutionStatus;
use serde_json::Value;
use std::sync::Arc;

/// AWS's answer to a token whose Task is no longer waiting.
pub fn task_timed_out() -> ApiError {
    ApiError::new("TaskTimedOut", "Task Timed Out: 'Provided task does not exist anymore'")
}

impl Service {
    /// SendTaskSuccess: the Task waiting on `token` succeeds with `output`.
    pub async fn send_task_success(self: &Arc<Self>, token: &str, output: Value) -> Result<(), ApiError> {
        self.send_to_task(token, Input::TokenDone { token: token.to_string(), result: Ok(output) }).await
    }

    /// SendTaskFailure: the Task waiting on `token` fails with `error` and `cause` (empty
    /// when not given, as AWS leaves them out).
    pub async fn send_task_failure(
        self: &Arc<Self>,
        token: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<(), ApiError> {
        let f = Failure::from_parts(error, cause);
        self.send_to_task(token, Input::TokenDone { token: token.to_string(), result: Err(f) }).await
    }

    /// SendTaskHeartbeat: the Task waiting on `token` is alive; its HeartbeatSeconds start
    /// again.
    pub async fn send_task_heartbeat(self: &Arc<Self>, token: &str) -> Result<(), ApiError> {
        self.send_to_task(token, Input::Heartbeat { token: token.to_string() }).await
    }

    /// Hands `input` to the execution the token names and waits until it says whether one
    /// of its Tasks waited on the token.
    pub(super) async fn send_to_task(self: &Arc<Self>, token: &str, input: Input) -> Result<(), ApiError> {
        let Some(arn) = token_execution(token) else { return Err(invalid_token()) };
        match self.store.get_execution(&arn).map_err(ApiError::internal)? {
            None => return Err(invalid_token()),
            Some(e) if e.status != ExecutionStatus::Running => return Err(task_timed_out()),
            Some(_) => {}
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.deliver(&arn, Message { input, taken: Some(tx) });
        match rx.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(task_timed_out()),
            // Unanswered: it ended meanwhile, or could not be read back from the store.
            Err(_) => match self.store.get_execution(&arn).map_err(ApiError::internal)? {
                Some(e) if e.status == ExecutionStatus::Running => Err(ApiError::internal(
                    "the execution could not take the token now (see the daemon's log); send it again",
                )),
                _ => Err(task_timed_out()),
            },
        }
    }
}

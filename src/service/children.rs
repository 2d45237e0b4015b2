//! Child executions of `states:startExecution`: the nested connector starts them through the
//! [`Starter`](super::Starter) like any start, and a `.sync` child's end is reported to the
//! Task that waits for it through the token its link holds. The link is stored with the child
//! and cleared once the parent has heard, so an end that a stopped daemon had not reported
//! yet is reported at the next start. A stopped parent stops the children it waits for.

use super::{ApiError, Service, StartRequest};
use crate::connectors::states::{child_outcome, ChildStart, ChildStarted, Executions, Refused};
use crate::engine::core::Input;
use crate::store::{ExecutionRecord, ExecutionStatus, Write};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::sync::{Arc, Weak};

/// The service as the nested connector sees it (weakly: the connector lives in the engine
/// that the service owns).
struct ChildStarter(Weak<Service>);

impl Executions for ChildStarter {
    fn start_child(&self, req: ChildStart) -> BoxFuture<'static, Result<ChildStarted, Refused>> {
        let service = self.0.upgrade();
        async move {
            let Some(service) = service else {
                return Err(("ServiceUnavailable", "the daemon is shutting down".to_string()));
            };
            service.start_child(req).await.map_err(|e| (e.kind, e.message))
        }
        .boxed()
    }
}

impl Service {
    /// The handle the nested connector starts children through.
    pub fn children(self: &Arc<Self>) -> Arc<dyn Executions> {
        Arc::new(ChildStarter(Arc::downgrade(self)))
    }

    async fn start_child(self: &Arc<Self>, req: ChildStart) -> Result<ChildStarted, ApiError> {
        let parent = req.parent.clone();
        let started = self
            .starter()
            .start(StartRequest {
                state_machine_arn: req.state_machine_arn,
                name: req.name,
                input: req.input,
                parent: req.parent,
            })
            .await?;
        let mut child = ChildStarted {
            execution_arn: started.execution_arn.clone(),
            start_date: started.start_date,
            ended: None,
        };
        if started.existing.is_some() {
            // The same child again: the parent's Task ran again (after a restart) and waits
            // with a new token, or the child has ended and its end is the answer.
            let (record, express) = self.find_execution(&started.execution_arn)?;
            if record.status != ExecutionStatus::Running {
                child.ended = Some(record);
            } else if !express && parent.is_some() && record.parent != parent {
                let link = Write::Link { execution_arn: record.arn.clone(), parent };
                self.store.commit(vec![link]).await.map_err(ApiError::internal)?;
            }
        }
        Ok(child)
    }

    /// What follows an execution's end for its family: a child's end goes to the Task that
    /// waits for it, and a stopped parent's children are stopped.
    pub(super) fn ended_in_family(self: &Arc<Self>, record: &ExecutionRecord) {
        if record.parent.is_some() {
            let this = self.clone();
            let child = record.clone();
            tokio::spawn(async move { this.report_to_parent(child).await });
        }
        if record.status == ExecutionStatus::Aborted {
            let this = self.clone();
            let arn = record.arn.clone();
            tokio::spawn(async move { this.stop_children(&arn).await });
        }
    }

    /// Reports an ended child to its parent's Task, then clears its link. A parent that no
    /// longer waits (it ended, or its Task timed out) is told nothing; a store that cannot
    /// take the answer now leaves the link, for the next start.
    async fn report_to_parent(self: Arc<Self>, child: ExecutionRecord) {
        let Some(link) = &child.parent else { return };
        let result = child_outcome(&child, link.json);
        let sent =
            self.send_to_task(&link.token, Input::TokenDone { token: link.token.clone(), result }).await;
        match sent {
            Err(e) if e.kind == "InternalServerError" => {
                tracing::error!(execution = %child.arn, parent = %link.execution_arn, error = %e.message, "A child's end could not reach its parent; it is reported at the next start.");
                return;
            }
            _ => {}
        }
        let unlink = Write::Link { execution_arn: child.arn.clone(), parent: None };
        // An Express child (its ARN says `express`) lives in memory only.
        let express = child.arn.split(':').nth(5) == Some("express");
        let store = if express { &self.express } else { &self.store };
        if let Err(e) = store.commit(vec![unlink]).await {
            tracing::warn!(execution = %child.arn, error = %e, "A child's end reached its parent, but its link could not be cleared; it is reported again at the next start.");
        }
    }

    /// Reports the ends of children that a stopped daemon had not reported yet.
    pub fn report_unreported(self: &Arc<Self>) -> Result<usize, ApiError> {
        let ended = self.store.unreported().map_err(ApiError::internal)?;
        let n = ended.len();
        for child in ended {
            let this = self.clone();
            tokio::spawn(async move { this.report_to_parent(child).await });
        }
        Ok(n)
    }

    /// Stops the children a stopped execution was waiting for, as AWS stops a stopped
    /// parent's `.sync` children.
    async fn stop_children(self: Arc<Self>, parent_arn: &str) {
        let children = match self.store.children(parent_arn) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(execution = %parent_arn, error = %e, "The children of a stopped execution could not be read; they go on.");
                return;
            }
        };
        for child in children {
            if let Err(e) = self.stop_execution(&child.arn, None, None).await {
                tracing::warn!(execution = %child.arn, parent = %parent_arn, error = %e.message, "A stopped execution's child could not be stopped.");
            }
        }
    }
}

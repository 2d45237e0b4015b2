//! Workflow failures as data: the `Error` and `Cause` pair that Retry and Catch match on,
//! produced anywhere in the interpreter, engine or connectors (see DESIGN.md, "Failures in a
//! workflow are data, not Rust errors").

use std::fmt;

/// A failure inside a workflow, named as AWS names it (`States.TaskFailed`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub cause: String,
    /// Whether the error and the cause were given at all: SendTaskFailure may leave either out,
    /// and a Catch's error output then holds null for it, where an empty one is "".
    pub given: (bool, bool),
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Failure { error: error.into(), cause: cause.into(), given: (true, true) }
    }

    /// A failure whose error or cause may not have been given.
    pub fn from_parts(error: Option<String>, cause: Option<String>) -> Self {
        let given = (error.is_some(), cause.is_some());
        Failure { given, ..Failure::new(error.unwrap_or_default(), cause.unwrap_or_default()) }
    }

    pub fn runtime(cause: impl Into<String>) -> Self {
        Failure::new(names::RUNTIME, cause)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

/// The reserved `States.*` error names.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const RUNTIME: &str = "States.Runtime";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const PERMISSIONS: &str = "States.Permissions";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";
}

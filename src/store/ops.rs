//! The writes of a commit as the durable stores' writers take them (SQLite's writer thread,
//! PostgreSQL's writer task): serialized and checked on the caller's thread before they are
//! queued, so that a writer spends its time in its database and a write it cannot store is
//! refused at once.

use super::{Frame, StoreError, Write};
use chrono::{DateTime, Utc};

/// A write prepared on the caller's thread (JSON already serialized, times as integers), so
/// that a store's writer spends its time in the database only.
pub(crate) enum Op {
    Event {
        arn: String,
        id: i64,
        json: String,
    },
    Frame {
        arn: String,
        path: String,
        json: String,
    },
    DeleteFrames {
        arn: String,
        prefix: String,
    },
    Finish {
        arn: String,
        status: &'static str,
        output: Option<String>,
        error: Option<String>,
        cause: Option<String>,
        stop: i64,
    },
    Redrive {
        arn: String,
    },
    Definition {
        arn: String,
        hash: String,
        text: std::sync::Arc<str>,
    },
    Park {
        arn: String,
        due: Option<i64>,
    },
    Unpark {
        arn: String,
    },
    Link {
        arn: String,
        parent: Option<String>,
        parent_execution: Option<String>,
    },
    ActivityTask {
        arn: String,
        activity_arn: String,
        token: String,
        input: String,
    },
}

impl Op {
    /// The execution the write is for (the shared store's writer looks them up in bulk).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn arn(&self) -> &str {
        match self {
            Op::Event { arn, .. }
            | Op::Frame { arn, .. }
            | Op::DeleteFrames { arn, .. }
            | Op::Finish { arn, .. }
            | Op::Redrive { arn }
            | Op::Definition { arn, .. }
            | Op::Park { arn, .. }
            | Op::Unpark { arn }
            | Op::Link { arn, .. }
            | Op::ActivityTask { arn, .. } => arn,
        }
    }
}

pub(crate) fn nanos(t: DateTime<Utc>) -> Result<i64, StoreError> {
    t.timestamp_nanos_opt().ok_or_else(|| {
        StoreError::Backend(format!("time {t} is outside what the store can hold (1677-2262)"))
    })
}

pub(crate) fn from_nanos(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(n)
}

pub(crate) fn event_id(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::Backend(format!("event id {id} is too large")))
}

pub(crate) fn to_ops(writes: Vec<Write>) -> Result<Vec<Op>, StoreError> {
    writes
        .into_iter()
        .map(|w| {
            Ok(match w {
                Write::Event { execution_arn, event } => Op::Event {
                    arn: execution_arn,
                    id: event_id(event.id)?,
                    json: serde_json::to_string(&event).map_err(|e| StoreError::Backend(e.to_string()))?,
                },
                Write::Frame(Frame { execution_arn, path, data }) => {
                    Op::Frame { arn: execution_arn, path, json: data.to_string() }
                }
                Write::DeleteFrames { execution_arn, prefix } => {
                    Op::DeleteFrames { arn: execution_arn, prefix }
                }
                Write::Finish { execution_arn, status, output, error, cause, stop } => Op::Finish {
                    arn: execution_arn,
                    status: status.as_str(),
                    output,
                    error,
                    cause,
                    stop: nanos(stop)?,
                },
                Write::Redrive { execution_arn } => Op::Redrive { arn: execution_arn },
                Write::Definition { execution_arn, hash, text } => {
                    Op::Definition { arn: execution_arn, hash, text }
                }
                Write::Park { execution_arn, until } => {
                    Op::Park { arn: execution_arn, due: until.map(nanos).transpose()? }
                }
                Write::Unpark { execution_arn } => Op::Unpark { arn: execution_arn },
                Write::Link { execution_arn, parent } => Op::Link {
                    arn: execution_arn,
                    parent_execution: parent.as_ref().map(|p| p.execution_arn.clone()),
                    parent: parent.map(|p| serde_json::to_string(&p).unwrap_or_default()),
                },
                Write::ActivityTask { execution_arn, activity_arn, token, input } => {
                    Op::ActivityTask { arn: execution_arn, activity_arn, token, input }
                }
            })
        })
        .collect()
}

/// Where a page of executions starts (after the (start, ARN) its token names) and how many
/// rows to fetch: one more than `limit`, which only says that another page exists.
pub(crate) fn page_bounds(
    token: Option<&str>,
    limit: usize,
) -> Result<(Option<(i64, String)>, i64), StoreError> {
    let after = match token.map(super::memory::decode_token).transpose()? {
        Some((start, arn)) => Some((nanos(start)?, arn)),
        None => None,
    };
    Ok((after, i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1))
}

/// A history read's bounds as SQL integers: ids start at 1, so "before 0" would always be
/// empty, and in reverse 0 means "from the end".
pub(crate) fn history_bounds(after: u64, limit: usize, reverse: bool) -> (i64, i64) {
    let after = match (reverse, after) {
        (true, 0) => i64::MAX,
        _ => i64::try_from(after).unwrap_or(i64::MAX),
    };
    (after, i64::try_from(limit).unwrap_or(i64::MAX))
}

/// A new execution's writes, with its times checked to fit the stores' integer nanoseconds.
pub(crate) fn create_ops(e: &super::ExecutionRecord, writes: Vec<Write>) -> Result<Vec<Op>, StoreError> {
    nanos(e.start)?;
    e.stop.map(nanos).transpose()?;
    to_ops(writes)
}

//! Prometheus counters of the daemon, served at `/metrics`: executions started and
//! finished (by status), state transitions, the total time executions took, how many
//! executions are parked (waiting in the store only, on a timer or a callback token), and
//! the Task calls of each connector (calls by outcome, and how long they took).

use crate::engine::Status;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What `/metrics` reads from elsewhere at each scrape.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Executions the store holds parked (`None`: it could not say).
    pub parked: Option<u64>,
    pub tasks_running: u64,
    pub tasks_waiting: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    started: AtomicU64,
    finished: [AtomicU64; 4],
    transitions: AtomicU64,
    duration_ms: AtomicU64,
    stalled: AtomicU64,
    leases_lost: AtomicU64,
    taken_over: AtomicU64,
}

const STATUSES: [Status; 4] = [Status::Succeeded, Status::Failed, Status::TimedOut, Status::Aborted];

impl Metrics {
    pub fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self, status: Status, transitions: u64, duration_ms: u64) {
        let i = STATUSES.iter().position(|s| *s == status).unwrap_or(1);
        self.finished[i].fetch_add(1, Ordering::Relaxed);
        self.transitions.fetch_add(transitions, Ordering::Relaxed);
        self.duration_ms.fetch_add(duration_ms, Ordering::Relaxed);
    }

    /// Transitions of an execution that has not finished (it parked).
    pub fn transitions(&self, n: u64) {
        self.transitions.fetch_add(n, Ordering::Relaxed);
    }

    /// An execution stopped on a commit the store refused.
    pub fn stalled(&self) {
        self.stalled.fetch_add(1, Ordering::Relaxed);
    }

    /// This daemon's lease went to another daemon while it lived (a shared store).
    pub fn lease_lost(&self) {
        self.leases_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Executions of other daemons taken over by this one.
    pub fn taken_over(&self, n: u64) {
        self.taken_over.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format, with the gauges read now.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP stepgate_executions_started_total Executions started.");
        let _ = writeln!(out, "# TYPE stepgate_executions_started_total counter");
        let _ = writeln!(out, "stepgate_executions_started_total {}", get(&self.started));
        let _ = writeln!(out, "# HELP stepgate_executions_finished_total Executions finished, by status.");
        let _ = writeln!(out, "# TYPE stepgate_executions_finished_total counter");
        for (s, n) in STATUSES.iter().zip(&self.finished) {
            let _ =
                writeln!(out, "stepgate_executions_finished_total{{status=\"{}\"}} {}", s.as_str(), get(n));
        }
        let _ = writeln!(out, "# HELP stepgate_state_transitions_total States entered.");
        let _ = writeln!(out, "# TYPE stepgate_state_transitions_total counter");
        let _ = writeln!(out, "stepgate_state_transitions_total {}", get(&self.transitions));
        let _ =
            writeln!(out, "# HELP stepgate_execution_duration_seconds_total Time finished executions took.");
        let _ = writeln!(out, "# TYPE stepgate_execution_duration_seconds_total counter");
        let _ = writeln!(
            out,
            "stepgate_execution_duration_seconds_total {:.3}",
            get(&self.duration_ms) as f64 / 1000.0
        );
        let _ = writeln!(out, "# HELP stepgate_tasks_running Task calls in flight (limits.running_tasks).");
        let _ = writeln!(out, "# TYPE stepgate_tasks_running gauge");
        let _ = writeln!(out, "stepgate_tasks_running {}", gauges.tasks_running);
        let _ = writeln!(
            out,
            "# HELP stepgate_tasks_waiting Task calls waiting for a turn under limits.running_tasks."
        );
        let _ = writeln!(out, "# TYPE stepgate_tasks_waiting gauge");
        let _ = writeln!(out, "stepgate_tasks_waiting {}", gauges.tasks_waiting);
        if let Some(n) = gauges.parked {
            let _ = writeln!(
                out,
                "# HELP stepgate_executions_parked Standard executions waiting in the store only, on a timer or a callback token."
            );
            let _ = writeln!(out, "# TYPE stepgate_executions_parked gauge");
            let _ = writeln!(out, "stepgate_executions_parked {n}");
        }
        let _ = writeln!(
            out,
            "# HELP stepgate_commit_failures_total Commits the store refused; each stopped its execution until the store works again."
        );
        let _ = writeln!(out, "# TYPE stepgate_commit_failures_total counter");
        let _ = writeln!(out, "stepgate_commit_failures_total {}", self.stalled.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP stepgate_leases_lost_total Times another daemon sharing the store took this one's lease (it was paused or cut off)."
        );
        let _ = writeln!(out, "# TYPE stepgate_leases_lost_total counter");
        let _ = writeln!(out, "stepgate_leases_lost_total {}", get(&self.leases_lost));
        let _ = writeln!(
            out,
            "# HELP stepgate_executions_taken_over_total Executions of daemons whose lease ran out, resumed here."
        );
        let _ = writeln!(out, "# TYPE stepgate_executions_taken_over_total counter");
        let _ = writeln!(out, "stepgate_executions_taken_over_total {}", get(&self.taken_over));
        out
    }
}

/// How a Task call came out, as its connector answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// A result.
    Ok,
    /// Handed over: the Task waits for its token.
    Submitted,
    /// A failure (the service's, or the call's).
    Error,
    /// Given up before it answered (the Task timed out, the execution stopped).
    Cancelled,
}

/// The bounds of the call duration histogram, in seconds.
const CALL_BUCKETS: [f64; 8] = [0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0];

#[derive(Debug, Default, Clone)]
struct CallCounts {
    /// By outcome: ok, submitted, error, cancelled.
    outcomes: [u64; 4],
    /// Calls at or under each bound of `CALL_BUCKETS`.
    buckets: [u64; 8],
    seconds: f64,
}

/// Task calls by connector (the resource's type, as Task events name it: `lambda`, `http`,
/// `sqs`, `states`, ...).
#[derive(Debug, Default)]
pub struct CallStats {
    by_connector: Mutex<BTreeMap<String, CallCounts>>,
}

impl CallStats {
    pub fn record(&self, connector: &str, took: Duration, outcome: CallOutcome) {
        let mut all = self.by_connector.lock().unwrap_or_else(|e| e.into_inner());
        let c = match all.get_mut(connector) {
            Some(c) => c,
            None => all.entry(connector.to_string()).or_default(),
        };
        c.outcomes[outcome as usize] += 1;
        let secs = took.as_secs_f64();
        c.seconds += secs;
        for (b, bound) in c.buckets.iter_mut().zip(CALL_BUCKETS) {
            if secs <= bound {
                *b += 1;
            }
        }
    }

    /// The Prometheus text of the calls so far.
    pub fn render(&self) -> String {
        let all = self.by_connector.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = String::new();
        let _ =
            writeln!(out, "# HELP stepgate_task_calls_total Task calls answered, by connector and outcome.");
        let _ = writeln!(out, "# TYPE stepgate_task_calls_total counter");
        for (name, c) in &all {
            for (outcome, n) in ["ok", "submitted", "error", "cancelled"].iter().zip(c.outcomes) {
                let _ = writeln!(
                    out,
                    "stepgate_task_calls_total{{connector=\"{name}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP stepgate_task_call_duration_seconds How long Task calls took to answer, by connector."
        );
        let _ = writeln!(out, "# TYPE stepgate_task_call_duration_seconds histogram");
        for (name, c) in &all {
            for (bound, n) in CALL_BUCKETS.iter().zip(c.buckets) {
                let _ = writeln!(
                    out,
                    "stepgate_task_call_duration_seconds_bucket{{connector=\"{name}\",le=\"{bound}\"}} {n}"
                );
            }
            let count: u64 = c.outcomes.iter().sum();
            let _ = writeln!(
                out,
                "stepgate_task_call_duration_seconds_bucket{{connector=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "stepgate_task_call_duration_seconds_sum{{connector=\"{name}\"}} {:.6}",
                c.seconds
            );
            let _ =
                writeln!(out, "stepgate_task_call_duration_seconds_count{{connector=\"{name}\"}} {count}");
        }
        out
    }
}

/// Records a Task call when it ends: with its outcome once it answers, as cancelled if it is
/// dropped first.
pub struct CallTimer {
    stats: std::sync::Arc<CallStats>,
    connector: std::borrow::Cow<'static, str>,
    began: std::time::Instant,
    done: bool,
}

impl CallTimer {
    pub fn start(stats: std::sync::Arc<CallStats>, connector: std::borrow::Cow<'static, str>) -> CallTimer {
        CallTimer { stats, connector, began: std::time::Instant::now(), done: false }
    }

    pub fn answered(mut self, outcome: CallOutcome) {
        self.done = true;
        self.stats.record(&self.connector, self.began.elapsed(), outcome);
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        if !self.done {
            self.stats.record(&self.connector, self.began.elapsed(), CallOutcome::Cancelled);
        }
    }
}

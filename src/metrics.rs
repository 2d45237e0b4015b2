//! Prometheus counters of the daemon, served at `/metrics`: executions started and
//! finished (by status), state transitions, the total time executions took, and how many
//! executions are parked (waiting in the store only, on a timer or a callback token).

use crate::engine::Status;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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
        out
    }
}

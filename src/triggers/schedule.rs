//! Schedules, as EventBridge Scheduler runs them: `[[triggers.schedule]]` starts a workflow
//! at every tick of a `cron(...)`, `rate(...)` or `at(...)` expression in a time zone
//! ([`schedule_expr`](super::schedule_expr) computes the ticks). Each tick fires exactly
//! once, also across a restart: the execution is named after the schedule and the tick (a
//! second start of it is the same execution), and the last tick fired is stored, so a
//! restarted daemon goes on after it. Ticks missed while the daemon was down are skipped,
//! or with `missed = "last"` the latest of them runs, as a flexible window would.

use super::schedule_expr::{self, Placeholders};
use super::{Counters, Refs, Stats};
use crate::config::Problem;
use crate::service::{StartRequest, Starter};
use crate::store::Store;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `[[triggers.schedule]]`: one schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Names the schedule (its ARN, its executions, its stored last tick). Default:
    /// `WORKFLOW-N`.
    #[serde(default)]
    pub name: Option<String>,
    pub expression: String,
    /// An IANA time zone for cron and at. Default: UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    pub workflow: String,
    /// The execution input, with EventBridge Scheduler's `<aws.scheduler.*>` placeholders.
    /// Default: {}.
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub missed: Missed,
}

/// What happens to ticks that passed while the daemon was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missed {
    /// None of them runs.
    #[default]
    Skip,
    /// The latest of them runs, once, at start.
    Last,
}

/// A schedule, checked.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// `arn:aws:scheduler:REGION:ACCOUNT:schedule/default/NAME`, as EventBridge names it.
    pub arn: String,
    expression: schedule_expr::Schedule,
    pub workflow_arn: String,
    input: Value,
    missed: Missed,
    config: ScheduleConfig,
}

/// EventBridge Scheduler's names: 1 to 64 of `0-9 a-z A-Z - _ .`; one character fewer here,
/// so that NAME-TICK stays within AWS's 80 for execution names.
const MAX_NAME: usize = 63;

pub fn compile(configs: &[ScheduleConfig], refs: &Refs, problems: &mut Vec<Problem>) -> Vec<Schedule> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, c) in configs.iter().enumerate() {
        let key = |field: &str| format!("triggers.schedule[{i}].{field}");
        let before = problems.len();
        let name = c.name.clone().unwrap_or_else(|| {
            let w: String =
                c.workflow.chars().filter(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(*ch)).collect();
            let suffix = format!("-{i}");
            format!("{}{suffix}", &w[..w.len().min(MAX_NAME - suffix.len())])
        });
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            problems.push(Problem::new(
                key("name"),
                format!("'{name}' must be 1 to {MAX_NAME} of the characters 0-9 a-z A-Z - _ ."),
            ));
        } else if !names.insert(name.clone()) {
            problems.push(Problem::new(key("name"), format!("another schedule is named '{name}' too")));
        }
        let expression = schedule_expr::parse(&c.expression, c.timezone.as_deref())
            .map_err(|e| {
                let field = if e.message.contains("time zone") { "timezone" } else { "expression" };
                problems.push(Problem::new(key(field), e.message))
            })
            .ok();
        let workflow = refs.workflow(&key("workflow"), &c.workflow).map_err(|p| problems.push(p)).ok();
        let input = c.input.clone().unwrap_or_else(|| Value::Object(Default::default()));
        if input.to_string().len() > refs.payload_bytes {
            problems.push(Problem::new(key("input"), "is larger than limits.payload_bytes"));
        }
        let (Some(expression), Some((workflow_arn, _))) = (expression, workflow) else { continue };
        if problems.len() > before {
            continue;
        }
        out.push(Schedule {
            arn: format!("arn:aws:scheduler:{}:{}:schedule/default/{name}", refs.region, refs.account),
            name,
            expression,
            workflow_arn,
            input,
            missed: c.missed,
            config: c.clone(),
        });
    }
    out
}

/// What firing a tick needs.
#[derive(Clone)]
pub struct Context {
    pub starter: Starter,
    pub stats: Arc<Stats>,
    pub store: Arc<dyn Store>,
}

/// The running schedules, one task each.
#[derive(Default)]
pub struct Schedules {
    running: HashMap<String, Running>,
}

struct Running {
    config: ScheduleConfig,
    workflow_arn: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Schedules {
    /// Makes the running schedules those of `plan`: an unchanged one keeps running (and its
    /// timer), a changed one starts over from its stored last tick, a removed one stops.
    pub async fn apply(&mut self, plan: &[Schedule], ctx: &Context) {
        let keep: HashMap<&str, &Schedule> = plan.iter().map(|s| (s.name.as_str(), s)).collect();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| {
                keep.get(name.as_str())
                    .is_none_or(|s| s.config != r.config || s.workflow_arn != r.workflow_arn)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(r) = self.running.remove(&name) {
                r.stop().await;
            }
        }
        for s in plan {
            if self.running.contains_key(&s.name) {
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(run(s.clone(), ctx.clone(), stopped));
            self.running.insert(
                s.name.clone(),
                Running { config: s.config.clone(), workflow_arn: s.workflow_arn.clone(), stop, task },
            );
        }
    }

    /// Stops every schedule; a tick being fired finishes first.
    pub async fn shutdown(&mut self) {
        let all: Vec<Running> = self.running.drain().map(|(_, r)| r).collect();
        futures::future::join_all(all.into_iter().map(Running::stop)).await;
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// A timer never sleeps longer than this before it reads the wall clock again: an edge
/// device's clock may be set (NTP after boot) while it waits.
const SLICE: Duration = Duration::from_secs(30);

async fn run(s: Schedule, ctx: Context, mut stop: watch::Receiver<bool>) {
    let counters = ctx.stats.counters("schedule", &s.name);
    let store = ctx.store.clone();
    let name = s.name.clone();
    let last = match tokio::task::spawn_blocking(move || store.last_tick(&name)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::error!(schedule = %s.name, error = %e, "A schedule's last tick could not be read; it starts from now.");
            None
        }
        Err(_) => None,
    };
    let now = Utc::now();
    if let (Missed::Last, Some(last)) = (s.missed, last) {
        if let Some(t) = s.expression.last_between(last, now) {
            tracing::info!(schedule = %s.name, tick = %t, "Running the latest tick missed while the daemon was down (missed = \"last\").");
            fire(&s, &ctx, &counters, t).await;
        }
    }
    let mut after = last.map_or(now, |l| l.max(now));
    loop {
        let Some(next) = s.expression.next_after(after) else {
            tracing::info!(schedule = %s.name, "A schedule has no tick left.");
            let _ = stop.wait_for(|s| *s).await;
            return;
        };
        loop {
            let now = Utc::now();
            if now >= next {
                break;
            }
            let nap = (next - now).to_std().unwrap_or_default().min(SLICE);
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        // Late by more than a tick (the clock was set forward, the machine slept): the
        // ticks in between are missed; the latest one is the one due now.
        let now = Utc::now();
        let due = s.expression.last_between(after, now).unwrap_or(next);
        if due != next {
            tracing::warn!(schedule = %s.name, due = %due, first_missed = %next, "A schedule woke late; the ticks in between are skipped.");
        }
        fire(&s, &ctx, &counters, due).await;
        after = due;
        if *stop.borrow() {
            return;
        }
    }
}

/// Starts the execution of one tick (named after it) and records the tick.
async fn fire(s: &Schedule, ctx: &Context, counters: &Counters, tick: DateTime<Utc>) {
    // Daemons sharing a store each wake for the tick; the one whose claim lands fires it.
    let shared = ctx.store.cluster();
    if let Some(c) = shared {
        match c.claim_tick(&s.name, tick).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(schedule = %s.name, tick = %tick, error = %e, "A schedule's tick could not be claimed in the shared store; it is skipped.");
                return;
            }
        }
    }
    Counters::add(&counters.received);
    let execution_name = format!("{}-{}", s.name, tick.format("%Y%m%dT%H%M%SZ"));
    let input = schedule_expr::fill_placeholders(
        &s.input,
        &Placeholders {
            scheduled_time: tick,
            schedule_arn: &s.arn,
            execution_id: &execution_name,
            attempt_number: 1,
        },
    );
    let req = StartRequest {
        state_machine_arn: s.workflow_arn.clone(),
        name: Some(execution_name),
        input,
        parent: None,
    };
    match super::start_for_event(&ctx.starter, req).await {
        Ok(started) if started.existing.is_some() => Counters::add(&counters.duplicates),
        Ok(_) => Counters::add(&counters.started),
        Err(e) => {
            let internal = e.kind == "InternalServerError";
            Counters::add(if internal { &counters.errors } else { &counters.rejected });
            tracing::error!(schedule = %s.name, tick = %tick, error = e.kind, message = %e.message, "A schedule's tick did not start its workflow.");
            if internal {
                // Not recorded: after a restart the tick counts as missed, not as fired.
                return;
            }
        }
    }
    if shared.is_some() {
        return;
    }
    if let Err(e) = ctx.store.record_tick(&s.name, tick).await {
        tracing::error!(schedule = %s.name, tick = %tick, error = %e, "A schedule's tick could not be recorded; its execution's name keeps it from running twice.");
    }
}

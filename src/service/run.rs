//! Running executions: each in its own task on the engine. A Standard execution journals
//! every step to the store before the next (so a restarted daemon resumes it), parks in the
//! store when it is to sleep longer than `storage.park_after_seconds` or waits on callback
//! tokens only (one timer task wakes it; a token's SendTaskSuccess reads it back), and can
//! be stopped or redriven; an Express execution runs in memory and leaves its record and
//! history in the bounded Express ring.

use super::{event_writes, status_of, ApiError, Ended, Live, Loaded, Service};
use crate::asl::Machine;
use crate::engine::core::Input;
use crate::engine::{self, FrameWrite, Inbox, Journal, Message, Outcome, Progress, Resume, Start, Status};
use crate::store::{Event, ExecutionRecord, ExecutionStatus, Frame, Store, Write};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

impl Service {
    /// Wakes parked executions when they are due, on the engine's clock, for as long as the
    /// runtime runs. The timers are the store's (an index by time): only the soonest few are
    /// read at a time, however many executions are parked.
    pub fn start_timers(self: &Arc<Self>) {
        const BATCH: usize = 256;
        let this = self.clone();
        tokio::spawn(async move {
            // Executions woken whose timer row is still there (it goes with their first commit
            // once read back): not woken twice for the same time.
            let mut woken: HashMap<String, (DateTime<Utc>, std::time::Instant)> = HashMap::new();
            loop {
                // `notify_one` keeps a permit when nobody waits, so a park between the read
                // and the wait is not missed.
                let changed = this.timers.notified();
                let due = match this.store.due_timers(BATCH) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(error = %e, "The parked executions' timers could not be read; trying again in 5 seconds.");
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        continue;
                    }
                };
                woken.retain(|arn, (t, _)| due.iter().any(|(d, a)| a == arn && d == t));
                let now = this.engine.clock().now();
                let mut next = None;
                for (t, arn) in due {
                    if t > now {
                        next = Some(t);
                        break;
                    }
                    if woken.get(&arn).map(|w| w.0) != Some(t) {
                        woken.insert(arn.clone(), (t, std::time::Instant::now()));
                        this.wake(&arn);
                    }
                }
                // Rows of executions just woken: look again shortly, once their first commits
                // have taken the rows away. (One that stays, say of a state machine that is
                // gone, is not woken again for the same time.)
                let recent = |w: &(DateTime<Utc>, std::time::Instant)| w.1.elapsed().as_secs() < 5;
                let pending = next.is_none() && woken.values().any(recent);
                let mut until = if pending { Some(now + chrono::Duration::milliseconds(100)) } else { next };
                // Other daemons park executions too, and this daemon hears nothing of it.
                if this.cluster().is_some() {
                    let look = now + chrono::Duration::seconds(1);
                    until = Some(until.map_or(look, |u| u.min(look)));
                }
                match until {
                    None => changed.await,
                    Some(t) => {
                        tokio::select! {
                            _ = this.engine.clock().sleep_until(t) => {}
                            _ = changed => {}
                        }
                    }
                }
            }
        });
    }

    /// Leaves an execution out of memory until `until` (`None`: until a callback token or a
    /// stop comes for it), recorded in the store.
    async fn park(self: &Arc<Self>, arn: String, until: Option<DateTime<Utc>>) {
        let parked = self.store.commit(vec![Write::Park { execution_arn: arn.clone(), until }]).await;
        match parked {
            Ok(()) => {
                if until.is_some() {
                    self.timers.notify_one();
                }
            }
            // Its frames are in the store; only its timer is not. It is read back here in a
            // while (or at the next start, as a running execution).
            Err(e) => {
                tracing::error!(execution = %arn, error = %e, "An execution could not be parked; it is read back in 5 seconds.");
                self.retry_later(arn);
            }
        }
    }

    /// Reads an execution back in 5 seconds, whatever the store says of it meanwhile.
    fn retry_later(self: &Arc<Self>, arn: String) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            this.wake(&arn);
        });
    }

    /// Resumes a parked execution from the store, unless it runs already or was stopped
    /// meanwhile.
    fn wake(self: &Arc<Self>, arn: &str) {
        let Some(inbox) = self.claim(arn) else { return };
        self.read_back(arn, inbox);
    }

    /// Goes on with an execution claimed (`inbox`) from what the store holds of it; one that
    /// has ended is let go.
    fn read_back(self: &Arc<Self>, arn: &str, inbox: Inbox) {
        match self.take(arn) {
            Ok(super::cluster::Owner::Here) => {}
            Ok(super::cluster::Owner::Elsewhere(owner)) => return self.send_away(arn, inbox, owner),
            Ok(super::cluster::Owner::Ended) => return self.release_ended(arn, Some(inbox)),
            Err(e) => {
                tracing::error!(execution = %arn, error = %e.message, "An execution could not be claimed; trying again in 5 seconds.");
                self.release(arn);
                self.retry_later(arn.to_string());
                return;
            }
        }
        let record = match self.store.get_execution(arn) {
            Ok(Some(r)) if r.status == ExecutionStatus::Running => r,
            Ok(_) => return self.release(arn),
            Err(e) => {
                tracing::error!(execution = %arn, error = %e, "A parked execution could not be read; trying again in 5 seconds.");
                self.release(arn);
                self.retry_later(arn.to_string());
                return;
            }
        };
        if let Err(e) = self.resume(record, false, inbox) {
            tracing::error!(execution = %arn, error = %e.message, "A parked execution could not be resumed.");
            self.release(arn);
        }
    }

    /// Takes charge of an execution that is not in memory: its messages queue in the inbox
    /// returned until it runs. `None`: it is in memory already.
    fn claim(&self, arn: &str) -> Option<Inbox> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains_key(arn) {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        running.insert(arn.to_string(), Live { inbox: tx, task: None });
        Some(rx)
    }

    /// Lets go of an execution claimed or run here: messages still queued for it go
    /// unanswered (their senders see it has ended, or try again).
    fn release(&self, arn: &str) {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(arn);
    }

    /// Lets go of an execution whose end is stored. Messages that reached it meanwhile are
    /// answered under the lock their senders take: no Task of it waits on a token now. Later
    /// ones find it gone from memory and ended in the store.
    fn release_ended(&self, arn: &str, inbox: Option<Inbox>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(arn);
        if let Some(mut rx) = inbox {
            rx.close();
            while let Ok(m) = rx.try_recv() {
                if let Some(taken) = m.taken {
                    let _ = taken.send(false);
                }
            }
        }
    }

    /// Lets go of an execution that is to leave memory, unless a message came in for it
    /// meanwhile: then its inbox is handed back and it goes on.
    fn leave_memory(&self, arn: &str, inbox: Option<Inbox>) -> Option<Inbox> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match inbox {
            Some(rx) if !rx.is_empty() => Some(rx),
            _ => {
                running.remove(arn);
                None
            }
        }
    }

    /// Hands a message to a Standard execution: to its task when it is in memory, else it is
    /// read back from the store with the message waiting for it.
    pub(super) fn deliver(self: &Arc<Self>, arn: &str, message: Message) {
        let claimed = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            match running.get(arn) {
                // A send fails only when the task has ended and is about to leave the map:
                // the message goes unanswered, which its sender reads as "ended".
                Some(live) => {
                    let _ = live.inbox.send(message);
                    return;
                }
                None => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let _ = tx.send(message);
                    running.insert(arn.to_string(), Live { inbox: tx, task: None });
                    rx
                }
            }
        };
        self.read_back(arn, claimed);
    }

    /// Runs a Standard execution in its own task, journaled to the store. `inbox`: the
    /// execution was claimed already; without it, it is claimed here (and left alone if it
    /// runs already).
    pub(super) fn spawn_standard(
        self: &Arc<Self>,
        machine: Arc<Machine>,
        record: ExecutionRecord,
        input: Value,
        resume: Option<Resume>,
        inbox: Option<Inbox>,
    ) {
        let Some(inbox) = inbox.or_else(|| self.claim(&record.arn)) else {
            tracing::warn!(execution = %record.arn, "The execution runs already; it was not started twice.");
            return;
        };
        let this = self.clone();
        let arn = record.arn.clone();
        let journal: Arc<dyn Journal> = Arc::new(StoreJournal {
            store: self.store.clone(),
            arn: arn.clone(),
            unpark: std::sync::atomic::AtomicBool::new(resume.is_some()),
        });
        // The handle is set before the task can leave the map, so a stale one is never left.
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let task = tokio::spawn(async move {
            let start = Start {
                state_machine_name: record.state_machine_name.clone(),
                execution_name: record.name.clone(),
                start_time: Some(record.start),
                record_history: true,
                journal: Some(journal),
                resume: resume.clone(),
                inbox: Some(inbox),
                ..Start::new(String::new(), String::new(), input)
            };
            match this.engine.run_parking(&machine, start, Some(this.park_after)).await {
                Progress::Ended { outcome, inbox } => {
                    this.count_finish(&outcome, record.start);
                    let arn = record.arn.clone();
                    this.finish(record, outcome).await;
                    this.release_ended(&arn, inbox);
                }
                Progress::Parked { until, history, transitions, inbox } => {
                    this.metrics.transitions(transitions);
                    if !history.is_empty() {
                        if let Err(e) = this.store.commit(event_writes(&record.arn, history)).await {
                            tracing::error!(execution = %record.arn, error = %e, "The events of a parked execution could not be stored.");
                        }
                    }
                    // Out of `running` before the timer or a token can read it back.
                    match this.leave_memory(&record.arn, inbox) {
                        None => this.park(record.arn.clone(), until).await,
                        Some(inbox) => this.read_back(&record.arn.clone(), inbox),
                    }
                }
                Progress::Stalled { error, transitions } => {
                    this.metrics.transitions(transitions);
                    this.metrics.stalled();
                    // It stopped where the store has it; it goes on from there when the
                    // store works again (tried again in a while, as a parked execution).
                    tracing::error!(execution = %record.arn, error = %error, "A commit failed: the execution stops where the store has it and goes on once the store works again.");
                    this.release(&record.arn);
                    this.retry_later(record.arn.clone());
                }
            }
        });
        if let Some(live) = running.get_mut(&arn) {
            live.task = Some(task.abort_handle());
        }
    }

    fn count_finish(&self, o: &Outcome, start: DateTime<Utc>) {
        let ms = (self.engine.clock().now() - start).num_milliseconds().max(0) as u64;
        self.metrics.finished(o.status, o.transitions, ms);
    }

    /// `record` as `o` ended it, with the writes that store that end.
    fn ending(&self, mut record: ExecutionRecord, o: &mut Outcome) -> (Ended, Vec<Write>) {
        let mut writes = event_writes(&record.arn, std::mem::take(&mut o.history));
        record.status = status_of(o.status);
        record.output = o.output.as_ref().map(|v| v.to_string());
        record.error = o.error.clone();
        record.cause = o.cause.clone();
        record.stop = Some(self.engine.clock().now());
        writes.push(Write::Finish {
            execution_arn: record.arn.clone(),
            status: record.status,
            output: record.output.clone(),
            error: record.error.clone(),
            cause: record.cause.clone(),
            stop: record.stop.unwrap_or_default(),
        });
        (record, writes)
    }

    async fn finish(self: &Arc<Self>, record: ExecutionRecord, mut o: Outcome) {
        let frames = std::mem::take(&mut o.frames);
        let (ended, mut writes) = self.ending(record, &mut o);
        // The end's frame writes go first, in the same commit as the end.
        let frame_writes = frame_writes(&ended.arn, frames);
        writes.splice(0..0, frame_writes);
        // A failed, timed-out or aborted execution keeps its frame: RedriveExecution
        // restarts it from there.
        if o.status == Status::Succeeded {
            writes.push(Write::DeleteFrames { execution_arn: ended.arn.clone(), prefix: String::new() });
        }
        if let Err(e) = self.store.commit(writes).await {
            tracing::error!(execution = %ended.arn, error = %e, "The end of an execution could not be stored.");
        }
        self.ended(&ended);
    }

    /// Runs an Express execution to its end in this task, keeping it in the Express ring.
    pub(super) async fn run_express(
        self: &Arc<Self>,
        loaded: &Loaded,
        record: ExecutionRecord,
        input: Value,
    ) -> Ended {
        let express_id = record.arn.rsplit(':').next().and_then(|s| uuid::Uuid::parse_str(s).ok());
        if let Err(e) = self.express.create_execution(record.clone(), Vec::new()).await {
            tracing::warn!(execution = %record.arn, error = %e, "An Express execution could not be recorded.");
        }
        let start = Start {
            state_machine_name: record.state_machine_name.clone(),
            execution_name: record.name.clone(),
            express: true,
            express_id,
            record_history: loaded.history,
            start_time: Some(record.start),
            ..Start::new(String::new(), String::new(), input)
        };
        self.metrics.started();
        let mut o = self.engine.run(&loaded.machine, start).await;
        self.count_finish(&o, record.start);
        let (ended, writes) = self.ending(record, &mut o);
        let _ = self.express.commit(writes).await;
        self.ended_in_family(&ended);
        ended
    }

    /// StopExecution: aborts a running Standard execution, with the error and cause given.
    pub async fn stop_execution(
        self: &Arc<Self>,
        arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<DateTime<Utc>, ApiError> {
        let (e, express) = self.find_execution(arn)?;
        if express {
            return Err(ApiError::new(
                "ValidationException",
                "Express executions cannot be stopped through this API",
            ));
        }
        if e.status != ExecutionStatus::Running {
            return Err(ApiError::new("ValidationException", format!("Execution is not running: '{arn}'")));
        }
        // In memory, the execution stops itself: what it has in flight is cancelled and its
        // end committed, which the answer waits for.
        let ended = self.watch(arn);
        let claimed = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            match running.get(arn) {
                Some(live) => {
                    let stop = Input::Stop { error: error.clone(), cause: cause.clone() };
                    let _ = live.inbox.send(Message { input: stop, taken: None });
                    None
                }
                None => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    running.insert(arn.to_string(), Live { inbox: tx, task: None });
                    Some(rx)
                }
            }
        };
        let Some(_claimed) = claimed else {
            let mut ended = ended;
            for _ in 0..30 {
                match tokio::time::timeout(std::time::Duration::from_secs(1), &mut ended).await {
                    Ok(Ok(e)) => return Ok(e.stop.unwrap_or_else(|| self.engine.clock().now())),
                    // It may have ended before the watch began.
                    _ => {
                        if let Some(e) = self.ended_record(arn)? {
                            self.unwatch(arn);
                            return Ok(e.stop.unwrap_or_else(|| self.engine.clock().now()));
                        }
                    }
                }
            }
            self.unwatch(arn);
            return Err(ApiError::internal(
                "the execution did not stop within 30 seconds; it stops when it can",
            ));
        };
        self.unwatch(arn);
        // Run by another daemon: the stop goes there, and the answer waits for its end.
        match self.take(arn) {
            Ok(super::cluster::Owner::Elsewhere(owner)) => {
                self.release(arn);
                let stop = Input::Stop { error: error.clone(), cause: cause.clone() };
                self.forward(arn, &owner, Message { input: stop, taken: None });
                return self.stopped_elsewhere(arn).await;
            }
            Ok(_) => {}
            Err(e) => {
                self.release(arn);
                return Err(e);
            }
        }
        // Parked: nothing of it is in memory; its end is written here while it is claimed
        // (unless it ended before it could be claimed).
        let stopped = match self.store.get_execution(arn).map_err(ApiError::internal)? {
            Some(e) if e.status == ExecutionStatus::Running => self.stop_parked(e, error, cause).await,
            _ => Err(ApiError::new("ValidationException", format!("Execution is not running: '{arn}'"))),
        };
        self.release(arn);
        stopped
    }

    /// Waits for the end of an execution that another daemon was asked to stop.
    async fn stopped_elsewhere(&self, arn: &str) -> Result<DateTime<Utc>, ApiError> {
        for _ in 0..300 {
            if let Some(e) = self.ended_record(arn)? {
                return Ok(e.stop.unwrap_or_else(|| self.engine.clock().now()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(ApiError::internal("the execution did not stop within 30 seconds; it stops when it can"))
    }

    async fn stop_parked(
        self: &Arc<Self>,
        mut e: ExecutionRecord,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<DateTime<Utc>, ApiError> {
        let arn = e.arn.clone();
        let arn = arn.as_str();
        let now = self.engine.clock().now();
        let last = self.store.last_event_id(arn).map_err(ApiError::internal)?;
        let mut details = Map::new();
        if let Some(er) = &error {
            details.insert("error".into(), json!(er));
        }
        if let Some(c) = &cause {
            details.insert("cause".into(), json!(c));
        }
        let event = Event {
            id: last + 1,
            previous_event_id: last,
            timestamp: now,
            kind: "ExecutionAborted",
            details: Some(("executionAbortedEventDetails", Value::Object(details).into())),
        };
        self.store
            .commit(vec![
                Write::Event { execution_arn: arn.to_string(), event },
                Write::Finish {
                    execution_arn: arn.to_string(),
                    status: ExecutionStatus::Aborted,
                    output: None,
                    error: error.clone(),
                    cause: cause.clone(),
                    stop: now,
                },
            ])
            .await
            .map_err(ApiError::internal)?;
        e.status = ExecutionStatus::Aborted;
        (e.error, e.cause, e.stop) = (error, cause, Some(now));
        self.ended(&e);
        Ok(now)
    }

    /// RedriveExecution: a FAILED, TIMED_OUT or ABORTED Standard execution starts again at
    /// the top-level state where it stopped, with that state's input and the variables.
    pub async fn redrive_execution(self: &Arc<Self>, arn: &str) -> Result<DateTime<Utc>, ApiError> {
        let (record, express) = self.find_execution(arn)?;
        let not_redrivable = |why: &str| {
            ApiError::new("ExecutionNotRedrivable", format!("Execution is not redrivable: {why}"))
        };
        if express {
            return Err(not_redrivable("Express executions cannot be redriven"));
        }
        if !matches!(
            record.status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
        ) {
            return Err(not_redrivable(&format!("its status is {}", record.status.as_str())));
        }
        // The definition it started with, as AWS redrives: not the state machine's newer one.
        let machine = self.machine_of(&record)?.ok_or_else(|| {
            ApiError::new(
                "StateMachineDoesNotExist",
                format!("State Machine Does Not Exist: '{}'", record.state_machine_arn),
            )
        })?;
        let frames = self.store.frames(arn).map_err(ApiError::internal)?;
        let last = self.store.last_event_id(arn).map_err(ApiError::internal)?;
        let now = self.engine.clock().now();
        let redrive_count = record.redrive_count + 1;
        let event = Event {
            id: last + 1,
            previous_event_id: last,
            timestamp: now,
            kind: "ExecutionRedriven",
            details: Some(("executionRedrivenEventDetails", json!({"redriveCount": redrive_count}).into())),
        };
        self.store
            .commit(vec![
                Write::Redrive { execution_arn: arn.to_string() },
                Write::Event { execution_arn: arn.to_string(), event },
            ])
            .await
            .map_err(ApiError::internal)?;
        // Every machine that had not finished enters its state anew; finished branches and
        // iterations keep their results.
        let resume = Resume {
            frames: frames.into_iter().map(|f| (f.path, f.data)).collect(),
            last_event_id: last + 1,
            redrive: true,
        };
        let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
        self.metrics.started();
        self.spawn_standard(machine, record, input, Some(resume), None);
        Ok(now)
    }

    /// Resumes every Standard execution that was RUNNING when the daemon stopped. After a
    /// stop without a clean shutdown (`unclean`: a crash, kill -9, the OOM killer), each one
    /// that was at work on a step counts a resume there, and one whose count passes
    /// `storage.resume_limit` is failed instead: the step may be what brought the daemon down.
    pub fn resume_all(self: &Arc<Self>, unclean: bool) -> Result<usize, ApiError> {
        let running = self.store.running().map_err(ApiError::internal)?;
        self.resume_records(running, unclean)
    }

    /// Resumes the executions of other daemons whose lease ran out, claimed for this one.
    pub(super) fn take_over(self: &Arc<Self>) -> Result<usize, ApiError> {
        let Some(c) = self.cluster() else { return Ok(0) };
        let orphans = c.orphans().map_err(ApiError::internal)?;
        self.resume_records(orphans, true)
    }

    fn resume_records(
        self: &Arc<Self>,
        running: Vec<ExecutionRecord>,
        unclean: bool,
    ) -> Result<usize, ApiError> {
        let n = running.len();
        for record in running {
            let Some(inbox) = self.claim(&record.arn) else { continue };
            let arn = record.arn.clone();
            if let Err(e) = self.resume(record, unclean, inbox) {
                self.release(&arn);
                return Err(e);
            }
        }
        Ok(n)
    }

    /// Goes on with a RUNNING Standard execution from what the store holds of it: at once, or
    /// parked until its top level's timer if that is further off than `park_after`.
    /// `count`: the daemon stopped uncleanly, so a resume at work on a step is counted.
    /// `inbox`: the execution is claimed; it is let go if it parks again at once.
    fn resume(self: &Arc<Self>, record: ExecutionRecord, count: bool, inbox: Inbox) -> Result<(), ApiError> {
        let Some(machine) = self.machine_of(&record)? else {
            tracing::warn!(execution = %record.arn, "A running execution's state machine is gone; it stays RUNNING.");
            self.release(&record.arn);
            return Ok(());
        };
        let frames = self.store.frames(&record.arn).map_err(ApiError::internal)?;
        let journaled: HashMap<String, Value> =
            frames.iter().map(|f| (f.path.clone(), f.data.clone())).collect();
        // Nothing at work and every machine waiting: it stays parked until its soonest timer.
        let waiting = engine::journaled(&journaled);
        if let engine::Journaled::Waiting(t) = waiting {
            {
                let deadline = machine.timeout_seconds.map(|s| crate::time::after(record.start, s));
                let until = match (t, deadline) {
                    (Some(t), Some(d)) => Some(t.min(d)),
                    (t, d) => t.or(d),
                };
                if until.is_none_or(|u| u - self.engine.clock().now() > self.park_after) {
                    match self.leave_memory(&record.arn, Some(inbox)) {
                        None => {
                            let this = self.clone();
                            tokio::spawn(async move { this.park(record.arn, until).await });
                            return Ok(());
                        }
                        Some(rx) => return self.resume_now(machine, record, frames, count, rx),
                    }
                }
            }
        }
        self.resume_now(machine, record, frames, count, inbox)
    }

    fn resume_now(
        self: &Arc<Self>,
        machine: Arc<Machine>,
        record: ExecutionRecord,
        frames: Vec<Frame>,
        count: bool,
        inbox: Inbox,
    ) -> Result<(), ApiError> {
        let journaled: HashMap<String, Value> =
            frames.iter().map(|f| (f.path.clone(), f.data.clone())).collect();
        let waiting = engine::journaled(&journaled);
        let last_event_id = self.store.last_event_id(&record.arn).map_err(ApiError::internal)?.max(1);
        // An execution asleep until a time still to come was not at work when the daemon
        // stopped: its resume is not counted.
        let asleep = matches!(waiting, engine::Journaled::Waiting(t) if t.is_none_or(|t| t > self.engine.clock().now()));
        if count && !asleep && self.resume_limit > 0 {
            let marker = engine::work_marker(&journaled);
            let n = self.store.count_resume(&record.arn, marker).map_err(ApiError::internal)?;
            if n > self.resume_limit {
                let top = journaled
                    .get("")
                    .and_then(|d| serde_json::from_value::<engine::core::Frame>(d.clone()).ok());
                let state = top.as_ref().and_then(|f| machine.states.get(f.state).map(|s| (s, f)));
                let arn = record.arn.clone();
                let failed = self.fail_stuck(record, state, n - 1, last_event_id);
                self.release(&arn);
                return failed;
            }
        }
        // Without a top-level frame it crashed before its first state was journaled: it
        // starts at StartAt, after the events it has.
        let resume = Resume {
            frames: frames.into_iter().map(|f| (f.path, f.data)).collect(),
            last_event_id,
            redrive: false,
        };
        let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
        tracing::debug!(execution = %record.arn, frames = resume.frames.len(), "Resuming an execution.");
        self.spawn_standard(machine, record, input, Some(resume), Some(inbox));
        Ok(())
    }

    /// Fails an execution that the daemon stopped under `stops` times in a row at the same
    /// place, with its frames kept so that a redrive can go on from there.
    fn fail_stuck(
        &self,
        record: ExecutionRecord,
        state: Option<(&crate::asl::compile::State, &engine::core::Frame)>,
        stops: u32,
        last_event_id: u64,
    ) -> Result<(), ApiError> {
        let place = match state {
            Some((s, f)) => format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). ",
                s.name, f.entered_event_id
            ),
            None => String::new(),
        };
        let cause = format!(
            "{place}The daemon stopped without a clean shutdown {stops} times in a row while the \
             execution was at this point (storage.resume_limit is {}); it is failed rather than \
             run a step that may be what brings the daemon down.",
            self.resume_limit
        );
        tracing::error!(execution = %record.arn, stops, "An execution was failed instead of being resumed again.");
        let now = self.engine.clock().now();
        let failed = Event {
            id: last_event_id + 1,
            previous_event_id: last_event_id,
            timestamp: now,
            kind: "ExecutionFailed",
            details: Some((
                "executionFailedEventDetails",
                json!({"error": crate::error::names::RUNTIME, "cause": cause}).into(),
            )),
        };
        let mut writes = event_writes(&record.arn, vec![failed]);
        writes.push(Write::Finish {
            execution_arn: record.arn.clone(),
            status: ExecutionStatus::Failed,
            output: None,
            error: Some(crate::error::names::RUNTIME.to_string()),
            cause: Some(cause),
            stop: now,
        });
        let ms = (now - record.start).num_milliseconds().max(0) as u64;
        self.metrics.finished(Status::Failed, 0, ms);
        let store = self.store.clone();
        let arn = record.arn;
        tokio::spawn(async move {
            if let Err(e) = store.commit(writes).await {
                tracing::error!(execution = %arn, error = %e, "The end of an execution could not be stored.");
            }
        });
        Ok(())
    }
}

fn frame_writes(arn: &str, frames: Vec<FrameWrite>) -> Vec<Write> {
    frames
        .into_iter()
        .map(|f| match f {
            FrameWrite::Put { path, data } => {
                Write::Frame(Frame { execution_arn: arn.to_string(), path, data })
            }
            FrameWrite::Remove { path } => {
                Write::DeleteFrames { execution_arn: arn.to_string(), prefix: path }
            }
        })
        .collect()
}

/// Journals a Standard execution's progress to the store (group-committed).
struct StoreJournal {
    store: Arc<dyn Store>,
    arn: String,
    /// Read back from the store: its first commit ends its parked state there, together
    /// with the progress that makes it no longer true.
    unpark: std::sync::atomic::AtomicBool,
}

impl Journal for StoreJournal {
    fn checkpoint(
        &self,
        events: Vec<Event>,
        frames: Vec<FrameWrite>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let mut writes: Vec<Write> = event_writes(&self.arn, events);
        if self.unpark.swap(false, std::sync::atomic::Ordering::Relaxed) {
            writes.push(Write::Unpark { execution_arn: self.arn.clone() });
        }
        writes.extend(frames.into_iter().map(|f| match f {
            FrameWrite::Put { path, data } => {
                Write::Frame(Frame { execution_arn: self.arn.clone(), path, data })
            }
            FrameWrite::Remove { path } => {
                Write::DeleteFrames { execution_arn: self.arn.clone(), prefix: path }
            }
        }));
        let commit = self.store.commit(writes);
        Box::pin(async move { commit.await.map_err(|e| e.to_string()) })
    }
}

//! Retry and Catch: which retrier or catcher an error matches, the backoff of the next
//! attempt (with jitter drawn from a number the engine supplies), and the error output
//! a catcher hands on.

use super::io::result_path;
use super::{Assigned, Ctx};
use crate::asl::compile::{Catcher, Retrier, State};
use crate::error::{names, Failure};
use serde_json::{Map, Value};

/// What Retry and Catch make of a failure.
#[derive(Debug, PartialEq)]
pub enum Recovery {
    /// Run the state again after `delay_seconds` (retrier `retrier` used once more).
    Retry { delay_seconds: f64, retrier: usize },
    /// Go to `next` with `output` (the error merged by the catcher's ResultPath),
    /// assigning the catcher's variables.
    Catch { next: usize, output: Value, assign: Assigned },
    /// Nothing handles it: the machine fails.
    Fail(Failure),
}

/// Does `pattern` (an ErrorEquals entry) match `error`?
pub fn error_matches(pattern: &str, error: &str) -> bool {
    // States.Runtime ends the execution whatever the Retry and Catch say (AWS's recorded
    // behaviour: even `ErrorEquals: ["States.Runtime"]` does not catch it).
    if error == names::RUNTIME {
        return false;
    }
    if pattern == error {
        return true;
    }
    // AWS's documentation says States.ALL does not catch States.DataLimitExceeded, but
    // AWS's recorded executions show it does for an oversized Task result; the recordings
    // decide.
    match pattern {
        names::ALL => true,
        // A missed heartbeat is a States.Timeout to AWS (raised here as HeartbeatTimeout so
        // that ErrorEquals can name it), which TaskFailed does not match.
        names::TASK_FAILED => {
            error != names::TIMEOUT
                && error != names::HEARTBEAT_TIMEOUT
                && error != names::DATA_LIMIT_EXCEEDED
        }
        _ => false,
    }
}

/// Does any of `errors` match? A missed heartbeat is raised as `States.HeartbeatTimeout`
/// so that ErrorEquals can single it out, and is also a `States.Timeout` (as AWS reports it).
fn matches(errors: &[String], error: &str) -> bool {
    errors.iter().any(|p| {
        error_matches(p, error) || (error == names::HEARTBEAT_TIMEOUT && error_matches(p, names::TIMEOUT))
    })
}

/// Decides what happens to `failure` raised by `state`. `attempts[i]` counts how often
/// retrier `i` has been used in this state (the engine keeps and persists it); `random`
/// is a number in [0, 1) for FULL jitter.
pub fn recover(
    ctx: &Ctx<'_>,
    state: &State,
    failure: Failure,
    attempts: &[u32],
    raw: Value,
    random: f64,
) -> Recovery {
    if let Some((i, r)) = state.retry.iter().enumerate().find(|(_, r)| matches(&r.errors, &failure.error)) {
        let used = attempts.get(i).copied().unwrap_or(0);
        if used < r.max_attempts {
            let cap = ctx.limits.max_wait_seconds as f64;
            return Recovery::Retry { delay_seconds: delay(r, used, random, cap), retrier: i };
        }
    }
    catch(ctx, &state.catch, failure, raw)
}

/// A failure as catchers and the execution's end show it: AWS reports a missed heartbeat as
/// `States.Timeout`.
pub fn shown(failure: Failure) -> Failure {
    if failure.error == names::HEARTBEAT_TIMEOUT {
        Failure { error: names::TIMEOUT.into(), ..failure }
    } else {
        failure
    }
}

/// The wait before the next attempt: IntervalSeconds × BackoffRate^attempts, at most
/// MaxDelaySeconds, then jittered. AWS limits the wait only by MaxDelaySeconds, but no
/// execution outlives a year there, so a wait past `cap` (`limits.max_wait_seconds`, a year)
/// waits `cap`: a BackoffRate of 1e300 or a millionth attempt cannot overflow the clock.
fn delay(r: &Retrier, used: u32, random: f64, cap: f64) -> f64 {
    let mut d = r.interval_seconds * r.backoff_rate.powi(used.min(i32::MAX as u32) as i32);
    if let Some(max) = r.max_delay_seconds {
        d = d.min(max);
    }
    if d.is_nan() || d > cap {
        d = cap;
    }
    if r.full_jitter {
        d *= random;
    }
    d.max(0.0)
}

fn catch(ctx: &Ctx<'_>, catchers: &[Catcher], failure: Failure, raw: Value) -> Recovery {
    let Some(c) = catchers.iter().find(|c| matches(&c.errors, &failure.error)) else {
        return Recovery::Fail(shown(failure));
    };
    let failure = shown(failure);
    // An error or cause that was never given (SendTaskFailure without them) is null, as AWS
    // writes it; one given empty stays "".
    let shown = |t: &str, given: bool| if given { Value::String(t.to_string()) } else { Value::Null };
    let mut err = Map::new();
    err.insert("Error".into(), shown(&failure.error, failure.given.0));
    err.insert("Cause".into(), shown(&failure.cause, failure.given.1));
    let err = Value::Object(err);
    if c.output.is_some() || matches!(c.assign, Some(crate::asl::compile::Assign::Jsonata(_))) {
        // JSONata: Output (default: the error output) and Assign read `$states.errorOutput`.
        let mut m = Map::new();
        m.insert("input".into(), raw);
        m.insert("errorOutput".into(), err);
        m.insert("context".into(), ctx.env.context().into_owned());
        let mut doc = Value::Object(m);
        let done = super::io::jsonata_assign(ctx, c.assign.as_ref(), &doc).and_then(|assign| {
            let output = match &c.output {
                Some(t) => t.eval(&doc, ctx.env)?,
                None => super::io::take(&mut doc, "errorOutput"),
            };
            Ok((output, assign))
        });
        return match done {
            Ok((output, assign)) => Recovery::Catch { next: c.next, output, assign },
            Err(f) => Recovery::Fail(f),
        };
    }
    let assign = match &c.assign {
        None => Ok(None),
        Some(a) => super::io::assign(ctx, a, &err),
    };
    match assign.and_then(|assign| Ok((result_path(&c.result_path, raw, err)?, assign))) {
        Ok((output, assign)) => Recovery::Catch { next: c.next, output, assign },
        Err(f) => Recovery::Fail(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_does_not_catch_runtime() {
        assert!(error_matches("States.ALL", "MyError"));
        assert!(error_matches("States.ALL", "States.Timeout"));
        assert!(!error_matches("States.ALL", "States.Runtime"));
        assert!(error_matches("States.ALL", "States.DataLimitExceeded"));
        assert!(!error_matches("States.Runtime", "States.Runtime"));
        assert!(error_matches("States.DataLimitExceeded", "States.DataLimitExceeded"));
    }

    #[test]
    fn task_failed_matches_task_errors_but_not_timeouts() {
        assert!(error_matches("States.TaskFailed", "Lambda.Unknown"));
        assert!(!error_matches("States.TaskFailed", "States.Timeout"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = Retrier {
            errors: vec![],
            interval_seconds: 1.0,
            max_attempts: 5,
            backoff_rate: 2.0,
            max_delay_seconds: Some(5.0),
            full_jitter: false,
        };
        let d: Vec<f64> = (0..4).map(|n| delay(&r, n, 0.5, 1e9)).collect();
        assert_eq!(d, vec![1.0, 2.0, 4.0, 5.0]);
        let jittered = Retrier { full_jitter: true, ..r.clone() };
        assert_eq!(delay(&jittered, 2, 0.25, 1e9), 1.0);
    }

    #[test]
    fn a_backoff_that_overflows_waits_the_cap() {
        // Regression: 1e300^n and 82000^n overflowed the deadline's DateTime and panicked.
        let r = Retrier {
            errors: vec![],
            interval_seconds: 99_999_999.0,
            max_attempts: 99_999_999,
            backoff_rate: 1e300,
            max_delay_seconds: None,
            full_jitter: false,
        };
        for used in [1, 2, 1000, u32::MAX] {
            assert_eq!(delay(&r, used, 0.5, 31_622_400.0), 31_622_400.0);
        }
        let jittered = Retrier { full_jitter: true, ..r };
        assert_eq!(delay(&jittered, 7, 0.5, 100.0), 50.0);
    }
}

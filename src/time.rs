//! The clock the engine gives workflows. Wait states and Retry intervals sleep through it;
//! with a time scale below 1 they take less real time (0: none) while the time the workflow
//! sees (`$$.State.EnteredTime`, Wait timestamps) still moves as if they had elapsed.
//! Timeouts are not scaled: they bound real work.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct Clock {
    scale: f64,
    /// How far the workflow's time runs ahead of the real time, in microseconds.
    skew_us: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(1.0)
    }
}

impl Clock {
    /// `scale`: real time spent per second waited (1.0: real time, 0: none).
    pub fn new(scale: f64) -> Self {
        Clock { scale: scale.max(0.0), skew_us: AtomicI64::new(0) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.at(Utc::now())
    }

    /// The workflow's time when the real clock reads `real` (one reading of the system clock
    /// serves both).
    pub fn at(&self, real: DateTime<Utc>) -> DateTime<Utc> {
        // Saturating: a time scale of 0 over enough long waits must not overflow the clock.
        real.checked_add_signed(chrono::Duration::microseconds(self.skew_us.load(Ordering::Relaxed)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Waits until the workflow's clock reads `t`.
    pub async fn sleep_until(&self, t: DateTime<Utc>) {
        let ahead = (t - self.now()).to_std().unwrap_or(Duration::ZERO);
        self.sleep(ahead).await;
        // Concurrent waits must not move the clock back: keep the furthest target.
        let skew = (t - Utc::now()).num_microseconds().unwrap_or(i64::MAX);
        self.skew_us.fetch_max(skew, Ordering::Relaxed);
    }

    /// Waits `d` of the workflow's time.
    pub async fn sleep(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let now = self.now();
        let target = chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let real = d.mul_f64(self.scale);
        if !real.is_zero() {
            tokio::time::sleep(real).await;
        }
        let skew = (target - Utc::now()).num_microseconds().unwrap_or(i64::MAX);
        self.skew_us.fetch_max(skew, Ordering::Relaxed);
    }
}

/// `secs` seconds after `t`, saturating at the latest time chrono can hold: seconds come
/// from definitions and inputs (a Wait's SecondsPath may read 9223372036854775807).
pub fn after(t: DateTime<Utc>, secs: u64) -> DateTime<Utc> {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// AWS's timestamp form in the context object and histories: ISO-8601 with milliseconds.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_zero_scale_moves_the_workflow_clock_without_sleeping() {
        let clock = Clock::new(0.0);
        let real = std::time::Instant::now();
        let before = clock.now();
        clock.sleep(Duration::from_secs(3600)).await;
        assert!(real.elapsed() < Duration::from_secs(5));
        let moved = clock.now() - before;
        assert!(moved >= chrono::Duration::seconds(3600), "{moved}");
    }
}

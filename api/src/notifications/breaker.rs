//! Circuit breakers for the URLs deliveries are posted to (webhooks, support inboxes'
//! outbound gateways), one set per instance.
//!
//! A target that keeps failing (an error status, a refused connection, a timeout) is paused
//! after `TRIP_AFTER` failures in a row: its deliveries are handed back without an attempt
//! until the pause ends, so they do not spend their attempts while it is down, nor hold the
//! worker's slots for a timeout each. Then one delivery is let through as a probe: if it is
//! answered with a 2xx the circuit closes and the rest follow; if not, the next pause is twice
//! as long (at most an hour). What Stripe and Svix do for endpoints that keep failing, kept
//! per instance: each instance learns of a dead target from its own attempts, so a target
//! takes at most `TRIP_AFTER` failed attempts per instance (and the attempts already in
//! flight) before every instance pauses it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Failures in a row that pause a target.
pub const TRIP_AFTER: u32 = 5;
/// The longest pause.
const MAX_PAUSE: Duration = Duration::from_secs(3_600);

/// Whether a delivery to a target may be attempted now.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    Pass,
    /// Paused: try again after this long.
    Wait(Duration),
}

pub struct Breakers {
    circuits: Mutex<HashMap<String, Circuit>>,
    /// The first pause; each failed probe doubles it.
    pause: Duration,
    /// How long a probe may take before another is let through (its worker may have died).
    probe_timeout: Duration,
}

struct Circuit {
    failures: u32,
    /// The last failure: a target that has not failed for two of the longest pauses (its
    /// webhook deleted, say) is forgotten.
    last_failure: Instant,
    /// Set once the circuit has opened: pauses so far, and when the current one ends.
    paused: Option<(u32, Instant)>,
    /// When the probe in flight was let through.
    probe: Option<Instant>,
}

impl Breakers {
    pub fn new(pause: Duration, probe_timeout: Duration) -> Self {
        Self { circuits: Mutex::default(), pause, probe_timeout }
    }

    /// Lets an attempt to `url` through, or says how long it waits.
    pub fn admit(&self, url: &str) -> Gate {
        let now = Instant::now();
        let mut circuits = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let Some(circuit) = circuits.get_mut(url) else { return Gate::Pass };
        let Some((_, until)) = circuit.paused else { return Gate::Pass };
        if now < until {
            return Gate::Wait(until - now);
        }
        match circuit.probe {
            Some(started) if now < started + self.probe_timeout => {
                Gate::Wait(started + self.probe_timeout - now)
            }
            _ => {
                circuit.probe = Some(now);
                Gate::Pass
            }
        }
    }

    /// Records how an attempt to `url` was answered.
    pub fn record(&self, url: &str, answered_ok: bool) {
        let mut circuits = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        if answered_ok {
            circuits.remove(url);
            return;
        }
        let now = Instant::now();
        if !circuits.contains_key(url) {
            circuits.retain(|_, circuit| now < circuit.last_failure + MAX_PAUSE * 2);
        }
        let circuit = circuits.entry(url.to_owned()).or_insert(Circuit {
            failures: 0,
            last_failure: now,
            paused: None,
            probe: None,
        });
        circuit.failures += 1;
        circuit.last_failure = now;
        let pauses = match circuit.paused {
            // A probe failed (or an attempt that was in flight when the circuit opened).
            Some((pauses, until)) if now >= until => pauses + 1,
            Some(_) => return,
            None if circuit.failures >= TRIP_AFTER => 1,
            None => return,
        };
        let pause = self.pause.saturating_mul(1 << (pauses - 1).min(16)).min(MAX_PAUSE);
        circuit.paused = Some((pauses, now + pause));
        circuit.probe = None;
        metrics::counter!("parley_notification_targets_paused_total").increment(1);
        tracing::warn!(
            failures = circuit.failures,
            pause_secs = pause.as_secs_f64(),
            "a delivery target is paused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://hooks.example.com/x";

    fn breakers() -> Breakers {
        Breakers::new(Duration::from_secs(30), Duration::from_secs(20))
    }

    #[tokio::test(start_paused = true)]
    async fn five_failures_in_a_row_pause_a_target() {
        let breakers = breakers();
        for _ in 0..4 {
            breakers.record(URL, false);
        }
        breakers.record(URL, true);
        for _ in 0..4 {
            breakers.record(URL, false);
            assert_eq!(breakers.admit(URL), Gate::Pass, "a success in between starts the count again");
        }
        breakers.record(URL, false);
        assert_eq!(breakers.admit(URL), Gate::Wait(Duration::from_secs(30)));
        assert_eq!(breakers.admit("https://other.example.com/"), Gate::Pass, "other targets go on");
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_after_the_pause_and_a_failed_probe_doubles_it() {
        let breakers = breakers();
        for _ in 0..5 {
            breakers.record(URL, false);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breakers.admit(URL), Gate::Pass, "the probe");
        assert_eq!(breakers.admit(URL), Gate::Wait(Duration::from_secs(20)), "one probe at a time");
        breakers.record(URL, false);
        assert_eq!(breakers.admit(URL), Gate::Wait(Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(breakers.admit(URL), Gate::Pass);
        breakers.record(URL, true);
        assert_eq!(breakers.admit(URL), Gate::Pass, "closed: everything goes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_reports_is_replaced() {
        let breakers = breakers();
        for _ in 0..5 {
            breakers.record(URL, false);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breakers.admit(URL), Gate::Pass);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(breakers.admit(URL), Gate::Pass, "the first probe's worker died");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_of_attempts_in_flight_do_not_extend_the_pause() {
        let breakers = breakers();
        for _ in 0..9 {
            breakers.record(URL, false);
        }
        assert_eq!(breakers.admit(URL), Gate::Wait(Duration::from_secs(30)));
    }
}

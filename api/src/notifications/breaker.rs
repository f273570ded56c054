//! Circuit breakers for the URLs deliveries are posted to (webhooks, support inboxes'
//! outbound gateways), one per organisation and URL, kept by each instance.
//!
//! A target that keeps failing (an error status, a refused connection, a timeout) is paused
//! after `TRIP_AFTER` failures in a row: its deliveries are handed back without an attempt
//! until the pause ends, so they do not spend their attempts while it is down, nor hold the
//! worker's slots for a timeout each. Then one delivery is let through as a probe: if it is
//! answered with a 2xx the circuit closes and the rest follow; if not, the next pause is twice
//! as long (at most an hour). What Stripe and Svix do for endpoints that keep failing.
//!
//! Per organisation, because one organisation's failures (a wrong secret at a shared gateway,
//! a webhook aimed at someone else's URL on purpose) must not pause another's deliveries; per
//! instance, because each learns of a dead target from its own attempts: a target costs at
//! most `TRIP_AFTER` failed attempts per instance (and the attempts already in flight) before
//! every instance pauses it, and a restart forgets the pause.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

/// Failures in a row that pause a target.
pub const TRIP_AFTER: u32 = 5;
/// The longest pause.
const MAX_PAUSE: Duration = Duration::from_secs(3_600);

/// Whose target: the organisation and the URL.
pub type TargetKey = (Uuid, String);

/// Whether a delivery to a target may be attempted now.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    Pass,
    /// The one attempt after a pause; only its failure lengthens the next pause.
    Probe,
    /// Paused: try again after this long.
    Wait(Paused),
}

/// A paused target: when to try again, the last failure, and how long it has been failing.
#[derive(Debug, PartialEq, Eq)]
pub struct Paused {
    pub wait: Duration,
    pub last_error: String,
    pub down_for: Duration,
}

pub struct Breakers {
    circuits: Mutex<HashMap<TargetKey, Circuit>>,
    /// The first pause; each failed probe doubles it.
    pause: Duration,
    /// How long a probe may take before another is let through (its worker may have died).
    probe_timeout: Duration,
}

struct Circuit {
    failures: u32,
    /// The last failure and when it was: a target that has not failed for two of the longest
    /// pauses (its webhook deleted, say) is forgotten.
    last_error: String,
    last_failure: Instant,
    /// Set once the circuit has opened.
    open: Option<Open>,
    /// When the probe in flight was let through.
    probe: Option<Instant>,
}

struct Open {
    /// When it first opened (a failed probe keeps it; a success forgets the circuit).
    since: Instant,
    /// Pauses so far, and when the current one ends.
    pauses: u32,
    until: Instant,
}

impl Breakers {
    pub fn new(pause: Duration, probe_timeout: Duration) -> Self {
        Self { circuits: Mutex::default(), pause, probe_timeout }
    }

    /// Lets an attempt at `target` through, as a probe after a pause, or says how long it waits.
    pub fn admit(&self, target: &TargetKey) -> Gate {
        let now = Instant::now();
        let mut circuits = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let Some(circuit) = circuits.get_mut(target) else { return Gate::Pass };
        let Some(Open { since, until, .. }) = circuit.open else { return Gate::Pass };
        let paused =
            |wait| Gate::Wait(Paused { wait, last_error: circuit.last_error.clone(), down_for: now - since });
        if now < until {
            return paused(until - now);
        }
        match circuit.probe {
            Some(started) if now < started + self.probe_timeout => paused(started + self.probe_timeout - now),
            _ => {
                circuit.probe = Some(now);
                Gate::Probe
            }
        }
    }

    /// Records how an attempt at `target` that `admit` let through (`probe`: as the probe) was
    /// answered: `Ok`, or the failure.
    pub fn record(&self, target: &TargetKey, probe: bool, answer: Result<(), &str>) {
        let mut circuits = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let Err(error) = answer else {
            circuits.remove(target);
            return;
        };
        let now = Instant::now();
        if !circuits.contains_key(target) {
            circuits.retain(|_, circuit| now < circuit.last_failure + MAX_PAUSE * 2);
        }
        let circuit = circuits.entry(target.clone()).or_insert(Circuit {
            failures: 0,
            last_error: String::new(),
            last_failure: now,
            open: None,
            probe: None,
        });
        circuit.failures += 1;
        circuit.last_error = error.to_owned();
        circuit.last_failure = now;
        let pauses = match &circuit.open {
            Some(open) if probe => open.pauses + 1,
            // An attempt let through before the pause began, ending late: the probe decides.
            Some(_) => return,
            None if circuit.failures >= TRIP_AFTER => 1,
            None => return,
        };
        let pause = self.pause.saturating_mul(1 << (pauses - 1).min(16)).min(MAX_PAUSE);
        let since = circuit.open.as_ref().map_or(now, |open| open.since);
        circuit.open = Some(Open { since, pauses, until: now + pause });
        circuit.probe = None;
        metrics::counter!("parley_notification_targets_paused_total").increment(1);
        // The organisation, not the URL: a URL may carry a token (Slack's do).
        tracing::warn!(org = %target.0, failures = circuit.failures, pause_secs = pause.as_secs_f64(), error,
            "a delivery target is paused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> TargetKey {
        (Uuid::nil(), url.to_owned())
    }

    fn breakers() -> Breakers {
        Breakers::new(Duration::from_secs(30), Duration::from_secs(20))
    }

    fn fail(breakers: &Breakers, times: usize) {
        for _ in 0..times {
            breakers.record(&target("a"), false, Err("HTTP 500"));
        }
    }

    /// Paused for `secs` more, failing for `down` seconds.
    fn wait(secs: u64, down: u64) -> Gate {
        let (wait, down_for) = (Duration::from_secs(secs), Duration::from_secs(down));
        Gate::Wait(Paused { wait, last_error: "HTTP 500".into(), down_for })
    }

    #[tokio::test(start_paused = true)]
    async fn five_failures_in_a_row_pause_a_target() {
        let breakers = breakers();
        fail(&breakers, 4);
        breakers.record(&target("a"), false, Ok(()));
        fail(&breakers, 4);
        assert_eq!(breakers.admit(&target("a")), Gate::Pass, "a success in between starts the count again");
        fail(&breakers, 1);
        assert_eq!(breakers.admit(&target("a")), wait(30, 0));
        assert_eq!(breakers.admit(&target("b")), Gate::Pass, "other targets go on");
        let elsewhere = (Uuid::max(), "a".to_owned());
        assert_eq!(
            breakers.admit(&elsewhere),
            Gate::Pass,
            "another organisation's attempts at the URL go on"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_after_the_pause_and_a_failed_probe_doubles_it() {
        let breakers = breakers();
        fail(&breakers, 5);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breakers.admit(&target("a")), Gate::Probe);
        assert_eq!(breakers.admit(&target("a")), wait(20, 30), "one probe at a time");
        breakers.record(&target("a"), true, Err("HTTP 500"));
        assert_eq!(breakers.admit(&target("a")), wait(60, 30), "failing since the first pause");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(breakers.admit(&target("a")), Gate::Probe);
        breakers.record(&target("a"), true, Ok(()));
        assert_eq!(breakers.admit(&target("a")), Gate::Pass, "closed: everything goes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_reports_is_replaced() {
        let breakers = breakers();
        fail(&breakers, 5);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breakers.admit(&target("a")), Gate::Probe);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(breakers.admit(&target("a")), Gate::Probe, "the first probe's worker died");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_already_in_flight_do_not_lengthen_the_pause() {
        let breakers = breakers();
        fail(&breakers, 9);
        assert_eq!(breakers.admit(&target("a")), wait(30, 0));
        // One ends after the pause, while the probe is out: the probe decides.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breakers.admit(&target("a")), Gate::Probe);
        fail(&breakers, 1);
        assert_eq!(breakers.admit(&target("a")), wait(20, 30), "still the probe's turn");
    }
}

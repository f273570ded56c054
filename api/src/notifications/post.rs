//! Posting a signed JSON delivery (a webhook's, a support inbox's outbound message) through
//! the target's circuit breaker, and describing a failed request without its URL.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Url;

use super::breaker::{Gate, TRIP_AFTER};
use super::worker::Failure;
use super::{render, target};
use crate::state::AppState;
use entity::notification_deliveries;

/// Where a signed JSON delivery goes: a webhook's URL and secret, or a support inbox's
/// outbound URL and its secret.
pub(crate) struct Target<'a> {
    pub url: &'a str,
    pub secret: &'a str,
}

/// Posts a signed JSON body (`X-Parley-Signature` over `"<timestamp>.<body>"`) with the
/// delivery's id as `Idempotency-Key`; a 2xx answer delivers. A target that keeps failing
/// is paused (`breaker`): its deliveries wait without an attempt, for at most `GIVE_UP_AFTER`
/// from when they were written.
pub(crate) async fn post(
    state: &AppState,
    client: &reqwest::Client,
    target: Target<'_>,
    delivery: &notification_deliveries::Model,
    body: String,
) -> Result<(), Failure> {
    let now = Utc::now();
    let url = Url::parse(target.url).map_err(|e| Failure::Permanent(format!("url: {e}")))?;
    if !target::literal_host_allowed(&url, state.limits.webhook_allow_private) {
        return Err(Failure::Permanent("url: not a public address".into()));
    }
    let signature = render::signature(target.secret, now, body.as_bytes())
        .map_err(|e| Failure::Permanent(format!("signing: {e}")))?;
    let breakers = &state.notifier.breakers;
    let key = (delivery.org_id, target.url.to_owned());
    let probe = match breakers.admit(&key) {
        Gate::Wait(wait, last) => return Err(paused(now - delivery.created_at, wait, &last)),
        gate => gate == Gate::Probe,
    };
    let answered = exchange(client, url, delivery, now, signature, body).await;
    breakers.record(&key, probe, answered.as_ref().map(|_| ()).map_err(String::as_str));
    answered.map_err(Failure::Retry)
}

/// How long a delivery to a paused target may wait before it fails: a pending row is never
/// pruned, and an admin looks for failed ones.
const GIVE_UP_AFTER: TimeDelta = TimeDelta::days(1);

/// What a delivery to a paused target becomes, `waited` since it was written: handed back
/// until the pause ends, or failed once it has waited `GIVE_UP_AFTER`.
fn paused(waited: TimeDelta, wait: Duration, last: &str) -> Failure {
    if waited > GIVE_UP_AFTER {
        return Failure::Permanent(format!("the target failed for a day (last: {last})"));
    }
    let reason = format!("paused after {TRIP_AFTER} failed attempts in a row (last: {last})");
    Failure::Paused { wait, reason }
}

/// The request, and what failed if it was not answered with a 2xx.
async fn exchange(
    client: &reqwest::Client,
    url: Url,
    delivery: &notification_deliveries::Model,
    now: DateTime<Utc>,
    signature: String,
    body: String,
) -> Result<(), String> {
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", delivery.id.to_string())
        .header("X-Parley-Delivery", delivery.id.to_string())
        .header("X-Parley-Event", delivery.event.as_str())
        .header("X-Parley-Timestamp", now.timestamp().to_string())
        .header("X-Parley-Signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| without_url(&e))?;
    let status = response.status();
    if status.is_success() { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
}

/// reqwest's error text names the URL, which may carry a token (Slack's and push services'
/// do): keep it out of what admins and logs see.
pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let detail = std::error::Error::source(error).map(ToString::to_string).unwrap_or_default();
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_delivery_waits_a_day_at_most() {
        let wait = Duration::from_secs(30);
        let waiting = paused(TimeDelta::hours(23), wait, "HTTP 503");
        assert!(matches!(&waiting, Failure::Paused { wait: w, reason }
            if *w == wait && reason == "paused after 5 failed attempts in a row (last: HTTP 503)"));
        let given_up = paused(TimeDelta::hours(25), wait, "HTTP 503");
        assert!(
            matches!(&given_up, Failure::Permanent(e) if e == "the target failed for a day (last: HTTP 503)")
        );
    }
}

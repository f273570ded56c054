//! Posting a signed JSON delivery (a webhook's, a support inbox's outbound message) through
//! the target's circuit breaker, and describing a failed request without its URL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;

use super::breaker::{Gate, Paused, TRIP_AFTER};
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
/// is paused (`breaker`): its deliveries wait without an attempt, until it has failed for
/// `GIVE_UP_AFTER`.
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
        Gate::Wait(paused_target) => return Err(paused(paused_target)),
        gate => gate == Gate::Probe,
    };
    let answered = exchange(client, url, delivery, now, signature, body).await;
    breakers.record(&key, probe, answered.as_ref().map(|_| ()).map_err(String::as_str));
    answered.map_err(Failure::Retry)
}

/// How long a target may stay paused before the deliveries that meet it fail: a pending row
/// is never pruned, and an admin looks for failed ones.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3_600);

/// What a delivery to a paused target becomes: handed back until the pause ends, or failed
/// once the target has been failing for `GIVE_UP_AFTER` (counted from its first pause, not
/// from the delivery's age: a backlog that waited out an outage of its own is not failed).
fn paused(target: Paused) -> Failure {
    let Paused { wait, last_error, down_for } = target;
    if down_for > GIVE_UP_AFTER {
        return Failure::Permanent(format!("the target has failed for a day (last: {last_error})"));
    }
    let reason = format!("paused after {TRIP_AFTER} failed attempts in a row (last: {last_error})");
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
    fn deliveries_wait_for_a_target_failing_a_day_at_most() {
        let wait = Duration::from_secs(30);
        let target = |hours: u64| Paused {
            wait,
            last_error: "HTTP 503".into(),
            down_for: Duration::from_secs(hours * 3_600),
        };
        let waiting = paused(target(23));
        assert!(matches!(&waiting, Failure::Paused { wait: w, reason }
            if *w == wait && reason == "paused after 5 failed attempts in a row (last: HTTP 503)"));
        let given_up = paused(target(25));
        let expected = "the target has failed for a day (last: HTTP 503)";
        assert!(matches!(&given_up, Failure::Permanent(e) if e == expected));
    }
}

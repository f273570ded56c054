//! Posting a signed JSON delivery (a webhook's, a support inbox's outbound message) and
//! describing a failed request without its URL.

use chrono::{DateTime, Utc};
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
/// is paused (`breaker`): its deliveries wait without an attempt.
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
    if let Gate::Wait(wait) = breakers.admit(target.url) {
        let reason = format!("paused: the target failed {TRIP_AFTER} attempts in a row");
        return Err(Failure::Paused { wait, reason });
    }
    let answered = exchange(client, url, delivery, now, signature, body).await;
    breakers.record(target.url, answered.is_ok());
    answered
}

/// The request and its answer.
async fn exchange(
    client: &reqwest::Client,
    url: Url,
    delivery: &notification_deliveries::Model,
    now: DateTime<Utc>,
    signature: String,
    body: String,
) -> Result<(), Failure> {
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
        .map_err(|e| Failure::Retry(without_url(&e)))?;
    let status = response.status();
    if status.is_success() { Ok(()) } else { Err(Failure::Retry(format!("HTTP {}", status.as_u16()))) }
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

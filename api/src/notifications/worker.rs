//! The delivery worker: one task per instance that claims due deliveries from the outbox,
//! sends them (a webhook post here, an email through `email`, a push through `push`), and
//! records each attempt's outcome.
//!
//! It keeps up to `IN_FLIGHT` attempts going; as they end it claims more (a claim is three
//! indexed statements, made once a quarter of the slots are free). A claim gives one
//! organisation only its share of the slots (`Slots::plan`) and leaves the rest of its rows
//! pending, so targets that hang (each attempt waiting out the timeout) slow that
//! organisation only. After a claim that could not fill the free slots the worker waits for
//! `POLL`, or until an organisation it passed over may take a batch again. What a claim's deliveries
//! are about (webhooks, messages, rooms) is read with one query per table for the whole
//! claim. Every attempt carries the delivery's id as `Idempotency-Key`, so a receiver can
//! drop the repeat that a worker dying between the post and the record can cause. A 2xx answer delivers; anything else (an error status, a
//! timeout, a refused connection) is retried after an exponential, jittered wait until
//! `PARLEY_WEBHOOK_MAX_ATTEMPTS`, unless the target is paused (`breaker`), which hands the
//! delivery back uncounted; a deleted webhook or message fails at once, and so does a
//! room-scoped webhook of a private room once its creator is no longer an admin in that
//! room. An outcome is recorded only while the row is still this attempt's (see
//! `settle::settle`). Beside it, a task deletes the deliveries settled longer ago than
//! `PARLEY_DELIVERY_RETENTION_SECS` (at most once per retention period or hour, whichever is
//! shorter), so the outbox does not grow for ever; every instance does, harmlessly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::outbox;
use super::settle::{self, Settled};
use super::slots::{ClaimPlan, Slots};
use super::{email, push, target, webhook_attempt};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use entity::{messages, notification_deliveries, outgoing_webhooks, rooms};

/// How often an idle worker looks for due deliveries.
const POLL: Duration = Duration::from_secs(1);
/// Attempts in flight at once per instance.
pub(super) const IN_FLIGHT: usize = 32;
/// Free slots before the next claim, so that claims stay batches rather than one statement
/// per attempt that ends.
const REFILL_AT: usize = IN_FLIGHT / 4;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3_600);
/// The longest time between two prunings of settled deliveries.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// Why an attempt did not deliver: worth another try, never going to work, no longer
/// wanted (and so never sent), or not made because its target is paused (`breaker`).
pub(crate) enum Failure {
    Retry(String),
    Permanent(String),
    Cancelled(String),
    Paused {
        wait: Duration,
        reason: String,
    },
    /// Not due after all (an email batch whose oldest unread message came after it was due):
    /// handed back uncounted, due at `due`.
    NotYet {
        due: DateTime<Utc>,
    },
}

impl Failure {
    /// Reading what the delivery is about failed: the database will answer again. The cause
    /// goes to the log; `lastError`, which admins, recipients and a conversation's readers
    /// see, gets only its public message (no SQL, no driver text).
    pub(crate) fn reading(error: ApiError) -> Self {
        Self::read_failed(&error)
    }

    fn read_failed(error: &ApiError) -> Self {
        tracing::warn!(%error, "notifications: cannot read a delivery's subject; retrying");
        Self::Retry(format!("reading the delivery: {}", error.public_message()))
    }
}

/// Starts the worker; it stops when `shutdown` flips (an attempt in flight is abandoned and
/// its row claimed again when its lease ends).
pub fn spawn(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let timeout = state.limits.webhook_timeout();
    let client = match target::client(state.limits.webhook_allow_private, timeout) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "notification deliveries are off: cannot build the HTTP client");
            return;
        }
    };
    let channels: &[&str] = if state.notifier.mailer.is_some() {
        &["webhook", "push", "outbound", "email"]
    } else {
        &["webhook", "push", "outbound"]
    };
    let retention = state.limits.delivery_retention();
    tokio::spawn(async move {
        let mut slots = Slots::default();
        let mut pruned_at: Option<Instant> = None;
        let mut waiting: Option<Waiting> = None;
        loop {
            if pruned_at.is_none_or(|at| at.elapsed() >= retention.min(PRUNE_EVERY)) {
                pruned_at = Some(Instant::now());
                tokio::spawn(prune(state.clone(), retention));
            }
            // The poll came: from now on claim as slots free, as when busy. Kept, a wait whose
            // moment has passed would wake the loop at once, again and again, while fewer than
            // `REFILL_AT` slots are free (a busy spin until attempts end).
            if waiting.as_ref().is_some_and(|w| Instant::now() >= w.until) {
                waiting = None;
            }
            let mut plan = slots.plan();
            let free = plan.free();
            if (free >= REFILL_AT || slots.tasks.is_empty()) && waiting.as_ref().is_none_or(|w| w.over(&plan))
            {
                // The attempts' time counts from before the claim: its lease starts later.
                let claimed_at = Instant::now();
                let claimed = claim(&state, channels, &mut plan).await;
                let filled = claimed.len() == free;
                if !claimed.is_empty() {
                    let subjects = Arc::new(subjects(&state, &claimed).await);
                    for delivery in claimed {
                        let (state, client, subjects) = (state.clone(), client.clone(), subjects.clone());
                        slots.start(delivery.org_id, async move {
                            deliver(&state, &client, subjects.as_ref().as_ref(), delivery, claimed_at).await;
                        });
                    }
                }
                waiting = (!filled).then(|| Waiting {
                    until: Instant::now() + POLL,
                    passed_over: slots.plan().passed_over().to_vec(),
                });
            }
            // Busy, the worker claims again as attempts end; idle, when the poll comes.
            let wake_at = waiting.as_ref().map_or_else(|| Instant::now() + POLL, |w| w.until);
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(ended) = slots.tasks.join_next_with_id() => slots.ended(ended),
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    });
}

/// Why the worker does not claim again as soon as slots free: its last claim took all it
/// could. What it left was rows of the organisations it passed over, so the next claim waits
/// until one of them may take a batch again, or for the poll (new rows, or rows a busy
/// organisation's backlog hid).
struct Waiting {
    until: Instant,
    passed_over: Vec<Uuid>,
}

impl Waiting {
    fn over(&self, plan: &ClaimPlan) -> bool {
        Instant::now() >= self.until
            || self.passed_over.iter().any(|org_id| !plan.passed_over().contains(org_id))
    }
}

/// Claims what is due and fits `plan`, or nothing when the database does not answer (tried
/// again later).
async fn claim(
    state: &AppState,
    channels: &[&'static str],
    plan: &mut ClaimPlan,
) -> Vec<notification_deliveries::Model> {
    let timeout = state.limits.webhook_timeout();
    let request = outbox::ClaimRequest {
        lease: outbox::lease(timeout),
        max_attempts: state.limits.webhook_max_attempts,
        channels,
        plan,
    };
    outbox::claim(&state.store, request).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "notification outbox: cannot claim deliveries; retrying");
        Vec::new()
    })
}

/// Deletes the deliveries settled more than `retention` ago; a failure waits for the next turn.
async fn prune(state: AppState, retention: Duration) {
    let Ok(retention) = chrono::Duration::from_std(retention) else { return };
    match outbox::prune(&state.store, Utc::now() - retention).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "deleted settled deliveries past their retention"),
        Err(error) => tracing::warn!(%error, "could not prune settled deliveries"),
    }
}

/// What a claim's deliveries are about, read with one query per table for the whole claim.
#[derive(Default)]
pub(super) struct Subjects {
    pub(super) webhooks: HashMap<Uuid, outgoing_webhooks::Model>,
    pub(super) messages: HashMap<Uuid, messages::Model>,
    pub(super) rooms: HashMap<Uuid, rooms::Model>,
}

async fn subjects(state: &AppState, claimed: &[notification_deliveries::Model]) -> ApiResult<Subjects> {
    let db = &state.store.db;
    let webhook_ids = claimed.iter().filter_map(|d| d.webhook_id);
    let webhooks = outgoing_webhooks::Entity::find()
        .filter(outgoing_webhooks::Column::Id.is_in(webhook_ids))
        .all(db)
        .await?;
    let message_ids = claimed.iter().filter_map(|d| d.message_id);
    let messages = messages::Entity::find().filter(messages::Column::Id.is_in(message_ids)).all(db).await?;
    let mut room_ids: Vec<Uuid> = messages.iter().map(|m| m.room_id).collect();
    room_ids.extend(claimed.iter().filter_map(|d| d.room_id));
    let rooms = rooms::Entity::find().filter(rooms::Column::Id.is_in(room_ids)).all(db).await?;
    Ok(Subjects {
        webhooks: webhooks.into_iter().map(|w| (w.id, w)).collect(),
        messages: messages.into_iter().map(|m| (m.id, m)).collect(),
        rooms: rooms.into_iter().map(|r| (r.id, r)).collect(),
    })
}

async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    subjects: Result<&Subjects, &ApiError>,
    delivery: notification_deliveries::Model,
    claimed_at: Instant,
) {
    // The attempt ends within two timeouts of the claim, well inside the lease (three
    // timeouts from a moment after `claimed_at`), so no other worker takes the row over while
    // it may still send, and one timeout is left to record its outcome. Counted from the
    // claim, not from when this task first ran: the claim's own wait (for SQLite's write
    // gate, say) and reading its subjects come out of the lease too.
    let timeout = state.limits.webhook_timeout();
    let deadline = claimed_at + timeout * 2;
    if deadline.saturating_duration_since(Instant::now()) < timeout {
        // So slow a claim left less than one timeout: an attempt cut short would count
        // against the delivery's attempts without a fair try. Handed back, uncounted.
        let outcome = Settled::Released { at: Utc::now() };
        return record(state, &delivery, &outcome).await;
    }
    let attempted = async {
        match (subjects, delivery.channel.as_str()) {
            (Ok(_), "email") => email::attempt(state, &delivery).await,
            (Ok(subjects), "push") => attempt_push(state, client, subjects, &delivery).await,
            (Ok(subjects), "outbound") => {
                let message = delivery.message_id.and_then(|id| subjects.messages.get(&id));
                crate::support::outbound::attempt(state, client, message, &delivery).await
            }
            (Ok(subjects), _) => webhook_attempt::attempt(state, client, subjects, &delivery).await,
            (Err(error), _) => Err(Failure::read_failed(error)),
        }
    };
    let attempted = tokio::time::timeout_at(deadline, attempted)
        .await
        .unwrap_or_else(|_| Err(Failure::Retry("the attempt took too long".into())));
    let outcome = match attempted {
        Ok(()) => Settled::Delivered { at: Utc::now() },
        Err(Failure::Cancelled(reason)) => Settled::Cancelled { reason },
        Err(Failure::NotYet { due }) => Settled::Postponed { at: due },
        Err(Failure::Paused { wait, reason }) => {
            // Spread over a tenth of the wait: a pause would otherwise end with the target's
            // whole backlog due at one instant, claimed and handed back together.
            let wait = wait.mul_f64(rand::rng().random_range(1.0..1.1));
            let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
            Settled::Deferred { at, reason }
        }
        Err(Failure::Retry(error)) if delivery.attempts < state.limits.webhook_max_attempts as i32 => {
            Settled::RetryAt { at: Utc::now() + backoff(state, delivery.attempts), error }
        }
        Err(Failure::Retry(error) | Failure::Permanent(error)) => Settled::Failed { error },
    };
    record(state, &delivery, &outcome).await;
}

/// Records how an attempt ended, while the row is still this attempt's.
async fn record(state: &AppState, delivery: &notification_deliveries::Model, outcome: &Settled) {
    match settle::settle(&state.store, delivery.id, delivery.attempts, outcome).await {
        Ok(true) => count(delivery, outcome, state.notifier.email_delay),
        // The lease ran out and another worker took the row over: its outcome stands.
        Ok(false) => tracing::warn!(delivery = %delivery.id, "a delivery attempt outlived its lease"),
        // The lease ends and the row is claimed again: at least once, never lost.
        Err(error) => tracing::warn!(%error, delivery = %delivery.id, "cannot record a delivery attempt"),
    }
}

fn count(delivery: &notification_deliveries::Model, outcome: &Settled, email_delay: Duration) {
    let channel = delivery.channel.clone();
    let label = match outcome {
        Settled::Delivered { at } => {
            // From when it was due: an email waits its delay on purpose.
            let waits = if delivery.channel == "email" { email_delay } else { Duration::ZERO };
            let late = (*at - delivery.created_at).to_std().unwrap_or_default().saturating_sub(waits);
            metrics::histogram!("parley_notification_lateness_seconds", "channel" => channel.clone())
                .record(late.as_secs_f64());
            "delivered"
        }
        Settled::RetryAt { .. } => "retried",
        Settled::Failed { .. } => "failed",
        Settled::Cancelled { .. } => "cancelled",
        Settled::Released { .. } => "released",
        Settled::Postponed { .. } => "postponed",
        Settled::Deferred { .. } => "deferred",
    };
    metrics::counter!("parley_notification_attempts_total", "channel" => channel, "outcome" => label)
        .increment(1);
}

/// The wait before attempt `attempts + 1`: base × 2^(attempts − 1), capped, ±50 % jitter.
fn backoff(state: &AppState, attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(30);
    let wait = Duration::from_millis(state.limits.webhook_retry_base_ms.saturating_mul(1 << exponent));
    let jittered = wait.mul_f64(rand::rng().random_range(0.5..1.5)).min(MAX_BACKOFF);
    chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::hours(1))
}

/// A push: the message and its room come with the claim, the rest is `push`'s.
async fn attempt_push(
    state: &AppState,
    client: &reqwest::Client,
    subjects: &Subjects,
    delivery: &notification_deliveries::Model,
) -> Result<(), Failure> {
    let gone = |what: &str| Failure::Cancelled(format!("the {what} no longer exists"));
    let message =
        delivery.message_id.and_then(|id| subjects.messages.get(&id)).ok_or_else(|| gone("message"))?;
    let room = subjects.rooms.get(&message.room_id).ok_or_else(|| gone("room"))?;
    push::attempt(state, client, message, room, delivery).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_records_no_internal_text() {
        let error =
            ApiError::internal(anyhow::anyhow!("error returned from database: relation \"deliveries\""));
        let Failure::Retry(recorded) = Failure::reading(error) else { panic!("a read is retried") };
        assert_eq!(recorded, "reading the delivery: internal error");
        let refused = Failure::reading(ApiError::not_found("room"));
        assert!(matches!(refused, Failure::Retry(text) if text == "reading the delivery: room not found"));
    }
}

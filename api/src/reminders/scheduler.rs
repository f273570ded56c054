//! The reminder scheduler: one task per instance that fires each due reminder exactly once
//! across all instances, within about a second of its time.
//!
//! It sleeps until the next pending reminder is due and wakes early when a sooner one is
//! scheduled on any instance (`ReminderScheduled` on `Topic::Scheduler`). Firing is a claim: one
//! statement moves due rows from `pending` to `fired` and returns them, so only the instance
//! whose statement changed a row announces it (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
//! instances split a burst instead of queueing behind each other; SQLite: the single writer).
//! Reminders that fell due while every instance was down are claimed at the next start.
//!
//! The announcement (`RemindersDue` on the owner's user topic, one per owner and batch) is,
//! like every event, at most once: if it is lost, the reminder still shows as DUE in `viewer.reminders`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, DatabaseBackend, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::{broadcast::error::RecvError, watch};
use uuid::Uuid;

use crate::bus::{BusItem, Event, ReminderPayload, Topic, TopicSubscription};
use crate::db::{Store, columns};
use crate::error::ApiResult;
use crate::state::AppState;
use entity::enums::ReminderStatus;
use entity::reminders;

/// Rows claimed per statement: a burst of due reminders is fired in batches of this size.
const CLAIM_BATCH: u64 = 500;
/// Longest sleep without a due reminder: a safety net for a wake-up lost on the bus.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// Shortest sleep when a due reminder is still pending (another instance holds its lock), and
/// the pause after a database error.
const RETRY: Duration = Duration::from_millis(50);
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Starts the scheduler; it stops when `shutdown` flips. Subscribes before its first read, so
/// a reminder created while it starts wakes it.
pub async fn spawn(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut wakeups = state.bus.subscribe(Topic::Scheduler).await;
    tokio::spawn(async move {
        loop {
            let next = match fire_due(&state).await {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(error = %err, "reminder scheduler: cannot read due reminders; retrying");
                    Some(Utc::now() + ERROR_PAUSE)
                }
            };
            let sleep = match next {
                Some(at) => {
                    (at - Utc::now()).to_std().ok().filter(|d| !d.is_zero()).unwrap_or(RETRY).min(MAX_IDLE)
                }
                None => MAX_IDLE,
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                woken = sleep_unless_sooner(&mut wakeups, sleep, next) => if !woken { return },
            }
        }
    });
}

/// Sleeps for `sleep`, or until a reminder due before `next` is scheduled or the bus resyncs
/// (a wake-up may have been lost). False when the bus closed.
async fn sleep_unless_sooner(
    wakeups: &mut TopicSubscription,
    sleep: Duration,
    next: Option<DateTime<Utc>>,
) -> bool {
    let deadline = tokio::time::sleep(sleep);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return true,
            item = wakeups.receiver.recv() => match item {
                Ok(BusItem::Event(envelope)) => {
                    if let Event::ReminderScheduled { remind_at } = envelope.event
                        && next.is_none_or(|next| remind_at < next)
                    {
                        return true;
                    }
                }
                Ok(BusItem::Resync(_)) | Err(RecvError::Lagged(_)) => return true,
                Err(RecvError::Closed) => return false,
            },
        }
    }
}

/// Claims and announces every due reminder, then answers when the next one is due.
async fn fire_due(state: &AppState) -> ApiResult<Option<DateTime<Utc>>> {
    loop {
        let now = Utc::now();
        let fired = claim_due(&state.store, now).await?;
        let full = fired.len() as u64 == CLAIM_BATCH;
        announce(state, fired, now).await;
        if !full {
            return next_due(&state.store).await;
        }
    }
}

/// Moves up to `CLAIM_BATCH` due reminders from pending to fired, and returns them: these
/// are this instance's to announce, and no other instance's.
pub async fn claim_due(store: &Store, now: DateTime<Utc>) -> ApiResult<Vec<reminders::Model>> {
    let skip_locked = match store.backend() {
        DatabaseBackend::Postgres => " FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    let sql = format!(
        "UPDATE reminders SET status = 'fired', fired_at = $1 WHERE id IN (\
         SELECT id FROM reminders WHERE status = 'pending' AND remind_at <= $1 \
         ORDER BY remind_at LIMIT {CLAIM_BATCH}{skip_locked}) RETURNING {}",
        columns::<reminders::Entity>(None)
    );
    let tx = store.begin_write().await?;
    let rows = reminders::Entity::find().from_raw_sql(store.stmt(&sql, vec![now.into()])).all(&*tx).await?;
    tx.commit().await?;
    Ok(rows)
}

/// When the soonest pending reminder is due.
async fn next_due(store: &Store) -> ApiResult<Option<DateTime<Utc>>> {
    let soonest = reminders::Entity::find()
        .select_only()
        .column_as(reminders::Column::RemindAt.min(), "soonest")
        .filter(reminders::Column::Status.eq(ReminderStatus::Pending))
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(&store.db)
        .await?;
    Ok(soonest.flatten())
}

async fn announce(state: &AppState, fired: Vec<reminders::Model>, now: DateTime<Utc>) {
    if fired.is_empty() {
        return;
    }
    metrics::counter!("parley_reminders_fired_total").increment(fired.len() as u64);
    let mut by_owner: HashMap<Uuid, Vec<ReminderPayload>> = HashMap::new();
    for row in fired {
        let lateness = (now - row.remind_at).to_std().unwrap_or(Duration::ZERO);
        metrics::histogram!("parley_reminder_lateness_seconds").record(lateness.as_secs_f64());
        by_owner.entry(row.user_id).or_default().push(payload(row, now));
    }
    let publishes = by_owner
        .into_iter()
        .map(|(owner, reminders)| state.bus.publish(Topic::User(owner), Event::RemindersDue { reminders }));
    join_all(publishes).await;
}

/// The event payload of a fired row; `fired_at` for a row that does not say.
pub(super) fn payload(row: reminders::Model, fired_at: DateTime<Utc>) -> ReminderPayload {
    ReminderPayload {
        id: row.id,
        org_id: row.org_id,
        user_id: row.user_id,
        room_id: row.room_id,
        message_id: row.message_id,
        note: row.note,
        remind_at: row.remind_at,
        created_at: row.created_at,
        fired_at: row.fired_at.unwrap_or(fired_at),
    }
}

//! The outbox's statements: enqueue (inside a message's own transaction), claim, list, prune
//! (`settle` records how an attempt ended).
//!
//! A delivery is written in the transaction that stores the message, so a message is never
//! stored without its notifications nor notified without being stored. Workers on any instance
//! claim due rows in one transaction that reads the oldest and leases those it chooses
//! (`delivering` until `next_attempt_at`); PostgreSQL skips rows another claim holds
//! (`FOR UPDATE SKIP LOCKED`), SQLite has one writer. A worker that dies leaves its rows leased: they are claimed again when the lease
//! ends, which is the at-least-once edge the idempotency key (the row's id) covers.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, FromQueryResult, Order,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};

use super::slots::ClaimPlan;
use crate::db::{Store, columns};
use crate::error::{ApiError, ApiResult};
use crate::paging::{Keyset, TimeKey};
use entity::enums::DeliveryStatus;
use entity::notification_deliveries::{self as deliveries, Column};

/// How long a claimed row is its worker's: three attempt timeouts (connecting, the answer,
/// and recording it all fit in one).
pub fn lease(attempt_timeout: Duration) -> Duration {
    attempt_timeout * 3
}

/// When the claim that leased `delivery` read the clock (the lease ends `lease` after it): the
/// clock that also decides when a row handed back is due again.
pub fn claimed_at(delivery: &deliveries::Model, attempt_timeout: Duration) -> DateTime<Utc> {
    let lease = chrono::Duration::from_std(lease(attempt_timeout)).unwrap_or(chrono::Duration::minutes(1));
    delivery.next_attempt_at - lease
}

/// The webhooks that want a new message in room `$1`: the room's own, and the organisation's
/// org-wide ones when the room is a public channel (a DM or a private channel never leaves
/// the organisation through a webhook nobody in it chose for that room).
const MATCHING_WEBHOOKS: &str = "w.deleted_at IS NULL AND w.events LIKE '%,MESSAGE_ADDED,%' \
     AND (w.room_id = r.id OR (w.room_id IS NULL AND r.kind = 'channel' AND r.visibility = 'public'))";

/// PostgreSQL: a CTE of the one-statement send (`room` and `message` are its CTEs; `$1` the
/// room, `$2` the organisation, `$3` the time, `$5` the message id).
pub fn enqueue_message_added_cte() -> String {
    format!(
        "deliveries AS ( \
           INSERT INTO notification_deliveries (id, org_id, channel, webhook_id, event, room_id, \
             message_id, status, attempts, next_attempt_at, created_at) \
           SELECT gen_random_uuid(), $2, 'webhook', w.id, 'MESSAGE_ADDED', $1, $5, 'pending', 0, $3, $3 \
           FROM outgoing_webhooks w, room r, message \
           WHERE w.org_id = $2 AND {MATCHING_WEBHOOKS})"
    )
}

/// PostgreSQL: the same CTE in the statement that sends into several rooms at once
/// (`messages::statement::BATCH_SQL`; its `message` CTE returns each stored message).
pub fn enqueue_messages_added_cte() -> String {
    format!(
        "deliveries AS ( \
           INSERT INTO notification_deliveries (id, org_id, channel, webhook_id, event, room_id, \
             message_id, status, attempts, next_attempt_at, created_at) \
           SELECT gen_random_uuid(), r.org_id, 'webhook', w.id, 'MESSAGE_ADDED', r.id, message.id, \
             'pending', 0, message.created_at, message.created_at \
           FROM message JOIN room r ON r.id = message.room_id JOIN outgoing_webhooks w ON w.org_id = r.org_id \
           WHERE {MATCHING_WEBHOOKS})"
    )
}

/// The `MESSAGE_ADDED` deliveries of a message stored by statements of its own transaction
/// (a send on SQLite, an inbound customer message on either backend), to run in that
/// transaction.
pub fn message_added(
    store: &Store,
    room_id: uuid::Uuid,
    message_id: uuid::Uuid,
    at: DateTime<Utc>,
) -> Statement {
    // A new id is a uuid on PostgreSQL, 16 random bytes on SQLite (how it keeps a uuid).
    static POSTGRES: LazyLock<String> = LazyLock::new(|| message_added_statement("gen_random_uuid()"));
    static SQLITE: LazyLock<String> = LazyLock::new(|| message_added_statement("randomblob(16)"));
    let sql = if store.backend() == DatabaseBackend::Postgres { &POSTGRES } else { &SQLITE };
    store.stmt(sql, vec![room_id.into(), message_id.into(), at.into()])
}

fn message_added_statement(new_id: &str) -> String {
    format!(
        "INSERT INTO notification_deliveries (id, org_id, channel, webhook_id, event, room_id, \
           message_id, status, attempts, next_attempt_at, created_at) \
         SELECT {new_id}, r.org_id, 'webhook', w.id, 'MESSAGE_ADDED', r.id, $2, 'pending', 0, $3, $3 \
         FROM outgoing_webhooks w JOIN rooms r ON r.id = $1 AND w.org_id = r.org_id \
         WHERE {MATCHING_WEBHOOKS}"
    )
}

/// A `CONVERSATION_ASSIGNED` delivery for every webhook of the organisation that wants it
/// (org-wide ones, and those made for this conversation), in the transaction that assigns.
pub async fn enqueue_conversation_assigned(
    conn: &impl ConnectionTrait,
    store: &Store,
    org_id: uuid::Uuid,
    room_id: uuid::Uuid,
) -> ApiResult<()> {
    let id = match store.backend() {
        DatabaseBackend::Postgres => "gen_random_uuid()",
        _ => "randomblob(16)",
    };
    let sql = format!(
        "INSERT INTO notification_deliveries (id, org_id, channel, webhook_id, event, room_id, status, attempts, \
           next_attempt_at, created_at) \
         SELECT {id}, $1, 'webhook', w.id, 'CONVERSATION_ASSIGNED', $2, 'pending', 0, $3, $3 \
         FROM outgoing_webhooks w \
         WHERE w.org_id = $1 AND w.deleted_at IS NULL AND w.events LIKE '%,CONVERSATION_ASSIGNED,%' \
           AND (w.room_id IS NULL OR w.room_id = $2)"
    );
    conn.execute_raw(store.stmt(&sql, vec![org_id.into(), room_id.into(), Utc::now().into()])).await?;
    Ok(())
}

/// What a worker asks of a claim.
pub struct ClaimRequest<'a> {
    pub lease: Duration,
    pub max_attempts: u32,
    /// Only what this instance can send: one without SMTP leaves email rows to those with it.
    pub channels: &'a [&'static str],
    /// How many rows the worker can start at once, in all and of each organisation: a claim
    /// takes no more, so none can outlive its lease waiting for a free slot, and rows beyond an
    /// organisation's share stay pending as they were.
    pub plan: &'a mut ClaimPlan,
}

/// A due row, before it is chosen.
#[derive(FromQueryResult)]
struct Due {
    id: uuid::Uuid,
    org_id: uuid::Uuid,
}

/// Leases due deliveries (pending ones whose time came, and leased ones whose worker went
/// away), oldest due first, as many as the plan allows, and returns them, their attempt
/// counted. A leased row whose worker went away during its last allowed attempt fails
/// instead: a worker that dies at every attempt (a crash loop, a rolling deploy) cannot retry
/// without end.
///
/// Leases that ran out are first turned back into pending rows, so that every due row is
/// pending and the oldest are read in order from the `(status, next_attempt_at)` index: with
/// two statuses to read, PostgreSQL read and sorted the whole backlog for every claim. The
/// oldest due rows that no other claim holds are then read and locked, and those that fit
/// the plan leased.
///
/// Leases start and end on one clock, the database's (see [`expire_leases`]), and a lease
/// starts no sooner than the call: an attempt that counts its time from before the call
/// ends inside its lease whatever the claim waited for.
pub async fn claim(store: &Store, request: ClaimRequest<'_>) -> ApiResult<Vec<deliveries::Model>> {
    let ClaimRequest { lease, max_attempts, channels, plan } = request;
    let channels = channels.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
    let due = format!("status = 'pending' AND next_attempt_at <= $1 AND channel IN ({channels})");
    let tx = store.begin_write().await?;
    let now = expire_leases(&tx.txn, store, max_attempts).await?;

    // As many as could fit, locked until the claim commits, so that two workers claiming at
    // once read different rows rather than race for the same ones.
    let scan = plan.free();
    let lock = match store.backend() {
        DatabaseBackend::Postgres => {
            // Statistics lag behind a growing backlog (they last saw few rows pending), so
            // PostgreSQL would rather collect every due row and sort them than walk the index
            // in order and stop after `scan`: 4 ms a claim at a backlog of thousands.
            tx.txn.execute_unprepared("SET LOCAL enable_bitmapscan = off").await?;
            "FOR UPDATE SKIP LOCKED"
        }
        _ => "",
    };
    let mut values = vec![now.into()];
    let skip = if plan.passed_over().is_empty() {
        String::new()
    } else {
        let (condition, ids) = store.in_ids("org_id", plan.passed_over(), 2);
        values.extend(ids);
        format!("AND NOT ({condition})")
    };
    let sql = format!(
        "SELECT id, org_id FROM notification_deliveries WHERE {due} {skip} \
         ORDER BY next_attempt_at LIMIT {scan} {lock}"
    );
    let candidates = Due::find_by_statement(store.stmt(&sql, values)).all(&tx.txn).await?;
    let chosen: Vec<uuid::Uuid> =
        candidates.into_iter().filter(|row| plan.take(row.org_id)).map(|row| row.id).collect();
    if chosen.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }

    // The chosen rows are this transaction's (locked on PostgreSQL, one writer on SQLite), so
    // they are still due and are leased by their primary key alone. Rechecking that they are
    // due let PostgreSQL scan the whole backlog for each claim: new rows' times lie past its
    // statistics, so it guesses a handful are due and reads them all through the due index.
    let lease_end = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1));
    let (chosen, mut values) = store.in_ids("id", &chosen, 1);
    let lease_at = values.len() + 1;
    values.push(lease_end.into());
    let sql = format!(
        "UPDATE notification_deliveries SET status = 'delivering', attempts = attempts + 1, \
         next_attempt_at = ${lease_at} WHERE {chosen} RETURNING {}",
        columns::<deliveries::Entity>(None)
    );
    let claimed = deliveries::Model::find_by_statement(store.stmt(&sql, values)).all(&tx.txn).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// The clock every lease is read and written by.
#[derive(FromQueryResult)]
struct Clock {
    now: DateTime<Utc>,
}

/// Turns the leases that ran out back into pending rows (failed ones after the last allowed
/// attempt) and returns the time the claim goes by.
///
/// On PostgreSQL that is the database's `now()`: instances' clocks differ, and a lease one
/// instance wrote by its clock and another checked by a clock ahead of it would be taken
/// over while its attempt still sends. Rows another transaction holds (an attempt being
/// settled, another instance expiring) are skipped, not waited for: waiting held this claim
/// and its lock on the next rows, and two instances expiring the same rows in different
/// orders deadlocked. On SQLite every instance shares one machine's clock, read inside the
/// write gate, and one writer expires at a time.
async fn expire_leases(
    txn: &DatabaseTransaction,
    store: &Store,
    max_attempts: u32,
) -> ApiResult<DateTime<Utc>> {
    let set = "SET status = CASE WHEN attempts >= $1 THEN 'failed' ELSE 'pending' END, \
         last_error = CASE WHEN attempts >= $1 THEN 'the worker stopped during the last attempt' \
           ELSE 'the worker stopped during the attempt' END";
    let max_attempts = i64::from(max_attempts);
    if store.backend() == DatabaseBackend::Postgres {
        let sql = format!(
            "WITH expired AS (UPDATE notification_deliveries {set} WHERE id IN ( \
               SELECT id FROM notification_deliveries \
               WHERE status = 'delivering' AND next_attempt_at <= now() FOR UPDATE SKIP LOCKED)) \
             SELECT now() AS now"
        );
        let clock = Clock::find_by_statement(store.stmt(&sql, vec![max_attempts.into()])).one(txn).await?;
        return clock
            .map(|clock| clock.now)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no clock read")));
    }
    let now = Utc::now();
    let sql =
        format!("UPDATE notification_deliveries {set} WHERE status = 'delivering' AND next_attempt_at <= $2");
    txn.execute_raw(store.stmt(&sql, vec![max_attempts.into(), now.into()])).await?;
    Ok(now)
}

/// Whose deliveries a list shows.
#[derive(Clone, Copy)]
pub enum Whose {
    /// The organisation's own (webhooks), for its admins.
    Organisation(uuid::Uuid),
    /// One user's emails and pushes, for that user only: they tell which rooms they were
    /// written to in, and whether and when they read them.
    Recipient(uuid::Uuid),
}

/// Deliveries, newest first: one page beyond a delivery's place (when it was made, then its
/// id, so deliveries made while paging move no page), and whether more lie beyond it.
pub async fn list(
    store: &Store,
    whose: Whose,
    status: Option<DeliveryStatus>,
    channel: Option<&str>,
    page: Keyset<TimeKey>,
) -> ApiResult<(Vec<(TimeKey, deliveries::Model)>, bool)> {
    let mut query = match whose {
        Whose::Organisation(org_id) => {
            deliveries::Entity::find().filter(Column::OrgId.eq(org_id)).filter(Column::RecipientId.is_null())
        }
        Whose::Recipient(user_id) => deliveries::Entity::find().filter(Column::RecipientId.eq(user_id)),
    };
    if let Some(status) = status {
        query = query.filter(Column::Status.eq(status));
    }
    if let Some(channel) = channel {
        query = query.filter(Column::Channel.eq(channel));
    }
    let order = page.window.order(Order::Desc);
    let rows = query
        .filter(page.beyond(Column::CreatedAt, Column::Id, Order::Desc))
        .order_by(Column::CreatedAt, order.clone())
        .order_by(Column::Id, order)
        .limit(page.window.fetch_limit())
        .all(&store.db)
        .await?;
    let keyed = rows.into_iter().map(|row| (TimeKey { at: row.created_at, id: row.id }, row)).collect();
    Ok(page.window.split(keyed))
}

/// Settled deliveries deleted per statement by [`prune`].
const PRUNE_BATCH: u64 = 10_000;

/// Deletes the deliveries that settled (delivered, failed, cancelled) and whose last attempt's
/// lease ended before `before`, in batches; returns how many. Pending rows are never pruned.
pub async fn prune(store: &Store, before: DateTime<Utc>) -> ApiResult<u64> {
    let sql = format!(
        "DELETE FROM notification_deliveries WHERE id IN (SELECT id FROM notification_deliveries \
         WHERE status IN ('delivered', 'failed', 'cancelled') AND next_attempt_at < $1 LIMIT {PRUNE_BATCH})"
    );
    let mut pruned = 0;
    loop {
        let tx = store.begin_write().await?;
        let deleted = tx.execute_raw(store.stmt(&sql, vec![before.into()])).await?.rows_affected();
        tx.commit().await?;
        pruned += deleted;
        if deleted < PRUNE_BATCH {
            return Ok(pruned);
        }
    }
}

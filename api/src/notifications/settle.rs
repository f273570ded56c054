//! Recording how a delivery attempt ended: one conditional update, kept only while the row is
//! still the attempt's (its lease unexpired or not taken over), with an uncounted hand-back
//! keeping the one-pending-email-batch rule.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};

use crate::db::Store;
use crate::error::ApiResult;
use entity::enums::DeliveryStatus;
use entity::notification_deliveries::{self as deliveries, Column};

/// How an attempt ended.
pub enum Settled {
    Delivered {
        at: DateTime<Utc>,
    },
    RetryAt {
        at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
    },
    Cancelled {
        reason: String,
    },
    /// Not attempted: handed back as it was before the claim, its attempt uncounted, due now.
    Released {
        at: DateTime<Utc>,
    },
    /// Not due after all (an email batch whose oldest unread message came after it was due):
    /// handed back uncounted, due when that message has waited the delay.
    Postponed {
        at: DateTime<Utc>,
    },
    /// Not attempted because its target is paused: handed back uncounted, due when the
    /// pause ends, with the reason shown as its last error.
    Deferred {
        at: DateTime<Utc>,
        reason: String,
    },
}

/// Records how the attempt numbered `attempt` ended; false when the row is no longer that
/// attempt's (its lease ran out and another worker took it over, whose outcome stands).
pub async fn settle(store: &Store, id: uuid::Uuid, attempt: i32, outcome: &Settled) -> ApiResult<bool> {
    let mut change = deliveries::ActiveModel::default();
    match outcome {
        Settled::Delivered { at } => {
            change.status = Set(DeliveryStatus::Delivered);
            change.delivered_at = Set(Some(*at));
            change.last_error = Set(None);
        }
        Settled::RetryAt { at, error } => {
            change.status = Set(DeliveryStatus::Pending);
            change.next_attempt_at = Set(*at);
            change.last_error = Set(Some(error.clone()));
        }
        Settled::Failed { error } => {
            change.status = Set(DeliveryStatus::Failed);
            change.last_error = Set(Some(error.clone()));
        }
        Settled::Cancelled { reason } => {
            change.status = Set(DeliveryStatus::Cancelled);
            change.last_error = Set(Some(reason.clone()));
        }
        Settled::Released { at } | Settled::Postponed { at } => {
            change.status = Set(DeliveryStatus::Pending);
            change.next_attempt_at = Set(*at);
        }
        Settled::Deferred { at, reason } => {
            change.status = Set(DeliveryStatus::Pending);
            change.next_attempt_at = Set(*at);
            change.last_error = Set(Some(reason.clone()));
        }
    }
    let uncounted =
        matches!(outcome, Settled::Released { .. } | Settled::Postponed { .. } | Settled::Deferred { .. });
    let tx = store.begin_write().await?;
    let mut update = deliveries::Entity::update_many().set(change);
    if uncounted {
        absorb_later_batch(&tx.txn, id, attempt).await?;
        update = update.col_expr(Column::Attempts, Expr::col(Column::Attempts).sub(1));
    }
    let updated = update
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(DeliveryStatus::Delivering))
        .filter(Column::Attempts.eq(attempt))
        .exec(&tx.txn)
        .await?;
    tx.commit().await?;
    Ok(updated.rows_affected == 1)
}

/// An email batch handed back uncounted is its room's pending batch again. A batch written
/// during the attempt (a message sent meanwhile found none pending) joins it, as that message
/// would have joined it: one pending batch per recipient and room (a partial unique index,
/// which the handed-back row would otherwise break, failing the record), and this one covers
/// from its first message on.
async fn absorb_later_batch(txn: &DatabaseTransaction, id: uuid::Uuid, attempt: i32) -> ApiResult<()> {
    let ours = deliveries::Entity::find_by_id(id)
        .filter(Column::Channel.eq("email"))
        .filter(Column::Status.eq(DeliveryStatus::Delivering))
        .filter(Column::Attempts.eq(attempt))
        .one(txn)
        .await?;
    let Some((recipient, room)) = ours.and_then(|row| row.recipient_id.zip(row.room_id)) else {
        return Ok(());
    };
    deliveries::Entity::delete_many()
        .filter(Column::Channel.eq("email"))
        .filter(Column::Status.eq(DeliveryStatus::Pending))
        .filter(Column::Attempts.eq(0))
        .filter(Column::RecipientId.eq(recipient))
        .filter(Column::RoomId.eq(room))
        .exec(txn)
        .await?;
    Ok(())
}

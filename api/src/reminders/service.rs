//! Creating, moving, completing, cancelling and listing the viewer's reminders. Each user
//! sees only their own: another user's reminder is NOT_FOUND, like one that does not exist.
//!
//! A change takes the reminder's row lock (PostgreSQL; SQLite's writer is single), so it never
//! interleaves with the scheduler claiming the same row: the scheduler skips locked rows and
//! picks them up on its next pass if they are still due.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use uuid::Uuid;

use super::input::{RemindAt, ReminderNote};
use crate::auth::Viewer;
use crate::bus::{Event, Topic};
use crate::db::{self, Store, WriteTx};
use crate::error::{ApiError, ApiResult};
use crate::messages::service as messages;
use crate::paging::{Keyset, TimeKey};
use crate::rooms::access;
use crate::state::Ctx;
use entity::enums::ReminderStatus;
use entity::reminders;

/// What a new reminder points at: a message, a room, or (neither) only its note.
pub struct NewReminder {
    pub message_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    pub remind_at: RemindAt,
    pub note: Option<ReminderNote>,
}

#[tracing::instrument(skip(cx, new), fields(viewer = %cx.viewer.id))]
pub async fn create(cx: &Ctx<'_>, new: NewReminder) -> ApiResult<reminders::Model> {
    let store = &cx.app.store;
    let room_id = target_room(store, cx.viewer, new.message_id, new.room_id).await?;
    let tx = store.begin_write().await?;
    ensure_room_for_one_more(&tx, cx).await?;
    let now = db::now();
    let row = reminders::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(cx.viewer.org_id),
        user_id: Set(cx.viewer.id),
        room_id: Set(room_id),
        message_id: Set(new.message_id),
        note: Set(new.note.map(ReminderNote::into_string)),
        remind_at: Set(new.remind_at.get()),
        status: Set(ReminderStatus::Pending),
        created_at: Set(now),
        fired_at: Set(None),
        completed_at: Set(None),
    }
    .insert(&*tx)
    .await?;
    tx.commit().await?;
    announce_scheduled(cx, &row).await;
    Ok(row)
}

/// Moves a pending or due reminder to `until`; it is pending again.
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn snooze(cx: &Ctx<'_>, id: Uuid, until: RemindAt) -> ApiResult<reminders::Model> {
    let tx = cx.app.store.begin_write().await?;
    let row = own_locked(&tx, cx.viewer, id).await?;
    match row.status {
        ReminderStatus::Pending => {}
        ReminderStatus::Fired => ensure_room_for_one_more(&tx, cx).await?,
        ReminderStatus::Done | ReminderStatus::Cancelled => {
            return Err(ApiError::bad_input("only a pending or due reminder can be snoozed"));
        }
    }
    let mut active: reminders::ActiveModel = row.into();
    active.remind_at = Set(until.get());
    active.status = Set(ReminderStatus::Pending);
    active.fired_at = Set(None);
    let row = active.update(&*tx).await?;
    tx.commit().await?;
    announce_scheduled(cx, &row).await;
    Ok(row)
}

/// Marks a pending or due reminder done. Completing a done one changes nothing.
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn complete(cx: &Ctx<'_>, id: Uuid) -> ApiResult<reminders::Model> {
    settle(cx, id, ReminderStatus::Done).await
}

/// Cancels a pending or due reminder. Cancelling a cancelled one changes nothing.
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn cancel(cx: &Ctx<'_>, id: Uuid) -> ApiResult<reminders::Model> {
    settle(cx, id, ReminderStatus::Cancelled).await
}

/// Ends a reminder as `outcome` (done or cancelled), once: the other outcome is refused.
async fn settle(cx: &Ctx<'_>, id: Uuid, outcome: ReminderStatus) -> ApiResult<reminders::Model> {
    let tx = cx.app.store.begin_write().await?;
    let row = own_locked(&tx, cx.viewer, id).await?;
    match row.status {
        status if status == outcome => return Ok(row),
        ReminderStatus::Pending | ReminderStatus::Fired => {}
        ReminderStatus::Done => return Err(ApiError::bad_input("the reminder is already done")),
        ReminderStatus::Cancelled => return Err(ApiError::bad_input("the reminder was cancelled")),
    }
    let mut active: reminders::ActiveModel = row.into();
    active.status = Set(outcome);
    if outcome == ReminderStatus::Done {
        active.completed_at = Set(Some(db::now()));
    }
    let row = active.update(&*tx).await?;
    tx.commit().await?;
    Ok(row)
}

/// The viewer's reminders in `statuses`: pending and due ones soonest first, settled ones
/// latest first. One page beyond a reminder's place (its due time, then its id: completing
/// or snoozing reminders while paging moves no page), and whether more lie beyond it.
pub async fn list(
    store: &Store,
    viewer: &Viewer,
    statuses: &[ReminderStatus],
    page: Keyset<TimeKey>,
) -> ApiResult<(Vec<(TimeKey, reminders::Model)>, bool)> {
    let settled = statuses.iter().all(|s| matches!(s, ReminderStatus::Done | ReminderStatus::Cancelled));
    let natural = if settled { Order::Desc } else { Order::Asc };
    let order = page.window.order(natural.clone());
    let rows = reminders::Entity::find()
        .filter(reminders::Column::UserId.eq(viewer.id))
        .filter(reminders::Column::Status.is_in(statuses.iter().copied()))
        .filter(page.beyond(reminders::Column::RemindAt, reminders::Column::Id, natural))
        .order_by(reminders::Column::RemindAt, order.clone())
        .order_by(reminders::Column::Id, order)
        .limit(page.window.fetch_limit())
        .all(&store.db)
        .await?;
    let keyed = rows.into_iter().map(|row| (TimeKey { at: row.remind_at, id: row.id }, row)).collect();
    Ok(page.window.split(keyed))
}

/// The viewer's due reminders fired at or after `since`: the latest `limit` of them, in the
/// order they fired.
pub async fn fired_since(
    store: &Store,
    viewer: &Viewer,
    since: DateTime<Utc>,
    limit: u64,
) -> ApiResult<Vec<reminders::Model>> {
    let mut rows = reminders::Entity::find()
        .filter(reminders::Column::UserId.eq(viewer.id))
        .filter(reminders::Column::Status.eq(ReminderStatus::Fired))
        .filter(reminders::Column::FiredAt.gte(since))
        .order_by_desc(reminders::Column::FiredAt)
        .limit(limit)
        .all(&store.db)
        .await?;
    rows.reverse();
    Ok(rows)
}

/// The room a reminder belongs to: the message's (which the viewer must be able to read, and
/// which must not be deleted: there would be nothing to come back to), or the room given
/// (likewise). Both given: the message must be in that room.
async fn target_room(
    store: &Store,
    viewer: &Viewer,
    message_id: Option<Uuid>,
    room_id: Option<Uuid>,
) -> ApiResult<Option<Uuid>> {
    match (message_id, room_id) {
        (Some(message_id), room_id) => {
            let (message, _) = messages::readable(store, viewer, message_id).await?;
            if message.deleted_at.is_some() {
                return Err(ApiError::bad_input("a deleted message cannot get a reminder"));
            }
            if room_id.is_some_and(|room_id| room_id != message.room_id) {
                return Err(ApiError::bad_input("the message is not in that room"));
            }
            Ok(Some(message.room_id))
        }
        (None, Some(room_id)) => Ok(Some(access::readable(store, viewer, room_id).await?.room.id)),
        (None, None) => Ok(None),
    }
}

/// The viewer's reminder `id`, locked for this transaction; or NOT_FOUND.
async fn own_locked(tx: &WriteTx, viewer: &Viewer, id: Uuid) -> ApiResult<reminders::Model> {
    reminders::Entity::find_by_id(id)
        .filter(reminders::Column::UserId.eq(viewer.id))
        .lock_exclusive()
        .one(&**tx)
        .await?
        .ok_or_else(|| ApiError::not_found("reminder"))
}

/// Refuses one more pending reminder beyond the limit. The user's row, held (`hold_row`),
/// makes two racing creations count one after the other.
async fn ensure_room_for_one_more(tx: &WriteTx, cx: &Ctx<'_>) -> ApiResult<()> {
    cx.app.store.hold_row(tx, "users", cx.viewer.id).await?;
    let pending = reminders::Entity::find()
        .filter(reminders::Column::UserId.eq(cx.viewer.id))
        .filter(reminders::Column::Status.eq(ReminderStatus::Pending))
        .count(&**tx)
        .await?;
    let max = cx.app.limits.max_pending_reminders;
    if pending >= max {
        return Err(ApiError::bad_input(format!(
            "at most {max} reminders may be pending; complete or cancel one"
        )));
    }
    Ok(())
}

/// Tells every instance's scheduler, so one sleeping past `remind_at` wakes up in time.
async fn announce_scheduled(cx: &Ctx<'_>, row: &reminders::Model) {
    cx.app.bus.publish(Topic::Scheduler, Event::ReminderScheduled { remind_at: row.remind_at }).await;
}

//! Muting a room, per member: until a time, or (no time) until unmuted. A muted room still
//! counts unread messages; what changes is `notify` on the viewer's `unreadCountChanged`,
//! false while the room is muted. The change is announced on the member's user topic, so
//! their `unreadCountChanged` feeds on every instance apply it without a query per event
//! (other devices see `isMuted` when they next read the room).

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::access;
use crate::bus::{Event, Topic};
use crate::error::{ApiError, ApiResult};
use crate::state::Ctx;
use crate::times;
use entity::{room_members, rooms};

/// What "until unmuted" is stored as: a time no one reaches.
pub fn forever() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Mutes a room the viewer is a member of until `until` (in the future), or until unmuted.
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn mute(cx: &Ctx<'_>, room_id: Uuid, until: Option<DateTime<Utc>>) -> ApiResult<rooms::Model> {
    let until = until.map(|at| times::storable(at, "until")).transpose()?;
    let until = match until {
        Some(until) if until <= Utc::now() => return Err(ApiError::bad_input("until must be in the future")),
        Some(until) => until,
        None => forever(),
    };
    set(cx, room_id, Some(until)).await
}

/// Unmutes a room the viewer is a member of. Idempotent.
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn unmute(cx: &Ctx<'_>, room_id: Uuid) -> ApiResult<rooms::Model> {
    set(cx, room_id, None).await
}

async fn set(cx: &Ctx<'_>, room_id: Uuid, muted_until: Option<DateTime<Utc>>) -> ApiResult<rooms::Model> {
    let store = &cx.app.store;
    let (room, membership) = access::readable(store, cx.viewer, room_id).await?.require_member()?;
    if membership.muted_until == muted_until {
        return Ok(room);
    }
    let tx = store.begin_write().await?;
    room_members::Entity::update_many()
        .col_expr(room_members::Column::MutedUntil, Expr::value(muted_until))
        .filter(room_members::Column::RoomId.eq(room.id))
        .filter(room_members::Column::UserId.eq(cx.viewer.id))
        .exec(&tx.txn)
        .await?;
    tx.commit().await?;
    cx.app.bus.publish(Topic::User(cx.viewer.id), Event::MuteChanged { room_id: room.id }).await;
    Ok(room)
}

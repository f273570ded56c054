//! Joining, leaving, adding and removing members. New members start with everything read:
//! joining a busy channel should not greet you with its whole history as unread. A private
//! channel stays reachable by its members: nobody else sees it, so its last active member
//! cannot leave it, archived or not (archiving frees its name), and when no active owner
//! remains (one left, was removed or deactivated), the room goes to a member.

use std::collections::HashSet;

use sea_orm::ActiveValue::Unchanged;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set, TryInsertResult,
};
use uuid::Uuid;

use super::access;
use super::service;
use crate::bus::{Event, EventBus, MembershipChange, RoomChange, Topic};
use crate::db::{self, Store};
use crate::error::{ApiError, ApiResult};
use crate::state::Ctx;
use crate::users::service as users;
use entity::enums::{MemberRole, RoomKind, Visibility};
use entity::{room_members, rooms, support_inbox_members, users as user_rows};

pub async fn insert(
    conn: &impl ConnectionTrait,
    room_id: Uuid,
    user_id: Uuid,
    role: MemberRole,
    last_read_seq: i64,
) -> ApiResult<()> {
    room_members::ActiveModel {
        room_id: Set(room_id),
        user_id: Set(user_id),
        role: Set(role),
        joined_at: Set(db::now()),
        last_read_seq: Set(last_read_seq),
        last_read_at: Set(None),
        favorite_at: Set(None),
        muted_until: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(())
}

#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn join(cx: &Ctx<'_>, room_id: Uuid) -> ApiResult<rooms::Model> {
    let (store, bus, viewer) = (&cx.app.store, &cx.app.bus, cx.viewer);
    let access = access::readable(store, viewer, room_id).await?;
    if access.membership.is_some() {
        return Ok(access.room);
    }
    access.require_writable()?;
    // `readable` lets non-members see only public channels, and admins support
    // conversations (which their first reply also joins).
    add(store, bus, &access.room, &[viewer.id]).await?;
    Ok(access.room)
}

#[tracing::instrument(skip(cx, user_ids), fields(viewer = %cx.viewer.id))]
pub async fn add_members(cx: &Ctx<'_>, room_id: Uuid, user_ids: Vec<Uuid>) -> ApiResult<rooms::Model> {
    let (store, bus, viewer) = (&cx.app.store, &cx.app.bus, cx.viewer);
    let (room, _) = access::writable(store, viewer, room_id).await?;
    if room.kind == RoomKind::Direct {
        return Err(ApiError::bad_input("a direct room's members are fixed; open another one"));
    }
    if room.kind == RoomKind::Support {
        return Err(ApiError::bad_input(
            "an inbox's agents are its conversations' members: use addInboxMember",
        ));
    }
    users::require_in_org(store, viewer.org_id, &user_ids).await?;
    add(store, bus, &room, &user_ids).await?;
    Ok(room)
}

/// Adds whoever of `user_ids` is not a member yet, and announces only those.
pub(crate) async fn add(
    store: &Store,
    bus: &EventBus,
    room: &rooms::Model,
    user_ids: &[Uuid],
) -> ApiResult<()> {
    let tx = store.begin_write().await?;
    let joined = add_in(&tx.txn, room, user_ids).await?;
    tx.commit().await?;
    announce_joined(bus, joined).await;
    Ok(())
}

/// Who joined a room in a transaction: announced once it commits ([`announce_joined`]).
pub(crate) struct Joined {
    room_id: Uuid,
    seq: i64,
    user_ids: Vec<Uuid>,
}

/// [`add`]'s writes, in the caller's transaction (an agent joining every conversation of an
/// inbox under its lock, say).
pub(crate) async fn add_in(
    txn: &DatabaseTransaction,
    room: &rooms::Model,
    user_ids: &[Uuid],
) -> ApiResult<Joined> {
    let existing: HashSet<Uuid> = room_members::Entity::find()
        .filter(room_members::Column::RoomId.eq(room.id))
        .filter(room_members::Column::UserId.is_in(user_ids.iter().copied()))
        .all(txn)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    let mut new_ids: Vec<Uuid> = user_ids.iter().copied().filter(|id| !existing.contains(id)).collect();
    new_ids.sort();
    new_ids.dedup();
    let mut joined = Joined { room_id: room.id, seq: room.last_seq, user_ids: Vec::new() };
    if new_ids.is_empty() {
        return Ok(joined);
    }
    // Read the seq inside the write transaction so the watermark matches the join moment.
    joined.seq = rooms::Entity::find_by_id(room.id).one(txn).await?.map_or(room.last_seq, |r| r.last_seq);
    let now = db::now();
    let rows = new_ids.iter().map(|user_id| room_members::ActiveModel {
        room_id: Set(room.id),
        user_id: Set(*user_id),
        role: Set(MemberRole::Member),
        joined_at: Set(now),
        last_read_seq: Set(joined.seq),
        last_read_at: Set(None),
        favorite_at: Set(None),
        muted_until: Set(None),
    });
    // A concurrent join of the same user (another instance) is not an error: they are in, and
    // that join announces them, so only the rows written here are.
    let written = room_members::Entity::insert_many(rows)
        .on_conflict_do_nothing_on([room_members::Column::RoomId, room_members::Column::UserId])
        .exec_with_returning_keys(txn)
        .await?;
    if let TryInsertResult::Inserted(keys) = written {
        joined.user_ids = keys.into_iter().map(|(_, user_id)| user_id).collect();
    }
    Ok(joined)
}

/// Announces the members [`add_in`] wrote, once their transaction committed.
pub(crate) async fn announce_joined(bus: &EventBus, joined: Joined) {
    let Joined { room_id, seq, user_ids } = joined;
    if user_ids.is_empty() {
        return;
    }
    for user_id in &user_ids {
        let event = Event::MembershipChanged { room_id, change: MembershipChange::Joined, seq };
        bus.publish(Topic::User(*user_id), event).await;
    }
    announce_members_changed(bus, room_id, user_ids, Vec::new()).await;
}

#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn leave(cx: &Ctx<'_>, room_id: Uuid) -> ApiResult<()> {
    let (store, bus, viewer) = (&cx.app.store, &cx.app.bus, cx.viewer);
    let access = access::readable(store, viewer, room_id).await?;
    if access.room.kind == RoomKind::Direct {
        return Err(ApiError::bad_input("direct rooms cannot be left"));
    }
    if access.membership.is_none() {
        return Err(ApiError::not_found("membership"));
    }
    // The inbox decides who is in its conversations: an agent who left one would keep it
    // assigned and counted against their capacity, yet could no longer read it. Others (an
    // admin who joined by replying) may leave.
    if let Some(inbox_id) = access.room.inbox_id.filter(|_| access.room.kind == RoomKind::Support) {
        let agent = support_inbox_members::Entity::find_by_id((inbox_id, viewer.id)).one(&store.db).await?;
        if agent.is_some() {
            return Err(ApiError::bad_input(
                "an inbox's agents are its conversations' members: leave the inbox (removeInboxMember)",
            ));
        }
    }
    remove(store, bus, &access.room, viewer.id, MembershipChange::Left).await
}

#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn remove_member(cx: &Ctx<'_>, room_id: Uuid, user_id: Uuid) -> ApiResult<rooms::Model> {
    let (store, bus, viewer) = (&cx.app.store, &cx.app.bus, cx.viewer);
    let access = access::readable(store, viewer, room_id).await?;
    if access.room.kind == RoomKind::Direct {
        return Err(ApiError::bad_input("a direct room's members are fixed"));
    }
    if access.room.kind == RoomKind::Support {
        return Err(ApiError::bad_input(
            "an inbox's agents are its conversations' members: use removeInboxMember",
        ));
    }
    if !access.can_manage(viewer) {
        return Err(ApiError::forbidden("only the room's owners and admins may remove members"));
    }
    access.require_writable()?;
    if room_members::Entity::find_by_id((room_id, user_id)).one(&store.db).await?.is_none() {
        return Err(ApiError::not_found("member"));
    }
    let change = if user_id == viewer.id { MembershipChange::Left } else { MembershipChange::Revoked };
    remove(store, bus, &access.room, user_id, change).await?;
    Ok(access.room)
}

async fn remove(
    store: &Store,
    bus: &EventBus,
    room: &rooms::Model,
    user_id: Uuid,
    change: MembershipChange,
) -> ApiResult<()> {
    let tx = store.begin_write().await?;
    if is_private_channel(room) {
        // The heir's new role is announced with the removal (members changed).
        keep_reachable(store, &tx.txn, room, user_id, change == MembershipChange::Left).await?;
    }
    room_members::Entity::delete_by_id((room.id, user_id)).exec(&tx.txn).await?;
    tx.commit().await?;
    announce_removed(bus, room, user_id, change).await;
    Ok(())
}

/// Announces that `user_id` is no longer a member of `room` (committed by the caller). The
/// user topic first: the removed member's subscriptions stop before anything else about the
/// room is announced.
pub(crate) async fn announce_removed(
    bus: &EventBus,
    room: &rooms::Model,
    user_id: Uuid,
    change: MembershipChange,
) {
    let event = Event::MembershipChanged { room_id: room.id, change, seq: room.last_seq };
    bus.publish(Topic::User(user_id), event).await;
    announce_members_changed(bus, room.id, Vec::new(), vec![user_id]).await;
}

fn is_private_channel(room: &rooms::Model) -> bool {
    room.kind == RoomKind::Channel && room.visibility == Visibility::Private
}

/// Who keeps a private channel once a member has gone.
enum Keeper {
    /// An active member who already manages it.
    Manager,
    /// The active member who joined first, just made its owner.
    Heir,
    /// Nobody: no active member is left.
    Nobody,
}

/// Before `leaving` leaves a private channel (or is removed, or was deactivated), in that
/// change's transaction: nobody outside such a room sees it (org admins included), so its
/// last active member may not leave it (`refuse_last`: it would block its name, and its
/// `contextRef`, for good: they archive it instead, which frees the name), and when no active
/// member left manages it, the active member who joined first becomes its owner (no one
/// else could rename, archive or manage it). Deactivated members count for neither. On
/// PostgreSQL the room's row is held, so two members leaving at once see each other.
async fn keep_reachable(
    store: &Store,
    txn: &DatabaseTransaction,
    room: &rooms::Model,
    leaving: Uuid,
    refuse_last: bool,
) -> ApiResult<Keeper> {
    store.hold_row(txn, "rooms", room.id).await?;
    let active = user_rows::Entity::find()
        .filter(user_rows::Column::DeactivatedAt.is_null())
        .select_only()
        .column(user_rows::Column::Id)
        .into_query();
    let staying = room_members::Entity::find()
        .filter(room_members::Column::RoomId.eq(room.id))
        .filter(room_members::Column::UserId.ne(leaving))
        .filter(room_members::Column::UserId.in_subquery(active))
        .order_by_asc(room_members::Column::JoinedAt)
        .order_by_asc(room_members::Column::UserId)
        .all(txn)
        .await?;
    let Some(heir) = staying.first() else {
        if refuse_last {
            return Err(ApiError::bad_input(
                "a private channel keeps its last member: archive it (archiveRoom) instead of leaving",
            ));
        }
        return Ok(Keeper::Nobody);
    };
    if staying.iter().any(|m| matches!(m.role, MemberRole::Owner | MemberRole::Admin)) {
        return Ok(Keeper::Manager);
    }
    let promoted = room_members::ActiveModel {
        room_id: Unchanged(room.id),
        user_id: Unchanged(heir.user_id),
        role: Set(MemberRole::Owner),
        ..Default::default()
    };
    promoted.update(txn).await?;
    Ok(Keeper::Heir)
}

/// After `user_id` was deactivated, each private channel they were in: one left without an
/// active manager gets an heir as if they had left it ([`keep_reachable`]), or its members
/// could neither manage nor archive it; one left without an active member is archived, as
/// its last member would have had to, which frees its name.
pub(crate) async fn hand_over_private_channels(cx: &Ctx<'_>, user_id: Uuid) -> ApiResult<()> {
    let (store, bus) = (&cx.app.store, &cx.app.bus);
    let theirs = rooms::Entity::find()
        .filter(rooms::Column::Kind.eq(RoomKind::Channel))
        .filter(rooms::Column::Visibility.eq(Visibility::Private))
        .filter(
            rooms::Column::Id.in_subquery(
                room_members::Entity::find()
                    .filter(room_members::Column::UserId.eq(user_id))
                    .select_only()
                    .column(room_members::Column::RoomId)
                    .into_query(),
            ),
        )
        .all(&store.db)
        .await?;
    for room in theirs {
        let tx = store.begin_write().await?;
        let keeper = keep_reachable(store, &tx.txn, &room, user_id, false).await?;
        let archive = matches!(keeper, Keeper::Nobody) && room.archived_at.is_none();
        if archive {
            service::archive_in(&tx.txn, room.clone()).await?;
        }
        tx.commit().await?;
        match keeper {
            Keeper::Heir => {
                let change = Event::RoomChanged { room_id: room.id, change: RoomChange::MembersChanged };
                bus.publish(Topic::Room(room.id), change).await;
            }
            Keeper::Nobody if archive => service::announce_archived(cx, room.id).await,
            _ => {}
        }
    }
    Ok(())
}

/// Tells the room's subscribers that its members changed, and the `presenceChanged` feeds
/// that follow who shares the room who it was (on a topic of their own: they need no
/// messages).
async fn announce_members_changed(bus: &EventBus, room_id: Uuid, joined: Vec<Uuid>, left: Vec<Uuid>) {
    bus.publish(Topic::Members(room_id), Event::RoomMembers { room_id, joined, left }).await;
    bus.publish(Topic::Room(room_id), Event::RoomChanged { room_id, change: RoomChange::MembersChanged })
        .await;
}

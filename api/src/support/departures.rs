//! Agents and admins leaving support conversations: an agent removed from an inbox, a
//! deactivated agent, and an admin who lost the role.
//!
//! An inbox's agents are members of its conversations; an org admin becomes one of a
//! conversation they reply to. Whoever is neither any longer leaves it, so that they stop
//! reading it, stop counting it unread and stop being notified; their open conversations go
//! back to the queue.

use sea_orm::sea_query::{Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use super::{assign, conversations};
use crate::bus::{ConversationChangePayload, MembershipChange};
use crate::error::{ApiError, ApiResult};
use crate::rooms::membership;
use crate::state::Ctx;
use entity::enums::{ConversationStatus, RoomKind};
use entity::{room_members, rooms, support_inbox_members as members, users};

/// Removes an agent from the inbox and its conversations (see `inboxes::remove_member`).
pub(super) async fn remove_agent(cx: &Ctx<'_>, inbox_id: Uuid, user_id: Uuid) -> ApiResult<()> {
    let tx = cx.app.store.begin_write().await?;
    // Under the inbox's lock: no decision picks them while they leave.
    let locked = assign::lock_inbox(&cx.app.store, &tx.txn, inbox_id).await?;
    if locked.round_robin_last_agent_id == Some(user_id) {
        assign::pass_turn_back(&tx.txn, &locked, user_id).await?;
    }
    let removed = members::Entity::delete_by_id((inbox_id, user_id)).exec(&tx.txn).await?;
    if removed.rows_affected == 0 {
        return Err(ApiError::not_found("inbox member"));
    }
    let changes = hand_back(cx, &tx.txn, inbox_id, user_id).await?;
    let left = conversations_joined_by(&tx.txn, inbox_id, user_id).await?;
    room_members::Entity::delete_many()
        .filter(room_members::Column::UserId.eq(user_id))
        .filter(room_members::Column::RoomId.in_subquery(support_rooms_of(inbox_id)))
        .exec(&tx.txn)
        .await?;
    tx.commit().await?;
    for (room_id, change) in changes {
        conversations::publish(cx.app, room_id, change).await;
    }
    for room in &left {
        membership::announce_removed(&cx.app.bus, room, user_id, MembershipChange::Revoked).await;
    }
    conversations::drain_quietly(cx.app, inbox_id, None).await;
    Ok(())
}

/// A deactivated agent's open conversations (or those of an agent made an integration
/// account) go back to their inboxes' queues (and to other agents, if the strategy assigns),
/// as when an agent leaves an inbox. They stay an agent of it, never chosen again
/// (`assign::still_agent`). A repeat hands back nothing more.
pub async fn release_deactivated(cx: &Ctx<'_>, user_id: Uuid) -> ApiResult<()> {
    let agent_of =
        members::Entity::find().filter(members::Column::UserId.eq(user_id)).all(&cx.app.store.db).await?;
    for inbox_id in agent_of.into_iter().map(|m| m.inbox_id) {
        let tx = cx.app.store.begin_write().await?;
        assign::lock_inbox(&cx.app.store, &tx.txn, inbox_id).await?;
        let changes = hand_back(cx, &tx.txn, inbox_id, user_id).await?;
        tx.commit().await?;
        for (room_id, change) in changes {
            conversations::publish(cx.app, room_id, change).await;
        }
        conversations::drain_quietly(cx.app, inbox_id, None).await;
    }
    Ok(())
}

/// An admin who lost the role leaves the conversations they joined by replying in inboxes
/// they are not an agent of: they no longer read those (as in Chatwoot, where an agent sees
/// only their inboxes' conversations), so they stop counting them unread and being notified
/// there. Their sockets reconnect on the new role (`http::ws::viewer_checks`). A repeat
/// leaves nothing more; a promotion that committed meanwhile leaves them where they are.
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn release_demoted(cx: &Ctx<'_>, user_id: Uuid) -> ApiResult<()> {
    let tx = cx.app.store.begin_write().await?;
    // Held, then read again: the role decided is the one committed last.
    cx.app.store.hold_row(&tx.txn, "users", user_id).await?;
    let user = users::Entity::find_by_id(user_id).one(&tx.txn).await?;
    if user.is_none_or(|user| user.role.is_admin()) {
        return Ok(());
    }
    // The rows deleted are the rooms announced, whatever joined between two statements.
    let left = room_members::Entity::delete_many()
        .filter(room_members::Column::UserId.eq(user_id))
        .filter(room_members::Column::RoomId.in_subquery(conversations_outside_inboxes_of(user_id)))
        .exec_with_returning(&tx.txn)
        .await?;
    if left.is_empty() {
        return Ok(());
    }
    let rooms = rooms::Entity::find()
        .filter(rooms::Column::Id.is_in(left.iter().map(|member| member.room_id)))
        .all(&tx.txn)
        .await?;
    tx.commit().await?;
    for room in &rooms {
        membership::announce_removed(&cx.app.bus, room, user_id, MembershipChange::Revoked).await;
    }
    Ok(())
}

/// Unassigns `agent`'s conversations of the inbox that are not resolved, inside a transaction
/// holding the inbox's lock; resolved ones keep their agent (the metrics' history). Returns
/// the changes to publish once committed.
async fn hand_back(
    cx: &Ctx<'_>,
    tx: &DatabaseTransaction,
    inbox_id: Uuid,
    agent: Uuid,
) -> ApiResult<Vec<(Uuid, ConversationChangePayload)>> {
    let mut theirs = rooms::Entity::find()
        .filter(rooms::Column::InboxId.eq(inbox_id))
        .filter(rooms::Column::AssigneeId.eq(agent))
        .filter(rooms::Column::Status.ne(ConversationStatus::Resolved));
    // Held (after the inbox, as every writer): a snooze running out meanwhile skips them
    // rather than having its reopening overwritten by a status read before it.
    if cx.app.store.backend() == DatabaseBackend::Postgres {
        theirs = theirs.lock_exclusive();
    }
    let theirs = theirs.all(tx).await?;
    let by = cx.viewer.id.to_string();
    let mut changes = Vec::with_capacity(theirs.len());
    for room in &theirs {
        let status = room.status.unwrap_or(ConversationStatus::Open);
        let change =
            conversations::transition(tx, room, status, room.snoozed_until, None, by.clone()).await?;
        changes.push((room.id, change));
    }
    Ok(changes)
}

/// The inbox's conversations that `user_id` is a member of.
async fn conversations_joined_by(
    conn: &impl ConnectionTrait,
    inbox_id: Uuid,
    user_id: Uuid,
) -> ApiResult<Vec<rooms::Model>> {
    let rows = rooms::Entity::find()
        .filter(rooms::Column::Id.in_subquery(support_rooms_of(inbox_id)))
        .filter(rooms::Column::Id.in_subquery(rooms_joined_by(user_id)))
        .all(conn)
        .await?;
    Ok(rows)
}

/// The ids of the inbox's conversations, as a subquery.
fn support_rooms_of(inbox_id: Uuid) -> SelectStatement {
    Query::select()
        .column(rooms::Column::Id)
        .from(rooms::Entity)
        .and_where(rooms::Column::InboxId.eq(inbox_id))
        .and_where(rooms::Column::Kind.eq(RoomKind::Support))
        .to_owned()
}

/// The ids of the rooms `user_id` is a member of, as a subquery.
fn rooms_joined_by(user_id: Uuid) -> SelectStatement {
    Query::select()
        .column(room_members::Column::RoomId)
        .from(room_members::Entity)
        .and_where(room_members::Column::UserId.eq(user_id))
        .to_owned()
}

/// The ids of the conversations of every inbox `user_id` is not an agent of, as a subquery.
fn conversations_outside_inboxes_of(user_id: Uuid) -> SelectStatement {
    let agent_of = Query::select()
        .column(members::Column::InboxId)
        .from(members::Entity)
        .and_where(members::Column::UserId.eq(user_id))
        .to_owned();
    Query::select()
        .column(rooms::Column::Id)
        .from(rooms::Entity)
        .and_where(rooms::Column::Kind.eq(RoomKind::Support))
        .and_where(rooms::Column::InboxId.not_in_subquery(agent_of))
        .to_owned()
}

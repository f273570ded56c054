//! What agents do with a conversation — assign, unassign, change its status — and the
//! transitions the system makes by itself (a contact writing reopens it, a snooze running
//! out reopens it). Every transition keeps the agents' load counters and publishes
//! `ConversationChanged` with the status and assignee before and after.
//!
//! Load: an agent's `open_assigned` counts their assigned conversations that are not
//! resolved (open, pending and snoozed ones all wait on them).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, FromQueryResult, Order,
    QueryFilter, QueryOrder, QuerySelect, Select, Set,
};
use tokio::sync::watch;
use uuid::Uuid;

use super::assign;
use crate::bus::{ConversationChangePayload, Event, Topic};
use crate::db::{self, WriteTx, columns};
use crate::error::{ApiError, ApiResult};
use crate::notifications::outbox;
use crate::paging::{Keyset, TimeKey};
use crate::rooms::access;
use crate::rooms::listing::{activity, activity_key};
use crate::state::{AppState, Ctx};
use crate::times;
use crate::users::service as users;
use entity::enums::{ConversationStatus, RoomKind};
use entity::{assignment_decisions, rooms};

/// How often expired snoozes are looked for.
const SNOOZE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

pub fn status_name(status: ConversationStatus) -> &'static str {
    match status {
        ConversationStatus::Open => "open",
        ConversationStatus::Pending => "pending",
        ConversationStatus::Snoozed => "snoozed",
        ConversationStatus::Resolved => "resolved",
    }
}

fn counts(status: Option<ConversationStatus>) -> bool {
    status.is_some_and(|s| s != ConversationStatus::Resolved)
}

/// A conversation the viewer may act on (an agent of its inbox, or an org admin).
async fn actionable(cx: &Ctx<'_>, room_id: Uuid) -> ApiResult<rooms::Model> {
    let access = access::readable(&cx.app.store, cx.viewer, room_id).await?;
    if access.room.kind != RoomKind::Support {
        return Err(ApiError::bad_input("not a support conversation"));
    }
    access.require_writable()?;
    Ok(access.room)
}

/// Moves a conversation (read inside `tx`) to `status` and `assignee`, keeping the load
/// counters, and returns the change to publish after commit.
pub async fn transition(
    tx: &DatabaseTransaction,
    room: &rooms::Model,
    status: ConversationStatus,
    snoozed_until: Option<DateTime<Utc>>,
    assignee: Option<Uuid>,
    by: String,
) -> ApiResult<ConversationChangePayload> {
    let inbox_id = room.inbox_id.ok_or_else(|| ApiError::bad_input("not a support conversation"))?;
    let (was_counted, is_counted) = (counts(room.status), counts(Some(status)));
    if let Some(old) = room.assignee_id.filter(|_| was_counted) {
        assign::change_load(tx, inbox_id, old, -1).await?;
    }
    if let Some(new) = assignee.filter(|_| is_counted) {
        assign::change_load(tx, inbox_id, new, 1).await?;
    }
    let now = db::now();
    let mut change: rooms::ActiveModel = room.clone().into();
    change.status = Set(Some(status));
    change.assignee_id = Set(assignee);
    change.snoozed_until = Set(snoozed_until.filter(|_| status == ConversationStatus::Snoozed));
    // Resolved when it first became so: an assignment or a repeat while resolved keeps it
    // (the metrics' resolution time).
    change.resolved_at = Set(match status {
        ConversationStatus::Resolved if room.status == Some(status) => room.resolved_at.or(Some(now)),
        ConversationStatus::Resolved => Some(now),
        _ => None,
    });
    change.changed_at = Set(Some(now));
    change.update(tx).await?;
    Ok(ConversationChangePayload {
        status_from: room.status.map(|s| status_name(s).to_owned()),
        status_to: Some(status_name(status).to_owned()),
        assignee_from: room.assignee_id,
        assignee_to: assignee,
        by,
    })
}

pub async fn publish(app: &AppState, room_id: Uuid, change: ConversationChangePayload) {
    app.bus
        .publish(Topic::Room(room_id), Event::ConversationChanged { room_id, change: Box::new(change) })
        .await;
}

/// `assignConversation`: to an agent of the conversation's inbox (active or paused).
pub async fn assign_to(cx: &Ctx<'_>, room_id: Uuid, agent: Uuid) -> ApiResult<rooms::Model> {
    // Both ids before anything else: another organisation's is NOT_FOUND, not a hint.
    access::readable(&cx.app.store, cx.viewer, room_id).await?;
    users::require_in_org(&cx.app.store, cx.viewer.org_id, &[agent]).await?;
    let (tx, room, inbox_id) = begin(cx, room_id).await?;
    // Again under the inbox's lock: a deactivation committed since the check above has
    // handed their conversations back already, and would miss this one.
    if !assign::still_agent(&tx.txn, inbox_id, agent).await? {
        return Err(ApiError::not_found("agent of this inbox"));
    }
    let status = room.status.unwrap_or(ConversationStatus::Open);
    let change =
        transition(&tx.txn, &room, status, room.snoozed_until, Some(agent), cx.viewer.id.to_string()).await?;
    record_manual(&tx.txn, &room, Some(agent), format!("assigned by {}", cx.viewer.id)).await?;
    if room.assignee_id != Some(agent) {
        outbox::enqueue_conversation_assigned(&tx.txn, &cx.app.store, room.org_id, room.id).await?;
    }
    tx.commit().await?;
    publish(cx.app, room_id, change).await;
    found(cx, room_id).await
}

/// `unassignConversation`: back to the queue, and to another agent if the strategy assigns
/// (not back to the agent who had it, as the least busy of them after giving it back).
pub async fn unassign(cx: &Ctx<'_>, room_id: Uuid) -> ApiResult<rooms::Model> {
    let (tx, room, inbox_id) = begin(cx, room_id).await?;
    let given_back = room.assignee_id.map(|agent| assign::GivenBack { room_id, agent });
    let status = room.status.unwrap_or(ConversationStatus::Open);
    let change =
        transition(&tx.txn, &room, status, room.snoozed_until, None, cx.viewer.id.to_string()).await?;
    record_manual(&tx.txn, &room, None, format!("unassigned by {}", cx.viewer.id)).await?;
    tx.commit().await?;
    publish(cx.app, room_id, change).await;
    drain_quietly(cx.app, inbox_id, given_back).await;
    found(cx, room_id).await
}

/// `setConversationStatus`: open, pending, snoozed (until a future moment) or resolved.
pub async fn set_status(
    cx: &Ctx<'_>,
    room_id: Uuid,
    status: ConversationStatus,
    snoozed_until: Option<DateTime<Utc>>,
) -> ApiResult<rooms::Model> {
    // The room first: an id of another organisation is NOT_FOUND whatever else is wrong.
    actionable(cx, room_id).await?;
    let snoozed_until = snoozed_until.map(|at| times::storable(at, "snoozedUntil")).transpose()?;
    match (status, snoozed_until) {
        (ConversationStatus::Snoozed, Some(until)) if until > Utc::now() => {}
        (ConversationStatus::Snoozed, _) => {
            return Err(ApiError::bad_input("snoozedUntil: a moment in the future is required to snooze"));
        }
        (_, Some(_)) => return Err(ApiError::bad_input("snoozedUntil: only with status SNOOZED")),
        _ => {}
    }
    let (tx, room, inbox_id) = begin(cx, room_id).await?;
    // A resolved conversation keeps the agent who resolved it, also one who has left the
    // inbox or was deactivated since: reopened, it goes back to the queue instead, as when
    // its contact writes again.
    let assignee = match room.assignee_id {
        Some(agent)
            if room.status == Some(ConversationStatus::Resolved)
                && status != ConversationStatus::Resolved =>
        {
            assign::still_agent(&tx.txn, inbox_id, agent).await?.then_some(agent)
        }
        kept => kept,
    };
    let change =
        transition(&tx.txn, &room, status, snoozed_until, assignee, cx.viewer.id.to_string()).await?;
    tx.commit().await?;
    publish(cx.app, room_id, change).await;
    // Resolving frees a place; a conversation reopened without an agent waits for one.
    let waits =
        assignee.is_none() && matches!(status, ConversationStatus::Open | ConversationStatus::Pending);
    if status == ConversationStatus::Resolved || waits {
        drain_quietly(cx.app, inbox_id, None).await;
    }
    found(cx, room_id).await
}

/// A write transaction holding the conversation's inbox row, then its own row: the order
/// every writer takes them in (inbox, room, agents), so concurrent actions on one
/// conversation see each other (the load counters hold) and never wait on each other in a
/// cycle. Returns the conversation as read under those locks.
async fn begin(cx: &Ctx<'_>, room_id: Uuid) -> ApiResult<(WriteTx, rooms::Model, Uuid)> {
    let room = actionable(cx, room_id).await?;
    let inbox_id = room.inbox_id.ok_or_else(|| ApiError::bad_input("not a support conversation"))?;
    let store = &cx.app.store;
    let tx = store.begin_write().await?;
    assign::lock_inbox(store, &tx.txn, inbox_id).await?;
    let lock = if store.backend() == DatabaseBackend::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {} FROM rooms WHERE id = $1{lock}", columns::<rooms::Entity>(None));
    let room = rooms::Model::find_by_statement(store.stmt(&sql, vec![room_id.into()]))
        .one(&tx.txn)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    Ok((tx, room, inbox_id))
}

/// Assigns what waits once the change that freed room is committed: a failure here is
/// logged, not reported, since the change the caller asked for did happen.
pub async fn drain_quietly(app: &AppState, inbox_id: Uuid, given_back: Option<assign::GivenBack>) {
    if let Err(error) = assign::drain(app, inbox_id, given_back).await {
        tracing::warn!(%error, inbox = %inbox_id, "support: cannot drain the queue");
    }
}

/// Which of an inbox's conversations a page lists.
#[derive(Default)]
pub struct InboxFilter {
    pub status: Option<ConversationStatus>,
    pub assignee_id: Option<Uuid>,
    pub unassigned: bool,
}

/// A page of an inbox's conversations, most recent activity first, and whether more lie
/// beyond it. Its caller checked that the viewer may read the inbox.
pub async fn in_inbox(
    store: &crate::db::Store,
    inbox_id: Uuid,
    filter: InboxFilter,
    page: Keyset<TimeKey>,
) -> ApiResult<(Vec<(TimeKey, rooms::Model)>, bool)> {
    let mut query = rooms::Entity::find().filter(rooms::Column::InboxId.eq(inbox_id));
    if let Some(status) = filter.status {
        query = query.filter(rooms::Column::Status.eq(status));
    }
    if let Some(assignee) = filter.assignee_id {
        query = query.filter(rooms::Column::AssigneeId.eq(assignee));
    }
    if filter.unassigned {
        query = query.filter(rooms::Column::AssigneeId.is_null());
    }
    by_activity(store, query, page).await
}

/// A page of a user's assigned conversations that are not resolved, most recent activity
/// first, and whether more lie beyond it.
pub async fn assigned_to(
    store: &crate::db::Store,
    org_id: Uuid,
    user_id: Uuid,
    page: Keyset<TimeKey>,
) -> ApiResult<(Vec<(TimeKey, rooms::Model)>, bool)> {
    let query = rooms::Entity::find()
        .filter(rooms::Column::OrgId.eq(org_id))
        .filter(rooms::Column::AssigneeId.eq(user_id))
        .filter(rooms::Column::Status.ne(ConversationStatus::Resolved))
        .filter(rooms::Column::DeletedAt.is_null());
    by_activity(store, query, page).await
}

/// Conversations by their latest activity (`rooms::listing::activity`; in practice a
/// conversation is created with its first message), newest first, paged by that time and
/// the id: a conversation resolved or assigned away while an agent pages the queue moves
/// none of the others.
async fn by_activity(
    store: &crate::db::Store,
    query: Select<rooms::Entity>,
    page: Keyset<TimeKey>,
) -> ApiResult<(Vec<(TimeKey, rooms::Model)>, bool)> {
    let order = page.window.order(Order::Desc);
    let rows = query
        .filter(page.beyond(activity(), rooms::Column::Id, Order::Desc))
        .order_by(activity(), order.clone())
        .order_by(rooms::Column::Id, order)
        .limit(page.window.fetch_limit())
        .all(&store.db)
        .await?;
    Ok(page.window.split(rows.into_iter().map(|room| (activity_key(&room), room)).collect()))
}

async fn found(cx: &Ctx<'_>, room_id: Uuid) -> ApiResult<rooms::Model> {
    rooms::Entity::find_by_id(room_id).one(&cx.app.store.db).await?.ok_or_else(|| ApiError::not_found("room"))
}

/// An agent's hand decision, stored with the strategy's so `assignmentDecision` tells both.
async fn record_manual(
    tx: &DatabaseTransaction,
    room: &rooms::Model,
    chosen: Option<Uuid>,
    reason: String,
) -> ApiResult<()> {
    let row = assignment_decisions::Model {
        id: Uuid::now_v7(),
        org_id: room.org_id,
        room_id: room.id,
        strategy: "manual".into(),
        candidates: "[]".into(),
        chosen_id: chosen,
        reason,
        decided_at: db::now(),
    };
    assignment_decisions::ActiveModel::from(row).insert(tx).await?;
    Ok(())
}

/// Reopens snoozed conversations whose time came, each exactly once however many instances
/// run: one conditional update claims them (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
pub fn spawn_snooze_expiry(app: AppState, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            if let Err(error) = reopen_expired(&app).await {
                tracing::warn!(%error, "support: cannot reopen snoozed conversations; retrying");
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(SNOOZE_POLL) => {}
            }
        }
    });
}

async fn reopen_expired(app: &AppState) -> ApiResult<()> {
    let store = &app.store;
    let lock = if store.backend() == DatabaseBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE rooms SET status = 'open', snoozed_until = NULL, changed_at = $1 \
         WHERE id IN (SELECT id FROM rooms WHERE status = 'snoozed' AND snoozed_until <= $1 LIMIT 100 {lock}) \
         RETURNING {}",
        columns::<rooms::Entity>(None)
    );
    let tx = store.begin_write().await?;
    let reopened =
        rooms::Model::find_by_statement(store.stmt(&sql, vec![Utc::now().into()])).all(&tx.txn).await?;
    tx.commit().await?;
    let mut waiting: Vec<Uuid> =
        reopened.iter().filter(|r| r.assignee_id.is_none()).filter_map(|r| r.inbox_id).collect();
    waiting.sort();
    waiting.dedup();
    for room in reopened {
        let change = ConversationChangePayload {
            status_from: Some("snoozed".into()),
            status_to: Some("open".into()),
            assignee_from: room.assignee_id,
            assignee_to: room.assignee_id,
            by: "snooze".into(),
        };
        publish(app, room.id, change).await;
    }
    // Reopened without an agent: the strategy may have one for it now.
    for inbox_id in waiting {
        drain_quietly(app, inbox_id, None).await;
    }
    Ok(())
}

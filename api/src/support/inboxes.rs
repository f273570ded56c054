//! Support inboxes and their agents, managed by organisation admins: create, update, rotate
//! the webhook secret, add and remove agents.
//!
//! An inbox's agents are members of each of its conversations (rooms), so everything rooms
//! already do — unread counts, `messageAdded`, read state — works for them unchanged: adding
//! an agent adds them to every conversation of the inbox, removing one removes them and
//! hands their open conversations back to the queue, as deactivating their account does.
//! Org admins read every conversation without being members (`rooms::access`).
//!
//! Who sees an inbox: org admins and its agents; anyone else gets NOT_FOUND.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use super::{assign, conversations, departures};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::notifications::target;
use crate::rooms::membership;
use crate::secrets;
use crate::state::{self, Ctx};
use crate::users::service as users;
use entity::enums::{AssignmentStrategy, RoomKind, UserRole};
use entity::{rooms, support_inbox_members as members, support_inboxes as inboxes};

/// What an admin sets on an inbox; `None` leaves a field as it is (on update).
#[derive(Default)]
pub struct InboxSettings {
    pub name: Option<String>,
    pub assignment: Option<AssignmentStrategy>,
    /// `Some(None)` removes the limit.
    pub agent_capacity: Option<Option<i32>>,
    /// `Some(None)` removes the URL.
    pub outbound_webhook_url: Option<Option<String>>,
}

impl InboxSettings {
    /// Checks every given field; the URL as webhooks are checked (public `http(s)` only).
    pub async fn checked(mut self, allow_private: bool) -> ApiResult<Self> {
        if let Some(name) = &self.name {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 80 {
                return Err(ApiError::bad_input("name: 1 to 80 characters"));
            }
            self.name = Some(name.to_owned());
        }
        if let Some(Some(capacity)) = self.agent_capacity
            && !(1..=1_000).contains(&capacity)
        {
            return Err(ApiError::bad_input("agentCapacity: from 1 to 1000 open conversations"));
        }
        if let Some(Some(url)) = &self.outbound_webhook_url {
            let url = target::check_url(url, allow_private).await?;
            self.outbound_webhook_url = Some(Some(url.to_string()));
        }
        Ok(self)
    }
}

fn require_admin(cx: &Ctx<'_>) -> ApiResult<()> {
    if cx.viewer.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("only organisation admins manage inboxes"))
    }
}

pub async fn create(cx: &Ctx<'_>, settings: InboxSettings) -> ApiResult<inboxes::Model> {
    require_admin(cx)?;
    let settings = settings.checked(cx.app.limits.webhook_allow_private).await?;
    let name = settings.name.ok_or_else(|| ApiError::bad_input("name: required"))?;
    let inbox = inboxes::Model {
        id: Uuid::now_v7(),
        org_id: cx.viewer.org_id,
        name,
        assignment: settings.assignment.unwrap_or(AssignmentStrategy::RoundRobin),
        agent_capacity: settings.agent_capacity.flatten(),
        webhook_secret: secrets::random_hex(),
        outbound_webhook_url: settings.outbound_webhook_url.flatten(),
        round_robin_last_agent_id: None,
        created_at: db::now(),
    };
    let tx = cx.app.store.begin_write().await?;
    let inbox = inboxes::ActiveModel::from(inbox).insert(&tx.txn).await?;
    tx.commit().await?;
    Ok(inbox)
}

pub async fn update(cx: &Ctx<'_>, inbox_id: Uuid, settings: InboxSettings) -> ApiResult<inboxes::Model> {
    let inbox = managed(cx, inbox_id).await?;
    let settings = settings.checked(cx.app.limits.webhook_allow_private).await?;
    let mut change: inboxes::ActiveModel = inbox.into();
    if let Some(name) = settings.name {
        change.name = Set(name);
    }
    if let Some(assignment) = settings.assignment {
        change.assignment = Set(assignment);
    }
    if let Some(capacity) = settings.agent_capacity {
        change.agent_capacity = Set(capacity);
    }
    if let Some(url) = settings.outbound_webhook_url {
        change.outbound_webhook_url = Set(url);
    }
    let tx = cx.app.store.begin_write().await?;
    let inbox = change.update(&tx.txn).await?;
    tx.commit().await?;
    cx.app.directory.inbox_changed(&cx.app.bus, inbox.id).await;
    // A higher capacity or another strategy may take conversations off the queue.
    conversations::drain_quietly(cx.app, inbox.id, None).await;
    Ok(inbox)
}

/// A new secret. It works at once on every instance (a signature the cached secret refuses is
/// checked again with the inbox read afresh); the old one stops working here at once, and on
/// other instances when the directory event reaches them (30 s at worst, the cache's time to
/// live, should the event be lost).
pub async fn rotate_secret(cx: &Ctx<'_>, inbox_id: Uuid) -> ApiResult<inboxes::Model> {
    let inbox = managed(cx, inbox_id).await?;
    let mut change: inboxes::ActiveModel = inbox.into();
    change.webhook_secret = Set(secrets::random_hex());
    let tx = cx.app.store.begin_write().await?;
    let inbox = change.update(&tx.txn).await?;
    tx.commit().await?;
    cx.app.directory.inbox_changed(&cx.app.bus, inbox.id).await;
    Ok(inbox)
}

/// Makes `user_id` an agent of the inbox (active) and a member of its conversations. Runs to
/// the end in a task of its own: a client giving up midway left the agent in the inbox but
/// out of some of its conversations, which strategies could still hand them.
pub async fn add_member(cx: &Ctx<'_>, inbox_id: Uuid, user_id: Uuid) -> ApiResult<inboxes::Model> {
    let inbox = managed(cx, inbox_id).await?;
    if users::find_active(&cx.app.store, cx.viewer.org_id, user_id).await?.role == UserRole::Integration {
        return Err(ApiError::bad_input(
            "an integration account posts inbound messages and cannot answer them: it cannot be an agent",
        ));
    }
    let (app, viewer) = (cx.app.clone(), cx.viewer.clone());
    let addition = async move { add_agent(&Ctx { app: &app, viewer: &viewer }, inbox_id, user_id).await };
    state::to_the_end(addition).await?;
    Ok(inbox)
}

async fn add_agent(cx: &Ctx<'_>, inbox_id: Uuid, user_id: Uuid) -> ApiResult<()> {
    let tx = cx.app.store.begin_write().await?;
    // Under the inbox's lock: a conversation opened meanwhile counts them in or out.
    assign::lock_inbox(&cx.app.store, &tx.txn, inbox_id).await?;
    match members::Entity::find_by_id((inbox_id, user_id)).one(&tx.txn).await? {
        Some(member) if member.active => {}
        Some(member) => {
            let mut change: members::ActiveModel = member.into();
            change.active = Set(true);
            change.update(&tx.txn).await?;
        }
        None => {
            let member =
                members::Model { inbox_id, user_id, active: true, open_assigned: 0, created_at: db::now() };
            members::ActiveModel::from(member).insert(&tx.txn).await?;
        }
    }
    // Its conversations too, under the same lock: a removal committed meanwhile would
    // otherwise leave them a member of those added after it, an agent no longer.
    let mut joined = Vec::new();
    for room in conversations(&tx.txn, inbox_id).await? {
        joined.push(membership::add_in(&tx.txn, &room, &[user_id]).await?);
    }
    tx.commit().await?;
    for joined in joined {
        membership::announce_joined(&cx.app.bus, joined).await;
    }
    conversations::drain_quietly(cx.app, inbox_id, None).await;
    Ok(())
}

/// Pauses an agent (`active` false: they read and reply, but no strategy gives them new
/// conversations; those assigned to them stay theirs) or resumes one, who may then take
/// waiting conversations. Admins, and the agent themselves (going on a break). NOT_FOUND
/// when the user is not an agent of the inbox, or the viewer may not read it.
pub async fn set_member_active(
    cx: &Ctx<'_>,
    inbox_id: Uuid,
    user_id: Uuid,
    active: bool,
) -> ApiResult<inboxes::Model> {
    let inbox = readable(cx, inbox_id).await?;
    if user_id != cx.viewer.id {
        require_admin(cx)?;
    }
    let tx = cx.app.store.begin_write().await?;
    // Under the inbox's lock: no decision picks them while they pause.
    assign::lock_inbox(&cx.app.store, &tx.txn, inbox_id).await?;
    let updated = members::Entity::update_many()
        .col_expr(members::Column::Active, Expr::value(active))
        .filter(members::Column::InboxId.eq(inbox_id))
        .filter(members::Column::UserId.eq(user_id))
        .exec(&tx.txn)
        .await?;
    if updated.rows_affected == 0 {
        return Err(ApiError::not_found("inbox member"));
    }
    tx.commit().await?;
    if active {
        conversations::drain_quietly(cx.app, inbox_id, None).await;
    }
    Ok(inbox)
}

/// Removes an agent: out of the inbox and its conversations, in one transaction (one
/// conversation at a time, a failure or a client giving up midway left the agent reading
/// the rest, and a repeat answered NOT_FOUND); their open conversations go back to the queue
/// (and to other agents, if the strategy assigns). Runs to the end in a task of its own, so
/// that what was committed is also announced.
pub async fn remove_member(cx: &Ctx<'_>, inbox_id: Uuid, user_id: Uuid) -> ApiResult<inboxes::Model> {
    let inbox = managed(cx, inbox_id).await?;
    let (app, viewer) = (cx.app.clone(), cx.viewer.clone());
    let removal =
        async move { departures::remove_agent(&Ctx { app: &app, viewer: &viewer }, inbox_id, user_id).await };
    state::to_the_end(removal).await?;
    Ok(inbox)
}

async fn conversations(db: &impl ConnectionTrait, inbox_id: Uuid) -> ApiResult<Vec<rooms::Model>> {
    let rows = rooms::Entity::find()
        .filter(rooms::Column::InboxId.eq(inbox_id))
        .filter(rooms::Column::Kind.eq(RoomKind::Support))
        .all(db)
        .await?;
    Ok(rows)
}

/// The inbox for an admin of its organisation: NOT_FOUND elsewhere, FORBIDDEN for others.
pub async fn managed(cx: &Ctx<'_>, inbox_id: Uuid) -> ApiResult<inboxes::Model> {
    let inbox = readable(cx, inbox_id).await?;
    require_admin(cx)?;
    Ok(inbox)
}

/// The inbox for its agents and the organisation's admins; NOT_FOUND for anyone else.
pub async fn readable(cx: &Ctx<'_>, inbox_id: Uuid) -> ApiResult<inboxes::Model> {
    let inbox = inboxes::Entity::find_by_id(inbox_id)
        .filter(inboxes::Column::OrgId.eq(cx.viewer.org_id))
        .one(&cx.app.store.db)
        .await?
        .ok_or_else(|| ApiError::not_found("inbox"))?;
    if cx.viewer.is_admin()
        || members::Entity::find_by_id((inbox_id, cx.viewer.id)).one(&cx.app.store.db).await?.is_some()
    {
        Ok(inbox)
    } else {
        Err(ApiError::not_found("inbox"))
    }
}

/// The inboxes the viewer sees: all of the organisation's for admins, their own for agents.
pub async fn list(cx: &Ctx<'_>) -> ApiResult<Vec<inboxes::Model>> {
    let mut query = inboxes::Entity::find().filter(inboxes::Column::OrgId.eq(cx.viewer.org_id));
    if !cx.viewer.is_admin() {
        let mine = members::Entity::find()
            .filter(members::Column::UserId.eq(cx.viewer.id))
            .all(&cx.app.store.db)
            .await?;
        query = query.filter(inboxes::Column::Id.is_in(mine.into_iter().map(|m| m.inbox_id)));
    }
    Ok(query.order_by_asc(inboxes::Column::Name).all(&cx.app.store.db).await?)
}

/// An inbox's agents in their stable order (who joined first).
pub async fn members_of(cx: &Ctx<'_>, inbox_id: Uuid) -> ApiResult<Vec<members::Model>> {
    assign::in_turn_order(&cx.app.store.db, inbox_id).await
}

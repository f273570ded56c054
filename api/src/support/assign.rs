//! Assignment: who gets a conversation, and why.
//!
//! Every decision runs in a transaction that holds the inbox row (`FOR UPDATE` on PostgreSQL;
//! SQLite has one writer), so two conversations arriving at once on two instances are decided
//! one after the other and an agent's capacity is never exceeded. Loads are counters on the
//! agent's inbox membership (`open_assigned`), kept with every assignment and status change,
//! so a decision reads one row per agent and no conversations.
//!
//! - `manual`: nobody; agents assign themselves or each other.
//! - `round_robin`: the agents in a stable order (who joined first), starting after the
//!   last one chosen (stored by id, so pausing or resuming others does not move the turn;
//!   if that agent leaves, the turn goes back to whoever joined before them).
//! - `least_busy`: the fewest open conversations; ties in round-robin order.
//!
//! Both skip paused agents, deactivated accounts and agents at capacity, and prefer agents
//! who are online (a live WebSocket on any instance) when any is eligible. When nobody is, the conversation waits
//! unassigned; [`drain`] assigns waiting conversations, oldest first, when capacity frees.
//! Every decision is stored with its candidates as they stood.

use std::collections::HashSet;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseTransaction,
    EntityTrait, ExprTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::bus::{ConversationChangePayload, Event, Topic};
use crate::db::{self, Store, columns};
use crate::error::{ApiError, ApiResult};
use crate::notifications::outbox;
use crate::state::AppState;
use entity::enums::{AssignmentStrategy, ConversationStatus, RoomKind, UserRole};
use entity::{
    assignment_decisions, rooms, support_inbox_members as members, support_inboxes as inboxes, users,
};

/// One agent as the decision saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub agent: Uuid,
    pub load: i32,
    pub capacity: Option<i32>,
    pub online: bool,
}

/// Who was chosen (nobody: the conversation waits), among whom, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    pub strategy: AssignmentStrategy,
    pub candidates: Vec<Candidate>,
    pub chosen: Option<Uuid>,
    pub reason: String,
}

/// The inbox row, locked for the rest of the transaction.
pub async fn lock_inbox(
    store: &Store,
    tx: &DatabaseTransaction,
    inbox_id: Uuid,
) -> ApiResult<inboxes::Model> {
    let lock = if store.backend() == DatabaseBackend::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {} FROM support_inboxes WHERE id = $1{lock}", columns::<inboxes::Entity>(None));
    inboxes::Model::find_by_statement(store.stmt(&sql, vec![inbox_id.into()]))
        .one(tx)
        .await?
        .ok_or_else(|| ApiError::not_found("inbox"))
}

/// A conversation its agent just gave back (`unassignConversation`): the drain that follows
/// hands it to another agent, never straight back to them.
#[derive(Clone, Copy)]
pub struct GivenBack {
    pub room_id: Uuid,
    pub agent: Uuid,
}

/// Decides for one conversation of `inbox` (locked by the caller), passing over `passed_over`
/// (the agent who just gave it back); pure but for presence.
pub async fn decide(
    app: &AppState,
    tx: &DatabaseTransaction,
    inbox: &inboxes::Model,
    passed_over: Option<Uuid>,
) -> ApiResult<Decision> {
    let members = in_turn_order(tx, inbox.id).await?;
    // A deactivated account keeps its inbox memberships (it may come back) but takes nothing.
    let gone = takes_nothing(tx, members.iter().map(|m| m.user_id)).await?;
    let takes =
        |m: &&members::Model| m.active && !gone.contains(&m.user_id) && passed_over != Some(m.user_id);
    // The turn passes to whoever joined after the last agent chosen, paused or not; the
    // first active one from there starts the round. An agent no longer in the inbox (left
    // before 2026-12-04, when leaving started to hand the turn back): from the first.
    let last = inbox.round_robin_last_agent_id;
    let after_last =
        last.and_then(|last| members.iter().position(|m| m.user_id == last)).map_or(0, |i| i + 1);
    let start = members.iter().take(after_last).filter(takes).count();
    let agents: Vec<&members::Model> = members.iter().filter(takes).collect();
    let ids: Vec<Uuid> = agents.iter().map(|a| a.user_id).collect();
    let seen = app.presence.seen(&ids).await;
    let candidates: Vec<Candidate> = agents
        .iter()
        .map(|a| Candidate {
            agent: a.user_id,
            load: a.open_assigned,
            capacity: inbox.agent_capacity,
            online: seen.get(&a.user_id).is_some_and(|s| s.connected),
        })
        .collect();
    Ok(choose(inbox.assignment, start, candidates))
}

/// An inbox's agents, paused or not, in round robin's stable order: who joined first. The
/// inbox's `members` field lists them in the same order.
pub async fn in_turn_order(db: &impl ConnectionTrait, inbox_id: Uuid) -> ApiResult<Vec<members::Model>> {
    let members = members::Entity::find()
        .filter(members::Column::InboxId.eq(inbox_id))
        .order_by_asc(members::Column::CreatedAt)
        .order_by_asc(members::Column::UserId)
        .all(db)
        .await?;
    Ok(members)
}

/// Who of `users` can hold no conversation: deactivated accounts, and integration accounts
/// (a service token that posts inbound messages and can send nothing, so a customer handed
/// to one would wait for ever; `addInboxMember` refuses them, a role changed since is caught
/// here).
async fn takes_nothing(
    db: &impl ConnectionTrait,
    users: impl Iterator<Item = Uuid>,
) -> ApiResult<HashSet<Uuid>> {
    let rows = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .filter(users::Column::Id.is_in(users))
        .filter(
            Condition::any()
                .add(users::Column::DeactivatedAt.is_not_null())
                .add(users::Column::Role.eq(UserRole::Integration)),
        )
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Whether `agent` may still hold a conversation of `inbox_id`: an agent of it, active or
/// paused, whose account is not deactivated (nor an integration's). A conversation that reopens keeps its agent
/// only then; otherwise it is decided again.
pub async fn still_agent(db: &impl ConnectionTrait, inbox_id: Uuid, agent: Uuid) -> ApiResult<bool> {
    let member = members::Entity::find_by_id((inbox_id, agent)).one(db).await?;
    Ok(member.is_some() && takes_nothing(db, [agent].into_iter()).await?.is_empty())
}

/// The choice itself, on candidates in their stable order, whose turn starts at `start`.
pub fn choose(strategy: AssignmentStrategy, start: usize, candidates: Vec<Candidate>) -> Decision {
    let decision =
        |chosen, reason: String| Decision { strategy, candidates: candidates.clone(), chosen, reason };
    if strategy == AssignmentStrategy::Manual {
        return decision(None, "manual assignment: an agent takes it".into());
    }
    if candidates.is_empty() {
        return decision(None, "no active agents: it waits in the queue".into());
    }
    let has_room = |c: &Candidate| c.capacity.is_none_or(|cap| c.load < cap);
    if !candidates.iter().any(has_room) {
        return decision(None, "every agent is at capacity: it waits in the queue".into());
    }
    let online_first = candidates.iter().any(|c| has_room(c) && c.online);
    let eligible = |c: &Candidate| has_room(c) && (c.online || !online_first);
    // Round-robin order: from `start` round the list.
    let n = candidates.len();
    let start = start % n;
    let in_turn = (0..n).map(|k| (start + k) % n).filter(|&i| eligible(&candidates[i]));
    let chosen = match strategy {
        AssignmentStrategy::LeastBusy => in_turn.min_by_key(|&i| candidates[i].load),
        _ => in_turn.into_iter().next(),
    };
    let Some(i) = chosen else { return decision(None, "no eligible agent: it waits in the queue".into()) };
    let how = match strategy {
        AssignmentStrategy::LeastBusy => format!("fewest open conversations ({})", candidates[i].load),
        _ => "next in turn".to_owned(),
    };
    let whom = if online_first { "online agents with room" } else { "agents with room (none online)" };
    decision(Some(candidates[i].agent), format!("{how} among {whom}"))
}

/// Stores the decision and, when someone was chosen, assigns: the room, the agent's load,
/// and whose turn it was (round robin's next starts after them).
pub async fn apply(
    store: &Store,
    tx: &DatabaseTransaction,
    inbox: &inboxes::Model,
    room_id: Uuid,
    decision: &Decision,
) -> ApiResult<()> {
    let now = db::now();
    let row = assignment_decisions::Model {
        id: Uuid::now_v7(),
        org_id: inbox.org_id,
        room_id,
        strategy: strategy_name(decision.strategy).to_owned(),
        candidates: serde_json::to_string(&decision.candidates).unwrap_or_else(|_| "[]".into()),
        chosen_id: decision.chosen,
        reason: decision.reason.clone(),
        decided_at: now,
    };
    assignment_decisions::ActiveModel::from(row).insert(tx).await?;
    let Some(agent) = decision.chosen else { return Ok(()) };
    set_assignee(tx, room_id, Some(agent)).await?;
    change_load(tx, inbox.id, agent, 1).await?;
    outbox::enqueue_conversation_assigned(tx, store, inbox.org_id, room_id).await?;
    set_last_agent(tx, inbox, Some(agent)).await
}

/// Before the agent round robin chose last leaves, the turn is handed to whoever joined
/// just before them (the last one, if they were first), so it still passes to whoever
/// joined after them rather than back to the first agent.
pub async fn pass_turn_back(
    tx: &DatabaseTransaction,
    inbox: &inboxes::Model,
    leaving: Uuid,
) -> ApiResult<()> {
    let order: Vec<Uuid> = in_turn_order(tx, inbox.id).await?.into_iter().map(|m| m.user_id).collect();
    let Some(at) = order.iter().position(|id| *id == leaving) else { return Ok(()) };
    let before = if at > 0 { order.get(at - 1) } else { order.last().filter(|id| **id != leaving) };
    set_last_agent(tx, inbox, before.copied()).await
}

/// Round robin's next turn starts after `agent`.
async fn set_last_agent(
    tx: &DatabaseTransaction,
    inbox: &inboxes::Model,
    agent: Option<Uuid>,
) -> ApiResult<()> {
    let mut turn: inboxes::ActiveModel = inbox.clone().into();
    turn.round_robin_last_agent_id = Set(agent);
    turn.update(tx).await?;
    Ok(())
}

pub fn strategy_name(strategy: AssignmentStrategy) -> &'static str {
    match strategy {
        AssignmentStrategy::Manual => "manual",
        AssignmentStrategy::RoundRobin => "round_robin",
        AssignmentStrategy::LeastBusy => "least_busy",
    }
}

pub async fn set_assignee(conn: &impl ConnectionTrait, room_id: Uuid, agent: Option<Uuid>) -> ApiResult<()> {
    let change = rooms::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(room_id),
        assignee_id: Set(agent),
        changed_at: Set(Some(db::now())),
        ..Default::default()
    };
    change.update(conn).await?;
    Ok(())
}

/// Moves an agent's open-conversation counter by `by` (an agent no longer in the inbox has
/// no counter to move).
pub async fn change_load(conn: &impl ConnectionTrait, inbox_id: Uuid, agent: Uuid, by: i32) -> ApiResult<()> {
    members::Entity::update_many()
        .col_expr(
            members::Column::OpenAssigned,
            sea_orm::sea_query::Expr::col(members::Column::OpenAssigned).add(by),
        )
        .filter(members::Column::InboxId.eq(inbox_id))
        .filter(members::Column::UserId.eq(agent))
        .exec(conn)
        .await?;
    Ok(())
}

/// Assigns waiting conversations (open or pending, unassigned), oldest first, while an agent
/// has room. Called when capacity may have freed: a resolve, an unassign, an agent added or
/// the inbox's settings changed.
pub async fn drain(app: &AppState, inbox_id: Uuid, given_back: Option<GivenBack>) -> ApiResult<()> {
    let store = &app.store;
    let mut assigned = Vec::new();
    let tx = store.begin_write().await?;
    let inbox = lock_inbox(store, &tx.txn, inbox_id).await?;
    if inbox.assignment != AssignmentStrategy::Manual {
        let waiting = rooms::Entity::find()
            .filter(rooms::Column::InboxId.eq(inbox_id))
            .filter(rooms::Column::Kind.eq(RoomKind::Support))
            .filter(rooms::Column::AssigneeId.is_null())
            .filter(rooms::Column::Status.is_in([ConversationStatus::Open, ConversationStatus::Pending]))
            .order_by_asc(rooms::Column::CreatedAt)
            .limit(100)
            .all(&tx.txn)
            .await?;
        let mut inbox = inbox;
        for room in waiting {
            let passed_over = given_back.filter(|given| given.room_id == room.id).map(|given| given.agent);
            let decision = decide(app, &tx.txn, &inbox, passed_over).await?;
            let Some(agent) = decision.chosen else {
                // Only the agent who gave it back could take it: it waits, the rest may not.
                if passed_over.is_some() {
                    continue;
                }
                break;
            };
            apply(store, &tx.txn, &inbox, room.id, &decision).await?;
            assigned.push((room.id, agent));
            inbox = inboxes::Entity::find_by_id(inbox_id)
                .one(&tx.txn)
                .await?
                .ok_or_else(|| ApiError::not_found("inbox"))?;
        }
    }
    tx.commit().await?;
    for (room_id, agent) in assigned {
        let change = ConversationChangePayload {
            status_from: None,
            status_to: None,
            assignee_from: None,
            assignee_to: Some(agent),
            by: "assignment".into(),
        };
        let event = Event::ConversationChanged { room_id, change: Box::new(change) };
        app.bus.publish(Topic::Room(room_id), event).await;
    }
    Ok(())
}

/// Drains the queues of the inboxes `user_id` is an active agent of (they just came online).
pub async fn agent_online(app: &AppState, user_id: Uuid) {
    let inboxes = members::Entity::find()
        .filter(members::Column::UserId.eq(user_id))
        .filter(members::Column::Active.eq(true))
        .all(&app.store.db)
        .await;
    for member in inboxes.unwrap_or_default() {
        if let Err(error) = drain(app, member.inbox_id, None).await {
            tracing::warn!(%error, inbox = %member.inbox_id, "support: cannot drain the queue");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Candidate, choose};
    use entity::enums::AssignmentStrategy::{LeastBusy, Manual, RoundRobin};
    use uuid::Uuid;

    fn agents(loads: &[(i32, bool)], capacity: Option<i32>) -> Vec<Candidate> {
        loads
            .iter()
            .map(|&(load, online)| Candidate { agent: Uuid::now_v7(), load, capacity, online })
            .collect()
    }

    #[test]
    fn round_robin_takes_turns_from_the_start() {
        let list = agents(&[(0, false), (0, false), (0, false)], None);
        let picks: Vec<_> = (0..4).map(|cursor| choose(RoundRobin, cursor, list.clone()).chosen).collect();
        let ids: Vec<_> = list.iter().map(|c| Some(c.agent)).collect();
        assert_eq!(picks, vec![ids[0], ids[1], ids[2], ids[0]]);
    }

    #[test]
    fn least_busy_breaks_ties_in_turn_and_capacity_holds() {
        let list = agents(&[(2, false), (1, false), (1, false)], Some(2));
        assert_eq!(choose(LeastBusy, 0, list.clone()).chosen, Some(list[1].agent));
        assert_eq!(choose(LeastBusy, 2, list.clone()).chosen, Some(list[2].agent));
        let full = agents(&[(2, true), (2, false)], Some(2));
        let waits = choose(LeastBusy, 0, full);
        assert_eq!(waits.chosen, None);
        assert!(waits.reason.contains("capacity"), "{}", waits.reason);
    }

    #[test]
    fn online_agents_come_first_and_manual_assigns_nobody() {
        let list = agents(&[(0, false), (5, true)], None);
        assert_eq!(choose(LeastBusy, 0, list.clone()).chosen, Some(list[1].agent));
        assert_eq!(choose(RoundRobin, 0, list.clone()).chosen, Some(list[1].agent));
        assert_eq!(choose(Manual, 0, list).chosen, None);
    }
}

//! An inbound customer message, atomically: upsert the contact, find or open their
//! conversation in the inbox, reopen it if it was resolved or snoozed, assign it if nobody
//! has it, store the message; then announce it.
//!
//! Idempotency: `(org, source, external_id)` is unique on messages. A redelivery's insert
//! meets the stored message (`ON CONFLICT DO NOTHING`), its transaction is rolled back with
//! whatever it did (a reopening, a seq), and the answer is the stored message: nothing changes
//! twice, also when deliveries race on two instances (the room's row lock orders them). A new
//! message, the common case, thus costs no lookup of its `externalId` first; a redelivery
//! costs a transaction that is rolled back.
//!
//! Locks: a message into an open, assigned conversation takes only its room's row (the seq);
//! opening, reopening or assigning a conversation takes the inbox's row first, so
//! assignment decisions are serial per inbox (see `assign`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult,
    QueryFilter, TryInsertResult,
};
use uuid::Uuid;

use super::payload::Inbound;
use super::{assign, contacts, conversations, settled};
use crate::bus::{ConversationChangePayload, Event, MembershipChange, MessagePayload, RoomPayload, Topic};
use crate::db::{self, columns};
use crate::error::{ApiError, ApiResult};
use crate::messages::record::{MessageRecord, attachments_json};
use crate::notifications::outbox;
use crate::rooms::membership;
use crate::rooms::service::new_room;
use crate::state::{self, AppState};
use entity::enums::{AssignmentStrategy, ConversationStatus, MemberRole, RoomKind, SenderRole};
use entity::{contacts as contact_rows, messages, rooms, support_inbox_members, support_inboxes};

/// The stored message, and whether this delivery stored it (false: a redelivery).
pub struct Ingested {
    pub message: MessageRecord,
    pub created: bool,
}

/// How one attempt at storing ended.
enum Attempt {
    /// Committed: the message, and what to announce.
    Stored(Box<(MessageRecord, Announcement)>),
    /// The conversation was open and assigned when read, but no longer at the seq bump (an
    /// agent resolved it meanwhile): nothing was stored; try again under the inbox's lock.
    Changed,
    /// The `externalId` is stored already: nothing was stored.
    Redelivery,
}

/// What a committed ingest announces.
struct Announcement {
    room: rooms::Model,
    new_members: Vec<Uuid>,
    changes: Vec<ConversationChangePayload>,
}

/// Attempts at storing one message: a unique violation that is not a redelivery is a new
/// contact created at the same moment by another message of theirs, and the next attempt
/// finds it.
const ATTEMPTS: usize = 3;

/// [`ingest`] to the end even if the request that asked is dropped meanwhile (the gateway
/// stopped waiting): a stored message must be announced, and the gateway's redelivery is
/// answered as a duplicate without announcing it (as `messages::send::send_detached`).
pub async fn ingest_detached(
    app: &AppState,
    inbox: &support_inboxes::Model,
    inbound: Inbound,
) -> ApiResult<Ingested> {
    let (app, inbox) = (app.clone(), inbox.clone());
    state::to_the_end(async move { ingest(&app, &inbox, inbound).await }).await
}

/// Stores `inbound` into `inbox` (as read by the caller, which checked the signature with it)
/// and announces it; a redelivery answers with the message stored before.
async fn ingest(app: &AppState, inbox: &support_inboxes::Model, inbound: Inbound) -> ApiResult<Ingested> {
    if let Some((message, room)) = settled::store(app, inbox, &inbound).await? {
        let announcement = Announcement { room, new_members: Vec::new(), changes: Vec::new() };
        announce(app, &message, announcement, "statement").await;
        return Ok(Ingested { message, created: true });
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        // After a first attempt found its conversation changed meanwhile, decide under the lock.
        let error = match store_inbound(app, inbox, &inbound, attempt > 1).await {
            Ok(Attempt::Stored(stored)) => {
                let (message, announcement) = *stored;
                announce(app, &message, announcement, "transaction").await;
                return Ok(Ingested { message, created: true });
            }
            Ok(Attempt::Redelivery) => match stored(app, inbox, &inbound).await? {
                Some(message) => return Ok(Ingested { message, created: false }),
                // Deleted since: store it again, as the sender asks.
                None => ApiError::conflict("the message was deleted while it was redelivered; retry"),
            },
            Ok(Attempt::Changed) => ApiError::conflict("the conversation kept changing; retry"),
            Err(error) if error.is_unique_violation() => error,
            Err(error) => return Err(error),
        };
        if attempt == ATTEMPTS {
            return Err(error);
        }
    }
}

/// The message already stored under this `externalId`; CONFLICT when another inbox of the
/// organisation used it (answering with that inbox's message would leak it and drop this one).
async fn stored(
    app: &AppState,
    inbox: &support_inboxes::Model,
    inbound: &Inbound,
) -> ApiResult<Option<MessageRecord>> {
    let db = &app.store.db;
    let found = messages::Entity::find()
        .filter(messages::Column::OrgId.eq(inbox.org_id))
        .filter(messages::Column::Source.eq(inbound.source))
        .filter(messages::Column::ExternalId.eq(inbound.external_id.as_str()))
        .one(db)
        .await?;
    let Some(found) = found else { return Ok(None) };
    let room = rooms::Entity::find_by_id(found.room_id).one(db).await?;
    if room.and_then(|r| r.inbox_id) != Some(inbox.id) {
        return Err(ApiError::conflict("externalId: already used by another inbox of this organisation"));
    }
    Ok(Some(MessageRecord::from(found)))
}

/// One attempt, in one transaction.
///
/// `unlocked` is the inbox as the caller read it: its id and organisation never change, and
/// whether its assignment is manual, which picks the unlocked path and guards the seq bump,
/// may be a moment old, as it was when read unlocked in the transaction (a switch of strategy
/// drains the waiting conversations itself). Decisions read it again under its lock.
async fn store_inbound(
    app: &AppState,
    unlocked: &support_inboxes::Model,
    inbound: &Inbound,
    lock: bool,
) -> ApiResult<Attempt> {
    let store = &app.store;
    let inbox_id = unlocked.id;
    let tx = store.begin_write().await?;
    let (contact, existing) =
        contacts::upsert(&tx.txn, unlocked.org_id, inbox_id, &inbound.contact, inbound.source).await?;
    // The common case, an open conversation someone has, needs no decision: it takes only
    // the room's row lock (the seq), so messages of different contacts are stored in
    // parallel. Anything else is decided under the inbox's lock, and read again under it.
    let settled = !lock
        && existing.as_ref().is_some_and(|room| {
            matches!(room.status, Some(ConversationStatus::Open | ConversationStatus::Pending))
                && (room.assignee_id.is_some() || unlocked.assignment == AssignmentStrategy::Manual)
        });
    let inbox = if settled { unlocked.clone() } else { assign::lock_inbox(store, &tx.txn, inbox_id).await? };
    let (room, new_members) = match existing.filter(|_| settled) {
        Some(room) => (room, Vec::new()),
        None => conversation(&tx.txn, &inbox, &contact).await?,
    };
    let mut changes = Vec::new();
    let mut room = room;
    if matches!(room.status, Some(ConversationStatus::Resolved | ConversationStatus::Snoozed)) {
        // Its agent keeps it unless they left the inbox (a resolved conversation keeps the
        // agent who resolved it) or were deactivated since: then it is decided again below.
        let assignee = match room.assignee_id {
            Some(agent) if assign::still_agent(&tx.txn, inbox.id, agent).await? => Some(agent),
            _ => None,
        };
        let change = conversations::transition(
            &tx.txn,
            &room,
            ConversationStatus::Open,
            None,
            assignee,
            "contact".into(),
        )
        .await?;
        changes.push(change);
        room = reread(&tx.txn, room.id).await?;
    }
    // A waiting conversation is decided again with every message (capacity may have freed);
    // under manual assignment the decision is recorded once, when the conversation opens.
    let created = !new_members.is_empty() || room.last_seq == 0;
    if room.assignee_id.is_none() && (inbox.assignment != AssignmentStrategy::Manual || created) {
        let decision = assign::decide(app, &tx.txn, &inbox, None).await?;
        assign::apply(store, &tx.txn, &inbox, room.id, &decision).await?;
        if let Some(agent) = decision.chosen {
            let status = room.status.map(|s| conversations::status_name(s).to_owned());
            changes.push(ConversationChangePayload {
                status_from: status.clone(),
                status_to: status,
                assignee_from: None,
                assignee_to: Some(agent),
                by: "assignment".into(),
            });
        }
    }
    // In microseconds, as both backends store it, so the announced message is the stored one.
    let now = db::now();
    // Unlocked, the seq bump also checks that the conversation is still open and assigned.
    let still = if settled {
        "AND status IN ('open', 'pending') AND (assignee_id IS NOT NULL OR $3)"
    } else {
        "AND $3 IS NOT NULL"
    };
    let manual = inbox.assignment == AssignmentStrategy::Manual;
    let bumped = rooms::Model::find_by_statement(store.stmt(
        &format!(
            "UPDATE rooms SET last_seq = last_seq + 1, last_message_at = $2 WHERE id = $1 {still} RETURNING {}",
            columns::<rooms::Entity>(None)
        ),
        vec![room.id.into(), now.into(), manual.into()],
    ))
    .one(&tx.txn)
    .await?;
    let Some(room) = bumped else { return Ok(Attempt::Changed) };
    let message = customer_message(Uuid::now_v7(), &room, contact.id, inbound, now);
    // Without `RETURNING`: sea-orm 2.0.4 reports a `DO NOTHING` as "record not found" when
    // it asks for the row back. The row is `message` as built (times already in microseconds).
    let inserted = messages::Entity::insert(messages::ActiveModel::from(message.clone()))
        .on_conflict_do_nothing_on([
            messages::Column::OrgId,
            messages::Column::Source,
            messages::Column::ExternalId,
        ])
        .exec_without_returning(&tx.txn)
        .await?;
    if !matches!(inserted, TryInsertResult::Inserted(1)) {
        // Dropping the transaction rolls back what this attempt did.
        return Ok(Attempt::Redelivery);
    }
    // Webhooks made for this conversation hear the customer as they hear the agents' replies.
    tx.execute_raw(outbox::message_added(store, room.id, message.id, now)).await?;
    tx.commit().await?;
    Ok(Attempt::Stored(Box::new((MessageRecord::from(message), Announcement { room, new_members, changes }))))
}

/// The row of a customer's message `id`, stored into `room` (as bumped: its seq is the
/// message's) at `now`.
pub(super) fn customer_message(
    id: Uuid,
    room: &rooms::Model,
    contact_id: Uuid,
    inbound: &Inbound,
    now: DateTime<Utc>,
) -> messages::Model {
    messages::Model {
        id,
        org_id: room.org_id,
        room_id: room.id,
        seq: room.last_seq,
        author_user_id: None,
        author_contact_id: Some(contact_id),
        sender_role: SenderRole::User,
        body: inbound.body.as_str().to_owned(),
        source: inbound.source,
        external_id: Some(inbound.external_id.clone()),
        client_id: None,
        reply_to_id: None,
        attachments: attachments_json(&inbound.attachments),
        created_at: now,
        edited_at: None,
        deleted_at: None,
    }
}

async fn find_conversation(
    tx: &DatabaseTransaction,
    inbox_id: Uuid,
    contact_id: Uuid,
) -> ApiResult<Option<rooms::Model>> {
    let room = rooms::Entity::find()
        .filter(rooms::Column::InboxId.eq(inbox_id))
        .filter(rooms::Column::ContactId.eq(contact_id))
        .one(tx)
        .await?;
    Ok(room)
}

async fn reread(tx: &DatabaseTransaction, room_id: Uuid) -> ApiResult<rooms::Model> {
    rooms::Entity::find_by_id(room_id).one(tx).await?.ok_or_else(|| ApiError::not_found("room"))
}

/// The contact's conversation in the inbox, or a new open one whose members are the inbox's
/// agents (returned, to be told).
async fn conversation(
    tx: &DatabaseTransaction,
    inbox: &support_inboxes::Model,
    contact: &contact_rows::Model,
) -> ApiResult<(rooms::Model, Vec<Uuid>)> {
    if let Some(room) = find_conversation(tx, inbox.id, contact.id).await? {
        return Ok((room, Vec::new()));
    }
    let room = rooms::Model {
        name: Some(contacts::label(contact).to_owned()),
        inbox_id: Some(inbox.id),
        contact_id: Some(contact.id),
        status: Some(ConversationStatus::Open),
        // No user opened it: its creator is the inbox.
        ..new_room(inbox.org_id, RoomKind::Support, inbox.id)
    };
    let room = rooms::ActiveModel::from(room).insert(tx).await?;
    let agents = support_inbox_members::Entity::find()
        .filter(support_inbox_members::Column::InboxId.eq(inbox.id))
        .all(tx)
        .await?;
    let ids: Vec<Uuid> = agents.into_iter().map(|a| a.user_id).collect();
    for user_id in &ids {
        // Agents start with nothing read: the customer's first message is unread for them.
        membership::insert(tx, room.id, *user_id, MemberRole::Member, 0).await?;
    }
    Ok((room, ids))
}

/// After commit: agents of a new conversation learn of it first (their subscriptions start
/// following it), then the status and assignment changes, then the message. `way` is how it
/// was stored (`settled`'s one statement, or a transaction), counted on `/metrics`.
async fn announce(app: &AppState, message: &MessageRecord, announcement: Announcement, way: &'static str) {
    let Announcement { room, new_members, changes } = announcement;
    for user_id in new_members {
        let event = Event::MembershipChanged { room_id: room.id, change: MembershipChange::Created, seq: 0 };
        app.bus.publish(Topic::User(user_id), event).await;
    }
    for change in changes {
        conversations::publish(app, room.id, change).await;
    }
    let event = Event::MessageAdded {
        message: Arc::new(MessagePayload::from(message)),
        author: None,
        room: Arc::new(RoomPayload::from(&room)),
        mentioned: Vec::new(),
    };
    app.bus.publish(Topic::Room(room.id), event).await;
    metrics::counter!("parley_inbound_messages_total", "way" => way).increment(1);
}

/// The inbox an inbound webhook names, whoever sends it (the signature decides the rest),
/// from the directory's cache.
pub async fn inbox(app: &AppState, inbox_id: Uuid) -> ApiResult<support_inboxes::Model> {
    app.directory.inbox(&app.store, inbox_id).await?.ok_or_else(|| ApiError::not_found("inbox"))
}

//! PostgreSQL's shortcut for the common inbound message: a known contact writing into their
//! conversation, which is open and has an agent (or needs none, under manual assignment).
//! Such a message decides nothing, so it needs no transaction of its own: one read finds the
//! contact and conversation, and one statement stores the message, bumps the seq and writes
//! the outbox rows. Anything else — a new contact or conversation, a name to fill in, a
//! conversation to reopen or assign, a redelivery — goes the transactional way in `ingest`.
//!
//! The statement inserts before it bumps: the seq is read under the room's row lock, and the
//! bump follows only a row the insert wrote. A redelivery's insert meets the stored
//! `externalId` (`ON CONFLICT DO NOTHING`), so nothing is bumped and no seq is skipped, with
//! no transaction to roll back.

use std::sync::LazyLock;

use chrono::{SubsecRound, Utc};
use sea_orm::{ActiveEnum, DatabaseBackend, FromQueryResult};
use uuid::Uuid;

use super::contacts;
use super::payload::Inbound;
use crate::db::columns;
use crate::error::ApiResult;
use crate::messages::record::{MessageRecord, attachments_json};
use crate::notifications::outbox;
use crate::state::AppState;
use entity::enums::{AssignmentStrategy, ConversationStatus, SenderRole};
use entity::{messages, rooms, support_inboxes};

/// `$1` the room, `$2` the organisation, `$3` the time, `$4` the contact, `$5` the message's
/// id, `$6` its body, `$7` source, `$8` external id, `$9` attachments, `$10` whether the inbox
/// assigns by hand (an unassigned conversation then still takes messages here). Returns the
/// room as bumped, or nothing when the conversation changed since it was read or the message
/// is a redelivery.
static SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH locked AS ( \
           SELECT id, last_seq FROM rooms \
           WHERE id = $1 AND status IN ('open', 'pending') AND (assignee_id IS NOT NULL OR $10) \
           FOR NO KEY UPDATE), \
         message AS ( \
           INSERT INTO messages (id, org_id, room_id, seq, author_contact_id, sender_role, body, source, \
             external_id, attachments, created_at) \
           SELECT $5, $2, locked.id, locked.last_seq + 1, $4, '{user}', $6, $7, $8, $9, $3 FROM locked \
           ON CONFLICT (org_id, source, external_id) DO NOTHING \
           RETURNING id, room_id, seq, created_at), \
         room AS ( \
           UPDATE rooms SET last_seq = message.seq, last_message_at = message.created_at FROM message \
           WHERE rooms.id = message.room_id \
           RETURNING {room_columns}), \
         {deliveries} \
         SELECT * FROM room",
        user = SenderRole::User.to_value(),
        room_columns = columns::<rooms::Entity>(Some("rooms")),
        deliveries = outbox::enqueue_messages_added_cte(),
    )
});

/// Stores `inbound` the short way when it can: the stored message and the room as bumped, or
/// `None` when the message needs the transactional way (nothing was written then).
pub async fn store(
    app: &AppState,
    inbox: &support_inboxes::Model,
    inbound: &Inbound,
) -> ApiResult<Option<(MessageRecord, rooms::Model)>> {
    let store = &app.store;
    if store.backend() != DatabaseBackend::Postgres {
        return Ok(None);
    }
    let manual = inbox.assignment == AssignmentStrategy::Manual;
    let Some((contact, Some(room))) =
        contacts::find(&store.db, inbox.org_id, inbox.id, &inbound.contact).await?
    else {
        return Ok(None);
    };
    let open = matches!(room.status, Some(ConversationStatus::Open | ConversationStatus::Pending));
    if contacts::needs_update(&contact, &inbound.contact) || !open || (room.assignee_id.is_none() && !manual)
    {
        return Ok(None);
    }
    // In microseconds, as it is stored, so the announced message is the stored one.
    let now = Utc::now().trunc_subsecs(6);
    let message = messages::Model {
        id: Uuid::now_v7(),
        org_id: inbox.org_id,
        room_id: room.id,
        seq: 0,
        author_user_id: None,
        author_contact_id: Some(contact.id),
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
    };
    let values = vec![
        room.id.into(),
        inbox.org_id.into(),
        now.into(),
        contact.id.into(),
        message.id.into(),
        message.body.clone().into(),
        inbound.source.to_value().into(),
        inbound.external_id.clone().into(),
        message.attachments.clone().into(),
        manual.into(),
    ];
    let bumped = rooms::Model::find_by_statement(store.stmt(&SQL, values)).one(&store.db).await?;
    Ok(bumped.map(|room| (MessageRecord::from(messages::Model { seq: room.last_seq, ..message }), room)))
}

//! PostgreSQL's shortcut for the common inbound message: a known contact writing into their
//! conversation, which is open and has an agent (or needs none, under manual assignment).
//! Such a message decides nothing, so it needs no transaction of its own: one statement finds
//! the contact and their conversation (`contacts::best_match_sql`, the text the
//! transactional way reads them with), stores the message, bumps the seq and writes the
//! outbox rows. Anything else — a new contact or conversation, a name to fill in, a
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

use super::payload::Inbound;
use super::{contacts, ingest};
use crate::db::columns;
use crate::error::{ApiError, ApiResult};
use crate::messages::record::{MessageRecord, attachments_json};
use crate::notifications::outbox;
use crate::state::AppState;
use entity::enums::{AssignmentStrategy, SenderRole};
use entity::{rooms, support_inboxes};

/// `$1`–`$5` those of `contacts::best_match_sql`, `$6` the time, `$7` the message's id, `$8`
/// its body, `$9` source, `$10` external id, `$11` attachments, `$12` whether the inbox
/// assigns by hand (an unassigned conversation then still takes messages here), `$13` the
/// contact's name as sent (a contact without one takes the transactional way, which fills it
/// in). Returns the room as bumped (its `contact_id` the message's author), or nothing when
/// the message needs the transactional way.
static SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH contact AS ({best_match}), \
         locked AS ( \
           SELECT rooms.id, rooms.last_seq, contact.id AS contact_id FROM rooms JOIN contact ON rooms.id = contact.r_id \
           WHERE rooms.status IN ('open', 'pending') AND (rooms.assignee_id IS NOT NULL OR $12) \
             AND (contact.display_name IS NOT NULL OR $13::text IS NULL) \
           FOR NO KEY UPDATE OF rooms), \
         message AS ( \
           INSERT INTO messages (id, org_id, room_id, seq, author_contact_id, sender_role, body, source, \
             external_id, attachments, created_at) \
           SELECT $7, $1, locked.id, locked.last_seq + 1, locked.contact_id, '{user}', $8, $9, $10, $11, $6 \
           FROM locked \
           ON CONFLICT (org_id, source, external_id) DO NOTHING \
           RETURNING id, room_id, seq, created_at), \
         room AS ( \
           UPDATE rooms SET last_seq = message.seq, last_message_at = message.created_at FROM message \
           WHERE rooms.id = message.room_id \
           RETURNING {room_columns}), \
         {deliveries} \
         SELECT * FROM room",
        best_match = contacts::best_match_sql(),
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
    // In microseconds, as it is stored, so the announced message is the stored one.
    let now = Utc::now().trunc_subsecs(6);
    let id = Uuid::now_v7();
    let mut values = contacts::best_match_values(inbox.org_id, inbox.id, &inbound.contact);
    values.extend([
        now.into(),
        id.into(),
        inbound.body.as_str().into(),
        inbound.source.to_value().into(),
        inbound.external_id.clone().into(),
        attachments_json(&inbound.attachments).into(),
        (inbox.assignment == AssignmentStrategy::Manual).into(),
        inbound.contact.name.clone().into(),
    ]);
    let Some(room) = rooms::Model::find_by_statement(store.stmt(&SQL, values)).one(&store.db).await? else {
        return Ok(None);
    };
    // The statement found the room by its contact, so it has one.
    let contact_id = room
        .contact_id
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a conversation without contact")))?;
    let message = ingest::customer_message(id, &room, contact_id, inbound, now);
    Ok(Some((MessageRecord::from(message), room)))
}

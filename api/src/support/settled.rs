//! PostgreSQL's shortcut for the common inbound message: a known contact writing into their
//! conversation, which is open and has an agent (or needs none, under manual assignment).
//! Such a message decides nothing, so it needs no transaction of its own: one statement finds
//! the contact and their conversation (`contacts::best_match_sql`, the text the
//! transactional way reads them with), stores the message, bumps the seq and writes the
//! outbox rows. Anything else — a new contact or conversation, a name, phone, email or
//! reference to fill in, a conversation to reopen or assign, a redelivery — goes the
//! transactional way in `ingest`.
//!
//! The statement takes its messages as rows, so the ones that arrive at an inbox on this
//! instance while one is being stored run together as one statement and one commit (the
//! inbox's lane in `messages::group_commit`): PostgreSQL spends most of a message's CPU
//! starting a statement and committing it, not writing its rows. A lone message is a batch
//! of one.
//!
//! The statement inserts before it bumps: the seq is read under the room's row lock, and the
//! bump follows only a row the insert wrote. A redelivery's insert meets the stored
//! `externalId` (`ON CONFLICT DO NOTHING`), so nothing is bumped and no seq is skipped, with
//! no transaction to roll back.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveEnum, DatabaseBackend, Statement};
use serde_json::json;
use uuid::Uuid;

use super::payload::Inbound;
use super::{contacts, ingest};
use crate::db::{self, columns};
use crate::error::{ApiError, ApiResult};
use crate::messages::record::{MessageRecord, attachments_json};
use crate::messages::statement::{BatchRow, SendStatement};
use crate::notifications::outbox;
use crate::state::AppState;
use entity::enums::{AssignmentStrategy, SenderRole};
use entity::{rooms, support_inboxes};

/// `$1` a JSON array of [`row`]s, each its own message. Returns the rooms as bumped (each
/// `contact_id` its message's author), each with the id of the message it took
/// (`message_id`); a message missing from the answer needs the transactional way, or, in a
/// batch, came after another one into the same conversation (a room is bumped once per
/// statement), and is run again alone. Rooms are locked in id order, so two instances'
/// batches over the same rooms queue instead of deadlocking; two batches that carry one
/// `externalId` into different rooms (one email's id sent to two inboxes) can still deadlock
/// on the insert, and PostgreSQL then refuses one, whose messages run again alone. The lock
/// re-checks the room's status, assignee, contact and inbox as they are once it is held.
pub static SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH input AS MATERIALIZED ( \
           SELECT * FROM jsonb_to_recordset($1::jsonb) AS input(org_id uuid, inbox_id uuid, external_ref text, \
             phone text, email text, name text, manual boolean, id uuid, at timestamptz, body text, source text, \
             external_id text, attachments jsonb)), \
         found AS MATERIALIZED ( \
           SELECT DISTINCT ON (contact.r_id) input.id AS message_id, contact.id AS contact_id, contact.r_id AS room_id \
           FROM input CROSS JOIN LATERAL ({best_match}) AS contact \
           WHERE contact.r_id IS NOT NULL AND (contact.display_name IS NOT NULL OR input.name IS NULL) \
             AND (contact.phone IS NOT NULL OR input.phone IS NULL OR input.source <> 'sms') \
             AND (contact.email IS NOT NULL OR input.email IS NULL OR input.source <> 'email') \
             AND (contact.external_ref IS NOT NULL OR input.external_ref IS NULL OR input.source <> 'api') \
           ORDER BY contact.r_id, input.id), \
         locked AS ( \
           SELECT rooms.id, rooms.last_seq, found.message_id, found.contact_id \
           FROM rooms JOIN found ON rooms.id = found.room_id JOIN input ON input.id = found.message_id \
           WHERE rooms.status IN ('open', 'pending') AND (rooms.assignee_id IS NOT NULL OR input.manual) \
             AND rooms.contact_id = found.contact_id AND rooms.inbox_id = input.inbox_id \
           ORDER BY rooms.id FOR NO KEY UPDATE OF rooms), \
         message AS ( \
           INSERT INTO messages (id, org_id, room_id, seq, author_contact_id, sender_role, body, source, \
             external_id, attachments, created_at) \
           SELECT input.id, input.org_id, locked.id, locked.last_seq + 1, locked.contact_id, '{user}', input.body, \
             input.source, input.external_id, input.attachments, input.at \
           FROM locked JOIN input ON input.id = locked.message_id \
           ON CONFLICT (org_id, source, external_id) DO NOTHING \
           RETURNING id, room_id, seq, created_at), \
         room AS ( \
           UPDATE rooms SET last_seq = message.seq, last_message_at = message.created_at FROM message \
           WHERE rooms.id = message.room_id \
           RETURNING {room_columns}, message.id AS message_id), \
         {deliveries} \
         SELECT * FROM room",
        best_match = contacts::best_match_sql([
            "input.org_id",
            "input.inbox_id",
            "input.external_ref",
            "input.phone",
            "input.email"
        ]),
        user = SenderRole::User.to_value(),
        room_columns = columns::<rooms::Entity>(Some("rooms")),
        deliveries = outbox::enqueue_messages_added_cte(),
    )
});

/// Stores `inbound` the short way when it can, with the messages that arrive beside it at
/// the inbox on this instance (`messages::group_commit`): the stored message and the room as
/// bumped, or `None` when the message needs the transactional way (nothing was written then).
pub async fn store(
    app: &AppState,
    inbox: &support_inboxes::Model,
    inbound: &Inbound,
) -> ApiResult<Option<(MessageRecord, rooms::Model)>> {
    if app.store.backend() != DatabaseBackend::Postgres {
        return Ok(None);
    }
    // In microseconds, as it is stored, so the announced message is the stored one.
    let now = db::now();
    let id = Uuid::now_v7();
    let values = row(inbox, inbound, id, now);
    let statement =
        Statement::from_sql_and_values(DatabaseBackend::Postgres, SQL.as_str(), [json!([values]).into()]);
    let send = SendStatement { statement, row: Some(BatchRow { sql: SQL.as_str(), message_id: id, values }) };
    let Some(room) = app.group_commit.inbound(&app.store, inbox.id, send).await? else {
        return Ok(None);
    };
    // The statement found the room by its contact, so it has one.
    let contact_id = room
        .contact_id
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a conversation without contact")))?;
    let message = ingest::customer_message(id, &room, contact_id, inbound, now);
    Ok(Some((MessageRecord::from(message), room)))
}

/// `inbound`, to be stored as message `id` at `now`, as a row of [`SQL`]'s input. The name
/// is there to be compared: a contact without one (or without the address the message came
/// by, `contacts::vouched`) takes the transactional way, which fills it in. Under manual assignment an unassigned conversation still takes messages here.
fn row(inbox: &support_inboxes::Model, inbound: &Inbound, id: Uuid, now: DateTime<Utc>) -> serde_json::Value {
    let contact = &inbound.contact;
    json!({
        "org_id": inbox.org_id,
        "inbox_id": inbox.id,
        "external_ref": contact.external_ref,
        "phone": contact.phone,
        "email": contact.email,
        "name": contact.name,
        "manual": inbox.assignment == AssignmentStrategy::Manual,
        "id": id,
        "at": now,
        "body": inbound.body.as_str(),
        "source": inbound.source.to_value(),
        "external_id": inbound.external_id,
        "attachments": attachments_json(&inbound.attachments),
    })
}

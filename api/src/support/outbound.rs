//! Agents' replies to contacts who write by SMS or email, delivered to the inbox's outbound
//! webhook (an SMS gateway, a mail bridge). Each reply is a row of the notification outbox (channel `outbound`), written
//! in the send's own statement or transaction, so retries, backoff, leases and the
//! idempotency key are the outbox's; `Message.delivery` shows where it stands.
//!
//! The body names the message, the conversation and the contact (with the channel they last
//! wrote through, for the gateway to route); it is signed like the inbound webhook, with the
//! inbox secret, so one secret serves both directions.

use sea_orm::{ActiveEnum, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use crate::notifications::post::{self, Target};
use crate::notifications::worker::Failure;
use crate::state::AppState;
use entity::{contacts, messages, notification_deliveries, rooms, support_inboxes};

/// Whether the contact of conversation `{room}` last wrote through SMS or email: replies go
/// out only there (an `api` conversation's system reads them through the API).
fn sms_or_email(room: &str) -> String {
    format!(
        "(SELECT m.source FROM messages m WHERE m.room_id = {room}.id AND m.author_contact_id IS NOT NULL \
          ORDER BY m.seq DESC LIMIT 1) IN ('sms', 'email')"
    )
}

/// PostgreSQL: a CTE of the one-statement send (`room` and `message` are its CTEs; `$1` the
/// room, `$2` the organisation, `$3` the time, `$4` the author, `$5` the message id).
pub fn enqueue_cte() -> String {
    format!(
        "outbound AS ( \
           INSERT INTO notification_deliveries (id, org_id, channel, event, room_id, message_id, status, attempts, \
             next_attempt_at, created_at) \
           SELECT gen_random_uuid(), $2, 'outbound', 'MESSAGE_ADDED', $1, $5, 'pending', 0, $3, $3 \
           FROM room JOIN support_inboxes i ON i.id = room.inbox_id, message \
           WHERE room.kind = 'support' AND i.outbound_webhook_url IS NOT NULL AND {})",
        sms_or_email("room")
    )
}

/// SQLite: a statement of the send's transaction (`$1` the room, `$2` the message id, `$3`
/// the time).
pub fn enqueue_statement() -> String {
    format!(
        "INSERT INTO notification_deliveries (id, org_id, channel, event, room_id, message_id, status, attempts, \
           next_attempt_at, created_at) \
         SELECT randomblob(16), r.org_id, 'outbound', 'MESSAGE_ADDED', r.id, $2, 'pending', 0, $3, $3 \
         FROM rooms r JOIN support_inboxes i ON i.id = r.inbox_id \
         WHERE r.id = $1 AND r.kind = 'support' AND i.outbound_webhook_url IS NOT NULL AND {}",
        sms_or_email("r")
    )
}

pub(crate) async fn attempt(
    state: &AppState,
    client: &reqwest::Client,
    message: Option<&messages::Model>,
    delivery: &notification_deliveries::Model,
) -> Result<(), Failure> {
    let db = &state.store.db;
    let reading = |e: sea_orm::DbErr| Failure::reading(e.into());
    let message = message.ok_or_else(|| Failure::Permanent("the message no longer exists".into()))?;
    if message.deleted_at.is_some() {
        return Err(Failure::Cancelled("the message was deleted before it was sent".into()));
    }
    let room = rooms::Entity::find_by_id(message.room_id).one(db).await.map_err(reading)?;
    let room = room.ok_or_else(|| Failure::Permanent("the conversation no longer exists".into()))?;
    let inbox = match room.inbox_id {
        Some(id) => support_inboxes::Entity::find_by_id(id).one(db).await.map_err(reading)?,
        None => None,
    };
    let inbox = inbox.ok_or_else(|| Failure::Permanent("the inbox no longer exists".into()))?;
    let url = inbox
        .outbound_webhook_url
        .as_deref()
        .ok_or_else(|| Failure::Cancelled("the inbox has no outbound URL any more".into()))?;
    let contact = match room.contact_id {
        Some(id) => contacts::Entity::find_by_id(id).one(db).await.map_err(reading)?,
        None => None,
    };
    let contact = contact.ok_or_else(|| Failure::Permanent("the contact no longer exists".into()))?;
    // The channel the contact last wrote through: where the gateway sends the reply.
    let last_inbound = messages::Entity::find()
        .filter(messages::Column::RoomId.eq(room.id))
        .filter(messages::Column::AuthorContactId.eq(contact.id))
        .order_by_desc(messages::Column::Seq)
        .one(db)
        .await
        .map_err(reading)?;
    let agent = match message.author_user_id {
        Some(id) => state.directory.user(&state.store, id).await.map_err(Failure::reading)?,
        None => None,
    };
    let body = json!({
        "event": "MESSAGE_ADDED",
        "deliveryId": delivery.id,
        "inboxId": inbox.id,
        "conversationId": room.id,
        "channel": last_inbound.map(|m| m.source.to_value()),
        "message": {
            "id": message.id,
            "seq": message.seq,
            "body": message.body,
            "createdAt": message.created_at,
            "attachments": message.attachments,
        },
        "contact": {
            "id": contact.id,
            "name": contact.display_name,
            "phone": contact.phone,
            "email": contact.email,
            "externalRef": contact.external_ref,
        },
        "agent": agent.map(|a| json!({ "id": a.id, "handle": a.handle, "displayName": a.display_name })),
    });
    post::post(state, client, Target { url, secret: &inbox.webhook_secret }, delivery, body.to_string()).await
}

//! What a webhook delivery posts — a message added or a conversation assigned, as Parley's
//! JSON or Slack's `{"text": …}` — and the signature headers. Bodies are rendered when the delivery is attempted, from the stored
//! rows: a message edited or deleted before its delivery goes out edited or deleted.
//!
//! Signature: `X-Parley-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with the
//! webhook's secret, and `X-Parley-Timestamp: <unix seconds>`. Signing the timestamp with
//! the body means a captured request cannot be replayed later with a fresh timestamp.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::support::contacts::label as contact_label;
use entity::enums::WebhookFormat;
use entity::{contacts, messages, rooms, support_inboxes, users};

/// What a `MESSAGE_ADDED` delivery is about, as stored now.
pub struct MessageAdded<'a> {
    pub delivery_id: Uuid,
    pub message: &'a messages::Model,
    pub room: &'a rooms::Model,
    pub author: Option<&'a users::Model>,
    /// The conversation's customer, in a support conversation (the message's writer when
    /// `message.author_contact_id` says so; `author` is then `None`).
    pub customer: Customer<'a>,
}

impl MessageAdded<'_> {
    /// The contact who wrote the message, if a customer did.
    fn contact(&self) -> Option<&contacts::Model> {
        self.customer.contact.filter(|c| self.message.author_contact_id == Some(c.id))
    }
}

/// A support conversation's customer as stored now and its inbox (the directory's copy);
/// `None` for other rooms.
#[derive(Clone, Copy, Default)]
pub struct Customer<'a> {
    pub contact: Option<&'a contacts::Model>,
    pub inbox: Option<&'a support_inboxes::Model>,
}

pub fn message_added(format: WebhookFormat, event: &MessageAdded<'_>) -> Value {
    match format {
        WebhookFormat::Json => json_body(event),
        WebhookFormat::Slack => json!({ "text": slack_text(event) }),
    }
}

fn json_body(event: &MessageAdded<'_>) -> Value {
    let MessageAdded { delivery_id, message, room, author, .. } = event;
    let deleted = message.deleted_at.is_some();
    json!({
        "event": "MESSAGE_ADDED",
        "deliveryId": delivery_id,
        "organizationId": message.org_id,
        "message": {
            "id": message.id,
            "seq": message.seq,
            "body": (!deleted).then_some(&message.body),
            "createdAt": message.created_at,
            "editedAt": message.edited_at,
            "deleted": deleted,
        },
        "room": { "id": room.id, "name": room.name, "kind": sea_orm::ActiveEnum::to_value(&room.kind) },
        "author": author.map(|a| json!({ "id": a.id, "handle": a.handle, "displayName": a.display_name })),
        "contact": event.contact().map(contact_json),
    })
}

/// A contact as both events show one.
fn contact_json(c: &contacts::Model) -> Value {
    json!({ "id": c.id, "name": c.display_name, "phone": c.phone, "email": c.email, "externalRef": c.external_ref })
}

/// A support conversation's assignment, as stored now.
pub struct ConversationAssigned<'a> {
    pub delivery_id: Uuid,
    pub room: &'a rooms::Model,
    pub assignee: Option<&'a users::Model>,
    pub contact: Option<&'a contacts::Model>,
    pub inbox: Option<&'a support_inboxes::Model>,
}

pub fn conversation_assigned(format: WebhookFormat, event: &ConversationAssigned<'_>) -> Value {
    let ConversationAssigned { delivery_id, room, assignee, contact, inbox } = event;
    match format {
        WebhookFormat::Json => json!({
            "event": "CONVERSATION_ASSIGNED",
            "deliveryId": delivery_id,
            "organizationId": room.org_id,
            "conversation": {
                "id": room.id,
                "name": room.name,
                "status": room.status.map(|s| sea_orm::ActiveEnum::to_value(&s)),
                "inbox": inbox.map(|i| json!({ "id": i.id, "name": i.name })),
            },
            "assignee": assignee.map(|a| json!({ "id": a.id, "handle": a.handle, "displayName": a.display_name })),
            "contact": contact.map(contact_json),
        }),
        WebhookFormat::Slack => {
            let who = room.name.as_deref().unwrap_or("a customer");
            let whom = assignee.map_or("nobody", |a| a.display_name.as_str());
            let place = inbox.map(|i| format!(" in {}", escape(&i.name))).unwrap_or_default();
            json!({ "text": format!("Conversation with *{}*{place} assigned to *{}*", escape(who), escape(whom)) })
        }
    }
}

/// "*Alice* in #general: hello"; in a support conversation (named after its customer) the
/// inbox and, for an agent's reply, whom it answers: "*Dana* in SMS: hello", "*Sam* in SMS
/// with Dana: hi". Escaped as Slack's mrkdwn requires (`&`, `<`, `>`).
fn slack_text(event: &MessageAdded<'_>) -> String {
    let MessageAdded { author, customer, room, .. } = event;
    let writer = event.contact().map(contact_label);
    let author = author.map(|a| a.display_name.as_str()).or(writer).unwrap_or("Someone");
    let room = match (customer.inbox, room.name.as_deref()) {
        (Some(inbox), _) => match customer.contact.filter(|_| writer.is_none()) {
            Some(contact) => format!("{} with {}", inbox.name, contact_label(contact)),
            None => inbox.name.clone(),
        },
        (None, Some(name)) => format!("#{name}"),
        (None, None) => "a conversation".to_owned(),
    };
    let body = if event.message.deleted_at.is_some() { "(deleted)" } else { event.message.body.as_str() };
    format!("*{}* in {}: {}", escape(author), escape(&room), escape(body))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `sha256=<hex>` over `"<timestamp>.<body>"`. (HMAC takes keys of any length; the error
/// exists only in the trait's signature.)
pub fn signature(
    secret: &str,
    timestamp: DateTime<Utc>,
    body: &[u8],
) -> Result<String, hmac::digest::InvalidLength> {
    let mac = signing_mac(secret, &timestamp.timestamp().to_string(), body)?;
    Ok(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

/// The HMAC-SHA256 of `"<timestamp>.<body>"` with `secret`: the one signature scheme of
/// outgoing webhooks, support replies, and inbound support webhooks (which check it with
/// `verify_slice`, in constant time).
pub(crate) fn signing_mac(
    secret: &str,
    timestamp: &str,
    body: &[u8],
) -> Result<Hmac<Sha256>, hmac::digest::InvalidLength> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("a time");
        let sign = |secret: &str, at: DateTime<Utc>, body: &[u8]| signature(secret, at, body).ok();
        let signed = sign("secret", at, b"{}").unwrap_or_default();
        assert!(signed.starts_with("sha256=") && signed.len() == 7 + 64);
        assert_ne!(Some(&signed), sign("secret", at + chrono::Duration::seconds(1), b"{}").as_ref());
        assert_ne!(Some(&signed), sign("secret", at, b"{ }").as_ref());
        assert_ne!(Some(&signed), sign("other", at, b"{}").as_ref());
    }

    #[test]
    fn slack_text_is_escaped() {
        assert_eq!(escape("a <b> & c"), "a &lt;b&gt; &amp; c");
    }
}

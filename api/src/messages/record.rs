//! `MessageRecord`: a message as services return it, and `LiveMessage`: a message as the
//! `messageAdded` feed delivers it. Conversions to and from the bus payloads live here.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::bus::{AttachmentPayload, MessagePayload, RoomPayload, UserPayload};
use crate::directory::{room_of, user_of};
use entity::enums::{MessageSource, SenderRole};
use entity::{messages, rooms, users};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub url: String,
    pub content_type: String,
    pub size: i64,
}

impl Attachment {
    /// Longest name and content type, in characters.
    pub const MAX_NAME: usize = 255;
    /// Longest url, in bytes.
    pub const MAX_URL: usize = 8192;

    /// What is wrong with the attachment as given, if anything. Its text travels with every
    /// frame of the message, so it is bounded like the body; its url is a link a client will
    /// open, so only http(s) is taken (never `javascript:` or `data:`).
    pub fn problem(&self) -> Option<String> {
        let (max_name, max_url) = (Self::MAX_NAME, Self::MAX_URL);
        let web = url::Url::parse(&self.url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if self.name.trim().is_empty() || self.url.trim().is_empty() || self.size < 0 {
            Some("each needs a name, a url and a size ≥ 0".into())
        } else if self.name.chars().count() > max_name || self.content_type.chars().count() > max_name {
            Some(format!("name and contentType: at most {max_name} characters"))
        } else if self.url.len() > max_url || !web {
            Some(format!("url: an http or https address of at most {max_url} bytes"))
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub id: Uuid,
    pub org_id: Uuid,
    pub room_id: Uuid,
    pub seq: i64,
    pub author_user_id: Option<Uuid>,
    /// The contact who wrote it, in a support conversation.
    pub author_contact_id: Option<Uuid>,
    pub sender_role: String,
    /// Empty once deleted: a deleted body is never sent anywhere.
    pub body: String,
    pub source: String,
    pub client_id: Option<String>,
    pub reply_to_id: Option<Uuid>,
    pub attachments: Vec<Attachment>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A message on its way to subscribers. One that arrived in a bus event keeps the event's
/// payloads (shared with every other local subscriber's feed) and its author and room as they
/// were at sending time, so a frame needs no database work; it is converted into a record only
/// when a frame is rendered from it, which subscribers sharing a document do once between
/// them. Messages read back from the database (catch-up, replay, edits) carry neither author
/// nor room and are completed through the directory cache.
#[derive(Debug, Clone)]
pub enum LiveMessage {
    Event {
        message: Arc<MessagePayload>,
        author: Option<Arc<UserPayload>>,
        room: Arc<RoomPayload>,
    },
    /// Boxed: the event variant is three pointers, and feeds move these on every item.
    Stored(Box<MessageRecord>),
}

impl From<MessageRecord> for LiveMessage {
    fn from(message: MessageRecord) -> Self {
        Self::Stored(Box::new(message))
    }
}

impl LiveMessage {
    pub fn id(&self) -> Uuid {
        match self {
            Self::Event { message, .. } => message.id,
            Self::Stored(m) => m.id,
        }
    }

    pub fn room_id(&self) -> Uuid {
        match self {
            Self::Event { message, .. } => message.room_id,
            Self::Stored(m) => m.room_id,
        }
    }

    pub fn seq(&self) -> i64 {
        match self {
            Self::Event { message, .. } => message.seq,
            Self::Stored(m) => m.seq,
        }
    }

    /// What tells this message's versions apart: when it was deleted or last edited.
    pub fn version(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Event { message, .. } => message.deleted_at.or(message.edited_at),
            Self::Stored(m) => m.version(),
        }
    }

    /// The record, and the author and room it was sent with when it came from an event.
    pub fn into_parts(self) -> (MessageRecord, Option<users::Model>, Option<rooms::Model>) {
        match self {
            Self::Event { message, author, room } => {
                (MessageRecord::from(&*message), author.as_deref().and_then(user_of), room_of(&room))
            }
            Self::Stored(record) => (*record, None, None),
        }
    }
}

impl MessageRecord {
    /// What tells this message's versions apart: when it was deleted or last edited.
    pub fn version(&self) -> Option<DateTime<Utc>> {
        self.deleted_at.or(self.edited_at)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    pub fn sender_role(&self) -> SenderRole {
        match self.sender_role.as_str() {
            "assistant" => SenderRole::Assistant,
            "system" => SenderRole::System,
            _ => SenderRole::User,
        }
    }

    pub fn source(&self) -> MessageSource {
        match self.source.as_str() {
            "sms" => MessageSource::Sms,
            "email" => MessageSource::Email,
            "api" => MessageSource::Api,
            _ => MessageSource::Chat,
        }
    }
}

impl From<messages::Model> for MessageRecord {
    fn from(m: messages::Model) -> Self {
        let deleted = m.deleted_at.is_some();
        Self {
            id: m.id,
            org_id: m.org_id,
            room_id: m.room_id,
            seq: m.seq,
            author_user_id: m.author_user_id,
            author_contact_id: m.author_contact_id,
            sender_role: sea_orm::ActiveEnum::to_value(&m.sender_role),
            body: if deleted { String::new() } else { m.body },
            source: sea_orm::ActiveEnum::to_value(&m.source),
            client_id: m.client_id,
            reply_to_id: m.reply_to_id,
            attachments: if deleted { Vec::new() } else { attachments_of(m.attachments) },
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
        }
    }
}

/// Stored attachments; a row written by Parley always parses.
pub fn attachments_of(json: serde_json::Value) -> Vec<Attachment> {
    let payloads: Vec<AttachmentPayload> = serde_json::from_value(json).unwrap_or_default();
    payloads.into_iter().map(Attachment::from).collect()
}

/// Attachments as stored (a JSON list).
pub fn attachments_json(attachments: &[Attachment]) -> serde_json::Value {
    let payloads: Vec<AttachmentPayload> = attachments.iter().cloned().map(AttachmentPayload::from).collect();
    serde_json::to_value(payloads).unwrap_or_default()
}

impl From<AttachmentPayload> for Attachment {
    fn from(a: AttachmentPayload) -> Self {
        Self { name: a.name, url: a.url, content_type: a.content_type, size: a.size }
    }
}

impl From<Attachment> for AttachmentPayload {
    fn from(a: Attachment) -> Self {
        Self { name: a.name, url: a.url, content_type: a.content_type, size: a.size }
    }
}

impl From<&MessageRecord> for MessagePayload {
    fn from(m: &MessageRecord) -> Self {
        Self {
            id: m.id,
            org_id: m.org_id,
            room_id: m.room_id,
            seq: m.seq,
            author_user_id: m.author_user_id,
            author_contact_id: m.author_contact_id,
            sender_role: m.sender_role.clone(),
            body: m.body.clone(),
            source: m.source.clone(),
            client_id: m.client_id.clone(),
            reply_to_id: m.reply_to_id,
            attachments: m.attachments.iter().cloned().map(AttachmentPayload::from).collect(),
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
        }
    }
}

impl From<&MessagePayload> for MessageRecord {
    fn from(m: &MessagePayload) -> Self {
        Self {
            id: m.id,
            org_id: m.org_id,
            room_id: m.room_id,
            seq: m.seq,
            author_user_id: m.author_user_id,
            author_contact_id: m.author_contact_id,
            sender_role: m.sender_role.clone(),
            body: m.body.clone(),
            source: m.source.clone(),
            client_id: m.client_id.clone(),
            reply_to_id: m.reply_to_id,
            attachments: m.attachments.iter().cloned().map(Attachment::from).collect(),
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
        }
    }
}

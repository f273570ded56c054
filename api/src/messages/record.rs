//! `MessageRecord`: a message as services return it and as the bus carries it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use entity::enums::{MessageSource, SenderRole};
use entity::messages;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub url: String,
    pub content_type: String,
    pub size: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: Uuid,
    pub org_id: Uuid,
    pub room_id: Uuid,
    pub seq: i64,
    pub author_user_id: Option<Uuid>,
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

impl MessageRecord {
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
            sender_role: sea_orm::ActiveEnum::to_value(&m.sender_role),
            body: if deleted { String::new() } else { m.body },
            source: sea_orm::ActiveEnum::to_value(&m.source),
            client_id: m.client_id,
            reply_to_id: m.reply_to_id,
            attachments: if deleted {
                Vec::new()
            } else {
                serde_json::from_value(m.attachments).unwrap_or_default()
            },
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
        }
    }
}

//! GraphQL types of messages.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::record::{Attachment as AttachmentRecord, MessageRecord};
use crate::graphql::context::ContextExt;
use crate::graphql::enums::{MessageSource, SenderRole};
use crate::graphql::ids::to_id;
use crate::graphql::loaders::{MessageKey, UserKey};
use crate::rooms::types::{Room, room_by_id};
use crate::users::types::User;

pub struct Message(pub MessageRecord);

#[Object]
impl Message {
    pub async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// Position in the room: gap-free and strictly increasing.
    async fn seq(&self) -> i64 {
        self.0.seq
    }
    /// Null once the message is deleted.
    async fn body(&self) -> Option<&str> {
        (!self.0.is_deleted()).then_some(self.0.body.as_str())
    }
    async fn room(&self, ctx: &Context<'_>) -> Result<Room> {
        room_by_id(ctx, self.0.room_id).await
    }
    async fn author(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(author) = self.0.author_user_id else { return Ok(None) };
        Ok(ctx.loaders()?.load_one(UserKey(author)).await?.map(User))
    }
    async fn sender_role(&self) -> SenderRole {
        self.0.sender_role().into()
    }
    async fn source(&self) -> MessageSource {
        self.0.source().into()
    }
    /// The sender's idempotency key, echoed so a client can match its optimistic message.
    async fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }
    async fn reply_to(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        let Some(parent) = self.0.reply_to_id else { return Ok(None) };
        Ok(ctx.loaders()?.load_one(MessageKey(parent)).await?.map(Message))
    }
    async fn attachments(&self) -> Vec<Attachment> {
        self.0.attachments.iter().cloned().map(Attachment::from).collect()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn edited_at(&self) -> Option<DateTime<Utc>> {
        self.0.edited_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
}

#[derive(SimpleObject)]
pub struct Attachment {
    pub name: String,
    pub url: String,
    pub content_type: String,
    pub size: i64,
}

impl From<AttachmentRecord> for Attachment {
    fn from(a: AttachmentRecord) -> Self {
        Self { name: a.name, url: a.url, content_type: a.content_type, size: a.size }
    }
}

#[derive(InputObject)]
pub struct AttachmentInput {
    pub name: String,
    pub url: String,
    pub content_type: String,
    pub size: i64,
}

impl From<AttachmentInput> for AttachmentRecord {
    fn from(a: AttachmentInput) -> Self {
        Self { name: a.name, url: a.url, content_type: a.content_type, size: a.size }
    }
}

#[derive(InputObject)]
pub struct SendMessageInput {
    pub room_id: ID,
    pub body: String,
    /// Idempotency key: a retry with the same key returns the stored message.
    pub client_id: Option<String>,
    pub reply_to_id: Option<ID>,
    #[graphql(default)]
    pub attachments: Vec<AttachmentInput>,
}

#[derive(InputObject)]
pub struct EditMessageInput {
    pub message_id: ID,
    pub body: String,
}

pub type MessageConnection = async_graphql::connection::Connection<String, Message>;

//! GraphQL types of messages.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::record::{Attachment as AttachmentRecord, LiveMessage, MessageRecord};
use crate::graphql::context::ContextExt;
use crate::graphql::enums::{MessageSource, SenderRole};
use crate::graphql::frames::FrameKey;
use crate::graphql::ids::to_id;
use crate::graphql::live::LiveItem;
use crate::graphql::loaders::{MessageKey, ReceiptsKey, RoomKey, SavedKey, UserKey};
use crate::notifications::types::NotificationDelivery;
use crate::rooms::types::{Room, readable_room, room_by_id};
use crate::support::loaders::{ContactKey, OutboundDeliveryKey};
use crate::support::types::Contact;
use crate::users::types::User;
use entity::enums::RoomKind;
use entity::{rooms, users};

/// Receipts read to count who read a message: every member of a direct room (at most 9).
const RECEIPTS_READ_FOR_READ_BY: u64 = 100;

/// A message. Delivered live, it carries its author and room as they were when it was sent,
/// so the common selections resolve without the database; otherwise they are looked up
/// through the directory cache.
pub struct Message {
    record: MessageRecord,
    author: Option<Box<users::Model>>,
    room: Option<Box<rooms::Model>>,
}

impl From<MessageRecord> for Message {
    fn from(record: MessageRecord) -> Self {
        Self { record, author: None, room: None }
    }
}

impl From<LiveMessage> for Message {
    fn from(live: LiveMessage) -> Self {
        let (record, author, room) = live.into_parts();
        Self { record, author: author.map(Box::new), room: room.map(Box::new) }
    }
}

impl Message {
    /// A `messageAdded` item, shared by the subscribers of one document. The key names the
    /// message's version and whether it came from an event (with its author and room as they
    /// were) or from the database.
    /// The item is converted from `live` only if a frame is rendered from it.
    pub fn shared(live: LiveMessage, kind: &'static str) -> LiveItem<Self> {
        let version = live.version().map(|t| t.timestamp_micros()).unwrap_or(0);
        let from_event = matches!(live, LiveMessage::Event { .. });
        let key = FrameKey::new(kind, live.id(), [version, i64::from(from_event), 0, 0, 0, 0]);
        LiveItem::shared_later(key, move || Self::from(live))
    }
}

#[Object]
impl Message {
    pub async fn id(&self) -> ID {
        to_id(self.record.id)
    }
    /// Position in the room: gap-free and strictly increasing.
    async fn seq(&self) -> i64 {
        self.record.seq
    }
    /// Null once the message is deleted.
    async fn body(&self) -> Option<&str> {
        (!self.record.is_deleted()).then_some(self.record.body.as_str())
    }
    async fn room_id(&self) -> ID {
        to_id(self.record.room_id)
    }
    async fn room(&self, ctx: &Context<'_>) -> Result<Room> {
        match &self.room {
            Some(room) => Ok(Room::from(rooms::Model::clone(room))),
            None => room_by_id(ctx, self.record.room_id).await,
        }
    }
    /// The author's user id; null for messages from contacts and the system.
    async fn author_id(&self) -> Option<ID> {
        self.record.author_user_id.map(to_id)
    }
    async fn author(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(author) = self.record.author_user_id else { return Ok(None) };
        if let Some(user) = self.author.as_ref().filter(|u| u.id == author) {
            return Ok(Some(User(users::Model::clone(user))));
        }
        Ok(ctx.loaders()?.load_one(UserKey(author)).await?.map(User))
    }
    /// Where an agent's reply in a support conversation stands on its way to the contact
    /// (the inbox's outbound webhook); null for other messages.
    async fn delivery(&self, ctx: &Context<'_>) -> Result<Option<NotificationDelivery>> {
        Ok(ctx.loaders()?.load_one(OutboundDeliveryKey(self.record.id)).await?.map(NotificationDelivery))
    }
    /// The customer who wrote it, in a support conversation (`author` is then null).
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        let Some(id) = self.record.author_contact_id else { return Ok(None) };
        Ok(ctx.loaders()?.load_one(ContactKey(id)).await?.map(Contact))
    }
    async fn sender_role(&self) -> SenderRole {
        self.record.sender_role().into()
    }
    async fn source(&self) -> MessageSource {
        self.record.source().into()
    }
    /// The sender's idempotency key, echoed so a client can match its optimistic message.
    async fn client_id(&self) -> Option<&str> {
        self.record.client_id.as_deref()
    }
    async fn reply_to(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        let Some(parent) = self.record.reply_to_id else { return Ok(None) };
        Ok(ctx.loaders()?.load_one(MessageKey(parent)).await?.map(Message::from))
    }
    async fn attachments(&self) -> Vec<Attachment> {
        self.record.attachments.iter().cloned().map(Attachment::from).collect()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.record.created_at
    }
    async fn edited_at(&self) -> Option<DateTime<Utc>> {
        self.record.edited_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.record.deleted_at
    }
    /// In a direct room, how many members other than the author have read this message (of
    /// those who share read receipts); null in channels, where lists would be long.
    async fn read_by(&self, ctx: &Context<'_>) -> Result<Option<i64>> {
        let loaders = ctx.loaders()?;
        let kind = match &self.room {
            Some(room) => Some(room.kind),
            None => loaders.load_one(RoomKey(self.record.room_id)).await?.map(|room| room.kind),
        };
        if kind != Some(RoomKind::Direct) {
            return Ok(None);
        }
        let key = ReceiptsKey { room_id: self.record.room_id, limit: RECEIPTS_READ_FOR_READ_BY };
        let receipts = loaders.load_one(key).await?.unwrap_or_default();
        let read = receipts
            .iter()
            .filter(|r| Some(r.user_id) != self.record.author_user_id && r.last_read_seq >= self.record.seq);
        Ok(Some(read.count() as i64))
    }
    /// Whether the viewer saved this message (`setMessageFavorite`).
    async fn is_favorite(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(ctx.loaders()?.load_one(SavedKey(self.record.id)).await?.unwrap_or(false))
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

/// A message by id while the viewer may read its room (deleted ones included, shown as
/// deleted); otherwise none, as if it did not exist.
pub async fn readable_message(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<Message>> {
    let Some(message) = ctx.loaders()?.load_one(MessageKey(id)).await? else { return Ok(None) };
    Ok(readable_room(ctx, message.room_id).await?.map(|_| Message::from(message)))
}

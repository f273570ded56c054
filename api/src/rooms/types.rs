//! GraphQL types of rooms.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::access;
use crate::bus::{ConversationChangePayload, MembershipChange, RoomChange};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::enums::{ConversationStatus, MemberRole, RoomKind, Visibility};
use crate::graphql::ids::to_id;
use crate::graphql::loaders::{
    LastMessageKey, MemberCountKey, MembersPageKey, MembershipKey, ReceiptsKey, RoomKey, UnreadKey, UserKey,
};
use crate::graphql::pages::keyset_connection_with;
use crate::messages::types::Message;
use crate::paging::{self, TimeKey};
use crate::read_state::types::ReadReceipt;
use crate::support::types::Conversation;
use crate::users::types::User;
use entity::{room_members, rooms};

/// A room. Built from a row just read, or from the directory cache, whose rows may lag
/// behind the room's newest message: then the live fields are read on demand.
pub struct Room {
    model: rooms::Model,
    /// False for cached rows: `latestSeq`, `lastMessageAt` and `lastMessage` are reread.
    fresh: bool,
}

impl From<rooms::Model> for Room {
    fn from(model: rooms::Model) -> Self {
        Self { model, fresh: true }
    }
}

impl Room {
    pub fn cached(model: rooms::Model) -> Self {
        Self { model, fresh: false }
    }

    /// The room row with up-to-date live fields.
    async fn fresh(&self, ctx: &Context<'_>) -> Result<rooms::Model> {
        if self.fresh {
            return Ok(self.model.clone());
        }
        let row = ctx.loaders()?.load_one(RoomKey(self.model.id)).await?;
        Ok(row.ok_or_else(|| ApiError::not_found("room"))?)
    }
}

#[Object]
impl Room {
    pub async fn id(&self) -> ID {
        to_id(self.model.id)
    }
    async fn kind(&self) -> RoomKind {
        self.model.kind.into()
    }
    /// The channel's name; direct rooms have none (show their members instead).
    async fn name(&self) -> Option<&str> {
        self.model.name.as_deref()
    }
    async fn topic(&self) -> Option<&str> {
        self.model.topic.as_deref()
    }
    /// The support side of a conversation (kind SUPPORT): inbox, contact, status, assignee
    /// and why it went to them; null for other rooms.
    async fn conversation(&self, ctx: &Context<'_>) -> Result<Option<Conversation>> {
        if self.model.kind != entity::enums::RoomKind::Support {
            return Ok(None);
        }
        Ok(Some(Conversation(self.fresh(ctx).await?)))
    }
    /// The outside record this room belongs to (`openContextRoom`).
    async fn context_ref(&self) -> Option<&str> {
        self.model.context_ref.as_deref()
    }
    async fn visibility(&self) -> Visibility {
        self.model.visibility.into()
    }
    /// The members, in the order they joined, a page at a time (with `totalCount`).
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<MemberConnection> {
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        let key = MembersPageKey { room_id: self.model.id, page };
        let members = ctx.loaders()?.load_one(key).await?.unwrap_or_default();
        let (members, more) = page.window.split(members);
        let members =
            members.into_iter().map(|m| (TimeKey { at: m.joined_at, id: m.user_id }, RoomMember(m)));
        Ok(keyset_connection_with(&page, members.collect(), more, MemberCount(self.model.id)))
    }
    async fn last_message(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        if self.fresh && self.model.last_seq == 0 {
            return Ok(None);
        }
        Ok(ctx.loaders()?.load_one(LastMessageKey(self.model.id)).await?.map(Message::from))
    }
    async fn last_message_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        Ok(self.fresh(ctx).await?.last_message_at)
    }
    /// Live messages above the viewer's read watermark (0 when not a member).
    async fn unread_count(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(ctx.loaders()?.load_one(UnreadKey(self.model.id)).await?.map_or(0, |p| p.unread()))
    }
    /// Unread messages that mention the viewer (0 when not a member), counted from the
    /// mentions above the watermark, not from the messages.
    async fn mention_count(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(ctx.loaders()?.load_one(UnreadKey(self.model.id)).await?.map_or(0, |p| p.mention_count()))
    }
    /// The viewer's read watermark (0 when not a member).
    async fn last_read_seq(&self, ctx: &Context<'_>) -> Result<i64> {
        let membership = ctx.loaders()?.load_one(MembershipKey(self.model.id)).await?;
        Ok(membership.map_or(0, |m| m.last_read_seq))
    }
    /// How far the members who share read receipts have read, furthest first (`first`:
    /// default 50, at most `PARLEY_MAX_PAGE_SIZE`); members who have read nothing yet are left out.
    #[graphql(complexity = "paging::complexity(first, child_complexity)")]
    async fn read_receipts(&self, ctx: &Context<'_>, first: Option<i32>) -> Result<Vec<ReadReceipt>> {
        let key = ReceiptsKey { room_id: self.model.id, limit: ctx.page_size(first)?.get() };
        let receipts = ctx.loaders()?.load_one(key).await?.unwrap_or_default();
        Ok(receipts.into_iter().map(ReadReceipt).collect())
    }
    /// The seq of the room's newest message.
    async fn latest_seq(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(self.fresh(ctx).await?.last_seq)
    }
    /// Whether the viewer marked the room a favorite (`setRoomFavorite`).
    async fn is_favorite(&self, ctx: &Context<'_>) -> Result<bool> {
        let membership = ctx.loaders()?.load_one(MembershipKey(self.model.id)).await?;
        Ok(membership.is_some_and(|m| m.favorite_at.is_some()))
    }
    /// Whether the viewer muted the room (`muteRoom`) and it is still muted.
    async fn is_muted(&self, ctx: &Context<'_>) -> Result<bool> {
        let membership = ctx.loaders()?.load_one(MembershipKey(self.model.id)).await?;
        Ok(membership.and_then(|m| m.muted_until).is_some_and(|until| until > chrono::Utc::now()))
    }
    /// Until when the viewer muted the room; null when not muted or muted until unmuted
    /// (see `isMuted`).
    async fn muted_until(&self, ctx: &Context<'_>) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let membership = ctx.loaders()?.load_one(MembershipKey(self.model.id)).await?;
        let until = membership.and_then(|m| m.muted_until);
        Ok(until.filter(|until| *until > chrono::Utc::now() && *until != super::mute::forever()))
    }
    /// The viewer's role in the room; null when not a member.
    async fn viewer_role(&self, ctx: &Context<'_>) -> Result<Option<MemberRole>> {
        let membership = ctx.loaders()?.load_one(MembershipKey(self.model.id)).await?;
        Ok(membership.map(|m| m.role.into()))
    }
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.model.archived_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
}

pub struct RoomMember(pub room_members::Model);

#[Object]
impl RoomMember {
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        let user = ctx.loaders()?.load_one(UserKey(self.0.user_id)).await?;
        Ok(User(user.ok_or_else(|| ApiError::not_found("user"))?))
    }
    async fn role(&self) -> MemberRole {
        self.0.role.into()
    }
    async fn joined_at(&self) -> DateTime<Utc> {
        self.0.joined_at
    }
    /// Their read watermark; 0 when they turned read receipts off (except for themselves).
    async fn last_read_seq(&self, ctx: &Context<'_>) -> Result<i64> {
        if self.0.user_id == ctx.viewer()?.id {
            return Ok(self.0.last_read_seq);
        }
        let user = ctx.loaders()?.load_one(UserKey(self.0.user_id)).await?;
        Ok(if user.is_some_and(|u| u.share_read_receipts) { self.0.last_read_seq } else { 0 })
    }
}

pub type RoomConnection = Connection<String, Room>;

pub type MemberConnection = Connection<String, RoomMember, MemberCount>;

/// A room's member count, read (batched) only when selected.
pub struct MemberCount(uuid::Uuid);

#[Object]
impl MemberCount {
    /// How many members the room has.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(ctx.loaders()?.load_one(MemberCountKey(self.0)).await?.unwrap_or(0))
    }
}

/// The room, if the viewer may (still) read it: null after losing access. Through the
/// loaders (which batch and do not cache), so a page of reminders or saved items asking for
/// their rooms costs two queries, not two per item.
pub async fn readable_room(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<Room>> {
    let loaders = ctx.loaders()?;
    let (room, membership) =
        futures_util::try_join!(loaders.load_one(RoomKey(id)), loaders.load_one(MembershipKey(id)))?;
    let viewer = ctx.viewer()?;
    Ok(room.filter(|room| access::viewer_may_read(room, membership.is_some(), viewer)).map(Room::from))
}

/// A room the caller already checked access to, through the directory cache.
pub async fn room_by_id(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Room> {
    let state = ctx.state()?;
    let mut rooms = state.directory.rooms(&state.store, ctx.viewer()?.org_id, &[id]).await?;
    Ok(Room::cached(rooms.remove(&id).ok_or_else(|| ApiError::not_found("room"))?))
}

#[derive(InputObject)]
pub struct CreateChannelInput {
    pub name: String,
    pub topic: Option<String>,
    #[graphql(default_with = "Visibility::Public")]
    pub visibility: Visibility,
    #[graphql(default)]
    pub member_ids: Vec<ID>,
}

/// The room of an outside record (an order, a contract): created on first use.
#[derive(InputObject)]
pub struct OpenContextRoomInput {
    /// The record's reference, unique in the organisation: 1–200 characters.
    pub context_ref: String,
    /// A channel name, when the room is created; otherwise the room has none.
    pub name: Option<String>,
    /// Members beside the viewer, when the room is created.
    #[graphql(default)]
    pub user_ids: Vec<ID>,
}

#[derive(InputObject)]
pub struct UpdateRoomInput {
    pub room_id: ID,
    pub name: Option<String>,
    /// An empty topic clears it.
    pub topic: Option<String>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RoomUpdateReason {
    Created,
    Joined,
    Left,
    Renamed,
    /// Changed otherwise (e.g. the topic), or renamed when the server lost the event and
    /// found the change by rereading.
    Updated,
    Archived,
    MembersChanged,
    /// The viewer was removed: no more events of this room follow.
    AccessRevoked,
    /// A support conversation's status or assignee changed (`conversationChange` says how).
    ConversationChanged,
}

impl From<RoomChange> for RoomUpdateReason {
    fn from(change: RoomChange) -> Self {
        match change {
            RoomChange::Renamed => Self::Renamed,
            RoomChange::Updated => Self::Updated,
            RoomChange::Archived => Self::Archived,
            RoomChange::MembersChanged => Self::MembersChanged,
        }
    }
}

impl From<MembershipChange> for RoomUpdateReason {
    fn from(change: MembershipChange) -> Self {
        match change {
            MembershipChange::Created => Self::Created,
            MembershipChange::Joined => Self::Joined,
            MembershipChange::Left => Self::Left,
            MembershipChange::Revoked => Self::AccessRevoked,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct RoomUpdate {
    pub room_id: ID,
    pub reason: RoomUpdateReason,
    /// With `CONVERSATION_CHANGED`: the status and assignee before and after. Null when the
    /// change was found by a reread after the server lost events: `room` shows where it stands.
    pub conversation_change: Option<ConversationChange>,
}

impl RoomUpdate {
    pub fn new(room_id: uuid::Uuid, reason: RoomUpdateReason) -> Self {
        Self { room_id: to_id(room_id), reason, conversation_change: None }
    }
}

/// A support conversation before and after a change, and what changed it.
#[derive(SimpleObject)]
pub struct ConversationChange {
    pub status_from: Option<ConversationStatus>,
    pub status_to: Option<ConversationStatus>,
    pub assignee_from: Option<ID>,
    pub assignee_to: Option<ID>,
    /// `contact` (a message arrived), `assignment` (the inbox's strategy), `snooze` (it ran
    /// out), or the id of the agent who did it.
    pub by: String,
}

impl From<ConversationChangePayload> for ConversationChange {
    fn from(p: ConversationChangePayload) -> Self {
        let status = |s: Option<String>| {
            s.and_then(|s| {
                <entity::enums::ConversationStatus as sea_orm::ActiveEnum>::try_from_value(&s).ok()
            })
            .map(ConversationStatus::from)
        };
        Self {
            status_from: status(p.status_from),
            status_to: status(p.status_to),
            assignee_from: p.assignee_from.map(to_id),
            assignee_to: p.assignee_to.map(to_id),
            by: p.by,
        }
    }
}

#[async_graphql::ComplexObject]
impl RoomUpdate {
    /// Null when the viewer can no longer read the room (left or removed).
    async fn room(&self, ctx: &Context<'_>) -> Result<Option<Room>> {
        readable_room(ctx, crate::graphql::ids::parse_id(&self.room_id)?).await
    }
}

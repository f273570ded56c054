//! GraphQL types of read state.

use async_graphql::{ComplexObject, Context, ID, Object, Result, SimpleObject, Value};
use chrono::{DateTime, Utc};

use super::feed::UnreadChange;
use super::receipts::Receipt;
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::flat::FlatObject;
use crate::graphql::frames::FrameKey;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::live::LiveItem;
use crate::graphql::loaders::UserKey;
use crate::rooms::types::{Room, room_by_id};
use crate::users::types::User;

/// The viewer's read state in a room after a mark.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ReadState {
    pub room_id: ID,
    pub last_read_seq: i64,
    pub unread_count: i64,
}

/// One room's unread count; rooms without unread messages are left out of lists.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct UnreadCount {
    pub room_id: ID,
    pub unread_count: i64,
    /// The room seq the count was computed at.
    pub seq: i64,
}

/// A change of the viewer's unread count in a room. Drop updates whose `seq` is older than
/// one already applied for the same room.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct UnreadCountChange {
    pub room_id: ID,
    pub unread_count: i64,
    /// Unread messages that mention the viewer (`@handle`, `@channel`, `@here`).
    pub mention_count: i64,
    /// Unread messages across the viewer's rooms that are not archived.
    pub unread_total: i64,
    /// The room seq the count was computed at.
    pub seq: i64,
    #[graphql(skip)]
    pub member: bool,
    /// True when someone else's new message raised the count and the viewer has not muted
    /// the room: show a notification. False for every other change, and while muted.
    pub notify: bool,
}

impl UnreadCountChange {
    /// An item of `unreadCountChanged`: its values are its key, so subscribers with equal
    /// counts share a frame and different counts never do.
    pub fn shared(change: UnreadChange) -> LiveItem<Self> {
        let UnreadChange { room_id, unread_count, mention_count, unread_total, seq, member, notify } = change;
        let version = [unread_count, mention_count, unread_total, seq, i64::from(member), i64::from(notify)];
        let key = FrameKey::new("unread", room_id, version);
        let item =
            Self { room_id: to_id(room_id), unread_count, mention_count, unread_total, seq, member, notify };
        LiveItem::shared(key, item)
    }
}

#[ComplexObject]
impl ReadState {
    async fn room(&self, ctx: &Context<'_>) -> Result<Room> {
        room_by_id(ctx, parse_id(&self.room_id)?).await
    }
}

#[ComplexObject]
impl UnreadCount {
    async fn room(&self, ctx: &Context<'_>) -> Result<Room> {
        room_by_id(ctx, parse_id(&self.room_id)?).await
    }
}

/// `unreadCounts` lists up to 1 000 of these: their scalars are written without resolvers.
impl FlatObject for UnreadCount {
    fn plain_field(&self, name: &str) -> Option<Value> {
        match name {
            "roomId" => Some(Value::String(self.room_id.0.clone())),
            "unreadCount" => Some(Value::from(self.unread_count)),
            "seq" => Some(Value::from(self.seq)),
            _ => None,
        }
    }
}

#[ComplexObject]
impl UnreadCountChange {
    /// Null once the viewer left the room or was removed (the count then drops to 0).
    async fn room(&self, ctx: &Context<'_>) -> Result<Option<Room>> {
        if !self.member {
            return Ok(None);
        }
        room_by_id(ctx, parse_id(&self.room_id)?).await.map(Some)
    }
}

/// How far a member has read a room, shown to the room's readers unless the member turned
/// read receipts off (`updateProfile(input: {shareReadReceipts: false})`).
pub struct ReadReceipt(pub Receipt);

#[Object]
impl ReadReceipt {
    async fn room_id(&self) -> ID {
        to_id(self.0.room_id)
    }
    async fn user_id(&self) -> ID {
        to_id(self.0.user_id)
    }
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        let user = ctx.loaders()?.load_one(UserKey(self.0.user_id)).await?;
        Ok(User(user.ok_or_else(|| ApiError::not_found("user"))?))
    }
    /// They have read every message up to this seq.
    async fn last_read_seq(&self) -> i64 {
        self.0.last_read_seq
    }
    async fn last_read_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_read_at
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::ID;

    use super::UnreadCount;
    use crate::graphql::flat::{FlatObject, plain_fields};

    #[test]
    fn every_plain_field_of_unread_count_is_written_flat() {
        let item = UnreadCount { room_id: ID::from("room"), unread_count: 2, seq: 5 };
        let fields = plain_fields::<UnreadCount>();
        assert_eq!(fields.len(), 3, "{fields:?}");
        for field in fields {
            assert!(item.plain_field(&field).is_some(), "UnreadCount.{field} would take the slow path");
        }
    }
}

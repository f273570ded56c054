//! GraphQL types of read state.

use async_graphql::{ComplexObject, Context, ID, Result, SimpleObject};

use super::feed::UnreadChange;
use crate::graphql::frames::{FrameKey, Shared};
use crate::graphql::ids::{parse_id, to_id};
use crate::rooms::types::{Room, room_by_id};

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
    /// Unread messages across all the viewer's rooms.
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
    pub fn shared(change: UnreadChange) -> Shared<Self> {
        let UnreadChange { room_id, unread_count, unread_total, seq, member, notify } = change;
        let key = FrameKey(format!("unread:{room_id}:{unread_count}:{unread_total}:{seq}:{member}:{notify}"));
        let item = Self { room_id: to_id(room_id), unread_count, unread_total, seq, member, notify };
        Shared { key, item }
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

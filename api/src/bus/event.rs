//! Topics and the versioned envelope carried on the bus.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::messages::MessageRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Everything members of a room see: messages, edits, room changes.
    Room(Uuid),
    /// What concerns one user only: read marks and membership.
    User(Uuid),
}

impl Topic {
    pub fn channel_name(&self) -> String {
        match self {
            Self::Room(id) => format!("parley:room:{id}"),
            Self::User(id) => format!("parley:user:{id}"),
        }
    }

    pub fn from_channel_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("parley:")?;
        let (kind, id) = rest.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "room" => Some(Self::Room(id)),
            "user" => Some(Self::User(id)),
            _ => None,
        }
    }
}

/// Bumped when the envelope changes incompatibly; receivers drop versions they do not know.
pub const ENVELOPE_VERSION: u8 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u8,
    /// The instance that published, so it can skip its own echo from Redis.
    pub origin: Uuid,
    pub event: Event,
}

impl Envelope {
    pub fn new(origin: Uuid, event: Event) -> Self {
        Self { v: ENVELOPE_VERSION, origin, event }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A new message (room topic).
    MessageAdded { message: MessageRecord },
    /// An edit or a deletion (room topic).
    MessageUpdated { message: MessageRecord },
    /// Room metadata or membership changed (room topic).
    RoomChanged { room_id: Uuid, change: RoomChange },
    /// The user's membership changed (user topic). `seq` is the room's seq at that moment:
    /// a subscriber that starts following the room delivers what comes after it.
    MembershipChanged { room_id: Uuid, change: MembershipChange, seq: i64 },
    /// The user's read watermark moved, on any device (user topic).
    ReadStateChanged { room_id: Uuid, last_read_seq: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomChange {
    Renamed,
    /// The topic changed.
    Updated,
    Archived,
    MembersChanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Member of a room that was just created.
    Created,
    /// Joined or was added.
    Joined,
    /// Left by choice.
    Left,
    /// Was removed by someone else.
    Revoked,
}

impl MembershipChange {
    pub fn is_member(self) -> bool {
        matches!(self, Self::Created | Self::Joined)
    }
}

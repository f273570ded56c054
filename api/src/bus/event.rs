//! Topics, the versioned envelope carried on the bus, and the event payloads.
//!
//! The payloads are the bus's own wire types: small, serde-encoded, and independent of any
//! domain module (domains convert to and from them). A message event carries everything a
//! subscriber's common selection needs — the stored message, its author and its room as they
//! were when it was sent — so delivering a frame needs no database work on any instance.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Everything members of a room see: messages, edits, room changes.
    Room(Uuid),
    /// What concerns one user only: read marks and membership.
    User(Uuid),
    /// Every instance follows it for its whole life: cached users and rooms to forget.
    Directory,
    /// Every instance's reminder scheduler follows it: reminders created or moved.
    Scheduler,
    /// A room's ephemeral signals, typing and read receipts, followed only by their own
    /// subscriptions: on the room topic, every keystroke and every member's read would wake
    /// every message subscriber of the room.
    Signals(Uuid),
    /// One user's presence changes, followed by those who share a room with them.
    Presence(Uuid),
    /// A room's membership changes alone, for `presenceChanged`, which follows who shares a
    /// room with the viewer: on the room topic it would wake for every message.
    Members(Uuid),
}

impl Topic {
    /// The Redis channel of this topic in the deployment's `namespace`.
    pub fn channel_name(&self, namespace: &str) -> String {
        match self {
            Self::Room(id) => format!("{namespace}:room:{id}"),
            Self::User(id) => format!("{namespace}:user:{id}"),
            Self::Signals(id) => format!("{namespace}:signals:{id}"),
            Self::Presence(id) => format!("{namespace}:presence:{id}"),
            Self::Members(id) => format!("{namespace}:members:{id}"),
            Self::Directory => format!("{namespace}:directory"),
            Self::Scheduler => format!("{namespace}:scheduler"),
        }
    }

    pub fn from_channel_name(name: &str, namespace: &str) -> Option<Self> {
        let rest = name.strip_prefix(namespace)?.strip_prefix(':')?;
        match rest {
            "directory" => return Some(Self::Directory),
            "scheduler" => return Some(Self::Scheduler),
            _ => {}
        }
        let (kind, id) = rest.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "room" => Some(Self::Room(id)),
            "user" => Some(Self::User(id)),
            "signals" => Some(Self::Signals(id)),
            "presence" => Some(Self::Presence(id)),
            "members" => Some(Self::Members(id)),
            _ => None,
        }
    }
}

/// Bumped when the envelope changes incompatibly; receivers drop versions they do not know.
pub const ENVELOPE_VERSION: u8 = 2;

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
    /// A new message (room topic), with its author and room as they were when it was sent, and
    /// the members it mentions. Shared (`Arc`): every local subscriber's feed holds the same
    /// payloads until a frame is rendered from them, instead of a copy each.
    MessageAdded {
        message: Arc<MessagePayload>,
        author: Option<Arc<UserPayload>>,
        room: Arc<RoomPayload>,
        #[serde(default)]
        mentioned: Vec<Uuid>,
    },
    /// An edit or a deletion (room topic), with whom the message mentions now.
    MessageUpdated {
        message: Box<MessagePayload>,
        #[serde(default)]
        mentioned: Vec<Uuid>,
    },
    /// Room metadata or membership changed (room topic).
    RoomChanged { room_id: Uuid, change: RoomChange },
    /// Who joined or left a room (members topic), for the feeds that follow who shares a
    /// room with their viewer.
    RoomMembers { room_id: Uuid, joined: Vec<Uuid>, left: Vec<Uuid> },
    /// A support conversation's status or assignee changed (room topic): from what, to what,
    /// and what changed it.
    ConversationChanged { room_id: Uuid, change: Box<ConversationChangePayload> },
    /// The user's membership changed (user topic). `seq` is the room's seq at that moment:
    /// a subscriber that starts following the room delivers what comes after it.
    MembershipChanged { room_id: Uuid, change: MembershipChange, seq: i64 },
    /// The user's read watermark moved, on any device (user topic).
    ReadStateChanged { room_id: Uuid, last_read_seq: i64 },
    /// The user favored a room or saved a message, or undid it, on any device (user topic).
    /// `version` is the user's `favorites_version` after the change: one more than the
    /// change before it (0 from an instance older than versions).
    FavoriteChanged {
        room_id: Option<Uuid>,
        message_id: Option<Uuid>,
        favorite: bool,
        #[serde(default)]
        version: i64,
    },
    /// The user muted or unmuted a room, on any device (user topic).
    MuteChanged { room_id: Uuid },
    /// A user was renamed, deactivated or given another role (directory topic).
    UserChanged { user_id: Uuid },
    /// A room was renamed, archived or otherwise changed (directory topic).
    RoomInfoChanged { room_id: Uuid },
    /// A support inbox's settings or secret changed (directory topic).
    InboxChanged { inbox_id: Uuid },
    /// A reminder was created or moved to `remind_at` (scheduler topic): a scheduler sleeping
    /// past that moment wakes up early.
    ReminderScheduled { remind_at: DateTime<Utc> },
    /// Reminders of one user fired (their user topic): one event per user per claimed batch,
    /// so a burst of reminders due together cannot overflow the user's topic buffer. Sent once,
    /// by the instance that claimed them.
    RemindersDue { reminders: Vec<ReminderPayload> },
    /// A member started or stopped typing (signals topic). Not stored; subscribers expire it.
    Typing { room_id: Uuid, user_id: Uuid, typing: bool },
    /// A member who shares read receipts moved their watermark (signals topic).
    ReadReceipt { room_id: Uuid, user_id: Uuid, last_read_seq: i64, last_read_at: DateTime<Utc> },
    /// A user's shown presence changed (their presence topic): `status` is the stored name of
    /// a `PresenceStatus` or "offline"; `last_seen_at` is set once offline.
    PresenceChanged { user_id: Uuid, status: String, last_seen_at: Option<DateTime<Utc>> },
}

/// A support conversation before and after a change. Statuses travel as stored strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationChangePayload {
    pub status_from: Option<String>,
    pub status_to: Option<String>,
    pub assignee_from: Option<Uuid>,
    pub assignee_to: Option<Uuid>,
    /// `contact` (a message arrived), `assignment` (the inbox's strategy), `snooze` (it ran
    /// out), or the id of the agent who did it.
    pub by: String,
}

/// A reminder as it was when it fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderPayload {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub room_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub note: Option<String>,
    pub remind_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
}

/// A stored message. Enumerations travel as their stored strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePayload {
    pub id: Uuid,
    pub org_id: Uuid,
    pub room_id: Uuid,
    pub seq: i64,
    pub author_user_id: Option<Uuid>,
    /// The contact who wrote it, in a support conversation.
    #[serde(default)]
    pub author_contact_id: Option<Uuid>,
    pub sender_role: String,
    /// Empty once deleted: a deleted body never travels.
    pub body: String,
    pub source: String,
    pub client_id: Option<String>,
    pub reply_to_id: Option<Uuid>,
    pub attachments: Vec<AttachmentPayload>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentPayload {
    pub name: String,
    pub url: String,
    pub content_type: String,
    pub size: i64,
}

/// What subscribers may show of a message's author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPayload {
    pub id: Uuid,
    pub org_id: Uuid,
    pub handle: String,
    pub display_name: String,
    pub role: String,
    pub kind: String,
}

/// A room as it was right after the message that carries it: its row, read back by the
/// statement that assigned the message's seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPayload {
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: String,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub visibility: String,
    pub last_seq: i64,
    pub last_message_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    /// Context rooms only (`openContextRoom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_ref: Option<String>,
    /// Support conversations only: where the conversation stood right after the message, so
    /// that a live frame's `room { conversation }` needs no lookup either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Box<ConversationPayload>>,
}

/// The support side of a room, as `RoomPayload` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPayload {
    pub inbox_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub status: Option<String>,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_read_back_only_in_their_own_namespace() {
        let id = Uuid::new_v4();
        let topics = [
            Topic::Room(id),
            Topic::User(id),
            Topic::Directory,
            Topic::Scheduler,
            Topic::Signals(id),
            Topic::Presence(id),
            Topic::Members(id),
        ];
        for topic in topics {
            let name = topic.channel_name("staging");
            assert_eq!(Topic::from_channel_name(&name, "staging"), Some(topic), "{name}");
            assert_eq!(Topic::from_channel_name(&name, "stag"), None, "{name} is not stag's");
            assert_eq!(Topic::from_channel_name(&name, "parley"), None, "{name} is not parley's");
        }
        assert_eq!(Topic::Room(id).channel_name("parley"), format!("parley:room:{id}"));
    }
}

//! Rooms of every kind. `last_seq` is the seq of the room's newest message: it is bumped in
//! the transaction that inserts the message, which makes seqs gap-free and ordered. A support
//! conversation is a room of kind `support` with its inbox, contact, status and assignee;
//! its `created_by` is the inbox (no user created it).

use sea_orm::entity::prelude::*;

use crate::enums::{ConversationStatus, RoomKind, Visibility};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rooms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: RoomKind,
    pub name: Option<String>,
    /// A channel's name lowercased (`ChannelName::key`): live channels' keys are unique in
    /// their organisation, so `General` and `general` are one name. Null for other rooms.
    pub name_key: Option<String>,
    pub topic: Option<String>,
    pub visibility: Visibility,
    /// The sorted member set of a direct room, so opening the same DM twice finds one room.
    pub dm_key: Option<String>,
    pub context_ref: Option<String>,
    pub last_seq: i64,
    pub last_message_at: Option<DateTimeUtc>,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    pub archived_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    /// Support conversations only: the inbox, the contact, where it stands, who handles it.
    pub inbox_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub status: Option<ConversationStatus>,
    pub snoozed_until: Option<DateTimeUtc>,
    /// The first agent reply after the conversation was opened.
    pub first_response_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
    /// When the room's own state last changed (name, topic, archiving; a conversation's status
    /// or assignee), for `roomUpdated`'s reread after a bus resync. Not membership.
    pub changed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::room_members::Entity")]
    Members,
}

impl Related<super::room_members::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Members.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

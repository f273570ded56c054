//! People and bots of an organisation; `handle` is unique per organisation.
//!
//! `users.favorites_version` is left unmapped: only `favorites::service` reads and counts it,
//! by its own statements, and a model built from a cache or a bus payload could not hold it.

use sea_orm::entity::prelude::*;

use crate::enums::{PresenceStatus, UserKind, UserRole};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub handle: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: UserRole,
    pub kind: UserKind,
    pub created_at: DateTimeUtc,
    pub last_seen_at: Option<DateTimeUtc>,
    pub deactivated_at: Option<DateTimeUtc>,
    /// When an admin last set `role`; reread after a bus outage (see `directory`).
    pub role_changed_at: Option<DateTimeUtc>,
    /// Others see how far this user has read (`Room.readReceipts`, `Message.readBy`).
    pub share_read_receipts: bool,
    /// A status set by hand, shown instead of the connection state until cleared.
    pub presence_status: Option<PresenceStatus>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

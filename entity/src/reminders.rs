//! Reminders: who is reminded of what (a message, a room, or only a note), when, and where the
//! reminder stands.

use sea_orm::entity::prelude::*;

use crate::enums::ReminderStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reminders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub room_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub note: Option<String>,
    pub remind_at: DateTimeUtc,
    pub status: ReminderStatus,
    pub created_at: DateTimeUtc,
    pub fired_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! Membership and per-member read state: `last_read_seq` is the read watermark.

use sea_orm::entity::prelude::*;

use crate::enums::MemberRole;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub room_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub role: MemberRole,
    pub joined_at: DateTimeUtc,
    pub last_read_seq: i64,
    pub last_read_at: Option<DateTimeUtc>,
    pub favorite_at: Option<DateTimeUtc>,
    pub muted_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::rooms::Entity", from = "Column::RoomId", to = "super::rooms::Column::Id")]
    Room,
}

impl Related<super::rooms::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Room.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

//! The agents of an inbox, and how many open conversations each has assigned (a counter kept
//! with every assignment and status change, so deciding reads no conversations).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "support_inbox_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub inbox_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// False: a paused agent, who keeps reading but gets no new conversations.
    pub active: bool,
    pub open_assigned: i32,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

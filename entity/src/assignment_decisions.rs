//! Why a conversation went to whom: the strategy, every candidate as it stood (load,
//! capacity, online), the one chosen (or none: the conversation waits), and the reason.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "assignment_decisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub room_id: Uuid,
    pub strategy: String,
    /// JSON: `[{"agent": id, "load": n, "capacity": n|null, "online": bool}]`.
    pub candidates: String,
    pub chosen_id: Option<Uuid>,
    pub reason: String,
    pub decided_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

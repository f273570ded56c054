//! A support inbox: where a channel's customer messages arrive, and how its conversations are
//! assigned.

use sea_orm::entity::prelude::*;

use crate::enums::AssignmentStrategy;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "support_inboxes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub assignment: AssignmentStrategy,
    /// Open conversations one agent takes at most; `None`: no limit.
    pub agent_capacity: Option<i32>,
    /// Signs inbound webhooks (HMAC-SHA256).
    pub webhook_secret: String,
    /// Where agents' replies to sms and email conversations are posted.
    pub outbound_webhook_url: Option<String>,
    /// The agent round robin chose last: the next turn is whoever joined the inbox after
    /// them. (The column `round_robin_cursor` before it is no longer read.)
    pub round_robin_last_agent_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

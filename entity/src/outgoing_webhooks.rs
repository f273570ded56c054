//! Outgoing webhooks: where an organisation wants its events posted, and the secret that signs
//! each delivery. Deletion is soft, so past deliveries keep their target.

use sea_orm::entity::prelude::*;

use crate::enums::WebhookFormat;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outgoing_webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: String,
    /// The event names, comma separated with a comma at each end (`,MESSAGE_ADDED,`), so one
    /// `LIKE '%,NAME,%'` matches on both databases.
    pub events: String,
    /// Only this room's events; `None`: the organisation's public channels.
    pub room_id: Option<Uuid>,
    pub format: WebhookFormat,
    pub secret: String,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

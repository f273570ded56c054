//! Messages. `seq` is unique per room and gap-free; deletion is soft (`deleted_at`).

use sea_orm::entity::prelude::*;

use crate::enums::{MessageSource, SenderRole};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub room_id: Uuid,
    pub seq: i64,
    pub author_user_id: Option<Uuid>,
    pub author_contact_id: Option<Uuid>,
    pub sender_role: SenderRole,
    pub body: String,
    pub source: MessageSource,
    /// Inbound idempotency key: unique per organisation and source.
    pub external_id: Option<String>,
    /// Retry idempotency key: unique per room and author.
    pub client_id: Option<String>,
    pub reply_to_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub attachments: Json,
    pub created_at: DateTimeUtc,
    pub edited_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

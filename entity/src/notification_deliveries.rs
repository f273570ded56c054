//! The notification outbox: one row per notification to deliver, its attempts and outcome.
//! The row's id is the idempotency key every attempt carries.

use sea_orm::entity::prelude::*;

use crate::enums::DeliveryStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    /// `webhook`, `email` or `push`.
    pub channel: String,
    pub webhook_id: Option<Uuid>,
    /// The event name, e.g. `MESSAGE_ADDED`.
    pub event: String,
    pub room_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// When a pending row is due, or when a delivering row's lease ends.
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
    /// Whom an email or a push is for.
    pub recipient_id: Option<Uuid>,
    /// The browser a push goes to.
    pub push_subscription_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

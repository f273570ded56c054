//! Outgoing webhooks and the notification outbox.
//!
//! `outgoing_webhooks`: an organisation admin's target URL, the events it wants (stored as
//! `,MESSAGE_ADDED,` so one `LIKE` works on both databases), an optional room, the body
//! format (`json` or `slack`) and the secret its deliveries are signed with.
//!
//! `notification_deliveries`: the outbox. One row per notification, written in the
//! transaction of the message that caused it and claimed by the delivery workers of any
//! instance by `(status, next_attempt_at)`; listed for admins by `(org_id, created_at)`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000009_outgoing_webhooks"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("outgoing_webhooks")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                .col(text("url"))
                .col(string("events"))
                .col(uuid_null("room_id"))
                // json, slack
                .col(string("format"))
                .col(string("secret"))
                .col(uuid("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("deleted_at"))
                .foreign_key(&mut reference("outgoing_webhooks", "org_id", "organizations"))
                .foreign_key(&mut reference("outgoing_webhooks", "room_id", "rooms"))
                .foreign_key(&mut reference("outgoing_webhooks", "created_by", "users"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("outgoing_webhooks_org").table("outgoing_webhooks").col("org_id").to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("notification_deliveries")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                // webhook (later: email, push)
                .col(string("channel"))
                .col(uuid_null("webhook_id"))
                .col(string("event"))
                .col(uuid_null("room_id"))
                .col(uuid_null("message_id"))
                // pending, delivering, delivered, failed
                .col(string("status"))
                .col(integer("attempts"))
                .col(timestamp_with_time_zone("next_attempt_at"))
                .col(text_null("last_error"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("delivered_at"))
                .foreign_key(&mut reference("notification_deliveries", "org_id", "organizations"))
                .foreign_key(&mut reference("notification_deliveries", "webhook_id", "outgoing_webhooks"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("notification_deliveries_due")
                .table("notification_deliveries")
                .col("status")
                .col("next_attempt_at")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("notification_deliveries_org")
                .table("notification_deliveries")
                .col("org_id")
                .col("created_at")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("notification_deliveries").to_owned()).await?;
        m.drop_table(Table::drop().table("outgoing_webhooks").to_owned()).await
    }
}

fn reference(table: &'static str, column: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(format!("fk_{table}_{column}")).from(table, column).to(to, "id").to_owned()
}

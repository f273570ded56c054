//! Personal notifications: email for unread messages and web push.
//!
//! `notification_settings`: a user's choices (email on/off, push on/off); no row means the
//! defaults (both on).
//!
//! `push_subscriptions`: a browser's push endpoint with its keys (RFC 8291), one row per
//! endpoint: a device that changes hands moves with its endpoint.
//!
//! `notification_deliveries` gains the recipient of personal deliveries and the push
//! subscription a push goes to. An email row is a batch: at most one not yet attempted row
//! per recipient and room (a partial unique index), which later messages join instead of
//! writing their own.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000010_personal_notifications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("notification_settings")
                .col(uuid("user_id").primary_key())
                .col(boolean("email_enabled"))
                .col(boolean("push_enabled"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut reference("notification_settings", "user_id", "users"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("push_subscriptions")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                .col(uuid("user_id"))
                .col(text("endpoint"))
                .col(string("p256dh"))
                .col(string("auth"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut reference("push_subscriptions", "org_id", "organizations"))
                .foreign_key(&mut reference("push_subscriptions", "user_id", "users"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("push_subscriptions_endpoint")
                .table("push_subscriptions")
                .col("endpoint")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("push_subscriptions_user")
                .table("push_subscriptions")
                .col("user_id")
                .to_owned(),
        )
        .await?;
        // One column per statement: what SQLite's ALTER TABLE takes.
        for column in ["recipient_id", "push_subscription_id"] {
            m.alter_table(
                Table::alter().table("notification_deliveries").add_column(uuid_null(column)).to_owned(),
            )
            .await?;
        }
        // A recipient's deliveries in a room: the end of an email batch, a user's own list.
        m.create_index(
            Index::create()
                .name("notification_deliveries_recipient")
                .table("notification_deliveries")
                .col("recipient_id")
                .col("room_id")
                .to_owned(),
        )
        .await?;
        // The same partial index on both databases (sea-query has no portable form of it).
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX notification_deliveries_email_batch \
                 ON notification_deliveries (recipient_id, room_id) \
                 WHERE channel = 'email' AND status = 'pending' AND attempts = 0",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("notification_deliveries_recipient")
                .table("notification_deliveries")
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("notification_deliveries_email_batch")
                .table("notification_deliveries")
                .to_owned(),
        )
        .await?;
        for column in ["push_subscription_id", "recipient_id"] {
            m.alter_table(Table::alter().table("notification_deliveries").drop_column(column).to_owned())
                .await?;
        }
        m.drop_table(Table::drop().table("push_subscriptions").to_owned()).await?;
        m.drop_table(Table::drop().table("notification_settings").to_owned()).await
    }
}

fn reference(table: &'static str, column: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(format!("fk_{table}_{column}")).from(table, column).to(to, "id").to_owned()
}

//! Reminders: a user's note to come back to a message, a room, or nothing in particular, at a
//! moment in the future. The scheduler claims due rows by `(status, remind_at)`; a user's list
//! and their count of pending reminders read `(user_id, status, remind_at)`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000003_reminders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("reminders")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                .col(uuid("user_id"))
                .col(uuid_null("room_id"))
                .col(uuid_null("message_id"))
                .col(text_null("note"))
                .col(timestamp_with_time_zone("remind_at"))
                // pending, fired, done, cancelled
                .col(string("status"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("fired_at"))
                .col(timestamp_with_time_zone_null("completed_at"))
                .foreign_key(&mut reference("org_id", "organizations"))
                .foreign_key(&mut reference("user_id", "users"))
                .foreign_key(&mut reference("room_id", "rooms"))
                .foreign_key(&mut reference("message_id", "messages"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("reminders_due")
                .table("reminders")
                .col("status")
                .col("remind_at")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("reminders_user_status")
                .table("reminders")
                .col("user_id")
                .col("status")
                .col("remind_at")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("reminders").to_owned()).await
    }
}

fn reference(column: &'static str, table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_reminders_{column}"))
        .from("reminders", column)
        .to(table, "id")
        .to_owned()
}

//! Saved messages: one row per (user, message) a user saved, newest first per user. Favorite
//! rooms need no table of their own: `room_members.favorite_at` has been there since the core.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000002_saved_messages"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("message_favorites")
                .col(uuid("user_id"))
                .col(uuid("message_id"))
                .col(timestamp_with_time_zone("created_at"))
                .primary_key(Index::create().col("user_id").col("message_id"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_message_favorites_user_id")
                        .from("message_favorites", "user_id")
                        .to("users", "id"),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_message_favorites_message_id")
                        .from("message_favorites", "message_id")
                        .to("messages", "id"),
                )
                .to_owned(),
        )
        .await?;
        // `viewer.favoriteMessages`: newest saved first, paged.
        m.create_index(
            Index::create()
                .name("message_favorites_user_saved")
                .table("message_favorites")
                .col("user_id")
                .col("created_at")
                .col("message_id")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("message_favorites").to_owned()).await
    }
}

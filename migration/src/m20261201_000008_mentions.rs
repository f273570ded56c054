//! Mentions: one row per (message, mentioned user), written with the message and rewritten by
//! its edits, removed with its deletion. `seq` is the message's, so a member's unread mentions
//! (`seq` above their watermark) are counted from this table alone, never from `messages`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000008_mentions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("mentions")
                .col(uuid("message_id"))
                .col(uuid("user_id"))
                .col(uuid("room_id"))
                .col(big_integer("seq"))
                .col(timestamp_with_time_zone("created_at"))
                .primary_key(Index::create().col("message_id").col("user_id"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_mentions_message_id")
                        .from("mentions", "message_id")
                        .to("messages", "id"),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_mentions_user_id")
                        .from("mentions", "user_id")
                        .to("users", "id"),
                )
                .to_owned(),
        )
        .await?;
        // `mentionCount`: a member's mentions in a room above a seq.
        m.create_index(
            Index::create()
                .name("mentions_user_room_seq")
                .table("mentions")
                .col("user_id")
                .col("room_id")
                .col("seq")
                .to_owned(),
        )
        .await?;
        // `viewer.mentions`: newest first (message ids are time-ordered).
        m.create_index(
            Index::create()
                .name("mentions_user_message")
                .table("mentions")
                .col("user_id")
                .col("message_id")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("mentions").to_owned()).await
    }
}

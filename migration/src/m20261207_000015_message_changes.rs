//! Finds the messages edited or deleted since a moment, room by room: a `messageUpdated`
//! subscription rereads them after a bus resync, when their events may have been lost. Only
//! changed rows are indexed (most messages are never edited), by the moment that decides what
//! they show: the deletion's once deleted (whatever an edit racing it wrote), else the last
//! edit's.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000015_message_changes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX messages_room_changed ON messages (room_id, (COALESCE(deleted_at, edited_at)), id) \
                 WHERE edited_at IS NOT NULL OR deleted_at IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("messages_room_changed").table("messages").to_owned()).await
    }
}

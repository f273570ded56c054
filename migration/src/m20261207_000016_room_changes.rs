//! When a room's own state last changed (its name, topic or archiving; a conversation's
//! status or assignee): after a bus resync, when events may have been lost, a `roomUpdated`
//! subscription rereads which of its rooms changed since its previous reread. Looked up by
//! the rooms' ids, so it needs no index. Rooms changed before this release have none: their
//! changes are older than any subscription.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::timestamp_with_time_zone_null;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000016_room_changes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table("rooms").add_column(timestamp_with_time_zone_null("changed_at")).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("rooms").drop_column("changed_at").to_owned()).await
    }
}

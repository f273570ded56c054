//! An organisation's messages by id, newest last: search ranks the newest messages of an
//! organisation first (`api/src/search/window.rs`), and finds where that window begins, and
//! which matches lie inside it, through this index instead of the heap.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000005_message_recency"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create().name("messages_org_id").table("messages").col("org_id").col("id").to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("messages_org_id").table("messages").to_owned()).await
    }
}

//! Round robin resumes after the last agent chosen, stored by who they are. The position it
//! used to store (`round_robin_cursor`, among the agents active at the time) moved whenever
//! an agent before it was paused or resumed, so turns were skipped or repeated. The old
//! column is no longer read; it stays until a later release, so that a release still
//! running during a rolling deploy can write it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::uuid_null;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000014_round_robin_last_agent"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("support_inboxes")
                .add_column(uuid_null("round_robin_last_agent_id"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table("support_inboxes").drop_column("round_robin_last_agent_id").to_owned(),
        )
        .await
    }
}

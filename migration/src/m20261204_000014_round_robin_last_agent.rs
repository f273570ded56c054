//! Round robin resumes after the last agent chosen, stored by who they are. The position it
//! used to store (`round_robin_cursor`, among the agents active at the time) moved whenever
//! an agent before it was paused or resumed, so turns were skipped or repeated. Each inbox
//! starts from the agent its latest assignment chose, so an upgrade does not restart the
//! round. The old column is no longer read; it stays until a later release, so that a
//! release still running during a rolling deploy can write it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::uuid_null;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000014_round_robin_last_agent"
    }
}

/// The agent of each inbox's latest automatic assignment (manual ones are an agent's hand,
/// not a turn).
const BACKFILL: &str = "UPDATE support_inboxes SET round_robin_last_agent_id = (
    SELECT d.chosen_id FROM assignment_decisions d JOIN rooms r ON r.id = d.room_id
    WHERE r.inbox_id = support_inboxes.id AND d.chosen_id IS NOT NULL AND d.strategy <> 'manual'
    ORDER BY d.decided_at DESC, d.id DESC LIMIT 1)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("support_inboxes")
                .add_column(uuid_null("round_robin_last_agent_id"))
                .to_owned(),
        )
        .await?;
        m.get_connection().execute_unprepared(BACKFILL).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table("support_inboxes").drop_column("round_robin_last_agent_id").to_owned(),
        )
        .await
    }
}

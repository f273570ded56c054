//! A status a user set by hand (`setPresence`: online, away, dnd), which wins over their
//! connection state until cleared. Connections themselves are not stored: they live in Redis
//! leases (or the single instance's memory), see `api/src/presence`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_null;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000007_presence"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("users").add_column(string_null("presence_status")).to_owned())
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("users").drop_column("presence_status").to_owned()).await
    }
}

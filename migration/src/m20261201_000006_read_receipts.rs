//! Whether a user shows others how far they have read (`updateProfile(input:
//! {shareReadReceipts})`): on by default, as in Matrix and WhatsApp.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::boolean;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000006_read_receipts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table("users").add_column(boolean("share_read_receipts").default(true)).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("users").drop_column("share_read_receipts").to_owned()).await
    }
}

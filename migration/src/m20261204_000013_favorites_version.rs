//! A version per user that counts changes of their favorites. `favoritesChanged` events carry
//! it, so a device's feed drops one that arrives after a newer change and rereads the
//! favorites when one is missing (lost on the bus, or never published by its instance).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::big_integer;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000013_favorites_version"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table("users").add_column(big_integer("favorites_version").default(0)).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("users").drop_column("favorites_version").to_owned()).await
    }
}

//! A channel's name is unique in its organisation whatever its case, as in Slack and
//! Mattermost: `General` and `general` were two channels. `rooms.name_key` holds the name
//! lowercased by the application (Unicode, the same on both backends: SQLite's `lower()`
//! folds ASCII only, PostgreSQL's follows the database's locale), and the unique index on
//! live channels' names moves to it. Existing channels whose names differ only by case keep
//! their names; the oldest holds the key, the others none until they are renamed.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_null;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000017_channel_name_keys"
    }
}

/// Of live channels sharing a key, all but the oldest lose it.
const ONE_KEY_EACH: &str = "UPDATE rooms SET name_key = NULL \
    WHERE kind = 'channel' AND archived_at IS NULL AND deleted_at IS NULL AND EXISTS ( \
      SELECT 1 FROM rooms o WHERE o.org_id = rooms.org_id AND o.name_key = rooms.name_key \
        AND o.kind = 'channel' AND o.archived_at IS NULL AND o.deleted_at IS NULL \
        AND (o.created_at < rooms.created_at OR (o.created_at = rooms.created_at AND o.id < rooms.id)))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("rooms").add_column(string_null("name_key")).to_owned()).await?;
        let db = m.get_connection();
        let backend = db.get_database_backend();
        let set_key = match backend {
            DatabaseBackend::Postgres => {
                "UPDATE rooms SET name_key = $1 WHERE kind = 'channel' AND name = $2"
            }
            _ => "UPDATE rooms SET name_key = ? WHERE kind = 'channel' AND name = ?",
        };
        let names = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT DISTINCT name FROM rooms WHERE kind = 'channel' AND name IS NOT NULL",
            ))
            .await?;
        for row in names {
            let name: String = row.try_get("", "name")?;
            let key = name.to_lowercase();
            db.execute_raw(Statement::from_sql_and_values(backend, set_key, [key.into(), name.into()]))
                .await?;
        }
        db.execute_unprepared(ONE_KEY_EACH).await?;
        db.execute_unprepared("DROP INDEX rooms_org_live_channel_name").await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX rooms_org_live_channel_key ON rooms (org_id, name_key) \
             WHERE kind = 'channel' AND archived_at IS NULL AND deleted_at IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX rooms_org_live_channel_key").await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX rooms_org_live_channel_name ON rooms (org_id, name) \
             WHERE kind = 'channel' AND archived_at IS NULL AND deleted_at IS NULL",
        )
        .await?;
        m.alter_table(Table::alter().table("rooms").drop_column("name_key").to_owned()).await
    }
}

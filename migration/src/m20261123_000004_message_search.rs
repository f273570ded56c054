//! Full-text search over message bodies, one index per backend.
//!
//! PostgreSQL: a stored generated `tsvector` column (NULL once the message is deleted, so
//! deleted messages leave the index) with a GIN index. Built with the `simple` configuration;
//! the server rebuilds it at start-up when `PARLEY_SEARCH_CONFIG` names another one, and
//! records the configuration in use in `settings.search_config`.
//!
//! SQLite: an FTS5 external-content table over `messages.body`, keyed by the messages' rowid
//! and kept in sync by triggers. `remove_diacritics 0` makes it fold case only, as
//! PostgreSQL's `simple` does, so both backends find the same messages.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000004_message_search"
    }
}

const POSTGRES_UP: &[&str] = &[
    "ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS \
     (CASE WHEN deleted_at IS NULL THEN to_tsvector('simple'::regconfig, body) END) STORED",
    "CREATE INDEX messages_search_vector ON messages USING gin (search_vector)",
    "INSERT INTO settings (key, value) VALUES ('search_config', 'simple')",
];

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='rowid', \
     tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN \
       INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, new.body); \
     END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN \
       INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.rowid, old.body); \
     END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN \
       INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.rowid, old.body); \
       INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, new.body); \
     END",
    // Messages stored before this migration.
    "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let statements = match m.get_database_backend() {
            DatabaseBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        for sql in statements {
            m.get_connection().execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let statements: &[&str] = match m.get_database_backend() {
            DatabaseBackend::Postgres => &[
                "DELETE FROM settings WHERE key = 'search_config'",
                "ALTER TABLE messages DROP COLUMN search_vector",
            ],
            _ => &[
                "DROP TRIGGER messages_fts_insert",
                "DROP TRIGGER messages_fts_delete",
                "DROP TRIGGER messages_fts_update",
                "DROP TABLE messages_fts",
            ],
        };
        for sql in statements {
            m.get_connection().execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

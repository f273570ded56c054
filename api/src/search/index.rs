//! Which text search configuration PostgreSQL's message index uses (`PARLEY_SEARCH_CONFIG`,
//! default `simple`: no stemming, no stop words, so every language is found word for word;
//! `english`, `german`, … stem). The generated column fixes its configuration, so a change
//! rebuilds the column and its index once, at start-up, under the migration lock; the
//! configuration in use is kept in `settings.search_config`. SQLite's FTS5 index has no such
//! setting: it folds case and keeps words as they are, as `simple` does.

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

const SETTING: &str = "search_config";

/// Rebuilds the index when `wanted` differs from the configuration it was built with.
pub async fn apply_config(conn: &impl ConnectionTrait, wanted: &str) -> anyhow::Result<()> {
    if conn.get_database_backend() != DatabaseBackend::Postgres {
        if wanted != "simple" {
            tracing::warn!(
                wanted,
                "PARLEY_SEARCH_CONFIG applies to PostgreSQL only; SQLite search folds case only"
            );
        }
        return Ok(());
    }
    let current = conn
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT value FROM settings WHERE key = $1",
            [SETTING.into()],
        ))
        .await?
        .map(|row| row.try_get::<String>("", "value"))
        .transpose()?;
    if current.as_deref() == Some(wanted) {
        return Ok(());
    }
    // The name is interpolated into DDL below, so it must be a plain identifier that exists.
    let known = wanted.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && conn
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT 1 AS found FROM pg_ts_config WHERE cfgname = $1",
                [wanted.into()],
            ))
            .await?
            .is_some();
    if !known {
        anyhow::bail!("PARLEY_SEARCH_CONFIG: PostgreSQL has no text search configuration named `{wanted}`");
    }
    tracing::info!(from = ?current, to = wanted, "rebuilding the message search index");
    for sql in [
        "ALTER TABLE messages DROP COLUMN IF EXISTS search_vector".to_owned(),
        format!(
            "ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS \
             (CASE WHEN deleted_at IS NULL THEN to_tsvector('{wanted}'::regconfig, body) END) STORED"
        ),
        "CREATE INDEX messages_search_vector ON messages USING gin (search_vector)".to_owned(),
    ] {
        conn.execute_unprepared(&sql).await?;
    }
    conn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
        [SETTING.into(), wanted.into()],
    ))
    .await?;
    Ok(())
}

//! Direct database access for seeding: organisations, users, channels, memberships and bulk
//! messages, written straight into Parley's tables (see `migration/src/m20261121_000001_core.rs`).
//!
//! Small sets go through parameterised multi-row INSERTs (portable: PostgreSQL and SQLite).
//! Large message sets (a million rows) are generated inside PostgreSQL by one
//! `INSERT … SELECT … generate_series` per batch of rooms, with UUIDv7 ids built in SQL and
//! `rooms.last_seq` set to match, so nothing goes through one mutation per message.

use std::time::Instant;

use anyhow::{Context, Result};
use chrono::Utc;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryResult, Statement, Value,
};
use uuid::Uuid;

use crate::client::mint;

/// Rows per multi-row INSERT (PostgreSQL allows 65 535 bind parameters per statement).
const BATCH: usize = 1000;

pub struct Db {
    pub conn: DatabaseConnection,
    pub backend: DbBackend,
}

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.max_connections(max_connections).min_connections(1).sqlx_logging(false);
        if url.starts_with("sqlite:") {
            options.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(std::time::Duration::from_secs(10))
            });
        }
        let conn = Database::connect(options).await.with_context(|| format!("connecting to {url}"))?;
        let backend = conn.get_database_backend();
        Ok(Self { conn, backend })
    }

    pub fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, values)
    }

    pub async fn exec(&self, sql: &str, values: Vec<Value>) -> Result<u64> {
        let result = self.conn.execute_raw(self.stmt(sql, values)).await.with_context(|| short(sql))?;
        Ok(result.rows_affected())
    }

    pub async fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>> {
        self.conn.query_all_raw(self.stmt(sql, values)).await.with_context(|| short(sql))
    }

    /// Inserts `rows` (each `columns.len()` values) in multi-row statements.
    pub async fn insert_rows(&self, table: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> Result<()> {
        let per = (BATCH * 6 / columns.len()).max(1);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Value>> = rows.by_ref().take(per).collect();
            let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
            let mut values = Vec::with_capacity(chunk.len() * columns.len());
            for (r, row) in chunk.into_iter().enumerate() {
                let base = r * columns.len();
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${}", base + i)).collect();
                sql.push_str(&format!("{}({})", if r == 0 { "" } else { ", " }, marks.join(", ")));
                values.extend(row);
            }
            self.exec(&sql, values).await?;
        }
        Ok(())
    }
}

fn short(sql: &str) -> String {
    let sql: String = sql.chars().take(120).collect();
    format!("SQL failed: {sql}")
}

pub struct Org {
    pub id: Uuid,
    pub slug: String,
}

#[derive(Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// A new organisation with a unique slug.
pub async fn org(db: &Db, label: &str) -> Result<Org> {
    let id = Uuid::now_v7();
    let slug = format!("bench-{label}-{}", &id.simple().to_string()[20..]);
    db.insert_rows(
        "organizations",
        &["id", "name", "slug", "created_at"],
        vec![vec![id.into(), slug.clone().into(), slug.clone().into(), now()]],
    )
    .await?;
    Ok(Org { id, slug })
}

fn now() -> Value {
    Value::from(Utc::now())
}

/// `n` members of `org` (handles `<prefix><i>`), each with a token.
pub async fn users(db: &Db, org: &Org, prefix: &str, n: usize, secret: &str) -> Result<Vec<User>> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let rows = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let handle = format!("{prefix}{i}");
            vec![
                (*id).into(),
                org.id.into(),
                handle.clone().into(),
                handle.into(),
                "member".into(),
                "human".into(),
                now(),
            ]
        })
        .collect();
    db.insert_rows("users", &["id", "org_id", "handle", "display_name", "role", "kind", "created_at"], rows)
        .await?;
    ids.into_iter().map(|id| Ok(User { id, token: mint(secret, id, org.id)? })).collect()
}

/// A public channel created by `owner` with `members` (besides the owner), all at seq 0.
pub async fn channel(db: &Db, org: &Org, owner: Uuid, name: &str, members: &[Uuid]) -> Result<Uuid> {
    let id = Uuid::now_v7();
    db.insert_rows(
        "rooms",
        &["id", "org_id", "kind", "name", "visibility", "last_seq", "created_by", "created_at"],
        vec![vec![
            id.into(),
            org.id.into(),
            "channel".into(),
            name.into(),
            "public".into(),
            0i64.into(),
            owner.into(),
            now(),
        ]],
    )
    .await?;
    let mut rows = vec![member_row(id, owner, "owner")];
    rows.extend(members.iter().filter(|m| **m != owner).map(|m| member_row(id, *m, "member")));
    db.insert_rows("room_members", &["room_id", "user_id", "role", "joined_at", "last_read_seq"], rows)
        .await?;
    Ok(id)
}

fn member_row(room: Uuid, user: Uuid, role: &str) -> Vec<Value> {
    vec![room.into(), user.into(), role.into(), now(), 0i64.into()]
}

/// SQL for a UUIDv7 whose timestamp is `ms` (an SQL expression, milliseconds since the epoch).
fn uuid7_sql(ms: &str) -> String {
    format!(
        "(lpad(to_hex(({ms})::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 3) || '8' \
         || substr(md5(random()::text), 1, 15))::uuid"
    )
}

/// PostgreSQL only: `rooms` public channels owned by `owner`, named `<prefix><i>`, with their
/// ids in creation order.
pub async fn bulk_channels(db: &Db, org: &Org, owner: Uuid, prefix: &str, rooms: usize) -> Result<Vec<Uuid>> {
    let base = Utc::now().timestamp_millis();
    db.exec(
        &format!(
            "INSERT INTO rooms (id, org_id, kind, name, visibility, last_seq, created_by, created_at) \
             SELECT {}, $1, 'channel', $2 || g, 'public', 0, $3, now() FROM generate_series(1, $4::int) g",
            uuid7_sql(&format!("{base} + g"))
        ),
        vec![org.id.into(), prefix.into(), owner.into(), (rooms as i32).into()],
    )
    .await?;
    let rows = db
        .query(
            "SELECT id FROM rooms WHERE org_id = $1 AND name LIKE $2 ORDER BY id",
            vec![org.id.into(), format!("{prefix}%").into()],
        )
        .await?;
    rows.iter().map(|r| r.try_get::<Uuid>("", "id").context("room id")).collect()
}

/// Brings the tables to the state a real database is in, after bulk writes. On PostgreSQL,
/// what autovacuum keeps: planner statistics and no dead row versions. A seed's bulk `UPDATE`
/// (every watermark, say) leaves a dead version of every row it touched, which autovacuum
/// removes within a minute (past its 20 % threshold) but which every index probe visits until
/// then: `unreadCounts(500)`'s statement took 3.0 ms instead of 2.2. On SQLite nothing: Parley
/// never runs `ANALYZE` there, and with statistics the bundled SQLite (built with STAT4)
/// re-prepares most statements on every execution (ARCHITECTURE.md, "SQLite and statistics").
/// Every scenario that seeds directly calls it before measuring.
pub async fn vacuum_analyze(db: &Db) -> Result<()> {
    if db.backend != DbBackend::Postgres {
        return Ok(());
    }
    for table in ["messages", "rooms", "room_members", "users"] {
        db.exec(&format!("VACUUM ANALYZE {table}"), vec![]).await?;
    }
    Ok(())
}

/// PostgreSQL only: `per_room` messages in each room (seqs 1..=per_room, authored by the room's
/// creator, UUIDv7 ids, one millisecond apart), then `rooms.last_seq`/`last_message_at` to match.
/// Returns rows inserted per second.
pub async fn bulk_messages(db: &Db, org: &Org, rooms: &[Uuid], per_room: usize) -> Result<f64> {
    bulk_messages_with(db, org, rooms, per_room, "'seeded message ' || g").await
}

/// [`bulk_messages`] with bodies given as an SQL expression over `g`, the message's seq.
pub async fn bulk_messages_with(
    db: &Db,
    org: &Org,
    rooms: &[Uuid],
    per_room: usize,
    body_sql: &str,
) -> Result<f64> {
    let started = Instant::now();
    let base = Utc::now().timestamp_millis() - per_room as i64 - 60_000;
    // About 100 000 rows per statement keeps each one short and shows progress.
    let rooms_per_batch = (100_000 / per_room.max(1)).clamp(1, 10_000);
    for chunk in rooms.chunks(rooms_per_batch) {
        let ids: Vec<String> = chunk.iter().map(|id| format!("'{id}'")).collect();
        let sql = format!(
            "INSERT INTO messages (id, org_id, room_id, seq, author_user_id, sender_role, body, source, \
               attachments, created_at) \
             SELECT {}, r.org_id, r.id, g, r.created_by, 'user', {body_sql}, 'chat', '[]'::jsonb, \
               to_timestamp(({base} + g) / 1000.0) \
             FROM rooms r CROSS JOIN generate_series(1, $1::int) g \
             WHERE r.org_id = $2 AND r.id IN ({})",
            uuid7_sql(&format!("{base} + g")),
            ids.join(",")
        );
        db.exec(&sql, vec![(per_room as i32).into(), org.id.into()]).await?;
        db.exec(
            &format!(
                "UPDATE rooms SET last_seq = $1, last_message_at = to_timestamp(({base} + $1 + \
                 (random() * 50000)::bigint) / 1000.0) WHERE org_id = $2 AND id IN ({})",
                ids.join(",")
            ),
            vec![(per_room as i64).into(), org.id.into()],
        )
        .await?;
    }
    let rows = (rooms.len() * per_room) as f64;
    Ok(rows / started.elapsed().as_secs_f64().max(1e-6))
}

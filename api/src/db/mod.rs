//! The database handle: connecting, migrating, and the write gate for SQLite.
//!
//! SQLite has one writer. Instead of retrying on `SQLITE_BUSY`, every write transaction goes
//! through `Store::begin_write`, which on SQLite first takes an in-process mutex; PostgreSQL
//! needs no gate. Migrations and demo seeding run under a PostgreSQL advisory lock so that
//! instances starting together do not race.
//!
//! Once the schema is migrated, a new PostgreSQL connection runs the hot statements it is given
//! ([`WarmUp`]) before the pool hands it out: requests meet warm connections, except the one
//! that makes the pool grow, which waits for the warm-up. On PostgreSQL the pool is opened to
//! its size at start-up (`Store::open_warm`) and kept: it never shrinks while idle.
//!
//! On SQLite a write of several statements goes to the database as one text ([`batch`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::sea_query::{BinOper, Expr, Func, LikeExpr, Values};
use sea_orm::sqlx::{self, PgConnection};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    DbErr, EntityTrait, ExprTrait, IdenStatic, IntoSimpleExpr, Iterable, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait, Value,
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use crate::config::DatabaseConfig;
use crate::error::{ApiError, ApiResult};
use migration::{Migrator, MigratorTrait};

mod batch;
pub use batch::batch;

/// Executions that leave PostgreSQL's plan cache settled: the first five of a prepared
/// statement get custom plans, the sixth builds the generic plan and chooses between them.
const PLAN_CACHE_WARM_UP: usize = 6;

/// Statements that every new PostgreSQL connection runs [`PLAN_CACHE_WARM_UP`] times before
/// the pool hands it out, with values that match nothing (they must write nothing). A fresh
/// connection otherwise pays on its first uses of a large statement: its backend loads the
/// catalog entries of every table and index, and plans it afresh for five executions (the
/// burst benchmark's p99 went from 9.5–22.2 to 8.5–11.2 ms). The request that makes the pool
/// grow waits for the warm-up instead.
///
/// Armed by `migrate_then` once the schema is current: a statement prepared before a
/// migration that changes a table it returns fails on that connection afterwards ("cached
/// plan must not change result type"). It waits for no lock (another instance may be
/// migrating); a statement the database refuses is logged and skipped, and a broken
/// connection is discarded by the pool.
#[derive(Clone, Default)]
pub struct WarmUp {
    statements: Arc<[Statement]>,
    armed: Arc<AtomicBool>,
}

impl WarmUp {
    pub fn new(statements: Vec<Statement>) -> Self {
        Self { statements: statements.into(), armed: Arc::default() }
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::Relaxed);
    }

    async fn run(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.statements.is_empty() || !self.armed.load(Ordering::Relaxed) {
            return Ok(());
        }
        sqlx::raw_sql("SET lock_timeout = '100ms'").execute(&mut *conn).await?;
        'statements: for statement in self.statements.iter() {
            let values = statement.values.clone().unwrap_or(Values(Vec::new()));
            for _ in 0..PLAN_CACHE_WARM_UP {
                let sql = sqlx::AssertSqlSafe(statement.sql.as_str());
                match sqlx::query_with(sql, SqlxValues(values.clone())).execute(&mut *conn).await {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(err)) => {
                        tracing::warn!(%err, "a warm-up statement was refused");
                        continue 'statements;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        sqlx::raw_sql("RESET lock_timeout").execute(&mut *conn).await?;
        Ok(())
    }
}

/// Advisory lock key for start-up work (migrations, demo seed) on PostgreSQL.
const STARTUP_LOCK_KEY: i64 = 0x7061_726c_6579; // "parley"

#[derive(Clone)]
pub struct Store {
    pub db: DatabaseConnection,
    /// Serialises write transactions on SQLite; `None` on PostgreSQL.
    write_gate: Option<Arc<Mutex<()>>>,
    /// PostgreSQL's text search configuration for messages (see `search::index`).
    search_config: Arc<str>,
    warm_up: WarmUp,
}

/// A write transaction, holding the SQLite write gate until commit or drop.
pub struct WriteTx {
    pub txn: DatabaseTransaction,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteTx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls back before the gate opens. A dropped transaction only queues its rollback on
    /// the connection, and the next writer's `BEGIN IMMEDIATE` would find the write lock
    /// still held (and wait in SQLite's busy handler).
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }

    /// Rolls back after `err`, which is what the caller reports (a failed rollback is logged).
    pub async fn rolled_back(self, err: DbErr) -> DbErr {
        if let Err(rollback) = self.rollback().await {
            tracing::warn!(error = %rollback, "rolling back after an error failed");
        }
        err
    }
}

impl Store {
    pub async fn connect(config: &DatabaseConfig, warm_up: WarmUp) -> anyhow::Result<Self> {
        let mut options = ConnectOptions::new(config.database_url.clone());
        options
            .max_connections(config.db_pool_size)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(5))
            // A ping only for a connection idle 100 ms or more, as HikariCP's bypass window:
            // under load (a connection reused every few ms) a round trip before each use cost
            // about 5 % of the support inbound rate; a database restarted within the window
            // fails the request that meets its dead connection instead of a ping.
            .test_before_acquire_if_idle_for(Duration::from_millis(100))
            .sqlx_logging(false);
        let sqlite = config.is_sqlite();
        if !sqlite {
            // A fixed-size pool, as HikariCP's default: `open_warm` fills it at start-up and
            // nothing closes an idle connection. A pool that shrinks while quiet regrows under
            // the next burst, a dozen new backends loading catalogs and warming up at once: the
            // first 300 ms of sends waited (the delivery benchmark's start, 2026-12-06).
            options.idle_timeout(None).max_lifetime(None);
            // Plans of these short queries are cheap; JIT compiling them is not (hundreds of
            // milliseconds when missing statistics inflate a cost estimate past the threshold).
            options.map_sqlx_postgres_opts(|opts| opts.options([("jit", "off")]));
            let warm = warm_up.clone();
            options.map_sqlx_postgres_pool_opts(move |pool| {
                let warm_up = warm.clone();
                pool.after_connect(move |conn, _| {
                    let warm_up = warm_up.clone();
                    Box::pin(async move { warm_up.run(conn).await })
                })
            });
        }
        if sqlite {
            options.map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    .with_regexp()
            });
        }
        let db = Database::connect(options)
            .await
            .map_err(|e| anyhow::anyhow!("DATABASE_URL: cannot connect: {e}"))?;
        Ok(Self {
            db,
            write_gate: sqlite.then(|| Arc::new(Mutex::new(()))),
            search_config: config.search_config.as_str().into(),
            warm_up,
        })
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    pub fn search_config(&self) -> &str {
        &self.search_config
    }

    pub async fn begin_write(&self) -> Result<WriteTx, DbErr> {
        let gate = match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        // IMMEDIATE on SQLite: the write lock is taken at BEGIN, where the busy timeout waits
        // for a writer outside this gate (an autocommit statement). A deferred transaction
        // that reads first fails at its first write with "database is locked" if such a
        // writer committed meanwhile: no timeout helps a stale snapshot. PostgreSQL ignores it.
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        Ok(WriteTx { txn: self.db.begin_with_options(options).await?, _gate: gate })
    }

    /// Holds row `id` of `table` until `txn` ends, so writers that check a rule under it (a
    /// count, a last owner) take turns. PostgreSQL: `FOR NO KEY UPDATE`, so rows that merely
    /// reference it are not held up; SQLite's write transaction already excludes every other
    /// writer.
    pub async fn hold_row(&self, txn: &DatabaseTransaction, table: &str, id: Uuid) -> Result<(), DbErr> {
        if self.backend() == DatabaseBackend::Postgres {
            let hold = format!("SELECT id FROM {table} WHERE id = $1 FOR NO KEY UPDATE");
            txn.execute_raw(self.stmt(&hold, vec![id.into()])).await?;
        }
        Ok(())
    }

    /// A statement in portable SQL: `$1`-style placeholders read the same on both backends.
    pub fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend(), sql, values)
    }

    /// `column` is one of `ids`, as SQL starting at placeholder `$first`, with its values. On
    /// PostgreSQL the ids travel as one text parameter, so the statement text is the same for any
    /// number of ids: prepared once, planned without a 500-element IN list. The list is unnested
    /// in a subquery, which runs once: as `= ANY(string_to_array(…))`, a generic plan that filters
    /// another index re-parsed the whole text for every row (642 ms instead of 6 for 500 rooms).
    /// SQLite has no arrays.
    pub fn in_ids(&self, column: &str, ids: &[Uuid], first: usize) -> (String, Vec<Value>) {
        if self.backend() == sea_orm::DatabaseBackend::Postgres {
            let mut list = String::with_capacity(ids.len() * (uuid::fmt::Hyphenated::LENGTH + 1));
            for id in ids {
                if !list.is_empty() {
                    list.push(',');
                }
                list.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
            }
            let condition = format!("{column} IN (SELECT unnest(string_to_array(${first}, ',')::uuid[]))");
            return (condition, vec![list.into()]);
        }
        let placeholders: Vec<String> = (first..first + ids.len()).map(|i| format!("${i}")).collect();
        (format!("{column} IN ({})", placeholders.join(",")), ids.iter().map(|id| Value::from(*id)).collect())
    }

    /// Applies pending migrations and the search configuration, then runs `after` (e.g. the
    /// demo seed) under the same lock, so concurrent starts on one PostgreSQL database
    /// serialise. The migrations run in one transaction on either backend: a start killed
    /// halfway (a deploy, Ctrl-C) leaves the schema as it was, not a table without its
    /// migration's record, which would stop every later start (sea-orm-migration wraps each
    /// migration in a transaction of its own on PostgreSQL only).
    pub async fn migrate_then<T, F, Fut>(&self, after: F) -> anyhow::Result<T>
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let postgres = self.backend() == DatabaseBackend::Postgres;
        let txn = self.db.begin().await?;
        if postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [STARTUP_LOCK_KEY.into()],
            ))
            .await?;
        }
        Migrator::up(&txn, None).await?;
        crate::search::index::apply_config(&txn, &self.search_config).await?;
        txn.commit().await?;
        if !postgres {
            return after(self.clone()).await;
        }
        self.warm_up.arm();
        // The seed runs under a second lock, held by a transaction of its own while the seed
        // writes on other connections: an instance that waits here then finds the seed
        // already there.
        let lock = self.db.begin().await?;
        lock.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [(STARTUP_LOCK_KEY + 1).into()],
        ))
        .await?;
        let result = after(self.clone()).await;
        lock.commit().await?;
        result
    }

    /// Opens PostgreSQL connections until the pool holds `count`, all at once, each warmed
    /// before it joins (call after `migrate_then`, which arms the warm-up). A no-op on SQLite.
    pub async fn open_warm(&self, count: u32) -> anyhow::Result<()> {
        if self.backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let pool = self.db.get_postgres_connection_pool();
        // Held together, so that each acquire beyond the idle connections opens one.
        let held = futures_util::future::try_join_all((0..count).map(|_| pool.acquire())).await?;
        drop(held);
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }
}

/// Longest text [`contains_ci`] looks for, in characters: longer than any name it is compared
/// with, and on SQLite it becomes a regex, whose compile limit a long enough text passes.
pub const MAX_CONTAINED: usize = 256;

/// A search text as a client gave it: trimmed, `None` when empty, BAD_USER_INPUT naming
/// `field` past [`MAX_CONTAINED`].
pub fn search_text<'a>(text: Option<&'a str>, field: &str) -> ApiResult<Option<&'a str>> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() > MAX_CONTAINED => {
            Err(ApiError::bad_input(format!("{field}: at most {MAX_CONTAINED} characters")))
        }
        found => Ok(found),
    }
}

/// `column` contains `text`, ignoring case in every script. PostgreSQL: `lower(column) LIKE
/// '%text%'` (its `lower()` folds by the database's UTF-8 ctype), with `%`, `_` and `\`
/// matched literally. SQLite's `lower()` and `LIKE` fold ASCII only, so there it is `column
/// REGEXP '(?i)text'`, the `regex` crate's Unicode case folding, registered by sqlx.
pub fn contains_ci(backend: DatabaseBackend, column: impl IntoSimpleExpr, text: &str) -> Expr {
    if backend == DatabaseBackend::Sqlite {
        let pattern = format!("(?i){}", regex::escape(text));
        return Expr::expr(column.into_simple_expr()).binary(BinOper::Custom("REGEXP"), pattern);
    }
    let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    Expr::expr(Func::lower(column.into_simple_expr()))
        .like(LikeExpr::new(format!("%{escaped}%")).escape('\\'))
}

/// SQL for `column` equal to `text` ignoring case (see [`contains_ci`]), with its one value,
/// bound at placeholder `$n`.
pub fn equals_ci_sql(backend: DatabaseBackend, column: &str, n: usize, text: &str) -> (String, Value) {
    if backend == DatabaseBackend::Sqlite {
        return (format!("{column} REGEXP ${n}"), format!("(?i)^{}$", regex::escape(text)).into());
    }
    (format!("lower({column}) = ${n}"), text.to_lowercase().into())
}

/// `E`'s columns as a select or `RETURNING` list, each qualified by `alias` when given
/// (`m."id", m."org_id", …`).
///
/// Raw statements name their columns instead of writing `*`: PostgreSQL refuses to run a
/// prepared statement whose result columns changed ("cached plan must not change result
/// type"). With `*`, a column added by a newer instance's migration during a rolling deploy
/// would fail every statement the older instances had prepared, sends included.
pub fn columns<E: EntityTrait>(alias: Option<&str>) -> String {
    let qualifier = alias.map(|alias| format!("{alias}.")).unwrap_or_default();
    E::Column::iter()
        .map(|column| format!("{qualifier}\"{}\"", column.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Now, to the microsecond: all PostgreSQL's timestamps keep, so a time a mutation answers
/// with (`createdAt`, `editedAt`, `lastReadAt`, …) is the time every later read returns.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

//! Scenario `floor`: what the hardware and the two servers allow, measured in the same run on
//! the same PostgreSQL and Redis, with tiny clients and no Parley in between.
//!
//! - PostgreSQL single-row INSERT with autocommit (insert + commit in one round trip) of a
//!   message-shaped row: sequentially on one connection, and from as many concurrent
//!   connections as Parley's pool has (latency and rows/s).
//! - PostgreSQL point SELECT by primary key (the floor of read queries).
//! - Redis PUBLISH → receipt on a subscribed connection, sequentially (~200-byte payload).
//! - SQLite single-row INSERT + commit in WAL mode, `synchronous=NORMAL` as Parley sets it.
//!
//! Later figures name the floor they stand on; `pg+redis` (the sum of the PostgreSQL insert
//! and the Redis round trip, p50 with p50 and p99 with p99) is the floor of a cross-instance
//! delivery.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::Ctx;
use crate::report::{Dist, Figure, Floor, Hist};
use crate::seed::Db;

const S: &str = "floor";
pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS bench_floor (id uuid PRIMARY KEY, room_id uuid NOT NULL, \
                      seq bigint NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL)";
pub const INSERT: &str =
    "INSERT INTO bench_floor (id, room_id, seq, body, created_at) VALUES ($1, $2, $3, $4, $5)";

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let n = ctx.sizes.floor_samples;

    let one = Db::connect(&ctx.env.database_url, 1).await?;
    one.exec(CREATE, vec![]).await?;
    let (insert1, ids) = inserts(&one, n).await?;
    one.exec("ANALYZE bench_floor", vec![]).await?;
    floor(
        ctx,
        "pg_insert",
        Figure::new(S, "PostgreSQL INSERT+commit, 1 connection", format!("{n} sequential")),
        &insert1,
    );

    let mut select = Hist::default();
    for i in 0..n {
        let t = Instant::now();
        one.query("SELECT id, body FROM bench_floor WHERE id = $1", vec![ids[i % ids.len()].into()]).await?;
        select.record(t.elapsed());
    }
    floor(
        ctx,
        "pg_select",
        Figure::new(S, "PostgreSQL point SELECT, 1 connection", format!("{n} sequential")),
        &select,
    );

    let pool = ctx.env.pool_size as usize;
    let secs = ctx.sizes.floor_pool_secs;
    let (pooled, rate) = pooled_inserts(&ctx.env.database_url, pool, Duration::from_secs_f64(secs)).await?;
    let params = format!("{pool} connections in parallel for {secs} s");
    floor(
        ctx,
        "pg_insert_pool",
        Figure::new(S, format!("PostgreSQL INSERT+commit, {pool} connections"), params.clone()),
        &pooled,
    );
    ctx.report.floors.insert("pg_insert_rate".into(), Floor::Rate(rate));
    ctx.report.push(
        Figure::new(S, format!("PostgreSQL INSERT+commit rate, {pool} connections"), params)
            .value(rate, "rows/s"),
    );

    let redis = redis_round_trips(&ctx.env.redis_url, n).await?;
    floor(
        ctx,
        "redis_rtt",
        Figure::new(S, "Redis PUBLISH → subscriber receive", format!("{n} sequential")),
        &redis,
    );

    if let (Some(pg), Some(r)) = (insert1.dist(), redis.dist()) {
        let sum = Dist {
            samples: pg.samples.min(r.samples),
            p50: pg.p50 + r.p50,
            p90: pg.p90 + r.p90,
            p99: pg.p99 + r.p99,
            max: pg.max + r.max,
        };
        ctx.report.floors.insert("pg+redis".into(), Floor::Latency(sum));
    }

    let path = ctx.env.work_dir.join("floor.db");
    let sqlite = Db::connect(&format!("sqlite://{}?mode=rwc", path.display()), 1).await?;
    sqlite.exec(CREATE.replace("timestamptz", "text").as_str(), vec![]).await?;
    let (sqlite_insert, _) = inserts(&sqlite, n).await?;
    floor(
        ctx,
        "sqlite_insert",
        Figure::new(S, "SQLite INSERT+commit (WAL, synchronous=NORMAL)", format!("{n} sequential")),
        &sqlite_insert,
    );
    Ok(())
}

fn floor(ctx: &mut Ctx, key: &str, figure: Figure, hist: &Hist) {
    if let Some(d) = hist.dist() {
        ctx.report.floors.insert(key.into(), Floor::Latency(d));
    }
    ctx.report.push(figure.dist(hist));
}

pub fn row(seq: usize) -> (Uuid, Vec<sea_orm::Value>) {
    let id = Uuid::now_v7();
    let values = vec![
        id.into(),
        Uuid::nil().into(),
        (seq as i64).into(),
        format!("floor message {seq} with a body of a typical chat length").into(),
        chrono::Utc::now().into(),
    ];
    (id, values)
}

async fn inserts(db: &Db, n: usize) -> Result<(Hist, Vec<Uuid>)> {
    let mut hist = Hist::default();
    let mut ids = Vec::with_capacity(n);
    for seq in 0..n {
        let (id, values) = row(seq);
        let t = Instant::now();
        db.exec(INSERT, values).await?;
        hist.record(t.elapsed());
        ids.push(id);
    }
    Ok((hist, ids))
}

async fn pooled_inserts(url: &str, connections: usize, length: Duration) -> Result<(Hist, f64)> {
    let db = Arc::new(Db::connect(url, connections as u32).await?);
    let total = Arc::new(Mutex::new(Hist::default()));
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (db, total) = (db.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Hist::default();
            let mut seq = worker * 1_000_000;
            while Instant::now() < deadline {
                let (_, values) = row(seq);
                let t = Instant::now();
                db.exec(INSERT, values).await?;
                hist.record(t.elapsed());
                seq += 1;
            }
            total.lock().await.add(&hist);
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("insert task panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let hist = Arc::try_unwrap(total).map(Mutex::into_inner).unwrap_or_default();
    let rate = hist.len() as f64 / elapsed;
    Ok((hist, rate))
}

async fn redis_round_trips(url: &str, n: usize) -> Result<Hist> {
    let client = redis::Client::open(url).context("REDIS_URL")?;
    let channel = format!("bench:floor:{}", Uuid::now_v7());
    let mut pubsub = client.get_async_pubsub().await.context("Redis pub/sub connection")?;
    pubsub.subscribe(&channel).await?;
    let mut messages = pubsub.into_on_message();
    let mut conn = client.get_multiplexed_async_connection().await?;
    let payload = "x".repeat(200);
    let mut hist = Hist::default();
    for _ in 0..n {
        let t = Instant::now();
        let _: i64 = conn.publish(&channel, &payload).await?;
        tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .context("a published message did not arrive")?
            .context("the subscription ended")?;
        hist.record(t.elapsed());
    }
    Ok(hist)
}

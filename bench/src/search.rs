//! Scenario `search`: `searchMessages` over a large store, on PostgreSQL and on SQLite.
//!
//! PostgreSQL: the unread scenario's shape, seeded directly: `unread_rooms` channels (2 000)
//! of `unread_per_room` messages (500: one million). The viewer is a member of
//! `unread_query_rooms` of them (500); the others are private, so the viewer may read a
//! quarter of the store while every query still meets the whole index. Bodies carry words of
//! known frequency, drawn at random so that they are spread over time: `standup` in 2 % of all
//! messages (the common query), `zeppelin` in 0.01 % (the rare one), and `release notes`
//! adjacent in 1 % with the two words apart in another 1 % (the phrase query). SQLite: the same shape at a fifth of the size (200 000
//! messages), on an instance of its own.
//!
//! Latency: each query kind in turn, one request at a time (A and B alternating on
//! PostgreSQL), first page of 20 hits with snippets.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::Gql;
use crate::config::Ctx;
use crate::report::{Figure, Hist};
use crate::seed::{self, Db, User};
use crate::servers::{Instance, Spec};

const S: &str = "search";
const SEARCH: &str = "query($q: String!) { searchMessages(query: $q, first: 20) { \
    edges { rank snippet node { id seq } } pageInfo { hasNextPage } } }";
const QUERIES: [(&str, &str); 3] =
    [("common", "standup"), ("rare", "zeppelin"), ("phrase", "\"release notes\"")];

/// The body of message `g`, an SQL expression over `g` (the seq) and random draws; `chance(n)`
/// is the engine's SQL for a draw that holds once in `n`. Words are drawn rather than tied to
/// seqs so that they are spread evenly over time, as in a real history: the newest messages,
/// which search ranks first, hold them as often as older ones.
fn body_sql(chance: fn(u32) -> String) -> String {
    format!(
        "'seeded message ' || g \
         || CASE WHEN {} THEN ' daily standup' ELSE '' END \
         || CASE WHEN {} THEN ' release notes for the api' \
                 WHEN {} THEN ' notes about the release' ELSE '' END \
         || CASE WHEN {} THEN ' zeppelin sighted' ELSE '' END",
        chance(50),
        chance(100),
        chance(99),
        chance(10_000)
    )
}

/// PostgreSQL's `random()` is a float in [0, 1); SQLite's an integer.
fn pg_chance(n: u32) -> String {
    format!("random() < 1.0 / {n}")
}

fn sqlite_chance(n: u32) -> String {
    format!("abs(random()) % {n} = 0")
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let z = ctx.sizes.clone();
    let (rooms_n, per_room, joined) =
        (z.unread_rooms, z.unread_per_room, z.unread_query_rooms.min(z.unread_rooms));

    let seeded = Instant::now();
    let org = seed::org(&ctx.db, "search").await?;
    let users = seed::users(&ctx.db, &org, "s", 2, &ctx.env.jwt_secret).await?;
    let rooms = seed::bulk_channels(&ctx.db, &org, users[1].id, "search-", rooms_n).await?;
    let rate = seed::bulk_messages_with(&ctx.db, &org, &rooms, per_room, &body_sql(pg_chance)).await?;
    scope_viewer(&ctx.db, &org, &users[0], &rooms[..joined]).await?;
    // The vacuum also empties the GIN index's pending list, which every search would
    // otherwise scan (a rare word took 14 ms instead of 4 before it).
    seed::vacuum_analyze(&ctx.db).await?;
    let world =
        format!("{} messages in {rooms_n} channels; the viewer reads {joined} of them", rooms_n * per_room);
    let note = format!("seeded in {:.0} s ({rate:.0} rows/s)", seeded.elapsed().as_secs_f64());
    println!("  {note}");
    let gqls = [Gql::new(&ctx.a.http())?, Gql::new(&ctx.b.http())?];
    measure(ctx, &gqls, &users[0], "PostgreSQL", &world, "p50 ≤ 20 ms, p99 ≤ 80 ms", &note).await?;

    let lite_rooms = (rooms_n / 5).max(1);
    let lite_joined = (joined / 5).clamp(1, lite_rooms);
    let url = format!("sqlite://{}?mode=rwc", ctx.env.work_dir.join("search.db").display());
    let spec = Spec {
        label: "SQLite".into(),
        database_url: url.clone(),
        redis_url: None,
        pool_size: ctx.env.pool_size,
    };
    let lite = Instance::spawn(&ctx.env, spec).await?;
    let result = async {
        let db = Db::connect(&url, 1).await?;
        let seeded = Instant::now();
        let org = seed::org(&db, "search").await?;
        let users = seed::users(&db, &org, "s", 2, &ctx.env.jwt_secret).await?;
        let mut rooms = Vec::with_capacity(lite_rooms);
        for i in 0..lite_rooms {
            rooms.push(seed::channel(&db, &org, users[1].id, &format!("search-{i}"), &[]).await?);
        }
        sqlite_messages(&db, &org, per_room).await?;
        scope_viewer(&db, &org, &users[0], &rooms[..lite_joined]).await?;
        seed::vacuum_analyze(&db).await?;
        let world = format!(
            "{} messages in {lite_rooms} channels; the viewer reads {} of them",
            lite_rooms * per_room,
            lite_joined
        );
        let note = format!("seeded in {:.0} s", seeded.elapsed().as_secs_f64());
        let gql = Gql::new(&lite.http())?;
        measure(
            ctx,
            &[gql, Gql::new(&lite.http())?],
            &users[0],
            "SQLite",
            &world,
            "reported beside PostgreSQL",
            &note,
        )
        .await
    }
    .await;
    lite.stop().await;
    result
}

/// Makes `viewer` a member of `rooms` and every other channel of `org` private.
async fn scope_viewer(db: &Db, org: &seed::Org, viewer: &User, rooms: &[Uuid]) -> Result<()> {
    let rows = rooms
        .iter()
        .map(|room| {
            vec![(*room).into(), viewer.id.into(), "member".into(), chrono::Utc::now().into(), 0i64.into()]
        })
        .collect();
    db.insert_rows("room_members", &["room_id", "user_id", "role", "joined_at", "last_read_seq"], rows)
        .await?;
    db.exec(
        "UPDATE rooms SET visibility = 'private' WHERE org_id = $1 AND id NOT IN \
           (SELECT room_id FROM room_members WHERE user_id = $2)",
        vec![org.id.into(), viewer.id.into()],
    )
    .await?;
    Ok(())
}

/// SQLite: `per_room` messages in every channel of `org`, generated inside SQLite. Ids begin
/// with the millisecond they were sent, as UUIDv7s do, since search ranks the newest first.
async fn sqlite_messages(db: &Db, org: &seed::Org, per_room: usize) -> Result<()> {
    db.exec(
        &format!(
            "WITH RECURSIVE seqs(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seqs WHERE g < $2) \
             INSERT INTO messages (id, org_id, room_id, seq, author_user_id, sender_role, body, source, \
               attachments, created_at) \
             SELECT unhex(printf('%012x', unixepoch('now') * 1000 - ($2 - g) * 1000) || hex(randomblob(10))), \
               r.org_id, r.id, g, r.created_by, 'user', {}, 'chat', '[]', \
               strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || ($2 - g) || ' seconds') \
             FROM rooms r CROSS JOIN seqs WHERE r.org_id = $1",
            body_sql(sqlite_chance)
        ),
        vec![org.id.into(), (per_room as i64).into()],
    )
    .await?;
    db.exec(
        "UPDATE rooms SET last_seq = $2 WHERE org_id = $1",
        vec![org.id.into(), (per_room as i64).into()],
    )
    .await?;
    Ok(())
}

/// Every query kind, `query_samples` times each, one request at a time.
async fn measure(
    ctx: &mut Ctx,
    gqls: &[Gql; 2],
    viewer: &User,
    backend: &str,
    world: &str,
    target: &str,
    seed_note: &str,
) -> Result<()> {
    let samples = ctx.sizes.query_samples;
    for (kind, query) in QUERIES {
        let (mut hist, mut errors, mut first, mut hits) = (Hist::default(), 0u64, None, 0usize);
        for i in 0..samples {
            let t = Instant::now();
            let result = gqls[i % 2].call(&viewer.token, SEARCH, json!({ "q": query })).await;
            match result.and_then(|d| page_size(&d)) {
                Ok(n) => {
                    hist.record(t.elapsed());
                    hits = n;
                }
                Err(err) => {
                    errors += 1;
                    first.get_or_insert(format!("first error: {err:#}"));
                }
            }
        }
        let meets =
            (backend == "PostgreSQL").then(|| hist.dist().map(|d| d.p50 <= 20.0 && d.p99 <= 80.0)).flatten();
        ctx.report.push(
            Figure::new(
                S,
                format!("{backend}: {kind} query `{query}`"),
                format!("{world}; first page of 20, sequential"),
            )
            .dist(&hist)
            .errors(errors)
            .target(target, meets)
            .note(format!("{hits} hits on the first page"))
            .note(seed_note)
            .notes(&first.into_iter().collect::<Vec<_>>()),
        );
    }
    Ok(())
}

fn page_size(data: &Value) -> Result<usize> {
    let edges = data["searchMessages"]["edges"].as_array().context("no searchMessages edges")?;
    if edges.iter().any(|e| !e["snippet"].as_str().is_some_and(|s| s.contains("<mark>"))) {
        anyhow::bail!("a hit without a highlighted snippet");
    }
    Ok(edges.len())
}

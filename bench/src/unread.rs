//! Scenario `unread`: unread counts with a large store, and proof that they cost a constant
//! number of SQL statements.
//!
//! Seeded directly (see `seed`): `unread_users` users (default 1 000), `unread_rooms` public
//! channels (2 000) with `unread_per_room` messages each (500: one million in all), about 1 %
//! of them deleted. `unread_viewers` users are members of every room; every room also has 25
//! random members; every watermark is random between 0 and the room's last seq.
//!
//! Latency (alternating A and B, viewers in turn, one request at a time):
//! `unreadCounts(roomIds:)` for `unread_query_rooms` (500) of the viewer's rooms, and
//! `viewer { rooms(first: 50) { edges { node { unreadCount lastMessage { body } } } } }`.
//!
//! Statements: a separate instance (P) reaches PostgreSQL through [`CountingProxy`], which
//! counts `Execute`/`Query` messages; N identical requests give statements per request. The
//! same query over 1, 50 and 500 rooms (and pages of 10 and 50 rooms) must cost the same.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::Gql;
use crate::config::Ctx;
use crate::pgcount::{self, Case};
use crate::report::{Figure, Hist};
use crate::seed;
use crate::servers::Spec;

const S: &str = "unread";
const COUNTS: &str = "query($ids: [ID!]!) { unreadCounts(roomIds: $ids) { roomId unreadCount seq } }";
const ROOMS: &str = "query($n: Int) { viewer { rooms(first: $n) { edges { node { id unreadCount lastMessage { body } } } } } }";
const SEND: &str = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { seq } }";
const MEMBERS_PER_ROOM: usize = 25;

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let z = ctx.sizes.clone();
    let viewers_n = z.unread_viewers.min(z.unread_users.saturating_sub(1)).max(1);
    let seeded = Instant::now();
    let org = seed::org(&ctx.db, "unread").await?;
    let users = seed::users(&ctx.db, &org, "u", z.unread_users.max(2), &ctx.env.jwt_secret).await?;
    let rooms = seed::bulk_channels(&ctx.db, &org, users[viewers_n].id, "room-", z.unread_rooms).await?;
    let viewer_handles: Vec<String> = (0..viewers_n).map(|i| format!("'u{i}'")).collect();
    ctx.db
        .exec(
            &format!(
                "INSERT INTO room_members (room_id, user_id, role, joined_at, last_read_seq) \
                 SELECT r.id, u.id, 'member', now(), 0 FROM rooms r JOIN users u ON u.org_id = r.org_id \
                 WHERE r.org_id = $1 AND u.handle IN ({})",
                viewer_handles.join(",")
            ),
            vec![org.id.into()],
        )
        .await?;
    ctx.db
        .exec(
            "INSERT INTO room_members (room_id, user_id, role, joined_at, last_read_seq) \
             SELECT r.id, u.id, 'member', now(), 0 FROM rooms r CROSS JOIN LATERAL \
               (SELECT id FROM users WHERE org_id = r.org_id AND r.id IS NOT NULL ORDER BY random() LIMIT $2) u \
             WHERE r.org_id = $1 ON CONFLICT DO NOTHING",
            vec![org.id.into(), (MEMBERS_PER_ROOM as i64).into()],
        )
        .await?;
    let rate = seed::bulk_messages(&ctx.db, &org, &rooms, z.unread_per_room).await?;
    ctx.db
        .exec(
            "UPDATE room_members rm SET last_read_seq = floor(random() * (r.last_seq + 1)) \
             FROM rooms r WHERE rm.room_id = r.id AND r.org_id = $1",
            vec![org.id.into()],
        )
        .await?;
    let deleted = ctx
        .db
        .exec(
            "UPDATE messages SET deleted_at = now() WHERE org_id = $1 AND random() < 0.01",
            vec![org.id.into()],
        )
        .await?;
    seed::vacuum_analyze(&ctx.db).await?;
    let total = rooms.len() * z.unread_per_room;
    let seed_note = format!(
        "seeded {total} messages ({deleted} deleted) in {:.1} s ({rate:.0} rows/s)",
        seeded.elapsed().as_secs_f64()
    );
    println!("  {seed_note}");

    let viewers = &users[..viewers_n];
    let q = z.unread_query_rooms.min(rooms.len());
    let page = 50.min(rooms.len());
    let gqls = [Gql::new(&ctx.a.http())?, Gql::new(&ctx.b.http())?];
    let world = format!(
        "{total} messages in {} rooms, {} users, {viewers_n} viewers in every room + {MEMBERS_PER_ROOM} random members per room",
        rooms.len(),
        users.len()
    );

    let (mut hist, mut errors, mut listed, mut first) = (Hist::default(), 0u64, 0usize, None);
    for i in 0..z.query_samples {
        let ids = window(&rooms, i * 37, q);
        let t = Instant::now();
        let result = gqls[i % 2].call(&viewers[i % viewers.len()].token, COUNTS, json!({ "ids": ids })).await;
        match result.and_then(|d| d["unreadCounts"].as_array().map(Vec::len).context("no unreadCounts list"))
        {
            Ok(n) => {
                hist.record(t.elapsed());
                listed += n;
            }
            Err(err) => {
                errors += 1;
                first.get_or_insert(format!("first error: {err:#}"));
            }
        }
    }
    let meets = hist.dist().map(|d| d.p50 <= 5.0);
    let avg = listed as f64 / z.query_samples.max(1) as f64;
    ctx.report.push(
        Figure::new(S, format!("unreadCounts({q} rooms)"), format!("{world}; A/B alternating, sequential"))
            .dist(&hist)
            .errors(errors)
            .floor("pg_select")
            .target("p50 ≤ 5 ms (500 rooms, 1 M msgs)", meets)
            .note(format!("{avg:.0} rooms with unread per answer"))
            .note(seed_note)
            .notes(&first.take().into_iter().collect::<Vec<_>>()),
    );

    over_tls(ctx, viewers, &rooms, q).await?;

    let (mut hist, mut errors) = (Hist::default(), 0u64);
    for i in 0..z.query_samples {
        let t = Instant::now();
        let result = gqls[i % 2].call(&viewers[i % viewers.len()].token, ROOMS, json!({ "n": page })).await;
        match result.and_then(|d| edges(&d)) {
            Ok(n) if n == page => hist.record(t.elapsed()),
            Ok(n) => {
                errors += 1;
                first.get_or_insert(format!("first error: a page of {n} rooms, {page} expected"));
            }
            Err(err) => {
                errors += 1;
                first.get_or_insert(format!("first error: {err:#}"));
            }
        }
    }
    ctx.report.push(
        Figure::new(S, format!("viewer.rooms(first: {page}) unreadCount lastMessage"), world)
            .dist(&hist)
            .errors(errors)
            .floor("pg_select")
            .notes(&first.into_iter().collect::<Vec<_>>()),
    );

    statements(ctx, viewers, &rooms, q).await
}

/// The same `unreadCounts` through an instance T whose database connections use TLS, as a
/// `DATABASE_URL` without `sslmode` does against a server with TLS on. Its 18 KB statement
/// spans two TLS records: without TCP_NODELAY (sqlx-core 0.9.0, see `vendor/README.md`) it
/// waited 40 ms for PostgreSQL's delayed ACK. Skipped when the server has no TLS.
async fn over_tls(ctx: &mut Ctx, viewers: &[seed::User], rooms: &[Uuid], q: usize) -> Result<()> {
    let name = format!("unreadCounts({q} rooms), PostgreSQL over TLS");
    if !ctx.env.database_url.contains("sslmode=disable") {
        println!("  {name}: skipped, the database URL sets its own sslmode");
        return Ok(());
    }
    let spec = Spec {
        label: "T".into(),
        database_url: ctx.env.database_url.replace("sslmode=disable", "sslmode=require"),
        redis_url: Some(ctx.env.redis_url.clone()),
        pool_size: 4,
    };
    let t = match ctx.spawn(spec).await {
        Ok(t) => t,
        Err(err) => {
            println!("  {name}: skipped, no TLS instance ({err:#})");
            return Ok(());
        }
    };
    let samples = (ctx.sizes.query_samples / 5).max(10);
    let (mut hist, mut errors, mut first) = (Hist::default(), 0u64, None);
    let result = async {
        let gql = Gql::new(&t.http())?;
        // A new instance's first heartbeat reads the users of dead presence leases: not timed.
        tokio::time::sleep(pgcount::SETTLE).await;
        for i in 0..samples {
            let ids = window(rooms, i * 37, q);
            let started = Instant::now();
            match gql.call(&viewers[i % viewers.len()].token, COUNTS, json!({ "ids": ids })).await {
                Ok(_) => hist.record(started.elapsed()),
                Err(err) => {
                    errors += 1;
                    first.get_or_insert(format!("first error: {err:#}"));
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    t.stop().await;
    result?;
    ctx.report.push(
        Figure::new(S, name, "instance T, sslmode=require, sequential")
            .dist(&hist)
            .errors(errors)
            .notes(&first.into_iter().collect::<Vec<_>>()),
    );
    Ok(())
}

/// `n` room ids starting at `offset`, wrapping around.
fn window(rooms: &[Uuid], offset: usize, n: usize) -> Vec<Uuid> {
    (0..n).map(|j| rooms[(offset + j) % rooms.len()]).collect()
}

fn edges(data: &Value) -> Result<usize> {
    data["viewer"]["rooms"]["edges"].as_array().map(Vec::len).context("no edges")
}

/// Statements per request through the counting proxy, at several sizes of the same request.
async fn statements(ctx: &mut Ctx, viewers: &[seed::User], rooms: &[Uuid], q: usize) -> Result<()> {
    let mut cases = Vec::new();
    for n in [1, 50.min(q), q] {
        let ids = window(rooms, 0, n);
        let vars = Box::new(move |_| json!({ "ids": ids }));
        cases.push(Case { name: format!("unreadCounts({n} rooms)"), query: COUNTS, vars, verdict: None });
    }
    for n in [10.min(rooms.len()), 50.min(rooms.len())] {
        let vars = Box::new(move |_| json!({ "n": n }));
        cases.push(Case { name: format!("viewer.rooms(first: {n})"), query: ROOMS, vars, verdict: None });
    }
    let room = rooms[0];
    let vars = Box::new(
        move |i| json!({ "input": { "roomId": room, "body": format!("s{i}"), "clientId": format!("s{i}") } }),
    );
    let verdict = Some("per message sent");
    cases.push(Case { name: "sendMessage(into a channel)".into(), query: SEND, vars, verdict });
    let params = "Execute+Query messages counted by a proxy: the fewest of 3 rounds of 10 requests";
    let token = viewers[0].token.clone();
    pgcount::report_statements(ctx, S, &token, cases, params).await
}

//! Scenario `presence`: connect/disconnect churn with presence watchers, and typing.
//!
//! `presence_users` users (plus a tenth as many spares) are spread over `presence_rooms`
//! channels; each channel has one watcher holding `presenceChanged`, watchers alternately on A
//! and B. All users connect (alternately to A and B, 64 handshakes in flight) and every watcher
//! must hear each of its room's users come online. Then, for `presence_secs`, the churn: each
//! tick one connected user closes their socket and one spare connects, `presence_churn`
//! connects plus disconnects a second, so the population stays constant. A sample is the time
//! from the start of a connect (or of a close) to the watcher's `ONLINE` (or `OFFLINE`) frame;
//! a change never heard is lost. Redis's `INFO commandstats` over each phase, divided by its
//! connects and disconnects, gives the Redis commands sent per presence change (everything the
//! instances sent: the lease script, the PUBLISH, heartbeats; the commands a script runs
//! inside Redis are reported beside it).
//!
//! Typing: `typing_users` users call `setTyping(room, true)` once a second each for
//! `typing_secs` (each always through the same instance), and the instances'
//! `parley_typing_published_total` gives the bus publishes per second, to stay at most users ×
//! rooms typed in (one room each).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::Gql;
use crate::config::Ctx;
use crate::inbox::{Inbox, WsEvent};
use crate::report::{Figure, Hist};
use crate::seed;
use crate::servers::{Instance, prometheus_sums};
use crate::ws::{WsConn, close_all, connect_many};

const S: &str = "presence";
const WATCH: &str = "subscription { presenceChanged { userId status } }";
const TYPE: &str = "mutation($room: ID!) { setTyping(roomId: $room, typing: true) }";
/// How long the last changes may take to be heard after a phase.
const GRACE: Duration = Duration::from_secs(10);

struct Population {
    users: Vec<seed::User>,
    rooms: Vec<Uuid>,
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let (n, room_count) = (ctx.sizes.presence_users, ctx.sizes.presence_rooms.max(1));
    let org = seed::org(&ctx.db, "presence").await?;
    let secret = ctx.env.jwt_secret.clone();
    let watchers = seed::users(&ctx.db, &org, "pw", room_count, &secret).await?;
    let users = seed::users(&ctx.db, &org, "pu", n + (n / 10).max(1), &secret).await?;
    let mut rooms = Vec::with_capacity(room_count);
    for (r, watcher) in watchers.iter().enumerate() {
        let members: Vec<Uuid> = users.iter().skip(r).step_by(room_count).map(|u| u.id).collect();
        rooms.push(seed::channel(&ctx.db, &org, watcher.id, &format!("{}-p{r}", org.slug), &members).await?);
    }
    seed::vacuum_analyze(&ctx.db).await?;
    let people = Population { users, rooms };

    let mut inbox = Inbox::default();
    let mut watching = Vec::with_capacity(watchers.len());
    for (i, watcher) in watchers.iter().enumerate() {
        let conn = WsConn::connect(&pick(ctx, i).ws(), &watcher.token, i as u32, &inbox).await?;
        conn.subscribe("p1", WATCH, json!({}))?;
        watching.push(conn);
    }
    // The protocol does not acknowledge `subscribe`; give the watchers time to follow.
    tokio::time::sleep(Duration::from_secs(2)).await;
    inbox.drain_for(Duration::from_millis(200)).await;

    let result = churn(ctx, &people, &mut inbox).await;
    close_all(watching).await;
    result?;
    typing(ctx, &people).await
}

/// A by even index, B by odd.
fn pick(ctx: &Ctx, i: usize) -> &Instance {
    if i.is_multiple_of(2) { &ctx.a } else { &ctx.b }
}

async fn churn(ctx: &mut Ctx, people: &Population, inbox: &mut Inbox) -> Result<()> {
    let n = ctx.sizes.presence_users;
    let redis = redis::Client::open(ctx.env.redis_url.as_str())?.get_multiplexed_async_connection().await?;
    let first_conn = ctx.sizes.presence_rooms as u32;

    // Everyone connects.
    let mut pending: HashMap<(Uuid, bool), Instant> = HashMap::new();
    let started = Instant::now();
    pending.extend(people.users[..n].iter().map(|u| ((u.id, true), started)));
    let commands_before = commands(&redis).await?;
    let (even, odd): (Vec<_>, Vec<_>) = (0..n).partition(|i| i.is_multiple_of(2));
    let tokens = |ids: &[usize]| ids.iter().map(|&i| people.users[i].token.clone()).collect::<Vec<_>>();
    let (url_a, url_b, tokens_a, tokens_b) = (ctx.a.ws(), ctx.b.ws(), tokens(&even), tokens(&odd));
    let (on_a, on_b) = tokio::join!(
        connect_many(&url_a, &tokens_a, first_conn, 32, inbox, &[]),
        connect_many(&url_b, &tokens_b, first_conn + n as u32, 32, inbox, &[]),
    );
    let connect_secs = started.elapsed().as_secs_f64();
    let mut conns: HashMap<usize, WsConn> = HashMap::new();
    conns.extend(even.iter().copied().zip(on_a?.0));
    conns.extend(odd.iter().copied().zip(on_b?.0));
    // Heard at all is what counts here: every handshake started at once, so the times
    // measure the queue, not a change.
    settle(inbox, &mut pending, &mut Hist::default()).await;
    let lost_initial = pending.len() as u64;
    let commands_connect = commands(&redis).await? - commands_before;
    pending.clear();
    ctx.report.push(
        Figure::new(
            S,
            "initial connects heard by watchers",
            format!("{n} users, 2 instances, 64 handshakes in flight"),
        )
        .value(n as f64 / connect_secs, "conn/s")
        .undelivered(lost_initial),
    );

    // The churn: one close and one connect per tick.
    let rate = f64::from(ctx.sizes.presence_churn.max(2));
    let tick = Duration::from_secs_f64(2.0 / rate);
    let mut connected: VecDeque<usize> = (0..n).collect();
    let mut spare: VecDeque<usize> = (n..people.users.len()).collect();
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel::<(usize, Result<WsConn>)>();
    let (mut samples, mut ops, mut failures) = (Hist::default(), 0u64, 0u64);
    let commands_before = commands(&redis).await?;
    let end = Instant::now() + Duration::from_secs_f64(ctx.sizes.presence_secs);
    let mut next = Instant::now();
    while next < end {
        while let Ok((i, conn)) = opened_rx.try_recv() {
            match conn {
                Ok(conn) => drop(conns.insert(i, conn)),
                Err(_) => failures += 1,
            }
        }
        if let (Some(leaving), Some(joining)) = (connected.pop_front(), spare.pop_front()) {
            let now = Instant::now();
            if let Some(conn) = conns.remove(&leaving) {
                pending.insert((people.users[leaving].id, false), now);
                tokio::spawn(conn.close());
                ops += 1;
            }
            spare.push_back(leaving);
            pending.insert((people.users[joining].id, true), now);
            let (url, token, tx, events) = (
                pick(ctx, joining).ws(),
                people.users[joining].token.clone(),
                opened_tx.clone(),
                inbox.tx.clone(),
            );
            let conn_no = first_conn + 2 * n as u32 + joining as u32;
            tokio::spawn(async move {
                let _ = tx.send((joining, WsConn::connect_reporting(&url, &token, conn_no, events).await));
            });
            connected.push_back(joining);
            ops += 1;
        }
        next += tick;
        inbox.recv_until(next, |event| record(event, &mut pending, &mut samples)).await;
    }
    let churn_secs = ctx.sizes.presence_secs;
    settle(inbox, &mut pending, &mut samples).await;
    let commands_churn = commands(&redis).await? - commands_before;
    failures += inbox.errors.len() as u64;
    while let Ok((i, conn)) = opened_rx.try_recv() {
        match conn {
            Ok(conn) => drop(conns.insert(i, conn)),
            Err(_) => failures += 1,
        }
    }
    let connected_now = conns.len();
    let lost_online = pending.keys().filter(|(_, online)| *online).count();
    close_all(conns.into_values().collect()).await;

    let params = format!(
        "{n} users on 2 instances, {} connects + disconnects/s for {churn_secs} s, {} watchers",
        ctx.sizes.presence_churn, ctx.sizes.presence_rooms
    );
    let p99_ok = samples.dist().map(|d| d.p99 <= 100.0);
    ctx.report.push(
        Figure::new(S, "connect or disconnect → watcher hears it", params.clone())
            .dist(&samples)
            .value(ops as f64 / churn_secs, "changes/s")
            .errors(failures)
            .undelivered(pending.len() as u64)
            .target("p99 ≤ 100 ms", p99_ok)
            .note(format!(
                "{connected_now} sockets open at the end; unheard: {lost_online} connects, {} disconnects",
                pending.len() - lost_online
            )),
    );
    let per = |count: u64, changes: u64| count as f64 / changes.max(1) as f64;
    let (per_connect, per_change) = (per(commands_connect.sent, n as u64), per(commands_churn.sent, ops));
    ctx.report.push(
        Figure::new(
            S,
            "Redis commands per presence change",
            "commands sent to Redis (INFO commandstats) over each phase",
        )
        .value(per_change, "cmd/change")
        .target("≤ 3 per connect", Some(per_connect <= 3.0 && per_change <= 3.0))
        .note(format!(
            "initial connects: {per_connect:.2} per connect; run inside scripts as well: {:.1} per change",
            per(commands_churn.run, ops)
        )),
    );
    Ok(())
}

/// Matches a watcher's frame with the change it reports.
fn record(event: WsEvent, pending: &mut HashMap<(Uuid, bool), Instant>, samples: &mut Hist) -> bool {
    if let WsEvent::Presence { user, online, at } = event
        && let Some(started) = pending.remove(&(user, online))
    {
        samples.record(at.saturating_duration_since(started));
    }
    false
}

/// Hears changes until none is pending or the grace period ends.
async fn settle(inbox: &mut Inbox, pending: &mut HashMap<(Uuid, bool), Instant>, samples: &mut Hist) {
    let deadline = Instant::now() + GRACE;
    while !pending.is_empty() && Instant::now() < deadline {
        let until = (Instant::now() + Duration::from_millis(100)).min(deadline);
        inbox.recv_until(until, |event| record(event, pending, samples)).await;
    }
}

/// Commands run only inside Parley's Lua scripts (presence leases, the send rate limit).
const SCRIPT_ONLY: [&str; 10] =
    ["time", "zremrangebyscore", "zcard", "zadd", "zrem", "set", "get", "zcount", "zrangebyscore", "zscore"];

/// Redis's counts of commands so far: sent by clients, and run in all (inside scripts too).
async fn commands(redis: &redis::aio::MultiplexedConnection) -> Result<Commands> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut redis.clone()).await?;
    let mut counts = Commands::default();
    for line in info.lines() {
        let Some((name, stats)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
            continue;
        };
        let calls: u64 = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|c| c.parse().ok())
            .context("a commandstats line without calls")?;
        counts.run += calls;
        if !SCRIPT_ONLY.contains(&name) {
            counts.sent += calls;
        }
    }
    Ok(counts)
}

#[derive(Debug, Default, Clone, Copy)]
struct Commands {
    sent: u64,
    run: u64,
}

impl std::ops::Sub for Commands {
    type Output = Commands;
    fn sub(self, before: Commands) -> Commands {
        Commands { sent: self.sent - before.sent, run: self.run - before.run }
    }
}

async fn typing(ctx: &mut Ctx, people: &Population) -> Result<()> {
    let users = ctx.sizes.typing_users.min(people.users.len());
    let secs = ctx.sizes.typing_secs;
    let gql = [Gql::new(&ctx.a.http())?, Gql::new(&ctx.b.http())?];
    let before = published(ctx).await?;
    let in_flight = Arc::new(Semaphore::new(256));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let calls = (secs * users as f64) as usize;
    let gap = Duration::from_secs_f64(1.0 / users.max(1) as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(calls);
    for k in 0..calls {
        tokio::time::sleep_until(started + gap * k as u32).await;
        let i = k % users;
        let (client, token) = (gql[i % 2].clone(), people.users[i].token.clone());
        let room = people.rooms[i % people.rooms.len()];
        let (permit, failures) = (in_flight.clone().acquire_owned().await?, failures.clone());
        tasks.push(tokio::spawn(async move {
            if client.call(&token, TYPE, json!({ "room": room })).await.is_err() {
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            drop(permit);
        }));
    }
    futures_util::future::join_all(tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = published(ctx).await?;
    let per_sec = (after - before) / elapsed;
    let bound = users as f64;
    ctx.report.push(
        Figure::new(
            S,
            "typing: bus publishes per second",
            format!("{users} users × 1 room, one setTyping a second each, {secs} s, {calls} calls"),
        )
        .value(per_sec, "publishes/s")
        .errors(failures.load(std::sync::atomic::Ordering::Relaxed))
        .target(&format!("≤ {bound:.0} (users × rooms)"), Some(per_sec <= bound))
        .note(format!("{:.0} calls/s offered", calls as f64 / elapsed)),
    );
    Ok(())
}

/// `parley_typing_published_total` of A and B together.
async fn published(ctx: &Ctx) -> Result<f64> {
    let http = reqwest::Client::new();
    let mut total = 0.0;
    for instance in [&ctx.a, &ctx.b] {
        let text = http.get(format!("{}/metrics", instance.http())).send().await?.text().await?;
        total += prometheus_sums(&text).get("parley_typing_published_total").copied().unwrap_or(0.0);
    }
    Ok(total)
}

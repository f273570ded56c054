//! Scenario `soak`: a long stretch of ordinary traffic while subscribers come and go the rude
//! way, to show that nothing accumulates.
//!
//! A fresh instance E (PostgreSQL + Redis, no allocator history) serves everything. Open-loop
//! senders post `soak_rate` messages per second, round-robin over `soak_rooms` public channels
//! (each owned by its sender; every user is a member of one channel). Meanwhile `soak_churn`
//! subscribers per second connect to E (`messageAdded` for all their rooms plus
//! `unreadCountChanged`), live between half a second and `soak_lifetime` seconds, and vanish:
//! the client task is dropped, so the TCP connection ends with no `complete` and no close
//! frame, as a phone losing its network or a killed tab does. `/metrics` is scraped every
//! [`SCRAPE_EVERY`] from the start, as a monitored instance is (before, only the end's gauge
//! check scraped, so the last sample was also the first after a scrape). E's VmRSS, and its
//! split into anonymous and file-backed pages, is sampled throughout; the figure is the
//! least-squares slope after the warm-up (the first fifth of the run). At the end, with every
//! client gone, E's `parley_ws_connections` and `parley_active_subscriptions` gauges must come
//! back to 0. Send failures, failed scrapes, WebSocket errors and failed connects count as
//! errors.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::Gql;
use crate::config::Ctx;
use crate::inbox::{Inbox, WsEvent};
use crate::report::{Figure, slope};
use crate::seed;
use crate::servers::{Instance, prometheus_sums};
use crate::ws::WsConn;

const S: &str = "soak";
const MESSAGES: &str = "subscription { messageAdded { seq body } }";
const UNREAD: &str = "subscription { unreadCountChanged { roomId seq } }";
/// Sends in flight at most: beyond it the offered load waits (and the run says so).
const IN_FLIGHT: usize = 256;
/// How often `/metrics` is scraped: the interval of Prometheus's example configuration.
const SCRAPE_EVERY: Duration = Duration::from_secs(15);
/// How long E may take to notice the last vanished clients.
const GAUGE_GRACE: Duration = Duration::from_secs(30);

/// Where a channel's messages come from.
#[derive(Clone)]
struct Room {
    id: Uuid,
    sender_token: String,
}

/// Requests made on a schedule: the sends, or the scrapes.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    /// Sends that had to wait because [`IN_FLIGHT`] were still running.
    waited: u64,
    first_error: Option<String>,
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let sizes = ctx.sizes.clone();
    let org = seed::org(&ctx.db, "soak").await?;
    let users =
        seed::users(&ctx.db, &org, "s", sizes.soak_users.max(sizes.soak_rooms), &ctx.env.jwt_secret).await?;
    let mut rooms = Vec::new();
    for r in 0..sizes.soak_rooms {
        let members: Vec<Uuid> =
            users.iter().enumerate().filter(|(i, _)| i % sizes.soak_rooms == r).map(|(_, u)| u.id).collect();
        let name = format!("{}-soak-{r}", org.slug);
        let id = seed::channel(&ctx.db, &org, users[r].id, &name, &members).await?;
        rooms.push(Room { id, sender_token: users[r].token.clone() });
    }
    seed::vacuum_analyze(&ctx.db).await?;
    let tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();

    let e = ctx.spawn(ctx.env.spec("E")).await?;
    let result = soak_on(ctx, &e, &rooms, &tokens).await;
    e.stop().await;
    result
}

async fn soak_on(ctx: &mut Ctx, e: &Instance, rooms: &[Room], tokens: &[String]) -> Result<()> {
    let sizes = ctx.sizes.clone();
    let length = Duration::from_secs_f64(sizes.soak_secs);
    let sample_every = Duration::from_secs_f64((sizes.soak_secs / 60.0).clamp(0.5, 10.0));
    let connect_every = Duration::from_secs_f64(1.0 / sizes.soak_churn.max(1) as f64);
    let lifetime_ms = (sizes.soak_lifetime_secs * 1000.0) as u64;
    let started = Instant::now();
    let end = started + length;
    let sender = tokio::spawn(send_steadily(Gql::new(&e.http())?, rooms.to_vec(), sizes.soak_rate, end));
    let scrape_client = reqwest::Client::builder().timeout(SCRAPE_EVERY).build()?;
    let scraper = tokio::spawn(scrape_steadily(scrape_client, e.http(), end));

    let mut inbox = Inbox::default();
    let mut subscribers = Subscribers::default();
    let mut churned = 0u32;
    let (mut results, mut rss, mut split) = (0u64, Vec::new(), Vec::new());
    let (mut next_connect, mut next_sample) = (started, started);
    while Instant::now() < end {
        let now = Instant::now();
        subscribers.vanish_due(now);
        while let Some(done) = subscribers.connecting.try_join_next() {
            subscribers.admit(done);
        }
        if now >= next_connect {
            let token = tokens[churned as usize % tokens.len()].clone();
            let lives = Duration::from_millis(500 + random(lifetime_ms.saturating_sub(500).max(1)));
            subscribers.connecting.spawn(subscribe_for(e.ws(), token, churned, inbox.tx.clone(), lives));
            churned += 1;
            next_connect += connect_every;
        }
        if now >= next_sample {
            rss.push((started.elapsed().as_secs_f64(), e.rss_kib()? as f64));
            split.push(e.rss_split_kib()?);
            next_sample += sample_every;
        }
        let wake = next_connect.min(next_sample).min(end);
        inbox
            .recv_until(wake, |_| {
                results += 1;
                false
            })
            .await;
    }
    let sends = sender.await.context("the sender task panicked")?;
    let scrapes = scraper.await.context("the scraper task panicked")?;
    // The rest vanish now; then E gets a grace period to notice.
    while let Some(done) = subscribers.connecting.join_next().await {
        subscribers.admit(done);
    }
    subscribers.vanish_all();
    inbox.recv_until(Instant::now() + Duration::from_millis(500), |_| false).await;
    let gauges = settled_gauges(&e.http()).await?;
    rss.push((started.elapsed().as_secs_f64(), e.rss_kib()? as f64));
    split.push(e.rss_split_kib()?);

    let warm = sizes.soak_secs / 5.0;
    let after_warm_up: Vec<(f64, f64)> = rss.iter().copied().filter(|(t, _)| *t >= warm).collect();
    let per_min = slope(&after_warm_up).map(|kib_per_sec| kib_per_sec * 60.0);
    let (first, last) = (after_warm_up.first().map_or(0.0, |p| p.1), rss.last().map_or(0.0, |p| p.1));
    let params = format!(
        "{:.0} s at {} msg/s into {} rooms; {}/s subscribers living 0.5–{} s, vanishing without close; \
         RSS every {:.1} s, slope after the first {warm:.0} s",
        sizes.soak_secs,
        sizes.soak_rate,
        rooms.len(),
        sizes.soak_churn,
        sizes.soak_lifetime_secs,
        sample_every.as_secs_f64()
    );
    let errors = sends.failed + scrapes.failed + subscribers.failures + inbox.errors.len() as u64;
    let per_minute = (60.0 / sample_every.as_secs_f64()).max(1.0) as usize;
    let minutes: Vec<String> =
        rss.iter().step_by(per_minute).map(|(_, kib)| format!("{:.1}", kib / 1024.0)).collect();
    // Anonymous memory growing means something allocated and kept; file-backed memory growing
    // only means more of the binary's pages were touched. Huge pages move RssAnon in 2 MiB
    // steps either way (the twenty-ninth session's 1-second samples: 43 of 52 steps over 1 MiB
    // were a huge page's), so they are shown apart.
    let mib = |kib: u64| kib as f64 / 1024.0;
    let anon_file: Vec<String> = split
        .iter()
        .step_by(per_minute)
        .map(|&(anon, file, huge)| {
            let huge = huge.map_or("?".to_owned(), |kib| format!("{:.0}", mib(kib)));
            format!("{:.1}/{:.1}/{huge}", mib(anon), mib(file))
        })
        .collect();
    let mut figure = Figure::new(S, "RSS slope after warm-up", params)
        .errors(errors)
        .note(format!("RSS {:.1} MiB after warm-up → {:.1} MiB at the end", first / 1024.0, last / 1024.0))
        .note(format!("RSS each minute (MiB): {}", minutes.join(" ")))
        .note(format!("RssAnon/RssFile/AnonHugePages each minute (MiB): {}", anon_file.join(" ")));
    if let Some(per_min) = per_min {
        // Flat: what the slope adds over the measured stretch stays under 5 % of the RSS.
        let growth = per_min * (sizes.soak_secs - warm) / 60.0;
        figure = figure.value(per_min, "KiB/min").target("growth < 5 % of RSS", Some(growth < 0.05 * first));
    }
    let first_errors = [
        sends.first_error.as_ref(),
        scrapes.first_error.as_ref(),
        subscribers.first_error.as_ref(),
        inbox.errors.first(),
    ];
    for err in first_errors.into_iter().flatten() {
        figure = figure.note(format!("first error: {err}"));
    }
    ctx.report.push(figure);

    let (connections, subscriptions) = gauges;
    ctx.report.push(
        Figure::new(
            S,
            "gauges after every client vanished",
            "parley_ws_connections + parley_active_subscriptions",
        )
        .value(connections + subscriptions, "open")
        .target("0", Some(connections + subscriptions == 0.0))
        .note(format!("connections {connections}, subscriptions {subscriptions}")),
    );
    let secs = sizes.soak_secs.max(f64::EPSILON);
    ctx.report.push(
        Figure::new(
            S,
            "traffic",
            format!("{churned} subscribers ({:.1}/s) connected and vanished", f64::from(churned) / secs),
        )
        .value(sends.ok as f64 / secs, "msg/s")
        .errors(errors)
        .note(format!(
            "{} sent, {} failed, {} waited for a free slot ({IN_FLIGHT} in flight); \
                 {results} subscription results received; /metrics scraped {} times, {} failed",
            sends.ok, sends.failed, sends.waited, scrapes.ok, scrapes.failed
        )),
    );
    if connections + subscriptions != 0.0 {
        bail!(
            "E still counts {connections} connections and {subscriptions} subscriptions after every client left"
        );
    }
    Ok(())
}

/// The churning subscribers: those connecting, and those live until their time to vanish.
#[derive(Default)]
struct Subscribers {
    connecting: JoinSet<Result<(Instant, WsConn)>>,
    live: Vec<(Instant, WsConn)>,
    failures: u64,
    first_error: Option<String>,
}

impl Subscribers {
    /// Takes a finished connect: live, or a failure.
    fn admit(&mut self, done: Result<Result<(Instant, WsConn)>, JoinError>) {
        let failure = match done {
            Ok(Ok(subscriber)) => return self.live.push(subscriber),
            Ok(Err(err)) => format!("{err:#}"),
            Err(err) => format!("connect task: {err}"),
        };
        self.failures += 1;
        self.first_error.get_or_insert(failure);
    }

    /// Drops, without a close frame, every subscriber whose time is up by `now`.
    fn vanish_due(&mut self, now: Instant) {
        let (gone, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.live).into_iter().partition(|(until, _)| *until <= now);
        self.live = kept;
        gone.into_iter().for_each(|(_, conn)| conn.vanish());
    }

    fn vanish_all(&mut self) {
        std::mem::take(&mut self.live).into_iter().for_each(|(_, conn)| conn.vanish());
    }
}

/// One subscriber: connects, subscribes, and says when it will vanish.
async fn subscribe_for(
    url: String,
    token: String,
    conn: u32,
    events: mpsc::UnboundedSender<WsEvent>,
    lives: Duration,
) -> Result<(Instant, WsConn)> {
    let ws = WsConn::connect_reporting(&url, &token, conn, events).await?;
    ws.subscribe("m1", MESSAGES, serde_json::json!({}))?;
    ws.subscribe("u1", UNREAD, serde_json::json!({}))?;
    Ok((Instant::now() + lives, ws))
}

/// Posts `rate` messages per second until `end`, each on its own schedule (open loop, at most
/// [`IN_FLIGHT`] at once), round-robin over `rooms`.
async fn send_steadily(gql: Gql, rooms: Vec<Room>, rate: u32, end: Instant) -> Tally {
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tally = Tally::default();
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for k in 0u64.. {
        let at = start + interval.mul_f64(k as f64);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        if slots.available_permits() == 0 {
            tally.waited += 1;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let room = rooms[k as usize % rooms.len()].clone();
        let gql = gql.clone();
        tasks.spawn(async move {
            let sent = gql.send(&room.sender_token, room.id, &format!("s{k}")).await;
            drop(slot);
            sent
        });
        while let Some(done) = tasks.try_join_next() {
            count(&mut tally, done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        count(&mut tally, done);
    }
    tally
}

fn count(tally: &mut Tally, done: Result<Result<i64>, JoinError>) {
    let failure = match done {
        Ok(Ok(_)) => return tally.ok += 1,
        Ok(Err(err)) => format!("{err:#}"),
        Err(err) => format!("send task: {err}"),
    };
    failed(tally, failure);
}

/// Scrapes `{base}/metrics` every [`SCRAPE_EVERY`] until `end`, from the start; a scrape that
/// takes longer than that fails.
async fn scrape_steadily(http: reqwest::Client, base: String, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut next = Instant::now();
    while next < end {
        tokio::time::sleep_until(next).await;
        let scraped =
            async { http.get(format!("{base}/metrics")).send().await?.error_for_status()?.bytes().await };
        match scraped.await {
            Ok(_) => tally.ok += 1,
            Err(err) => failed(&mut tally, format!("scrape: {err}")),
        }
        next += SCRAPE_EVERY;
    }
    tally
}

fn failed(tally: &mut Tally, why: String) {
    tally.failed += 1;
    tally.first_error.get_or_insert(why);
}

/// E's connection and subscription gauges, polled until both are 0 or [`GAUGE_GRACE`] passed.
async fn settled_gauges(base: &str) -> Result<(f64, f64)> {
    let http = reqwest::Client::builder().timeout(GAUGE_GRACE).build()?;
    let deadline = Instant::now() + GAUGE_GRACE;
    loop {
        let text = http.get(format!("{base}/metrics")).send().await?.error_for_status()?.text().await?;
        let values = prometheus_sums(&text);
        let read = |name: &str| values.get(name).copied().unwrap_or(0.0);
        let (connections, subscriptions) =
            (read("parley_ws_connections"), read("parley_active_subscriptions"));
        if (connections == 0.0 && subscriptions == 0.0) || Instant::now() >= deadline {
            return Ok((connections, subscriptions));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A number in `0..bound` (a lifetime; no need for a seeded generator): every `RandomState`
/// hashes with fresh keys.
fn random(bound: u64) -> u64 {
    RandomState::new().hash_one(Instant::now()) % bound.max(1)
}

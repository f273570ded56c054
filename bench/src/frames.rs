//! Scenario `frames`: SQL statements per delivered subscription frame.
//!
//! A separate instance P reaches PostgreSQL through the statement-counting proxy of `pgcount`
//! (as in `unread`) and shares Redis with A and B. One public channel (seeded) has
//! `frames_subscribers` members (default 20), each holding one WebSocket to P, and one more
//! member who sends. Two phases, on fresh connections each, so that each subscription type
//! gets its own figure:
//!
//! 1. `messageAdded { … }` with the rich selection (`schema::RICH_FIELDS`: ids, body, times,
//!    `clientId`, `roomId`, `author { id handle displayName kind }`, `room { id name kind }`;
//!    reduced, with a warning, to the fields the server has);
//! 2. `unreadCountChanged { roomId unreadCount unreadTotal seq }`.
//!
//! After a warm-up barrier and a quiet interval of 2.5 s (statements counted then are reported
//! as idle), the proxy's tally is read, `frames_messages` messages (default 100) are sent one
//! at a time through B (not P), the bench waits until every subscriber has every frame
//! (messageAdded: every message; unreadCountChanged: a count at the last message's seq), and
//! the tally is read again. Statements P ran in between divided by frames P delivered is the
//! figure: a frame built from the bus event alone costs 0. P's own background work (pollers
//! that run every second, which a phase longer than a second meets) is not counted: each SQL
//! P ran while idle is allowed as often again per idle window the phase lasted, and only what
//! exceeds that counts (listed in the notes, as is what was allowed). Background work rarer
//! than the idle window (the reminder scheduler's) counts against the frames: it can only make
//! the figure worse. Missing frames are lost; duplicates, failed sends and WebSocket errors
//! are errors.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::{Gql, Poster};
use crate::config::Ctx;
use crate::inbox::{Inbox, Kind, WsEvent};
use crate::pgcount::CountingProxy;
use crate::report::Figure;
use crate::schema::{self, Rich};
use crate::seed;
use crate::servers::{CpuMeter, Instance, Spec};
use crate::ws::{Sub, close_all, connect_many};

const S: &str = "frames";
const UNREAD: &str = "subscription { unreadCountChanged { roomId unreadCount unreadTotal seq } }";
/// Statements counted between the barrier and the measurement are reported as idle, and the
/// SQL run then is P's own background work (its pollers run every second), not counted
/// against the frames.
const QUIET: Duration = Duration::from_millis(2_500);

struct Phase {
    label: &'static str,
    kind: Kind,
    query: String,
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let rich = schema::rich(ctx).await?;
    let k = ctx.sizes.frames_subscribers.max(1);
    let org = seed::org(&ctx.db, "frames").await?;
    let users = seed::users(&ctx.db, &org, "q", k + 1, &ctx.env.jwt_secret).await?;
    let (sender, members) = users.split_last().context("no users")?;
    let ids: Vec<Uuid> = members.iter().map(|u| u.id).collect();
    let room = seed::channel(&ctx.db, &org, sender.id, &format!("{}-room", org.slug), &ids).await?;
    seed::vacuum_analyze(&ctx.db).await?;
    let poster = Poster { gql: Gql::new(&ctx.b.http())?, token: sender.token.clone(), room };
    let tokens: Vec<String> = members.iter().map(|u| u.token.clone()).collect();

    let (proxy, url) = CountingProxy::for_url(&ctx.env.database_url).await?;
    let spec = Spec {
        label: "P".into(),
        database_url: url,
        redis_url: Some(ctx.env.redis_url.clone()),
        pool_size: ctx.env.pool_size,
    };
    let p = ctx.spawn(spec).await?;
    let phases = [
        Phase { label: "messageAdded (rich)", kind: Kind::Message, query: rich.subscription() },
        Phase { label: "unreadCountChanged", kind: Kind::Unread, query: UNREAD.into() },
    ];
    let mut result = Ok(());
    for (i, phase) in phases.iter().enumerate() {
        // Bodies double as `clientId`s: each phase numbers its messages on from the last.
        let first = (i * ctx.sizes.frames_messages) as u64;
        result = measure(ctx, &p, &proxy, &poster, &tokens, phase, first, &rich).await;
        if result.is_err() {
            println!("  P's recent output:\n{}", p.recent_output());
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    p.stop().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    ctx: &mut Ctx,
    p: &Instance,
    proxy: &CountingProxy,
    poster: &Poster,
    tokens: &[String],
    phase: &Phase,
    first: u64,
    rich: &Rich,
) -> Result<()> {
    let (k, m) = (tokens.len(), ctx.sizes.frames_messages.max(1));
    let mut inbox = Inbox::default();
    let id = if phase.kind == Kind::Message { "m1" } else { "u1" };
    let subs = [Sub::new(id, &phase.query, json!({}))];
    let (conns, _) = connect_many(&p.ws(), tokens, 0, 32, &inbox, &subs).await?;
    let need: Vec<(u32, Kind)> = (0..k as u32).map(|c| (c, phase.kind)).collect();
    if let Err(err) = inbox.barrier(std::slice::from_ref(poster), &need, Duration::from_secs(30)).await {
        close_all(conns).await;
        return Err(err);
    }
    let quiet_from = proxy.by_sql();
    inbox.drain_for(QUIET).await;
    let before = proxy.by_sql();
    let idle = grown(&quiet_from, &before);

    let meter = CpuMeter::start(&[(&p.label, Some(p.pid)), ("B", Some(ctx.b.pid)), ("bench", None)]);
    let started = Instant::now();
    let (mut seqs, mut send_errors, mut first_error) = (Vec::with_capacity(m), 0u64, None);
    for i in first..first + m as u64 {
        match poster.send(&format!("b{i}")).await {
            Ok(seq) => seqs.push(seq),
            Err(err) => {
                send_errors += 1;
                first_error.get_or_insert(format!("{err:#}"));
            }
        }
    }
    let first_seq = seqs.iter().copied().min().unwrap_or(0);
    let last_seq = seqs.iter().copied().max().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(if ctx.quick { 10 } else { 30 });
    let expected = k * seqs.len();
    let (mut frames, mut duplicates, mut lost) = (0usize, 0u64, 0u64);
    match phase.kind {
        Kind::Message => {
            let mut got: HashSet<(u32, u64)> = HashSet::with_capacity(expected);
            inbox
                .recv_until(deadline, |event| {
                    if let WsEvent::Message { conn, tag: b'b', no, .. } = event {
                        frames += 1;
                        if !got.insert((conn, no)) {
                            duplicates += 1;
                        }
                    }
                    got.len() >= expected
                })
                .await;
            lost = expected.saturating_sub(got.len()) as u64;
        }
        Kind::Unread => {
            // Per connection, the highest seq a count was computed at.
            let mut reached: HashMap<u32, i64> = HashMap::with_capacity(k);
            let room = poster.room;
            inbox
                .recv_until(deadline, |event| {
                    if let WsEvent::Unread { conn, room: r, seq, .. } = event
                        && r == room
                        && seq >= first_seq
                    {
                        frames += 1;
                        let max = reached.entry(conn).or_default();
                        *max = (*max).max(seq);
                    }
                    reached.len() == k && reached.values().all(|s| *s >= last_seq)
                })
                .await;
            for conn in 0..k as u32 {
                let max = reached.get(&conn).copied().unwrap_or(0);
                lost += seqs.iter().filter(|s| **s > max).count() as u64;
            }
        }
    }
    let ran = grown(&before, &proxy.by_sql());
    // P's background work may run each idle statement as often again per idle window the
    // phase lasted; only what exceeds that counts.
    let windows = started.elapsed().as_secs_f64() / QUIET.as_secs_f64();
    let allowance = |sql: &str| (idle.get(sql).copied().unwrap_or(0) as f64 * windows.ceil()) as u64;
    let mut background: Vec<(&String, u64)> = Vec::new();
    let mut work: Vec<(&String, u64)> = Vec::new();
    for (sql, n) in &ran {
        let allowed = allowance(sql).min(*n);
        if allowed > 0 {
            background.push((sql, allowed));
        }
        if *n > allowed {
            work.push((sql, n - allowed));
        }
    }
    let statements: u64 = work.iter().map(|(_, n)| n).sum();
    let cpu = meter.finish().notes();
    close_all(conns).await;

    let params = format!(
        "instance P through the counting proxy; {k} subscribers on P, {} messages sent one at a time via B",
        seqs.len()
    );
    let mut notes = vec![format!("{statements} statements for {frames} frames ({expected} expected)")];
    notes.push(format!(
        "{} statements while idle for {} ms before",
        idle.values().sum::<u64>(),
        QUIET.as_millis()
    ));
    if !background.is_empty() {
        notes.push(format!(
            "not counted, P's background work (up to as often as it ran while idle, per idle window): {}",
            listed(&background)
        ));
    }
    if !work.is_empty() {
        notes.push(format!("counted: {}", listed(&work)));
    }
    if phase.kind == Kind::Message {
        notes.push(format!("selection `{}`", rich.fields));
        notes.extend(rich.note());
    }
    notes.extend(cpu);
    if let Some(err) = &first_error {
        notes.push(format!("first send error: {err}"));
    }
    if let Some(err) = inbox.errors.first() {
        notes.push(format!("first WebSocket error: {err}"));
    }
    let mut figure = Figure::new(S, format!("{}: SQL statements per frame", phase.label), params)
        .errors(send_errors + duplicates + inbox.errors.len() as u64)
        .undelivered(lost)
        .notes(&notes);
    if frames > 0 {
        let meets = statements == 0;
        figure = figure
            .value(statements as f64 / frames as f64, "stmts/frame")
            .target("0 stmts/frame", Some(meets));
    } else {
        figure = figure.target("0 stmts/frame", None);
    }
    ctx.report.push(figure);
    if frames == 0 {
        bail!("{}: no frame arrived", phase.label);
    }
    Ok(())
}

/// The statements whose count grew from `before` to `after`, by SQL.
fn grown(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> HashMap<String, u64> {
    after
        .iter()
        .filter_map(|(sql, n)| {
            let more = n - before.get(sql).copied().unwrap_or(0);
            (more > 0).then(|| (sql.clone(), more))
        })
        .collect()
}

/// Statements and their counts, each SQL cut to 100 characters.
fn listed(statements: &[(&String, u64)]) -> String {
    let cut = |sql: &str| match sql.char_indices().nth(100) {
        Some((at, _)) => format!("{}…", &sql[..at]),
        None => sql.to_owned(),
    };
    statements.iter().map(|(sql, n)| format!("{n} × `{}`", cut(sql))).collect::<Vec<_>>().join("; ")
}

//! Scenario `fanout`: one message to a channel with S connected subscribers.
//!
//! For each S of the sweep (default 1 000, 5 000, 10 000): S member users plus one sender in one
//! public channel (seeded directly into the database); S WebSockets split evenly across A and B,
//! each subscribed to `messageAdded(roomId)` of that channel. After a warm-up barrier, M
//! messages (default 20) are sent one at a time through B; for each, the time from just before
//! the request until the *last* subscriber has it is one sample, and every subscriber's own
//! latency goes into a second distribution. Each message waits for all S results (or a
//! timeout) before the next is sent; whatever never arrived is reported as lost.
//!
//! Two passes per S, each on fresh connections of the same users: the bare selection
//! `messageAdded(roomId) { seq body }` (figures `S=…: …`, comparable with earlier runs), then
//! the rich one a client would send (`schema::RICH_FIELDS`: ids, times, `clientId`, `roomId`,
//! `author { id handle displayName kind }`, `room { id name kind }`; figures `S=… rich: …`),
//! which shows what per-frame field resolution costs at this fan-out.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use tokio::time::Instant;

use crate::client::{Gql, Poster};
use crate::config::Ctx;
use crate::inbox::{Inbox, Kind, WsEvent};
use crate::report::{Figure, Hist};
use crate::schema::{self, Rich};
use crate::seed;
use crate::servers::CpuMeter;
use crate::ws::{Sub, close_all, connect_many};

const S: &str = "fanout";
const QUERY: &str = "subscription($room: ID!) { messageAdded(roomId: $room) { seq body } }";

/// One pass over the same subscribers: a selection and how its figures are named.
struct Pass {
    /// `""` for the bare pass (figure names as before), `" rich"` for the rich one.
    suffix: &'static str,
    query: String,
    /// The SPEC §11 target applies (bare pass only).
    spec_target: bool,
    note: Option<String>,
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let rich: Rich = schema::rich(ctx).await?;
    let passes = [
        Pass { suffix: "", query: QUERY.into(), spec_target: true, note: None },
        Pass {
            suffix: " rich",
            query: rich.room_subscription(),
            spec_target: false,
            note: Some(rich.note().unwrap_or_else(|| format!("selection `{}`", rich.fields))),
        },
    ];
    for size in ctx.sizes.fanout.clone() {
        let org = seed::org(&ctx.db, "fanout").await?;
        let users = seed::users(&ctx.db, &org, "f", size + 1, &ctx.env.jwt_secret).await?;
        let (sender, members) = users.split_last().ok_or_else(|| anyhow::anyhow!("no users"))?;
        let ids: Vec<uuid::Uuid> = members.iter().map(|u| u.id).collect();
        let room = seed::channel(&ctx.db, &org, sender.id, &format!("{}-all", org.slug), &ids).await?;
        seed::vacuum_analyze(&ctx.db).await?;
        let poster = Poster { gql: Gql::new(&ctx.b.http())?, token: sender.token.clone(), room };
        for (i, pass) in passes.iter().enumerate() {
            // Bodies double as `clientId`s: each pass numbers its messages on from the last.
            let first = (i * ctx.sizes.fanout_messages) as u64;
            one(ctx, size, members, &poster, pass, first).await?;
            // Let both instances drop S connections before the next pass.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

async fn one(
    ctx: &mut Ctx,
    size: usize,
    members: &[seed::User],
    poster: &Poster,
    pass: &Pass,
    first: u64,
) -> Result<()> {
    let inbox = Inbox::default();
    let tokens: Vec<String> = members.iter().map(|u| u.token.clone()).collect();
    let half = size / 2;
    let subs = [Sub::new("m1", &pass.query, json!({ "room": poster.room }))];
    let connect_started = Instant::now();
    let (mut conns, _) = connect_many(&ctx.a.ws(), &tokens[..half], 0, 64, &inbox, &subs).await?;
    let more = connect_many(&ctx.b.ws(), &tokens[half..], half as u32, 64, &inbox, &subs).await;
    match more {
        Ok((b_conns, _)) => conns.extend(b_conns),
        Err(err) => {
            close_all(conns).await;
            return Err(err);
        }
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let result = measure(ctx, size, inbox, poster, connect_secs, pass, first).await;
    close_all(conns).await;
    result
}

async fn measure(
    ctx: &mut Ctx,
    size: usize,
    mut inbox: Inbox,
    poster: &Poster,
    connect_secs: f64,
    pass: &Pass,
    first: u64,
) -> Result<()> {
    let need: Vec<(u32, Kind)> = (0..size as u32).map(|c| (c, Kind::Message)).collect();
    let limit = Duration::from_secs(30 + size as u64 / 200);
    inbox.barrier(std::slice::from_ref(poster), &need, limit).await?;
    let rss = (ctx.a.rss_kib().unwrap_or(0), ctx.b.rss_kib().unwrap_or(0));

    let meter = CpuMeter::start(&[("A", Some(ctx.a.pid)), ("B", Some(ctx.b.pid)), ("bench", None)]);
    let messages = ctx.sizes.fanout_messages;
    let wait = Duration::from_secs(if ctx.quick { 10 } else { 30 });
    let (mut last_hist, mut each_hist) = (Hist::default(), Hist::default());
    // Each message's time to its last subscriber, in order: the p99 of 20 is their slowest,
    // and which one it was (the first after the barrier, say) tells a cause from noise.
    let mut per_message = Vec::with_capacity(messages);
    let (mut lost, mut errors, mut first_error) = (0u64, 0u64, None);
    for m in first..first + messages as u64 {
        let started = Instant::now();
        if let Err(err) = poster.send(&format!("b{m}")).await {
            errors += 1;
            first_error.get_or_insert(format!("{err:#}"));
            per_message.push("error".to_owned());
            continue;
        }
        let mut got: HashSet<u32> = HashSet::with_capacity(size);
        let mut last = started;
        inbox
            .recv_until(started + wait, |event| {
                if let WsEvent::Message { conn, tag: b'b', no, at, .. } = event
                    && no == m
                {
                    if got.insert(conn) {
                        each_hist.record(at - started);
                        last = last.max(at);
                    } else {
                        errors += 1;
                    }
                }
                got.len() == size
            })
            .await;
        if got.len() == size {
            last_hist.record(last - started);
            per_message.push(format!("{:.0}", (last - started).as_secs_f64() * 1e3));
        } else {
            per_message.push("lost".to_owned());
        }
        lost += (size - got.len()) as u64;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut notes = meter.finish().notes();
    notes.push(format!("RSS after connect A {} MiB, B {} MiB", rss.0 / 1024, rss.1 / 1024));
    notes.push(format!("connect+subscribe {connect_secs:.1} s"));
    notes.push(format!("last subscriber per message, in order: {} ms", per_message.join(" ")));
    notes.extend(pass.note.clone());
    if let Some(err) = first_error {
        notes.push(format!("first send error: {err}"));
    }
    if let Some(err) = inbox.errors.first() {
        notes.push(format!("first WebSocket error: {err}"));
    }
    errors += inbox.errors.len() as u64;
    let params = format!(
        "{size} subscribers ({} on A, {} on B), {messages} messages sent via B, one at a time",
        size / 2,
        size - size / 2
    );
    let suffix = pass.suffix;
    let mut figure = Figure::new(S, format!("S={size}{suffix}: send → last subscriber"), params.clone())
        .dist(&last_hist)
        .errors(errors)
        .undelivered(lost)
        .floor("pg+redis")
        .notes(&notes);
    if size >= 10_000 && pass.spec_target {
        let meets = figure.dist.map(|d| d.p99 <= 150.0 && lost == 0);
        figure = figure.target("all delivered, p99 ≤ 150 ms", meets);
    }
    ctx.report.push(figure);
    ctx.report.push(
        Figure::new(S, format!("S={size}{suffix}: send → each subscriber"), params)
            .dist(&each_hist)
            .floor("pg+redis"),
    );
    Ok(())
}

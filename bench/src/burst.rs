//! Scenario `burst`: many senders at full speed into one room, one subscriber watching it.
//!
//! One extra instance (C) with the in-process bus (no Redis) on the bench's PostgreSQL
//! database, as in the `delivery` variant "1 instance, in-process". One public channel
//! (seeded) whose members are `burst_senders` senders (default 8, each its own user) and one
//! subscriber holding one WebSocket with `messageAdded` (all its rooms). After a warm-up
//! barrier every sender sends `burst_messages` messages (default 200) by HTTP `sendMessage`,
//! closed loop (the next request as soon as the previous one is answered), all starting
//! together. Each frame is matched to its send by body; its latency runs from just before the
//! `sendMessage` request to the frame's arrival. Reported: the send → frame distribution; the
//! accepted rate (answered sends per second from the first send to the last answer) with the
//! `sendMessage` latency; the delivered rate (frames per second from the first send to the
//! last frame) and its ratio to the accepted rate — a subscriber that keeps up with the room
//! has a ratio near 1, one that falls behind drains a queue after the senders are done. Frames
//! that never arrive are lost; duplicates, frames out of seq order and failed sends are errors.
//!
//! Variants: the subscriber selects `messageAdded { seq body room { id } }` (targets p50 ≤ 11
//! ms, p99 ≤ 16 ms, delivered/accepted ≥ 0.95) and, for comparison, `messageAdded { seq body }`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::{Gql, Poster};
use crate::config::Ctx;
use crate::inbox::{Inbox, Kind, WsEvent};
use crate::report::{Figure, Hist};
use crate::seed;
use crate::servers::{CpuMeter, Instance, Spec};
use crate::ws::{Sub, close_all, connect_many};

const S: &str = "burst";
const WITH_ROOM: &str = "subscription { messageAdded { seq body room { id } } }";
const LEAN: &str = "subscription { messageAdded { seq body } }";
/// Delivered/accepted at or above this counts as "delivered at the accepted rate": the last
/// frames always trail the last answers a little.
const RATIO_TARGET: f64 = 0.95;

struct Variant {
    label: &'static str,
    selection: &'static str,
    /// The burst targets apply.
    target: bool,
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let spec = Spec {
        label: "C".into(),
        database_url: ctx.env.database_url.clone(),
        redis_url: None,
        pool_size: ctx.env.pool_size,
    };
    let c = ctx.spawn(spec).await?;
    let variants = [
        Variant { label: "room { id }", selection: WITH_ROOM, target: true },
        Variant { label: "seq body only", selection: LEAN, target: false },
    ];
    let mut result = Ok(());
    for variant in &variants {
        result = measure(ctx, &c, variant).await;
        if result.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if result.is_err() {
        println!("  C's recent output:\n{}", c.recent_output());
    }
    c.stop().await;
    result
}

async fn measure(ctx: &mut Ctx, c: &Instance, variant: &Variant) -> Result<()> {
    let (k, per) = (ctx.sizes.burst_senders.max(1), ctx.sizes.burst_messages.max(1));
    let org = seed::org(&ctx.db, "burst").await?;
    let users = seed::users(&ctx.db, &org, "r", k + 1, &ctx.env.jwt_secret).await?;
    let (subscriber, senders) = users.split_first().context("no users")?;
    let ids: Vec<Uuid> = senders.iter().map(|u| u.id).collect();
    let room = seed::channel(&ctx.db, &org, subscriber.id, &format!("{}-room", org.slug), &ids).await?;
    seed::vacuum_analyze(&ctx.db).await?;
    let gql = Gql::new(&c.http())?;
    let posters: Vec<Poster> =
        senders.iter().map(|u| Poster { gql: gql.clone(), token: u.token.clone(), room }).collect();

    let mut inbox = Inbox::default();
    let subs = [Sub::new("m1", variant.selection, json!({}))];
    let (conns, _) =
        connect_many(&c.ws(), std::slice::from_ref(&subscriber.token), 0, 1, &inbox, &subs).await?;
    if let Err(err) = inbox.barrier(&posters[..1], &[(0, Kind::Message)], Duration::from_secs(30)).await {
        close_all(conns).await;
        return Err(err);
    }

    let collector = inbox.collect();
    let meter = CpuMeter::start(&[(&c.label, Some(c.pid)), ("bench", None)]);
    let start = Instant::now() + Duration::from_millis(20);
    let tasks: Vec<_> = posters
        .iter()
        .enumerate()
        .map(|(s, poster)| {
            let poster = poster.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start).await;
                let mut out = Vec::with_capacity(per);
                for i in 0..per {
                    let no = (s * per + i) as u64;
                    let at = Instant::now();
                    let result = poster.send(&format!("b{no}")).await;
                    out.push((no, at, Instant::now(), result));
                }
                out
            })
        })
        .collect();
    let mut sent: HashMap<u64, Instant> = HashMap::with_capacity(k * per);
    let (mut send_hist, mut send_errors, mut first_error) = (Hist::default(), 0u64, None);
    let mut last_answer = start;
    for task in tasks {
        for (no, at, answered, result) in task.await.context("sender task panicked")? {
            match result {
                Ok(_) => {
                    send_hist.record(answered - at);
                    sent.insert(no, at);
                    last_answer = last_answer.max(answered);
                }
                Err(err) => {
                    send_errors += 1;
                    first_error.get_or_insert(format!("{err:#}"));
                }
            }
        }
    }
    collector.wait_for(sent.len(), Duration::from_secs(if ctx.quick { 10 } else { 30 })).await;
    let cpu = meter.finish().notes();
    let (inbox, events) = collector.finish().await?;
    close_all(conns).await;

    let (mut hist, mut got, mut wrong, mut reordered) = (Hist::default(), HashSet::new(), 0u64, 0u64);
    let (mut last_frame, mut last_seq) = (start, 0i64);
    for event in &events {
        let WsEvent::Message { tag: b'b', no, seq, at, .. } = event else { continue };
        if *seq <= last_seq {
            reordered += 1;
        }
        last_seq = last_seq.max(*seq);
        match sent.get(no) {
            Some(sent_at) if got.insert(*no) => {
                hist.record(at.saturating_duration_since(*sent_at));
                last_frame = last_frame.max(*at);
            }
            _ => wrong += 1,
        }
    }
    let lost = (sent.len() - got.len()) as u64;
    let accepted = sent.len() as f64 / (last_answer - start).as_secs_f64().max(1e-6);
    let delivered = got.len() as f64 / (last_frame - start).as_secs_f64().max(1e-6);
    let ratio = delivered / accepted.max(1e-9);

    let label = variant.label;
    let params = format!(
        "1 instance ({}, in-process bus, PostgreSQL); {k} closed-loop senders × {per} messages into 1 \
         channel; 1 subscriber `{}`",
        c.label, variant.selection
    );
    let mut notes = cpu;
    if reordered > 0 {
        notes.push(format!("{reordered} frames out of seq order"));
    }
    if wrong > 0 {
        notes.push(format!("{wrong} duplicate or unmatched frames"));
    }
    if let Some(err) = &first_error {
        notes.push(format!("first send error: {err}"));
    }
    if let Some(err) = inbox.errors.first() {
        notes.push(format!("first WebSocket error: {err}"));
    }
    let mut figure = Figure::new(S, format!("{label}: send → messageAdded"), params.clone())
        .dist(&hist)
        .errors(wrong + reordered + inbox.errors.len() as u64)
        .undelivered(lost)
        .floor("pg_insert")
        .notes(&notes);
    if variant.target {
        let meets = figure.dist.map(|d| d.p50 <= 11.0 && d.p99 <= 16.0);
        figure = figure.target("p50 ≤ 11, p99 ≤ 16 ms", meets);
    }
    ctx.report.push(figure);
    ctx.report.push(
        Figure::new(S, format!("{label}: sendMessage, accepted rate"), params.clone())
            .dist(&send_hist)
            .value(accepted, "msg/s")
            .errors(send_errors)
            .floor("pg_insert_pool")
            .note(format!("{} accepted, first send → last answer", sent.len())),
    );
    let mut figure = Figure::new(S, format!("{label}: delivered rate"), params)
        .value(delivered, "frames/s")
        .undelivered(lost)
        .note(format!("delivered/accepted {ratio:.3}"))
        .note(format!("{} frames, first send → last frame", got.len()));
    if variant.target {
        let meets = ratio >= RATIO_TARGET && lost == 0;
        figure = figure.target(&format!("delivered/accepted ≥ {RATIO_TARGET}"), Some(meets));
    }
    ctx.report.push(figure);
    Ok(())
}

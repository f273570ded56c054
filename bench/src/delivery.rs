//! Scenario `delivery`: latency from just before a `sendMessage` request to the
//! `messageAdded` frame (and the `unreadCountChanged` frame) at each subscriber.
//!
//! Rooms: `dm_pairs` direct rooms (one subscriber, one sender each) and one public channel with
//! `channel_subscribers` subscribing members and one sender. Every subscriber holds one
//! WebSocket with `messageAdded` (all its rooms) and `unreadCountChanged`. Messages are sent
//! open-loop at a fixed rate (each send starts on its schedule whatever earlier sends are
//! doing, so a slow server cannot slow the offered load), round-robin over the rooms, by each
//! room's sender. A warm-up barrier first proves every subscription live. Afterwards every
//! sent message is checked against every subscriber of its room: a missing `messageAdded`
//! counts as lost, a duplicate or a result on the wrong connection as an error. An
//! `unreadCountChanged` covers a message when its `seq` (the seq the count was computed at) is
//! at or past the message's: when events overtake each other one count may cover several
//! messages, as the API allows, so its latency is that of the first count covering it.
//!
//! Variants: subscribers on A and senders on B (PostgreSQL + Redis, the SPEC §11 figure); the
//! same with the rich selection of a real client (`schema::RICH_FIELDS`:
//! `id seq body createdAt clientId roomId author { id handle displayName kind } room { id name
//! kind }`, reduced with a warning to the fields the server has, e.g. without `roomId`); one
//! instance with the in-process bus on PostgreSQL; one instance on SQLite. Beside each
//! PostgreSQL pass a commit witness (`stalls`) tells a stall of the sends from the database's.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::{Gql, Poster};
use crate::config::{Ctx, Sizes};
use crate::inbox::{Inbox, Kind, WsEvent};
use crate::report::{Figure, Hist, Report};
use crate::schema;
use crate::seed::{self, Db};
use crate::servers::{CpuMeter, Instance, Spec};
use crate::stalls::{CommitWitness, Stalls};
use crate::ws::{Sub, close_all, connect_many};

const S: &str = "delivery";
const LEAN: &str = "subscription { messageAdded { seq body } }";
const UNREAD: &str = "subscription { unreadCountChanged { roomId seq unreadCount unreadTotal } }";
const OPEN_DM: &str = "mutation($ids: [ID!]!) { openDirectRoom(userIds: $ids) { id } }";
const CREATE_CHANNEL: &str = "mutation($input: CreateChannelInput!) { createChannel(input: $input) { id } }";

struct Variant {
    label: &'static str,
    selection: String,
    floor: &'static str,
    /// The SPEC §11 target applies.
    spec_target: bool,
    /// Said on its figures (the rich selection used).
    note: Option<String>,
    /// PostgreSQL's URL, for a commit witness beside the pass (`stalls`).
    witness: Option<String>,
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let sizes = ctx.sizes.clone();
    let secret = ctx.env.jwt_secret.clone();
    let cross = Variant {
        label: "A←B Redis",
        selection: LEAN.into(),
        floor: "pg+redis",
        spec_target: true,
        note: None,
        witness: Some(ctx.env.database_url.clone()),
    };
    measure(&mut ctx.report, &sizes, &secret, &ctx.db, &ctx.a, &ctx.b, &cross).await?;
    let fields = schema::rich(ctx).await?;
    let rich = Variant {
        label: "A←B Redis, rich fields",
        selection: fields.subscription(),
        floor: "pg+redis",
        spec_target: false,
        note: Some(fields.note().unwrap_or_else(|| format!("selection `{}`", fields.fields))),
        witness: Some(ctx.env.database_url.clone()),
    };
    measure(&mut ctx.report, &sizes, &secret, &ctx.db, &ctx.a, &ctx.b, &rich).await?;

    let spec = Spec {
        label: "C".into(),
        database_url: ctx.env.database_url.clone(),
        redis_url: None,
        pool_size: ctx.env.pool_size,
    };
    let c = ctx.spawn(spec).await?;
    let local = Variant {
        label: "1 instance, in-process",
        selection: LEAN.into(),
        floor: "pg_insert",
        spec_target: false,
        note: None,
        witness: Some(ctx.env.database_url.clone()),
    };
    let result = measure(&mut ctx.report, &sizes, &secret, &ctx.db, &c, &c, &local).await;
    c.stop().await;
    result?;

    let url = format!("sqlite://{}?mode=rwc", ctx.env.work_dir.join("delivery.db").display());
    let spec = Spec {
        label: "SQLite".into(),
        database_url: url.clone(),
        redis_url: None,
        pool_size: ctx.env.pool_size,
    };
    let lite = Instance::spawn(&ctx.env, spec).await?;
    let result = async {
        let db = Db::connect(&url, 1).await?;
        let variant = Variant {
            label: "SQLite, in-process",
            selection: LEAN.into(),
            floor: "sqlite_insert",
            spec_target: false,
            note: None,
            // Its commits would queue on the instance's own write lock.
            witness: None,
        };
        measure(&mut ctx.report, &sizes, &secret, &db, &lite, &lite, &variant).await
    }
    .await;
    lite.stop().await;
    result
}

struct Room {
    poster: Poster,
    /// Connection numbers of its subscribers.
    subscribers: Vec<u32>,
}

struct Sent {
    room: usize,
    at: Instant,
    seq: i64,
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    report: &mut Report,
    sizes: &Sizes,
    secret: &str,
    db: &Db,
    sub_at: &Instance,
    send_at: &Instance,
    variant: &Variant,
) -> Result<()> {
    let (n_dm, n_ch) = (sizes.dm_pairs, sizes.channel_subscribers);
    let org = seed::org(db, "delivery").await?;
    let users = seed::users(db, &org, "d", 2 * n_dm + n_ch + 1, secret).await?;
    let gql = Gql::new(&send_at.http())?;

    // Conn i < n_dm: the subscriber of DM i; conn n_dm + j: channel subscriber j.
    let mut rooms = Vec::new();
    for i in 0..n_dm {
        let (subscriber, sender) = (&users[i], &users[n_dm + i]);
        let data = gql.call(&sender.token, OPEN_DM, json!({ "ids": [subscriber.id] })).await?;
        let poster =
            Poster { gql: gql.clone(), token: sender.token.clone(), room: id(&data["openDirectRoom"])? };
        rooms.push(Room { poster, subscribers: vec![i as u32] });
    }
    let channel_subs = &users[2 * n_dm..2 * n_dm + n_ch];
    let sender = &users[2 * n_dm + n_ch];
    let ids: Vec<Uuid> = channel_subs.iter().map(|u| u.id).collect();
    let input = json!({ "name": format!("{}-channel", org.slug), "memberIds": ids });
    let data = gql.call(&sender.token, CREATE_CHANNEL, json!({ "input": input })).await?;
    let poster = Poster { gql: gql.clone(), token: sender.token.clone(), room: id(&data["createChannel"])? };
    rooms.push(Room { poster, subscribers: (n_dm..n_dm + n_ch).map(|c| c as u32).collect() });
    seed::vacuum_analyze(db).await?;

    let tokens: Vec<String> = users[..n_dm].iter().chain(channel_subs).map(|u| u.token.clone()).collect();
    let mut inbox = Inbox::default();
    let subs = [Sub::new("m1", &variant.selection, json!({})), Sub::new("u1", UNREAD, json!({}))];
    let (conns, _) = connect_many(&sub_at.ws(), &tokens, 0, 32, &inbox, &subs).await?;
    let need: Vec<(u32, Kind)> =
        (0..conns.len() as u32).flat_map(|c| [(c, Kind::Message), (c, Kind::Unread)]).collect();
    let posters: Vec<Poster> = rooms.iter().map(|r| r.poster.clone()).collect();
    let warmed = inbox.barrier(&posters, &need, Duration::from_secs(30)).await;
    if let Err(err) = warmed {
        close_all(conns).await;
        return Err(err);
    }

    let collector = inbox.collect();
    let meter = CpuMeter::start(&[
        (&sub_at.label, Some(sub_at.pid)),
        (&send_at.label, Some(send_at.pid)),
        ("bench", None),
    ]);
    let total = (f64::from(sizes.rate) * sizes.delivery_secs).round().max(1.0) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(sizes.rate.max(1)));
    let witness = match &variant.witness {
        Some(url) => Some(CommitWitness::connect(url).await?),
        None => None,
    };
    let start = Instant::now();
    let witness = witness.map(|w| w.run(start));
    let mut stalls = Stalls::new();
    let mut tasks = Vec::with_capacity(total);
    for k in 0..total {
        tokio::time::sleep_until(start + interval * k as u32).await;
        let room = k % rooms.len();
        let poster = rooms[room].poster.clone();
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            let result = poster.send(&format!("b{k}")).await;
            (room, at, at.elapsed(), result)
        }));
    }
    let offered = total as f64 / start.elapsed().as_secs_f64().max(1e-6);
    let mut sent: HashMap<u64, Sent> = HashMap::new();
    let (mut send_hist, mut send_errors, mut first_error) = (Hist::default(), 0u64, None);
    for (k, task) in tasks.into_iter().enumerate() {
        let (room, at, took, result) = task.await.context("send task panicked")?;
        match result {
            Ok(seq) => {
                send_hist.record(took);
                stalls.record(at.duration_since(start), took);
                sent.insert(k as u64, Sent { room, at, seq });
            }
            Err(err) => {
                send_errors += 1;
                first_error.get_or_insert(format!("{err:#}"));
            }
        }
    }
    // A witness that failed loses its note, not the pass.
    let witness = match witness {
        Some(running) => {
            Some(running.finish().await.map_err(|e| format!("the commit witness failed: {e:#}")))
        }
        None => None,
    };
    let expected: usize = sent.values().map(|s| rooms[s.room].subscribers.len()).sum();
    collector
        .wait_for(2 * expected, Duration::from_secs(if sizes.delivery_secs < 5.0 { 5 } else { 15 }))
        .await;
    let cpu = meter.finish().notes();
    let (inbox, events) = collector.finish().await?;
    close_all(conns).await;

    let room_index: HashMap<Uuid, usize> =
        rooms.iter().enumerate().map(|(i, r)| (r.poster.room, i)).collect();
    let subscribed: Vec<HashSet<u32>> =
        rooms.iter().map(|r| r.subscribers.iter().copied().collect()).collect();
    let (mut msg_hist, mut got_msg, mut wrong) = (Hist::default(), HashSet::new(), 0u64);
    // Per (connection, room): unread counts in arrival order, with the highest seq seen so far.
    let mut counts: HashMap<(u32, usize), Vec<(Instant, i64)>> = HashMap::new();
    for event in &events {
        match event {
            WsEvent::Message { conn, tag: b'b', no, at, .. } => {
                let Some(s) = sent.get(no) else { continue };
                if !subscribed[s.room].contains(conn) || !got_msg.insert((*conn, *no)) {
                    wrong += 1;
                } else {
                    msg_hist.record(at.saturating_duration_since(s.at));
                }
            }
            WsEvent::Unread { conn, room, seq, at } => {
                let Some(&r) = room_index.get(room) else { continue };
                if !subscribed[r].contains(conn) {
                    wrong += 1;
                    continue;
                }
                let list = counts.entry((*conn, r)).or_default();
                let max = list.last().map_or(*seq, |(_, m)| (*m).max(*seq));
                list.push((*at, max));
            }
            _ => {}
        }
    }
    // A count computed at a seq ≥ the message's covers it (several messages may share one).
    let (mut unread_hist, mut unread_lost) = (Hist::default(), 0u64);
    for s in sent.values() {
        for conn in &rooms[s.room].subscribers {
            let list = counts.get(&(*conn, s.room)).map(Vec::as_slice).unwrap_or(&[]);
            match list.get(list.partition_point(|(_, max)| *max < s.seq)) {
                Some((at, _)) => unread_hist.record(at.saturating_duration_since(s.at)),
                None => unread_lost += 1,
            }
        }
    }
    let ws_errors = inbox.errors.len() as u64;
    let params = format!(
        "{} msg/s for {} s ({} sent); {n_dm} DMs + 1 channel × {n_ch} subscribers; subscribers on {}, senders on {}",
        sizes.rate, sizes.delivery_secs, total, sub_at.label, send_at.label
    );
    let mut notes = cpu;
    notes.push(format!("offered {offered:.0} msg/s"));
    notes.extend(variant.note.clone());
    notes.extend(stalls.note());
    match &witness {
        Some(Ok(witness)) => {
            notes.extend(witness.note());
            notes.extend(stalls.witnessed(witness));
        }
        Some(Err(failed)) => notes.push(failed.clone()),
        None => {}
    }
    if let Some(err) = &first_error {
        notes.push(format!("first send error: {err}"));
    }
    if let Some(err) = inbox.errors.first() {
        notes.push(format!("first WebSocket error: {err}"));
    }
    let label = variant.label;
    let mut figure = Figure::new(S, format!("{label}: send → messageAdded"), params.clone())
        .dist(&msg_hist)
        .errors(wrong + ws_errors + send_errors)
        .undelivered((expected - got_msg.len().min(expected)) as u64)
        .floor(variant.floor)
        .notes(&notes);
    if variant.spec_target {
        let meets = figure.dist.map(|d| d.p50 <= 3.0 && d.p99 <= 15.0);
        figure = figure.target("p50 ≤ 3, p99 ≤ 15 ms @500/s", meets);
    }
    report.push(figure);
    report.push(
        Figure::new(S, format!("{label}: send → unreadCount"), params.clone())
            .dist(&unread_hist)
            .undelivered(unread_lost)
            .floor(variant.floor),
    );
    report.push(
        Figure::new(S, format!("{label}: sendMessage HTTP"), params)
            .dist(&send_hist)
            .value(sent.len() as f64 / sizes.delivery_secs, "msg/s")
            .errors(send_errors)
            .floor(variant.floor),
    );
    Ok(())
}

fn id(node: &Value) -> Result<Uuid> {
    node["id"].as_str().context("no id in the response")?.parse().context("the id is not a UUID")
}

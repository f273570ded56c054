//! Scenario `inbound`: signed support webhooks from 16 concurrent senders into 200 contacts,
//! alternating between instances A and B.
//!
//! One inbox (least busy, no capacity limit) with two agents; one of them is connected with a
//! `messageAdded { seq body }` subscription (agents are members of every conversation), live
//! once a probe contact's message reached it. A
//! warm-up posts one message per contact, so every conversation exists and is followed (not
//! measured); then each sender posts its share of `inbound_messages` as fast as they are
//! answered. Reported: accepted messages per second and the POST's latency (target ≥ 1 500/s,
//! p99 ≤ 50 ms), webhook → the agent's `messageAdded` (target p50 ≤ 5 ms), and a redelivery
//! storm: 50 external ids each posted 10 times at once, which must store 50 messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use futures_util::future::join_all;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::Ctx;
use crate::inbox::{Inbox, WsEvent};
use crate::pgcount::{self, Case};
use crate::report::{Figure, Hist};
use crate::seed;
use crate::ws::{Sub, close_all, connect_many};

const S: &str = "inbound";
const SENDERS: usize = 16;
const CONTACTS: usize = 200;
const STORM_IDS: usize = 50;
const STORM_COPIES: usize = 10;
const SECRET: &str = "bench-inbound-secret";

/// Posts signed inbound messages to one inbox on A or B.
#[derive(Clone)]
struct Sender {
    http: reqwest::Client,
    urls: [String; 2],
}

impl Sender {
    /// The status of posting message `external_id` from contact `contact` with `body`.
    async fn post(&self, instance: usize, external_id: &str, contact: usize, body: &str) -> Result<u16> {
        let payload = json!({
            "externalId": external_id,
            "source": "sms",
            "contact": { "phone": format!("+4179{contact:07}"), "name": format!("Contact {contact}") },
            "body": body,
        })
        .to_string();
        let timestamp = Utc::now().timestamp().to_string();
        let signature = sign(&timestamp, payload.as_bytes())?;
        let response = self
            .http
            .post(&self.urls[instance % 2])
            .header("Content-Type", "application/json")
            .header("X-Parley-Timestamp", timestamp)
            .header("X-Parley-Signature", signature)
            .body(payload)
            .send()
            .await?;
        Ok(response.status().as_u16())
    }
}

/// Posts messages from one more contact until the agent's subscription delivers one. The
/// protocol does not acknowledge `subscribe`, and a conversation whose first message is
/// stored before the subscription is live is not new to it: without this, the first
/// warm-up conversations could be missed (a CI run once saw 194 of 200).
async fn probe(sender: &Sender, inbox: &mut Inbox) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0.. {
        let status = sender.post(0, &format!("probe-{n}"), CONTACTS, &format!("p{n}")).await?;
        if status != 201 {
            bail!("a probe message answered {status}");
        }
        let until = (Instant::now() + Duration::from_millis(400)).min(deadline);
        if inbox.recv_until(until, |e| matches!(e, WsEvent::Message { tag: b'p', .. })).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    bail!("the agent's subscription delivered no probe message within 30 s")
}

/// `sha256=<hex>` of `"<timestamp>.<body>"` with the inbox secret, as any sender computes it.
fn sign(timestamp: &str, body: &[u8]) -> Result<String> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let total = ctx.sizes.inbound_messages;
    let org = seed::org(&ctx.db, "inbound").await?;
    let agents = seed::users(&ctx.db, &org, "agent", 2, &ctx.env.jwt_secret).await?;
    let inbox_id = Uuid::now_v7();
    let now = Utc::now();
    ctx.db
        .insert_rows(
            "support_inboxes",
            &["id", "org_id", "name", "assignment", "webhook_secret", "round_robin_cursor", "created_at"],
            vec![vec![
                inbox_id.into(),
                org.id.into(),
                "bench".into(),
                "least_busy".into(),
                SECRET.into(),
                0i64.into(),
                now.into(),
            ]],
        )
        .await?;
    let members = agents
        .iter()
        .map(|a| vec![inbox_id.into(), a.id.into(), true.into(), 0i32.into(), now.into()])
        .collect();
    ctx.db
        .insert_rows(
            "support_inbox_members",
            &["inbox_id", "user_id", "active", "open_assigned", "created_at"],
            members,
        )
        .await?;
    let path = format!("/webhooks/inboxes/{inbox_id}/messages");
    let sender = Sender {
        http: reqwest::Client::builder().pool_max_idle_per_host(SENDERS).build()?,
        urls: [format!("{}{path}", ctx.a.http()), format!("{}{path}", ctx.b.http())],
    };

    let mut inbox = Inbox::default();
    let subs = [Sub::new("m1", "subscription { messageAdded { seq body } }", json!({}))];
    let (conns, _) =
        connect_many(&ctx.a.ws(), std::slice::from_ref(&agents[0].token), 0, 1, &inbox, &subs).await?;
    if let Err(err) = probe(&sender, &mut inbox).await {
        close_all(conns).await;
        return Err(err);
    }
    // Warm-up: every contact's conversation exists and the agent follows it.
    let warm = (0..CONTACTS).map(|c| {
        let sender = sender.clone();
        async move { sender.post(c, &format!("warm-{c}"), c, &format!("w{c}")).await }
    });
    for status in join_all(warm).await {
        let status = status?;
        if status != 201 {
            close_all(conns).await;
            bail!("warm-up answered {status}");
        }
    }
    let mut warmed = 0;
    let arrived = inbox
        .recv_until(Instant::now() + Duration::from_secs(30), |e| {
            warmed += usize::from(matches!(e, WsEvent::Message { tag: b'w', .. }));
            warmed >= CONTACTS
        })
        .await;
    if !arrived {
        close_all(conns).await;
        bail!("the agent saw {warmed} of {CONTACTS} warm-up messages");
    }
    seed::vacuum_analyze(&ctx.db).await?;

    let collector = inbox.collect();
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let answers: Arc<Mutex<(Hist, u64)>> = Arc::default();
    let per_sender = total.div_ceil(SENDERS);
    let started = Instant::now();
    let tasks = (0..SENDERS).map(|s| {
        let (sender, sent, answers) = (sender.clone(), sent.clone(), answers.clone());
        async move {
            for i in 0..per_sender.min(total.saturating_sub(s * per_sender)) {
                let no = (s * per_sender + i) as u64;
                let at = Instant::now();
                sent.lock().await.insert(no, at);
                let status =
                    sender.post(s, &format!("b-{no}"), (s * 31 + i) % CONTACTS, &format!("b{no}")).await;
                let mut answers = answers.lock().await;
                match status {
                    Ok(201) => answers.0.record(at.elapsed()),
                    _ => answers.1 += 1,
                }
            }
        }
    });
    join_all(tasks).await;
    let elapsed = started.elapsed();
    collector.wait_for(total, Duration::from_secs(30)).await;
    let (inbox, events) = collector.finish().await?;
    drop(inbox);
    close_all(conns).await;

    let sent = sent.lock().await;
    let mut to_agent = Hist::default();
    let mut seen = 0u64;
    for event in &events {
        if let WsEvent::Message { tag: b'b', no, at, .. } = event
            && let Some(sent_at) = sent.get(no)
        {
            to_agent.record(at.saturating_duration_since(*sent_at));
            seen += 1;
        }
    }
    let answers = answers.lock().await;
    let (latency, errors) = (&answers.0, answers.1);
    let rate = latency.len() as f64 / elapsed.as_secs_f64();
    let undelivered = (total as u64).saturating_sub(seen);
    let params = format!("{total} messages, {SENDERS} senders on A and B, {CONTACTS} contacts");
    println!("  {rate:.0} inbound/s, {errors} errors, {undelivered} not seen by the agent");
    let p99 = latency.dist().map(|d| d.p99);
    ctx.report.push(
        Figure::new(S, "inbound messages per second", &params)
            .value(rate, "/s")
            .errors(errors)
            .target("≥ 1 500/s with p99 ≤ 50 ms", Some(rate >= 1_500.0 && p99.is_some_and(|p| p <= 50.0))),
    );
    ctx.report.push(Figure::new(S, "webhook POST latency", &params).dist(latency).errors(errors));
    let p50 = to_agent.dist().map(|d| d.p50);
    ctx.report.push(
        Figure::new(S, "webhook → agent's messageAdded", &params)
            .dist(&to_agent)
            .undelivered(undelivered)
            .target("p50 ≤ 5 ms", p50.map(|p| p <= 5.0)),
    );

    // The storm: every id ten times at once, across both instances.
    let storm =
        (0..STORM_IDS).flat_map(|id| (0..STORM_COPIES).map(move |copy| (id, copy))).map(|(id, copy)| {
            let sender = sender.clone();
            async move { sender.post(copy, &format!("storm-{id}"), id % CONTACTS, "storm").await }
        });
    let statuses = join_all(storm).await;
    let created = statuses.iter().filter(|s| matches!(s, Ok(201))).count();
    let refused = statuses.iter().filter(|s| !matches!(s, Ok(200 | 201))).count();
    let rows = ctx
        .db
        .query(
            "SELECT COUNT(*) AS n FROM messages WHERE org_id = $1 AND external_id LIKE 'storm-%'",
            vec![org.id.into()],
        )
        .await?;
    let stored: i64 = rows.first().context("a count")?.try_get("", "n")?;
    let wrong =
        (stored - STORM_IDS as i64).unsigned_abs() + (created as i64 - STORM_IDS as i64).unsigned_abs();
    println!("  storm: {stored} stored, {created} created, {refused} refused of {}", statuses.len());
    ctx.report.push(
        Figure::new(
            S,
            "redelivery storm: messages stored",
            format!("{STORM_IDS} ids × {STORM_COPIES} at once"),
        )
        .value(stored as f64, "messages")
        .errors(wrong + refused as u64)
        .target(&format!("= {STORM_IDS}"), Some(stored == STORM_IDS as i64 && refused == 0))
        .note("errors = stored or created ≠ ids, plus answers other than 200/201"),
    );
    statements(ctx, &agents[0].token, inbox_id).await
}

const CONVERSATIONS: &str = "query($inbox: ID!, $n: Int) { supportInbox(id: $inbox) { conversations(first: $n) { edges { node { id conversation { inbox { id } contact { id } assignee { id } assignmentDecision { reason } } } } } } }";
const MESSAGES: &str = "query($room: ID!, $n: Int) { messages(roomId: $room, last: $n) { edges { node { id contact { id } delivery { status } } } } }";

/// Statements per request of an agent's conversation list and of a conversation's messages,
/// with their support fields, at 10 and 50 items: equal counts mean batched fields, not one
/// query per item.
async fn statements(ctx: &mut Ctx, token: &str, inbox_id: Uuid) -> Result<()> {
    let rows = ctx
        .db
        .query(
            "SELECT id FROM rooms WHERE inbox_id = $1 ORDER BY last_seq DESC LIMIT 1",
            vec![inbox_id.into()],
        )
        .await?;
    let room: Uuid = rows.first().context("a conversation")?.try_get("", "id")?;
    let mut cases = Vec::new();
    for n in [10, 50] {
        let vars = Box::new(move |_| json!({ "inbox": inbox_id, "n": n }));
        let name = format!("supportInbox.conversations(first: {n})");
        cases.push(Case { name, query: CONVERSATIONS, vars, verdict: None });
        let vars = Box::new(move |_| json!({ "room": room, "n": n }));
        let name = format!("messages(last: {n}) of a conversation");
        cases.push(Case { name, query: MESSAGES, vars, verdict: None });
    }
    let params =
        "with inbox, contact, assignee, assignmentDecision / contact, delivery; fewest of 3 rounds of 10";
    pgcount::report_statements(ctx, S, token, cases, params).await
}

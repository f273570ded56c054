//! Scenario `notify`: the notification outbox drained by both instances.
//!
//! One organisation-wide webhook points at a receiver in this process that answers 200 at
//! once. 16 closed-loop senders (alternately through A and B, each into its own public
//! channel) send `notify_messages` messages as fast as they are accepted, so deliveries are
//! queued at the send rate while both instances' workers drain them. Reported: deliveries per
//! second (first to last arrival), lateness (arrival minus the message's `createdAt`, one
//! machine's clock, so it includes the workers' 1 s poll when they are idle), duplicates (a
//! second arrival of one `Idempotency-Key`: must be 0, the receiver never fails) and
//! undelivered deliveries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::{Gql, Poster};
use crate::config::Ctx;
use crate::report::{Figure, Hist};
use crate::seed;

const S: &str = "notify";
const SENDERS: usize = 16;
/// How long after the last send the last delivery may still arrive.
const GRACE: Duration = Duration::from_secs(60);

/// Arrivals by idempotency key: when each came, its message's `createdAt`, and how often.
type Arrivals = Arc<Mutex<HashMap<String, (DateTime<Utc>, Option<DateTime<Utc>>, u32)>>>;

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let total = ctx.sizes.notify_messages;
    let org = seed::org(&ctx.db, "notify").await?;
    let users = seed::users(&ctx.db, &org, "n", SENDERS, &ctx.env.jwt_secret).await?;
    let (ga, gb) = (Gql::new(&ctx.a.http())?, Gql::new(&ctx.b.http())?);
    let mut posters = Vec::with_capacity(SENDERS);
    for (i, user) in users.iter().enumerate() {
        let room = seed::channel(&ctx.db, &org, user.id, &format!("notify-{i}"), &[]).await?;
        let gql = if i % 2 == 0 { ga.clone() } else { gb.clone() };
        posters.push(Poster { gql, token: user.token.clone(), room });
    }

    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = Router::new().fallback(receive).with_state(arrivals.clone());
    let receiver = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // Only an active admin's webhook posts (as the API lets only admins make one).
    ctx.db.exec("UPDATE users SET role = 'admin' WHERE id = $1", vec![users[0].id.into()]).await?;
    ctx.db
        .insert_rows(
            "outgoing_webhooks",
            &["id", "org_id", "url", "events", "format", "secret", "created_by", "created_at"],
            vec![vec![
                Uuid::now_v7().into(),
                org.id.into(),
                url.into(),
                ",MESSAGE_ADDED,".into(),
                "json".into(),
                "bench-secret".into(),
                users[0].id.into(),
                Utc::now().into(),
            ]],
        )
        .await?;

    let started = Instant::now();
    let per_sender = total.div_ceil(SENDERS);
    let sends = posters.iter().enumerate().map(|(s, poster)| async move {
        for i in 0..per_sender.min(total.saturating_sub(s * per_sender)) {
            poster.send(&format!("notify {s}-{i}")).await.with_context(|| format!("sender {s}"))?;
        }
        anyhow::Ok(())
    });
    try_join_all(sends).await?;
    let sent_in = started.elapsed();
    let deadline = Instant::now() + GRACE;
    while arrivals.lock().map(|a| a.len()).unwrap_or(0) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.abort();

    let arrivals: Vec<_> = arrivals.lock().map(|a| a.values().cloned().collect()).unwrap_or_default();
    let duplicates: u64 = arrivals.iter().map(|(_, _, n)| u64::from(n.saturating_sub(1))).sum();
    let mut lateness = Hist::default();
    for (arrived, created, _) in &arrivals {
        if let Some(late) = created.and_then(|c| (*arrived - c).to_std().ok()) {
            lateness.record(late);
        }
    }
    let first = arrivals.iter().map(|(at, _, _)| *at).min();
    let last = arrivals.iter().map(|(at, _, _)| *at).max();
    let span = match (first, last) {
        (Some(first), Some(last)) => (last - first).to_std().unwrap_or_default().as_secs_f64(),
        _ => 0.0,
    };
    let rate = if span > 0.0 { arrivals.len() as f64 / span } else { 0.0 };
    let undelivered = total.saturating_sub(arrivals.len()) as u64;
    let params = format!(
        "{total} messages from {SENDERS} senders on A and B (sent in {:.1} s)",
        sent_in.as_secs_f64()
    );
    println!(
        "  {} deliveries at {rate:.0}/s, {duplicates} duplicates, {undelivered} undelivered",
        arrivals.len()
    );
    ctx.report.push(
        Figure::new(S, "webhook deliveries per second", &params).value(rate, "/s").undelivered(undelivered),
    );
    ctx.report.push(
        Figure::new(S, "webhook lateness (arrival − message createdAt)", &params)
            .dist(&lateness)
            .errors(duplicates)
            .undelivered(undelivered)
            .note("errors = deliveries that arrived twice"),
    );
    Ok(())
}

async fn receive(State(arrivals): State<Arrivals>, headers: HeaderMap, body: Bytes) -> &'static str {
    let arrived = Utc::now();
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let created = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|body| body["message"]["createdAt"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok()));
    if let Ok(mut arrivals) = arrivals.lock() {
        arrivals.entry(key).and_modify(|(_, _, n)| *n += 1).or_insert((arrived, created, 1));
    }
    "ok"
}

//! Scenario `history`: reading back a long room.
//!
//! One public channel with `history_messages` messages (default 100 000, bulk-seeded) and a
//! member viewer. Measured, one request at a time: `messages(roomId, last: 50)` (alternating
//! A and B; every answer must hold 50 edges ending at the newest seq), and a
//! `messageAdded(roomId, after: last - 500)` subscription on one WebSocket to A, timed from the
//! `subscribe` frame to the first replayed message and to the 500th. Every replay must deliver
//! exactly the seqs after `after`, in order; gaps and reorderings count as errors, a short
//! replay as lost messages. Each replay is completed before the next starts.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::time::Instant;

use crate::client::Gql;
use crate::config::Ctx;
use crate::inbox::{Inbox, WsEvent};
use crate::report::{Figure, Hist};
use crate::seed;
use crate::ws::WsConn;

const S: &str = "history";
const PAGE: &str = "query($room: ID!) { messages(roomId: $room, last: 50) { edges { node { seq body } } } }";
const REPLAY: &str =
    "subscription($room: ID!, $after: Int) { messageAdded(roomId: $room, after: $after) { seq body } }";

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let z = ctx.sizes.clone();
    let h = z.history_messages.max(z.replay + 1);
    let seeded = Instant::now();
    let org = seed::org(&ctx.db, "history").await?;
    let users = seed::users(&ctx.db, &org, "h", 2, &ctx.env.jwt_secret).await?;
    let (owner, viewer) = (&users[0], &users[1]);
    let room = seed::channel(&ctx.db, &org, owner.id, &format!("{}-long", org.slug), &[viewer.id]).await?;
    seed::bulk_messages(&ctx.db, &org, &[room], h).await?;
    seed::vacuum_analyze(&ctx.db).await?;
    let seed_note = format!("seeded {h} messages in {:.1} s", seeded.elapsed().as_secs_f64());
    println!("  {seed_note}");

    let gqls = [Gql::new(&ctx.a.http())?, Gql::new(&ctx.b.http())?];
    let (mut hist, mut errors) = (Hist::default(), 0u64);
    for i in 0..z.query_samples {
        let t = Instant::now();
        let result = gqls[i % 2].call(&viewer.token, PAGE, json!({ "room": room })).await;
        let took = t.elapsed();
        let last = result.ok().and_then(|d| {
            let edges = d["messages"]["edges"].as_array()?.clone();
            (edges.len() == 50).then(|| edges[49]["node"]["seq"].as_i64()).flatten()
        });
        if last == Some(h as i64) {
            hist.record(took);
        } else {
            errors += 1;
        }
    }
    ctx.report.push(
        Figure::new(S, format!("messages(last: 50), {h}-message room"), "A/B alternating, sequential")
            .dist(&hist)
            .errors(errors)
            .floor("pg_select")
            .note(seed_note),
    );

    let mut inbox = Inbox::default();
    let conn = WsConn::connect(&ctx.a.ws(), &viewer.token, 0, &inbox).await?;
    let after = (h - z.replay) as i64;
    let (mut first_hist, mut last_hist) = (Hist::default(), Hist::default());
    let (mut errors, mut lost) = (0u64, 0u64);
    for i in 0..z.replays as u32 {
        let id = format!("m{i}");
        let started = Instant::now();
        conn.subscribe(&id, REPLAY, json!({ "room": room, "after": after }))?;
        let mut next = after + 1;
        let mut first = None;
        inbox
            .recv_until(started + Duration::from_secs(30), |event| {
                if let WsEvent::Message { sub, seq, at, .. } = event
                    && sub == i
                {
                    first.get_or_insert(at);
                    if seq == next {
                        next += 1;
                    } else {
                        errors += 1;
                        next = seq + 1;
                    }
                    if seq == h as i64 {
                        last_hist.record(at - started);
                        return true;
                    }
                }
                false
            })
            .await;
        if let Some(at) = first {
            first_hist.record(at - started);
        }
        lost += (h as i64 + 1 - next).max(0) as u64;
        conn.complete(&id).context("completing a replay")?;
        inbox.drain_for(Duration::from_millis(20)).await;
    }
    conn.close().await;
    errors += inbox.errors.len() as u64;
    let params =
        format!("{} replays of {} messages on one WebSocket to A, {h}-message room", z.replays, z.replay);
    ctx.report.push(
        Figure::new(S, format!("messageAdded(after:) replay {}: to last", z.replay), params.clone())
            .dist(&last_hist)
            .errors(errors)
            .undelivered(lost)
            .floor("pg_select"),
    );
    ctx.report.push(
        Figure::new(S, format!("messageAdded(after:) replay {}: to first", z.replay), params)
            .dist(&first_hist)
            .floor("pg_select"),
    );
    Ok(())
}

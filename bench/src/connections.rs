//! Scenario `connections`: memory per idle subscribed WebSocket, and the connect rate.
//!
//! A fresh instance (E, PostgreSQL + Redis, so earlier scenarios leave no allocator history)
//! receives N authenticated WebSocket connections, N stepping through the sweep (default 0,
//! 1 000, 5 000, 10 000), one user per connection, each with `messageAdded` and
//! `unreadCountChanged` subscribed. At each step a warm-up message in a channel all users are
//! members of (posted through B, so it crosses Redis) proves every new subscription live; two
//! seconds later E's VmRSS is read from `/proc/PID/status`. The least-squares slope of RSS over
//! N is the memory per connection. The connect rate is connections per second from starting
//! the handshakes to the last `connection_ack` with subscriptions sent (64 handshakes in
//! flight); connect → ack latency is reported as a distribution.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use tokio::time::Instant;

use crate::client::{Gql, Poster};
use crate::config::Ctx;
use crate::inbox::{Inbox, Kind};
use crate::report::{Figure, Hist, slope};
use crate::seed;
use crate::servers::{self, Instance};
use crate::ws::{Sub, WsConn, close_all, connect_many};

const S: &str = "connections";
const MESSAGES: &str = "subscription { messageAdded { seq body } }";
const UNREAD: &str = "subscription { unreadCountChanged { roomId seq } }";

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let steps = ctx.sizes.connections.clone();
    let max = steps.iter().copied().max().unwrap_or(0);
    let org = seed::org(&ctx.db, "connections").await?;
    let users = seed::users(&ctx.db, &org, "c", max + 1, &ctx.env.jwt_secret).await?;
    let (sender, members) = users.split_last().ok_or_else(|| anyhow::anyhow!("no users"))?;
    let ids: Vec<uuid::Uuid> = members.iter().map(|u| u.id).collect();
    let lobby = seed::channel(&ctx.db, &org, sender.id, &format!("{}-lobby", org.slug), &ids).await?;
    seed::vacuum_analyze(&ctx.db).await?;
    let poster = Poster { gql: Gql::new(&ctx.b.http())?, token: sender.token.clone(), room: lobby };

    let e = ctx.spawn(ctx.env.spec("E")).await?;
    let mut conns = Vec::new();
    let result = steps_on(ctx, &e, &steps, members, &poster, &mut conns).await;
    close_all(conns).await;
    e.stop().await;
    result
}

async fn steps_on(
    ctx: &mut Ctx,
    e: &Instance,
    steps: &[usize],
    members: &[seed::User],
    poster: &Poster,
    conns: &mut Vec<WsConn>,
) -> Result<()> {
    let mut inbox = Inbox::default();
    let subs = [Sub::new("m1", MESSAGES, json!({})), Sub::new("u1", UNREAD, json!({}))];
    let (mut ack_hist, mut connect_secs) = (Hist::default(), 0.0);
    let mut points = Vec::new();
    for &target in steps {
        let have = conns.len();
        if target > have {
            let tokens: Vec<String> = members[have..target].iter().map(|u| u.token.clone()).collect();
            let started = Instant::now();
            let (new, hist) = connect_many(&e.ws(), &tokens, have as u32, 64, &inbox, &subs).await?;
            connect_secs += started.elapsed().as_secs_f64();
            ack_hist.add(&hist);
            conns.extend(new);
            let need: Vec<(u32, Kind)> =
                (have as u32..target as u32).flat_map(|c| [(c, Kind::Message), (c, Kind::Unread)]).collect();
            let limit = Duration::from_secs(30 + target as u64 / 200);
            inbox.barrier(std::slice::from_ref(poster), &need, limit).await?;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = e.rss_kib()?;
        let bench_rss = servers::self_rss_kib().unwrap_or(0);
        points.push((conns.len() as f64, rss as f64));
        let params =
            format!("fresh instance E, {} connections × (messageAdded + unreadCountChanged)", conns.len());
        ctx.report.push(
            Figure::new(S, format!("RSS of E at {} connections", conns.len()), params)
                .value(rss as f64, "KiB")
                .note(format!("bench RSS {} MiB", bench_rss / 1024)),
        );
    }
    let errors = inbox.errors.len() as u64;
    let per_conn = slope(&points);
    let params = format!("least-squares slope of RSS over {} steps ({:?})", points.len(), steps);
    let mut figure = Figure::new(S, "memory per idle subscribed connection", params).errors(errors);
    if let Some(kib) = per_conn {
        figure = figure.value(kib, "KiB/conn").target("≤ 16 KiB", Some(kib <= 16.0));
    }
    if let Some(err) = inbox.errors.first() {
        figure = figure.note(format!("first WebSocket error: {err}"));
    }
    ctx.report.push(figure);
    let n = ack_hist.len();
    let mut figure =
        Figure::new(S, "connect → ack (64 in flight)", format!("{n} connections to E")).dist(&ack_hist);
    if connect_secs > 0.0 {
        figure = figure.value(n as f64 / connect_secs, "conn/s");
    }
    ctx.report.push(figure);
    Ok(())
}

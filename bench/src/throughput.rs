//! Scenario `throughput`: the highest sustained `sendMessage` rate of both instances together.
//!
//! K closed-loop senders (each sends its next message as soon as the previous one is answered)
//! for a fixed time, for each K of the sweep (default 1, 4, 16, 64). Each sender is its own user
//! posting into its own channel (so senders do not queue on one room's row lock), and senders
//! alternate between instances A and B. The first fifth of each step (at most one second) is
//! a warm-up and not counted. Reported per K: messages/s, latency of `sendMessage`, errors, and
//! the CPU use of A, B, the bench and the whole machine. The headline is the best rate among
//! the steps whose p99 stays ≤ 50 ms with no errors, beside the floor of bare PostgreSQL
//! inserts from as many connections as Parley's pool.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::client::{Gql, Poster};
use crate::config::Ctx;
use crate::report::{Figure, Hist};
use crate::seed;
use crate::servers::CpuMeter;

const S: &str = "throughput";
const P99_LIMIT_MS: f64 = 50.0;

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let max_k = ctx.sizes.senders.iter().copied().max().unwrap_or(1);
    let org = seed::org(&ctx.db, "throughput").await?;
    let users = seed::users(&ctx.db, &org, "t", max_k, &ctx.env.jwt_secret).await?;
    let (ga, gb) = (Gql::new(&ctx.a.http())?, Gql::new(&ctx.b.http())?);
    let mut posters = Vec::with_capacity(max_k);
    for (i, user) in users.iter().enumerate() {
        let room = seed::channel(&ctx.db, &org, user.id, &format!("throughput-{i}"), &[]).await?;
        let gql = if i % 2 == 0 { ga.clone() } else { gb.clone() };
        posters.push(Poster { gql, token: user.token.clone(), room });
    }
    seed::vacuum_analyze(&ctx.db).await?;

    let length = Duration::from_secs_f64(ctx.sizes.throughput_secs);
    let mut best: Option<(usize, f64)> = None;
    for &k in &ctx.sizes.senders.clone() {
        let warm = (length / 5).min(Duration::from_secs(1));
        let meter_procs = [("A", Some(ctx.a.pid)), ("B", Some(ctx.b.pid)), ("bench", None)];
        let total = Arc::new(Mutex::new((Hist::default(), 0u64, 0u64, None::<String>)));
        let begin = Instant::now();
        let (counting, deadline) = (begin + warm, begin + warm + length);
        let mut tasks = Vec::with_capacity(k);
        for (i, poster) in posters.iter().take(k).enumerate() {
            let (poster, total) = (poster.clone(), total.clone());
            tasks.push(tokio::spawn(async move {
                let (mut hist, mut ok, mut errors, mut first) = (Hist::default(), 0u64, 0u64, None);
                let mut n = 0u64;
                loop {
                    let t = Instant::now();
                    if t >= deadline {
                        break;
                    }
                    n += 1;
                    match poster.send(&format!("t{k}-{i}-{n}")).await {
                        Ok(_) if t < counting => {} // warm-up
                        Ok(_) => {
                            hist.record(t.elapsed());
                            ok += 1;
                        }
                        Err(err) => {
                            errors += 1;
                            first.get_or_insert(format!("{err:#}"));
                        }
                    }
                }
                let mut total = total.lock().await;
                total.0.add(&hist);
                total.1 += ok;
                total.2 += errors;
                if total.3.is_none() {
                    total.3 = first;
                }
            }));
        }
        tokio::time::sleep_until(counting).await;
        let meter = CpuMeter::start(&meter_procs);
        for task in tasks {
            task.await.context("sender task panicked")?;
        }
        let elapsed = (Instant::now() - counting).as_secs_f64().max(1e-6);
        let cpu = meter.finish();
        let total = total.lock().await;
        let (hist, ok, errors, first) = (&total.0, total.1, total.2, &total.3);
        let rate = ok as f64 / elapsed;
        let mut notes = cpu.notes();
        if rate > 0.0 {
            notes.push(format!("parley CPU {:.0} µs/msg", cpu.servers() / rate * 1e6));
        }
        if let Some(err) = first {
            notes.push(format!("first error: {err}"));
        }
        let p99 = hist.dist().map(|d| d.p99).unwrap_or(f64::INFINITY);
        let within = errors == 0 && p99 <= P99_LIMIT_MS;
        if within && best.is_none_or(|(_, r)| rate > r) {
            best = Some((k, rate));
        }
        notes.push(if within { "within p99 ≤ 50 ms".into() } else { "past the p99/error limit".into() });
        let params =
            format!("{k} closed-loop senders, alternating A/B, own room each, {:.1} s", length.as_secs_f64());
        ctx.report.push(
            Figure::new(S, format!("K={k}: sendMessage"), params)
                .dist(hist)
                .value(rate, "msg/s")
                .errors(errors)
                .floor("pg_insert_pool")
                .notes(&notes),
        );
    }
    let (figure, meets) = match best {
        Some((k, rate)) => (
            Figure::new(S, "max sustained (p99 ≤ 50 ms, 0 errors)", format!("best at K={k}"))
                .value(rate, "msg/s"),
            rate >= 3000.0,
        ),
        None => (Figure::new(S, "max sustained (p99 ≤ 50 ms, 0 errors)", "no K within the limit"), false),
    };
    ctx.report.push(figure.floor("pg_insert_rate").target("≥ 3000 msg/s", Some(meets)));
    Ok(())
}

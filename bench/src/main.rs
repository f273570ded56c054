//! `parley-bench`: Parley's load generator (issue 3, SPEC §11).
//!
//! Starts two `parley` instances (A and B) on one fresh PostgreSQL database sharing one Redis,
//! runs the scenarios with real graphql-ws and HTTP clients, prints every figure as it is
//! measured, then a table, and writes JSON. Each scenario module says what it measures and
//! how. `--quick` shrinks every size to a few seconds and makes any error or lost message fail
//! the run (CI smoke test: completion and correctness, never timings).

mod burst;
mod client;
mod config;
mod connections;
mod delivery;
mod fanout;
mod floor;
mod frames;
mod history;
mod inbound;
mod inbox;
mod notify;
mod pgcount;
mod presence;
mod reminders;
mod report;
mod schema;
mod search;
mod seed;
mod servers;
mod sizes;
mod soak;
mod stalls;
mod throughput;
mod unread;
mod ws;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use config::{Args, Ctx, Scenario, Sizes};
use report::{Figure, Hist, Report};
use servers::{Env, Instance};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("parley-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let sizes = Sizes::from_args(&args);
    let mode = if args.quick { "quick" } else { "full" };
    let work_dir = std::env::temp_dir().join(format!("parley-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
    let env = Env {
        bin: std::fs::canonicalize(&args.parley)
            .with_context(|| format!("--parley {}: no such binary", args.parley.display()))?,
        database_url: without_tls(&args.database_url),
        redis_url: args.redis_url.clone(),
        jwt_secret: format!("parley-bench-{}", uuid::Uuid::now_v7().simple()),
        pool_size: args.pool_size,
        work_dir: work_dir.clone(),
    };
    let db = seed::Db::connect(&env.database_url, 4).await?;

    let mut report = Report::default();
    report.info.insert("mode".into(), json!(mode));
    report.info.insert("machine".into(), servers::machine());
    report.info.insert("postgresql".into(), json!(postgres_version(&db).await));
    report.info.insert("redis".into(), json!(redis_version(&env.redis_url).await));
    report.info.insert("sizes".into(), json!(sizes));
    report.info.insert("pool_size".into(), json!(env.pool_size));
    println!("parley-bench ({mode}) — {}", report.info["machine"]);
    println!("PostgreSQL: {} | Redis: {}", report.info["postgresql"], report.info["redis"]);

    let a = Instance::spawn(&env, env.spec("A")).await.context("starting instance A")?;
    let b = Instance::spawn(&env, env.spec("B")).await.context("starting instance B")?;
    println!(
        "A at {} (pid {}, first start, migrated in {:?}); B at {} (pid {})",
        a.addr, a.pid, a.startup, b.addr, b.pid
    );
    let mut startups = Hist::default();
    startups.record(b.startup);
    let mut ctx = Ctx { sizes, quick: args.quick, env, db, a, b, report, startups, rich: None };

    let scenarios = args.scenarios.clone().unwrap_or_else(|| Scenario::ALL.to_vec());
    for scenario in scenarios {
        println!("\n== {}", scenario.name());
        let begun = Instant::now();
        let result = match scenario {
            Scenario::Floor => floor::run(&mut ctx).await,
            Scenario::Delivery => delivery::run(&mut ctx).await,
            Scenario::Burst => burst::run(&mut ctx).await,
            Scenario::Throughput => throughput::run(&mut ctx).await,
            Scenario::Fanout => fanout::run(&mut ctx).await,
            Scenario::Frames => frames::run(&mut ctx).await,
            Scenario::Connections => connections::run(&mut ctx).await,
            Scenario::Unread => unread::run(&mut ctx).await,
            Scenario::History => history::run(&mut ctx).await,
            Scenario::Soak => soak::run(&mut ctx).await,
            Scenario::Reminders => reminders::run(&mut ctx).await,
            Scenario::Search => search::run(&mut ctx).await,
            Scenario::Presence => presence::run(&mut ctx).await,
            Scenario::Notify => notify::run(&mut ctx).await,
            Scenario::Inbound => inbound::run(&mut ctx).await,
        };
        let result = result.and_then(|()| ctx.check_servers());
        if let Err(err) = result {
            println!("  FAILED: {err:#}");
            ctx.report.failures.push((scenario.name().into(), format!("{err:#}")));
        }
        println!("  ({:.1} s)", begun.elapsed().as_secs_f64());
        // Let the servers drop closed connections and settle before the next scenario.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let startup =
        Figure::new("startup", "spawn → listening (existing database)", "instances after the first")
            .dist(&ctx.startups)
            .target("≤ 1 s", ctx.startups.dist().map(|d| d.max <= 1000.0));
    ctx.report.push(startup);

    if args.quick {
        // Smoke sizes are not the sizes the targets are stated for.
        ctx.report.figures.iter_mut().for_each(|f| f.meets = None);
    }
    println!("\n{}", ctx.report.table());
    ctx.report.info.insert("elapsed_secs".into(), json!(started.elapsed().as_secs_f64()));
    ctx.report.write_json(&args.json, mode)?;
    println!("results: {} ({:.0} s in all)", args.json.display(), started.elapsed().as_secs_f64());

    let Ctx { a, b, report, .. } = ctx;
    a.stop().await;
    b.stop().await;
    let _ = std::fs::remove_dir_all(&work_dir);

    let problems = report.problems();
    let failed = !report.failures.is_empty() || (args.quick && !problems.is_empty());
    for problem in &problems {
        println!("PROBLEM: {problem}");
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Loopback needs no TLS; it also keeps the statement-counting proxy able to read the stream.
fn without_tls(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

async fn postgres_version(db: &seed::Db) -> String {
    let rows = db.query("SHOW server_version", vec![]).await.unwrap_or_default();
    rows.first().and_then(|r| r.try_get::<String>("", "server_version").ok()).unwrap_or_else(|| "?".into())
}

async fn redis_version(url: &str) -> String {
    let info = async {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("INFO").arg("server").query_async::<String>(&mut conn).await
    };
    match info.await {
        Ok(text) => {
            text.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_owned()
        }
        Err(err) => format!("unreachable: {err}"),
    }
}

//! The command line, and the context scenarios share: the two main instances, the bench's
//! own database connection and the report. The sizes of every scenario are in
//! [`crate::sizes`].

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, ValueEnum};

use crate::report::{Hist, Report};
use crate::schema::Rich;
use crate::seed::Db;
use crate::servers::{Env, Instance, Spec};
pub use crate::sizes::Sizes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Floor,
    Delivery,
    Burst,
    Throughput,
    Fanout,
    Frames,
    Connections,
    Unread,
    History,
    Soak,
    Reminders,
    Search,
    Presence,
    Notify,
    Inbound,
}

impl Scenario {
    pub const ALL: [Scenario; 15] = [
        Self::Floor,
        Self::Delivery,
        Self::Burst,
        Self::Throughput,
        Self::Fanout,
        Self::Frames,
        Self::Connections,
        Self::Unread,
        Self::History,
        Self::Soak,
        Self::Reminders,
        Self::Search,
        Self::Presence,
        Self::Notify,
        Self::Inbound,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::Delivery => "delivery",
            Self::Burst => "burst",
            Self::Throughput => "throughput",
            Self::Fanout => "fanout",
            Self::Frames => "frames",
            Self::Connections => "connections",
            Self::Unread => "unread",
            Self::History => "history",
            Self::Soak => "soak",
            Self::Reminders => "reminders",
            Self::Search => "search",
            Self::Presence => "presence",
            Self::Notify => "notify",
            Self::Inbound => "inbound",
        }
    }
}

/// Parley's load generator. Normally started by `bench/run.sh`, which builds the binaries and
/// creates a fresh database.
#[derive(Debug, Parser)]
#[command(name = "parley-bench", version)]
pub struct Args {
    /// Scenarios to run, in this order (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub scenarios: Option<Vec<Scenario>>,
    /// Smoke run: small sizes, a few seconds per scenario; fails on any error or lost message.
    #[arg(long)]
    pub quick: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench/results.json")]
    pub json: PathBuf,
    /// The `parley` binary.
    #[arg(long, env = "PARLEY_BIN", default_value = "target/release/parley")]
    pub parley: PathBuf,
    /// A fresh, empty PostgreSQL database (created by run.sh).
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/parley_bench"
    )]
    pub database_url: String,
    /// Redis shared by the instances.
    #[arg(long, env = "BENCH_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Database pool size of the instances under test (Parley's default).
    #[arg(long, default_value_t = 16)]
    pub pool_size: u32,
    /// delivery: messages per second.
    #[arg(long)]
    pub rate: Option<u32>,
    /// delivery: seconds per variant.
    #[arg(long)]
    pub delivery_secs: Option<f64>,
    /// burst: closed-loop senders into the one room.
    #[arg(long)]
    pub burst_senders: Option<usize>,
    /// burst: messages per sender.
    #[arg(long)]
    pub burst_messages: Option<usize>,
    /// throughput: concurrent sender counts to sweep.
    #[arg(long, value_delimiter = ',')]
    pub senders: Option<Vec<usize>>,
    /// throughput: seconds per sender count.
    #[arg(long)]
    pub throughput_secs: Option<f64>,
    /// fanout: subscriber counts to sweep.
    #[arg(long, value_delimiter = ',')]
    pub fanout: Option<Vec<usize>>,
    /// fanout: messages per subscriber count.
    #[arg(long)]
    pub fanout_messages: Option<usize>,
    /// frames: subscriber WebSockets on the counted instance.
    #[arg(long)]
    pub frames_subscribers: Option<usize>,
    /// frames: messages sent per phase.
    #[arg(long)]
    pub frames_messages: Option<usize>,
    /// connections: connection counts at which RSS is read.
    #[arg(long, value_delimiter = ',')]
    pub connections: Option<Vec<usize>>,
    /// unread: rooms (channels) seeded.
    #[arg(long)]
    pub unread_rooms: Option<usize>,
    /// unread: messages per room.
    #[arg(long)]
    pub unread_per_room: Option<usize>,
    /// unread: users in the organisation.
    #[arg(long)]
    pub unread_users: Option<usize>,
    /// unread: rooms per `unreadCounts` call.
    #[arg(long)]
    pub unread_query_rooms: Option<usize>,
    /// history: messages in the room.
    #[arg(long)]
    pub history_messages: Option<usize>,
    /// soak: seconds of traffic.
    #[arg(long)]
    pub soak_secs: Option<f64>,
    /// soak: messages per second (default: about half of what one instance sustains under the
    /// soak's churn, 584 msg/s in BENCHMARKS.md).
    #[arg(long)]
    pub soak_rate: Option<u32>,
    /// reminders: reminders due within the window.
    #[arg(long)]
    pub reminders: Option<usize>,
    /// presence: users connected throughout the churn.
    #[arg(long)]
    pub presence_users: Option<usize>,
    /// notify: messages sent, each one webhook delivery.
    #[arg(long)]
    pub notify_messages: Option<usize>,
    /// presence: connects plus disconnects per second.
    #[arg(long)]
    pub presence_churn: Option<u32>,
}

/// What scenarios share.
pub struct Ctx {
    pub sizes: Sizes,
    pub quick: bool,
    pub env: Env,
    /// The bench's own connection to the bench database.
    pub db: Db,
    /// Instance A (subscribers) and B (senders): one database, one Redis.
    pub a: Instance,
    pub b: Instance,
    pub report: Report,
    /// Spawn → `listening on` of instances started on an existing database.
    pub startups: Hist,
    /// The rich `messageAdded` selection as the server accepts it, once read (`schema::rich`).
    pub rich: Option<Rich>,
}

impl Ctx {
    /// Starts an extra instance on an existing database; its start-up time is recorded.
    pub async fn spawn(&mut self, spec: Spec) -> Result<Instance> {
        let instance = Instance::spawn(&self.env, spec).await?;
        self.startups.record(instance.startup);
        Ok(instance)
    }

    /// Fails when A or B died.
    pub fn check_servers(&mut self) -> Result<()> {
        self.a.check_alive()?;
        self.b.check_alive()
    }
}

//! Telling a stall of Parley's sends from a stall of the database under them.
//!
//! [`Stalls`] keeps the sends of a pass that took over 50 ms, and when they started. A
//! [`CommitWitness`] runs beside the pass: one bare INSERT + commit (the floor's statement)
//! every 50 ms on a PostgreSQL connection of its own. When the sends stall and the witness's
//! commits stall at the same moment, PostgreSQL (or the disk or the machine under it)
//! stalled, not Parley; when the witness stays fast, the stall was Parley's. The witness runs
//! in the bench's process, so its times include the bench's own waits for a core.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::floor;
use crate::report::Hist;
use crate::seed::Db;

/// A send or a commit slower than this counts as stalled.
const SLOW: Duration = Duration::from_millis(50);

/// Part of a pass: when it started, relative to the pass's start, and how long it took.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: Duration,
    took: Duration,
}

impl Span {
    fn overlaps(self, other: Span) -> bool {
        self.start <= other.start + other.took && other.start <= self.start + self.took
    }
}

/// The slow sends of a pass. The wall-clock time of the first lets a stall be matched against
/// PostgreSQL's log (`log_checkpoints`); a stall at the start (a pool still opening, say) and
/// one in the middle call for different fixes.
pub struct Stalls {
    /// The pass's start on the wall clock.
    began: DateTime<Utc>,
    slow: Vec<Span>,
}

impl Stalls {
    pub fn new() -> Self {
        Self { began: Utc::now(), slow: Vec::new() }
    }

    /// A send started `started` into the pass that took `took`.
    pub fn record(&mut self, started: Duration, took: Duration) {
        if took > SLOW {
            self.slow.push(Span { start: started, took });
        }
    }

    pub fn note(&self) -> Option<String> {
        let first = self.slow.iter().map(|s| s.start).min()?;
        let last = self.slow.iter().map(|s| s.start).max()?;
        let first_at = self.began + chrono::Duration::from_std(first).ok()?;
        Some(format!(
            "{} sends over {} ms, started +{:.2} s to +{:.2} s into the pass (the first at {} UTC)",
            self.slow.len(),
            SLOW.as_millis(),
            first.as_secs_f64(),
            last.as_secs_f64(),
            first_at.format("%H:%M:%S%.3f")
        ))
    }

    /// What the witness's commits took while the slow sends ran: as long as the sends when
    /// the database stalled, their usual few milliseconds when Parley did.
    pub fn witnessed(&self, witness: &Witness) -> Option<String> {
        if self.slow.is_empty() {
            return None;
        }
        let during: Vec<Span> =
            witness.0.iter().copied().filter(|c| self.slow.iter().any(|s| s.overlaps(*c))).collect();
        Some(match during.iter().map(|c| c.took).max() {
            None => "the witness committed nothing while the slow sends ran".to_owned(),
            Some(max) => format!(
                "while the slow sends ran, the witness's {} commits took at most {:.1} ms",
                during.len(),
                max.as_secs_f64() * 1e3
            ),
        })
    }
}

/// Bare commits beside a pass, on a connection of their own; see the module's doc.
pub struct CommitWitness {
    db: Db,
}

impl CommitWitness {
    const EVERY: Duration = Duration::from_millis(50);

    /// Connects before the pass, so that connecting delays none of its sends.
    pub async fn connect(database_url: &str) -> Result<Self> {
        let db = Db::connect(database_url, 1).await?;
        db.exec(floor::CREATE, vec![]).await?;
        Ok(Self { db })
    }

    /// Commits every 50 ms from now on, timed against the pass that started at `pass_start`.
    pub fn run(self, pass_start: Instant) -> RunningWitness {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Self::EVERY);
            // After a stall, go on at the pace rather than commit the missed ticks at once.
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut spans = Vec::new();
            for seq in 0.. {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let (_, values) = floor::row(seq);
                let at = Instant::now();
                self.db.exec(floor::INSERT, values).await?;
                spans.push(Span { start: at.duration_since(pass_start), took: at.elapsed() });
            }
            Ok(spans)
        });
        RunningWitness { stop, task }
    }
}

pub struct RunningWitness {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<Vec<Span>>>,
}

impl RunningWitness {
    pub async fn finish(self) -> Result<Witness> {
        let _ = self.stop.send(());
        Ok(Witness(self.task.await.context("the commit witness panicked")??))
    }
}

/// The witness's commits over a pass.
pub struct Witness(Vec<Span>);

impl Witness {
    pub fn note(&self) -> Option<String> {
        let mut hist = Hist::default();
        self.0.iter().for_each(|c| hist.record(c.took));
        let dist = hist.dist()?;
        let slow = self.0.iter().filter(|c| c.took > SLOW).count();
        Some(format!(
            "witness: a bare commit every {} ms, p50 {:.2} p99 {:.2} max {:.1} ms, {slow} over {} ms",
            CommitWitness::EVERY.as_millis(),
            dist.p50,
            dist.p99,
            dist.max,
            SLOW.as_millis()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start_ms: u64, took_ms: u64) -> Span {
        Span { start: Duration::from_millis(start_ms), took: Duration::from_millis(took_ms) }
    }

    #[test]
    fn the_witness_reports_only_the_commits_made_while_sends_were_slow() {
        let mut stalls = Stalls::new();
        stalls.record(Duration::from_millis(1_000), Duration::from_millis(200));
        stalls.record(Duration::from_millis(5_000), Duration::from_millis(80));
        stalls.record(Duration::from_millis(7_000), Duration::from_millis(2)); // not slow
        // A slow commit during the first, a fast one during the second, one between.
        let witness = Witness(vec![span(1_150, 120), span(3_000, 90), span(5_010, 3)]);
        let said = stalls.witnessed(&witness);
        assert_eq!(
            said.as_deref(),
            Some("while the slow sends ran, the witness's 2 commits took at most 120.0 ms")
        );
        let quiet = Witness(vec![span(3_000, 90)]);
        let said = stalls.witnessed(&quiet);
        assert_eq!(said.as_deref(), Some("the witness committed nothing while the slow sends ran"));
        assert_eq!(Stalls::new().witnessed(&witness), None);
    }
}

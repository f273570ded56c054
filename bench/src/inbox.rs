//! Where the WebSocket clients of a scenario report: every subscription result, timestamped
//! the moment its frame was read, as a [`WsEvent`] on one channel. Errors are kept aside and
//! counted. The [`Inbox::barrier`] proves subscriptions live before anything is measured (the
//! protocol has no acknowledgement for `subscribe`); a [`Collector`] gathers events in the
//! background while a scenario is sending.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use uuid::Uuid;

use crate::client::Poster;

/// Numbers warm-up messages across the whole run: bodies double as `clientId`s, and a body a
/// sender already used in that room is an idempotent retry that announces nothing.
static WARM_UP: AtomicU64 = AtomicU64::new(0);

/// What a subscription id stands for: its first letter (`m1`, `u1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `messageAdded`
    Message,
    /// `unreadCountChanged`
    Unread,
}

/// One observation of a WebSocket client.
#[derive(Debug)]
pub enum WsEvent {
    /// A `messageAdded` result. Bench bodies read `<tag><no>` (`b17`, `w3`); `tag` is 0 for
    /// other bodies (seeded history).
    Message { conn: u32, sub: u32, seq: i64, tag: u8, no: u64, at: Instant },
    /// An `unreadCountChanged` result.
    Unread { conn: u32, room: Uuid, seq: i64, at: Instant },
    /// A `reminderDue` result: the reminder, when it was due and fired (the server's clock),
    /// and when it arrived (the bench's wall clock: the same machine's).
    Reminder { id: Uuid, remind_at: DateTime<Utc>, fired_at: DateTime<Utc>, received: DateTime<Utc> },
    /// A `presenceChanged` result: whose, and whether they are now online.
    Presence { user: Uuid, online: bool, at: Instant },
    /// An `error` message, a result with `errors`, a subscription the server completed, or a
    /// connection that closed on its own.
    Error { conn: u32, text: String },
}

impl WsEvent {
    /// The connection and kind of a result, for "has every subscription spoken yet".
    pub fn key(&self) -> Option<(u32, Kind)> {
        match self {
            Self::Message { conn, .. } => Some((*conn, Kind::Message)),
            Self::Unread { conn, .. } => Some((*conn, Kind::Unread)),
            _ => None,
        }
    }
}

/// Where every connection of a scenario reports; errors are kept aside.
pub struct Inbox {
    pub(crate) tx: mpsc::UnboundedSender<WsEvent>,
    rx: mpsc::UnboundedReceiver<WsEvent>,
    pub errors: Vec<String>,
}

impl Default for Inbox {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { tx, rx, errors: Vec::new() }
    }
}

impl Inbox {
    fn keep(&mut self, event: WsEvent) -> Option<WsEvent> {
        match event {
            WsEvent::Error { conn, text } => {
                self.errors.push(format!("connection {conn}: {text}"));
                None
            }
            event => Some(event),
        }
    }

    /// Hands events to `f` until it returns true (→ true) or the deadline passes (→ false).
    pub async fn recv_until(&mut self, deadline: Instant, mut f: impl FnMut(WsEvent) -> bool) -> bool {
        while let Ok(Some(event)) = timeout_at(deadline, self.rx.recv()).await {
            if let Some(event) = self.keep(event)
                && f(event)
            {
                return true;
            }
        }
        false
    }

    /// Drops what arrives during `wait` (warm-up stragglers).
    pub async fn drain_for(&mut self, wait: Duration) {
        self.recv_until(Instant::now() + wait, |_| false).await;
    }

    /// Collects everything in a background task until [`Collector::finish`].
    pub fn collect(mut self) -> Collector {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        let task = tokio::spawn(async move {
            let mut events = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    event = self.rx.recv() => match event {
                        Some(event) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            events.extend(self.keep(event));
                        }
                        None => break,
                    },
                }
            }
            while let Ok(event) = self.rx.try_recv() {
                events.extend(self.keep(event));
            }
            (self, events)
        });
        Collector { stop, task, received }
    }

    /// Waits until every `(connection, kind)` in `need` has produced a result, posting a
    /// warm-up message (`w<n>`) through every poster each round. Proves that subscriptions
    /// are live: the protocol has no acknowledgement for `subscribe`.
    pub async fn barrier(&mut self, posters: &[Poster], need: &[(u32, Kind)], limit: Duration) -> Result<()> {
        let mut missing: HashSet<(u32, Kind)> = need.iter().copied().collect();
        let deadline = Instant::now() + limit;
        let round = Duration::from_millis(400 + need.len() as u64 / 10);
        while !missing.is_empty() {
            if Instant::now() >= deadline {
                bail!("{} of {} subscriptions still silent after {limit:?}", missing.len(), need.len());
            }
            for poster in posters {
                let n = WARM_UP.fetch_add(1, Ordering::Relaxed) + 1;
                poster.send(&format!("w{n}")).await.context("warm-up message")?;
            }
            let until = (Instant::now() + round).min(deadline);
            self.recv_until(until, |event| {
                if let Some(key) = event.key() {
                    missing.remove(&key);
                }
                missing.is_empty()
            })
            .await;
        }
        self.drain_for(Duration::from_millis(300)).await;
        Ok(())
    }
}

pub struct Collector {
    stop: oneshot::Sender<()>,
    task: JoinHandle<(Inbox, Vec<WsEvent>)>,
    received: Arc<AtomicUsize>,
}

impl Collector {
    /// Waits until `expected` events arrived or `limit` passed, then a short grace period.
    pub async fn wait_for(&self, expected: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    pub async fn finish(self) -> Result<(Inbox, Vec<WsEvent>)> {
        let _ = self.stop.send(());
        self.task.await.context("event collector panicked")
    }
}

//! The `reminderDue` feed: the viewer's reminders as they fall due, once each.
//!
//! Events (`RemindersDue` on the viewer's user topic) carry the fired reminders. The bus is at
//! most once, so after a resync (a bus reconnect, or this reader lagging) the feed reads the
//! viewer's due reminders fired since it started and delivers those it has not delivered: a
//! reminder that fired while this instance could not hear the bus still pops up, late rather
//! than never. A failed read is tried again after a backoff (`bus::Retry`).

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, Utc};
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::scheduler::payload;
use super::service;
use crate::auth::Viewer;
use crate::bus::{BusItem, Event, ReminderPayload, Retry, Topic, TopicSubscription};
use crate::state::AppState;

/// Reminders fired this long before the feed started are still news to it: instances' clocks
/// differ a little, and the one that fired a reminder stamped it with its own. (One delivered
/// to the client's previous connection within this second may come again after a resync.)
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
/// Most reminders one recovery delivers: the latest fired (a user has few due at once).
const RECOVERY_LIMIT: u64 = 100;

struct DueFeed {
    state: AppState,
    viewer: Viewer,
    events: TopicSubscription,
    started: DateTime<Utc>,
    /// Firings already delivered, so a recovery repeats none (a few a day per user). A
    /// snoozed reminder fires again under the same id, at another time.
    delivered: HashSet<(Uuid, DateTime<Utc>)>,
    pending: VecDeque<ReminderPayload>,
    /// Pending after a failed recovery: when due, read again.
    retry: Retry,
}

/// The viewer's reminders as they fire; subscribed when this returns.
pub async fn reminders_due(state: AppState, viewer: Viewer) -> BoxStream<'static, ReminderPayload> {
    let events = state.bus.subscribe(Topic::User(viewer.id)).await;
    let feed = DueFeed {
        state,
        viewer,
        events,
        started: Utc::now() - CLOCK_SKEW,
        delivered: HashSet::new(),
        pending: VecDeque::new(),
        retry: Retry::default(),
    };
    stream::unfold(feed, |mut feed| async move { feed.next().await.map(|r| (r, feed)) }).boxed()
}

impl DueFeed {
    async fn next(&mut self) -> Option<ReminderPayload> {
        loop {
            if let Some(reminder) = self.pending.pop_front() {
                return Some(reminder);
            }
            let item = tokio::select! {
                // Both cancel-safe: a broadcast receiver loses nothing to a cancelled `recv`.
                () = self.retry.due() => {
                    self.recover().await;
                    continue;
                }
                item = self.events.receiver.recv() => item,
            };
            match item {
                Ok(BusItem::Event(envelope)) => {
                    if let Event::RemindersDue { reminders } = &envelope.event {
                        self.deliver(reminders.iter().cloned());
                    }
                }
                Ok(BusItem::Resync(_)) | Err(RecvError::Lagged(_)) => {
                    self.retry.cancel();
                    self.recover().await;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn deliver(&mut self, reminders: impl Iterator<Item = ReminderPayload>) {
        for reminder in reminders {
            if self.delivered.insert((reminder.id, reminder.fired_at)) {
                self.pending.push_back(reminder);
            }
        }
    }

    /// Delivers the due reminders fired since the feed started that events did not bring.
    async fn recover(&mut self) {
        match service::fired_since(&self.state.store, &self.viewer, self.started, RECOVERY_LIMIT).await {
            Ok(rows) => {
                self.retry.settle();
                let now = Utc::now();
                self.deliver(rows.into_iter().map(|row| payload(row, now)));
            }
            Err(err) => {
                tracing::warn!(?err, "reminderDue recovery failed; retried");
                self.retry.later();
            }
        }
    }
}

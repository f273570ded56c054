//! Local fan-out: one `broadcast` channel per topic, created on the first local subscriber
//! and removed after the last one leaves; with Redis, the hub also asks the subscriber task
//! to SUBSCRIBE and UNSUBSCRIBE at those moments.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use super::event::{Envelope, Topic};

/// Per-topic buffer. A subscriber that falls further behind sees `Lagged` and resyncs from
/// the database instead of slowing the publisher. The buffer is allocated whole when the
/// topic is created (about 40 bytes a slot), and every connected user has a user topic:
/// user events (read marks, membership) are rare, so theirs is small.
const ROOM_TOPIC_CAPACITY: usize = 128;
const USER_TOPIC_CAPACITY: usize = 16;

/// From when events may have been lost: none published before this moment was, by the clock
/// of the instance that knows. `None`: unknown, so at any time. (`None` sorts first, so the
/// `min` of two is the earlier.)
pub type LostAfter = Option<DateTime<Utc>>;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum BusItem {
    Event(Arc<Envelope>),
    /// Events may have been missed (a bus reconnect, another instance's lost publishes):
    /// reread from the database what changed after the moment given.
    Resync(LostAfter),
}

/// Asks the Redis subscriber task to follow or drop a channel; the task sets `ready` once
/// Redis confirmed (or at once while disconnected: it resyncs everyone on reconnect).
pub enum Command {
    Subscribe { topic: Topic, ready: watch::Sender<bool> },
    Unsubscribe { topic: Topic },
}

struct Slot {
    sender: broadcast::Sender<BusItem>,
    subscribers: usize,
    /// True once events of the topic reach this instance; every subscriber waits for it, so
    /// one that reads the database right after subscribing misses nothing.
    ready: watch::Receiver<bool>,
}

pub struct Hub {
    instance_id: Uuid,
    topics: Mutex<HashMap<Topic, Slot>>,
    /// Present with the Redis transport.
    remote: Option<mpsc::UnboundedSender<Command>>,
}

impl Hub {
    pub fn new(instance_id: Uuid, remote: Option<mpsc::UnboundedSender<Command>>) -> Self {
        Self { instance_id, topics: Mutex::new(HashMap::new()), remote }
    }

    pub fn instance_id(&self) -> Uuid {
        self.instance_id
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<Topic, Slot>> {
        // A poisoned map only means a panic elsewhere mid-update of plain counters.
        self.topics.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn deliver(&self, topic: &Topic, envelope: Arc<Envelope>) {
        if let Some(slot) = self.topics().get(topic) {
            // No receivers is fine: the last one may have just left.
            let _ = slot.sender.send(BusItem::Event(envelope));
        }
    }

    /// Tells every local subscriber that events published after `lost_after` may have been
    /// missed.
    pub fn resync_all(&self, lost_after: LostAfter) {
        for slot in self.topics().values() {
            let _ = slot.sender.send(BusItem::Resync(lost_after));
        }
    }

    pub fn is_active(&self, topic: &Topic) -> bool {
        self.topics().contains_key(topic)
    }

    pub fn active_topics(&self) -> Vec<Topic> {
        self.topics().keys().copied().collect()
    }

    pub async fn subscribe(self: &Arc<Self>, topic: Topic) -> TopicSubscription {
        let (receiver, mut ready) = {
            let mut topics = self.topics();
            let slot = topics.entry(topic).or_insert_with(|| {
                metrics::gauge!("parley_bus_topics").increment(1.0);
                let (ready_tx, ready) = watch::channel(self.remote.is_none());
                if let Some(remote) = &self.remote {
                    // A closed channel means shutdown: nothing will be delivered anyway.
                    let _ = remote.send(Command::Subscribe { topic, ready: ready_tx });
                }
                let capacity = match topic {
                    Topic::User(_) | Topic::Presence(_) | Topic::Members(_) => USER_TOPIC_CAPACITY,
                    Topic::Room(_) | Topic::Signals(_) | Topic::Directory | Topic::Scheduler => {
                        ROOM_TOPIC_CAPACITY
                    }
                };
                Slot { sender: broadcast::channel(capacity).0, subscribers: 0, ready }
            });
            slot.subscribers += 1;
            (slot.sender.subscribe(), slot.ready.clone())
        };
        // Counted, so guarded before the first await: a caller that gives up while Redis has
        // not confirmed (its connection closed) must still release the topic.
        let guard = TopicGuard { topic, hub: self.clone() };
        // Err: the subscriber task is gone (shutdown); do not wait for it.
        let _ = ready.wait_for(|ready| *ready).await;
        TopicSubscription { receiver, guard }
    }

    fn release(&self, topic: Topic) {
        let mut topics = self.topics();
        let Some(slot) = topics.get_mut(&topic) else { return };
        slot.subscribers -= 1;
        if slot.subscribers == 0 {
            topics.remove(&topic);
            metrics::gauge!("parley_bus_topics").decrement(1.0);
            if let Some(remote) = &self.remote {
                let _ = remote.send(Command::Unsubscribe { topic });
            }
        }
    }
}

/// A local subscription to one topic.
pub struct TopicSubscription {
    pub receiver: broadcast::Receiver<BusItem>,
    /// Keeps the topic followed; dropping it releases the topic.
    pub guard: TopicGuard,
}

impl TopicSubscription {
    /// The subscription as a stream, for a map of followed topics: the guard lives in the
    /// same entry as the events, so one map, not two keyed alike, says what is followed.
    pub fn into_stream(self) -> TopicStream {
        TopicStream { events: BroadcastStream::new(self.receiver), _guard: self.guard }
    }
}

/// A followed topic's events; holding it keeps the topic followed, so it never ends while
/// held (the topic's sender lives as long as any subscriber's guard).
pub struct TopicStream {
    events: BroadcastStream<BusItem>,
    _guard: TopicGuard,
}

impl Stream for TopicStream {
    type Item = <BroadcastStream<BusItem> as Stream>::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.events).poll_next(cx)
    }
}

pub struct TopicGuard {
    topic: Topic,
    hub: Arc<Hub>,
}

impl Drop for TopicGuard {
    fn drop(&mut self) {
        self.hub.release(self.topic);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    /// A subscriber that gives up before Redis confirmed leaves nothing behind: the topic is
    /// dropped and Redis is told to unsubscribe (before, the count stayed at one for good).
    #[tokio::test]
    async fn a_subscribe_abandoned_before_ready_releases_the_topic() {
        let (remote, mut commands) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(Uuid::new_v4(), Some(remote)));
        let topic = Topic::Room(Uuid::new_v4());

        // Polled once: the topic is counted and Redis asked, then the future waits and is dropped.
        let waited = hub.subscribe(topic).now_or_never();

        assert!(waited.is_none(), "nothing confirmed the subscription");
        assert!(!hub.is_active(&topic));
        assert!(matches!(commands.try_recv(), Ok(Command::Subscribe { topic: t, .. }) if t == topic));
        assert!(matches!(commands.try_recv(), Ok(Command::Unsubscribe { topic: t }) if t == topic));
    }

    /// Once confirmed, the subscription holds the topic until its guard is dropped.
    #[tokio::test]
    async fn a_confirmed_subscription_holds_the_topic_until_dropped() {
        let (remote, mut commands) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(Uuid::new_v4(), Some(remote)));
        let topic = Topic::Room(Uuid::new_v4());
        let subscribing = tokio::spawn({
            let hub = hub.clone();
            async move { hub.subscribe(topic).await }
        });
        let Some(Command::Subscribe { ready, .. }) = commands.recv().await else {
            panic!("the hub asked Redis for nothing");
        };
        ready.send_replace(true);
        let subscription = subscribing.await.expect("subscribing panicked");

        assert!(hub.is_active(&topic));
        drop(subscription);
        assert!(!hub.is_active(&topic));
        assert!(matches!(commands.try_recv(), Ok(Command::Unsubscribe { topic: t }) if t == topic));
    }

    /// One of two subscribers giving up before Redis confirmed leaves the topic to the other:
    /// still followed, and Redis is not told to unsubscribe.
    #[tokio::test]
    async fn a_subscriber_giving_up_leaves_the_topic_to_the_other() {
        let (remote, mut commands) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(Uuid::new_v4(), Some(remote)));
        let topic = Topic::Room(Uuid::new_v4());
        let staying = tokio::spawn({
            let hub = hub.clone();
            async move { hub.subscribe(topic).await }
        });
        let Some(Command::Subscribe { ready, .. }) = commands.recv().await else {
            panic!("the hub asked Redis for nothing");
        };

        assert!(hub.subscribe(topic).now_or_never().is_none(), "nothing confirmed the subscription");
        assert!(hub.is_active(&topic));
        ready.send_replace(true);
        let subscription = staying.await.expect("subscribing panicked");

        assert!(hub.is_active(&topic));
        assert!(commands.try_recv().is_err(), "one Subscribe, and no Unsubscribe while one stays");
        drop(subscription);
        assert!(matches!(commands.try_recv(), Ok(Command::Unsubscribe { topic: t }) if t == topic));
    }
}

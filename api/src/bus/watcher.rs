//! `Watcher`: the bus topics one subscription follows — the viewer's user topic plus the room
//! topics in scope, and a room's signals topic for the feeds that want it — merged into one
//! stream. It follows rooms the viewer joins and drops rooms
//! the viewer leaves or is removed from, as soon as the membership event arrives.
//!
//! A feed whose database read failed asks for `retry_later`: the watcher then yields `Retry`
//! after a backoff, and the feed reads again what failed. So a failed read delays a delivery;
//! it never drops one.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio_stream::StreamExt;
use tokio_stream::StreamMap;
use uuid::Uuid;

use super::hub::{BusItem, TopicStream};
use super::retry::Retry;
use super::{Envelope, Event, EventBus, Topic};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every room the viewer is a member of, now or later.
    AllRooms,
    /// One room.
    Room(Uuid),
}

/// What a watcher yields.
#[derive(Debug)]
pub enum Watched {
    /// An event of a room's topic or of its signals topic.
    Room(Uuid, Arc<Envelope>),
    User(Arc<Envelope>),
    /// Events may have been missed: reread state from the database.
    Resync,
    /// Asked for with [`Watcher::retry_later`]: read again what failed.
    Retry,
}

/// Which followed topic an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    User,
    Room(Uuid),
    Signals(Uuid),
}

pub struct Watcher {
    bus: EventBus,
    scope: Scope,
    /// The viewer's user topic, read before the rooms' (see `next`).
    user: TopicStream,
    /// The rooms' topics and signals topics.
    streams: StreamMap<Key, TopicStream>,
    /// Events read while coalescing a burst of resyncs, yielded next.
    backlog: VecDeque<(Key, Arc<Envelope>)>,
    /// A retry asked for by the feed after a failed read.
    retry: Retry,
}

impl Watcher {
    /// Subscribes the viewer's user topic. Callers then read the viewer's rooms from the
    /// database and `follow` them: a membership change after this point arrives as an event,
    /// so none falls between the read and the subscription.
    pub async fn start(bus: &EventBus, viewer_id: Uuid, scope: Scope) -> Self {
        Self {
            bus: bus.clone(),
            scope,
            user: bus.subscribe(Topic::User(viewer_id)).await.into_stream(),
            streams: StreamMap::new(),
            backlog: VecDeque::new(),
            retry: Retry::default(),
        }
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Follows a room; once this returns, its events published from now on arrive.
    pub async fn follow(&mut self, room_id: Uuid) {
        if !self.streams.contains_key(&Key::Room(room_id)) {
            self.add(Key::Room(room_id), Topic::Room(room_id)).await;
        }
    }

    /// Also follows a room's typing and read receipts (`Topic::Signals`).
    pub async fn follow_signals(&mut self, room_id: Uuid) {
        if !self.streams.contains_key(&Key::Signals(room_id)) {
            self.add(Key::Signals(room_id), Topic::Signals(room_id)).await;
        }
    }

    /// Stops following a room, and forgets its events still waiting in the backlog.
    pub fn unfollow(&mut self, room_id: Uuid) {
        for key in [Key::Room(room_id), Key::Signals(room_id)] {
            self.streams.remove(&key);
        }
        self.backlog.retain(|(key, _)| !matches!(key, Key::Room(r) | Key::Signals(r) if *r == room_id));
    }

    pub fn rooms(&self) -> Vec<Uuid> {
        let room = |key: &Key| match key {
            Key::Room(room_id) => Some(*room_id),
            Key::User | Key::Signals(_) => None,
        };
        self.streams.keys().filter_map(room).collect()
    }

    async fn add(&mut self, key: Key, topic: Topic) {
        self.streams.insert(key, self.bus.subscribe(topic).await.into_stream());
    }

    /// Yields `Retry` after a backoff: the caller's database read failed, and what it was to
    /// deliver must be read again. Events keep arriving meanwhile. The backoff grows while
    /// each retry fails, and starts short again once one went through.
    pub fn retry_later(&mut self) {
        self.retry.later();
    }

    pub async fn next(&mut self) -> Option<Watched> {
        self.retry.settle();
        let (key, envelope) = match self.backlog.pop_front() {
            Some(event) => event,
            None => {
                let item = tokio::select! {
                    // The user topic first: when a removal from a room and that room's later
                    // messages are both waiting, the removal must win, and StreamMap starts
                    // each poll at a random stream. All three are cancel-safe: the retry is
                    // kept, and no stream loses an item.
                    biased;
                    item = self.user.next() => (Key::User, item?),
                    () = self.retry.due() => return Some(Watched::Retry),
                    // An empty StreamMap answers `None` at once: no room followed yet.
                    Some(item) = self.streams.next(), if !self.streams.is_empty() => item,
                };
                match item {
                    (key, Ok(BusItem::Event(envelope))) => (key, envelope),
                    // Lagged behind the topic's buffer, or the bus reconnected.
                    (_, item @ (Ok(BusItem::Resync) | Err(_))) => {
                        if item.is_err() {
                            // A slow reader: it catches up from the database, nobody waits.
                            metrics::counter!("parley_subscription_lagged_total").increment(1);
                        }
                        self.coalesce_resyncs();
                        // A resync rereads everything, whatever a pending retry was for.
                        self.retry.cancel();
                        return Some(Watched::Resync);
                    }
                }
            }
        };
        let room_id = match key {
            Key::Room(room_id) | Key::Signals(room_id) => room_id,
            Key::User => {
                if let Event::MembershipChanged { room_id, change, .. } = &envelope.event {
                    if !change.is_member() {
                        self.unfollow(*room_id);
                    } else if self.scope == Scope::AllRooms {
                        // Boxed: a large future, rarely run, that would otherwise stay
                        // allocated in every idle subscription's stream.
                        Box::pin(self.follow(*room_id)).await;
                    }
                }
                return Some(Watched::User(envelope));
            }
        };
        Some(Watched::Room(room_id, envelope))
    }

    /// A reconnect sends a resync down every followed topic at once; one database reread
    /// covers them all. Events already waiting are kept, to be yielded after the resync
    /// (feeds ignore what they already have, by seq).
    fn coalesce_resyncs(&mut self) {
        while let Some(Some(item)) = self.user.next().now_or_never() {
            if let Ok(BusItem::Event(envelope)) = item {
                self.backlog.push_back((Key::User, envelope));
            }
        }
        while let Some(Some((key, item))) = self.streams.next().now_or_never() {
            if let Ok(BusItem::Event(envelope)) = item {
                self.backlog.push_back((key, envelope));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{Instant, timeout};

    use super::*;
    use crate::bus::{MembershipChange, RoomChange};

    /// A room-less user event, as a read on another device sends.
    fn user_event() -> Event {
        Event::MuteChanged { room_id: Uuid::now_v7() }
    }

    #[tokio::test]
    async fn a_retry_comes_once_after_a_backoff_while_events_keep_flowing() {
        let bus = EventBus::in_process();
        let viewer = Uuid::now_v7();
        let mut watcher = Watcher::start(&bus, viewer, Scope::AllRooms).await;
        let asked = Instant::now();
        watcher.retry_later();
        watcher.retry_later();
        bus.publish(Topic::User(viewer), user_event()).await;

        assert!(matches!(watcher.next().await, Some(Watched::User(_))), "the event does not wait");
        assert!(matches!(watcher.next().await, Some(Watched::Retry)));
        assert!(asked.elapsed() >= Duration::from_millis(25), "after the backoff: {:?}", asked.elapsed());
        assert!(
            timeout(Duration::from_millis(200), watcher.next()).await.is_err(),
            "one retry, however often asked"
        );
    }

    /// A removal published before the room's next event is applied first, although both are
    /// waiting when the watcher is read: the room is no longer followed, so its event is not
    /// yielded at all.
    #[tokio::test]
    async fn a_removal_waiting_beside_the_rooms_next_event_wins() {
        let bus = EventBus::in_process();
        for _ in 0..32 {
            let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
            let mut watcher = Watcher::start(&bus, viewer, Scope::AllRooms).await;
            watcher.follow(room_id).await;
            let removed = Event::MembershipChanged { room_id, change: MembershipChange::Revoked, seq: 1 };
            bus.publish(Topic::User(viewer), removed).await;
            bus.publish(Topic::Room(room_id), Event::RoomChanged { room_id, change: RoomChange::Renamed })
                .await;

            assert!(matches!(watcher.next().await, Some(Watched::User(_))));
            assert!(watcher.rooms().is_empty());
            assert!(timeout(Duration::from_millis(20), watcher.next()).await.is_err(), "nothing of the room");
        }
    }

    #[tokio::test]
    async fn the_backoff_grows_while_each_retry_fails() {
        let bus = EventBus::in_process();
        let mut watcher = Watcher::start(&bus, Uuid::now_v7(), Scope::AllRooms).await;
        let started = Instant::now();
        for _ in 0..3 {
            // Each retry fails again at once: asked for before the watcher is read again.
            watcher.retry_later();
            assert!(matches!(watcher.next().await, Some(Watched::Retry)));
        }
        // 25–50, then 50–100, then 100–200 ms.
        assert!(started.elapsed() >= Duration::from_millis(175), "{:?}", started.elapsed());
    }
}

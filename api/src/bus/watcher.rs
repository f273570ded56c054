//! `Watcher`: the bus topics one subscription follows — the viewer's user topic plus the room
//! topics in scope, and a room's signals topic for the feeds that want it — merged into one
//! stream. It follows rooms the viewer joins and drops rooms
//! the viewer leaves or is removed from, as soon as the membership event arrives, once the
//! database confirms it: two instances' membership events can arrive in the other order than
//! their commits (an addition on one, then a removal on the other), and the older one, arriving
//! last, must not win. A member removed must not go on receiving the room's messages.
//!
//! A feed whose database read failed asks for `retry_later`: the watcher then yields `Retry`
//! after a backoff, and the feed reads again what failed. So a failed read delays a delivery;
//! it never drops one.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
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

/// Whether a user is a member of a room now, as the database says; `None` when it cannot
/// tell (the database did not answer: the implementation logs why). The rooms domain answers;
/// the bus only asks.
#[async_trait]
pub trait MembershipCheck: Send + Sync {
    async fn is_member(&self, user_id: Uuid, room_id: Uuid) -> Option<bool>;
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

/// What became of a membership event (`Watcher::apply_membership`).
enum Applied {
    /// The database agrees: applied, and yielded.
    Current,
    /// Overtaken by a later change: dropped.
    Stale,
    /// The database did not answer: the watcher resyncs.
    Unknown,
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
    viewer_id: Uuid,
    scope: Scope,
    /// Asked before a membership event is applied.
    members: Box<dyn MembershipCheck>,
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
    pub async fn start(
        bus: &EventBus,
        viewer_id: Uuid,
        scope: Scope,
        members: Box<dyn MembershipCheck>,
    ) -> Self {
        Self {
            bus: bus.clone(),
            viewer_id,
            scope,
            members,
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
        loop {
            self.retry.settle();
            let (key, envelope) = match self.backlog.pop_front() {
                Some(event) => event,
                None => {
                    let item = tokio::select! {
                        // The user topic first: when a removal from a room and that room's
                        // later messages are both waiting, the removal must win, and StreamMap
                        // starts each poll at a random stream. All three are cancel-safe: the
                        // retry is kept, and no stream loses an item.
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
                            return Some(self.resync());
                        }
                    }
                }
            };
            let room_id = match key {
                Key::Room(room_id) | Key::Signals(room_id) => room_id,
                Key::User => {
                    if let Event::MembershipChanged { room_id, change, .. } = envelope.event
                        && self.concerns(room_id)
                    {
                        // Boxed: a large future, rarely run, that would otherwise stay
                        // allocated in every idle subscription's stream.
                        match Box::pin(self.apply_membership(room_id, change.is_member())).await {
                            Applied::Current => {}
                            Applied::Stale => continue,
                            Applied::Unknown => return Some(self.resync()),
                        }
                    }
                    return Some(Watched::User(envelope));
                }
            };
            return Some(Watched::Room(room_id, envelope));
        }
    }

    /// Whether a membership change of `room_id` changes what this watcher follows.
    fn concerns(&self, room_id: Uuid) -> bool {
        match self.scope {
            Scope::AllRooms => true,
            Scope::Room(scoped) => scoped == room_id,
        }
    }

    /// Follows or drops a room on a membership event the database confirms. One it contradicts
    /// is older than a change whose own event came first or is still coming, and is dropped.
    async fn apply_membership(&mut self, room_id: Uuid, joined: bool) -> Applied {
        let Some(member) = self.members.is_member(self.viewer_id, room_id).await else {
            // On the safe side until the resync's repair reads membership again.
            self.unfollow(room_id);
            return Applied::Unknown;
        };
        if member != joined {
            metrics::counter!("parley_membership_events_stale_total").increment(1);
            return Applied::Stale;
        }
        if !member {
            self.unfollow(room_id);
        } else if self.scope == Scope::AllRooms {
            self.follow(room_id).await;
        }
        Applied::Current
    }

    /// Events may have been missed: one database reread covers them, whatever a pending retry
    /// was for.
    fn resync(&mut self) -> Watched {
        self.coalesce_resyncs();
        self.retry.cancel();
        Watched::Resync
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

    /// The database's answer to every membership check: member or not, or no answer.
    struct Answer(Option<bool>);

    #[async_trait]
    impl MembershipCheck for Answer {
        async fn is_member(&self, _: Uuid, _: Uuid) -> Option<bool> {
            self.0
        }
    }

    async fn start(bus: &EventBus, viewer: Uuid, answer: Option<bool>) -> Watcher {
        Watcher::start(bus, viewer, Scope::AllRooms, Box::new(Answer(answer))).await
    }

    fn membership(room_id: Uuid, change: MembershipChange) -> Event {
        Event::MembershipChanged { room_id, change, seq: 1 }
    }

    #[tokio::test]
    async fn a_retry_comes_once_after_a_backoff_while_events_keep_flowing() {
        let bus = EventBus::in_process();
        let viewer = Uuid::now_v7();
        let mut watcher = start(&bus, viewer, Some(true)).await;
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
            let mut watcher = start(&bus, viewer, Some(false)).await;
            watcher.follow(room_id).await;
            bus.publish(Topic::User(viewer), membership(room_id, MembershipChange::Revoked)).await;
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
        let mut watcher = start(&bus, Uuid::now_v7(), Some(true)).await;
        let started = Instant::now();
        for _ in 0..3 {
            // Each retry fails again at once: asked for before the watcher is read again.
            watcher.retry_later();
            assert!(matches!(watcher.next().await, Some(Watched::Retry)));
        }
        // 25–50, then 50–100, then 100–200 ms.
        assert!(started.elapsed() >= Duration::from_millis(175), "{:?}", started.elapsed());
    }

    /// An addition on one instance and a removal on another, whose events arrive in the other
    /// order: the addition comes last, and the database, which says the viewer is no longer a
    /// member, has it dropped.
    #[tokio::test]
    async fn a_join_the_database_denies_is_dropped_and_its_room_not_followed() {
        let bus = EventBus::in_process();
        let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
        let mut watcher = start(&bus, viewer, Some(false)).await;
        bus.publish(Topic::User(viewer), membership(room_id, MembershipChange::Joined)).await;
        bus.publish(Topic::User(viewer), user_event()).await;

        let next = watcher.next().await;
        assert!(
            matches!(&next, Some(Watched::User(e)) if matches!(e.event, Event::MuteChanged { .. })),
            "the join is not yielded: {next:?}"
        );
        assert!(watcher.rooms().is_empty(), "the room is not followed");
    }

    /// The other way round: a removal older than the viewer's rejoin keeps the room followed.
    #[tokio::test]
    async fn a_removal_the_database_denies_is_dropped_and_its_room_kept() {
        let bus = EventBus::in_process();
        let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
        let mut watcher = start(&bus, viewer, Some(true)).await;
        watcher.follow(room_id).await;
        bus.publish(Topic::User(viewer), membership(room_id, MembershipChange::Revoked)).await;
        bus.publish(Topic::User(viewer), user_event()).await;

        let next = watcher.next().await;
        assert!(
            matches!(&next, Some(Watched::User(e)) if matches!(e.event, Event::MuteChanged { .. })),
            "the removal is not yielded: {next:?}"
        );
        assert_eq!(watcher.rooms(), vec![room_id]);
    }

    /// Unconfirmed, a membership event leaves the room unfollowed and asks for a resync, whose
    /// repair reads membership again.
    #[tokio::test]
    async fn a_membership_event_the_database_cannot_confirm_resyncs() {
        let bus = EventBus::in_process();
        let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
        let mut watcher = start(&bus, viewer, None).await;
        watcher.follow(room_id).await;
        bus.publish(Topic::User(viewer), membership(room_id, MembershipChange::Joined)).await;

        assert!(matches!(watcher.next().await, Some(Watched::Resync)));
        assert!(watcher.rooms().is_empty());
    }
}

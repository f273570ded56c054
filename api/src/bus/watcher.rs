//! `Watcher`: the bus topics one subscription follows — the viewer's user topic plus the room
//! topics in scope, and a room's signals topic for the feeds that want it — merged into one
//! stream. It follows rooms the viewer joins and drops rooms
//! the viewer leaves or is removed from, as soon as the membership event arrives.
//!
//! A feed whose database read failed asks for `resync_later`: the watcher then yields a
//! `Resync` after a short backoff, and the feed rereads everything as after a lost event. So
//! a failed read delays a delivery; it never drops one.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::time::Sleep;

use tokio_stream::StreamExt;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use super::hub::{BusItem, TopicGuard};
use super::link::Backoff;
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
    streams: StreamMap<Key, BroadcastStream<BusItem>>,
    guards: HashMap<Key, TopicGuard>,
    /// Events read while coalescing a burst of resyncs, yielded next.
    backlog: VecDeque<(Key, Arc<Envelope>)>,
    /// A resync asked for by the feed after a failed read, due when this sleep ends.
    retry: Option<Pin<Box<Sleep>>>,
    /// Delays between retries: short after a blip, at most a second while the database is down.
    backoff: Backoff,
}

impl Watcher {
    /// Subscribes the viewer's user topic. Callers then read the viewer's rooms from the
    /// database and `follow` them: a membership change after this point arrives as an event,
    /// so none falls between the read and the subscription.
    pub async fn start(bus: &EventBus, viewer_id: Uuid, scope: Scope) -> Self {
        let mut watcher = Self {
            bus: bus.clone(),
            scope,
            streams: StreamMap::new(),
            guards: HashMap::new(),
            backlog: VecDeque::new(),
            retry: None,
            backoff: Backoff::default(),
        };
        watcher.add(Key::User, Topic::User(viewer_id)).await;
        watcher
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Follows a room; once this returns, its events published from now on arrive.
    pub async fn follow(&mut self, room_id: Uuid) {
        if !self.guards.contains_key(&Key::Room(room_id)) {
            self.add(Key::Room(room_id), Topic::Room(room_id)).await;
        }
    }

    /// Also follows a room's typing and read receipts (`Topic::Signals`).
    pub async fn follow_signals(&mut self, room_id: Uuid) {
        if !self.guards.contains_key(&Key::Signals(room_id)) {
            self.add(Key::Signals(room_id), Topic::Signals(room_id)).await;
        }
    }

    pub fn unfollow(&mut self, room_id: Uuid) {
        for key in [Key::Room(room_id), Key::Signals(room_id)] {
            self.streams.remove(&key);
            self.guards.remove(&key);
        }
    }

    pub fn rooms(&self) -> Vec<Uuid> {
        let room = |key: &Key| match key {
            Key::Room(room_id) => Some(*room_id),
            Key::User | Key::Signals(_) => None,
        };
        self.guards.keys().filter_map(room).collect()
    }

    async fn add(&mut self, key: Key, topic: Topic) {
        let subscription = self.bus.subscribe(topic).await;
        self.streams.insert(key, BroadcastStream::new(subscription.receiver));
        self.guards.insert(key, subscription.guard);
    }

    /// Yields a `Resync` after a backoff: the caller's database read failed, and what it was
    /// to deliver must be read again. Events keep arriving meanwhile. The backoff grows while
    /// retries keep being asked for, and starts short again after a quiet resync.
    pub fn resync_later(&mut self) {
        if self.retry.is_none() {
            self.retry = Some(Box::pin(tokio::time::sleep(self.backoff.next_delay())));
        }
    }

    pub async fn next(&mut self) -> Option<Watched> {
        let (key, envelope) = match self.backlog.pop_front() {
            Some(event) => event,
            None => {
                let retry = async {
                    match self.retry.as_mut() {
                        Some(sleep) => sleep.await,
                        None => std::future::pending().await,
                    }
                };
                let item = tokio::select! {
                    // Both are cancel-safe: the sleep is kept, and StreamMap loses no item.
                    () = retry => {
                        self.retry = None;
                        return Some(Watched::Resync);
                    }
                    item = self.streams.next() => item?,
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
                        return Some(Watched::Resync);
                    }
                }
            }
        };
        if self.retry.is_none() {
            // The last resync went through: the next failure starts with a short delay again.
            self.backoff = Backoff::default();
        }
        let room_id = match key {
            Key::Room(room_id) | Key::Signals(room_id) => room_id,
            Key::User => {
                if let Event::MembershipChanged { room_id, change, .. } = &envelope.event {
                    if !change.is_member() {
                        self.unfollow(*room_id);
                    } else if self.scope == Scope::AllRooms {
                        self.follow(*room_id).await;
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
        while let Some(Some((key, item))) = self.streams.next().now_or_never() {
            if let Ok(BusItem::Event(envelope)) = item {
                self.backlog.push_back((key, envelope));
            }
        }
    }
}

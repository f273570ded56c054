//! `Watcher`: the bus topics one subscription follows — the viewer's user topic plus the room
//! topics in scope — merged into one stream. It follows rooms the viewer joins and drops rooms
//! the viewer leaves or is removed from, as soon as the membership event arrives.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_stream::StreamExt;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use super::hub::{BusItem, TopicGuard};
use super::{Envelope, Event, EventBus, Topic};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every room the viewer is a member of, now or later.
    AllRooms,
    /// One room.
    Room(Uuid),
}

/// What a watcher yields.
pub enum Watched {
    Room(Uuid, Arc<Envelope>),
    User(Arc<Envelope>),
    /// Events may have been missed: reread state from the database.
    Resync,
}

/// `None` is the viewer's user topic; `Some(room)` a room topic.
type Key = Option<Uuid>;

pub struct Watcher {
    bus: EventBus,
    scope: Scope,
    streams: StreamMap<Key, BroadcastStream<BusItem>>,
    guards: HashMap<Key, TopicGuard>,
}

impl Watcher {
    /// Subscribes the user topic, then the rooms: once this returns, nothing published
    /// afterwards is missed, so callers read the database after starting a watcher.
    pub async fn start(bus: &EventBus, viewer_id: Uuid, scope: Scope, rooms: Vec<Uuid>) -> Self {
        let mut watcher = Self { bus: bus.clone(), scope, streams: StreamMap::new(), guards: HashMap::new() };
        watcher.add(None, Topic::User(viewer_id)).await;
        for room_id in rooms {
            watcher.follow(room_id).await;
        }
        watcher
    }

    pub async fn follow(&mut self, room_id: Uuid) {
        if !self.guards.contains_key(&Some(room_id)) {
            self.add(Some(room_id), Topic::Room(room_id)).await;
        }
    }

    pub fn unfollow(&mut self, room_id: Uuid) {
        self.streams.remove(&Some(room_id));
        self.guards.remove(&Some(room_id));
    }

    pub fn rooms(&self) -> Vec<Uuid> {
        self.guards.keys().filter_map(|k| *k).collect()
    }

    async fn add(&mut self, key: Key, topic: Topic) {
        let subscription = self.bus.subscribe(topic).await;
        self.streams.insert(key, BroadcastStream::new(subscription.receiver));
        self.guards.insert(key, subscription.guard);
    }

    pub async fn next(&mut self) -> Option<Watched> {
        let (key, item) = self.streams.next().await?;
        let envelope = match item {
            Ok(BusItem::Event(envelope)) => envelope,
            // Lagged behind the topic's buffer, or the bus reconnected.
            Ok(BusItem::Resync) | Err(_) => return Some(Watched::Resync),
        };
        let Some(room_id) = key else {
            if let Event::MembershipChanged { room_id, change, .. } = &envelope.event {
                if !change.is_member() {
                    self.unfollow(*room_id);
                } else if self.scope == Scope::AllRooms {
                    self.follow(*room_id).await;
                }
            }
            return Some(Watched::User(envelope));
        };
        Some(Watched::Room(room_id, envelope))
    }
}

//! The event bus: how a change made on one instance reaches subscribers on every instance.
//!
//! Events are published once per room (`Topic::Room`) or once per user for user-specific
//! changes (`Topic::User`), never once per member. Each instance fans events out locally
//! through `hub::Hub` (one `tokio::sync::broadcast` per topic, created on first local need).
//! Two transports: in-process (`memory`, one instance) and Redis pub/sub (`redis`, many).
//!
//! Architecture invariant: only this module talks to Redis (`rate_limit` runs its script
//! through `RedisLink`). The bus is at-most-once and only
//! a hint: the database is the source of truth, events carry seqs, and subscribers recover
//! missed events from the database when told to `Resync`: after their own instance's
//! reconnect, or after another instance lost publishes and says so (`redis.rs`).

mod event;
mod hub;
mod link;
mod notice;
mod redis;
mod reread;
mod retry;
mod watcher;

pub use event::{
    AttachmentPayload, ConversationChangePayload, ConversationPayload, Envelope, Event, MembershipChange,
    MessagePayload, ReminderPayload, RoomChange, RoomPayload, Topic, UserPayload,
};
pub use hub::{BusItem, LostAfter, TopicGuard, TopicStream, TopicSubscription};
pub use link::RedisLink;
pub use reread::{REREAD_OVERLAP, RereadWindow};
pub use retry::Retry;
pub use watcher::{MembershipCheck, Scope, Watched, Watcher};

use std::sync::Arc;

use tokio::sync::watch;
use uuid::Uuid;

use hub::Hub;

#[derive(Clone)]
pub struct EventBus {
    hub: Arc<Hub>,
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    /// Single instance: publishing is local delivery.
    Memory,
    Redis(Box<redis::RedisTransport>),
}

impl EventBus {
    pub fn in_process() -> Self {
        Self { hub: Arc::new(Hub::new(Uuid::now_v7(), None)), transport: Transport::Memory }
    }

    /// Connects to Redis and starts the instance's subscriber task; every key and channel is
    /// named in `namespace`.
    pub async fn redis(url: &str, namespace: &str, shutdown: watch::Receiver<bool>) -> anyhow::Result<Self> {
        let instance_id = Uuid::now_v7();
        let (transport, commands) = redis::RedisTransport::connect(url, namespace, instance_id).await?;
        let hub = Arc::new(Hub::new(instance_id, Some(commands.sender())));
        redis::spawn_subscriber(&transport, hub.clone(), commands, shutdown);
        Ok(Self { hub, transport: Transport::Redis(Box::new(transport)) })
    }

    pub fn instance_id(&self) -> Uuid {
        self.hub.instance_id()
    }

    /// Publishes after the caller's transaction committed. A failed publish is logged, not
    /// returned: the change is stored, and subscribers recover it by seq.
    pub async fn publish(&self, topic: Topic, event: Event) {
        let envelope = Arc::new(Envelope::new(self.instance_id(), event));
        metrics::counter!("parley_bus_published_total").increment(1);
        self.hub.deliver(&topic, envelope.clone());
        if let Transport::Redis(redis) = &self.transport {
            redis.publish(&topic, &envelope).await;
        }
    }

    /// Subscribes to a topic; when this returns, events published from now on arrive.
    pub async fn subscribe(&self, topic: Topic) -> TopicSubscription {
        self.hub.subscribe(topic).await
    }

    /// True when the transport is reachable (for `/readyz`).
    pub async fn is_ready(&self) -> bool {
        match &self.transport {
            Transport::Memory => true,
            Transport::Redis(redis) => redis.link().ping().await,
        }
    }

    /// The command connection to Redis, for the cluster's send rate limit.
    pub fn redis_link(&self) -> Option<RedisLink> {
        match &self.transport {
            Transport::Memory => None,
            Transport::Redis(redis) => Some(redis.link().clone()),
        }
    }
}

//! The Redis pub/sub transport: one publishing connection (a `ConnectionManager`, which
//! reconnects by itself) and one subscriber connection per instance, owned by a task that
//! follows the topics the hub asks for.
//!
//! Redis pub/sub is at-most-once: whatever is published while the subscriber connection is
//! down is lost. So after every reconnect the task resubscribes all live topics and tells
//! every local subscriber to `Resync` from the database.
//!
//! A send must not wait for a Redis that is down: after one failed publish the transport
//! knows the link is down, later publishes return at once (counted, logged once per outage),
//! and a probe task pings Redis until it answers again. Subscribers on other instances
//! recover what was not published by seq, on their next event or resync.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use tokio::sync::{mpsc, watch};

use super::event::{ENVELOPE_VERSION, Envelope, Topic};
use super::hub::{Command, Hub};

/// Reconnect delays start here and double up to `MAX_BACKOFF`, so recovery after a short
/// outage stays short.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a Redis command may take before the connection counts as dead.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle subscriber connection proves it is alive (a half-open TCP connection
/// would otherwise look like a quiet one forever).
const PING_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct RedisTransport {
    client: redis::Client,
    publisher: ConnectionManager,
    /// False from a failed publish until the probe reaches Redis again.
    publisher_up: Arc<AtomicBool>,
}

/// The receiving end of the hub's commands, handed to the subscriber task.
pub struct Commands {
    sender: mpsc::UnboundedSender<Command>,
    receiver: mpsc::UnboundedReceiver<Command>,
}

impl Commands {
    pub fn sender(&self) -> mpsc::UnboundedSender<Command> {
        self.sender.clone()
    }
}

impl RedisTransport {
    pub async fn connect(url: &str) -> anyhow::Result<(Self, Commands)> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        // Fail fast while Redis is down: the message is stored, subscribers recover by seq,
        // and a mutation should not wait seconds for an announcement.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_connection_timeout(Some(Duration::from_millis(500)));
        let publisher = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect: {e}"))?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let publisher_up = Arc::new(AtomicBool::new(true));
        metrics::gauge!("parley_bus_publisher_up").set(1.0);
        Ok((Self { client, publisher, publisher_up }, Commands { sender, receiver }))
    }

    pub fn client(&self) -> redis::Client {
        self.client.clone()
    }

    pub async fn publish(&self, topic: &Topic, envelope: &Envelope) {
        if !self.publisher_up.load(Ordering::Acquire) {
            metrics::counter!("parley_bus_publish_skipped_total").increment(1);
            return;
        }
        let payload = match serde_json::to_vec(envelope) {
            Ok(payload) => payload,
            Err(err) => return tracing::error!(%err, "cannot encode bus event"),
        };
        let mut conn = self.publisher.clone();
        let publish = conn.publish::<_, _, i64>(topic.channel_name(), payload);
        let error = match tokio::time::timeout(COMMAND_TIMEOUT, publish).await {
            Ok(Ok(_)) => return,
            Ok(Err(err)) => err.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        metrics::counter!("parley_bus_publish_errors_total").increment(1);
        // Concurrent sends may all fail here; only the first to notice starts the probe.
        if self.publisher_up.swap(false, Ordering::AcqRel) {
            metrics::gauge!("parley_bus_publisher_up").set(0.0);
            tracing::warn!(
                error,
                "bus publish failed; publishing paused until Redis answers, subscribers recover by seq"
            );
            tokio::spawn(self.clone().probe_until_up());
        }
    }

    /// Pings Redis (with backoff) until it answers, then lets publishing resume.
    async fn probe_until_up(self) {
        let mut backoff = Backoff::default();
        loop {
            tokio::time::sleep(backoff.next_delay()).await;
            if self.ping().await {
                self.publisher_up.store(true, Ordering::Release);
                metrics::gauge!("parley_bus_publisher_up").set(1.0);
                return tracing::info!("bus publisher reaches Redis again; publishing resumed");
            }
        }
    }

    pub async fn ping(&self) -> bool {
        let mut conn = self.publisher.clone();
        let ping = redis::cmd("PING");
        let pong = ping.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(COMMAND_TIMEOUT, pong).await, Ok(Ok(_)))
    }
}

pub fn spawn_subscriber(
    client: redis::Client,
    hub: Arc<Hub>,
    commands: Commands,
    shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(subscriber_loop(client, hub, commands.receiver, shutdown));
}

/// Connect, follow topics, and on loss reconnect with exponential backoff.
async fn subscriber_loop(
    client: redis::Client,
    hub: Arc<Hub>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    let mut connected_before = false;
    loop {
        match tokio::time::timeout(COMMAND_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => {
                backoff = Backoff::default();
                let (mut sink, mut stream) = pubsub.split();
                let mut followed = HashSet::new();
                let mut ok = true;
                for topic in hub.active_topics() {
                    ok &= subscribe(&mut sink, &topic).await;
                    followed.insert(topic);
                }
                if connected_before {
                    metrics::counter!("parley_bus_reconnects_total").increment(1);
                    tracing::info!("bus reconnected; subscribers resync from the database");
                }
                // Also on the first connect: subscribers told `ready` while Redis was not yet
                // reachable may have missed events.
                hub.resync_all();
                connected_before = true;
                let mut ping = tokio::time::interval(PING_EVERY);
                while ok {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = ping.tick() => {
                            let pong = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                            ok = matches!(pong, Ok(Ok(_)));
                        }
                        message = stream.next() => match message {
                            Some(message) => dispatch(&hub, &message),
                            None => break,
                        },
                        command = commands.recv() => match command {
                            None => return,
                            Some(Command::Subscribe { topic, ready }) => {
                                ok = followed.contains(&topic) || subscribe(&mut sink, &topic).await;
                                followed.insert(topic);
                                let _ = ready.send(true);
                            }
                            Some(Command::Unsubscribe { topic }) => {
                                // The topic may have been taken again since; keep it then.
                                if !hub.is_active(&topic) {
                                    followed.remove(&topic);
                                    let done = tokio::time::timeout(
                                        COMMAND_TIMEOUT,
                                        sink.unsubscribe(topic.channel_name()),
                                    );
                                    ok = matches!(done.await, Ok(Ok(())));
                                }
                            }
                        },
                    }
                }
                tracing::warn!("bus subscriber connection lost");
            }
            Ok(Err(err)) => tracing::warn!(%err, "bus subscriber cannot connect"),
            Err(_) => tracing::warn!("bus subscriber connect timed out"),
        }
        // While disconnected, answer subscribers at once: they are resynced on reconnect.
        let deadline = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = &mut deadline => break,
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Subscribe { ready, .. }) => { let _ = ready.send(true); }
                    Some(Command::Unsubscribe { .. }) => {}
                },
            }
        }
    }
}

/// Reconnect delays: `MIN_BACKOFF` doubling to `MAX_BACKOFF`, each shortened by a random
/// part of up to half, so instances that lost Redis together do not retry in lockstep.
struct Backoff {
    base: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: MIN_BACKOFF }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self.base.mul_f64(rand::random_range(0.5..=1.0));
        self.base = (self.base * 2).min(MAX_BACKOFF);
        delay
    }
}

async fn subscribe(sink: &mut PubSubSink, topic: &Topic) -> bool {
    let done = tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(topic.channel_name()));
    matches!(done.await, Ok(Ok(())))
}

fn dispatch(hub: &Hub, message: &redis::Msg) {
    let Some(topic) = Topic::from_channel_name(message.get_channel_name()) else { return };
    let envelope: Envelope = match serde_json::from_slice(message.get_payload_bytes()) {
        Ok(envelope) => envelope,
        Err(err) => return tracing::warn!(%err, "undecodable bus event dropped"),
    };
    metrics::counter!("parley_bus_received_total").increment(1);
    // Our own events were delivered locally at publish time.
    if envelope.v == ENVELOPE_VERSION && envelope.origin != hub.instance_id() {
        hub.deliver(&topic, Arc::new(envelope));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_to_one_second_at_most_with_jitter() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= MIN_BACKOFF / 2 && delays[0] <= MIN_BACKOFF);
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF), "{delays:?}");
        assert!(delays[11] >= MAX_BACKOFF / 2, "the cap is reached: {delays:?}");
    }
}

//! The Redis pub/sub transport: one publishing connection (a `ConnectionManager`, which
//! reconnects by itself) and one subscriber connection per instance, owned by a task that
//! follows the topics the hub asks for.
//!
//! Redis pub/sub is at-most-once: whatever is published while the subscriber connection is
//! down is lost. So after every reconnect the task resubscribes all live topics and tells
//! every local subscriber to `Resync` from the database, with the moment the link was last
//! known to work (the last ping sent that Redis answered): nothing published before it was
//! lost, so feeds that reread by time reread no further back than that.
//!
//! Publishes go through the instance's `RedisLink`, which returns at once while Redis is
//! known to be down. What this instance could not publish, no other instance knows it
//! missed: its link may never have dropped. So the first lost publish of an outage starts a
//! task that, once Redis answers, publishes this instance's id on `{ns}:resync`, which
//! every instance follows, with the moment its earliest unreported lost publish began; each
//! other instance then resyncs its subscribers, as after its own reconnect (half a second
//! later, so that the notices of several instances back from one outage share a resync).
//! Usually one notice per outage, however many publishes it lost; at most about one a second
//! from a flapping link. An instance reconnecting meanwhile finds the notice in a log
//! (`notice.rs`). Instances of a release before the notice neither send nor follow it;
//! a notice without its moment (from the release that introduced the notice) resyncs as one
//! whose loss may have begun at any time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{FutureExt, StreamExt};
use redis::AsyncCommands;
use redis::aio::PubSubSink;
use tokio::sync::{mpsc, watch};

use super::event::{ENVELOPE_VERSION, Envelope, Topic};
use super::hub::{Command, Hub, LostAfter};
use super::link::{Backoff, RedisLink};
use super::notice::{self, Notice};

/// How long a Redis command may take before the connection counts as dead.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle subscriber connection proves it is alive (a half-open TCP connection
/// would otherwise look like a quiet one forever).
const PING_EVERY: Duration = Duration::from_secs(10);
/// How long after a notice the subscribers resync: notices that come meanwhile share it.
const RESYNC_PAUSE: Duration = Duration::from_millis(500);
/// How long after its first lost publish an instance sends its notice, at the earliest: a
/// flapping link makes at most one notice a second.
const NOTICE_DELAY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct RedisTransport {
    client: redis::Client,
    link: RedisLink,
    instance_id: uuid::Uuid,
    /// From a lost publish until a resync notice goes out for it: the moment the earliest
    /// such publish began.
    lost: Arc<Mutex<Option<DateTime<Utc>>>>,
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
    pub async fn connect(
        url: &str,
        namespace: &str,
        instance_id: uuid::Uuid,
    ) -> anyhow::Result<(Self, Commands)> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let link = RedisLink::connect(client.clone(), namespace).await?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let lost = Arc::new(Mutex::new(None));
        Ok((Self { client, link, instance_id, lost }, Commands { sender, receiver }))
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// Publishes, or counts the event as not published (Redis down or failing) and has the
    /// other instances told to resync once Redis is back.
    pub async fn publish(&self, topic: &Topic, envelope: &Envelope) {
        let payload = match serde_json::to_vec(envelope) {
            Ok(payload) => payload,
            Err(err) => return tracing::error!(%err, "cannot encode bus event"),
        };
        // The change was stamped before its first publish began, and a change's publishes go
        // out one after another, an earlier one taking up to `COMMAND_TIMEOUT`: a reread from
        // here (less `REREAD_OVERLAP`, for a slow commit) finds it.
        let began = Utc::now() - COMMAND_TIMEOUT;
        if !self.send(topic.channel_name(self.link.namespace()), payload).await {
            metrics::counter!("parley_bus_publish_errors_total").increment(1);
            if self.note_lost(began) {
                tokio::spawn(self.clone().tell_others_to_resync());
            }
        }
    }

    /// Adds a lost publish that began at `began` to the next notice; true when no notice was
    /// pending, and one must be started.
    fn note_lost(&self, began: DateTime<Utc>) -> bool {
        let mut lost = self.lost.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = lost.is_none();
        *lost = Some(lost.map_or(began, |earliest| earliest.min(began)));
        first
    }

    async fn send(&self, channel: String, payload: Vec<u8>) -> bool {
        let publish = move |mut conn: redis::aio::ConnectionManager| async move {
            conn.publish::<_, _, i64>(channel, payload).await
        };
        self.link.run(COMMAND_TIMEOUT, publish).await.is_some()
    }

    /// Publishes the resync notice once Redis takes it, trying again with backoff.
    async fn tell_others_to_resync(self) {
        let mut backoff = Backoff::default();
        tokio::time::sleep(NOTICE_DELAY).await;
        loop {
            // Taken before the notice: a publish lost after it starts another notice.
            let taken = self.lost.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
            let Some(began) = taken else { return };
            if notice::send(&self.link, COMMAND_TIMEOUT, Notice::text(self.instance_id, began)).await {
                metrics::counter!("parley_bus_resync_notices_total").increment(1);
                return tracing::info!("told the other instances to resync: this one lost publishes");
            }
            // Put back; if a publish lost meanwhile started a notice of its own, that one
            // carries this one's moment too.
            if !self.note_lost(began) {
                return;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

pub fn spawn_subscriber(
    transport: &RedisTransport,
    hub: Arc<Hub>,
    commands: Commands,
    shutdown: watch::Receiver<bool>,
) {
    let channels = Channels {
        namespace: transport.link.namespace().to_owned(),
        // Outside `Topic`: every instance follows it for its whole life, whatever its
        // subscribers.
        resync: transport.link.key(notice::CHANNEL),
        resync_log: transport.link.key(notice::LOG),
    };
    tokio::spawn(subscriber_loop(transport.client.clone(), channels, hub, commands.receiver, shutdown));
}

/// The names the subscriber follows and reads, in the deployment's namespace.
struct Channels {
    namespace: String,
    resync: String,
    resync_log: String,
}

/// Connect, follow topics, and on loss reconnect with exponential backoff.
async fn subscriber_loop(
    client: redis::Client,
    channels: Channels,
    hub: Arc<Hub>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut shutdown: watch::Receiver<bool>,
) {
    let namespace = channels.namespace.as_str();
    let mut backoff = Backoff::default();
    // The last moment the link was known to work: what was published before it reached this
    // instance. None before the first connect (subscribers then reread from their start).
    let mut worked_at: Option<DateTime<Utc>> = None;
    // When to resync for other instances' notices, and from when: they come spread over a
    // second or two after a Redis outage, and one resync answers them all. Kept across a
    // reconnect, whose resync then answers them.
    let mut notices: Option<(tokio::time::Instant, LostAfter)> = None;
    // Since when notices may have gone unheard, while the log has not been read: kept
    // across reconnects until one subscribes everything and reads it, or fails to.
    let mut unheard_since: Option<DateTime<Utc>> = None;
    loop {
        match tokio::time::timeout(COMMAND_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => {
                backoff = Backoff::default();
                let (mut sink, mut stream) = pubsub.split();
                let mut followed = HashSet::new();
                // Taken before the subscribes: anything published after it reaches this
                // instance, once subscribed, or is reread in the resync below.
                let subscribing_at = Utc::now();
                let follow = tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(&channels.resync));
                let mut ok = matches!(follow.await, Ok(Ok(())));
                for topic in hub.active_topics() {
                    ok = ok && subscribe(&mut sink, namespace, &topic).await;
                    followed.insert(topic);
                }
                if worked_at.is_some() {
                    metrics::counter!("parley_bus_reconnects_total").increment(1);
                    tracing::info!("bus reconnected; subscribers resync from the database");
                }
                // Notices sent while this connection was down reached other instances only.
                unheard_since = unheard_since.or(worked_at);
                let missed = match unheard_since.take_if(|_| ok) {
                    Some(since) => {
                        notice::missed_since(&client, &channels.resync_log, hub.instance_id(), since).await
                    }
                    None => None,
                };
                // Also on the first connect: subscribers told `ready` while Redis was not yet
                // reachable may have missed events.
                let noticed =
                    [notices.take().map(|(_, lost_after)| lost_after), missed].into_iter().flatten().min();
                hub.resync_all(noticed.map_or(worked_at, |lost_after| lost_after.min(worked_at)));
                worked_at = Some(subscribing_at);
                let mut ping = tokio::time::interval(PING_EVERY);
                while ok {
                    let resync_at = notices.map(|(at, _)| at);
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        () = tokio::time::sleep_until(resync_at.unwrap_or_else(tokio::time::Instant::now)),
                            if resync_at.is_some() =>
                        {
                            let lost_after = notices.take().and_then(|(_, lost_after)| lost_after);
                            metrics::counter!("parley_bus_notice_resyncs_total").increment(1);
                            tracing::info!("another instance lost publishes; subscribers resync from the database");
                            hub.resync_all(lost_after);
                        }
                        _ = ping.tick() => {
                            let sent_at = Utc::now();
                            let pong = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                            ok = matches!(pong, Ok(Ok(_)));
                            // What was published before the ping came before its answer.
                            if ok {
                                worked_at = Some(sent_at);
                            }
                        }
                        message = stream.next() => match message {
                            Some(message) => dispatch(&hub, &channels, &message, &mut notices),
                            None => break,
                        },
                        command = commands.recv() => match command {
                            None => return,
                            Some(Command::Subscribe { topic, ready }) => {
                                ok = followed.contains(&topic) || subscribe(&mut sink, namespace, &topic).await;
                                followed.insert(topic);
                                let _ = ready.send(true);
                            }
                            Some(Command::Unsubscribe { topic }) => {
                                // The topic may have been taken again since; keep it then.
                                if !hub.is_active(&topic) {
                                    followed.remove(&topic);
                                    let done = tokio::time::timeout(
                                        COMMAND_TIMEOUT,
                                        sink.unsubscribe(topic.channel_name(namespace)),
                                    );
                                    ok = matches!(done.await, Ok(Ok(())));
                                }
                            }
                        },
                    }
                }
                // What came before the last answered ping counts as heard (`worked_at`):
                // hand on what is still buffered.
                while let Some(Some(message)) = stream.next().now_or_never() {
                    dispatch(&hub, &channels, &message, &mut notices);
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

async fn subscribe(sink: &mut PubSubSink, namespace: &str, topic: &Topic) -> bool {
    let done = tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(topic.channel_name(namespace)));
    matches!(done.await, Ok(Ok(())))
}

/// Hands an event to local subscribers, or schedules the resync another instance asked for.
fn dispatch(
    hub: &Hub,
    channels: &Channels,
    message: &redis::Msg,
    notices: &mut Option<(tokio::time::Instant, LostAfter)>,
) {
    if message.get_channel_name() == channels.resync {
        // Our subscribers may have missed what that instance could not publish. Later than
        // the notice, never earlier, so answering after a pause loses nothing.
        let Notice { origin, lost_after } = Notice::parse(message.get_payload_bytes());
        if origin != Some(hub.instance_id()) {
            let resync_at = tokio::time::Instant::now() + RESYNC_PAUSE;
            // `None` (unknown) is the earliest: `Option`'s order puts it first.
            *notices =
                Some(notices.map_or((resync_at, lost_after), |(at, earlier)| (at, earlier.min(lost_after))));
        }
        return;
    }
    let Some(topic) = Topic::from_channel_name(message.get_channel_name(), &channels.namespace) else {
        return;
    };
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

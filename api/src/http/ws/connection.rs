//! One WebSocket connection: the protocol state machine and its subscriptions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};
use uuid::Uuid;

use super::protocol::{ClientMessage, Protocol, close, init_token};
use crate::auth::Viewer;
use crate::error::{ErrorCode, graphql_error};
use crate::graphql::frames::{FrameSlot, ShareKey};
use crate::http::HttpState;
use crate::http::graphql::with_viewer;
use crate::presence::service::SocketPresence;

/// Frames waiting to be written; a subscription whose client reads too slowly waits here
/// (and its feed, no longer read, falls behind and catches up from the database).
const OUTBOX: usize = 256;
/// Frames written before one flush: a burst becomes few large writes, not one per frame.
const WRITE_BATCH: usize = 64;

pub struct Connection {
    /// Names the connection in logs (its upgrade request's span has ended by then).
    id: Uuid,
    state: Arc<HttpState>,
    protocol: Protocol,
    viewer: Option<Viewer>,
    /// Counts the viewer as connected (presence) while the socket lives.
    presence: Option<SocketPresence>,
    init_received: bool,
    /// Active subscriptions by client id, with the generation that started each, so a late
    /// "finished" report of an old subscription cannot remove a newer one with the same id.
    subscriptions: HashMap<String, (u64, JoinHandle<()>)>,
    generation: u64,
    outbox: mpsc::Sender<String>,
    outbox_rx: Option<mpsc::Receiver<String>>,
    /// Subscription tasks report their id and generation here when their stream ends.
    finished: mpsc::UnboundedSender<(String, u64)>,
    finished_rx: Option<mpsc::UnboundedReceiver<(String, u64)>>,
}

/// Why the loop stopped: a close code and reason, or the peer went away.
type Closing = Option<(u16, String)>;

impl Connection {
    pub fn new(state: Arc<HttpState>, protocol: Protocol) -> Self {
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
        let (finished, finished_rx) = mpsc::unbounded_channel();
        Self {
            id: Uuid::now_v7(),
            state,
            protocol,
            viewer: None,
            presence: None,
            init_received: false,
            subscriptions: HashMap::new(),
            generation: 0,
            outbox,
            outbox_rx: Some(outbox_rx),
            finished,
            finished_rx: Some(finished_rx),
        }
    }

    pub async fn run(mut self, socket: WebSocket) {
        metrics::gauge!("parley_ws_connections").increment(1.0);
        let (mut sink, mut stream) = socket.split();
        let (Some(mut outbox), Some(mut finished)) = (self.outbox_rx.take(), self.finished_rx.take()) else {
            return;
        };
        let limits = self.state.app.limits.clone();
        let init_deadline = Instant::now() + limits.ws_init_timeout();
        let period = Duration::from_secs(limits.ws_keepalive_secs.max(1));
        let mut keepalive = interval_at(Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut shutdown = self.state.shutdown.clone();
        // Followed from the start, so a deactivation racing connection_init is still heard.
        let mut user_changes = self.state.app.directory.user_changes();

        let closing: Closing = loop {
            tokio::select! {
                _ = sleep_until(init_deadline), if self.viewer.is_none() => {
                    break Some((close::INIT_TIMEOUT, "Connection initialisation timeout".into()));
                }
                _ = shutdown.changed() => break Some((close::GOING_AWAY, "server shutting down".into())),
                _ = keepalive.tick(), if self.viewer.is_some() => {
                    if send(&mut sink, &self.protocol.keepalive()).await.is_err() { break None; }
                }
                () = viewer_changed(&mut user_changes, self.viewer.as_ref().map(|v| v.id)) => {
                    if let Some(closing) = self.recheck_viewer().await { break closing; }
                }
                Some(frame) = outbox.recv() => {
                    if write_batch(&mut sink, frame, &mut outbox).await.is_err() { break None; }
                }
                Some((id, generation)) = finished.recv() => {
                    if self.subscriptions.get(&id).is_some_and(|(g, _)| *g == generation) {
                        self.subscriptions.remove(&id);
                    }
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => match self.handle(text.as_str()).await {
                        Ok(replies) => {
                            let mut failed = false;
                            for reply in replies {
                                failed |= send(&mut sink, &reply).await.is_err();
                            }
                            if failed { break None; }
                        }
                        Err(closing) => break closing,
                    },
                    Some(Ok(Message::Binary(_))) => break Some((close::BAD_REQUEST, "binary frames are not supported".into())),
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Ok(_)) => {} // WebSocket-level ping/pong: answered by the library.
                    Some(Err(err)) => {
                        let too_big = err.to_string().to_lowercase().contains("too");
                        break too_big.then(|| (close::TOO_BIG, "frame too large".into()));
                    }
                },
            }
        };

        for (_, (_, task)) in self.subscriptions.drain() {
            task.abort();
        }
        if let Some((code, reason)) = closing {
            let frame = CloseFrame { code, reason: close_reason(reason).into() };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        // Flushes the close handshake (ours, or the reply to the client's).
        let _ = sink.close().await;
        metrics::gauge!("parley_ws_connections").decrement(1.0);
    }

    /// After the viewer changed: the close to perform if they may no longer be connected. A
    /// database that cannot answer keeps the connection (the next change rechecks).
    async fn recheck_viewer(&self) -> Option<Closing> {
        let viewer = self.viewer.as_ref()?;
        let app = &self.state.app;
        match app.directory.user(&app.store, viewer.id).await {
            Ok(Some(user)) if user.deactivated_at.is_none() => None,
            Ok(_) => Some(Some((close::FORBIDDEN, "Forbidden: the account was deactivated".into()))),
            Err(error) => {
                tracing::warn!(connection = %self.id, %error, "could not recheck a changed viewer");
                None
            }
        }
    }

    /// Handles one client message; replies to send, or the close to perform.
    async fn handle(&mut self, text: &str) -> Result<Vec<String>, Closing> {
        let message: ClientMessage = serde_json::from_str(text)
            .map_err(|err| Some((close::BAD_REQUEST, format!("invalid message: {err}"))))?;
        match message {
            ClientMessage::ConnectionInit { payload } => self.init(payload.as_ref()).await,
            ClientMessage::Ping { payload } => {
                let mut pong = serde_json::json!({ "type": "pong" });
                if let Some(payload) = payload {
                    pong["payload"] = payload;
                }
                Ok(vec![pong.to_string()])
            }
            ClientMessage::Pong {} => Ok(vec![]),
            ClientMessage::Subscribe { id, payload } => self.subscribe(id, *payload),
            ClientMessage::Complete { id } => {
                if let Some((_, task)) = self.subscriptions.remove(&id) {
                    task.abort();
                }
                Ok(vec![])
            }
            // The legacy client is leaving: a normal closure.
            ClientMessage::ConnectionTerminate {} => Err(Some((close::NORMAL, String::new()))),
        }
    }

    async fn init(&mut self, payload: Option<&Value>) -> Result<Vec<String>, Closing> {
        if self.init_received {
            return Err(Some((close::TOO_MANY_INITS, "Too many initialisation requests".into())));
        }
        self.init_received = true;
        let app = &self.state.app;
        let Some(token) = init_token(payload) else {
            return Err(Some((
                close::FORBIDDEN,
                "Forbidden: connection_init needs an Authorization token".into(),
            )));
        };
        match app.auth.authenticate(&app.store, &app.directory, &token).await {
            Ok(viewer) => {
                self.presence = Some(SocketPresence::hold(app, viewer.id).await);
                self.viewer = Some(viewer);
                Ok(vec![serde_json::json!({ "type": "connection_ack" }).to_string()])
            }
            Err(err) if err.code() == ErrorCode::Unauthenticated => {
                Err(Some((close::FORBIDDEN, "Forbidden: invalid token".into())))
            }
            // A dependency failed (the database, say): the token may be fine, so this must
            // not read as "signed out". 4500 tells the client to retry.
            Err(err) => {
                tracing::error!(connection = %self.id, error = %err, "connection_init failed");
                Err(Some((close::INTERNAL_ERROR, "Internal server error".into())))
            }
        }
    }

    fn subscribe(&mut self, id: String, request: async_graphql::Request) -> Result<Vec<String>, Closing> {
        let Some(viewer) = self.viewer.clone() else {
            return Err(Some((close::UNAUTHORIZED, "Unauthorized".into())));
        };
        if self.subscriptions.get(&id).is_some_and(|(_, task)| !task.is_finished()) {
            return Err(Some((close::SUBSCRIBER_EXISTS, format!("Subscriber for {id} already exists"))));
        }
        let max = self.state.app.limits.max_subscriptions;
        if self.subscriptions.len() >= max {
            let error =
                graphql_error(ErrorCode::RateLimited, format!("at most {max} subscriptions per connection"));
            return Ok(vec![self.protocol.error(&id, serde_json::json!([error]))]);
        }
        // Shared fan-out: subscriptions with the same share key reuse one frame per event.
        let share = ShareKey::new(viewer.org_id, viewer.id, &request);
        let slot = FrameSlot::default();
        let request = with_viewer(&self.state, request, viewer).data(share).data(slot.clone());
        self.generation += 1;
        let task = tokio::spawn(run_subscription(
            self.state.clone(),
            self.protocol,
            (id.clone(), self.generation),
            (request, slot),
            self.outbox.clone(),
            self.finished.clone(),
        ));
        self.subscriptions.insert(id, (self.generation, task));
        Ok(vec![])
    }
}

/// Streams one operation's results into the outbox. A first result with errors and no data
/// (invalid query, no access) is an `error` message; otherwise `next`s, then `complete`.
async fn run_subscription(
    state: Arc<HttpState>,
    protocol: Protocol,
    (id, generation): (String, u64),
    (request, slot): (async_graphql::Request, FrameSlot),
    outbox: mpsc::Sender<String>,
    finished: mpsc::UnboundedSender<(String, u64)>,
) {
    let _active = ActiveSubscription::new();
    let mut responses = state.schema.execute_stream(request);
    let mut first = true;
    while let Some(response) = responses.next().await {
        let failed = first && response.data == async_graphql::Value::Null && !response.errors.is_empty();
        let frame = if failed {
            let errors = serde_json::to_value(&response.errors).unwrap_or_default();
            protocol.error(&id, errors)
        } else if let Some(shared) = slot.take() {
            protocol.next(&id, &shared.payload(&response))
        } else {
            match serde_json::to_string(&response) {
                Ok(payload) => protocol.next(&id, &payload),
                Err(err) => {
                    tracing::error!(%err, "cannot encode a subscription result");
                    break;
                }
            }
        };
        if outbox.capacity() == 0 {
            // The client reads more slowly than its frames come: visible before it lags.
            metrics::counter!("parley_ws_outbox_full_total").increment(1);
        }
        if outbox.send(frame).await.is_err() || failed {
            let _ = finished.send((id, generation));
            return;
        }
        first = false;
    }
    let _ = outbox.send(protocol.complete(&id)).await;
    let _ = finished.send((id, generation));
}

/// A close frame's reason has at most 123 bytes; a longer one makes clients drop the frame.
fn close_reason(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let cut = (0..=MAX).rev().find(|i| reason.is_char_boundary(*i)).unwrap_or(0);
        reason.truncate(cut);
    }
    reason
}

/// Counts live subscriptions; dropped when the task ends or is aborted.
struct ActiveSubscription;

impl ActiveSubscription {
    fn new() -> Self {
        metrics::gauge!("parley_active_subscriptions").increment(1.0);
        Self
    }
}

impl Drop for ActiveSubscription {
    fn drop(&mut self) {
        metrics::gauge!("parley_active_subscriptions").decrement(1.0);
    }
}

/// Resolves when `viewer` was announced changed, or when this receiver fell behind and may
/// have missed it; never while there is no viewer yet.
async fn viewer_changed(changes: &mut broadcast::Receiver<Uuid>, viewer: Option<Uuid>) {
    let Some(viewer) = viewer else { return std::future::pending().await };
    loop {
        match changes.recv().await {
            Ok(id) if id == viewer => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

async fn send<S>(sink: &mut S, frame: &str) -> Result<(), axum::Error>
where
    S: SinkExt<Message, Error = axum::Error> + Unpin,
{
    sink.send(Message::Text(frame.into())).await
}

/// Writes `first` and whatever else is already waiting (up to `WRITE_BATCH`), then flushes once.
async fn write_batch<S>(
    sink: &mut S,
    first: String,
    outbox: &mut mpsc::Receiver<String>,
) -> Result<(), axum::Error>
where
    S: SinkExt<Message, Error = axum::Error> + Unpin,
{
    sink.feed(Message::Text(first.into())).await?;
    for _ in 1..WRITE_BATCH {
        match outbox.try_recv() {
            Ok(frame) => sink.feed(Message::Text(frame.into())).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}

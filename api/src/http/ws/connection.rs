//! One WebSocket connection: the protocol state machine and its subscriptions.
//!
//! The connection's task also drives its subscriptions' streams (a `StreamMap`), so an
//! event costs one wake-up per connection, frames go straight to the socket, and an idle
//! connection holds no task, channel or outbox per subscription.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::future::Fuse;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout};
use tokio_stream::StreamMap;
use uuid::Uuid;

use super::protocol::{ClientMessage, Closing, Protocol, close, init_token};
use super::subscription::{Frames, frames};
use super::viewer_checks::{RECHECK_RETRY, Recheck, expired, expiry, next_change, recheck_viewer};
use crate::auth::Viewer;
use crate::directory::UserWatch;
use crate::error::{ErrorCode, graphql_error};
use crate::graphql::live::FeedBudget;
use crate::http::{HttpState, json_values};
use crate::presence::service::SocketPresence;
use entity::enums::UserRole;

/// Frames written before one flush: a burst becomes few large writes, not one per frame.
const WRITE_BATCH: usize = 64;
/// The longest the closing handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

pub struct Connection {
    /// Names the connection in logs (its upgrade request's span has ended by then).
    id: Uuid,
    state: Arc<HttpState>,
    protocol: Protocol,
    viewer: Option<Viewer>,
    /// The last second (Unix time) in which the token of `connection_init` is accepted: the
    /// socket closes after it, as a request with that token would be refused.
    /// Four bytes, not eight: they make room for `feeds` in the connection task's future,
    /// whose every byte counts (BENCHMARKS.md: allocation size steps). Enough until 2106.
    accepted_until: u32,
    /// Set by `connection_init`, then moved into the loop's pending viewer-change future.
    viewer_watch: Option<UserWatch>,
    /// Counts the viewer as connected (presence) while the socket lives.
    presence: Option<SocketPresence>,
    init_received: bool,
    /// Active subscriptions by client id. An entry leaves when its last frame is taken, so
    /// the id is free again by the time the client reads `complete`.
    subscriptions: StreamMap<String, Frames>,
    /// The subscriptions' feeds, one per root field, within `PARLEY_MAX_SUBSCRIPTIONS`.
    feeds: FeedBudget,
}

impl Connection {
    pub fn new(state: Arc<HttpState>, protocol: Protocol) -> Self {
        Self {
            id: Uuid::now_v7(),
            state,
            protocol,
            viewer: None,
            accepted_until: 0,
            viewer_watch: None,
            presence: None,
            init_received: false,
            subscriptions: StreamMap::new(),
            feeds: FeedBudget::default(),
        }
    }

    pub async fn run(mut self, socket: WebSocket) {
        metrics::gauge!("parley_ws_connections").increment(1.0);
        let (mut sink, mut stream) = socket.split();
        // What lives across the loop's awaits is kept in every idle connection's task (1 816
        // bytes in a release build), so the keepalive's period is read back from its interval
        // rather than kept twice, and `Limits` is read when needed: 48 bytes more cost 1.5-2.5
        // KiB of RSS per connection in the bench (BENCHMARKS, 2026-12-07; likely an
        // allocation size step crossed).
        let limits = &self.state.app.limits;
        let (init_timeout, period) = (limits.ws_init_timeout(), limits.ws_keepalive());
        let mut keepalive = interval_at(Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // When the client was last heard from. One that sent nothing for `dead_peer_after` (a
        // phone that lost its network sends no FIN) is closed, so that its presence ends and
        // its subscriptions stop; a live one answers the WebSocket ping sent once it has been
        // quiet for a period, whatever its protocol.
        let mut heard = Instant::now();
        // The loop's waits on signals are futures made once, not per turn: a `changed()`
        // made per turn joins, and on drop leaves, the signal's waiter list for every frame
        // written (the shutdown signal's is shared by every connection).
        let mut shutdown = self.state.shutdown.clone();
        let shutting_down = async move {
            let _ = shutdown.changed().await;
        };
        tokio::pin!(shutting_down);
        // Wakes the connection when its viewer changes (renamed, role, deactivated); none
        // until `connection_init` made the viewer's watch.
        let viewer_changed = Fuse::terminated();
        tokio::pin!(viewer_changed);
        // One timer, set once, for the connection's deadlines: `connection_init` until a
        // viewer is known, then the token's expiry, and the recheck of a viewer announced
        // changed (at once, and again while the database cannot answer). A timer made afresh
        // in the loop would be built on every frame written, and two would both stay in every
        // idle connection's task.
        let deadline = sleep_until(Instant::now() + init_timeout);
        tokio::pin!(deadline);
        let mut recheck_due = false;

        let closing: Closing = loop {
            tokio::select! {
                () = &mut deadline => {
                    if self.viewer.is_none() {
                        break Some((close::INIT_TIMEOUT, "Connection initialisation timeout".into()));
                    }
                    if expired(self.accepted_until) {
                        break Some((close::FORBIDDEN, "Forbidden: the token expired".into()));
                    }
                    if !recheck_due {
                        deadline.as_mut().reset(expiry(self.accepted_until));
                    } else {
                        // The database work here and below (`connection_init`'s
                        // authentication) is boxed: inline, its large futures would stay
                        // allocated in every idle connection's task.
                        match Box::pin(recheck_viewer(&self.state, self.id, self.viewer.as_ref())).await {
                            Recheck::Keep => {
                                recheck_due = false;
                                deadline.as_mut().reset(expiry(self.accepted_until));
                            }
                            Recheck::Close(closing) => break closing,
                            Recheck::Failed => deadline.as_mut().reset(Instant::now() + RECHECK_RETRY),
                        }
                    }
                }
                () = &mut shutting_down => break Some((close::GOING_AWAY, "server shutting down".into())),
                _ = keepalive.tick(), if self.viewer.is_some() => {
                    if heard.elapsed() >= self.state.app.limits.dead_peer_after() {
                        metrics::counter!("parley_ws_unanswered_closed_total").increment(1);
                        break Some((close::GOING_AWAY, "no answer to pings".into()));
                    }
                    let ping = heard.elapsed() >= keepalive.period();
                    if send(&mut sink, &self.protocol.keepalive()).await.is_err() { break None; }
                    if ping && sink.send(Message::Ping(Default::default())).await.is_err() {
                        break None;
                    }
                }
                watch = &mut viewer_changed => {
                    viewer_changed.set(next_change(watch).fuse());
                    recheck_due = true;
                    deadline.as_mut().reset(Instant::now());
                }
                Some(first) = self.subscriptions.next(), if !self.subscriptions.is_empty() => {
                    let writing = Instant::now();
                    if self.write_frames(&mut sink, first).await.is_err() { break None; }
                    // A write that waited for the client to read, and went through: it was
                    // acknowledged, so the client lives, however slowly it reads. (A dead one
                    // fails the write after `dead_peer_after`: `TCP_USER_TIMEOUT`.)
                    if writing.elapsed() >= keepalive.period() {
                        heard = Instant::now();
                    }
                }
                frame = stream.next() => match frame.inspect(|_| heard = Instant::now()) {
                    Some(Ok(Message::Text(text))) => match Box::pin(self.handle(text.as_str())).await {
                        Ok(replies) => {
                            if let Some(watch) = self.viewer_watch.take() {
                                // `connection_init` succeeded: the timer now waits for the
                                // token's expiry.
                                viewer_changed.set(next_change(watch).fuse());
                                deadline.as_mut().reset(expiry(self.accepted_until));
                            }
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

        // Dropping the streams ends the subscriptions.
        self.subscriptions = StreamMap::new();
        // Flushes the close handshake (ours, or the reply to the client's), for a bounded
        // time: a dead peer's full send buffer would hold the task for as long as TCP
        // retransmits.
        let close = async {
            if let Some((code, reason)) = closing {
                let frame = CloseFrame { code, reason: close_reason(reason).into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
            }
            let _ = sink.close().await;
        };
        let _ = timeout(CLOSE_WAIT, close).await;
        metrics::gauge!("parley_ws_connections").decrement(1.0);
    }

    /// Handles one client message; replies to send, or the close to perform.
    async fn handle(&mut self, text: &str) -> Result<Vec<String>, Closing> {
        let max_values = json_values::allowed(self.state.app.limits.max_ws_frame_bytes);
        if json_values::count(text.as_bytes()) > max_values {
            let reason = format!("invalid message: more than {max_values} JSON values");
            return Err(Some((close::BAD_REQUEST, reason)));
        }
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
                self.subscriptions.remove(&id);
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
        let announced = app.directory.user_changes_announced();
        match app.auth.authenticate_until(&app.store, &app.directory, &token).await {
            Ok((viewer, accepted_until)) => {
                self.accepted_until = u32::try_from(accepted_until).unwrap_or(u32::MAX);
                let mut watch = app.directory.watch_user(viewer.id);
                // A change announced while the user was read may be this one's: recheck.
                if app.directory.user_changes_announced() != announced {
                    watch.mark_changed();
                }
                self.viewer_watch = Some(watch);
                // An integration account's socket only ingests: nobody to show online.
                if viewer.role != UserRole::Integration {
                    self.presence = Some(SocketPresence::hold(app, viewer.id).await);
                }
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
        if self.subscriptions.contains_key(&id) {
            return Err(Some((close::SUBSCRIBER_EXISTS, format!("Subscriber for {id} already exists"))));
        }
        let max = self.state.app.limits.max_subscriptions;
        if self.subscriptions.len() >= max {
            let error =
                graphql_error(ErrorCode::RateLimited, format!("at most {max} subscriptions per connection"));
            return Ok(vec![self.protocol.error(&id, serde_json::json!([error]))]);
        }
        let frames =
            frames(self.state.clone(), self.protocol, id.clone(), request, viewer, self.feeds.clone());
        self.subscriptions.insert(id, frames);
        Ok(vec![])
    }

    /// Writes `first` and whatever other frames are ready (up to `WRITE_BATCH`), then
    /// flushes once. While a client reads too slowly this waits, its subscriptions' feeds stop
    /// being read, and they catch up from the database later (see ARCHITECTURE.md); other
    /// connections never wait for it.
    async fn write_frames<S>(
        &mut self,
        sink: &mut S,
        first: (String, (String, bool)),
    ) -> Result<(), axum::Error>
    where
        S: SinkExt<Message, Error = axum::Error> + Unpin,
    {
        let (mut next, mut written) = (Some(first), 0);
        while let Some((id, (frame, last))) = next.take() {
            if last {
                self.subscriptions.remove(&id);
            }
            sink.feed(Message::Text(frame.into())).await?;
            written += 1;
            // Taken from the streams only when it will be written: a frame taken is never dropped.
            if written < WRITE_BATCH {
                next = self.subscriptions.next().now_or_never().flatten();
            }
        }
        let mut flush = sink.flush();
        match (&mut flush).now_or_never() {
            Some(flushed) => flushed,
            None => {
                // Mostly the socket's buffers are full (the client reads more slowly than
                // its frames come), visible before its feeds lag; also when the task's
                // scheduling budget ran out, so it is a warning sign, not a count of slow
                // clients.
                metrics::counter!("parley_ws_write_blocked_total").increment(1);
                flush.await
            }
        }
    }
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

async fn send<S>(sink: &mut S, frame: &str) -> Result<(), axum::Error>
where
    S: SinkExt<Message, Error = axum::Error> + Unpin,
{
    sink.send(Message::Text(frame.into())).await
}

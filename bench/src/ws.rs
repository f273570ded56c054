//! A lightweight graphql-transport-ws client on tokio-tungstenite: one tokio task per
//! connection (no thread per connection), 4 KiB read buffers and unbuffered writes with
//! TCP_NODELAY, so ten thousand connections fit in one process and frames are not delayed.
//! Each task answers `ping`s and decodes `next` results with typed serde structs (cheaper than
//! a `serde_json::Value` per frame) into [`WsEvent`]s for the scenario's [`Inbox`].

use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

use crate::inbox::{Inbox, WsEvent};
use crate::report::Hist;

enum Cmd {
    Text(String),
    Close,
}

/// One graphql-transport-ws connection, authenticated and acknowledged.
pub struct WsConn {
    cmds: mpsc::UnboundedSender<Cmd>,
    task: JoinHandle<()>,
}

impl WsConn {
    /// Connects, sends `connection_init` with the token and waits for `connection_ack`.
    pub async fn connect(url: &str, token: &str, conn: u32, inbox: &Inbox) -> Result<Self> {
        Self::connect_reporting(url, token, conn, inbox.tx.clone()).await
    }

    /// [`WsConn::connect`] for a task that cannot borrow the inbox: `events` is its sender.
    pub async fn connect_reporting(
        url: &str,
        token: &str,
        conn: u32,
        events: mpsc::UnboundedSender<WsEvent>,
    ) -> Result<Self> {
        let mut request = url.into_client_request().context("WebSocket URL")?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (mut ws, _) = timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async_with_config(request, Some(config), true),
        )
        .await
        .context("WebSocket connect timed out")?
        .context("WebSocket connect")?;
        let init =
            json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
        ws.send(Message::text(init.to_string())).await.context("sending connection_init")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let frame = timeout_at(deadline, ws.next()).await.context("no connection_ack in time")?;
            match frame {
                Some(Ok(Message::Text(text))) if text.contains("\"connection_ack\"") => break,
                Some(Ok(Message::Text(text))) if text.contains("\"ping\"") => {
                    ws.send(Message::text(r#"{"type":"pong"}"#)).await?;
                }
                Some(Ok(Message::Close(frame))) => bail!("closed before connection_ack: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err).context("reading connection_ack"),
                None => bail!("connection ended before connection_ack"),
            }
        }
        let (cmds, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(ws, rx, events, conn));
        Ok(Self { cmds, task })
    }

    /// Starts a subscription; `id` starts with `m` (messageAdded), `u` (unreadCountChanged) or
    /// `r` (reminderDue) followed by a number.
    pub fn subscribe(&self, id: &str, query: &str, variables: Value) -> Result<()> {
        let message =
            json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
        self.cmds.send(Cmd::Text(message.to_string())).ok().context("connection task is gone")
    }

    pub fn complete(&self, id: &str) -> Result<()> {
        let message = json!({ "id": id, "type": "complete" });
        self.cmds.send(Cmd::Text(message.to_string())).ok().context("connection task is gone")
    }

    /// Drops the connection with no `complete` and no close frame, as a client losing its
    /// network does: the server only sees the TCP connection end.
    pub fn vanish(self) {
        self.task.abort();
    }

    /// Sends a normal close and waits (briefly) for the task to end.
    pub async fn close(self) {
        let _ = self.cmds.send(Cmd::Close);
        let _ = timeout(Duration::from_secs(2), self.task).await;
    }
}

/// A subscription every connection starts: id (`m1`, `u1`), query, variables.
pub struct Sub {
    pub id: String,
    pub query: String,
    pub variables: Value,
}

impl Sub {
    pub fn new(id: &str, query: &str, variables: Value) -> Self {
        Self { id: id.into(), query: query.into(), variables }
    }
}

/// Opens one connection per token (numbered from `first`), `concurrency` handshakes at a
/// time, and starts `subs` on each. Also returns the connect → `connection_ack` latencies.
pub async fn connect_many(
    url: &str,
    tokens: &[String],
    first: u32,
    concurrency: usize,
    inbox: &Inbox,
    subs: &[Sub],
) -> Result<(Vec<WsConn>, Hist)> {
    let opened: Vec<Result<(WsConn, Duration)>> = futures_util::stream::iter(tokens.iter().enumerate())
        .map(|(i, token)| async move {
            let t = Instant::now();
            let conn = WsConn::connect(url, token, first + i as u32, inbox).await?;
            let acked = t.elapsed();
            for sub in subs {
                conn.subscribe(&sub.id, &sub.query, sub.variables.clone())?;
            }
            Ok((conn, acked))
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut conns = Vec::with_capacity(opened.len());
    let mut hist = Hist::default();
    let mut failure = None;
    for result in opened {
        match result {
            Ok((conn, acked)) => {
                hist.record(acked);
                conns.push(conn);
            }
            Err(err) => failure = failure.or(Some(err)),
        }
    }
    if let Some(err) = failure {
        let failed = tokens.len() - conns.len();
        close_all(conns).await;
        return Err(err).with_context(|| format!("{failed} of {} connections failed", tokens.len()));
    }
    Ok((conns, hist))
}

/// Closes many connections at once.
pub async fn close_all(conns: Vec<WsConn>) {
    futures_util::future::join_all(conns.into_iter().map(WsConn::close)).await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn run(
    mut ws: Ws,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    tx: mpsc::UnboundedSender<WsEvent>,
    conn: u32,
) {
    let report = |text: String| {
        let _ = tx.send(WsEvent::Error { conn, text });
    };
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Text(text)) => {
                    if let Err(err) = ws.send(Message::text(text)).await {
                        return report(format!("send failed: {err}"));
                    }
                }
                Some(Cmd::Close) | None => {
                    let _ = ws.close(None).await;
                    return;
                }
            },
            frame = ws.next() => {
                let at = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if text.contains("\"type\":\"ping\"") {
                            let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                        } else if let Some(event) = decode(conn, text.as_str(), at) {
                            let _ = tx.send(event);
                        }
                    }
                    Some(Ok(Message::Close(frame))) => return report(format!("server closed: {frame:?}")),
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return report(format!("read failed: {err}")),
                    None => return report("connection ended".into()),
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct Next {
    id: String,
    payload: NextPayload,
}

#[derive(Deserialize)]
struct NextPayload {
    data: Option<NextData>,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NextData {
    message_added: Option<MessageData>,
    unread_count_changed: Option<UnreadData>,
    reminder_due: Option<ReminderDueData>,
    presence_changed: Option<PresenceData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PresenceData {
    user_id: Uuid,
    status: String,
}

#[derive(Deserialize)]
struct ReminderDueData {
    reminder: ReminderData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReminderData {
    id: Uuid,
    remind_at: DateTime<Utc>,
    fired_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct MessageData {
    seq: i64,
    body: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnreadData {
    room_id: Uuid,
    seq: i64,
}

/// Turns one server frame into an event; typed parsing of `next` keeps the client cheap.
fn decode(conn: u32, text: &str, at: Instant) -> Option<WsEvent> {
    if !text.contains("\"type\":\"next\"") {
        let frame: Value = serde_json::from_str(text).ok()?;
        let id = frame["id"].as_str().unwrap_or("");
        return match frame["type"].as_str()? {
            "complete" => {
                Some(WsEvent::Error { conn, text: format!("subscription {id} completed by the server") })
            }
            "error" => {
                Some(WsEvent::Error { conn, text: format!("subscription {id}: {}", frame["payload"]) })
            }
            "pong" | "connection_ack" => None,
            other => Some(WsEvent::Error { conn, text: format!("unexpected `{other}` message") }),
        };
    }
    let next: Next = match serde_json::from_str(text) {
        Ok(next) => next,
        Err(err) => {
            return Some(WsEvent::Error { conn, text: format!("undecodable result ({err}): {text}") });
        }
    };
    if !next.payload.errors.is_empty() {
        return Some(WsEvent::Error {
            conn,
            text: format!("subscription {}: {:?}", next.id, next.payload.errors),
        });
    }
    let sub = sub_index(&next.id);
    match next.payload.data {
        Some(NextData { message_added: Some(m), .. }) => {
            let (tag, no) = m.body.as_deref().and_then(parse_body).unwrap_or((0, 0));
            Some(WsEvent::Message { conn, sub, seq: m.seq, tag, no, at })
        }
        Some(NextData { unread_count_changed: Some(u), .. }) => {
            Some(WsEvent::Unread { conn, room: u.room_id, seq: u.seq, at })
        }
        Some(NextData { reminder_due: Some(due), .. }) => {
            let ReminderData { id, remind_at, fired_at } = due.reminder;
            Some(WsEvent::Reminder { id, remind_at, fired_at, received: Utc::now() })
        }
        Some(NextData { presence_changed: Some(p), .. }) => {
            Some(WsEvent::Presence { user: p.user_id, online: p.status == "ONLINE", at })
        }
        _ => Some(WsEvent::Error { conn, text: format!("result without data: {text}") }),
    }
}

fn sub_index(id: &str) -> u32 {
    id.get(1..).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// `b17` → (b'b', 17).
fn parse_body(body: &str) -> Option<(u8, u64)> {
    let tag = *body.as_bytes().first()?;
    let digits: &str = body.get(1..)?.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((tag, digits.parse().ok()?))
}

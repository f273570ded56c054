//! A small GraphQL-over-WebSocket client for the tests: `graphql-transport-ws`
//! and the legacy `graphql-ws`, on tokio-tungstenite.
//!
//! One reader task per connection routes frames that carry a subscription id
//! to that [`Subscription`]; everything else (acks, pongs, `ka`, frames for
//! unknown ids) goes to the connection's control queue, and the close frame's
//! code is kept for protocol tests. Server `ping`s are answered automatically.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::subscription::Subscription;
use super::{TestApp, TestUser, WAIT};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub(super) type Sink = Arc<Mutex<SplitSink<Socket, Message>>>;
type Routes = Arc<StdMutex<HashMap<String, mpsc::UnboundedSender<Value>>>>;

/// Time the server gets, after it answered a ping that followed a subscribe,
/// to finish wiring the subscription to the bus (subscribe has no ack).
const SETTLE: Duration = Duration::from_millis(150);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws` (graphql-ws library, current).
    TransportWs,
    /// `graphql-ws` (subscriptions-transport-ws, legacy).
    LegacyWs,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::LegacyWs => "graphql-ws",
        }
    }
}

/// How the connection ended.
#[derive(Clone, Debug)]
pub struct Closed {
    /// The close frame's code; `None` when the socket ended without one.
    pub code: Option<u16>,
    pub reason: String,
}

pub struct WsClient {
    protocol: Protocol,
    sink: Sink,
    routes: Routes,
    control: mpsc::UnboundedReceiver<Value>,
    /// Control frames read past while looking for a specific one.
    pending: VecDeque<Value>,
    closed: watch::Receiver<Option<Closed>>,
    reader: JoinHandle<()>,
}

impl WsClient {
    /// Opens a socket with `protocol` and sends nothing.
    pub async fn open(app: &TestApp, protocol: Protocol) -> WsClient {
        let mut request = app.ws_url().into_client_request().expect("a valid ws:// url");
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol.name()));
        let (socket, _) = timeout(WAIT, connect_async(request))
            .await
            .expect("WebSocket handshake timed out")
            .expect("WebSocket handshake");
        let (sink, stream) = socket.split();
        let sink: Sink = Arc::new(Mutex::new(sink));
        let routes: Routes = Arc::default();
        let (control_tx, control) = mpsc::unbounded_channel();
        let (closed_tx, closed) = watch::channel(None);
        let reader =
            tokio::spawn(read_loop(stream, sink.clone(), routes.clone(), control_tx, closed_tx, protocol));
        WsClient { protocol, sink, routes, control, pending: VecDeque::new(), closed, reader }
    }

    /// A `graphql-transport-ws` connection authenticated as `user`, acked.
    pub async fn connect(app: &TestApp, user: &TestUser) -> WsClient {
        Self::connect_with(app, Protocol::TransportWs, bearer(&user.token)).await
    }

    /// A connection whose `connection_init` carries `payload`; waits for the ack.
    pub async fn connect_with(app: &TestApp, protocol: Protocol, payload: Value) -> WsClient {
        let mut client = Self::open(app, protocol).await;
        client.send_json(json!({ "type": "connection_init", "payload": payload })).await;
        client.expect_ack().await;
        client
    }

    pub async fn send_text(&self, text: &str) {
        // A failed send means the server already closed; tests then read the close.
        let _ = self.sink.lock().await.send(Message::text(text.to_owned())).await;
    }

    pub async fn send_json(&self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// The next control frame (legacy `ka` keepalives skipped), or `None` on
    /// timeout or close.
    pub async fn next_control(&mut self, wait: Duration) -> Option<Value> {
        if let Some(frame) = self.pending.pop_front() {
            return Some(frame);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.control.recv()).await.ok()??;
            if frame["type"] != "ka" {
                return Some(frame);
            }
        }
    }

    pub async fn expect_ack(&mut self) {
        match self.next_control(WAIT).await {
            Some(frame) if frame["type"] == "connection_ack" => {}
            other => {
                panic!("expected connection_ack, got {other:?} (closed: {:?})", self.closed.borrow().clone())
            }
        }
    }

    /// Sends `ping` and waits for the `pong`, keeping other control frames.
    pub async fn ping_pong(&mut self) {
        self.send_json(json!({ "type": "ping" })).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = tokio::time::timeout(remaining, self.control.recv())
                .await
                .expect("no pong within the timeout")
                .expect("connection closed while waiting for pong");
            if frame["type"] == "pong" {
                return;
            }
            if frame["type"] != "ka" {
                self.pending.push_back(frame);
            }
        }
    }

    /// Subscribes and waits until the server has surely processed it.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) -> Subscription {
        let subscription = self.subscribe_raw(id, query, variables).await;
        self.settle().await;
        subscription
    }

    /// Sends `subscribe` (or legacy `start`) and returns immediately.
    pub async fn subscribe_raw(&self, id: &str, query: &str, variables: Value) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.lock().expect("routes lock").insert(id.to_owned(), tx);
        let kind = match self.protocol {
            Protocol::TransportWs => "subscribe",
            Protocol::LegacyWs => "start",
        };
        let payload = json!({ "query": query, "variables": variables });
        self.send_json(json!({ "id": id, "type": kind, "payload": payload })).await;
        Subscription::new(id, rx, self.sink.clone(), self.protocol)
    }

    /// A round trip plus a short pause, so a subscription sent before is live.
    pub async fn settle(&mut self) {
        if self.protocol == Protocol::TransportWs {
            self.ping_pong().await;
        }
        tokio::time::sleep(SETTLE).await;
    }

    /// Waits for the server to close the connection; panics on timeout.
    pub async fn expect_close(&mut self, wait: Duration) -> Closed {
        let mut closed = self.closed.clone();
        let result = timeout(wait, closed.wait_for(Option::is_some)).await;
        match result {
            Ok(Ok(state)) => state.clone().expect("wait_for returned a closed state"),
            _ => panic!("the server did not close the connection within {wait:?}"),
        }
    }

    /// Asserts the connection is still open (e.g. after a rejected subscription).
    pub fn assert_open(&self) {
        assert!(self.closed.borrow().is_none(), "connection closed: {:?}", self.closed.borrow());
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The `connection_init` payload carrying `token`.
pub fn bearer(token: &str) -> Value {
    json!({ "Authorization": format!("Bearer {token}") })
}

async fn read_loop(
    mut stream: SplitStream<Socket>,
    sink: Sink,
    routes: Routes,
    control: mpsc::UnboundedSender<Value>,
    closed: watch::Sender<Option<Closed>>,
    protocol: Protocol,
) {
    let end = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(text.as_str())
                    .unwrap_or_else(|_| json!({ "type": "<not json>", "raw": text.as_str() }));
                if protocol == Protocol::TransportWs && frame["type"] == "ping" {
                    let _ = sink.lock().await.send(Message::text(r#"{"type":"pong"}"#)).await;
                    continue;
                }
                let route =
                    frame["id"].as_str().and_then(|id| routes.lock().expect("routes lock").get(id).cloned());
                match route {
                    Some(route) => drop(route.send(frame)),
                    None => drop(control.send(frame)),
                }
            }
            Some(Ok(Message::Close(frame))) => {
                break Closed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                };
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                break Closed { code: None, reason: error.to_string() };
            }
            None => {
                break Closed { code: None, reason: "stream ended".to_owned() };
            }
        }
    };
    let _ = closed.send(Some(end));
    // Dropping the routes ends every subscription's stream.
    routes.lock().expect("routes lock").clear();
}

/// An acknowledged `graphql-transport-ws` connection as `user`, whose socket has a receive
/// buffer of a few KiB: until it reads, the server can write it little.
pub async fn slow_reader(
    app: &TestApp,
    user: &TestUser,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small receive buffer");
    let stream = socket.connect(app.addr.parse().expect("an address")).await.expect("connect");
    let mut request = app.ws_url().into_client_request().expect("a ws:// url");
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await.expect("handshake");
    let init = json!({ "type": "connection_init", "payload": bearer(&user.token) });
    ws.send(Message::text(init.to_string())).await.expect("init");
    let ack = ws.next().await.expect("open").expect("read");
    assert!(ack.to_text().unwrap_or("").contains("connection_ack"), "{ack:?}");
    ws
}

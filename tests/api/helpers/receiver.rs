//! A webhook receiver: an HTTP server of the test's own on a free port that records every
//! request as it arrives and answers with the statuses the test queued (200 once none are
//! left), after the delays it queued (none once none are left).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// True when `X-Parley-Signature` is `sha256=` + hex HMAC-SHA256 of
    /// `"<X-Parley-Timestamp>.<body>"` with `secret`.
    pub fn signed_with(&self, secret: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(self.header("x-parley-timestamp").as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let Some(hex_signature) = self.header("x-parley-signature").strip_prefix("sha256=") else {
            return false;
        };
        let Ok(signature) = hex::decode(hex_signature) else { return false };
        mac.verify_slice(&signature).is_ok()
    }
}

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    statuses: VecDeque<u16>,
    delays: VecDeque<Duration>,
}

pub struct Receiver {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    log: Arc<Mutex<Log>>,
    server: JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let log = Arc::new(Mutex::new(Log::default()));
        let app = Router::new().fallback(record).with_state(log.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, log, server }
    }

    /// The next requests are answered with these statuses, in order.
    pub fn answer_with(&self, statuses: &[u16]) {
        self.log.lock().expect("the log").statuses.extend(statuses);
    }

    /// The next requests are answered only after these delays, in order.
    pub fn stall_with(&self, delays: &[Duration]) {
        self.log.lock().expect("the log").delays.extend(delays);
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("the log").received.clone()
    }

    /// Waits until at least `n` requests came (panics after `wait`) and returns all of them.
    pub async fn wait_for(&self, n: usize, wait: Duration) -> Vec<Received> {
        super::at_least("requests", n, wait, || self.received()).await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(log): State<Arc<Mutex<Log>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, delay) = {
        let mut log = log.lock().expect("the log");
        let (status, delay) = (log.statuses.pop_front().unwrap_or(200), log.delays.pop_front());
        let headers = headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or_default().to_owned()))
            .collect();
        log.received.push(Received { path: uri.path().to_owned(), headers, body, status });
        (status, delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

//! A statement counter for PostgreSQL: a TCP proxy between one `parley` instance and the
//! database that reads the frontend protocol and counts `Execute` (extended protocol) and
//! `Query` (simple protocol, e.g. `BEGIN`/`COMMIT`) messages. Counting the statements of N
//! identical requests and dividing by N gives statements per request; comparing requests of
//! different sizes shows whether a resolver runs one query per item (N+1).
//!
//! Statements are also tallied by their SQL (from `Parse`, `Bind` and `Query`), so that a
//! figure can tell the instance's own background statements from those of the work measured.
//!
//! The proxied connection must not use TLS (`sslmode=disable`), or the stream is opaque.
//! [`CountingProxy::for_url`] starts one in front of a database URL and returns the URL to
//! give the counted instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::client::Gql;
use crate::config::Ctx;
use crate::report::Figure;
use crate::servers::Spec;

/// `SSLRequest`, `GSSENCRequest` and `CancelRequest` codes: untyped messages before startup.
const PRE_STARTUP_CODES: [u32; 3] = [80_877_103, 80_877_104, 80_877_102];

pub struct CountingProxy {
    pub port: u16,
    statements: Arc<AtomicU64>,
    by_sql: Tally,
    task: JoinHandle<()>,
}

/// Statements run so far, by their SQL.
pub type Tally = Arc<Mutex<HashMap<String, u64>>>;

impl CountingProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the counting proxy")?;
        let port = listener.local_addr()?.port();
        let statements = Arc::new(AtomicU64::new(0));
        let by_sql = Tally::default();
        let (counter, tally) = (statements.clone(), by_sql.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, counter, tally) = (upstream.clone(), counter.clone(), tally.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        pipe(client, server, counter, tally).await;
                    }
                });
            }
        });
        Ok(Self { port, statements, by_sql, task })
    }

    /// A proxy in front of the server of `database_url`, and the same URL through the proxy.
    pub async fn for_url(database_url: &str) -> Result<(Self, String)> {
        let (written, upstream) = host_port(database_url)?;
        let proxy = Self::start(upstream).await?;
        let proxied = format!("127.0.0.1:{}", proxy.port);
        let url = if database_url.contains(&format!("@{written}")) {
            database_url.replacen(&format!("@{written}"), &format!("@{proxied}"), 1)
        } else {
            database_url.replacen(&format!("://{written}"), &format!("://{proxied}"), 1)
        };
        Ok((proxy, url))
    }

    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Statements run so far by SQL (whitespace collapsed).
    pub fn by_sql(&self) -> HashMap<String, u64> {
        self.by_sql.lock().map(|tally| tally.clone()).unwrap_or_default()
    }

    /// Statements per request of `query` sent by `gql` (an instance behind this proxy). The
    /// instance's own background work reaches the proxy too: at start its first presence
    /// heartbeat ends the leases of instances that died (every earlier bench run's, through the
    /// shared Redis) and reads those users, and its pollers run every second. Background work
    /// only adds statements, so call this after the instance settled: the fewest of 3 rounds
    /// of 10 requests counts.
    async fn per_request(
        &self,
        gql: &Gql,
        token: &str,
        query: &str,
        vars: &dyn Fn(u64) -> Value,
    ) -> Result<f64> {
        const REPEAT: u64 = 10;
        const ROUNDS: u64 = 3;
        gql.call(token, query, vars(0)).await?; // warms the pool's connections
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut fewest = u64::MAX;
        for round in 0..ROUNDS {
            let before = self.statements();
            for i in 1..=REPEAT {
                gql.call(token, query, vars(round * REPEAT + i)).await?;
            }
            fewest = fewest.min(self.statements() - before);
        }
        Ok(fewest as f64 / REPEAT as f64)
    }
}

/// How long a new instance behind the proxy is given to finish its start-up work.
pub const SETTLE: Duration = Duration::from_secs(2);

/// A request whose statements are counted. Cases named `family(size…)` are compared within
/// their family: a bigger size that costs more than the family's first case is flagged N+1.
pub struct Case {
    pub name: String,
    pub query: &'static str,
    /// The variables of the i-th request (0 warms up).
    pub vars: Box<dyn Fn(u64) -> Value + Send + Sync>,
    /// Said instead of comparing sizes, for a request that should cost per call.
    pub verdict: Option<&'static str>,
}

/// Counts each case's statements per request as `token` through a fresh instance P behind a
/// proxy (after it settled), and reports them as figures of `scenario`.
pub async fn report_statements(
    ctx: &mut Ctx,
    scenario: &str,
    token: &str,
    cases: Vec<Case>,
    params: &str,
) -> Result<()> {
    let (proxy, url) = CountingProxy::for_url(&ctx.env.database_url).await?;
    let spec = Spec {
        label: "P".into(),
        database_url: url,
        redis_url: Some(ctx.env.redis_url.clone()),
        pool_size: 4,
    };
    let p = ctx.spawn(spec).await?;
    let result = async {
        let gql = Gql::new(&p.http())?;
        tokio::time::sleep(SETTLE).await;
        let mut counts = Vec::with_capacity(cases.len());
        for case in &cases {
            counts.push(proxy.per_request(&gql, token, case.query, case.vars.as_ref()).await?);
        }
        anyhow::Ok(counts)
    }
    .await;
    p.stop().await;
    let counts = result?;
    let family = |name: &str| name.split('(').next().unwrap_or("").to_owned();
    for (case, per) in cases.iter().zip(&counts) {
        let first =
            cases.iter().position(|c| family(&c.name) == family(&case.name)).map_or(*per, |i| counts[i]);
        let verdict =
            case.verdict.unwrap_or(if *per <= first { "constant in size" } else { "grows with size: N+1?" });
        ctx.report.push(
            Figure::new(scenario, format!("SQL statements: {}", case.name), params)
                .value(*per, "stmts/req")
                .note(verdict),
        );
    }
    Ok(())
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host[:port]` as written in a PostgreSQL URL, and `host:port` (5432 when absent).
fn host_port(url: &str) -> Result<(String, String)> {
    let rest = url.split_once("://").map(|(_, r)| r).context("database URL without scheme")?;
    let rest = rest.split(['/', '?']).next().unwrap_or("");
    let written = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    if written.is_empty() {
        bail!("database URL without a host (unix sockets cannot be proxied)");
    }
    let full = if written.contains(':') { written.to_owned() } else { format!("{written}:5432") };
    Ok((written.to_owned(), full))
}

async fn pipe(client: TcpStream, server: TcpStream, counter: Arc<AtomicU64>, tally: Tally) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut parser = Parser::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let begun = parser.feed(&buf[..n]);
            counter.fetch_add(begun.len() as u64, Ordering::Relaxed);
            if !begun.is_empty()
                && let Ok(mut tally) = tally.lock()
            {
                for sql in begun {
                    *tally.entry(sql).or_default() += 1;
                }
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// Incremental parser of the frontend stream: untyped startup messages, then typed messages
/// (`type: u8`, `length: u32` including itself, body). The bodies of `Parse`, `Bind` and
/// `Query` are read to know which SQL each `Execute` runs; the others are skipped.
#[derive(Default)]
struct Parser {
    started: bool,
    head: Vec<u8>,
    skip: usize,
    /// The kind of the message whose body is being read, and how much of it is left.
    reading: Option<(u8, usize)>,
    body: Vec<u8>,
    /// Prepared statements of this connection by name (`""`: the unnamed one).
    prepared: HashMap<String, String>,
    /// The SQL of the last `Bind`, which the next `Execute` runs.
    bound: String,
}

impl Parser {
    /// Returns the SQL of each statement that begins in `data`.
    fn feed(&mut self, mut data: &[u8]) -> Vec<String> {
        let mut begun = Vec::new();
        while !data.is_empty() {
            if let Some((kind, left)) = self.reading {
                let n = left.min(data.len());
                self.body.extend_from_slice(&data[..n]);
                data = &data[n..];
                if n < left {
                    self.reading = Some((kind, left - n));
                    continue;
                }
                self.reading = None;
                let body = std::mem::take(&mut self.body);
                begun.extend(self.message(kind, &body));
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let need = if self.started { 5 } else { 8 };
            let take = (need - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.head.len() < need {
                break;
            }
            let word = |at: usize| {
                u32::from_be_bytes([self.head[at], self.head[at + 1], self.head[at + 2], self.head[at + 3]])
            };
            if self.started {
                let kind = self.head[0];
                let len = (word(1) as usize).saturating_sub(4);
                if matches!(kind, b'P' | b'B' | b'Q' | b'E') {
                    self.reading = Some((kind, len));
                    if len == 0 {
                        self.reading = None;
                        begun.extend(self.message(kind, &[]));
                    }
                } else {
                    self.skip = len;
                }
            } else {
                self.skip = (word(0) as usize).saturating_sub(8);
                self.started = !PRE_STARTUP_CODES.contains(&word(4));
            }
            self.head.clear();
        }
        begun
    }

    /// Handles one whole message; the SQL of the statement it begins, if any.
    fn message(&mut self, kind: u8, body: &[u8]) -> Option<String> {
        let mut fields = body.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned());
        match kind {
            b'P' => {
                let name = fields.next().unwrap_or_default();
                self.prepared.insert(name, key(&fields.next().unwrap_or_default()));
                None
            }
            b'B' => {
                let _portal = fields.next();
                let name = fields.next().unwrap_or_default();
                self.bound = self.prepared.get(&name).cloned().unwrap_or_else(|| "?".into());
                None
            }
            b'E' => Some(self.bound.clone()),
            b'Q' => Some(key(&fields.next().unwrap_or_default())),
            _ => None,
        }
    }
}

/// A statement's name in the tally: its whole SQL with whitespace collapsed.
fn key(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::Parser;

    fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn names_each_execute_and_query_across_split_reads() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&8u32.to_be_bytes());
        stream.extend_from_slice(&80_877_103u32.to_be_bytes()); // SSLRequest
        let startup = b"\0\x03\0\0user\0postgres\0\0";
        stream.extend_from_slice(&((startup.len() + 4) as u32).to_be_bytes());
        stream.extend_from_slice(startup);
        stream.extend(typed(b'P', b"\0SELECT 1\0\0\0"));
        stream.extend(typed(b'B', b"\0\0\0\0\0\0\0\0"));
        stream.extend(typed(b'E', b"\0\0\0\0\0"));
        stream.extend(typed(b'S', b""));
        stream.extend(typed(b'Q', b"BEGIN\0"));
        stream.extend(typed(b'P', b"sqlx_s_1\0SELECT\n  2\0\0\0"));
        stream.extend(typed(b'B', b"\0sqlx_s_1\0\0\0\0\0\0\0"));
        stream.extend(typed(b'E', b"\0\0\0\0\0"));
        for split in 1..stream.len() {
            let mut parser = Parser::default();
            let (a, b) = stream.split_at(split);
            let mut begun = parser.feed(a);
            begun.extend(parser.feed(b));
            assert_eq!(begun, ["SELECT 1", "BEGIN", "SELECT 2"], "split at {split}");
        }
    }
}

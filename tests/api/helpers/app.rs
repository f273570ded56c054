//! Test servers as child processes: `spawn_app` starts `parley serve` with a
//! fresh SQLite file or the shared PostgreSQL + Redis, waits for its
//! `listening on` line and keeps draining its output. Its organisations and
//! users come from the admin CLI (`cli`) run against the same configuration.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::cli::{Org, TestUser, parley_command, run_cli};
use super::services::OwnDatabase;
use super::{Backend, JWT_SECRET, data, pg_redis_urls};

/// How long a server may take to print its `listening on` line.
const STARTUP: Duration = Duration::from_secs(60);
/// Server output lines kept for the failure report.
const LOG_LINES: usize = 300;

/// The environment of one deployment (database, bus, secret, limits); shared
/// by its server processes and the CLI invocations against it.
pub(super) type Env = Arc<Vec<(String, String)>>;

/// A running `parley serve` process and a client for it. The process is
/// killed when this is dropped.
pub struct TestApp {
    pub backend: Backend,
    /// `127.0.0.1:PORT` as printed by the server.
    pub addr: String,
    pub http: reqwest::Client,
    env: Env,
    /// Recent stdout/stderr lines, printed when a test fails.
    logs: Arc<Mutex<VecDeque<String>>>,
    child: Child,
    /// Keeps the SQLite directory alive as long as any instance uses it.
    _dir: Option<Arc<tempfile::TempDir>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Spawns a server with `overrides` replacing (or adding to) the test
/// defaults, e.g. `[("PARLEY_EDIT_WINDOW_SECS", "1")]`.
pub async fn spawn_app_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    let (dir, mut env) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("create a temporary directory for SQLite");
            let url = format!("sqlite://{}/parley.db?mode=rwc", dir.path().display());
            (Some(Arc::new(dir)), vec![("DATABASE_URL".to_owned(), url)])
        }
        Backend::PostgresRedis => {
            let (db, redis) = pg_redis_urls().expect("the PostgresRedis backend needs PARLEY_TEST_*");
            (None, vec![("DATABASE_URL".to_owned(), db), ("REDIS_URL".to_owned(), redis)])
        }
    };
    for (key, value) in [
        ("PARLEY_BIND", "127.0.0.1:0"),
        ("PARLEY_JWT_SECRET", JWT_SECRET),
        ("PARLEY_DEMO", "false"),
        ("RUST_LOG", "warn"),
        ("PARLEY_SEND_RATE_PER_SEC", "10000"),
        ("PARLEY_SEND_BURST", "10000"),
        // Webhook receivers in tests listen on 127.0.0.1; retries come fast.
        ("PARLEY_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("PARLEY_WEBHOOK_RETRY_BASE_MS", "100"),
        // Many servers share the test PostgreSQL (100 connections): each opens two at start,
        // not its whole pool, and grows under load.
        ("PARLEY_DB_POOL_WARM", "2"),
    ] {
        env.push((key.to_owned(), value.to_owned()));
    }
    for (key, value) in overrides {
        env.retain(|(k, _)| k != key);
        env.push(((*key).to_owned(), (*value).to_owned()));
    }
    start(backend, Arc::new(env), dir).await
}

/// A server for `backend`, on PostgreSQL with a database of its own (returned first, so it is
/// dropped after the server). For tests whose background work claims rows from the whole
/// database (due reminders, expired snoozes, deliveries): another test's server, on a Redis of
/// its own or killed on purpose, would otherwise claim this test's rows and announce them
/// where its subscribers never hear, or, stopped with its test, hold a delivery for its lease.
pub async fn spawn_app_alone(backend: Backend) -> (Option<OwnDatabase>, TestApp) {
    spawn_app_alone_with(backend, &[]).await
}

/// [`spawn_app_alone`] with settings of its own.
pub async fn spawn_app_alone_with(
    backend: Backend,
    overrides: &[(&str, &str)],
) -> (Option<OwnDatabase>, TestApp) {
    match backend {
        Backend::Sqlite => (None, spawn_app_with(backend, overrides).await),
        Backend::PostgresRedis => {
            let database = OwnDatabase::create();
            let mut settings = vec![("DATABASE_URL", database.url.as_str())];
            settings.extend_from_slice(overrides);
            let app = spawn_app_with(backend, &settings).await;
            (Some(database), app)
        }
    }
}

impl TestApp {
    /// Another process on the same database (and Redis), as behind a load balancer.
    pub async fn spawn_second_instance(&self) -> TestApp {
        start(self.backend, self.env.clone(), self._dir.clone()).await
    }

    /// The server's process id (to find its sockets in tests of connection loss).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM (graceful shutdown) and waits for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.pid().expect("the server is still running");
        let kill = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.expect("run kill");
        assert!(kill.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the server exits within 10 s of SIGTERM")
            .expect("wait for the server process")
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill the server");
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The status of `GET /readyz`.
    pub async fn readiness(&self) -> u16 {
        let response = self.http.get(self.url("/readyz")).send().await.expect("GET /readyz");
        response.status().as_u16()
    }

    /// An unlabelled counter or gauge on the instance's `/metrics`; 0 before it is first set.
    pub async fn metric(&self, name: &str) -> f64 {
        let response = self.http.get(self.url("/metrics")).send().await.expect("GET /metrics");
        let text = response.text().await.expect("a metrics body");
        let value = text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' '));
        value.map_or(0.0, |value| value.trim().parse().expect("a metric value"))
    }

    /// Waits up to 20 s for the metric `name` to rise above `floor`; panics with `what` (what
    /// did not happen) if it does not.
    pub async fn wait_for_metric_above(&self, name: &str, floor: f64, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.metric(name).await <= floor {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql", self.addr)
    }

    /// Runs the admin CLI against this deployment; returns its last stdout line.
    pub async fn cli(&self, args: &[&str]) -> String {
        run_cli(&self.env, args).await
    }

    /// Creates an organisation with a unique slug (the unit of test isolation).
    pub async fn create_org(&self) -> Org {
        let hex = uuid::Uuid::now_v7().simple().to_string();
        // The tail of a v7 uuid is its random part.
        let slug = format!("org-{}", &hex[16..]);
        let id = run_cli(&self.env, &["org", "create", "--slug", &slug, "--name", &slug]).await;
        uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("`org create` printed {id:?}, not a uuid"));
        Org { id, slug, env: self.env.clone() }
    }

    /// POSTs a GraphQL request body with `Accept: application/json`.
    pub async fn post_graphql(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request =
            self.http.post(self.url("/graphql")).header("Accept", "application/json").json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST /graphql")
    }

    /// POSTs a body the server must refuse as too large and returns its 413 answer, which
    /// must arrive even though the client is still uploading when the server decides.
    /// A client of its own, pooling nothing: the server closes that connection afterwards.
    pub async fn post_too_large(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build an HTTP client");
        let mut request = http.post(self.url("/graphql")).header("Accept", "application/json").json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("a readable answer to an oversized body");
        assert_eq!(response.status().as_u16(), 413, "an oversized body is refused");
        response
    }

    /// Runs an operation as `token` and returns the whole response body.
    pub async fn gql_token(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = json!({ "query": query, "variables": variables });
        let response = self.post_graphql(token, &body).await;
        let status = response.status();
        let text = response.text().await.expect("read the GraphQL response body");
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("GraphQL response ({status}) is not JSON: {text}"))
    }

    /// Runs an operation as `user` and returns the whole response body.
    pub async fn gql(&self, user: &TestUser, query: &str, variables: Value) -> Value {
        self.gql_token(Some(&user.token), query, variables).await
    }

    /// Runs an operation that must succeed as `user`; returns its `data`.
    pub async fn ok(&self, user: &TestUser, query: &str, variables: Value) -> Value {
        data(self.gql(user, query, variables).await)
    }

    /// The server's recent output lines (stdout and stderr), oldest first.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default()
    }

    /// The first output line containing `needle`, waiting for it: the server writes a line
    /// before the reply it causes, but the test reads its output on another task, so the
    /// line may arrive after the reply does.
    pub async fn log_line(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            if let Some(line) = self.logs().into_iter().find(|line| line.contains(needle)) {
                return line;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("no output line contains {needle:?}: {:#?}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn dump_logs(&self) {
        eprintln!("---- parley at {} ({:?}) ----\n{}", self.addr, self.backend, self.logs().join("\n"));
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
    }
}

async fn start(backend: Backend, env: Env, dir: Option<Arc<tempfile::TempDir>>) -> TestApp {
    let mut command = parley_command(&env);
    command
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn the parley binary");
    let logs = Arc::new(Mutex::new(VecDeque::new()));
    let (ready_tx, ready_rx) = oneshot::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    tokio::spawn(drain(stdout, logs.clone(), Some(ready_tx)));
    tokio::spawn(drain(stderr, logs.clone(), None));

    let addr = match tokio::time::timeout(STARTUP, ready_rx).await {
        Ok(Ok(addr)) => addr,
        outcome => {
            let status = child.try_wait();
            let lines = logs.lock().map(|l| l.iter().cloned().collect::<Vec<_>>()).unwrap_or_default();
            panic!(
                "parley did not print `listening on` ({}; exit status {status:?}); output:\n{}",
                if outcome.is_err() { "timed out" } else { "output closed" },
                lines.join("\n")
            );
        }
    };
    let http =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("build the HTTP client");
    TestApp { backend, addr, http, env, logs, child, _dir: dir }
}

/// Reads lines until the pipe closes (so it never fills), keeping the last
/// ones, and reports the address of the first `listening on` line.
async fn drain(
    pipe: impl AsyncRead + Unpin,
    logs: Arc<Mutex<VecDeque<String>>>,
    mut ready: Option<oneshot::Sender<String>>,
) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on http://".len()..];
            let addr: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
            if let Some(ready) = ready.take() {
                let _ = ready.send(addr);
            }
        }
        if let Ok(mut logs) = logs.lock() {
            if logs.len() == LOG_LINES {
                logs.pop_front();
            }
            logs.push_back(line);
        }
    }
}

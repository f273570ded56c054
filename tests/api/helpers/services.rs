//! Throwaway dependencies for tests that stop or kill them: a Redis server and a
//! PostgreSQL cluster of the test's own, on free ports, removed when dropped; and a database
//! of the test's own on the shared server, for tests whose background workers must not meet
//! other tests' rows; and a transaction held open in `psql`, for races a test must force.
//! The machine's services are never stopped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A free TCP port on 127.0.0.1 (free when asked; good enough for a test server).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound address").port()
}

/// A `redis-server` of the test's own; killed when dropped.
pub struct PrivateRedis {
    pub url: String,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = free_port();
        let mut redis = PrivateRedis { url: format!("redis://127.0.0.1:{port}"), port, child: None };
        redis.restart().await;
        redis
    }

    /// Kills the server at once, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port (empty: it keeps nothing on disk).
    pub async fn restart(&mut self) {
        self.kill().await;
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (PostgreSQL + Redis suites)");
        self.child = Some(child);
        let client = redis::Client::open(self.url.as_str()).expect("a valid URL");
        for _ in 0..100 {
            if let Ok(mut con) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut con).await;
                if pong.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private redis-server on port {} did not answer", self.port);
    }
}

/// A PostgreSQL cluster of the test's own (`initdb` + `pg_ctl` in a temporary
/// directory, as the `postgres` user when the suite runs as root, which
/// PostgreSQL refuses to run as). Stopped and removed when dropped.
pub struct PrivatePostgres {
    pub url: String,
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    pub async fn start() -> PrivatePostgres {
        let bin = postgres_bin_dir().await;
        let dir = std::env::temp_dir().join(format!("parley-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        as_postgres_owner(&dir).await;
        let port = free_port();
        let pg = PrivatePostgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            dir: dir.clone(),
            port,
        };
        let data = pg.data_dir();
        pg.run("initdb", &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]).await;
        pg.start_server().await;
        pg
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Stops the server at once (`immediate`: connections are cut, as in a crash).
    pub async fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"]).await;
    }

    pub async fn start_server(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let log = self.dir.join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data_dir(), "-l", &log, "-o", &options, "-w", "start"]).await;
    }

    /// Runs one of PostgreSQL's programs, as `postgres` when we are root.
    async fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program).display().to_string();
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", &program]);
            command
        } else {
            Command::new(&program)
        };
        let output =
            command.args(args).stdin(Stdio::null()).output().await.expect("run a PostgreSQL program");
        assert!(
            output.status.success(),
            "`{program} {}` failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let data = self.data_dir();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let mut command = if is_root() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--", &pg_ctl]);
            command
        } else {
            std::process::Command::new(&pg_ctl)
        };
        let _ = command.args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Hands the cluster's directory to `postgres` when we are root.
async fn as_postgres_owner(dir: &std::path::Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres", &dir.display().to_string()])
            .status()
            .await
            .expect("run chown");
        assert!(status.success(), "chown postgres {}", dir.display());
    }
}

/// `pg_config --bindir`, where `initdb` and `pg_ctl` live (not on `PATH` on Debian).
async fn postgres_bin_dir() -> PathBuf {
    let output = Command::new("pg_config").arg("--bindir").output().await.expect("pg_config is installed");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// A database of the test's own on the shared PostgreSQL server (`PARLEY_TEST_DATABASE_URL`):
/// the notification outbox is claimed by every instance on a database, so the webhook tests'
/// deliveries must not be taken by other tests' servers, with other settings, that are killed
/// while they hold them. Dropped with this guard (after the servers using it).
pub struct OwnDatabase {
    pub url: String,
    name: String,
    admin_url: String,
}

impl OwnDatabase {
    pub fn create() -> OwnDatabase {
        let (shared, _) = super::pg_redis_urls().expect("OwnDatabase needs PARLEY_TEST_DATABASE_URL");
        let (server, _) = shared.rsplit_once('/').expect("a database URL ends in /NAME");
        let name = format!("parley_test_{}", uuid::Uuid::now_v7().simple());
        let admin_url = format!("{server}/postgres");
        assert!(psql(&admin_url, &format!("CREATE DATABASE {name}")), "could not create {name}");
        OwnDatabase { url: format!("{server}/{name}"), name, admin_url }
    }
}

impl Drop for OwnDatabase {
    fn drop(&mut self) {
        // No panic here: this may run while a failing test unwinds.
        if !psql(&self.admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

fn psql(url: &str, sql: &str) -> bool {
    let status =
        std::process::Command::new("psql").args([url, "-q", "-c", sql]).stdout(Stdio::null()).status();
    status.is_ok_and(|s| s.success())
}

/// A transaction held open in a `psql` session, with the locks its query took, until
/// [`HeldTransaction::commit`] (or a rollback when dropped, as `psql` is killed).
pub struct HeldTransaction {
    stdin: ChildStdin,
    _psql: Child,
}

impl HeldTransaction {
    /// Begins a transaction on `url`, runs `query` in it and returns its output's first line
    /// once it has run, so its locks are held.
    pub async fn hold(url: &str, query: &str) -> (HeldTransaction, Option<String>) {
        let mut psql = Command::new("psql")
            .args([url, "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("psql runs");
        let mut stdin = psql.stdin.take().expect("psql's stdin");
        stdin.write_all(format!("BEGIN; {query}\n").as_bytes()).await.expect("psql reads");
        let mut lines: Lines<BufReader<ChildStdout>> =
            BufReader::new(psql.stdout.take().expect("psql's stdout")).lines();
        let first = tokio::time::timeout(super::WAIT, lines.next_line()).await.expect("psql answers in time");
        (HeldTransaction { stdin, _psql: psql }, first.expect("psql's output"))
    }

    /// On PostgreSQL, a transaction holding `room`'s row until committed, as a rename would;
    /// `None` on SQLite, whose writes take turns anyway.
    pub async fn room_row(backend: super::Backend, room: &str) -> Option<HeldTransaction> {
        let (url, _) = super::pg_redis_urls().filter(|_| backend == super::Backend::PostgresRedis)?;
        let lock =
            format!("SELECT count(*) FROM (SELECT id FROM rooms WHERE id = '{room}' FOR UPDATE) AS held;");
        let (holder, locked) = HeldTransaction::hold(&url, &lock).await;
        assert_eq!(locked.as_deref(), Some("1"), "the room's row is held");
        Some(holder)
    }

    pub async fn commit(mut self) {
        self.stdin.write_all(b"COMMIT;\n").await.expect("psql reads");
        self.stdin.flush().await.expect("psql reads");
    }
}

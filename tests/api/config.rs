//! Start-up configuration: a bad setting stops the server with one line naming it, before
//! anything touches the database; what a server opens before it listens; a start killed
//! while it migrates.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{Backend, parley_command, spawn_app_alone_with};

/// Runs `parley` with `env` and returns (success, stderr lines).
async fn start(env: &[(&str, String)]) -> (bool, Vec<String>) {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    let output = parley_command(&env).stdin(Stdio::null()).output().await.expect("run parley");
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.success(), stderr.lines().map(str::to_owned).collect())
}

#[tokio::test]
async fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = format!("sqlite://{}/config.db?mode=rwc", dir.path().display());
    for (name, value) in [
        ("PARLEY_BIND", "not-an-address"),
        ("PARLEY_EDIT_WINDOW_SECS", "-5"),
        ("PARLEY_DEMO", "maybe"),
        ("PARLEY_JWT_PUBLIC_KEY", "/no/such/key.pem"),
        ("PARLEY_REDIS_NAMESPACE", "it's"),
        ("PARLEY_DB_POOL_WARM", "13"),
    ] {
        let (ok, lines) = start(&[("DATABASE_URL", db.clone()), (name, value.to_owned())]).await;
        assert!(!ok, "{name}={value} must stop start-up");
        assert_eq!(lines.len(), 1, "{name}={value}: one line expected, got {lines:?}");
        assert!(lines[0].contains(name), "{name}={value}: the line names the setting: {}", lines[0]);
    }
    assert!(
        !dir.path().join("config.db").exists(),
        "a refused start must not have created or migrated the database"
    );
}

#[tokio::test]
async fn postgres_without_a_jwt_secret_is_refused() {
    let (ok, lines) = start(&[
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/never".to_owned()),
        ("PARLEY_DEMO", "false".into()),
    ])
    .await;
    assert!(!ok, "PostgreSQL without PARLEY_JWT_SECRET must not start");
    assert_eq!(lines.len(), 1, "one line expected, got {lines:?}");
    assert!(lines[0].contains("PARLEY_JWT_SECRET"), "{}", lines[0]);
}

#[tokio::test]
async fn a_token_before_the_demo_exists_says_how_to_get_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let env = [("DATABASE_URL".to_owned(), format!("sqlite://{}/fresh.db?mode=rwc", dir.path().display()))];
    let output = parley_command(&env).args(["token", "--user", "alice"]).stdin(Stdio::null()).output().await;
    let output = output.expect("run parley token");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "no demo organisation yet: start the server once (it seeds the demo) or create one with `parley org create`"
        ),
        "a new user is told what to do: {stderr}"
    );
}

/// A burst right after start-up (or after a quiet hour) must not wait while a dozen new
/// connections open and warm up at once: the server opens them before it listens.
#[tokio::test]
async fn a_postgres_server_opens_its_pool_before_it_listens() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let settings = [("PARLEY_DB_POOL_SIZE", "12"), ("PARLEY_DB_POOL_WARM", "10")];
    let (database, _app) = spawn_app_alone_with(backend, &settings).await;
    let url = &database.as_ref().expect("PostgreSQL has a database of its own").url;
    let count = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND backend_type = 'client backend'";
    let output = tokio::process::Command::new("psql")
        .args([url.as_str(), "-Atc", count])
        .output()
        .await
        .expect("psql runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let backends: u32 =
        stdout.trim().parse().unwrap_or_else(|_| panic!("a count of backends, not {stdout:?}"));
    // Start-up work alone leaves about five open.
    assert!((10..=12).contains(&backends), "10 to 12 pooled connections expected, found {backends}");
}

/// A start killed while it migrates a new SQLite database (a deploy, Ctrl-C) leaves it as it
/// was, not a table without its migration's record, which would stop every later start with
/// "table … already exists". Each of five fresh databases is killed as soon as its start
/// reports it is applying its first migration, the longest (six tables and their indexes),
/// so the kill
/// lands inside it; the next start then migrates it and listens.
#[tokio::test]
async fn a_start_killed_while_migrating_leaves_a_database_the_next_start_opens() {
    for attempt in 0..5 {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let env = [
            ("DATABASE_URL", format!("sqlite://{}/killed.db?mode=rwc", dir.path().display())),
            ("PARLEY_BIND", "127.0.0.1:0".to_owned()),
            ("PARLEY_DEMO", "false".to_owned()),
            ("RUST_LOG", "warn,sea_orm_migration=info".to_owned()),
        ];
        let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let serve = || {
            parley_command(&env)
                .arg("serve")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn parley")
        };
        let mut killed = serve();
        let mut logs = BufReader::new(killed.stderr.take().expect("piped stderr")).lines();
        loop {
            let line = logs.next_line().await.expect("parley's log").expect("parley migrates");
            if line.contains("Applying migration '") {
                break;
            }
        }
        killed.start_kill().expect("kill parley");
        killed.wait().await.expect("parley ends");

        let mut next = serve();
        let output = BufReader::new(next.stdout.take().expect("piped stdout")).lines();
        let listening = tokio::time::timeout(Duration::from_secs(30), async {
            let mut output = output;
            while let Ok(Some(line)) = output.next_line().await {
                if line.contains("listening on") {
                    return true;
                }
            }
            false
        });
        if !listening.await.unwrap_or(false) {
            next.start_kill().expect("kill parley");
            let output = next.wait_with_output().await.expect("parley's output");
            panic!("attempt {attempt}: the next start failed: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
}

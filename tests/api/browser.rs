//! The browser pages in a real headless Chromium: GraphiQL and the `/app` reference client,
//! with the browser's network ending at the server under test. Each test starts a server,
//! creates its users and rooms, and runs one case of `tests/browser/` (Node.js and
//! playwright-core driving Debian's `chromium`), which asserts what a user sees; the test
//! fails with the case's output when the case does.
//!
//! Skipped, with one notice, when Node.js, Chromium or `tests/browser/node_modules` is
//! missing; `PARLEY_TEST_REQUIRE_BROWSER=1` (set by `.ci/run`) turns the skip into a failure.
//! Screenshots land in `target/tmp/screenshots/` (`docs/` keeps two of them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::api::{create_channel, send};
use crate::helpers::{Backend, TestApp, TestUser, spawn_app, spawn_app_with};

backend_tests!(graphiql_works_offline, app_shows_unread_badges_toasts_and_reads, app_resumes_without_gaps);

/// On SQLite only: the demo is seeded into an empty database, which the shared PostgreSQL
/// test database never is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_signs_in_with_a_pasted_token_or_a_demo_user_and_out_when_deactivated() {
    let Some(cases) = cases_dir() else { return };
    let app = spawn_app_with(Backend::Sqlite, &[("PARLEY_DEMO", "true")]).await;
    let setup = setup(&app, &[], json!({}));
    run_case(&cases, "app-sign-in.mjs", setup, &app).await;
}

/// A case drives a few pages; Chromium's start is most of it.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

async fn graphiql_works_offline(backend: Backend) {
    let Some(cases) = cases_dir() else { return };
    let app = spawn_app(backend).await;
    let (alice, bob, general) = alice_and_bob_in_general(&app).await;
    let setup = setup(&app, &[&alice, &bob], json!({ "general": general }));
    run_case(&cases, "graphiql.mjs", setup, &app).await;
}

async fn app_shows_unread_badges_toasts_and_reads(backend: Backend) {
    let Some(cases) = cases_dir() else { return };
    let app = spawn_app(backend).await;
    let (alice, bob, general) = alice_and_bob_in_general(&app).await;
    let random = create_channel(&app, &bob, "random", &[&alice]).await;
    send(&app, &bob, &random, "welcome to random").await;
    let setup = setup(&app, &[&alice, &bob], json!({ "general": general, "random": random }));
    run_case(&cases, "app-unread.mjs", setup, &app).await;
    assert_eq!(crate::helpers::api::unread_count(&app, &alice, &general).await, 0, "read in the browser");
}

async fn app_resumes_without_gaps(backend: Backend) {
    let Some(cases) = cases_dir() else { return };
    let app = spawn_app(backend).await;
    let (alice, bob, general) = alice_and_bob_in_general(&app).await;
    let setup = setup(&app, &[&alice, &bob], json!({ "general": general }));
    run_case(&cases, "app-resume.mjs", setup, &app).await;
}

async fn alice_and_bob_in_general(app: &TestApp) -> (TestUser, TestUser, String) {
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let bob = org.user("bob").await;
    let general = create_channel(app, &alice, "general", &[&bob]).await;
    (alice, bob, general)
}

/// What a case reads from its first argument.
fn setup(app: &TestApp, users: &[&TestUser], rooms: Value) -> Value {
    let users: serde_json::Map<String, Value> = users
        .iter()
        .map(|u| (u.handle.clone(), json!({ "id": u.id, "handle": u.handle, "token": u.token })))
        .collect();
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    json!({ "url": app.url(""), "users": users, "rooms": rooms, "screenshots": screenshots })
}

async fn run_case(cases: &Path, case: &str, setup: Value, app: &TestApp) {
    let run =
        Command::new("node").arg(case).arg(setup.to_string()).current_dir(cases).kill_on_drop(true).output();
    let output = tokio::time::timeout(CASE_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("{case} took over {CASE_TIMEOUT:?}"))
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{case} failed:\n{stdout}{stderr}\n--- server log ---\n{}",
        app.logs().join("\n")
    );
}

/// `tests/browser/` when Node.js, Chromium and the case's npm packages are all there.
fn cases_dir() -> Option<PathBuf> {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("PARLEY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let node = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [
        (!node).then_some("node"),
        (!Path::new(&chromium).exists()).then_some("chromium (apt-get install chromium)"),
        (!cases.join("node_modules/playwright-core").exists())
            .then_some("tests/browser/node_modules (npm ci)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Some(cases);
    }
    if std::env::var("PARLEY_TEST_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("PARLEY_TEST_REQUIRE_BROWSER=1 but the browser tests lack: {}", missing.join(", "));
    }
    static SKIP_NOTICE: Once = Once::new();
    SKIP_NOTICE.call_once(|| {
        // Straight to the process's stderr: libtest captures eprintln!.
        let notice = format!("SKIPPED browser tests: missing {}\n", missing.join(", "));
        let _ = std::io::stderr().write_all(notice.as_bytes());
    });
    None
}

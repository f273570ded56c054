//! The test harness: the two backends and the macro that runs a test on
//! each, response assertions and token forging. `app` spawns real `parley`
//! processes (one per test, never one per assertion) and creates isolated
//! organisations and users through the admin CLI; `api` has typed shortcuts
//! for common operations; `ws` and `subscription` speak GraphQL over
//! WebSocket.
//!
//! Isolation: on SQLite every server gets its own database file in a temporary
//! directory; on PostgreSQL all tests share one database and isolate
//! themselves by creating an organisation with a unique slug.
//!
//! This module must never reach into the server's crates: the suite talks to
//! the binary only, exactly as a client or an operator would.

pub mod api;
mod app;
mod cli;
pub mod proxy;
pub mod push;
pub mod receiver;
pub mod services;
pub mod smtp;
pub mod subscription;
pub mod ws;

use std::io::Write;
use std::sync::Once;
use std::time::Duration;

use serde_json::{Value, json};

pub use app::{TestApp, spawn_app, spawn_app_alone, spawn_app_alone_with, spawn_app_with};
pub use cli::{TestUser, parley_command};

/// The HS256 secret every test server is started with, so tests can forge
/// tokens (valid and invalid) themselves.
pub const JWT_SECRET: &str = "parley-integration-tests-secret-0123456789abcdef";
/// How long any single expected response or event may take.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long we listen when asserting that nothing arrives.
pub const QUIET: Duration = Duration::from_millis(400);

/// Generates, for each listed `async fn name(backend: Backend)` of the calling
/// module, `sqlite::name` and `postgres::name` test wrappers (filter with
/// `cargo test --test api sqlite::` or `postgres::`).
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = crate::helpers::Backend::postgres_redis() {
                        super::$name(backend).await;
                    }
                }
            )+
        }
    };
}

/// Generates `postgres_redis::name` tests for argument-less `async fn name()`s
/// that need PostgreSQL and Redis (several instances, or a dependency of their
/// own to stop), run only when both are configured.
macro_rules! pg_test {
    ($($name:ident),+ $(,)?) => {
        mod postgres_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if crate::helpers::Backend::postgres_redis().is_some() {
                        super::$name().await;
                    }
                }
            )+
        }
    };
}

/// Where a test server keeps its state and carries its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file per server and the in-process event bus.
    Sqlite,
    /// The shared PostgreSQL database and Redis from `PARLEY_TEST_*`.
    PostgresRedis,
}

impl Backend {
    /// `Some(PostgresRedis)` when PostgreSQL and Redis are configured. When
    /// they are not, the suite is skipped (one line on the raw stderr, once
    /// per process), or fails when `PARLEY_TEST_REQUIRE_BACKENDS=1`.
    pub fn postgres_redis() -> Option<Backend> {
        pg_redis_urls().map(|_| Backend::PostgresRedis)
    }
}

/// The `(database, redis)` URLs of the PostgreSQL+Redis suites, if configured.
pub fn pg_redis_urls() -> Option<(String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (var("PARLEY_TEST_DATABASE_URL"), var("PARLEY_TEST_REDIS_URL")) {
        (Some(db), Some(redis)) => Some((db, redis)),
        _ => {
            if var("PARLEY_TEST_REQUIRE_BACKENDS").as_deref() == Some("1") {
                panic!(
                    "PARLEY_TEST_REQUIRE_BACKENDS=1 but PARLEY_TEST_DATABASE_URL or \
                     PARLEY_TEST_REDIS_URL is unset"
                );
            }
            static SKIP_NOTICE: Once = Once::new();
            SKIP_NOTICE.call_once(|| {
                // Straight to the process's stderr: libtest captures eprintln!.
                let _ = std::io::stderr().write_all(
                    b"SKIPPED postgres+redis suites: set PARLEY_TEST_DATABASE_URL and PARLEY_TEST_REDIS_URL\n",
                );
            });
            None
        }
    }
}

/// Signs `claims` with HS256 and `secret`.
pub fn mint_token(claims: &Value, secret: &str) -> String {
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&header, claims, &key).expect("sign a test JWT")
}

/// Claims valid for an hour, as the server's own tokens carry them.
pub fn claims(user_id: &str, org_id: &str, role: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "sub": user_id, "org": org_id, "role": role, "iat": now, "exp": now + 3600 })
}

/// Waits until `read` returns at least `n` items (panics after `wait`, naming `what`) and
/// returns all of them: what the test's own receivers (webhooks, SMTP) offer.
pub async fn at_least<T>(what: &str, n: usize, wait: Duration, read: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let received = read();
        if received.len() >= n {
            return received;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} of {n} {what} after {wait:?}", received.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that `response` has no errors and returns its `data`.
pub fn data(response: Value) -> Value {
    let errors = response.get("errors").and_then(Value::as_array);
    assert!(errors.is_none_or(|e| e.is_empty()), "unexpected GraphQL errors: {response:#}");
    response.get("data").cloned().unwrap_or(Value::Null)
}

/// The `extensions.code` of every error in `response`.
pub fn error_codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap_or("<no code>").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that `response` failed with an error whose `extensions.code` is `code`.
#[track_caller]
pub fn assert_error_code(response: &Value, code: &str) {
    let codes = error_codes(response);
    assert!(
        codes.iter().any(|c| c == code),
        "expected an error with code {code}, got codes {codes:?} in {response:#}"
    );
}

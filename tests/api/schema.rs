//! `schema.graphql`, checked in at the repository root, is the SDL the server
//! serves (`parley schema`). `UPDATE_SCHEMA=1 cargo test --test api schema`
//! rewrites it instead of failing.

use std::path::Path;

use crate::helpers::parley_command;

#[tokio::test]
async fn schema_graphql_is_current() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let env = [("DATABASE_URL".to_owned(), format!("sqlite://{}/schema.db?mode=rwc", dir.path().display()))];
    let output = parley_command(&env).arg("schema").output().await.expect("run `parley schema`");
    assert!(output.status.success(), "`parley schema` failed: {}", String::from_utf8_lossy(&output.stderr));
    let served = String::from_utf8(output.stdout).expect("the SDL is UTF-8");
    assert!(served.contains("type Query"), "`parley schema` printed no SDL:\n{served}");

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    if std::env::var("UPDATE_SCHEMA").as_deref() == Ok("1") {
        std::fs::write(&path, &served).expect("write schema.graphql");
        return;
    }
    let checked_in = std::fs::read_to_string(&path)
        .expect("schema.graphql exists at the repository root (UPDATE_SCHEMA=1 creates it)");
    assert!(
        checked_in.trim_end() == served.trim_end(),
        "schema.graphql is stale: run `UPDATE_SCHEMA=1 cargo test --test api schema` and commit it"
    );
}

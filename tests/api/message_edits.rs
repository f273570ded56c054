//! Changing sent messages: `editMessage` (author only, within the configured
//! window, from the author's send budget) and `deleteMessage` (author or org admin; soft,
//! the message keeps its seq and loses its body).

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::api::{MESSAGE, all_messages, create_channel, id_of, latest_seq, send, seqs};
use crate::helpers::{Backend, assert_error_code, spawn_app, spawn_app_with};

backend_tests!(
    author_edits_within_the_window,
    edit_after_the_window_is_forbidden,
    delete_is_soft_and_for_author_or_admin,
    edits_spend_the_send_budget,
);

const EDIT: &str =
    "mutation($input: EditMessageInput!) { editMessage(input: $input) { id seq body editedAt } }";
const DELETE: &str = "mutation($id: ID!) { deleteMessage(messageId: $id) { id seq body deletedAt } }";

async fn author_edits_within_the_window(backend: Backend) {
    let app = spawn_app(backend).await;
    let (acme, globex) = (app.create_org().await, app.create_org().await);
    let (alice, bob) = (acme.user("alice").await, acme.user("bob").await);
    let mallory = globex.user("mallory").await;
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let message = send(&app, &alice, &general, "helo").await;
    let id = id_of(&message);

    let edited =
        app.ok(&alice, EDIT, json!({ "input": { "messageId": id, "body": "hello" } })).await["editMessage"]
            .clone();
    assert_eq!((edited["body"].clone(), edited["seq"].clone()), (json!("hello"), json!(1)));
    assert!(edited["editedAt"].is_string());

    assert_error_code(
        &app.gql(&bob, EDIT, json!({ "input": { "messageId": id, "body": "hijacked" } })).await,
        "FORBIDDEN",
    );
    assert_error_code(
        &app.gql(&mallory, EDIT, json!({ "input": { "messageId": id, "body": "x" } })).await,
        "NOT_FOUND",
    );
    assert_error_code(
        &app.gql(&alice, EDIT, json!({ "input": { "messageId": id, "body": "   " } })).await,
        "BAD_USER_INPUT",
    );
    assert_error_code(
        &app.gql(&alice, EDIT, json!({ "input": { "messageId": "m1", "body": "x" } })).await,
        "BAD_USER_INPUT",
    );

    let stored = all_messages(&app, &bob, &general).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["body"], "hello", "failed edits changed nothing");
    assert_eq!(stored[0]["editedAt"], edited["editedAt"], "the time answered is the time kept");
    assert_eq!(latest_seq(&app, &bob, &general).await, 1, "an edit is not a new message");
}

async fn edit_after_the_window_is_forbidden(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_EDIT_WINDOW_SECS", "1")]).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let general = create_channel(&app, &alice, "general", &[]).await;
    let id = id_of(&send(&app, &alice, &general, "typo").await);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = app.gql(&alice, EDIT, json!({ "input": { "messageId": id, "body": "fixed" } })).await;
    assert_error_code(&late, "FORBIDDEN");
    let stored = &all_messages(&app, &alice, &general).await[0];
    assert_eq!((stored["body"].clone(), stored["editedAt"].clone()), (json!("typo"), Value::Null));
}

async fn delete_is_soft_and_for_author_or_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let root = org.user_with_role("root", "admin").await;
    let general = create_channel(&app, &alice, "general", &[&bob, &root]).await;
    let alices = id_of(&send(&app, &alice, &general, "mine").await);
    let bobs = id_of(&send(&app, &bob, &general, "oops").await);
    send(&app, &alice, &general, "after").await;

    assert_error_code(&app.gql(&bob, DELETE, json!({ "id": alices })).await, "FORBIDDEN");
    assert_eq!(all_messages(&app, &bob, &general).await[0]["body"], "mine");

    let deleted = app.ok(&alice, DELETE, json!({ "id": alices })).await["deleteMessage"].clone();
    assert_eq!((deleted["body"].clone(), deleted["seq"].clone()), (Value::Null, json!(1)));
    assert!(deleted["deletedAt"].is_string());
    let by_admin = app.ok(&root, DELETE, json!({ "id": bobs })).await["deleteMessage"].clone();
    assert!(by_admin["body"].is_null() && by_admin["deletedAt"].is_string());

    let stored = all_messages(&app, &bob, &general).await;
    assert_eq!(seqs(&stored), vec![1, 2, 3], "deleted messages keep their place");
    let bodies: Vec<Value> = stored.iter().map(|m| m["body"].clone()).collect();
    assert_eq!(bodies, vec![Value::Null, Value::Null, json!("after")]);
    let query = format!("query($id: ID!) {{ node(id: $id) {{ ... on Message {{ {MESSAGE} }} }} }}");
    assert!(app.ok(&bob, &query, json!({ "id": alices })).await["node"]["body"].is_null());
}

/// Every edit reaches every subscriber of the room, as a message does: a client looping on
/// `editMessage` is limited as one looping on `sendMessage`, from the same budget.
async fn edits_spend_the_send_budget(backend: Backend) {
    let limits = [("PARLEY_SEND_RATE_PER_SEC", "1"), ("PARLEY_SEND_BURST", "3")];
    let app = spawn_app_with(backend, &limits).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let general = create_channel(&app, &alice, "general", &[]).await;
    let id = id_of(&send(&app, &alice, &general, "draft").await);
    // A refused body spends nothing.
    let empty = app.gql(&alice, EDIT, json!({ "input": { "messageId": id, "body": "  " } })).await;
    assert_error_code(&empty, "BAD_USER_INPUT");

    let mut accepted = Vec::new();
    for n in 0..6 {
        let response =
            app.gql(&alice, EDIT, json!({ "input": { "messageId": id, "body": format!("v{n}") } })).await;
        if response["errors"].is_array() {
            assert_error_code(&response, "RATE_LIMITED");
        } else {
            accepted.push(format!("v{n}"));
        }
    }
    // The send spent one of the burst of 3; at most one more refilled meanwhile.
    assert!((2..=3).contains(&accepted.len()), "accepted {accepted:?}");
    let stored = all_messages(&app, &alice, &general).await;
    assert_eq!(stored[0]["body"], json!(accepted.last()), "a limited edit changed nothing");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.ok(&alice, EDIT, json!({ "input": { "messageId": id, "body": "refilled" } })).await;
}

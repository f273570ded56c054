//! Inputs at the edges: wildcard characters in searches, cursors that do not fit, paging
//! arguments on their own, and writes into archived rooms. Each is a clear error or the
//! literal answer, and changes nothing.

use serde_json::json;

use crate::helpers::api::{create_channel, edge_ids, send, seqs};
use crate::helpers::{Backend, assert_error_code, spawn_app};

backend_tests!(
    search_matches_wildcards_literally,
    oversized_cursors_are_bad_input,
    paging_follows_the_cursor_given,
    archived_rooms_refuse_deletions_and_removals,
);

const USERS: &str = "query($search: String) { users(search: $search) { edges { node { id handle } } } }";
const MESSAGES: &str = "query($room: ID!, $first: Int, $after: String, $last: Int, $before: String, $around: Int) { \
    messages(roomId: $room, first: $first, after: $after, last: $last, before: $before, aroundSeq: $around) { \
    edges { node { seq } } } }";

async fn search_matches_wildcards_literally(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let (john, johnx) = (org.user("john_doe").await, org.user("johnxdoe").await);

    let found = app.ok(&alice, USERS, json!({ "search": "john_d" })).await;
    assert_eq!(edge_ids(&found["users"]), vec![john.id.clone()], "`_` is a character, not a wildcard");
    let found = app.ok(&alice, USERS, json!({ "search": "JOHN" })).await;
    assert_eq!(edge_ids(&found["users"]).len(), 2, "case-insensitive: {found}");
    assert!(edge_ids(&found["users"]).contains(&johnx.id));
    let found = app.ok(&alice, USERS, json!({ "search": "%" })).await;
    assert!(edge_ids(&found["users"]).is_empty(), "`%` matches only itself: {found}");
}

async fn oversized_cursors_are_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let rooms = "query($after: String) { rooms(after: $after) { edges { cursor } } }";
    for after in ["9223372036854775807", "18446744073709551615", "-1", "x"] {
        assert_error_code(&app.gql(&alice, rooms, json!({ "after": after })).await, "BAD_USER_INPUT");
        let users = "query($after: String) { users(after: $after) { edges { cursor } } }";
        assert_error_code(&app.gql(&alice, users, json!({ "after": after })).await, "BAD_USER_INPUT");
    }
    let around = app.gql(&alice, MESSAGES, json!({ "room": room, "around": i64::MIN })).await;
    assert_error_code(&around, "BAD_USER_INPUT");
    let mixed = app.gql(&alice, MESSAGES, json!({ "room": room, "first": 5, "before": "3" })).await;
    assert_error_code(&mixed, "BAD_USER_INPUT");
}

async fn paging_follows_the_cursor_given(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    for i in 1..=6 {
        send(&app, &alice, &room, &format!("m{i}")).await;
    }
    let page = |data: serde_json::Value| {
        let edges = data["messages"]["edges"].as_array().expect("edges").clone();
        seqs(&edges.iter().map(|e| e["node"].clone()).collect::<Vec<_>>())
    };
    let after = app.ok(&alice, MESSAGES, json!({ "room": room, "after": "4" })).await;
    assert_eq!(page(after), vec![5, 6], "`after` alone pages forward from the cursor");
    let before = app.ok(&alice, MESSAGES, json!({ "room": room, "before": "3" })).await;
    assert_eq!(page(before), vec![1, 2], "`before` alone pages backward from the cursor");
}

async fn archived_rooms_refuse_deletions_and_removals(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "general", &[&bob]).await;
    let message = send(&app, &alice, &room, "keep me").await;
    app.ok(&alice, "mutation($id: ID!) { archiveRoom(roomId: $id) { id } }", json!({ "id": room })).await;

    let delete = "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }";
    assert_error_code(&app.gql(&alice, delete, json!({ "id": message["id"] })).await, "FORBIDDEN");
    let remove = "mutation($room: ID!, $user: ID!) { removeMember(roomId: $room, userId: $user) { id } }";
    assert_error_code(&app.gql(&alice, remove, json!({ "room": room, "user": bob.id })).await, "FORBIDDEN");

    let history = app.ok(&bob, MESSAGES, json!({ "room": room })).await;
    assert_eq!(history["messages"]["edges"][0]["node"]["seq"], 1, "still there, still readable by bob");
    let body = app
        .ok(
            &bob,
            "query($id: ID!) { node(id: $id) { ... on Message { body } } }",
            json!({ "id": message["id"] }),
        )
        .await;
    assert_eq!(body["node"]["body"], "keep me", "not deleted");
}

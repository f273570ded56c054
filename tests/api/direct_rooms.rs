//! Direct rooms: `openDirectRoom` is idempotent by member set (whoever opens
//! it, in whatever order), holds 2–9 members including the viewer, and cannot
//! be left; a direct room of two turns read-only when the other is deactivated, and is still
//! found by its members.

use serde_json::json;

use crate::helpers::api::{id_of, member_ids, my_room_ids, open_dm, room, send, try_send};
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, assert_error_code, spawn_app};

backend_tests!(
    open_direct_room_is_idempotent_by_member_set,
    open_direct_room_needs_two_to_nine_members,
    a_direct_room_with_a_deactivated_user_turns_read_only,
);

const OPEN_DM: &str = "mutation($ids: [ID!]!) { openDirectRoom(userIds: $ids) { id kind members { edges { node { user { id } } } } } }";
const LEAVE: &str = "mutation($id: ID!) { leaveRoom(roomId: $id) }";
const ROOM_BY_ID: &str = "query($id: ID!) { room(id: $id) { id name } }";

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn open_direct_room_is_idempotent_by_member_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);

    let dm = app.ok(&alice, OPEN_DM, json!({ "ids": [bob.id] })).await["openDirectRoom"].clone();
    assert_eq!(dm["kind"], "DIRECT");
    assert_eq!(member_ids(&dm), sorted(vec![alice.id.clone(), bob.id.clone()]));
    let dm = id_of(&dm);
    assert_eq!(open_dm(&app, &bob, &[&alice]).await, dm, "the other side opens the same room");
    assert_eq!(open_dm(&app, &alice, &[&bob, &alice]).await, dm, "listing the viewer changes nothing");

    let group = open_dm(&app, &alice, &[&bob, &carol]).await;
    assert_ne!(group, dm);
    assert_eq!(open_dm(&app, &carol, &[&bob, &alice]).await, group, "order of ids is irrelevant");
    assert_eq!(open_dm(&app, &bob, &[&carol, &alice]).await, group);

    assert_error_code(&app.gql(&alice, LEAVE, json!({ "id": dm })).await, "BAD_USER_INPUT");
    assert_eq!(member_ids(&room(&app, &alice, &dm).await).len(), 2, "a DM cannot be left");
    assert_error_code(&app.gql(&carol, ROOM_BY_ID, json!({ "id": dm })).await, "NOT_FOUND");
    let mut dms = my_room_ids(&app, &alice, json!({ "kind": "DIRECT" })).await;
    dms.sort();
    assert_eq!(dms, sorted(vec![dm, group]));
}

async fn open_direct_room_needs_two_to_nine_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let (acme, globex) = (app.create_org().await, app.create_org().await);
    let root = acme.user_with_role("root", "admin").await;
    let mallory = globex.user("mallory").await;
    let create = "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }";
    let mut others = Vec::new();
    for i in 0..9 {
        let input = json!({ "handle": format!("user{i}"), "displayName": format!("User {i}") });
        others.push(id_of(&app.ok(&root, create, json!({ "input": input })).await["createUser"]));
    }

    for ids in [json!([]), json!([root.id]), json!(others)] {
        assert_error_code(&app.gql(&root, OPEN_DM, json!({ "ids": ids })).await, "BAD_USER_INPUT");
    }
    assert_error_code(&app.gql(&root, OPEN_DM, json!({ "ids": ["not-a-uuid"] })).await, "BAD_USER_INPUT");
    assert_error_code(&app.gql(&root, OPEN_DM, json!({ "ids": [mallory.id] })).await, "NOT_FOUND");
    assert!(my_room_ids(&app, &root, json!(null)).await.is_empty(), "no room was created by bad input");

    let nine = app.ok(&root, OPEN_DM, json!({ "ids": others[..8] })).await["openDirectRoom"].clone();
    assert_eq!(member_ids(&nine).len(), 9);
}

/// Nobody will read what is sent to a deactivated account: alice's room with bob alone
/// turns read-only (archived, its history kept), live, while their group with carol goes on.
async fn a_direct_room_with_a_deactivated_user_turns_read_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let root = org.user_with_role("root", "admin").await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let (dm, group) = (open_dm(&app, &alice, &[&bob]).await, open_dm(&app, &alice, &[&bob, &carol]).await);
    send(&app, &bob, &dm, "see you").await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut updates =
        ws.subscribe("updates", "subscription { roomUpdated { roomId reason } }", json!({})).await;
    ws.settle().await;

    let deactivate = "mutation($id: ID!) { deactivateUser(userId: $id) { deactivatedAt } }";
    app.ok(&root, deactivate, json!({ "id": bob.id })).await;
    updates.next_room_update(&dm, &["ARCHIVED"]).await;
    let refused = try_send(&app, &alice, json!({ "roomId": dm, "body": "hello?" })).await;
    assert_error_code(&refused, "FORBIDDEN");
    let history = "query($id: ID!) { room(id: $id) { archivedAt } messages(roomId: $id, last: 10) { edges { node { body } } } }";
    let seen = app.ok(&alice, history, json!({ "id": dm })).await;
    assert!(seen["room"]["archivedAt"].is_string(), "{seen}");
    assert_eq!(seen["messages"]["edges"], json!([{ "node": { "body": "see you" } }]), "only what bob sent");
    assert_eq!(my_room_ids(&app, &alice, json!({ "archived": true })).await, std::slice::from_ref(&dm));

    send(&app, &alice, &group, "bob left us").await;
    assert_eq!(my_room_ids(&app, &carol, json!({ "kind": "DIRECT" })).await, std::slice::from_ref(&group));

    // Opening either by its members still finds it; a new room with bob is refused.
    let reopened = app.ok(&alice, OPEN_DM, json!({ "ids": [bob.id] })).await;
    assert_eq!(reopened["openDirectRoom"]["id"], dm.as_str());
    let reopened = app.ok(&carol, OPEN_DM, json!({ "ids": [alice.id, bob.id] })).await;
    assert_eq!(reopened["openDirectRoom"]["id"], group.as_str());
    assert_error_code(&app.gql(&carol, OPEN_DM, json!({ "ids": [bob.id] })).await, "NOT_FOUND");
}

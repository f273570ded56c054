//! Presence: a user is online while they hold a WebSocket anywhere; closing one tab of many
//! changes nothing; the last one closing makes them offline with a last-seen time; a status
//! set by hand wins until cleared; `presenceChanged` reaches those who share a room, on every
//! instance, and follows who joins and leaves; a killed instance's users go offline once its
//! leases lapse; a change an instance missed while cut off arrives once it can read again;
//! a deactivated user is offline.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::api::create_channel;
use crate::helpers::proxy::{CuttableProxy, b_behind_proxies};
use crate::helpers::subscription::Subscription;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, QUIET, TestApp, TestUser, data, pg_redis_urls, spawn_app, spawn_app_with};

backend_tests!(
    presence_follows_the_last_connection,
    a_status_set_by_hand_wins_until_cleared,
    the_people_followed_change_with_membership,
    a_deactivated_user_is_offline_whatever_they_had_set
);
pg_test!(
    presence_crosses_instances_and_outlives_a_killed_one,
    a_missed_change_is_reread_once_the_database_answers,
    a_join_missed_while_cut_off_is_followed_after_the_resync
);

const CHANGES: &str =
    "subscription($ids: [ID!]) { presenceChanged(userIds: $ids) { user { handle } status } }";
const PRESENCE: &str = "query($search: String) { users(search: $search) { edges { node { handle presence { status lastSeenAt } } } } }";
const SET: &str = "mutation($status: ManualStatus) { setPresence(status: $status) { status } }";
const ADD: &str = "mutation($id: ID!, $users: [ID!]!) { addMembers(roomId: $id, userIds: $users) { id } }";
const JOIN: &str = "mutation($id: ID!) { joinRoom(roomId: $id) { id } }";
const LEAVE: &str = "mutation($id: ID!) { leaveRoom(roomId: $id) }";

/// What `viewer` sees of `handle`'s presence.
async fn presence(app: &TestApp, viewer: &TestUser, handle: &str) -> Value {
    let page = app.ok(viewer, PRESENCE, json!({ "search": handle })).await;
    let edges = page["users"]["edges"].as_array().expect("edges").clone();
    let user = edges.iter().find(|e| e["node"]["handle"] == handle).expect("the user is listed");
    user["node"]["presence"].clone()
}

fn change(handle: &str, status: &str) -> Value {
    json!({ "user": { "handle": handle }, "status": status })
}

async fn watch(app: &TestApp, viewer: &TestUser) -> (WsClient, Subscription) {
    let mut ws = WsClient::connect(app, viewer).await;
    let changes = ws.subscribe("presence", CHANGES, json!({})).await;
    (ws, changes)
}

async fn presence_follows_the_last_connection(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    create_channel(&app, &alice, "general", &[&bob]).await;
    assert_eq!(presence(&app, &bob, "alice").await, json!({ "status": "OFFLINE", "lastSeenAt": null }));
    let (_bobs, mut bob_sees) = watch(&app, &bob).await;

    let laptop = WsClient::connect(&app, &alice).await;
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "ONLINE"));
    assert_eq!(presence(&app, &bob, "alice").await["status"], "ONLINE");
    let phone = WsClient::connect(&app, &alice).await;
    drop(phone);
    bob_sees.assert_nothing(QUIET).await;
    assert_eq!(presence(&app, &bob, "alice").await["status"], "ONLINE", "one tab of two closed");

    drop(laptop);
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "OFFLINE"));
    let seen = presence(&app, &bob, "alice").await;
    assert_eq!(seen["status"], "OFFLINE");
    assert!(seen["lastSeenAt"].is_string(), "offline users show when they were last seen: {seen}");
    let _back = WsClient::connect(&app, &alice).await;
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "ONLINE"));
    let seen = presence(&app, &bob, "alice").await;
    assert_eq!(seen, json!({ "status": "ONLINE", "lastSeenAt": null }), "back: not last seen at the close");

    // Carol shares no room with Bob: he hears nothing of her.
    let _carols = WsClient::connect(&app, &carol).await;
    bob_sees.assert_nothing(QUIET).await;
    assert_eq!(presence(&app, &bob, "carol").await["status"], "ONLINE", "but may look her up");

    // An integration account (an SMS gateway) may hold a socket to ingest: nobody online.
    let gateway = org.user_with_role("gateway", "integration").await;
    let _gateways = WsClient::connect(&app, &gateway).await;
    assert_eq!(presence(&app, &bob, "gateway").await["status"], "OFFLINE");
}

async fn a_status_set_by_hand_wins_until_cleared(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    create_channel(&app, &alice, "general", &[&bob, &carol]).await;
    let (_bobs, mut bob_sees) = watch(&app, &bob).await;

    let set = data(app.gql(&alice, SET, json!({ "status": "DND" })).await);
    assert_eq!(set["setPresence"]["status"], "DND");
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "DND"));
    let laptop = WsClient::connect(&app, &alice).await;
    bob_sees.assert_nothing(QUIET).await;
    assert_eq!(presence(&app, &bob, "alice").await["status"], "DND", "connecting does not clear it");

    data(app.gql(&alice, SET, json!({ "status": null })).await);
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "ONLINE"));
    drop(laptop);
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "OFFLINE"));

    // Bad input changes nothing.
    let invalid = app.gql(&alice, SET, json!({ "status": "OFFLINE" })).await;
    assert!(invalid["errors"].is_array(), "OFFLINE is not a status one sets: {invalid}");
    let mut ws = WsClient::connect(&app, &bob).await;
    let mut bad = ws.subscribe("bad", CHANGES, json!({ "ids": ["not-an-id"] })).await;
    assert_eq!(bad.next_error_code().await, "BAD_USER_INPUT");
    assert_eq!(presence(&app, &bob, "alice").await["status"], "OFFLINE");
    bob_sees.assert_nothing(QUIET).await;

    // Naming people narrows the feed to them; naming himself too, as a member list on screen
    // does, is no error.
    let mut only_carol = ws.subscribe("named", CHANGES, json!({ "ids": [carol.id, bob.id] })).await;
    let _laptop = WsClient::connect(&app, &alice).await;
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "ONLINE"));
    only_carol.assert_nothing(QUIET).await;
    let _carols = WsClient::connect(&app, &carol).await;
    assert_eq!(only_carol.next("presenceChanged").await, change("carol", "ONLINE"));
    let stranger = org.user("stranger").await;
    let mut unknown = ws.subscribe("stranger", CHANGES, json!({ "ids": [stranger.id] })).await;
    assert_eq!(unknown.next_error_code().await, "NOT_FOUND", "no room shared with Bob");
}

/// Someone who comes to share a room with the viewer (added to theirs, or met in one the
/// viewer joins) is followed from then on, and announced at once with their presence then;
/// someone who no longer shares one is not followed.
async fn the_people_followed_change_with_membership(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol, dave) =
        (org.user("alice").await, org.user("bob").await, org.user("carol").await, org.user("dave").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let random = create_channel(&app, &dave, "random", &[]).await;
    let (_bobs, mut bob_sees) = watch(&app, &bob).await;
    let carols = WsClient::connect(&app, &carol).await;
    data(app.gql(&dave, SET, json!({ "status": "DND" })).await);
    bob_sees.assert_nothing(QUIET).await;

    app.ok(&alice, ADD, json!({ "id": general, "users": [carol.id] })).await;
    assert_eq!(bob_sees.next("presenceChanged").await, change("carol", "ONLINE"), "added to his room");
    app.ok(&bob, JOIN, json!({ "id": random })).await;
    assert_eq!(bob_sees.next("presenceChanged").await, change("dave", "DND"), "met in a room he joined");
    data(app.gql(&dave, SET, json!({ "status": null })).await);
    assert_eq!(bob_sees.next("presenceChanged").await, change("dave", "OFFLINE"), "and followed");

    // Carol leaves: her going offline is not Bob's to hear, Alice's coming online is.
    app.ok(&carol, LEAVE, json!({ "id": general })).await;
    drop(carols);
    bob_sees.assert_nothing(QUIET).await;
    let _alices = WsClient::connect(&app, &alice).await;
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "ONLINE"));
    // Dave shares a second room with Bob for a while: leaving it, he is still followed.
    app.ok(&alice, ADD, json!({ "id": general, "users": [dave.id] })).await;
    app.ok(&dave, LEAVE, json!({ "id": general })).await;
    data(app.gql(&dave, SET, json!({ "status": "AWAY" })).await);
    assert_eq!(bob_sees.next("presenceChanged").await, change("dave", "AWAY"), "still in a room with him");
    // Bob leaves the room he met Dave in: Dave is no longer followed.
    app.ok(&bob, LEAVE, json!({ "id": random })).await;
    data(app.gql(&dave, SET, json!({ "status": "DND" })).await);
    bob_sees.assert_nothing(QUIET).await;
}

async fn presence_crosses_instances_and_outlives_a_killed_one() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let a = spawn_app_with(backend, &[("PARLEY_PRESENCE_HEARTBEAT_MS", "300")]).await;
    let mut b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    create_channel(&a, &alice, "general", &[&bob]).await;
    let (_bobs, mut bob_sees) = watch(&a, &bob).await;

    // A tab on each instance: closing one is no change.
    let on_a = WsClient::connect(&a, &alice).await;
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "ONLINE"));
    let _on_b = WsClient::connect(&b, &alice).await;
    drop(on_a);
    bob_sees.assert_nothing(Duration::from_secs(2)).await;
    assert_eq!(presence(&a, &bob, "alice").await["status"], "ONLINE");

    // The instance holding her last tab dies: its lease lapses and a sweep on `a` ends it.
    b.kill().await;
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "OFFLINE"));
    let seen = presence(&a, &bob, "alice").await;
    assert_eq!(seen["status"], "OFFLINE");
    assert!(seen["lastSeenAt"].is_string(), "{seen}");
}

/// B misses a change while cut off from Redis and PostgreSQL; once Redis is back its reread
/// fails on the database, and is tried again until the database answers.
async fn a_missed_change_is_reread_once_the_database_answers() {
    let Some((redis, pg, a, b)) = b_behind_proxies().await else { return };
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    create_channel(&a, &alice, "general", &[&bob]).await;
    let (_bobs, mut bob_sees) = watch(&b, &bob).await;
    tokio::time::sleep(QUIET).await;

    redis.cut();
    pg.cut();
    data(a.gql(&alice, SET, json!({ "status": "DND" })).await);
    bob_sees.assert_nothing(Duration::from_secs(1)).await;
    let retries = b.metric("parley_feed_retries_total").await;
    redis.restore();
    b.wait_for_metric_above("parley_feed_retries_total", retries, "B never retried its failed reread").await;
    bob_sees.assert_nothing(QUIET).await;
    pg.restore();
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "DND"));
}

/// B misses Carol being added to Bob's room while cut off from Redis: once it resyncs, Bob's
/// feed rereads who shares his rooms and announces her.
async fn a_join_missed_while_cut_off_is_followed_after_the_resync() {
    let Some((_, redis_url)) = pg_redis_urls() else { return };
    let (redis, redis_via_proxy) = CuttableProxy::in_front_of(&redis_url, 6379).await;
    let a = spawn_app(Backend::PostgresRedis).await;
    let b = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", redis_via_proxy.as_str())]).await;
    let org = a.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let general = create_channel(&a, &alice, "general", &[&bob]).await;
    let (_bobs, mut bob_sees) = watch(&b, &bob).await;
    let _carols = WsClient::connect(&a, &carol).await;
    bob_sees.assert_nothing(QUIET).await;

    redis.cut();
    a.ok(&alice, ADD, json!({ "id": general, "users": [carol.id] })).await;
    bob_sees.assert_nothing(Duration::from_secs(1)).await;
    redis.restore();
    assert_eq!(bob_sees.next("presenceChanged").await, change("carol", "ONLINE"));
}

/// Alice, connected and showing DND, is deactivated: bob sees her go offline at once, live
/// and when he looks her up (her status set by hand hid her sockets closing, and stayed).
async fn a_deactivated_user_is_offline_whatever_they_had_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let root = org.user_with_role("root", "admin").await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let (_bobs, mut bob_sees) = watch(&app, &bob).await;
    data(app.gql(&alice, SET, json!({ "status": "DND" })).await);
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "DND"));
    let _alices = WsClient::connect(&app, &alice).await;
    bob_sees.assert_nothing(QUIET).await;

    let deactivate = "mutation($id: ID!) { deactivateUser(userId: $id) { id } }";
    data(app.gql(&root, deactivate, json!({ "id": alice.id })).await);
    assert_eq!(bob_sees.next("presenceChanged").await, change("alice", "OFFLINE"));
    // No longer listed among users, she still is among the channel's members.
    let members = "query($id: ID!) { room(id: $id) { members { edges { node { user { handle presence { status } } } } } } }";
    let page = app.ok(&bob, members, json!({ "id": general })).await;
    let edges = page["room"]["members"]["edges"].as_array().expect("edges").clone();
    let alices = edges.iter().find(|e| e["node"]["user"]["handle"] == "alice").expect("alice is a member");
    assert_eq!(alices["node"]["user"]["presence"]["status"], "OFFLINE");
    bob_sees.assert_nothing(QUIET).await;
}

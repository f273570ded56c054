//! The live path's caches and shared fan-out, as a user sees them: events carry the author
//! and room (`roomId`, `authorId`, names) without a lookup, a renamed user or room shows the
//! new name in the next frame on every instance, a deactivated user's token is refused at
//! once on every instance and their open WebSockets close, and subscribers sharing one
//! document still get their own unread counts. Cross-instance tests run on PostgreSQL + Redis only.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, mark_read, send};
use crate::helpers::proxy::CuttableProxy;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, QUIET, TestApp, assert_error_code, pg_redis_urls, spawn_app, spawn_app_with};

backend_tests!(
    message_frames_carry_ids_author_and_room,
    shared_documents_keep_per_viewer_counts,
    per_viewer_room_fields_stay_exact_in_shared_documents,
    a_mention_count_alone_stays_each_viewers_own,
    each_root_field_frames_its_own_events,
    admins_rename_and_deactivate_users,
    a_deactivated_users_open_sockets_close,
);

// Two instances on PostgreSQL + Redis only.
pg_test!(
    a_renamed_user_shows_the_new_name_on_both_instances,
    a_deactivated_user_is_refused_on_both_instances_within_a_second,
    a_deactivated_users_sockets_close_on_both_instances,
    a_re_roled_users_sockets_close_for_a_reconnect_on_both_instances,
    a_deactivation_met_by_a_database_outage_still_closes_the_socket,
    a_renamed_room_shows_renamed_in_the_next_frame_on_both_instances,
);

const RICH: &str = "subscription { messageAdded { id seq body clientId roomId authorId \
    author { id handle displayName kind } room { id name kind } } }";
const UNREAD: &str = "subscription { unreadCountChanged { roomId unreadCount unreadTotal seq } }";
const RENAME_USER: &str = "mutation($id: ID!, $name: String) { updateUser(input: { userId: $id, displayName: $name }) { displayName } }";
const DEACTIVATE: &str = "mutation($id: ID!) { deactivateUser(userId: $id) { deactivatedAt } }";
const RENAME_ROOM: &str =
    "mutation($id: ID!, $name: String) { updateRoom(input: { roomId: $id, name: $name }) { name } }";
const VIEWER: &str = "{ viewer { handle } }";

async fn message_frames_carry_ids_author_and_room(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "general", &[&bob]).await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut live = ws.subscribe("m", RICH, json!({})).await;

    let sent = send(&app, &bob, &room, "hello").await;
    let frame = live.next("messageAdded").await;
    assert_eq!(frame["id"], sent["id"]);
    assert_eq!(frame["roomId"], json!(room));
    assert_eq!(frame["authorId"], json!(bob.id));
    assert_eq!(
        frame["author"],
        json!({ "id": bob.id, "handle": "bob", "displayName": "Bob", "kind": "HUMAN" })
    );
    assert_eq!(frame["room"], json!({ "id": room, "name": "general", "kind": "CHANNEL" }));
}

/// Two users subscribe with the very same document: the frame of a message is shared, the
/// unread counts are each their own.
async fn shared_documents_keep_per_viewer_counts(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let room = create_channel(&app, &alice, "general", &[&bob, &carol]).await;
    send(&app, &alice, &room, "one").await;
    send(&app, &alice, &room, "two").await;
    mark_read(&app, &bob, &room, Some(2)).await; // bob: 0 unread, carol: 2 unread

    let (mut ws_bob, mut ws_carol) =
        (WsClient::connect(&app, &bob).await, WsClient::connect(&app, &carol).await);
    let mut bob_counts = ws_bob.subscribe("u", UNREAD, json!({})).await;
    let mut carol_counts = ws_carol.subscribe("u", UNREAD, json!({})).await;
    let mut bob_messages = ws_bob.subscribe("m", RICH, json!({})).await;
    let mut carol_messages = ws_carol.subscribe("m", RICH, json!({})).await;

    send(&app, &alice, &room, "three").await;
    let (to_bob, to_carol) =
        (bob_messages.next("messageAdded").await, carol_messages.next("messageAdded").await);
    assert_eq!(to_bob, to_carol, "the same document sees the same message frame");
    assert_eq!(counts(&bob_counts.next("unreadCountChanged").await), (1, 1, 3));
    assert_eq!(counts(&carol_counts.next("unreadCountChanged").await), (3, 3, 3));
}

/// A document that reads a per-viewer field is never shared between viewers.
async fn per_viewer_room_fields_stay_exact_in_shared_documents(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let room = create_channel(&app, &alice, "general", &[&bob, &carol]).await;
    send(&app, &alice, &room, "one").await;
    mark_read(&app, &bob, &room, Some(1)).await;
    let query = "subscription { messageAdded { seq room { id unreadCount lastReadSeq viewerRole } } }";
    let (mut ws_bob, mut ws_alice) =
        (WsClient::connect(&app, &bob).await, WsClient::connect(&app, &alice).await);
    let mut to_bob = ws_bob.subscribe("m", query, json!({})).await;
    let mut to_alice = ws_alice.subscribe("m", query, json!({})).await;
    let mut ws_carol = WsClient::connect(&app, &carol).await;
    let mut to_carol = ws_carol.subscribe("m", query, json!({})).await;

    send(&app, &alice, &room, "two").await;
    let room_of = |frame: Value| frame["room"].clone();
    assert_eq!(
        room_of(to_bob.next("messageAdded").await),
        json!({ "id": room, "unreadCount": 1, "lastReadSeq": 1, "viewerRole": "MEMBER" })
    );
    assert_eq!(
        room_of(to_alice.next("messageAdded").await),
        json!({ "id": room, "unreadCount": 0, "lastReadSeq": 2, "viewerRole": "OWNER" })
    );
    assert_eq!(
        room_of(to_carol.next("messageAdded").await),
        json!({ "id": room, "unreadCount": 2, "lastReadSeq": 0, "viewerRole": "MEMBER" })
    );
}

/// `mentionCount` alone makes a document per viewer: it once did not, and the first
/// subscriber's count reached every other one.
async fn a_mention_count_alone_stays_each_viewers_own(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let room = create_channel(&app, &alice, "general", &[&bob, &carol]).await;
    let query = "subscription { messageAdded { seq room { mentionCount } } }";
    let (mut ws_bob, mut ws_carol) =
        (WsClient::connect(&app, &bob).await, WsClient::connect(&app, &carol).await);
    let mut to_bob = ws_bob.subscribe("m", query, json!({})).await;
    let mut to_carol = ws_carol.subscribe("m", query, json!({})).await;

    send(&app, &alice, &room, "@bob have a look").await;
    let mentions = |frame: Value| frame["room"]["mentionCount"].clone();
    assert_eq!(mentions(to_bob.next("messageAdded").await), json!(1));
    assert_eq!(mentions(to_carol.next("messageAdded").await), json!(0));
}

/// One document with two root fields (two feeds): each event arrives once, under the alias
/// of the field whose feed produced it, even when both fields select the same.
async fn each_root_field_frames_its_own_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let random = create_channel(&app, &alice, "random", &[&bob]).await;
    let query = "subscription($a: ID!, $b: ID!) { first: messageAdded(roomId: $a) { seq body } \
        second: messageAdded(roomId: $b) { seq body } }";
    let mut ws = WsClient::connect(&app, &bob).await;
    let mut both = ws.subscribe("two", query, json!({ "a": general, "b": random })).await;

    send(&app, &alice, &general, "in general").await;
    assert_eq!(both.next_data().await, json!({ "first": { "seq": 1, "body": "in general" } }));
    send(&app, &alice, &random, "in random").await;
    assert_eq!(both.next_data().await, json!({ "second": { "seq": 1, "body": "in random" } }));
    both.assert_nothing(QUIET).await;
}

async fn admins_rename_and_deactivate_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (admin, bob, carol) =
        (org.user_with_role("ada", "admin").await, org.user("bob").await, org.user("carol").await);

    // Members rename only themselves, and change no roles.
    let own = app.gql(&bob, RENAME_USER, json!({ "id": bob.id, "name": "  Bobby  " })).await;
    assert_eq!(own["data"]["updateUser"]["displayName"], "Bobby");
    assert_error_code(&app.gql(&bob, RENAME_USER, json!({ "id": carol.id, "name": "x" })).await, "FORBIDDEN");
    let promote = "mutation($id: ID!) { updateUser(input: { userId: $id, role: ADMIN }) { role } }";
    assert_error_code(&app.gql(&bob, promote, json!({ "id": bob.id })).await, "FORBIDDEN");
    assert_error_code(
        &app.gql(&bob, RENAME_USER, json!({ "id": bob.id, "name": " " })).await,
        "BAD_USER_INPUT",
    );
    assert_error_code(&app.gql(&bob, DEACTIVATE, json!({ "id": carol.id })).await, "FORBIDDEN");
    assert_error_code(&app.gql(&admin, DEACTIVATE, json!({ "id": admin.id })).await, "BAD_USER_INPUT");

    let other = app.create_org().await.user("eve").await;
    assert_error_code(&app.gql(&admin, DEACTIVATE, json!({ "id": other.id })).await, "NOT_FOUND");
    assert_eq!(app.gql(&other, VIEWER, json!({})).await["data"]["viewer"]["handle"], "eve");

    let done = app.gql(&admin, DEACTIVATE, json!({ "id": carol.id })).await;
    assert!(done["data"]["deactivateUser"]["deactivatedAt"].is_string(), "{done}");
    assert_error_code(&app.gql(&carol, VIEWER, json!({})).await, "UNAUTHENTICATED");
    assert_eq!(app.gql(&bob, VIEWER, json!({})).await["data"]["viewer"]["handle"], "bob");
}

async fn a_deactivated_users_open_sockets_close(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (admin, bob, carol) =
        (org.user_with_role("ada", "admin").await, org.user("bob").await, org.user("carol").await);
    let room = create_channel(&app, &admin, "general", &[&bob, &carol]).await;
    let mut bobs = WsClient::connect(&app, &bob).await;
    let mut bob_sees = bobs.subscribe("m", RICH, json!({})).await;
    let mut carols = WsClient::connect(&app, &carol).await;
    let mut carol_sees = carols.subscribe("m", RICH, json!({})).await;

    app.ok(&admin, DEACTIVATE, json!({ "id": bob.id })).await;
    let closed = bobs.expect_close(Duration::from_secs(1)).await;
    assert_eq!(closed.code, Some(FORBIDDEN), "signed out, not asked to retry: {closed:?}");
    assert!(closed.reason.contains("deactivated"), "{closed:?}");

    // Nothing sent after the deactivation reaches bob; carol's socket is untouched.
    send(&app, &admin, &room, "after bob left").await;
    assert_eq!(carol_sees.next("messageAdded").await["body"], "after bob left");
    bob_sees.assert_no_data(QUIET).await;
    carols.assert_open();
}

/// graphql-ws's "forbidden": the client signs out instead of reconnecting.
const FORBIDDEN: u16 = 4403;
/// "Service Restart": graphql-ws clients reconnect.
const RECONNECT: u16 = 1012;

async fn two() -> (TestApp, TestApp) {
    let a = spawn_app(Backend::PostgresRedis).await;
    let b = a.spawn_second_instance().await;
    (a, b)
}

async fn a_renamed_user_shows_the_new_name_on_both_instances() {
    let (a, b) = two().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "general", &[&bob]).await;
    let (mut ws_a, mut ws_b) = (WsClient::connect(&a, &alice).await, WsClient::connect(&b, &alice).await);
    let mut on_a = ws_a.subscribe("m", RICH, json!({})).await;
    let mut on_b = ws_b.subscribe("m", RICH, json!({})).await;

    // Both instances cache bob as "Bob" (his requests, and his messages' frames).
    send(&a, &bob, &room, "before on A").await;
    send(&b, &bob, &room, "before on B").await;
    for frames in [&mut on_a, &mut on_b] {
        for _ in 0..2 {
            assert_eq!(frames.next("messageAdded").await["author"]["displayName"], "Bob");
        }
    }

    a.ok(&bob, RENAME_USER, json!({ "id": bob.id, "name": "Robert" })).await;
    for (through, body) in [(&a, "after on A"), (&b, "after on B")] {
        send(through, &bob, &room, body).await;
        for frames in [&mut on_a, &mut on_b] {
            let frame = frames.next("messageAdded").await;
            assert_eq!(
                (frame["body"].as_str(), frame["author"]["displayName"].as_str()),
                (Some(body), Some("Robert"))
            );
        }
    }
}

async fn a_deactivated_user_is_refused_on_both_instances_within_a_second() {
    let (a, b) = two().await;
    let org = a.create_org().await;
    let (admin, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    // Both instances have bob cached as active.
    for app in [&a, &b] {
        assert_eq!(app.gql(&bob, VIEWER, json!({})).await["data"]["viewer"]["handle"], "bob");
    }
    a.ok(&admin, DEACTIVATE, json!({ "id": bob.id })).await;
    let deadline = Instant::now() + Duration::from_secs(1);
    for app in [&a, &b] {
        loop {
            let answer = app.gql(&bob, VIEWER, json!({})).await;
            if answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" {
                break;
            }
            assert!(Instant::now() < deadline, "bob is still let in a second after deactivation: {answer}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Subscriptions checked access with the role they started with (admins read every support
/// conversation), so a new role closes the viewer's sockets for a reconnect; a rename does not.
async fn a_re_roled_users_sockets_close_for_a_reconnect_on_both_instances() {
    let (a, b) = two().await;
    let org = a.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user_with_role("bob", "admin").await);
    let (mut on_a, mut on_b) = (WsClient::connect(&a, &bob).await, WsClient::connect(&b, &bob).await);
    a.ok(&bob, RENAME_USER, json!({ "id": bob.id, "name": "Bobby" })).await;
    tokio::time::sleep(QUIET).await;
    on_a.assert_open();
    on_b.assert_open();

    let demote = "mutation($id: ID!) { updateUser(input: { userId: $id, role: MEMBER }) { role } }";
    a.ok(&ada, demote, json!({ "id": bob.id })).await;
    for socket in [&mut on_a, &mut on_b] {
        let closed = socket.expect_close(Duration::from_secs(1)).await;
        assert_eq!(closed.code, Some(RECONNECT), "asked to reconnect, not signed out: {closed:?}");
    }
    // The reconnect is let in, as a member now.
    WsClient::connect(&b, &bob).await.ping_pong().await;
    assert_error_code(&b.gql(&bob, DEACTIVATE, json!({ "id": ada.id })).await, "FORBIDDEN");
}

/// B reaches PostgreSQL through a proxy that is cut when bob is deactivated on A: B hears of
/// it, but cannot read bob's row to check. The socket stays while the database cannot answer,
/// and closes once it can, with no further change announced.
async fn a_deactivation_met_by_a_database_outage_still_closes_the_socket() {
    let Some((database_url, _)) = pg_redis_urls() else { return };
    let (proxy, via_proxy) = CuttableProxy::in_front_of(&database_url, 5432).await;
    let a = spawn_app(Backend::PostgresRedis).await;
    let b = spawn_app_with(Backend::PostgresRedis, &[("DATABASE_URL", via_proxy.as_str())]).await;
    let org = a.create_org().await;
    let (admin, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let mut on_b = WsClient::connect(&b, &bob).await;

    proxy.cut();
    a.ok(&admin, DEACTIVATE, json!({ "id": bob.id })).await;
    // B's check waits out its pool's 5 s acquire timeout, and fails.
    tokio::time::sleep(Duration::from_secs(6)).await;
    on_b.assert_open();
    proxy.restore();
    assert_eq!(on_b.expect_close(Duration::from_secs(10)).await.code, Some(FORBIDDEN));
}

async fn a_deactivated_users_sockets_close_on_both_instances() {
    let (a, b) = two().await;
    let org = a.create_org().await;
    let (admin, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let (mut on_a, mut on_b) = (WsClient::connect(&a, &bob).await, WsClient::connect(&b, &bob).await);
    a.ok(&admin, DEACTIVATE, json!({ "id": bob.id })).await;
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(socket.expect_close(Duration::from_secs(1)).await.code, Some(FORBIDDEN));
    }
}

async fn a_renamed_room_shows_renamed_in_the_next_frame_on_both_instances() {
    let (a, b) = two().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "general", &[&bob]).await;
    let (mut ws_a, mut ws_b) = (WsClient::connect(&a, &bob).await, WsClient::connect(&b, &bob).await);
    let mut on_a = ws_a.subscribe("m", RICH, json!({})).await;
    let mut on_b = ws_b.subscribe("m", RICH, json!({})).await;
    send(&b, &alice, &room, "before").await;
    for frames in [&mut on_a, &mut on_b] {
        assert_eq!(frames.next("messageAdded").await["room"]["name"], "general");
    }

    b.ok(&alice, RENAME_ROOM, json!({ "id": room, "name": "#town-square" })).await;
    send(&a, &alice, &room, "after").await;
    for frames in [&mut on_a, &mut on_b] {
        assert_eq!(frames.next("messageAdded").await["room"]["name"], "town-square");
    }
}

fn counts(change: &Value) -> (i64, i64, i64) {
    let int = |v: &Value| v.as_i64().unwrap_or(-1);
    (int(&change["unreadCount"]), int(&change["unreadTotal"]), int(&change["seq"]))
}

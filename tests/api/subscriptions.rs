//! `messageAdded` over `graphql-transport-ws`: all rooms or one room, rooms joined after
//! subscribing, removal and leaving (with `roomUpdated` telling the viewer), `after` replay
//! (also longer than one write batch, and a replay a removal stops while its client reads
//! slowly), and rooms the viewer may not read. Every test
//! subscribes first, then mutates over HTTP, then asserts what arrives (and what does not).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::api::{create_channel, create_private_channel, int, open_dm, send, spawn_sender};
use crate::helpers::ws::{WsClient, slow_reader};
use crate::helpers::{Backend, QUIET, WAIT, spawn_app};

backend_tests!(
    message_added_for_all_rooms_and_one_room,
    rooms_joined_after_subscribing_deliver,
    removal_stops_delivery_and_revokes_access,
    after_replays_then_goes_live_without_gap_or_duplicate,
    a_replay_of_many_writes_arrives_whole,
    a_slow_replay_stops_at_a_removal,
    subscribing_to_an_unreadable_room_fails,
);

const ALL: &str = "subscription { messageAdded { seq body room { id } author { handle } } }";
const ONE: &str = "subscription($room: ID, $after: Int) { messageAdded(roomId: $room, after: $after) { seq body room { id } } }";
const ROOM_UPDATED: &str = "subscription { roomUpdated { roomId reason } }";

async fn message_added_for_all_rooms_and_one_room(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let dm = open_dm(&app, &bob, &[&alice]).await;
    let side = create_private_channel(&app, &bob, "side", &[&carol]).await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut all = ws.subscribe("all", ALL, json!({})).await;
    let mut one = ws.subscribe("one", ONE, json!({ "room": general })).await;

    send(&app, &bob, &general, "in general").await;
    let added = all.next("messageAdded").await;
    assert_eq!(
        added,
        json!({ "seq": 1, "body": "in general", "room": { "id": general }, "author": { "handle": "bob" } })
    );
    assert_eq!(one.next("messageAdded").await["body"], "in general");

    send(&app, &bob, &dm, "in the dm").await;
    assert_eq!(all.next("messageAdded").await["room"]["id"], json!(dm));
    one.assert_nothing(QUIET).await;

    send(&app, &bob, &side, "not for alice").await;
    all.assert_nothing(QUIET).await;

    send(&app, &alice, &general, "my own").await;
    assert_eq!(all.next("messageAdded").await["seq"], 2, "the viewer's own messages are delivered too");
    assert_eq!(one.next("messageAdded").await["seq"], 2);
}

async fn rooms_joined_after_subscribing_deliver(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut all = ws.subscribe("all", ALL, json!({})).await;

    let open = create_channel(&app, &carol, "open", &[]).await;
    send(&app, &carol, &open, "before alice joined").await;
    all.assert_nothing(QUIET).await;
    app.ok(&alice, "mutation($id: ID!) { joinRoom(roomId: $id) { id } }", json!({ "id": open })).await;
    send(&app, &carol, &open, "after alice joined").await;
    assert_eq!(all.next("messageAdded").await["body"], "after alice joined");

    let invite = create_private_channel(&app, &bob, "invite", &[]).await;
    let add = "mutation($id: ID!, $users: [ID!]!) { addMembers(roomId: $id, userIds: $users) { id } }";
    app.ok(&bob, add, json!({ "id": invite, "users": [alice.id] })).await;
    send(&app, &bob, &invite, "welcome").await;
    assert_eq!(all.next("messageAdded").await["room"]["id"], json!(invite));

    let created_with_alice = create_channel(&app, &bob, "with-alice", &[&alice]).await;
    send(&app, &bob, &created_with_alice, "hi team").await;
    assert_eq!(all.next("messageAdded").await["room"]["id"], json!(created_with_alice));

    let dm = open_dm(&app, &carol, &[&alice]).await;
    send(&app, &carol, &dm, "hey").await;
    assert_eq!(all.next("messageAdded").await["room"]["id"], json!(dm));
}

async fn removal_stops_delivery_and_revokes_access(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let team = create_private_channel(&app, &bob, "team", &[&alice]).await;
    let lounge = create_channel(&app, &bob, "lounge", &[&alice]).await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut all = ws.subscribe("all", ALL, json!({})).await;
    let mut one = ws.subscribe("one", ONE, json!({ "room": team })).await;
    let mut updates = ws.subscribe("updates", ROOM_UPDATED, json!({})).await;

    send(&app, &bob, &team, "before").await;
    assert_eq!(all.next("messageAdded").await["body"], "before");
    assert_eq!(one.next("messageAdded").await["body"], "before");

    let remove = "mutation($id: ID!, $user: ID!) { removeMember(roomId: $id, userId: $user) { id } }";
    app.ok(&bob, remove, json!({ "id": team, "user": alice.id })).await;
    updates.next_room_update(&team, &["ACCESS_REVOKED"]).await;

    send(&app, &bob, &team, "after").await;
    let rename = "mutation($input: UpdateRoomInput!) { updateRoom(input: $input) { id } }";
    app.ok(&bob, rename, json!({ "input": { "roomId": team, "name": "secret-team" } })).await;
    all.assert_nothing(QUIET).await;
    one.assert_no_data(QUIET).await;
    updates.assert_nothing(QUIET).await;

    // Leaving is the viewer's own removal.
    app.ok(&alice, "mutation($id: ID!) { leaveRoom(roomId: $id) }", json!({ "id": lounge })).await;
    updates.next_room_update(&lounge, &["LEFT"]).await;
    send(&app, &bob, &lounge, "after alice left").await;
    all.assert_nothing(QUIET).await;
}

async fn after_replays_then_goes_live_without_gap_or_duplicate(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    for i in 1..=10 {
        send(&app, &bob, &general, &format!("early {i}")).await;
    }

    // Messages keep arriving while the subscription replays and goes live.
    let sender = spawn_sender(&app, &bob, &general, "live", 40, Duration::from_millis(10));
    let ws = WsClient::connect(&app, &alice).await;
    let mut replay = ws.subscribe_raw("replay", ONE, json!({ "room": general, "after": 5 })).await;

    let mut seen = Vec::new();
    while seen.last() != Some(&50) {
        let added = replay.next("messageAdded").await;
        assert_eq!(added["room"]["id"], json!(general));
        seen.push(int(&added["seq"]));
        assert!(seen.len() <= 45, "more messages than sent: {seen:?}");
    }
    assert_eq!(seen, (6..=50).collect::<Vec<_>>(), "exactly after+1..=N, in order");
    replay.assert_nothing(QUIET).await;
    assert_eq!(sender.await.expect("sender task"), (11..=50).collect::<Vec<_>>());
}

/// A replay is read a hundred rows at a time and written in batches of frames: every frame
/// of every batch arrives (a batch once dropped the frame after its 64th).
async fn a_replay_of_many_writes_arrives_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    for i in 1..=150 {
        send(&app, &bob, &general, &format!("m{i}")).await;
    }
    let ws = WsClient::connect(&app, &alice).await;
    let mut replay = ws.subscribe_raw("replay", ONE, json!({ "room": general, "after": 0 })).await;
    let mut seen = Vec::new();
    while seen.len() < 150 {
        seen.push(int(&replay.next("messageAdded").await["seq"]));
    }
    assert_eq!(seen, (1..=150).collect::<Vec<_>>(), "every message once, in order");
    replay.assert_nothing(QUIET).await;
}

async fn subscribing_to_an_unreadable_room_fails(backend: Backend) {
    let app = spawn_app(backend).await;
    let (acme, globex) = (app.create_org().await, app.create_org().await);
    let (alice, bob) = (acme.user("alice").await, acme.user("bob").await);
    let mallory = globex.user("mallory").await;
    let private = create_private_channel(&app, &bob, "private", &[]).await;
    let theirs = create_channel(&app, &mallory, "theirs", &[]).await;
    let mine = create_channel(&app, &alice, "mine", &[]).await;
    let mut ws = WsClient::connect(&app, &alice).await;

    for (id, room) in [("private", &private), ("theirs", &theirs)] {
        let mut sub = ws.subscribe(id, ONE, json!({ "room": room })).await;
        assert_eq!(sub.next_error_code().await, "NOT_FOUND");
    }
    let mut no_room = ws.subscribe("no-room", ONE, json!({ "after": 3 })).await;
    assert_eq!(no_room.next_error_code().await, "BAD_USER_INPUT", "after requires roomId");
    let mut malformed = ws.subscribe("malformed", ONE, json!({ "room": "x" })).await;
    assert_eq!(malformed.next_error_code().await, "BAD_USER_INPUT");
    // Valid GraphQL, but async-graphql follows only fields named at the root: an error, not a
    // subscription that ends without a word.
    let through_fragment =
        "subscription { ...Live } fragment Live on SubscriptionRoot { messageAdded { body } }";
    let mut fragment = ws.subscribe("fragment", through_fragment, json!({})).await;
    assert_eq!(fragment.next_error_code().await, "BAD_USER_INPUT");

    // The connection survives rejected subscriptions.
    let mut fine = ws.subscribe("fine", ONE, json!({ "room": mine })).await;
    send(&app, &alice, &mine, "still working").await;
    assert_eq!(fine.next("messageAdded").await["body"], "still working");
    ws.assert_open();
}

/// A replay whose client reads slowly is still reading the room's history when the viewer
/// is removed: what was sent after the removal never reaches them, and the replay ends.
async fn a_slow_replay_stops_at_a_removal(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let team = create_private_channel(&app, &bob, "team", &[&alice]).await;
    // ≈ 600 KB of history: far more than the socket buffers of a client that reads nothing.
    let filler = "x".repeat(2_000);
    for n in 1..=300 {
        send(&app, &bob, &team, &format!("{n} {filler}")).await;
    }
    let mut slow = slow_reader(&app, &alice).await;
    let subscribe = json!({ "id": "one", "type": "subscribe",
        "payload": { "query": ONE, "variables": { "room": team, "after": 0 } } });
    slow.send(Message::text(subscribe.to_string())).await.expect("subscribe");
    let frame = |message: Message| -> Value {
        serde_json::from_str(message.to_text().unwrap_or("{}")).unwrap_or_default()
    };
    let first =
        frame(tokio::time::timeout(WAIT, slow.next()).await.expect("a frame").expect("open").expect("read"));
    assert_eq!(first["payload"]["data"]["messageAdded"]["seq"], 1, "{first}");

    let remove = "mutation($id: ID!, $user: ID!) { removeMember(roomId: $id, userId: $user) { id } }";
    app.ok(&bob, remove, json!({ "id": team, "user": alice.id })).await;
    send(&app, &bob, &team, "after the removal").await;

    let (mut seqs, mut completed) = (vec![1], false);
    while let Ok(Some(Ok(message))) = tokio::time::timeout(WAIT, slow.next()).await {
        let parsed = frame(message);
        match parsed["type"].as_str() {
            Some("next") => {
                let added = &parsed["payload"]["data"]["messageAdded"];
                assert_ne!(added["body"], "after the removal", "a message sent after the removal arrived");
                seqs.push(int(&added["seq"]));
            }
            Some("complete") => {
                completed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(completed, "the replay ends once the viewer is removed");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "in order, without a gap, as far as it went");
}

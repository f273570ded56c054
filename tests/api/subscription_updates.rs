//! Subscriptions to changes other than new messages: `unreadCountChanged`
//! through every kind of change, `messageUpdated` on edits and deletions (also those a
//! lagging client's buffer let go, and those an instance missed while its database did not
//! answer; what it rereads then starts where the loss began), and `roomUpdated` on create,
//! rename, membership, join and archive.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::api::{create_channel, create_private_channel, id_of, mark_read, open_dm, send};
use crate::helpers::proxy::b_behind_proxies;
use crate::helpers::ws::{WsClient, slow_reader};
use crate::helpers::{Backend, QUIET, WAIT, spawn_app};
use crate::outages::{a_cut_off_and_b, assert_only_repeats};

backend_tests!(
    unread_count_changed_follows_every_change,
    message_updated_on_edit_and_delete,
    a_lagging_message_updated_rereads_the_changes_it_missed,
    room_updated_on_create_rename_join_archive,
);

pg_test!(
    a_missed_deletion_is_reread_once_the_database_answers,
    the_reread_after_an_outage_starts_where_the_loss_began,
);

const UNREAD: &str = "subscription { unreadCountChanged { roomId unreadCount unreadTotal seq } }";
const UPDATED: &str = "subscription($room: ID) { messageUpdated(roomId: $room) { id seq body editedAt deletedAt room { id } } }";
const ROOM_UPDATED_FULL: &str = "subscription { roomUpdated { roomId reason room { id name archivedAt } } }";

async fn unread_count_changed_follows_every_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let second = create_channel(&app, &alice, "second", &[&bob]).await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut counts = ws.subscribe("counts", UNREAD, json!({})).await;
    let change = |room: &str, unread: i64, total: i64, seq: i64| json!({ "roomId": room, "unreadCount": unread, "unreadTotal": total, "seq": seq });

    send(&app, &bob, &general, "one").await;
    assert_eq!(counts.next("unreadCountChanged").await, change(&general, 1, 1, 1));
    send(&app, &bob, &general, "two").await;
    assert_eq!(counts.next("unreadCountChanged").await, change(&general, 2, 2, 2));
    send(&app, &bob, &second, "elsewhere").await;
    assert_eq!(counts.next("unreadCountChanged").await, change(&second, 1, 3, 1));

    mark_read(&app, &alice, &general, None).await;
    assert_eq!(counts.next("unreadCountChanged").await, change(&general, 0, 1, 2));

    send(&app, &bob, &general, "three").await;
    assert_eq!(counts.next("unreadCountChanged").await, change(&general, 1, 2, 3));
    let four = id_of(&send(&app, &bob, &general, "four").await);
    assert_eq!(counts.next("unreadCountChanged").await, change(&general, 2, 3, 4));
    app.ok(&bob, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": four })).await;
    let after_delete = counts.next("unreadCountChanged").await;
    assert_eq!(
        (after_delete["roomId"].clone(), after_delete["unreadCount"].clone()),
        (json!(general), json!(1))
    );
    assert_eq!(after_delete["unreadTotal"], 2);

    mark_read(&app, &alice, &general, None).await;
    assert_eq!(counts.next("unreadCountChanged").await["unreadCount"], 0);
    // Own messages never raise the count: nothing, or a change to 0.
    send(&app, &alice, &general, "mine").await;
    for update in counts.drain("unreadCountChanged", QUIET).await {
        assert_eq!(update["unreadCount"], 0, "own message raised the count: {update}");
    }
    send(&app, &bob, &general, "five").await;
    assert_eq!(counts.next("unreadCountChanged").await, change(&general, 1, 2, 6));
}

async fn message_updated_on_edit_and_delete(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let dm = open_dm(&app, &alice, &[&bob]).await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut one = ws.subscribe("one", UPDATED, json!({ "room": general })).await;
    let mut all = ws.subscribe("all", UPDATED, json!({})).await;

    let id = id_of(&send(&app, &bob, &general, "draft").await);
    one.assert_nothing(QUIET).await;
    let edit = "mutation($input: EditMessageInput!) { editMessage(input: $input) { id } }";
    app.ok(&bob, edit, json!({ "input": { "messageId": id, "body": "final" } })).await;
    for sub in [&mut one, &mut all] {
        let edited = sub.next("messageUpdated").await;
        assert_eq!((edited["id"].clone(), edited["body"].clone()), (json!(id), json!("final")));
        assert!(edited["editedAt"].is_string() && edited["deletedAt"].is_null());
    }

    app.ok(&bob, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": id })).await;
    for sub in [&mut one, &mut all] {
        let deleted = sub.next("messageUpdated").await;
        assert_eq!(
            (deleted["id"].clone(), deleted["seq"].clone(), deleted["body"].clone()),
            (json!(id), json!(1), Value::Null)
        );
        assert!(deleted["deletedAt"].is_string());
    }

    let in_dm = id_of(&send(&app, &bob, &dm, "tpyo").await);
    app.ok(&bob, edit, json!({ "input": { "messageId": in_dm, "body": "typo" } })).await;
    assert_eq!(all.next("messageUpdated").await["room"]["id"], json!(dm));
    one.assert_nothing(QUIET).await;
}

/// A client that stops reading falls further behind on `messageUpdated` than the server
/// buffers, which let its oldest events go; a deletion among them still reaches it when it
/// reads again: the feed rereads from the database what changed meanwhile. The events still
/// queued then, older than the reread's state, do not take the screen back in time.
async fn a_lagging_message_updated_rereads_the_changes_it_missed(backend: Backend) {
    // Twenty subscriptions on one socket fill its buffers twenty times faster than one.
    const SUBSCRIPTIONS: usize = 20;
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let general = create_channel(&app, &alice, "general", &[]).await;
    let long = id_of(&send(&app, &alice, &general, "long").await);
    let doomed = id_of(&send(&app, &alice, &general, "doomed").await);
    let mut slow = slow_reader(&app, &alice).await;
    for n in 0..SUBSCRIPTIONS {
        let subscribe = json!({ "id": n.to_string(), "type": "subscribe",
            "payload": { "query": UPDATED, "variables": { "room": general } } });
        slow.send(Message::text(subscribe.to_string())).await.expect("subscribe");
    }
    let edit = "mutation($input: EditMessageInput!) { editMessage(input: $input) { id } }";
    let filler = "x".repeat(2_000);
    let edit_long = |n: usize| json!({ "input": { "messageId": long, "body": format!("{n} {filler}") } });
    let frame = |message: Message| -> Value {
        serde_json::from_str(message.to_text().unwrap_or("{}")).unwrap_or_default()
    };
    // Edited until every subscription is live, which graphql-ws does not acknowledge.
    let mut live = HashSet::new();
    for round in 0.. {
        assert!(round < 20, "{} of {SUBSCRIPTIONS} subscriptions went live", live.len());
        app.ok(&alice, edit, edit_long(0)).await;
        while let Ok(Some(Ok(message))) = tokio::time::timeout(QUIET, slow.next()).await {
            live.insert(frame(message)["id"].clone());
        }
        if live.len() == SUBSCRIPTIONS {
            break;
        }
    }

    // 150 edits make ≈ 6 MB of frames, more than the socket buffers hold (4 MiB at most on
    // Linux); the deletion then waits in the server's buffer, and 200 more edits push it out.
    for n in 1..=150 {
        app.ok(&alice, edit, edit_long(n)).await;
    }
    app.ok(&alice, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": doomed }))
        .await;
    for n in 151..=350 {
        app.ok(&alice, edit, edit_long(n)).await;
    }

    let (mut deleted, mut done, mut shown) = (HashSet::new(), HashSet::new(), HashMap::new());
    while deleted.len() < SUBSCRIPTIONS || done.len() < SUBSCRIPTIONS {
        let message = tokio::time::timeout(WAIT, slow.next()).await;
        let Ok(Some(Ok(message))) = message else {
            panic!("{} saw the deletion, {} the last edit", deleted.len(), done.len())
        };
        let message = frame(message);
        let update = &message["payload"]["data"]["messageUpdated"];
        if update["id"] == json!(doomed) {
            assert!(update["body"].is_null() && update["deletedAt"].is_string(), "{update}");
            deleted.insert(message["id"].clone());
        } else if let Some(body) = update["body"].as_str() {
            let n: usize = body.split(' ').next().and_then(|n| n.parse().ok()).expect("a numbered edit");
            let before = shown.insert(message["id"].to_string(), n).unwrap_or(0);
            assert!(n >= before, "subscription {} went back from edit {before} to {n}", message["id"]);
            if n == 350 {
                done.insert(message["id"].clone());
            }
        }
    }
    tokio::time::sleep(QUIET).await;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(QUIET, slow.next()).await {
        let message = frame(message);
        let body =
            message["payload"]["data"]["messageUpdated"]["body"].as_str().unwrap_or_default().to_owned();
        assert!(body.starts_with("350 "), "after the last edit: {:.8}", body);
    }
    assert!(app.metric("parley_subscription_lagged_total").await >= 1.0, "no subscription lagged");
}

/// B misses a deletion while cut off from Redis and PostgreSQL; once Redis is back, its
/// reread fails on the database and is tried again until the database answers.
async fn a_missed_deletion_is_reread_once_the_database_answers() {
    let Some((redis, pg, a, b)) = b_behind_proxies().await else { return };
    let alice = a.create_org().await.user("alice").await;
    let general = create_channel(&a, &alice, "general", &[]).await;
    let oops = id_of(&send(&a, &alice, &general, "oops").await);
    let mut ws = WsClient::connect(&b, &alice).await;
    let mut updates = ws.subscribe("updates", UPDATED, json!({ "room": general })).await;
    updates.assert_nothing(QUIET).await;

    redis.cut();
    pg.cut();
    a.ok(&alice, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": oops })).await;
    updates.assert_nothing(Duration::from_secs(1)).await;
    let retries = b.metric("parley_feed_retries_total").await;
    redis.restore();
    b.wait_for_metric_above("parley_feed_retries_total", retries, "B never retried its failed reread").await;
    updates.assert_nothing(QUIET).await;
    pg.restore();
    let deleted = updates.next("messageUpdated").await;
    assert_eq!((&deleted["id"], &deleted["body"]), (&json!(oops), &Value::Null), "{deleted}");
    updates.assert_nothing(QUIET).await;
}

/// Bob's edit reached Bob's `messageUpdated` live; seconds later Alice's deletion is lost
/// (A cut off from Redis). A's notice says when its loss began, and B rereads from there: the
/// deletion, not the edit made before (a subscription open for days would reread days).
async fn the_reread_after_an_outage_starts_where_the_loss_began() {
    let (_private, redis, a, b) = a_cut_off_and_b().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&a, &alice, "general", &[&bob]).await;
    let typo = id_of(&send(&b, &bob, &general, "tpyo").await);
    let oops = id_of(&send(&a, &alice, &general, "oops").await);
    let mut ws = WsClient::connect(&b, &bob).await;
    let mut updates = ws.subscribe("updates", UPDATED, json!({})).await;
    updates.assert_nothing(QUIET).await;
    let edit = "mutation($input: EditMessageInput!) { editMessage(input: $input) { id } }";
    b.ok(&bob, edit, json!({ "input": { "messageId": typo, "body": "typo" } })).await;
    assert_eq!(updates.next("messageUpdated").await["body"], "typo");
    // Further back than a lost publish's margin: the overlap (`REREAD_OVERLAP`, 2 s) and a
    // command's timeout (2 s: an earlier publish of the same change may have taken it).
    tokio::time::sleep(Duration::from_secs(5)).await;

    redis.cut();
    a.ok(&alice, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": oops })).await;
    updates.assert_nothing(QUIET).await;
    redis.restore();
    let deleted = updates.next("messageUpdated").await;
    assert_eq!(
        (&deleted["id"], &deleted["body"]),
        (&json!(oops), &Value::Null),
        "only the deletion: {deleted}"
    );
    assert_only_repeats(&mut updates, "messageUpdated", "id", [deleted]).await;
}

async fn room_updated_on_create_rename_join_archive(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let open = create_channel(&app, &carol, "open", &[]).await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut updates = ws.subscribe("rooms", ROOM_UPDATED_FULL, json!({})).await;

    let plans = create_channel(&app, &bob, "plans", &[&alice]).await;
    let created = updates.next_room_update(&plans, &["CREATED"]).await;
    assert_eq!(created["room"]["name"], "plans");

    let rename = "mutation($input: UpdateRoomInput!) { updateRoom(input: $input) { id } }";
    app.ok(&bob, rename, json!({ "input": { "roomId": plans, "name": "roadmap" } })).await;
    let renamed = updates.next_room_update(&plans, &["RENAMED"]).await;
    assert_eq!(renamed["room"]["name"], "roadmap");

    let add = "mutation($id: ID!, $users: [ID!]!) { addMembers(roomId: $id, userIds: $users) { id } }";
    app.ok(&bob, add, json!({ "id": plans, "users": [carol.id] })).await;
    updates.next_room_update(&plans, &["MEMBERS_CHANGED", "JOINED"]).await;

    app.ok(&alice, "mutation($id: ID!) { joinRoom(roomId: $id) { id } }", json!({ "id": open })).await;
    updates.next_room_update(&open, &["JOINED"]).await;

    app.ok(&bob, "mutation($id: ID!) { archiveRoom(roomId: $id) { id } }", json!({ "id": plans })).await;
    let archived = updates.next_room_update(&plans, &["ARCHIVED"]).await;
    assert!(archived["room"]["archivedAt"].is_string(), "{archived}");

    // Rooms alice is not in stay silent.
    let elsewhere = create_private_channel(&app, &bob, "elsewhere", &[&carol]).await;
    app.ok(&bob, rename, json!({ "input": { "roomId": elsewhere, "name": "still-elsewhere" } })).await;
    updates.assert_nothing(QUIET).await;
}

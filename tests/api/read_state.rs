//! Read state: per-member watermarks and the unread counts derived from them
//! (others' messages, own messages, marking read on another connection,
//! deletions, `markUnread`), the batch `unreadCounts` query over 200 rooms, and archived
//! rooms leaving the total.

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use crate::helpers::api::{
    create_channel, create_private_channel, id_of, int, mark_read, members, room, send, unread_count,
    unread_total,
};
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, assert_error_code, spawn_app};

backend_tests!(
    others_messages_count_own_do_not,
    mark_read_is_monotonic_and_mark_unread_rewinds,
    mark_read_on_one_connection_reaches_the_others,
    deleted_messages_stop_counting,
    unread_counts_batch_of_200_rooms,
    archived_rooms_leave_the_unread_total,
);

const UNREAD_COUNTS: &str =
    "query($ids: [ID!]!) { unreadCounts(roomIds: $ids) { roomId unreadCount seq room { id } } }";
const MARK_UNREAD: &str =
    "mutation($id: ID!, $seq: Int!) { markUnread(roomId: $id, seq: $seq) { lastReadSeq unreadCount } }";
const DELETE: &str = "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }";

async fn others_messages_count_own_do_not(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let general = create_channel(&app, &alice, "general", &[&bob, &carol]).await;
    for i in 1..=3 {
        send(&app, &bob, &general, &format!("from bob {i}")).await;
    }

    let seen = room(&app, &alice, &general).await;
    assert_eq!((int(&seen["unreadCount"]), int(&seen["lastReadSeq"]), int(&seen["latestSeq"])), (3, 0, 3));
    let bobs = room(&app, &bob, &general).await;
    assert_eq!(
        (int(&bobs["unreadCount"]), int(&bobs["lastReadSeq"])),
        (0, 3),
        "own messages are never unread"
    );
    assert_eq!(unread_total(&app, &alice).await, 3);

    send(&app, &alice, &general, "caught up").await;
    let seen = room(&app, &alice, &general).await;
    assert_eq!((int(&seen["unreadCount"]), int(&seen["lastReadSeq"])), (0, 4), "sending moves the watermark");
    assert_eq!(unread_count(&app, &bob, &general).await, 1);
    assert_eq!(unread_count(&app, &carol, &general).await, 4, "one member reading changes nobody else");
    let members = members(&seen);
    let alices = members.iter().find(|m| m["user"]["id"] == json!(alice.id)).expect("alice is a member");
    assert_eq!(alices["lastReadSeq"], 4);
}

async fn mark_read_is_monotonic_and_mark_unread_rewinds(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let general = create_private_channel(&app, &alice, "general", &[&bob]).await;
    for i in 1..=5 {
        send(&app, &bob, &general, &format!("m{i}")).await;
    }

    let state = mark_read(&app, &alice, &general, Some(2)).await;
    assert_eq!((int(&state["lastReadSeq"]), int(&state["unreadCount"])), (2, 3));
    assert_eq!(state["room"]["id"], json!(general));
    let state = mark_read(&app, &alice, &general, Some(1)).await;
    assert_eq!((int(&state["lastReadSeq"]), int(&state["unreadCount"])), (2, 3), "never backwards");
    let state = mark_read(&app, &alice, &general, None).await;
    assert_eq!((int(&state["lastReadSeq"]), int(&state["unreadCount"])), (5, 0), "default: the latest");

    let rewound = app.ok(&alice, MARK_UNREAD, json!({ "id": general, "seq": 3 })).await["markUnread"].clone();
    assert_eq!(rewound, json!({ "lastReadSeq": 2, "unreadCount": 3 }), "seq 3 and later are unread again");
    assert_eq!(unread_count(&app, &alice, &general).await, 3);
    assert_eq!(unread_count(&app, &bob, &general).await, 0);

    let mark = "mutation($id: ID!) { markRoomRead(roomId: $id) { lastReadSeq } }";
    assert_error_code(&app.gql(&carol, mark, json!({ "id": general })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&carol, MARK_UNREAD, json!({ "id": general, "seq": 1 })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&alice, mark, json!({ "id": "general" })).await, "BAD_USER_INPUT");
}

async fn mark_read_on_one_connection_reaches_the_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let query = "subscription { unreadCountChanged { roomId unreadCount unreadTotal seq } }";
    // Two devices of alice's, each with its own connection.
    let mut phone = WsClient::connect(&app, &alice).await;
    let mut laptop = WsClient::connect(&app, &alice).await;
    let mut on_phone = phone.subscribe("u", query, json!({})).await;
    let mut on_laptop = laptop.subscribe("u", query, json!({})).await;

    send(&app, &bob, &general, "ping").await;
    for device in [&mut on_phone, &mut on_laptop] {
        let change = device.next("unreadCountChanged").await;
        assert_eq!(change, json!({ "roomId": general, "unreadCount": 1, "unreadTotal": 1, "seq": 1 }));
    }

    // Read over HTTP, a third connection.
    mark_read(&app, &alice, &general, None).await;
    for device in [&mut on_phone, &mut on_laptop] {
        let change = device.next("unreadCountChanged").await;
        assert_eq!((change["unreadCount"].clone(), change["unreadTotal"].clone()), (json!(0), json!(0)));
    }
    assert_eq!(unread_count(&app, &alice, &general).await, 0);
    assert_eq!(unread_total(&app, &alice).await, 0);
}

async fn deleted_messages_stop_counting(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let first = id_of(&send(&app, &bob, &general, "read already").await);
    mark_read(&app, &alice, &general, None).await;
    let mut unread = Vec::new();
    for i in 1..=3 {
        unread.push(id_of(&send(&app, &bob, &general, &format!("new {i}")).await));
    }
    assert_eq!(unread_count(&app, &alice, &general).await, 3);

    app.ok(&bob, DELETE, json!({ "id": unread[1] })).await;
    assert_eq!(unread_count(&app, &alice, &general).await, 2, "a deleted message no longer counts");
    assert_eq!(unread_total(&app, &alice).await, 2);
    let batch = app.ok(&alice, UNREAD_COUNTS, json!({ "ids": [general] })).await["unreadCounts"].clone();
    assert_eq!(batch[0]["unreadCount"], 2);

    app.ok(&bob, DELETE, json!({ "id": first })).await;
    assert_eq!(unread_count(&app, &alice, &general).await, 2, "deleting a read message changes nothing");
}

async fn unread_counts_batch_of_200_rooms(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);

    // 200 rooms with one message from alice each, created 8 at a time.
    let noisy: Vec<String> = stream::iter(0..200)
        .map(|i| {
            let (app, alice, bob) = (&app, &alice, &bob);
            async move {
                let id = create_channel(app, alice, &format!("batch-{i}"), &[bob]).await;
                send(app, alice, &id, &format!("hello {i}")).await;
                id
            }
        })
        .buffered(8)
        .collect()
        .await;
    // And rooms whose count is zero: never written to, or read by bob.
    let quiet = create_channel(&app, &alice, "quiet", &[&bob]).await;
    let read = create_channel(&app, &alice, "read", &[&bob]).await;
    send(&app, &alice, &read, "seen").await;
    mark_read(&app, &bob, &read, None).await;

    let mut ids = noisy.clone();
    ids.extend([quiet, read]);
    let counts = app.ok(&bob, UNREAD_COUNTS, json!({ "ids": ids })).await["unreadCounts"].clone();
    let counts = counts.as_array().expect("unreadCounts is a list");
    assert_eq!(counts.len(), 200, "only rooms with unread messages are listed");
    let mut listed: Vec<String> =
        counts.iter().map(|c| c["roomId"].as_str().expect("roomId").to_owned()).collect();
    listed.sort();
    let mut expected = noisy;
    expected.sort();
    assert_eq!(listed, expected);
    for count in counts {
        assert_eq!((count["unreadCount"].clone(), count["seq"].clone()), (json!(1), json!(1)), "{count}");
        assert_eq!(count["room"]["id"], count["roomId"]);
    }
    assert_eq!(unread_total(&app, &bob).await, 200);

    // Plain fields are written flat, anything else goes through every resolver: same answer.
    let flat =
        "query($ids: [ID!]!) { unreadCounts(roomIds: $ids) { __typename id: roomId seq unreadCount seq } }";
    let resolved = "query($ids: [ID!]!) { unreadCounts(roomIds: $ids) { __typename ... on UnreadCount { id: roomId seq } \
        unreadCount @include(if: true) seq } }";
    let flat = app.ok(&bob, flat, json!({ "ids": ids })).await;
    assert_eq!(flat, app.ok(&bob, resolved, json!({ "ids": ids })).await);
    assert_eq!(flat["unreadCounts"][0]["__typename"], "UnreadCount");
    assert_eq!(flat["unreadCounts"].as_array().map(Vec::len), Some(200));

    let none = app.ok(&alice, UNREAD_COUNTS, json!({ "ids": expected })).await["unreadCounts"].clone();
    assert_eq!(none, Value::Array(vec![]), "the sender has nothing unread");
}

/// Bob has unread messages in two channels; alice archives one. It leaves bob's room list, so
/// it leaves his `unreadTotal` too, live and when asked (the badge stayed until he found the
/// archived room and read it); the room itself still says what he has not read.
async fn archived_rooms_leave_the_unread_total(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let old = create_channel(&app, &alice, "old-project", &[&bob]).await;
    let mut ws = WsClient::connect(&app, &bob).await;
    let query = "subscription { unreadCountChanged { roomId unreadCount unreadTotal seq } }";
    let mut changes = ws.subscribe("u", query, json!({})).await;
    send(&app, &alice, &general, "hi").await;
    send(&app, &alice, &old, "one").await;
    send(&app, &alice, &old, "two").await;
    for _ in 0..3 {
        changes.next("unreadCountChanged").await;
    }
    assert_eq!(unread_total(&app, &bob).await, 3);

    let archive = "mutation($id: ID!) { archiveRoom(roomId: $id) { archivedAt } }";
    app.ok(&alice, archive, json!({ "id": old })).await;
    let change = changes.next("unreadCountChanged").await;
    assert_eq!(change, json!({ "roomId": old, "unreadCount": 2, "unreadTotal": 1, "seq": 2 }));
    assert_eq!(unread_total(&app, &bob).await, 1);
    assert_eq!(unread_count(&app, &bob, &old).await, 2);
    send(&app, &alice, &general, "still here").await;
    let change = changes.next("unreadCountChanged").await;
    assert_eq!((change["unreadCount"].clone(), change["unreadTotal"].clone()), (json!(2), json!(2)));
}

//! Read receipts for others: `Room.readReceipts` and `RoomMember.lastReadSeq` show how far
//! members have read, `readReceipt(roomId)` announces it live (also on another instance),
//! `Message.readBy` counts readers in direct rooms, and a member who turned
//! `shareReadReceipts` off shows nothing of it to anyone else.

use serde_json::{Value, json};

use crate::helpers::api::{
    TwoInstances, create_channel, create_private_channel, mark_read, open_dm, send, two_instances,
};
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, QUIET, TestApp, TestUser, assert_error_code, data, spawn_app};

backend_tests!(
    members_see_how_far_others_have_read,
    opting_out_hides_every_trace_of_reading,
    direct_messages_count_their_readers,
);
pg_test!(receipts_reach_members_on_the_other_instance);

const RECEIPTS: &str = "query($room: ID!, $first: Int) { room(id: $room) { \
    readReceipts(first: $first) { user { handle } lastReadSeq lastReadAt } \
    members { edges { node { user { handle } lastReadSeq } } } } }";
const LIVE: &str =
    "subscription($room: ID!) { readReceipt(roomId: $room) { roomId user { handle } lastReadSeq } }";
const PROFILE: &str =
    "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { handle shareReadReceipts } }";
const READ_BY: &str = "query($room: ID!) { messages(roomId: $room) { edges { node { seq readBy } } } }";

/// `(handle, lastReadSeq)` of each receipt, in order.
async fn receipts(app: &TestApp, viewer: &TestUser, room: &str, first: Option<i64>) -> Vec<(String, i64)> {
    let seen = app.ok(viewer, RECEIPTS, json!({ "room": room, "first": first })).await;
    let list = seen["room"]["readReceipts"].as_array().expect("receipts").clone();
    assert!(list.iter().all(|r| r["lastReadAt"].is_string()), "each receipt says when: {list:?}");
    list.iter()
        .map(|r| {
            (
                r["user"]["handle"].as_str().expect("handle").to_owned(),
                r["lastReadSeq"].as_i64().expect("seq"),
            )
        })
        .collect()
}

/// `(handle, lastReadSeq)` of each member, as `viewer` sees the member list.
async fn member_marks(app: &TestApp, viewer: &TestUser, room: &str) -> Vec<(String, i64)> {
    let seen = app.ok(viewer, RECEIPTS, json!({ "room": room })).await;
    let edges = seen["room"]["members"]["edges"].as_array().expect("members").clone();
    edges
        .iter()
        .map(|e| {
            (
                e["node"]["user"]["handle"].as_str().expect("handle").to_owned(),
                e["node"]["lastReadSeq"].as_i64().expect("seq"),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected.iter().map(|(handle, seq)| ((*handle).to_owned(), *seq)).collect()
}

async fn set_sharing(app: &TestApp, user: &TestUser, share: bool) -> Value {
    app.gql(user, PROFILE, json!({ "input": { "shareReadReceipts": share } })).await
}

async fn members_see_how_far_others_have_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let room = create_channel(&app, &alice, "general", &[&bob, &carol]).await;
    for body in ["one", "two", "three"] {
        send(&app, &alice, &room, body).await;
    }
    let mut alices = WsClient::connect(&app, &alice).await;
    let mut alice_sees = alices.subscribe("receipts", LIVE, json!({ "room": room })).await;
    let mut bobs = WsClient::connect(&app, &bob).await;
    let mut bob_sees = bobs.subscribe("receipts", LIVE, json!({ "room": room })).await;

    // Sending marks read; those who read nothing yet have no receipt.
    assert_eq!(receipts(&app, &bob, &room, None).await, pairs(&[("alice", 3)]));
    mark_read(&app, &bob, &room, Some(2)).await;
    let receipt = alice_sees.next("readReceipt").await;
    assert_eq!(receipt, json!({ "roomId": room, "user": { "handle": "bob" }, "lastReadSeq": 2 }));
    bob_sees.assert_nothing(QUIET).await;
    mark_read(&app, &carol, &room, None).await;
    assert_eq!(alice_sees.next("readReceipt").await["user"]["handle"], "carol");
    assert_eq!(bob_sees.next("readReceipt").await["lastReadSeq"], 3);

    assert_eq!(receipts(&app, &bob, &room, None).await, pairs(&[("alice", 3), ("carol", 3), ("bob", 2)]));
    assert_eq!(receipts(&app, &bob, &room, Some(1)).await, pairs(&[("alice", 3)]));
    assert_eq!(member_marks(&app, &alice, &room).await, pairs(&[("alice", 3), ("bob", 2), ("carol", 3)]));

    // A watermark that does not move is no news.
    mark_read(&app, &bob, &room, Some(1)).await;
    alice_sees.assert_nothing(QUIET).await;
}

async fn opting_out_hides_every_trace_of_reading(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "general", &[&bob]).await;
    let dm = open_dm(&app, &alice, &[&bob]).await;
    send(&app, &alice, &room, "one").await;
    send(&app, &alice, &dm, "psst").await;
    let mut alices = WsClient::connect(&app, &alice).await;
    let mut alice_sees = alices.subscribe("receipts", LIVE, json!({ "room": room })).await;

    let profile = data(set_sharing(&app, &bob, false).await);
    assert_eq!(profile["updateProfile"], json!({ "handle": "bob", "shareReadReceipts": false }));
    mark_read(&app, &bob, &room, None).await;
    mark_read(&app, &bob, &dm, None).await;
    alice_sees.assert_nothing(QUIET).await;
    assert_eq!(receipts(&app, &alice, &room, None).await, pairs(&[("alice", 1)]));
    assert_eq!(member_marks(&app, &alice, &room).await, pairs(&[("alice", 1), ("bob", 0)]));
    assert_eq!(
        member_marks(&app, &bob, &room).await,
        pairs(&[("alice", 1), ("bob", 1)]),
        "bob still sees his own"
    );
    assert_eq!(read_by(&app, &alice, &dm).await, [json!(0)]);

    // Bad input changes nothing.
    assert_error_code(&app.gql(&bob, PROFILE, json!({ "input": {} })).await, "BAD_USER_INPUT");
    let viewer = app.ok(&bob, "{ viewer { shareReadReceipts } }", json!({})).await;
    assert_eq!(viewer["viewer"]["shareReadReceipts"], false);
    let mallory = app.create_org().await.user("mallory").await;
    let mut mallorys = WsClient::connect(&app, &mallory).await;
    let mut denied = mallorys.subscribe("receipts", LIVE, json!({ "room": room })).await;
    assert_eq!(denied.next_error_code().await, "NOT_FOUND");
    let carol = org.user("carol").await;
    let private = create_private_channel(&app, &alice, "private", &[]).await;
    assert_error_code(&app.gql(&carol, RECEIPTS, json!({ "room": private })).await, "NOT_FOUND");

    data(set_sharing(&app, &bob, true).await);
    assert_eq!(receipts(&app, &alice, &room, None).await, pairs(&[("alice", 1), ("bob", 1)]));
    assert_eq!(read_by(&app, &alice, &dm).await, [json!(1)]);
    send(&app, &alice, &room, "two").await;
    mark_read(&app, &bob, &room, None).await;
    assert_eq!(alice_sees.next("readReceipt").await["lastReadSeq"], 2);
}

/// `readBy` of each message of the room, oldest first.
async fn read_by(app: &TestApp, viewer: &TestUser, room: &str) -> Vec<Value> {
    let page = app.ok(viewer, READ_BY, json!({ "room": room })).await;
    page["messages"]["edges"].as_array().expect("edges").iter().map(|e| e["node"]["readBy"].clone()).collect()
}

async fn direct_messages_count_their_readers(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let dm = open_dm(&app, &alice, &[&bob, &carol]).await;
    send(&app, &alice, &dm, "one").await;
    send(&app, &alice, &dm, "two").await;
    assert_eq!(read_by(&app, &alice, &dm).await, [json!(0), json!(0)], "the author is not a reader");

    mark_read(&app, &bob, &dm, Some(1)).await;
    assert_eq!(read_by(&app, &alice, &dm).await, [json!(1), json!(0)]);
    mark_read(&app, &carol, &dm, None).await;
    assert_eq!(read_by(&app, &alice, &dm).await, [json!(2), json!(1)]);
    assert_eq!(read_by(&app, &bob, &dm).await, [json!(2), json!(1)], "everyone sees the same count");

    let channel = create_channel(&app, &alice, "general", &[&bob]).await;
    send(&app, &alice, &channel, "hello").await;
    assert_eq!(read_by(&app, &bob, &channel).await, [Value::Null], "not counted in channels");
}

async fn receipts_reach_members_on_the_other_instance() {
    let Some(TwoInstances { a, b, alice, bob, room }) = two_instances().await else { return };
    send(&a, &alice, &room, "one").await;
    let mut alices = WsClient::connect(&b, &alice).await;
    let mut alice_sees = alices.subscribe("receipts", LIVE, json!({ "room": room })).await;

    mark_read(&a, &bob, &room, None).await;
    assert_eq!(
        alice_sees.next("readReceipt").await,
        json!({ "roomId": room, "user": { "handle": "bob" }, "lastReadSeq": 1 })
    );

    // Turned off on one instance: the other stops announcing at once.
    data(set_sharing(&b, &bob, false).await);
    send(&a, &alice, &room, "two").await;
    mark_read(&a, &bob, &room, None).await;
    alice_sees.assert_nothing(QUIET).await;
    assert_eq!(receipts(&b, &alice, &room, None).await, pairs(&[("alice", 2)]));
}

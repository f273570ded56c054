//! Typed shortcuts for the operations most tests need as set-up (create a
//! channel, send a message, read a room). Each asserts success, so a test's
//! body can concentrate on the behaviour it is about.

use serde_json::{Value, json};

use super::{TestApp, TestUser, data};

/// The message fields tests look at.
pub const MESSAGE: &str = "id seq body clientId senderRole source createdAt editedAt deletedAt \
    author { id handle } room { id } replyTo { id seq } \
    attachments { name url contentType size }";

/// The room fields tests look at (as seen by the viewer).
pub const ROOM: &str = "id kind name topic visibility viewerRole archivedAt createdAt \
    latestSeq lastReadSeq unreadCount lastMessageAt lastMessage { id seq body } \
    members { edges { node { role lastReadSeq joinedAt user { id handle } } } }";

pub fn create_channel_query() -> String {
    format!("mutation($input: CreateChannelInput!) {{ createChannel(input: $input) {{ {ROOM} }} }}")
}

pub fn send_query() -> String {
    format!("mutation($input: SendMessageInput!) {{ sendMessage(input: $input) {{ {MESSAGE} }} }}")
}

/// Creates a public channel with `members` besides the creator; returns its id.
pub async fn create_channel(app: &TestApp, owner: &TestUser, name: &str, members: &[&TestUser]) -> String {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let input = json!({ "name": name, "memberIds": ids });
    let room = app.ok(owner, &create_channel_query(), json!({ "input": input })).await;
    id_of(&room["createChannel"])
}

/// Creates a private channel with `members` besides the creator; returns its id.
pub async fn create_private_channel(
    app: &TestApp,
    owner: &TestUser,
    name: &str,
    members: &[&TestUser],
) -> String {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let input = json!({ "name": name, "memberIds": ids, "visibility": "PRIVATE" });
    let room = app.ok(owner, &create_channel_query(), json!({ "input": input })).await;
    id_of(&room["createChannel"])
}

/// Opens (or finds) the direct room of the viewer and `others`; returns its id.
pub async fn open_dm(app: &TestApp, viewer: &TestUser, others: &[&TestUser]) -> String {
    let ids: Vec<&str> = others.iter().map(|m| m.id.as_str()).collect();
    let query = "mutation($ids: [ID!]!) { openDirectRoom(userIds: $ids) { id kind } }";
    let room = app.ok(viewer, query, json!({ "ids": ids })).await;
    id_of(&room["openDirectRoom"])
}

/// Sends `body` into `room_id`; returns the stored message.
pub async fn send(app: &TestApp, author: &TestUser, room_id: &str, body: &str) -> Value {
    send_input(app, author, json!({ "roomId": room_id, "body": body })).await
}

/// Sends a full `SendMessageInput`; returns the stored message.
pub async fn send_input(app: &TestApp, author: &TestUser, input: Value) -> Value {
    let response = app.gql(author, &send_query(), json!({ "input": input })).await;
    data(response)["sendMessage"].clone()
}

/// Sends a full `SendMessageInput`; returns the whole response (for error paths).
pub async fn try_send(app: &TestApp, author: &TestUser, input: Value) -> Value {
    app.gql(author, &send_query(), json!({ "input": input })).await
}

/// The room as `viewer` sees it (fields of [`ROOM`]).
pub async fn room(app: &TestApp, viewer: &TestUser, room_id: &str) -> Value {
    let query = format!("query($id: ID!) {{ room(id: $id) {{ {ROOM} }} }}");
    app.ok(viewer, &query, json!({ "id": room_id })).await["room"].clone()
}

/// The room's latest seq, i.e. how many messages it ever stored.
pub async fn latest_seq(app: &TestApp, viewer: &TestUser, room_id: &str) -> i64 {
    int(&room(app, viewer, room_id).await["latestSeq"])
}

/// The viewer's unread count in a room.
pub async fn unread_count(app: &TestApp, viewer: &TestUser, room_id: &str) -> i64 {
    int(&room(app, viewer, room_id).await["unreadCount"])
}

/// The viewer's `unreadTotal`.
pub async fn unread_total(app: &TestApp, viewer: &TestUser) -> i64 {
    int(&app.ok(viewer, "{ viewer { unreadTotal } }", json!({})).await["viewer"]["unreadTotal"])
}

/// `markRoomRead`; returns the ReadState `{lastReadSeq unreadCount}`.
pub async fn mark_read(app: &TestApp, viewer: &TestUser, room_id: &str, seq: Option<i64>) -> Value {
    let query = "mutation($id: ID!, $seq: Int) { markRoomRead(roomId: $id, seq: $seq) { lastReadSeq unreadCount room { id } } }";
    app.ok(viewer, query, json!({ "id": room_id, "seq": seq })).await["markRoomRead"].clone()
}

/// Every message of the room in order, walking the connection 100 at a time.
pub async fn all_messages(app: &TestApp, viewer: &TestUser, room_id: &str) -> Vec<Value> {
    let query = format!(
        "query($room: ID!, $after: String) {{ messages(roomId: $room, first: 100, after: $after) {{ \
         edges {{ cursor node {{ {MESSAGE} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    let mut after: Option<String> = None;
    let mut messages = Vec::new();
    loop {
        let page = app.ok(viewer, &query, json!({ "room": room_id, "after": after })).await;
        let connection = &page["messages"];
        let edges = connection["edges"].as_array().expect("messages.edges is a list");
        messages.extend(edges.iter().map(|e| e["node"].clone()));
        if !connection["pageInfo"]["hasNextPage"].as_bool().expect("hasNextPage is a bool")
            || edges.is_empty()
        {
            return messages;
        }
        after = connection["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

/// The seqs of `messages`.
pub fn seqs(messages: &[Value]) -> Vec<i64> {
    messages.iter().map(|m| int(&m["seq"])).collect()
}

/// The ids of the viewer's rooms (first 100) under `filter`, a JSON object
/// with any of `kind`, `unread`, `archived`, `search` (`null`: the default).
pub async fn my_room_ids(app: &TestApp, viewer: &TestUser, filter: Value) -> Vec<String> {
    // The filter is spelled inline so the test does not depend on the name of its input type.
    let query = "query($kind: RoomKind, $unread: Boolean, $archived: Boolean, $search: String) { viewer { \
        rooms(filter: { kind: $kind, unread: $unread, archived: $archived, search: $search }, first: 100) { \
        edges { node { id } } } } }";
    let variables = if filter.is_null() { json!({}) } else { filter };
    let data = app.ok(viewer, query, variables).await;
    edge_ids(&data["viewer"]["rooms"])
}

/// The node ids of a connection's edges, in order.
pub fn edge_ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .expect("a connection has edges")
        .iter()
        .map(|e| id_of(&e["node"]))
        .collect()
}

/// The ids of a room's members.
pub fn member_ids(room: &Value) -> Vec<String> {
    let mut ids: Vec<String> = members(room).iter().map(|m| id_of(&m["user"])).collect();
    ids.sort();
    ids
}

/// The members on a room's first page of `members { edges { node { … } } }`.
pub fn members(room: &Value) -> Vec<Value> {
    let edges = room["members"]["edges"].as_array().expect("room.members is a connection");
    edges.iter().map(|edge| edge["node"].clone()).collect()
}

/// `value["id"]` as a string.
#[track_caller]
pub fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap_or_else(|| panic!("expected an object with an id, got {value:#}")).to_owned()
}

/// A JSON integer.
#[track_caller]
pub fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("expected an integer, got {value}"))
}

/// Sends `count` messages (`{prefix} 1`, …) into `room_id` from a background
/// task, `pause` apart; the task yields the seqs it got back, in order.
pub fn spawn_sender(
    app: &TestApp,
    author: &TestUser,
    room_id: &str,
    prefix: &str,
    count: usize,
    pause: std::time::Duration,
) -> tokio::task::JoinHandle<Vec<i64>> {
    let (http, url, token) = (app.http.clone(), app.url("/graphql"), author.token.clone());
    let (room_id, prefix) = (room_id.to_owned(), prefix.to_owned());
    tokio::spawn(async move {
        let mut seqs = Vec::with_capacity(count);
        for i in 1..=count {
            let input = json!({ "roomId": room_id, "body": format!("{prefix} {i}") });
            let body = json!({ "query": "mutation($input: SendMessageInput!) { sendMessage(input: $input) { seq } }", "variables": { "input": input } });
            let response: Value = http
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("POST sendMessage")
                .json()
                .await
                .expect("sendMessage answers JSON");
            seqs.push(int(&data(response)["sendMessage"]["seq"]));
            tokio::time::sleep(pause).await;
        }
        seqs
    })
}

/// Two instances on one database and one Redis, and Alice and Bob of a new organisation in a
/// channel `general`: the set-up of the cross-instance tests.
pub struct TwoInstances {
    pub a: TestApp,
    pub b: TestApp,
    pub alice: TestUser,
    pub bob: TestUser,
    pub room: String,
}

/// [`TwoInstances`]; `None` (the test is skipped) without PostgreSQL and Redis.
pub async fn two_instances() -> Option<TwoInstances> {
    let a = super::spawn_app(super::Backend::postgres_redis()?).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "general", &[&bob]).await;
    Some(TwoInstances { a, b, alice, bob, room })
}

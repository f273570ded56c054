//! Rooms tied to an outside record (`openContextRoom`, `room(contextRef:)`): one per
//! organisation and reference, created on first use, the same room for every later call and
//! for racing calls (on two instances with PostgreSQL), private to its members, and another
//! organisation's reference is its own.

use serde_json::{Value, json};

use crate::helpers::api::{id_of, member_ids, my_room_ids, send};
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, data, spawn_app};

backend_tests!(
    a_context_room_is_opened_once_and_private_to_its_members,
    racing_opens_get_one_room,
    a_live_frame_carries_the_context_ref,
);
pg_test!(racing_opens_on_two_instances_get_one_room);

const OPEN: &str = "mutation($input: OpenContextRoomInput!) { openContextRoom(input: $input) { \
    id kind visibility name contextRef members { edges { node { user { id } } } } } }";
const BY_REF: &str = "query($ref: String) { room(contextRef: $ref) { id contextRef } }";
const ADD: &str = "mutation($id: ID!, $users: [ID!]!) { addMembers(roomId: $id, userIds: $users) { id } }";

async fn open(app: &TestApp, user: &TestUser, input: Value) -> Value {
    app.gql(user, OPEN, json!({ "input": input })).await
}

async fn a_context_room_is_opened_once_and_private_to_its_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (buyer, seller, carol) = (org.user("buyer").await, org.user("seller").await, org.user("carol").await);

    let input = json!({ "contextRef": " order-1042 ", "name": "Order 1042", "userIds": [seller.id] });
    let room = data(open(&app, &buyer, input).await)["openContextRoom"].clone();
    let id = id_of(&room);
    assert_eq!((room["kind"].as_str(), room["visibility"].as_str()), (Some("CHANNEL"), Some("PRIVATE")));
    assert_eq!(
        (room["name"].as_str(), room["contextRef"].as_str()),
        (Some("Order 1042"), Some("order-1042"))
    );
    let mut both = vec![buyer.id.clone(), seller.id.clone()];
    both.sort();
    assert_eq!(member_ids(&room), both);

    // The seller opening it (with other arguments) gets the same room, unchanged.
    let again = data(
        open(&app, &seller, json!({ "contextRef": "order-1042", "name": "x", "userIds": [carol.id] })).await,
    );
    assert_eq!(id_of(&again["openContextRoom"]), id);
    assert_eq!(member_ids(&again["openContextRoom"]), both);
    let found = app.ok(&seller, BY_REF, json!({ "ref": "order-1042" })).await;
    assert_eq!(found["room"], json!({ "id": id, "contextRef": "order-1042" }));
    assert_eq!(my_room_ids(&app, &seller, json!({})).await, std::slice::from_ref(&id));

    // Not a member: as if it did not exist; added later, it opens.
    assert_error_code(&open(&app, &carol, json!({ "contextRef": "order-1042" })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&carol, BY_REF, json!({ "ref": "order-1042" })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&carol, BY_REF, json!({ "ref": "order-9999" })).await, "NOT_FOUND");
    app.ok(&buyer, ADD, json!({ "id": id, "users": [carol.id] })).await;
    assert_eq!(
        id_of(&data(open(&app, &carol, json!({ "contextRef": "order-1042" })).await)["openContextRoom"]),
        id
    );

    // Another organisation's same reference is its own room.
    let other = app.create_org().await.user("olga").await;
    let theirs = data(open(&app, &other, json!({ "contextRef": "order-1042" })).await);
    assert_ne!(id_of(&theirs["openContextRoom"]), id);
    assert_eq!(theirs["openContextRoom"]["name"], Value::Null);

    // Bad input writes nothing.
    let rooms_before = my_room_ids(&app, &buyer, json!({})).await;
    assert_error_code(&open(&app, &buyer, json!({ "contextRef": "  " })).await, "BAD_USER_INPUT");
    assert_error_code(&open(&app, &buyer, json!({ "contextRef": "r".repeat(201) })).await, "BAD_USER_INPUT");
    assert_error_code(
        &open(&app, &buyer, json!({ "contextRef": "order-7", "name": " # " })).await,
        "BAD_USER_INPUT",
    );
    let stranger = json!({ "contextRef": "order-8", "userIds": [other.id] });
    assert_error_code(&open(&app, &buyer, stranger).await, "NOT_FOUND");
    let both_ways = "query($id: ID, $ref: String) { room(id: $id, contextRef: $ref) { id } }";
    assert_error_code(
        &app.gql(&buyer, both_ways, json!({ "id": id, "ref": "order-1042" })).await,
        "BAD_USER_INPUT",
    );
    assert_error_code(&app.gql(&buyer, both_ways, json!({})).await, "BAD_USER_INPUT");
    assert_eq!(my_room_ids(&app, &buyer, json!({})).await, rooms_before);
}

async fn racing_opens_get_one_room(backend: Backend) {
    let app = spawn_app(backend).await;
    racing_opens(&[&app, &app]).await;
}

async fn racing_opens_on_two_instances_get_one_room() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let a = spawn_app(backend).await;
    let b = a.spawn_second_instance().await;
    racing_opens(&[&a, &b]).await;
}

/// Ten opens of one reference at once, alternating between `apps`: one room.
async fn racing_opens(apps: &[&TestApp; 2]) {
    let org = apps[0].create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let input = json!({ "contextRef": "contract-77", "userIds": [alice.id, bob.id] });
    let opens = (0..10).map(|i| {
        let (app, user) = (apps[i % 2], if i % 3 == 0 { &bob } else { &alice });
        open(app, user, input.clone())
    });
    let ids: Vec<String> = futures_util::future::join_all(opens)
        .await
        .into_iter()
        .map(|r| id_of(&data(r)["openContextRoom"]))
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one room for one reference: {ids:?}");
    assert_eq!(my_room_ids(apps[0], &alice, json!({})).await, [ids[0].clone()]);
}

/// `messageAdded { room { contextRef } }` shows the reference live, as a query does.
async fn a_live_frame_carries_the_context_ref(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (buyer, seller) = (org.user("buyer").await, org.user("seller").await);
    let room = data(open(&app, &buyer, json!({ "contextRef": "order-7", "userIds": [seller.id] })).await);
    let id = id_of(&room["openContextRoom"]);
    let mut ws = WsClient::connect(&app, &seller).await;
    let mut live =
        ws.subscribe("live", "subscription { messageAdded { room { id contextRef } } }", json!({})).await;
    ws.settle().await;
    send(&app, &buyer, &id, "shipped").await;
    assert_eq!(live.next("messageAdded").await, json!({ "room": { "id": id, "contextRef": "order-7" } }));
}

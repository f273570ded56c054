//! Favorites: favorite rooms (per user, idempotent, a filter and a favorites-first order),
//! saved messages (newest saved first, paged, a deleted one shown as deleted, one the viewer
//! can no longer read dropped), bad input refused with nothing changed, and
//! `favoritesChanged` reaching the user's other devices, also on another instance, after
//! that instance was cut off from Redis (its reread tried again until the database answers),
//! and after the acting one could not publish.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, create_private_channel, edge_ids, id_of, send};
use crate::helpers::proxy::{CuttableProxy, b_behind_proxies};
use crate::helpers::services::PrivateRedis;
use crate::helpers::ws::WsClient;
use crate::helpers::{
    Backend, QUIET, TestApp, TestUser, assert_error_code, data, pg_redis_urls, spawn_app, spawn_app_with,
};
use crate::support::admin_agents_and_a_conversation;

backend_tests!(
    favorite_rooms_are_per_user_idempotent_and_listed_first,
    saved_messages_follow_what_the_viewer_may_read,
    other_devices_hear_of_favorites,
    a_room_starred_again_after_a_rejoin_is_heard,
    an_admin_finds_what_they_saved_in_a_support_conversation,
);
pg_test!(
    favorites_reach_devices_on_the_other_instance,
    changes_missed_while_cut_off_arrive_after_the_resync,
    a_change_its_instance_could_not_publish_still_arrives,
    a_missed_change_is_reread_once_the_database_answers,
);

const SET_ROOM: &str =
    "mutation($id: ID!, $f: Boolean!) { setRoomFavorite(roomId: $id, favorite: $f) { id isFavorite } }";
const SET_MESSAGE: &str = "mutation($id: ID!, $f: Boolean!) { setMessageFavorite(messageId: $id, favorite: $f) \
    { id isFavorite } }";
const ROOMS: &str = "query($favorite: Boolean, $order: RoomOrder) { viewer { rooms(filter: { favorite: $favorite }, \
    orderBy: $order, first: 100) { edges { node { id isFavorite } } } } }";
const SAVED: &str = "query($first: Int, $after: String) { viewer { favoriteMessages(first: $first, after: $after) { \
    edges { node { id body deletedAt isFavorite } } pageInfo { hasNextPage endCursor } } } }";
const CHANGES: &str =
    "subscription { favoritesChanged { roomId messageId favorite room { id name } message { id body } } }";

async fn set_room(app: &TestApp, user: &TestUser, room: &str, favorite: bool) -> Value {
    app.gql(user, SET_ROOM, json!({ "id": room, "f": favorite })).await
}

async fn set_message(app: &TestApp, user: &TestUser, message: &str, favorite: bool) -> Value {
    app.gql(user, SET_MESSAGE, json!({ "id": message, "f": favorite })).await
}

async fn rooms(app: &TestApp, user: &TestUser, favorite: Value, order: &str) -> Vec<String> {
    let page = app.ok(user, ROOMS, json!({ "favorite": favorite, "order": order })).await;
    edge_ids(&page["viewer"]["rooms"])
}

/// The saved messages' ids, walking pages of `first`.
async fn saved(app: &TestApp, user: &TestUser, first: i64) -> Vec<String> {
    let (mut ids, mut after) = (Vec::new(), Value::Null);
    loop {
        let page = app.ok(user, SAVED, json!({ "first": first, "after": after })).await;
        let connection = &page["viewer"]["favoriteMessages"];
        ids.extend(edge_ids(connection));
        if connection["pageInfo"]["hasNextPage"] != json!(true) {
            return ids;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
}

async fn favorite_rooms_are_per_user_idempotent_and_listed_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let older = create_channel(&app, &alice, "older", &[&bob]).await;
    let newer = create_channel(&app, &alice, "newer", &[&bob]).await;
    send(&app, &bob, &newer, "the latest activity").await;

    for _ in 0..2 {
        let room = data(set_room(&app, &alice, &older, true).await);
        assert_eq!(room["setRoomFavorite"], json!({ "id": older, "isFavorite": true }));
    }
    assert_eq!(rooms(&app, &alice, json!(true), "RECENT_ACTIVITY").await, [older.as_str()]);
    assert_eq!(rooms(&app, &alice, json!(false), "RECENT_ACTIVITY").await, [newer.as_str()]);
    assert_eq!(rooms(&app, &alice, Value::Null, "RECENT_ACTIVITY").await, [newer.clone(), older.clone()]);
    assert_eq!(rooms(&app, &alice, Value::Null, "FAVORITES_FIRST").await, [older.clone(), newer.clone()]);
    assert_eq!(rooms(&app, &bob, json!(true), "RECENT_ACTIVITY").await, Vec::<String>::new(), "per user");

    // Not a member of a public channel: join first; a private room of others: not found.
    let open = create_channel(&app, &carol, "open", &[]).await;
    let closed = create_private_channel(&app, &carol, "closed", &[]).await;
    assert_error_code(&set_room(&app, &alice, &open, true).await, "FORBIDDEN");
    assert_error_code(&set_room(&app, &alice, &closed, true).await, "NOT_FOUND");
    assert_error_code(&set_room(&app, &alice, "not-an-id", true).await, "BAD_USER_INPUT");
    assert_eq!(
        rooms(&app, &alice, json!(true), "RECENT_ACTIVITY").await,
        [older.as_str()],
        "nothing changed"
    );

    data(set_room(&app, &alice, &older, false).await);
    assert_eq!(rooms(&app, &alice, json!(true), "RECENT_ACTIVITY").await, Vec::<String>::new());
    assert_eq!(rooms(&app, &alice, Value::Null, "FAVORITES_FIRST").await, [newer, older]);
}

/// An org admin reads every support conversation without joining it: what they save there
/// is listed in `favoriteMessages` and `later`, and found by search, as `messages` shows it.
/// (Before, saving worked and the lists, which apply the rule in SQL, left it out.) An agent
/// of the organisation who is not in the conversation still cannot save it.
async fn an_admin_finds_what_they_saved_in_a_support_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, _sam, tom, stored) =
        admin_agents_and_a_conversation(&app, "f-1", "+41790000501", "parcel lost").await;
    let (room, message) = (stored["conversationId"].clone(), stored["messageId"].clone());

    let history = "query($room: ID!) { messages(roomId: $room) { edges { node { id } } } }";
    let seen = app.ok(&ada, history, json!({ "room": room })).await;
    assert_eq!(edge_ids(&seen["messages"]), [message.as_str().unwrap_or_default()]);
    assert_eq!(
        data(set_message(&app, &ada, message.as_str().unwrap_or_default(), true).await)["setMessageFavorite"]
            ["isFavorite"],
        true
    );

    let saved = app.ok(&ada, SAVED, json!({ "first": 10 })).await;
    assert_eq!(edge_ids(&saved["viewer"]["favoriteMessages"]), [message.as_str().unwrap_or_default()]);
    let later = "query { viewer { later(first: 10) { edges { node { kind message { id } } } } } }";
    let listed = app.ok(&ada, later, json!({})).await;
    assert_eq!(
        listed["viewer"]["later"]["edges"],
        json!([{ "node": { "kind": "SAVED_MESSAGE", "message": { "id": message } } }])
    );
    let search =
        "query($room: ID!) { searchMessages(query: \"parcel\", roomId: $room) { edges { node { id } } } }";
    let found = app.ok(&ada, search, json!({ "room": room })).await;
    assert_eq!(edge_ids(&found["searchMessages"]), [message.as_str().unwrap_or_default()]);

    assert_error_code(
        &set_message(&app, &tom, message.as_str().unwrap_or_default(), true).await,
        "NOT_FOUND",
    );
    let found = app.ok(&tom, search, json!({ "room": room })).await;
    assert_eq!(edge_ids(&found["searchMessages"]), Vec::<String>::new(), "not the agent's conversation");
}

async fn saved_messages_follow_what_the_viewer_may_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let general = create_channel(&app, &bob, "general", &[&alice]).await;
    let side = create_private_channel(&app, &bob, "side", &[&alice]).await;
    let first = id_of(&send(&app, &bob, &general, "first").await);
    let second = id_of(&send(&app, &bob, &general, "second").await);
    let private = id_of(&send(&app, &bob, &side, "private").await);

    for id in [&first, &private, &second, &first] {
        assert_eq!(data(set_message(&app, &alice, id, true).await)["setMessageFavorite"]["isFavorite"], true);
    }
    let newest_first = [second.clone(), private.clone(), first.clone()];
    assert_eq!(saved(&app, &alice, 50).await, newest_first, "a second save keeps the first one's place");
    assert_eq!(saved(&app, &alice, 2).await, newest_first, "pages of two");
    assert_eq!(saved(&app, &bob, 50).await, Vec::<String>::new(), "per user");
    let history = "query($room: ID!) { messages(roomId: $room) { edges { node { id isFavorite } } } }";
    let flags = |page: Value| {
        page["messages"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["isFavorite"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(flags(app.ok(&alice, history, json!({ "room": general })).await), [json!(true), json!(true)]);
    assert_eq!(flags(app.ok(&bob, history, json!({ "room": general })).await), [json!(false), json!(false)]);

    // Deleted: still listed, shown as deleted. Unreadable (alice removed): dropped.
    app.ok(&bob, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": first })).await;
    let remove = "mutation($room: ID!, $user: ID!) { removeMember(roomId: $room, userId: $user) { id } }";
    app.ok(&bob, remove, json!({ "room": side, "user": alice.id })).await;
    let page = app.ok(&alice, SAVED, json!({})).await;
    let edges = &page["viewer"]["favoriteMessages"]["edges"];
    assert_eq!(edge_ids(&page["viewer"]["favoriteMessages"]), [second.clone(), first.clone()]);
    assert_eq!(edges[1]["node"]["body"], Value::Null, "a deleted message shows no body");
    assert!(edges[1]["node"]["deletedAt"].is_string(), "and says it was deleted: {edges:#}");

    // Bad input changes nothing.
    let elsewhere = create_private_channel(&app, &carol, "elsewhere", &[]).await;
    let hidden = id_of(&send(&app, &carol, &elsewhere, "hidden").await);
    assert_error_code(&set_message(&app, &alice, &hidden, true).await, "NOT_FOUND");
    assert_error_code(&set_message(&app, &alice, &private, false).await, "NOT_FOUND");
    // A deleted message saved before stays saved when saved again (a retry); bob never saved
    // it and cannot now. Forgetting it stays possible, below.
    data(set_message(&app, &alice, &first, true).await);
    assert_error_code(&set_message(&app, &bob, &first, true).await, "BAD_USER_INPUT");
    assert_eq!(saved(&app, &alice, 50).await, [second.clone(), first.clone()]);

    data(set_message(&app, &alice, &second, false).await);
    data(set_message(&app, &alice, &second, false).await);
    assert_eq!(saved(&app, &alice, 50).await, std::slice::from_ref(&first));
    data(set_message(&app, &alice, &first, false).await);
    assert!(saved(&app, &alice, 50).await.is_empty(), "a deleted message is forgotten");
}

async fn other_devices_hear_of_favorites(backend: Backend) {
    let app = spawn_app(backend).await;
    devices_hear_of_favorites(&app, &app).await;
}

/// Leaving drops a room's star without a `favoritesChanged` frame (devices hear
/// `roomUpdated`); starred again after a rejoin, it is heard again.
async fn a_room_starred_again_after_a_rejoin_is_heard(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &bob, "random", &[&alice]).await;
    let mut phone = WsClient::connect(&app, &alice).await;
    let mut changes = phone.subscribe("favorites", CHANGES, json!({})).await;
    changes.assert_nothing(QUIET).await;

    data(set_room(&app, &alice, &room, true).await);
    assert_eq!(changes.next("favoritesChanged").await["favorite"], true);
    app.ok(&alice, "mutation($id: ID!) { leaveRoom(roomId: $id) }", json!({ "id": room })).await;
    changes.assert_nothing(QUIET).await;
    app.ok(&alice, "mutation($id: ID!) { joinRoom(roomId: $id) { id isFavorite } }", json!({ "id": room }))
        .await;
    assert_eq!(rooms(&app, &alice, json!(true), "RECENT_ACTIVITY").await, Vec::<String>::new());
    data(set_room(&app, &alice, &room, true).await);
    let change = changes.next("favoritesChanged").await;
    assert_eq!((&change["roomId"], &change["favorite"]), (&json!(room), &json!(true)));
}

async fn favorites_reach_devices_on_the_other_instance() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let a = spawn_app(backend).await;
    let b = a.spawn_second_instance().await;
    devices_hear_of_favorites(&a, &b).await;
}

/// Alice's phone (on `listening`) hears what her laptop (on `acting`) changes; Bob hears nothing.
async fn devices_hear_of_favorites(acting: &TestApp, listening: &TestApp) {
    let org = acting.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(acting, &alice, "general", &[&bob]).await;
    let message = id_of(&send(acting, &bob, &room, "keep this").await);
    let mut phone = WsClient::connect(listening, &alice).await;
    let mut changes = phone.subscribe("favorites", CHANGES, json!({})).await;
    let mut bobs = WsClient::connect(listening, &bob).await;
    let mut bobs_changes = bobs.subscribe("favorites", CHANGES, json!({})).await;

    data(set_room(acting, &alice, &room, true).await);
    let change = changes.next("favoritesChanged").await;
    let expected = json!({ "roomId": room, "messageId": null, "favorite": true, "room": { "id": room, "name": "general" }, "message": null });
    assert_eq!(change, expected);
    data(set_message(acting, &alice, &message, true).await);
    let change = changes.next("favoritesChanged").await;
    let expected = json!({ "roomId": null, "messageId": message, "favorite": true, "room": null, "message": { "id": message, "body": "keep this" } });
    assert_eq!(change, expected);

    data(set_message(acting, &alice, &message, true).await);
    changes.assert_nothing(QUIET).await;
    data(set_room(acting, &alice, &room, false).await);
    assert_eq!(changes.next("favoritesChanged").await["favorite"], false);
    bobs_changes.assert_nothing(QUIET).await;
}

/// Alice's phone is on B, cut off from Redis while her laptop (on A) stars a room, unstars
/// another and saves a message: once B is back, the phone hears all three.
async fn changes_missed_while_cut_off_arrive_after_the_resync() {
    let Some((_, redis_url)) = pg_redis_urls() else { return };
    let (redis, redis_via_proxy) = CuttableProxy::in_front_of(&redis_url, 6379).await;
    let a = spawn_app(Backend::PostgresRedis).await;
    let b = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", redis_via_proxy.as_str())]).await;
    let alice = a.create_org().await.user("alice").await;
    let general = create_channel(&a, &alice, "general", &[]).await;
    let random = create_channel(&a, &alice, "random", &[]).await;
    let message = id_of(&send(&a, &alice, &general, "keep this").await);
    data(set_room(&a, &alice, &random, true).await);
    let mut phone = WsClient::connect(&b, &alice).await;
    let mut changes = phone.subscribe("favorites", CHANGES, json!({})).await;
    changes.assert_nothing(QUIET).await;

    redis.cut();
    data(set_room(&a, &alice, &general, true).await);
    data(set_room(&a, &alice, &random, false).await);
    data(set_message(&a, &alice, &message, true).await);
    changes.assert_nothing(Duration::from_secs(1)).await;
    redis.restore();
    let mut heard = HashSet::new();
    for _ in 0..3 {
        let change = changes.next("favoritesChanged").await;
        heard.insert((change["roomId"].clone(), change["messageId"].clone(), change["favorite"].clone()));
    }
    let expected = HashSet::from([
        (json!(general), Value::Null, json!(true)),
        (json!(random), Value::Null, json!(false)),
        (Value::Null, json!(message), json!(true)),
    ]);
    assert_eq!(heard, expected);
    changes.assert_nothing(QUIET).await;
}

/// Alice's laptop is on A, cut off from Redis while it stars a room: that change is never
/// published, and her phone on B never lost Redis. Once A is back it tells B to resync, and
/// the phone rereads and hears the star. (Had her next change come first, its skipped
/// version would have made the phone reread: `favorites::feed`'s unit tests.)
async fn a_change_its_instance_could_not_publish_still_arrives() {
    if pg_redis_urls().is_none() {
        return;
    }
    // A Redis of their own: no other test's resync notice may deliver the star before A's.
    let private = PrivateRedis::start().await;
    let (redis, redis_via_proxy) = CuttableProxy::in_front_of(&private.url, 6379).await;
    let a = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", redis_via_proxy.as_str())]).await;
    let b = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", private.url.as_str())]).await;
    let alice = a.create_org().await.user("alice").await;
    let general = create_channel(&a, &alice, "general", &[]).await;
    let mut phone = WsClient::connect(&b, &alice).await;
    let mut changes = phone.subscribe("favorites", CHANGES, json!({})).await;
    changes.assert_nothing(QUIET).await;

    redis.cut();
    let unpublished = a.metric("parley_bus_publish_errors_total").await;
    data(set_room(&a, &alice, &general, true).await);
    assert!(a.metric("parley_bus_publish_errors_total").await > unpublished, "A published while cut off");
    changes.assert_nothing(QUIET).await;
    redis.restore();

    let change = changes.next("favoritesChanged").await;
    assert_eq!((&change["roomId"], &change["favorite"]), (&json!(general), &json!(true)));
    changes.assert_nothing(QUIET).await;
}

/// B misses a star while cut off from Redis and PostgreSQL; once Redis is back, its reread
/// fails on the database and is tried again until the database answers.
async fn a_missed_change_is_reread_once_the_database_answers() {
    let Some((redis, pg, a, b)) = b_behind_proxies().await else { return };
    let alice = a.create_org().await.user("alice").await;
    let general = create_channel(&a, &alice, "general", &[]).await;
    let mut phone = WsClient::connect(&b, &alice).await;
    let mut changes = phone.subscribe("favorites", CHANGES, json!({})).await;
    changes.assert_nothing(QUIET).await;

    redis.cut();
    pg.cut();
    data(set_room(&a, &alice, &general, true).await);
    changes.assert_nothing(Duration::from_secs(1)).await;
    let retries = b.metric("parley_feed_retries_total").await;
    redis.restore();
    b.wait_for_metric_above("parley_feed_retries_total", retries, "B never retried its failed reread").await;
    changes.assert_nothing(QUIET).await;
    pg.restore();
    let change = changes.next("favoritesChanged").await;
    assert_eq!((&change["roomId"], &change["favorite"]), (&json!(general), &json!(true)));
    changes.assert_nothing(QUIET).await;
}

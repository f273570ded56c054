//! Dependency outages, on a PostgreSQL and a Redis of the test's own (the
//! machine's services are never stopped): a database outage is not an invalid
//! token, and a Redis outage neither slows sends nor loses messages, nor keeps a deactivated
//! user's sockets open, nor a demoted admin's subscriptions running on the old role, nor a
//! removed member's subscription on another instance following the room, nor an edit, a
//! deletion, a rename, an archiving or a conversation's new status it could not publish off
//! other instances' screens; and the resync an instance asks for after an outage stays
//! inside its deployment's Redis namespace.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cross_instance::send_alternately;
use crate::helpers::api::{create_channel, create_private_channel, id_of, int, latest_seq, send};
use crate::helpers::proxy::CuttableProxy;
use crate::helpers::services::{PrivatePostgres, PrivateRedis};
use crate::helpers::subscription::Subscription;
use crate::helpers::ws::{Protocol, WsClient, bearer};
use crate::helpers::{
    Backend, QUIET, TestApp, TestUser, claims, data, error_codes, mint_token, spawn_app_with,
};
use crate::support::admin_agents_and_a_conversation;

pg_test!(
    a_login_during_a_database_outage_is_not_a_bad_token,
    sends_keep_their_pace_while_redis_is_down,
    with_redis_down_each_instance_limits_sends_on_its_own,
    a_deactivation_missed_during_a_redis_outage_still_closes_sockets,
    a_role_change_missed_during_a_redis_outage_still_reconnects_sockets,
    a_removal_its_instance_could_not_publish_still_stops_the_room,
    changes_their_instance_could_not_publish_still_reach_message_updated,
    room_changes_their_instance_could_not_publish_still_reach_room_updated,
    a_deployment_in_another_namespace_does_not_answer_a_resync_notice,
);

const ROOM_FEED: &str =
    "subscription($room: ID, $after: Int) { messageAdded(roomId: $room, after: $after) { seq body } }";

/// graphql-ws's close codes: forbidden (signed out) and internal error (retry).
const FORBIDDEN: u16 = 4403;
const INTERNAL_ERROR: u16 = 4500;
/// "Service Restart": the client reconnects, and subscribes again with its new role.
const RECONNECT: u16 = 1012;

async fn a_login_during_a_database_outage_is_not_a_bad_token() {
    let (pg, redis) = (PrivatePostgres::start().await, PrivateRedis::start().await);
    let app = spawn_app_with(
        Backend::PostgresRedis,
        &[("DATABASE_URL", pg.url.as_str()), ("REDIS_URL", redis.url.as_str())],
    )
    .await;
    let org = app.create_org().await;
    // Created by the CLI: the server has never seen (nor cached) Alice.
    let alice = org.user("alice").await;

    pg.stop().await;
    let closed = login(&app, &alice.token).await;
    assert_eq!(closed, Some(INTERNAL_ERROR), "a valid token during a database outage");
    let logged = app.log_line("connection_init failed").await;
    // The cause: a pooled connection that died with the server, or the pool's timeout.
    let cause = logged.to_lowercase();
    assert!(
        logged.contains("connection=") && (cause.contains("database") || cause.contains("pool")),
        "{logged}"
    );

    let response = app.post_graphql(Some(&alice.token), &json!({ "query": "{ viewer { handle } }" })).await;
    assert_eq!(response.status().as_u16(), 500, "not 401: the token is fine");
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(error_codes(&body), ["INTERNAL"]);

    // A token that fails verification is still refused as one, outage or not.
    let forged = mint_token(&claims(&alice.id, &org.id, "member"), "not-the-server-secret");
    assert_eq!(login(&app, &forged).await, Some(FORBIDDEN));

    pg.start_server().await;
    let mut ws = WsClient::connect(&app, &alice).await;
    ws.ping_pong().await;
}

/// Opens a connection with `token` and returns its close code (`None` once acked).
async fn login(app: &crate::helpers::TestApp, token: &str) -> Option<u16> {
    let mut ws = WsClient::open(app, Protocol::TransportWs).await;
    ws.send_json(json!({ "type": "connection_init", "payload": bearer(token) })).await;
    if let Some(frame) = ws.next_control(Duration::from_secs(20)).await {
        assert_ne!(frame["type"], "connection_ack", "acked during a database outage");
    }
    ws.expect_close(Duration::from_secs(20)).await.code
}

async fn sends_keep_their_pace_while_redis_is_down() {
    let mut redis = PrivateRedis::start().await;
    let a = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", redis.url.as_str())]).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "outage", &[&bob]).await;
    let mut ws = WsClient::connect(&b, &bob).await;
    let mut live = ws.subscribe("live", ROOM_FEED, json!({ "room": room })).await;

    const SENDS: usize = 30;
    let before = median_send(&a, &alice, &room, "before", SENDS).await;
    redis.kill().await;
    let during = median_send(&a, &alice, &room, "during", SENDS).await;
    let ratio = during.as_secs_f64() / before.max(Duration::from_millis(2)).as_secs_f64();
    eprintln!("sendMessage p50: {before:?} before the Redis outage, {during:?} during it (ratio {ratio:.2})");
    // Expected within 2×; generous, so a noisy machine does not fail it (it was ~50×).
    assert!(ratio <= 3.0, "sends slowed down while Redis was down: {before:?} -> {during:?}");

    // Redis returns: live delivery resumes within 2 s, and what the subscriber
    // missed meanwhile arrives by seq, in order, once.
    redis.restart().await;
    let back = Instant::now();
    let mut sent = 2 * SENDS;
    let mut seen: Vec<i64> = Vec::new();
    while back.elapsed() < Duration::from_secs(2) && seen.last().copied() != Some(sent as i64) {
        sent += 1;
        send(&a, &alice, &room, &format!("after {sent}")).await;
        seen.extend(
            live.drain("messageAdded", Duration::from_millis(200)).await.iter().map(|m| int(&m["seq"])),
        );
    }
    seen.extend(live.drain("messageAdded", Duration::from_millis(400)).await.iter().map(|m| int(&m["seq"])));
    let last = seen.last().copied();
    assert_eq!(last, Some(sent as i64), "live again within 2 s of Redis returning (saw {seen:?})");
    let missed: Vec<i64> = (1..=sent as i64).filter(|seq| !seen.contains(seq)).collect();
    let recovered = seen.len();
    assert_eq!(
        seen,
        (1..=sent as i64).collect::<Vec<_>>(),
        "every message once, in order ({missed:?} missed)"
    );
    eprintln!("{recovered} of {sent} messages delivered to the subscriber across the outage");

    // A client that resumes from a seq loses nothing either.
    let mut resumed = ws.subscribe("resumed", ROOM_FEED, json!({ "room": room, "after": SENDS })).await;
    let mut replayed = Vec::new();
    while replayed.len() < sent - SENDS {
        replayed.push(int(&resumed.next("messageAdded").await["seq"]));
    }
    assert_eq!(replayed, (SENDS as i64 + 1..=sent as i64).collect::<Vec<_>>());
}

/// Sends `n` messages one after another and returns the median time of one send.
async fn median_send(
    app: &crate::helpers::TestApp,
    author: &TestUser,
    room: &str,
    label: &str,
    n: usize,
) -> Duration {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        send(app, author, room, &format!("{label} {i}")).await;
        times.push(started.elapsed());
    }
    times.sort();
    times[n / 2]
}

/// The cluster's send bucket lives in Redis; without Redis every instance's
/// own bucket still limits (so two instances allow twice the burst), sends
/// do not fail, and the fallback shows on `/metrics`.
async fn with_redis_down_each_instance_limits_sends_on_its_own() {
    let mut redis = PrivateRedis::start().await;
    let overrides =
        [("REDIS_URL", redis.url.as_str()), ("PARLEY_SEND_RATE_PER_SEC", "1"), ("PARLEY_SEND_BURST", "3")];
    let a = spawn_app_with(Backend::PostgresRedis, &overrides).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&a, &alice, "general", &[]).await;

    redis.kill().await;
    let (accepted, limited) = send_alternately(&[&a, &b], &alice, &room, 10).await;
    assert!((6..=8).contains(&accepted) && limited >= 2, "accepted {accepted}, limited {limited}");
    assert_eq!(latest_seq(&a, &alice, &room).await, accepted as i64);
    let metrics = a.http.get(a.url("/metrics")).send().await.expect("GET /metrics");
    let metrics = metrics.text().await.expect("a metrics body");
    assert!(metrics.contains("parley_send_rate_fallback_total"), "the fallback is counted");
}

async fn a_deactivation_missed_during_a_redis_outage_still_closes_sockets() {
    let mut redis = PrivateRedis::start().await;
    let a = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", redis.url.as_str())]).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let (admin, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let mut on_b = WsClient::connect(&b, &bob).await;

    redis.kill().await;
    let deactivate = "mutation($id: ID!) { deactivateUser(userId: $id) { deactivatedAt } }";
    let done = a.gql(&admin, deactivate, json!({ "id": bob.id })).await;
    assert!(done["data"]["deactivateUser"]["deactivatedAt"].is_string(), "{done}");
    // B never hears the event; once Redis is back it rereads who was deactivated meanwhile.
    redis.restart().await;
    let closed = on_b.expect_close(Duration::from_secs(10)).await;
    assert_eq!(closed.code, Some(FORBIDDEN), "{closed:?}");
}

async fn a_role_change_missed_during_a_redis_outage_still_reconnects_sockets() {
    let mut redis = PrivateRedis::start().await;
    let a = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", redis.url.as_str())]).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let (owner, ada) = (org.user_with_role("olga", "owner").await, org.user_with_role("ada", "admin").await);
    let (mut on_b, bystander) = (WsClient::connect(&b, &ada).await, WsClient::connect(&b, &owner).await);

    redis.kill().await;
    let demote = "mutation($id: ID!) { updateUser(input: { userId: $id, role: MEMBER }) { role } }";
    let done = a.gql(&owner, demote, json!({ "id": ada.id })).await;
    assert_eq!(done["data"]["updateUser"]["role"], "MEMBER", "{done}");
    // B never hears the event; once Redis is back it rereads whose role changed meanwhile.
    redis.restart().await;
    let closed = on_b.expect_close(Duration::from_secs(10)).await;
    assert_eq!(closed.code, Some(RECONNECT), "asked to reconnect, not signed out: {closed:?}");
    bystander.assert_open();
}

/// Instances A and B on a Redis of their own (no other test's resync notice may repair B
/// before A's does), A through a proxy the test cuts to lose A's publishes.
pub(crate) async fn a_cut_off_and_b() -> (PrivateRedis, CuttableProxy, TestApp, TestApp) {
    let private = PrivateRedis::start().await;
    let (redis, via_proxy) = CuttableProxy::in_front_of(&private.url, 6379).await;
    let a = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", via_proxy.as_str())]).await;
    let b = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", private.url.as_str())]).await;
    (private, redis, a, b)
}

/// Alice removes Bob from a private room through A while A is cut off from Redis: the event
/// reaches no other instance, and B, whose link never dropped, has nothing to resync on. Once
/// A is back it tells the other instances to resync, and Bob's subscription on B stops
/// following the room.
async fn a_removal_its_instance_could_not_publish_still_stops_the_room() {
    let (_private, redis, a, b) = a_cut_off_and_b().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let secret = create_private_channel(&a, &alice, "secret", &[&bob]).await;
    let open = create_channel(&a, &alice, "open", &[&bob]).await;
    let mut ws = WsClient::connect(&b, &bob).await;
    let mut all = ws.subscribe("all", "subscription { messageAdded { body } }", json!({})).await;
    let mut rooms = ws.subscribe("rooms", "subscription { roomUpdated { roomId reason } }", json!({})).await;
    all.assert_nothing(QUIET).await;

    redis.cut();
    let remove = "mutation($room: ID!, $user: ID!) { removeMember(roomId: $room, userId: $user) { id } }";
    data(a.gql(&alice, remove, json!({ "room": secret, "user": bob.id })).await);
    rooms.assert_nothing(QUIET).await;
    redis.restore();
    // B hears of the removal only through A's notice and the resync it causes.
    assert_eq!(rooms.next("roomUpdated").await, json!({ "roomId": secret, "reason": "LEFT" }));
    assert!(a.metric("parley_bus_resync_notices_total").await >= 1.0, "A told the others");

    // Sent through B: delivered by B's own hub if Bob's subscription still followed the room.
    send(&b, &alice, &secret, "not for bob any more").await;
    send(&b, &alice, &open, "still for bob").await;
    loop {
        let message = all.next("messageAdded").await;
        assert_ne!(message["body"], "not for bob any more", "a removed member received the room");
        if message["body"] == "still for bob" {
            break;
        }
    }
}

/// Alice edits one message and deletes another through A while A is cut off from Redis: the
/// events reach no other instance. Once A is back it tells the others to resync, and Bob's
/// `messageUpdated` on B rereads both changes from the database.
async fn changes_their_instance_could_not_publish_still_reach_message_updated() {
    let (_private, redis, a, b) = a_cut_off_and_b().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&a, &alice, "general", &[&bob]).await;
    let typo = id_of(&send(&a, &alice, &general, "tpyo").await);
    let oops = id_of(&send(&a, &alice, &general, "oops").await);
    let mut ws = WsClient::connect(&b, &bob).await;
    let mut updates =
        ws.subscribe("updates", "subscription { messageUpdated { id body deletedAt } }", json!({})).await;
    updates.assert_nothing(QUIET).await;

    redis.cut();
    let edit = "mutation($input: EditMessageInput!) { editMessage(input: $input) { id } }";
    data(a.gql(&alice, edit, json!({ "input": { "messageId": typo, "body": "typo" } })).await);
    data(
        a.gql(&alice, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": oops }))
            .await,
    );
    updates.assert_nothing(QUIET).await;
    redis.restore();

    // In the order they were made.
    let edited = updates.next("messageUpdated").await;
    assert_eq!(edited, json!({ "id": typo, "body": "typo", "deletedAt": null }));
    let deleted = updates.next("messageUpdated").await;
    assert_eq!((deleted["id"].clone(), deleted["body"].clone()), (json!(oops), Value::Null));
    assert!(deleted["deletedAt"].is_string(), "{deleted}");
    // A second resync (A may send a notice for a later lost publish too) rereads them again:
    // repeats, never an older state.
    assert_only_repeats(&mut updates, "messageUpdated", "id", [edited, deleted]).await;
}

/// What else comes within `QUIET`: each result the same as the one seen of its `key`.
pub(crate) async fn assert_only_repeats(
    subscription: &mut Subscription,
    field: &str,
    key: &str,
    seen: impl IntoIterator<Item = Value>,
) {
    let seen: HashMap<String, Value> = seen.into_iter().map(|v| (v[key].to_string(), v)).collect();
    for result in subscription.drain(field, QUIET).await {
        assert_eq!(Some(&result), seen.get(&result[key].to_string()), "not a repeat of what came");
    }
}

/// Sam renames a channel, archives another and resolves a conversation through A while A is
/// cut off from Redis. Once A is back and tells the others to resync, Sam's `roomUpdated` on
/// B (another device) reports each room once, and the room's fields show the change.
async fn room_changes_their_instance_could_not_publish_still_reach_room_updated() {
    let (_private, redis, a, b) = a_cut_off_and_b().await;
    let (_, sam, _, stored) = admin_agents_and_a_conversation(&a, "r-1", "+41790000601", "hello").await;
    let conversation = stored["conversationId"].as_str().expect("a conversation").to_owned();
    let (plans, old) =
        (create_channel(&a, &sam, "plans", &[]).await, create_channel(&a, &sam, "old", &[]).await);
    let mut ws = WsClient::connect(&b, &sam).await;
    let query = "subscription { roomUpdated { roomId reason conversationChange { statusTo } \
        room { name archivedAt conversation { status } } } }";
    let mut updates = ws.subscribe("rooms", query, json!({})).await;
    updates.assert_nothing(QUIET).await;

    redis.cut();
    let rename = "mutation($input: UpdateRoomInput!) { updateRoom(input: $input) { id } }";
    a.ok(&sam, rename, json!({ "input": { "roomId": plans, "name": "roadmap" } })).await;
    a.ok(&sam, "mutation($id: ID!) { archiveRoom(roomId: $id) { id } }", json!({ "id": old })).await;
    let resolve = "mutation($room: ID!) { setConversationStatus(roomId: $room, status: RESOLVED) { id } }";
    a.ok(&sam, resolve, json!({ "room": conversation })).await;
    updates.assert_nothing(QUIET).await;
    redis.restore();

    let mut seen = HashMap::new();
    while seen.len() < 3 {
        let update = updates.next("roomUpdated").await;
        seen.insert(update["roomId"].as_str().unwrap_or_default().to_owned(), update);
    }
    assert_eq!(
        (&seen[&plans]["reason"], &seen[&plans]["room"]["name"]),
        (&json!("UPDATED"), &json!("roadmap"))
    );
    assert_eq!(seen[&old]["reason"], "ARCHIVED");
    assert!(seen[&old]["room"]["archivedAt"].is_string(), "{}", seen[&old]);
    let resolved = &seen[&conversation];
    assert_eq!(resolved["reason"], "CONVERSATION_CHANGED");
    assert_eq!(
        (&resolved["conversationChange"], &resolved["room"]["conversation"]["status"]),
        (&Value::Null, &json!("RESOLVED"))
    );
    assert_only_repeats(&mut updates, "roomUpdated", "roomId", seen.into_values()).await;
}

/// Two deployments share one Redis, each in its namespace. A, cut off from Redis, loses a
/// publish and tells its deployment to resync once it is back: B, of that deployment,
/// resyncs; C, of the other, neither hears nor pays for it.
async fn a_deployment_in_another_namespace_does_not_answer_a_resync_notice() {
    let private = PrivateRedis::start().await;
    let (redis, via_proxy) = CuttableProxy::in_front_of(&private.url, 6379).await;
    let ours = [("PARLEY_REDIS_NAMESPACE", "ours")];
    let a = spawn_app_with(Backend::PostgresRedis, &[ours[0], ("REDIS_URL", via_proxy.as_str())]).await;
    let b = spawn_app_with(Backend::PostgresRedis, &[ours[0], ("REDIS_URL", private.url.as_str())]).await;
    let theirs = [("PARLEY_REDIS_NAMESPACE", "theirs"), ("REDIS_URL", private.url.as_str())];
    let c = spawn_app_with(Backend::PostgresRedis, &theirs).await;
    let org = a.create_org().await;
    let alice = org.user("alice").await;
    let general = create_channel(&a, &alice, "general", &[]).await;

    redis.cut();
    send(&a, &alice, &general, "not published").await;
    redis.restore();
    b.wait_for_metric_above("parley_bus_notice_resyncs_total", 0.0, "B resyncs on A's notice").await;
    // C would have heard the notice when B did and resynced as soon.
    tokio::time::sleep(QUIET).await;
    assert_eq!(c.metric("parley_bus_notice_resyncs_total").await, 0.0, "the other deployment resynced");

    // C does follow notices: those of its own namespace.
    let client = redis::Client::open(private.url.as_str()).expect("a valid Redis URL");
    let mut conn = client.get_multiplexed_async_connection().await.expect("Redis answers");
    let _: i64 =
        redis::AsyncCommands::publish(&mut conn, "theirs:resync", "another instance").await.expect("PUBLISH");
    c.wait_for_metric_above(
        "parley_bus_notice_resyncs_total",
        0.0,
        "C resyncs on its own namespace's notice",
    )
    .await;
}

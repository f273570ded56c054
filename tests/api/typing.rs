//! Typing indicators: other members see who starts and stops typing, a state lapses 6 s after
//! its last renewal, sending a message ends it, keystroke-rate calls reach the bus at most once
//! a second (also when they are spread over two instances), only members who may post can
//! type (and org admins in support conversations, where their reply joins them), and all of
//! it crosses instances.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::api::{TwoInstances, create_channel, create_private_channel, send, two_instances};
use crate::helpers::proxy::b_behind_proxies;
use crate::helpers::subscription::Subscription;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, QUIET, TestApp, TestUser, assert_error_code, data, spawn_app};
use crate::support::admin_agents_and_a_conversation;

backend_tests!(
    members_see_others_type_until_it_stops_or_lapses,
    keystrokes_are_coalesced_to_one_publish_a_second,
    only_those_who_may_post_can_type,
    an_admin_types_in_a_support_conversation_before_replying,
    typing_again_right_after_a_send_shows_at_once,
);
pg_test!(
    typing_lives_on_through_a_resync_the_database_could_not_answer,
    typing_reaches_members_on_the_other_instance,
    keystrokes_through_two_instances_are_one_publish_a_second
);

const SET: &str = "mutation($room: ID!, $typing: Boolean!) { setTyping(roomId: $room, typing: $typing) }";
const TYPING: &str = "subscription($room: ID!) { typing(roomId: $room) { roomId user { handle } typing } }";

async fn set_typing(app: &TestApp, user: &TestUser, room: &str, typing: bool) -> Value {
    app.gql(user, SET, json!({ "room": room, "typing": typing })).await
}

fn change(room: &str, handle: &str, typing: bool) -> Value {
    json!({ "roomId": room, "user": { "handle": handle }, "typing": typing })
}

/// B is cut off from Redis and PostgreSQL; once Redis is back, the access check after the
/// resync fails on the database. The subscription is not completed (graphql-ws clients would
/// not subscribe again): the check is retried, and once the database answers, typing shows
/// again.
async fn typing_lives_on_through_a_resync_the_database_could_not_answer() {
    let Some((redis, pg, a, b)) = b_behind_proxies().await else { return };
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "general", &[&bob]).await;
    let mut bobs = WsClient::connect(&b, &bob).await;
    let mut bob_sees = bobs.subscribe("typing", TYPING, json!({ "room": room })).await;
    bobs.settle().await;

    redis.cut();
    pg.cut();
    let retries = b.metric("parley_feed_retries_total").await;
    redis.restore();
    b.wait_for_metric_above("parley_feed_retries_total", retries, "B never retried its access check").await;
    pg.restore();
    // Typing until the retried check lets it through: each call renews it.
    let mut seen = None;
    for _ in 0..40 {
        data(set_typing(&a, &alice, &room, true).await);
        if let Ok(Some(frame)) = bob_sees.poll(Duration::from_millis(500)).await {
            seen = Some(frame);
            break;
        }
    }
    let frame = seen.expect("typing shows again once the database answers");
    assert_eq!(frame["type"], "next", "not completed: {frame}");
    assert_eq!(frame["payload"]["data"]["typing"], change(&room, "alice", true));
}

/// An org admin replies to any support conversation (the reply joins them), so they may type
/// there first, as the agents see; before, typing answered "join the channel first".
async fn an_admin_types_in_a_support_conversation_before_replying(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, sam, tom, stored) =
        admin_agents_and_a_conversation(&app, "t-1", "+41790000601", "hello?").await;
    let room = stored["conversationId"].as_str().expect("a conversation").to_owned();
    let mut sams = WsClient::connect(&app, &sam).await;
    let mut sam_sees = sams.subscribe("typing", TYPING, json!({ "room": room })).await;

    assert_eq!(data(set_typing(&app, &ada, &room, true).await)["setTyping"], true);
    assert_eq!(sam_sees.next("typing").await, change(&room, "ada", true));
    assert_error_code(&set_typing(&app, &tom, &room, true).await, "NOT_FOUND");
}

/// A new organisation's alice, the #general she shares with bob, and bob's connection
/// following who types there.
async fn bob_watching_general(app: &TestApp) -> (TestUser, String, WsClient, Subscription) {
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(app, &alice, "general", &[&bob]).await;
    let mut bobs = WsClient::connect(app, &bob).await;
    let bob_sees = bobs.subscribe("typing", TYPING, json!({ "room": room })).await;
    (alice, room, bobs, bob_sees)
}

async fn members_see_others_type_until_it_stops_or_lapses(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, room, _bobs, mut bob_sees) = bob_watching_general(&app).await;
    let mut alices = WsClient::connect(&app, &alice).await;
    let mut alice_sees = alices.subscribe("typing", TYPING, json!({ "room": room })).await;

    assert_eq!(data(set_typing(&app, &alice, &room, true).await)["setTyping"], true);
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", true));
    data(set_typing(&app, &alice, &room, true).await);
    bob_sees.assert_nothing(QUIET).await;
    alice_sees.assert_nothing(QUIET).await;

    // Sending ends typing, as in every chat client.
    send(&app, &alice, &room, "done").await;
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", false));

    // A client that vanishes mid-sentence: the state lapses 6 s after its last renewal.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    data(set_typing(&app, &alice, &room, true).await);
    let started = Instant::now();
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", true));
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", false));
    let lapsed = started.elapsed();
    assert!(lapsed >= Duration::from_millis(5500), "lapsed after {lapsed:?}, not 6 s");
    alice_sees.assert_nothing(QUIET).await;
}

async fn keystrokes_are_coalesced_to_one_publish_a_second(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "general", &[&bob]).await;
    let mut bobs = WsClient::connect(&app, &bob).await;
    let mut bob_sees = bobs.subscribe("typing", TYPING, json!({ "room": room })).await;
    let published_before = published(&app).await;

    // Ten keystrokes, a pause flickering false and true, then a stop.
    let started = Instant::now();
    for _ in 0..10 {
        data(set_typing(&app, &alice, &room, true).await);
    }
    data(set_typing(&app, &alice, &room, false).await);
    data(set_typing(&app, &alice, &room, true).await);
    data(set_typing(&app, &alice, &room, false).await);
    let (stopped, calls_took) = (Instant::now(), started.elapsed());

    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", true));
    assert_eq!(
        bob_sees.next("typing").await,
        change(&room, "alice", false),
        "the last word reaches the room"
    );
    bob_sees.assert_nothing(Duration::from_millis(1500)).await;
    assert!(stopped.elapsed() < Duration::from_secs(6), "the stop came from the call, not from expiry");
    // Calls spread over more than a second (a loaded machine) may renew once a second more.
    let at_most = 2 + calls_took.as_secs();
    let publishes = published(&app).await - published_before;
    assert!(publishes <= at_most as f64, "13 calls in {calls_took:?} made {publishes} publishes on the bus");
}

/// `parley_typing_published_total` on the instance's `/metrics`.
async fn published(app: &TestApp) -> f64 {
    app.metric("parley_typing_published_total").await
}

async fn only_those_who_may_post_can_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let open = create_channel(&app, &alice, "open", &[&bob]).await;
    let closed = create_private_channel(&app, &alice, "closed", &[&bob]).await;
    let mut bobs = WsClient::connect(&app, &bob).await;
    let mut bob_sees_open = bobs.subscribe("open", TYPING, json!({ "room": open })).await;
    let mut bob_sees_closed = bobs.subscribe("closed", TYPING, json!({ "room": closed })).await;

    assert_error_code(&set_typing(&app, &carol, &open, true).await, "FORBIDDEN");
    assert_error_code(&set_typing(&app, &carol, &closed, true).await, "NOT_FOUND");
    assert_error_code(&set_typing(&app, &carol, "not-an-id", true).await, "BAD_USER_INPUT");
    let elsewhere = app.create_org().await.user("mallory").await;
    assert_error_code(&set_typing(&app, &elsewhere, &open, true).await, "NOT_FOUND");
    bob_sees_open.assert_nothing(QUIET).await;
    bob_sees_closed.assert_nothing(QUIET).await;

    let mut carols = WsClient::connect(&app, &carol).await;
    let mut denied = carols.subscribe("closed", TYPING, json!({ "room": closed })).await;
    assert_eq!(denied.next_error_code().await, "NOT_FOUND");

    // Removed from the room: the subscription ends and no one's typing reaches them.
    let remove = "mutation($room: ID!, $user: ID!) { removeMember(roomId: $room, userId: $user) { id } }";
    app.ok(&alice, remove, json!({ "room": closed, "user": bob.id })).await;
    data(set_typing(&app, &alice, &closed, true).await);
    bob_sees_closed.assert_no_data(QUIET).await;
}

async fn typing_reaches_members_on_the_other_instance() {
    let Some(TwoInstances { a, b, alice, bob, room }) = two_instances().await else { return };
    let mut bobs = WsClient::connect(&b, &bob).await;
    let mut bob_sees = bobs.subscribe("typing", TYPING, json!({ "room": room })).await;

    data(set_typing(&a, &alice, &room, true).await);
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", true));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    data(set_typing(&a, &alice, &room, false).await);
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", false));
    bob_sees.assert_nothing(QUIET).await;
}

async fn keystrokes_through_two_instances_are_one_publish_a_second() {
    let Some(TwoInstances { a, b, alice, bob, room }) = two_instances().await else { return };
    let mut bobs = WsClient::connect(&a, &bob).await;
    let mut bob_sees = bobs.subscribe("typing", TYPING, json!({ "room": room })).await;
    let before = published(&a).await + published(&b).await;

    // A load balancer spreading one client's keystrokes over both instances.
    let started = Instant::now();
    for instance in [&a, &b].repeat(5) {
        data(set_typing(instance, &alice, &room, true).await);
    }
    let calls_took = started.elapsed();
    data(set_typing(&b, &alice, &room, false).await);
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", true));
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", false), "the stop waits for the second");
    bob_sees.assert_nothing(QUIET).await;
    let publishes = published(&a).await + published(&b).await - before;
    let at_most = 2 + calls_took.as_secs();
    assert!(
        publishes <= at_most as f64,
        "11 calls over two instances in {calls_took:?}: {publishes} publishes"
    );
}

/// Alice sends, her client says she stopped, and she types her next message at once: bob
/// sees her typing again, and no second "stop" (with Redis, the cluster's gate still held her
/// "typing" from before the send for up to a second, and dropped the new one as a repeat,
/// though the message had ended it).
async fn typing_again_right_after_a_send_shows_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, room, _bobs, mut bob_sees) = bob_watching_general(&app).await;

    data(set_typing(&app, &alice, &room, true).await);
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", true));
    send(&app, &alice, &room, "first").await;
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", false));
    data(set_typing(&app, &alice, &room, false).await);
    data(set_typing(&app, &alice, &room, true).await);
    assert_eq!(bob_sees.next("typing").await, change(&room, "alice", true));
}

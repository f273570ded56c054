//! Faults survived with nothing lost (PostgreSQL + Redis only). A well-behaved client is a
//! sender that retries each message with its `clientId` (on the other instance when its own
//! is gone) and a subscriber that resumes with `after: lastSeq` when its connection drops.
//! Whatever breaks — Redis down for 10 s, the subscriber's instance SIGKILLed, PostgreSQL
//! restarted, the sender's instance stopped with SIGTERM — the subscriber receives exactly
//! the acknowledged messages, once each and in order, and the database holds each once.
//! `/readyz` reports the outage while it lasts, and no instance exits because a dependency
//! went away. Redis and PostgreSQL are the tests' own where they are stopped. A sender that
//! gives up waiting does not take the announcement of its stored message with it, nor does
//! any other client its change.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::helpers::api::{all_messages, create_channel, create_private_channel, send, seqs};
use crate::helpers::services::{HeldTransaction, PrivatePostgres, PrivateRedis};
use crate::helpers::subscription::Subscription;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, WAIT, spawn_app, spawn_app_with};

pg_test!(
    redis_down_for_ten_seconds_loses_nothing,
    the_subscribers_instance_killed_loses_nothing,
    a_postgres_restart_loses_nothing,
    the_senders_instance_stopped_loses_nothing,
    a_resync_that_meets_postgres_down_is_retried,
    a_send_whose_client_gave_up_is_still_announced,
    a_removal_whose_client_gave_up_is_still_made_and_announced,
);

const FEED: &str =
    "subscription($room: ID, $after: Int) { messageAdded(roomId: $room, after: $after) { seq } }";
const SEND: &str = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { seq } }";

async fn redis_down_for_ten_seconds_loses_nothing() {
    let mut redis = PrivateRedis::start().await;
    let mut a = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", redis.url.as_str())]).await;
    let mut b = a.spawn_second_instance().await;
    let mut run = Run::start(&a, &b, &[&a]).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.kill().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((a.readiness().await, b.readiness().await), (503, 503), "/readyz while Redis is down");
    tokio::time::sleep(Duration::from_secs(9)).await;
    redis.restart().await;
    wait_until_ready(&[&a, &b]).await;

    let sent = run.finish(&a).await;
    // The publish gives up within 2 s, and after one failure it is not even tried.
    assert!(sent.slowest <= Duration::from_millis(2500), "a send stalled: {:?}", sent.slowest);
    assert!(a.is_running() && b.is_running(), "an instance exited when Redis went away");
}

async fn the_subscribers_instance_killed_loses_nothing() {
    let a = spawn_app(Backend::PostgresRedis).await;
    let mut b = a.spawn_second_instance().await;
    let mut run = Run::start(&a, &b, &[&a]).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    b.kill().await;
    assert!(!run.subscriber.read(WAIT).await, "the killed instance's socket closes");
    run.subscriber.resume(&a, &run.bob).await;
    run.finish(&a).await;
}

async fn a_postgres_restart_loses_nothing() {
    let pg = PrivatePostgres::start().await;
    let mut a = spawn_app_with(Backend::PostgresRedis, &[("DATABASE_URL", pg.url.as_str())]).await;
    let mut b = a.spawn_second_instance().await;
    let mut run = Run::start(&a, &b, &[&a, &b]).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.stop().await;
    assert_eq!((a.readiness().await, b.readiness().await), (503, 503), "/readyz while PostgreSQL is down");
    pg.start_server().await;
    wait_until_ready(&[&a, &b]).await;

    run.finish(&a).await;
    assert!(a.is_running() && b.is_running(), "an instance exited when PostgreSQL went away");
}

async fn the_senders_instance_stopped_loses_nothing() {
    let mut a = spawn_app(Backend::PostgresRedis).await;
    let b = a.spawn_second_instance().await;
    let mut run = Run::start(&a, &b, &[&a, &b]).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = a.terminate().await;
    assert!(status.success(), "a graceful stop exits 0, got {status}");
    run.finish(&b).await;
}

/// Messages sent while Redis was down reach a subscriber through its resync on reconnect.
/// When that resync meets PostgreSQL down too, it is retried until the database answers:
/// no later event is needed to deliver them.
async fn a_resync_that_meets_postgres_down_is_retried() {
    let pg = PrivatePostgres::start().await;
    let mut redis = PrivateRedis::start().await;
    let own = [("DATABASE_URL", pg.url.as_str()), ("REDIS_URL", redis.url.as_str())];
    let a = spawn_app_with(Backend::PostgresRedis, &own).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "retried", &[&bob]).await;
    let mut ws = WsClient::connect(&b, &bob).await;
    let mut added = ws.subscribe("added", "subscription { messageAdded { seq } }", json!({})).await;
    let unread_query = "subscription { unreadCountChanged { roomId unreadCount } }";
    let mut unread = ws.subscribe("unread", unread_query, json!({})).await;

    redis.kill().await;
    for body in ["one", "two", "three"] {
        send(&a, &alice, &room, body).await;
    }
    pg.stop().await;
    redis.restart().await;
    // B's resync on reconnect fails (its pool gives up on the database after 5 s) and is
    // to be retried; only then does the database come back.
    b.wait_for_metric_above("parley_feed_retries_total", 0.0, "B never retried a failed resync").await;
    pg.start_server().await;

    let mut delivered = Vec::new();
    for _ in 0..3 {
        delivered.push(added.next("messageAdded").await["seq"].as_i64());
    }
    assert_eq!(delivered, [Some(1), Some(2), Some(3)], "the messages sent while Redis was down");
    let change = unread.next("unreadCountChanged").await;
    assert_eq!((change["roomId"].as_str(), change["unreadCount"].as_i64()), (Some(room.as_str()), Some(3)));
}

/// One fault test's client side: Alice sends into a room through `send_to`, Bob follows it
/// on `b` from the start.
struct Run {
    alice: TestUser,
    bob: TestUser,
    room: String,
    stop: watch::Sender<bool>,
    sender: JoinHandle<Sent>,
    subscriber: Resuming,
}

impl Run {
    async fn start(a: &TestApp, b: &TestApp, send_to: &[&TestApp]) -> Run {
        let org = a.create_org().await;
        let (alice, bob) = (org.user("alice").await, org.user("bob").await);
        let room = create_channel(a, &alice, "faults", &[&bob]).await;
        let subscriber = Resuming::start(b, &bob, &room).await;
        let (stop, stopped) = watch::channel(false);
        let urls = send_to.iter().map(|app| app.url("/graphql")).collect();
        let sender = spawn_sender(urls, alice.token.clone(), room.clone(), stopped);
        Run { alice, bob, room, stop, sender, subscriber }
    }

    /// Sends on for 2 s, stops, and checks: delivered = acknowledged = stored, in order.
    async fn finish(&mut self, live: &TestApp) -> Sent {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = self.stop.send(true);
        let sent = (&mut self.sender).await.expect("the sender task");
        assert!(sent.seqs.len() > 10, "the sender kept sending: {:?}", sent.seqs);
        let last = sent.seqs.last().copied().unwrap_or(0);
        self.subscriber.read_until(last).await;
        assert_eq!(self.subscriber.seen, sent.seqs, "delivered = acknowledged, once each, in order");
        let stored = seqs(&all_messages(live, &self.alice, &self.room).await);
        assert_eq!(stored, sent.seqs, "the database holds each acknowledged message once");
        sent
    }
}

/// What the sender saw acknowledged, in order, and its slowest successful send.
#[derive(Debug)]
struct Sent {
    seqs: Vec<i64>,
    slowest: Duration,
}

/// Sends one message at a time until `stop`; each is retried with its `clientId` until
/// acknowledged, moving to the next URL after a failure (as behind a load balancer).
fn spawn_sender(
    urls: Vec<String>,
    token: String,
    room: String,
    stop: watch::Receiver<bool>,
) -> JoinHandle<Sent> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a client");
        let mut sent = Sent { seqs: Vec::new(), slowest: Duration::ZERO };
        let mut at = 0;
        let mut i = 0;
        while !*stop.borrow() {
            let input = json!({ "roomId": room, "body": format!("m{i}"), "clientId": format!("m{i}") });
            let body = json!({ "query": SEND, "variables": { "input": input } });
            let deadline = Instant::now() + Duration::from_secs(60);
            let seq = loop {
                let started = Instant::now();
                let answer = http.post(&urls[at % urls.len()]).bearer_auth(&token).json(&body).send().await;
                let answer = match answer {
                    Ok(response) => response.json::<Value>().await.ok(),
                    Err(_) => None,
                };
                if let Some(seq) = answer.as_ref().and_then(|v| v["data"]["sendMessage"]["seq"].as_i64()) {
                    sent.slowest = sent.slowest.max(started.elapsed());
                    break seq;
                }
                assert!(Instant::now() < deadline, "m{i} was never acknowledged; last answer {answer:?}");
                at += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            sent.seqs.push(seq);
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent
    })
}

/// A subscriber that resumes from the last seq it saw.
struct Resuming {
    room: String,
    _ws: WsClient,
    feed: Subscription,
    seen: Vec<i64>,
}

impl Resuming {
    async fn start(app: &TestApp, user: &TestUser, room: &str) -> Resuming {
        let (ws, feed) = Self::subscribe(app, user, room, 0).await;
        Resuming { room: room.to_owned(), _ws: ws, feed, seen: Vec::new() }
    }

    async fn subscribe(app: &TestApp, user: &TestUser, room: &str, after: i64) -> (WsClient, Subscription) {
        let mut ws = WsClient::connect(app, user).await;
        let feed = ws.subscribe("feed", FEED, json!({ "room": room, "after": after })).await;
        (ws, feed)
    }

    /// Reconnects to `app` and goes on after the last seq seen.
    async fn resume(&mut self, app: &TestApp, user: &TestUser) {
        let after = self.seen.last().copied().unwrap_or(0);
        (self._ws, self.feed) = Self::subscribe(app, user, &self.room, after).await;
    }

    /// Reads until `quiet` passes without a frame; false once the connection has closed.
    async fn read(&mut self, quiet: Duration) -> bool {
        loop {
            match self.feed.poll(quiet).await {
                Ok(Some(frame)) => self.take(&frame),
                Ok(None) => return true,
                Err(()) => return false,
            }
        }
    }

    /// Reads until `last` has arrived; fails after `WAIT` without it.
    async fn read_until(&mut self, last: i64) {
        let deadline = Instant::now() + WAIT;
        while self.seen.last().copied() < Some(last) && Instant::now() < deadline {
            if let Ok(Some(frame)) = self.feed.poll(Duration::from_millis(200)).await {
                self.take(&frame);
            }
        }
    }

    fn take(&mut self, frame: &Value) {
        let seq = frame["payload"]["data"]["messageAdded"]["seq"].as_i64();
        let seq = seq.unwrap_or_else(|| panic!("not a message frame: {frame}"));
        self.seen.push(seq);
    }
}

/// Waits until every app answers `/readyz` with 200.
async fn wait_until_ready(apps: &[&TestApp]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for app in apps {
        while app.readiness().await != 200 {
            assert!(Instant::now() < deadline, "/readyz stayed 503 after the outage ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A client that gives up while its send waits for its turn (here behind a transaction
/// holding the room's row, as a busy room's queue would) closes its connection, and the
/// server drops the request. The send is stored once its turn comes, and so it is announced:
/// bob's subscription gets it live, not only with the room's next message.
async fn a_send_whose_client_gave_up_is_still_announced() {
    let app = spawn_app(Backend::PostgresRedis).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "general", &[&bob]).await;
    let mut ws = WsClient::connect(&app, &bob).await;
    let mut feed = ws.subscribe("feed", FEED, json!({ "room": room })).await;
    ws.settle().await;

    let input = json!({ "roomId": room, "body": "are you there?", "clientId": "gave-up-1" });
    give_up_while_the_room_is_held(&app, &alice, &room, SEND, json!({ "input": input })).await;

    assert_eq!(feed.next("messageAdded").await["seq"], 1, "announced once stored");
    assert_eq!(seqs(&all_messages(&app, &bob, &room).await), vec![1]);
}

/// Any mutation runs to the end once the server has it, whether or not its client waits: a
/// removal whose client gave up while it waited for the room (held here, as a member leaving
/// at that moment would hold it) is made once its turn comes, and announced, so the removed
/// member's subscriptions learn it. In the request's own future it was dropped with the
/// connection; dropped between its commit and its announcement, it was made and never
/// announced.
async fn a_removal_whose_client_gave_up_is_still_made_and_announced() {
    let app = spawn_app(Backend::PostgresRedis).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let team = create_private_channel(&app, &alice, "team", &[&bob]).await;
    let mut ws = WsClient::connect(&app, &bob).await;
    let mut updates =
        ws.subscribe("updates", "subscription { roomUpdated { roomId reason } }", json!({})).await;
    ws.settle().await;

    let remove = "mutation($id: ID!, $user: ID!) { removeMember(roomId: $id, userId: $user) { id } }";
    give_up_while_the_room_is_held(&app, &alice, &team, remove, json!({ "id": team, "user": bob.id })).await;

    updates.next_room_update(&team, &["ACCESS_REVOKED"]).await;
    let members = "query($id: ID!) { room(id: $id) { members { totalCount } } }";
    let members = app.ok(&alice, members, json!({ "id": team })).await;
    assert_eq!(members["room"]["members"]["totalCount"], 1, "bob was removed");
}

/// Sends `query` as `user` while another transaction holds `room`'s row, gives up waiting
/// after 2 s (closing the connection), and lets the row go once the server dropped the request.
async fn give_up_while_the_room_is_held(
    app: &TestApp,
    user: &TestUser,
    room: &str,
    query: &str,
    variables: Value,
) {
    let holder = HeldTransaction::room_row(Backend::PostgresRedis, room).await.expect("on PostgreSQL");
    let gave_up = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&user.token)
        .json(&json!({ "query": query, "variables": variables }))
        // Long enough for a loaded machine to have queued the request behind the held row.
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client stopped waiting: {gave_up:?}");
    // And for the server to notice the closed connection and drop the request.
    tokio::time::sleep(Duration::from_secs(1)).await;
    holder.commit().await;
}

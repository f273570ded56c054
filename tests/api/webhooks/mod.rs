//! Outgoing webhooks, against a receiver the test starts: registration rules and refusals
//! (admins only, bad URLs, private targets, other organisations), signed JSON and Slack
//! bodies posted once per message of the rooms a webhook follows, retries until delivered or
//! given up, one organisation's hanging target holding up no other organisation, and a target
//! that keeps failing paused until a probe gets through. `stopping` has what ends a webhook's
//! posts (its deletion, its creator's demotion or deactivation), `instances` what takes
//! PostgreSQL + Redis, `limit` the 50-webhook limit, `retention` the pruning.

mod instances;
mod limit;
mod retention;
mod stopping;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, create_private_channel, id_of, open_dm, send};
use crate::helpers::receiver::Receiver;
use crate::helpers::services::OwnDatabase;
use crate::helpers::{
    Backend, TestApp, TestUser, WAIT, assert_error_code, data, spawn_app_alone, spawn_app_alone_with,
};

backend_tests!(
    admins_register_webhooks_and_bad_input_is_refused,
    private_targets_are_refused_unless_allowed,
    public_channel_messages_are_posted_signed_once,
    a_room_webhook_in_slack_format_posts_text,
    failed_attempts_are_retried_until_delivered_or_given_up,
    a_hanging_target_holds_up_only_its_own_organisation,
    a_failing_target_is_paused_without_spending_attempts,
);

/// Longer than a worker's poll (1 s): what has not arrived by then is not coming.
const PAST_A_POLL: Duration = Duration::from_millis(1_500);

const CREATE: &str = "mutation($input: CreateOutgoingWebhookInput!) { createOutgoingWebhook(input: $input) { \
    secret webhook { id url events roomId format } } }";
const DELETE: &str = "mutation($id: ID!) { deleteOutgoingWebhook(id: $id) { id deletedAt } }";
const LIST: &str = "{ outgoingWebhooks { id url } }";
const DELIVERIES: &str = "query($filter: NotificationDeliveryFilter) { notificationDeliveries(filter: $filter, first: 50) { \
    edges { node { id kind event status attempts lastError deliveredAt nextAttemptAt webhookId messageId roomId } } } }";

/// Registers a webhook to `url`; returns its id and secret.
async fn register(app: &TestApp, admin: &TestUser, input: Value) -> (String, String) {
    let created = app.ok(admin, CREATE, json!({ "input": input })).await;
    let created = &created["createOutgoingWebhook"];
    (id_of(&created["webhook"]), created["secret"].as_str().expect("a secret").to_owned())
}

fn everything_to(url: &str) -> Value {
    json!({ "url": url, "events": ["MESSAGE_ADDED"] })
}

/// A server of its own (with `settings`) and an organisation whose admin, ada, has one webhook
/// posting every public channel's messages to a receiver of the test's; bob is a member of
/// `general`.
struct Hooked {
    app: TestApp,
    receiver: Receiver,
    ada: TestUser,
    bob: TestUser,
    general: String,
    webhook: String,
    /// Dropped after the server. A destructuring `let` binds it first (locals drop in reverse
    /// order), not under `..`, which would drop it at once.
    _database: Option<OwnDatabase>,
}

async fn hooked(backend: Backend, settings: &[(&str, &str)]) -> Hooked {
    let (_database, app) = spawn_app_alone_with(backend, settings).await;
    let receiver = Receiver::start().await;
    let org = app.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let general = create_channel(&app, &ada, "general", &[&bob]).await;
    let (webhook, _) = register(&app, &ada, everything_to(&receiver.url)).await;
    Hooked { app, receiver, ada, bob, general, webhook, _database }
}

async fn deliveries(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    let answer = app.ok(admin, DELIVERIES, json!({})).await;
    answer["notificationDeliveries"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// The delivery of `message_id` once it reached `status`.
async fn delivery_of(app: &TestApp, admin: &TestUser, message_id: &str, status: &str) -> Value {
    delivery_of_where(app, admin, message_id, WAIT, |d| d["status"] == status).await
}

async fn admins_register_webhooks_and_bad_input_is_refused(backend: Backend) {
    let (_database, app) = spawn_app_alone(backend).await;
    let org = app.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let other = app.create_org().await.user_with_role("eve", "admin").await;
    let elsewhere = create_channel(&app, &other, "elsewhere", &[]).await;
    let hidden = create_private_channel(&app, &bob, "hidden", &[]).await;
    let url = "http://127.0.0.1:9/hook";

    assert_error_code(&app.gql(&bob, CREATE, json!({ "input": everything_to(url) })).await, "FORBIDDEN");
    assert_error_code(&app.gql(&bob, LIST, json!({})).await, "FORBIDDEN");
    assert_error_code(&app.gql(&bob, DELIVERIES, json!({})).await, "FORBIDDEN");
    for (input, code) in [
        (json!({ "url": "ftp://127.0.0.1/x", "events": ["MESSAGE_ADDED"] }), "BAD_USER_INPUT"),
        (json!({ "url": "not a url", "events": ["MESSAGE_ADDED"] }), "BAD_USER_INPUT"),
        (json!({ "url": url, "events": [] }), "BAD_USER_INPUT"),
        (json!({ "url": url, "events": ["MESSAGE_ADDED"], "roomId": elsewhere }), "NOT_FOUND"),
        (json!({ "url": url, "events": ["MESSAGE_ADDED"], "roomId": hidden }), "NOT_FOUND"),
    ] {
        assert_error_code(&app.gql(&ada, CREATE, json!({ "input": input.clone() })).await, code);
    }
    assert_eq!(
        app.ok(&ada, LIST, json!({})).await["outgoingWebhooks"],
        json!([]),
        "refusals changed nothing"
    );

    let (id, secret) = register(&app, &ada, everything_to(url)).await;
    assert!(secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()), "{secret}");
    assert_eq!(app.ok(&ada, LIST, json!({})).await["outgoingWebhooks"], json!([{ "id": id, "url": url }]));
    assert_eq!(app.ok(&other, LIST, json!({})).await["outgoingWebhooks"], json!([]));
    assert_error_code(&app.gql(&other, DELETE, json!({ "id": id })).await, "NOT_FOUND");

    let deleted = app.ok(&ada, DELETE, json!({ "id": id })).await;
    assert!(deleted["deleteOutgoingWebhook"]["deletedAt"].is_string());
    assert_eq!(app.ok(&ada, DELETE, json!({ "id": id })).await, deleted, "deleting again changes nothing");
    assert_eq!(app.ok(&ada, LIST, json!({})).await["outgoingWebhooks"], json!([]));
}

async fn private_targets_are_refused_unless_allowed(backend: Backend) {
    let (_database, app) = spawn_app_alone_with(backend, &[("PARLEY_WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    let ada = app.create_org().await.user_with_role("ada", "admin").await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
        "http://10.0.0.7/",
        "http://localhost/",
    ] {
        let answer = app.gql(&ada, CREATE, json!({ "input": everything_to(url) })).await;
        assert_error_code(&answer, "BAD_USER_INPUT");
        assert!(answer.to_string().contains("private"), "{url}: {answer}");
    }
    assert_eq!(app.ok(&ada, LIST, json!({})).await["outgoingWebhooks"], json!([]));
}

async fn public_channel_messages_are_posted_signed_once(backend: Backend) {
    let (_database, app) = spawn_app_alone(backend).await;
    let receiver = Receiver::start().await;
    let org = app.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let general = create_channel(&app, &ada, "general", &[&bob]).await;
    let private = create_private_channel(&app, &ada, "board", &[&bob]).await;
    let dm = open_dm(&app, &bob, &[&ada]).await;
    let (_, secret) = register(&app, &ada, everything_to(&format!("{}/hooks/parley", receiver.url))).await;

    send(&app, &bob, &private, "not for webhooks").await;
    send(&app, &bob, &dm, "nor this").await;
    let sent = send(&app, &bob, &general, "hello webhooks").await;
    let received = receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(PAST_A_POLL).await;
    assert_eq!(receiver.received().len(), 1, "only the public channel's message: {received:#?}");

    let post = &received[0];
    assert_eq!(post.path, "/hooks/parley");
    assert_eq!(post.header("content-type"), "application/json");
    assert!(post.signed_with(&secret), "signed with the webhook's secret: {post:?}");
    assert!(!post.signed_with("another secret"));
    let sent_at: i64 = post.header("x-parley-timestamp").parse().expect("a unix time");
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    assert_eq!(post.header("x-parley-event"), "MESSAGE_ADDED");
    let body = post.json();
    assert_eq!(body["event"], "MESSAGE_ADDED");
    assert_eq!(body["message"]["id"], sent["id"]);
    assert_eq!(body["message"]["body"], "hello webhooks");
    assert_eq!(body["message"]["deleted"], false);
    assert_eq!(
        (body["room"]["name"].as_str(), body["room"]["kind"].as_str()),
        (Some("general"), Some("channel"))
    );
    assert_eq!(body["author"]["handle"], "bob");

    let delivery = delivery_of(&app, &ada, sent["id"].as_str().expect("an id"), "DELIVERED").await;
    assert_eq!(post.header("idempotency-key"), delivery["id"].as_str().expect("an id"));
    assert_eq!(post.header("x-parley-delivery"), post.header("idempotency-key"));
    assert_eq!((delivery["attempts"].as_i64(), delivery["kind"].as_str()), (Some(1), Some("WEBHOOK")));
    assert_eq!(
        (delivery["event"].as_str(), delivery["roomId"].as_str()),
        (Some("MESSAGE_ADDED"), Some(general.as_str()))
    );
    assert!(delivery["lastError"].is_null() && delivery["deliveredAt"].is_string());
    assert_eq!(deliveries(&app, &ada).await.len(), 1, "no delivery rows for the DM or the private channel");
}

async fn a_room_webhook_in_slack_format_posts_text(backend: Backend) {
    let (_database, app) = spawn_app_alone(backend).await;
    let receiver = Receiver::start().await;
    let org = app.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let ops = create_private_channel(&app, &ada, "ops", &[&bob]).await;
    let general = create_channel(&app, &ada, "general", &[&bob]).await;
    let input = json!({ "url": receiver.url, "events": ["MESSAGE_ADDED"], "roomId": ops, "format": "SLACK" });
    let created = app.ok(&ada, CREATE, json!({ "input": input })).await;
    assert_eq!(created["createOutgoingWebhook"]["webhook"]["format"], "SLACK");
    assert_eq!(created["createOutgoingWebhook"]["webhook"]["roomId"], ops);

    send(&app, &bob, &general, "another room").await;
    send(&app, &bob, &ops, "deploy <done> & dusted").await;
    let received = receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(PAST_A_POLL).await;
    assert_eq!(receiver.received().len(), 1, "only the webhook's own room");
    assert_eq!(received[0].json(), json!({ "text": "*Bob* in #ops: deploy &lt;done&gt; &amp; dusted" }));
}

async fn failed_attempts_are_retried_until_delivered_or_given_up(backend: Backend) {
    let Hooked { _database, app, receiver, ada, bob, general, .. } =
        hooked(backend, &[("PARLEY_WEBHOOK_MAX_ATTEMPTS", "3")]).await;

    receiver.answer_with(&[500, 503]);
    let first = id_of(&send(&app, &bob, &general, "third time lucky").await);
    let received = receiver.wait_for(3, WAIT).await;
    assert_eq!(received.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 503, 200]);
    let keys: HashSet<&str> = received.iter().map(|r| r.header("idempotency-key")).collect();
    assert_eq!(keys.len(), 1, "every attempt carries the same key");
    let delivered = delivery_of(&app, &ada, &first, "DELIVERED").await;
    assert_eq!((delivered["attempts"].as_i64(), &delivered["lastError"]), (Some(3), &Value::Null));

    receiver.answer_with(&[500, 500, 500]);
    let second = id_of(&send(&app, &bob, &general, "never lucky").await);
    receiver.wait_for(6, WAIT).await;
    let failed = delivery_of(&app, &ada, &second, "FAILED").await;
    assert_eq!((failed["attempts"].as_i64(), failed["lastError"].as_str()), (Some(3), Some("HTTP 500")));
    tokio::time::sleep(PAST_A_POLL).await;
    assert_eq!(receiver.received().len(), 6, "no attempt after the last");
    let pending = data(app.gql(&ada, DELIVERIES, json!({ "filter": { "status": "PENDING" } })).await);
    assert_eq!(pending["notificationDeliveries"]["edges"], json!([]));
}

/// One organisation's target hangs (its first 16 requests are answered after 10 s): its
/// deliveries hold at most half of the worker's 32 slots, and another organisation's are
/// delivered meanwhile; when the hanging ones end, their slots take the rest. Before, the
/// worker waited for a whole claim to end before claiming again.
///
/// How many of the 16 it holds depends on how the sends met the claims: an organisation
/// holding more than a quarter of the slots is passed over until it is back to a quarter, so
/// a first claim that took 12 rows stays at 12 while they hang.
async fn a_hanging_target_holds_up_only_its_own_organisation(backend: Backend) {
    let (_database, app) = spawn_app_alone_with(backend, &[("PARLEY_WEBHOOK_TIMEOUT_MS", "30000")]).await;
    let (hanging, healthy) = (Receiver::start().await, Receiver::start().await);
    hanging.stall_with(&[Duration::from_secs(10); 16]);
    let stuck = app.create_org().await;
    let (ada, bob) = (stuck.user_with_role("ada", "admin").await, stuck.user("bob").await);
    let busy = create_channel(&app, &ada, "busy", &[&bob]).await;
    register(&app, &ada, everything_to(&hanging.url)).await;
    let fine = app.create_org().await;
    let (eve, fay) = (fine.user_with_role("eve", "admin").await, fine.user("fay").await);
    let quiet = create_channel(&app, &eve, "quiet", &[&fay]).await;
    register(&app, &eve, everything_to(&healthy.url)).await;

    for i in 0..20 {
        send(&app, &bob, &busy, &format!("stuck {i}")).await;
    }
    hanging.wait_for(9, WAIT).await;
    let sent = id_of(&send(&app, &fay, &quiet, "delivered all the same").await);
    let received = healthy.wait_for(1, WAIT).await;
    assert_eq!(received[0].json()["message"]["id"], sent.as_str());
    assert_eq!(delivery_of(&app, &eve, &sent, "DELIVERED").await["attempts"], 1);

    let stalled = hanging.received().len();
    assert!((9..=16).contains(&stalled), "more than a quarter of the slots, at most half: {stalled}");
    let waiting: Vec<(String, i64)> = deliveries(&app, &ada)
        .await
        .iter()
        .map(|d| (d["status"].as_str().unwrap_or_default().to_owned(), d["attempts"].as_i64().unwrap_or(-1)))
        .collect();
    let count =
        |status: &str, attempts: i64| waiting.iter().filter(|d| *d == &(status.to_owned(), attempts)).count();
    assert_eq!(
        (count("DELIVERING", 1), count("PENDING", 0)),
        (stalled, 20 - stalled),
        "the rest wait their turn, no attempt counted: {waiting:?}"
    );

    hanging.wait_for(20, WAIT + Duration::from_secs(10)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let settled = deliveries(&app, &ada).await;
        if settled.iter().all(|d| d["status"] == "DELIVERED" && d["attempts"] == 1) {
            assert_eq!(settled.len(), 20);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "each delivered at its first attempt: {settled:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_failing_target_is_paused_without_spending_attempts(backend: Backend) {
    // Retries 50 ms apart, so five failures come fast; a pause long enough to look at; a probe
    // window (two timeouts) short enough to wait out, with timeouts a loaded machine keeps.
    let settings = [
        ("PARLEY_WEBHOOK_RETRY_BASE_MS", "50"),
        ("PARLEY_WEBHOOK_MAX_ATTEMPTS", "10"),
        ("PARLEY_WEBHOOK_PAUSE_MS", "12000"),
        ("PARLEY_WEBHOOK_TIMEOUT_MS", "1500"),
    ];
    let Hooked { _database, app, receiver, ada, bob, general, .. } = hooked(backend, &settings).await;
    let other = app.create_org().await.user_with_role("eve", "admin").await;
    let elsewhere = create_channel(&app, &other, "elsewhere", &[]).await;
    register(&app, &other, everything_to(&receiver.url)).await;

    // Down for five attempts, then back (the receiver answers 200 once its statuses run out).
    receiver.answer_with(&[500; 5]);
    let first = id_of(&send(&app, &bob, &general, "before the outage was noticed").await);
    receiver.wait_for(5, WAIT).await;
    app.wait_for_metric_above("parley_notification_targets_paused_total", 0.0, "the target is paused").await;

    let mut later = Vec::new();
    for i in 0..3 {
        later.push(id_of(&send(&app, &bob, &general, &format!("while paused {i}")).await));
    }
    let paused = |d: &Value| {
        d["status"] == "PENDING" && d["lastError"].as_str().is_some_and(|e| e.starts_with("paused"))
    };
    let time = |d: &Value, field: &str| {
        let text = d[field].as_str().unwrap_or_else(|| panic!("{field}: {d}"));
        chrono::DateTime::parse_from_rfc3339(text).expect("an RFC 3339 time")
    };
    let mut pause_ends = Vec::new();
    for message in &later {
        let waiting = delivery_of_where(&app, &ada, message, WAIT, paused).await;
        assert_eq!(waiting["attempts"], 0, "a paused delivery spends no attempt: {waiting}");
        assert!(waiting["lastError"].as_str().is_some_and(|e| e.ends_with("(last: HTTP 500)")), "{waiting}");
        pause_ends.push(time(&waiting, "nextAttemptAt"));
    }
    // Another organisation's failures pause nothing of this one's, at the same URL: delivered
    // before this one's paused deliveries are due again.
    let unaffected = id_of(&send(&app, &other, &elsewhere, "not paused").await);
    let delivered = delivery_of(&app, &other, &unaffected, "DELIVERED").await;
    assert_eq!(delivered["attempts"], 1);
    let earliest = pause_ends.iter().min().expect("three paused deliveries");
    assert!(time(&delivered, "deliveredAt") < *earliest, "delivered before the pause ended: {delivered}");

    // After the pause one delivery probes; it is answered, and the rest follow.
    let after_the_pause = WAIT + Duration::from_secs(16);
    for (message, attempts) in [(&first, 6)].into_iter().chain(later.iter().map(|m| (m, 1))) {
        let delivered =
            delivery_of_where(&app, &ada, message, after_the_pause, |d| d["status"] == "DELIVERED").await;
        assert_eq!(delivered["attempts"], attempts, "only the attempts made count: {delivered}");
    }
    assert_eq!(receiver.received().len(), 10, "5 failures, 1 + 3 delivered here, 1 elsewhere");
}

/// The delivery of `message_id` once it satisfies `condition` (panics after `wait`).
async fn delivery_of_where(
    app: &TestApp,
    admin: &TestUser,
    message_id: &str,
    wait: Duration,
    condition: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let all = deliveries(app, admin).await;
        if let Some(found) = all.iter().find(|d| d["messageId"] == message_id && condition(d)) {
            return found.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no such delivery of {message_id}: {all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

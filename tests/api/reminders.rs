//! Reminders: created on a message, a room or only a note; fired once as `reminderDue` to
//! their owner (and nobody else), also when their message was deleted; snoozed, completed
//! and cancelled; listed by status; bad input refused with nothing written. The scheduler
//! wakes early for a sooner reminder created on any instance, fires a reminder that fell due
//! while every instance was down at the next start, and, with two instances racing on
//! PostgreSQL, fires each reminder exactly once. A reminder fired while the subscriber's
//! instance, or the firing one, was cut off from Redis arrives once the link is back.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::api::{create_channel, create_private_channel, edge_ids, id_of, send};
use crate::helpers::proxy::CuttableProxy;
use crate::helpers::services::{OwnDatabase, PrivatePostgres, PrivateRedis};
use crate::helpers::subscription::Subscription;
use crate::helpers::ws::WsClient;
use crate::helpers::{
    Backend, QUIET, TestApp, TestUser, WAIT, assert_error_code, data, spawn_app_alone, spawn_app_with,
};

backend_tests!(
    a_reminder_fires_once_to_its_owner_and_can_be_snoozed_completed_or_cancelled,
    bad_reminders_are_refused_and_change_nothing,
    a_sooner_reminder_wakes_the_scheduler,
    a_reminder_due_while_down_fires_at_the_next_start,
    forty_reminders_due_together_all_arrive,
);
pg_test!(
    two_instances_fire_each_reminder_exactly_once,
    a_sooner_reminder_created_on_another_instance_fires_in_time,
    a_reminder_fired_while_its_instance_was_cut_off_arrives_later,
    a_reminder_its_instance_could_not_announce_arrives_once_it_can,
);

const CREATE: &str =
    "mutation($input: CreateReminderInput!) { createReminder(input: $input) { id status note remindAt } }";
const SNOOZE: &str =
    "mutation($id: ID!, $until: DateTime!) { snoozeReminder(id: $id, until: $until) { id status firedAt } }";
const COMPLETE: &str = "mutation($id: ID!) { completeReminder(id: $id) { id status completedAt } }";
const CANCEL: &str = "mutation($id: ID!) { cancelReminder(id: $id) { id status } }";
const LIST: &str = "query($status: ReminderStatus) { viewer { reminders(filter: { status: $status }, first: 100) { \
    edges { node { id status note firedAt room { id } message { id body deletedAt } } } } } }";
const DUE: &str = "subscription { reminderDue { reminder { id status note firedAt } message { id body deletedAt } \
    room { id name } } }";

/// A moment `millis` from now, as GraphQL's `DateTime`.
fn in_millis(millis: i64) -> String {
    (Utc::now() + chrono::Duration::milliseconds(millis)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn create(app: &TestApp, user: &TestUser, input: Value) -> Value {
    app.gql(user, CREATE, json!({ "input": input })).await
}

async fn create_ok(app: &TestApp, user: &TestUser, input: Value) -> String {
    id_of(&data(create(app, user, input).await)["createReminder"])
}

async fn listed(app: &TestApp, user: &TestUser, status: Value) -> Vec<String> {
    edge_ids(&app.ok(user, LIST, json!({ "status": status })).await["viewer"]["reminders"])
}

async fn a_reminder_fires_once_to_its_owner_and_can_be_snoozed_completed_or_cancelled(backend: Backend) {
    let (_database, app) = spawn_app_alone(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "general", &[&bob]).await;
    let message = id_of(&send(&app, &bob, &room, "review the contract").await);
    let mut alices = WsClient::connect(&app, &alice).await;
    let mut due = alices.subscribe("due", DUE, json!({})).await;
    let mut bobs = WsClient::connect(&app, &bob).await;
    let mut bobs_due = bobs.subscribe("due", DUE, json!({})).await;

    let input = json!({ "messageId": message, "remindAt": in_millis(1_500), "note": " read it " });
    let created = data(create(&app, &alice, input).await)["createReminder"].clone();
    let reminder = id_of(&created);
    assert_eq!((created["status"].as_str(), created["note"].as_str()), (Some("PENDING"), Some("read it")));
    assert_eq!(listed(&app, &alice, json!("PENDING")).await, std::slice::from_ref(&reminder));
    assert_eq!(listed(&app, &bob, Value::Null).await, Vec::<String>::new(), "reminders are per user");

    let fired = due.next("reminderDue").await;
    assert_eq!(fired["reminder"]["id"], reminder);
    assert_eq!(fired["reminder"]["status"], "DUE");
    assert_eq!(fired["reminder"]["note"], "read it");
    assert!(fired["reminder"]["firedAt"].is_string());
    assert_eq!(fired["message"], json!({ "id": message, "body": "review the contract", "deletedAt": null }));
    assert_eq!(fired["room"], json!({ "id": room, "name": "general" }));
    due.assert_nothing(QUIET).await;
    bobs_due.assert_nothing(QUIET).await;
    assert_eq!(listed(&app, &alice, json!("DUE")).await, std::slice::from_ref(&reminder));
    assert_eq!(listed(&app, &alice, json!("PENDING")).await, Vec::<String>::new());

    // Snoozed, it is pending again and fires again; completed, it is done, once.
    let snoozed = app.ok(&alice, SNOOZE, json!({ "id": reminder, "until": in_millis(1_000) })).await;
    assert_eq!(snoozed["snoozeReminder"], json!({ "id": reminder, "status": "PENDING", "firedAt": null }));
    assert_eq!(due.next("reminderDue").await["reminder"]["id"], reminder);
    for _ in 0..2 {
        let done = app.ok(&alice, COMPLETE, json!({ "id": reminder })).await;
        assert_eq!(done["completeReminder"]["status"], "DONE");
    }
    assert_eq!(listed(&app, &alice, json!("DONE")).await, std::slice::from_ref(&reminder));
    assert_eq!(listed(&app, &alice, Value::Null).await, Vec::<String>::new());
    assert_error_code(&app.gql(&alice, CANCEL, json!({ "id": reminder })).await, "BAD_USER_INPUT");
    let too_late = app.gql(&alice, SNOOZE, json!({ "id": reminder, "until": in_millis(60_000) })).await;
    assert_error_code(&too_late, "BAD_USER_INPUT");

    // A cancelled reminder never fires.
    let cancelled = create_ok(&app, &alice, json!({ "roomId": room, "remindAt": in_millis(1_000) })).await;
    for _ in 0..2 {
        assert_eq!(
            app.ok(&alice, CANCEL, json!({ "id": cancelled })).await["cancelReminder"]["status"],
            "CANCELLED"
        );
    }
    due.assert_nothing(Duration::from_millis(1_500)).await;
    assert_eq!(listed(&app, &alice, json!("CANCELLED")).await, [cancelled]);

    // A reminder whose message was deleted still fires, showing the message as deleted;
    // one with only a note fires too.
    let doomed = id_of(&send(&app, &alice, &room, "soon gone").await);
    let on_deleted =
        create_ok(&app, &alice, json!({ "messageId": doomed, "remindAt": in_millis(1_000) })).await;
    app.ok(&alice, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": doomed }))
        .await;
    let fired = due.next("reminderDue").await;
    assert_eq!(fired["reminder"]["id"], on_deleted);
    assert_eq!(fired["message"]["id"], doomed);
    assert_eq!(fired["message"]["body"], Value::Null);
    assert!(fired["message"]["deletedAt"].is_string());
    // A new one on the deleted message: nothing to come back to.
    let late = create(&app, &alice, json!({ "messageId": doomed, "remindAt": in_millis(60_000) })).await;
    assert_error_code(&late, "BAD_USER_INPUT");
    let plain = create_ok(&app, &alice, json!({ "remindAt": in_millis(800), "note": "stretch" })).await;
    let fired = due.next("reminderDue").await;
    assert_eq!(
        fired,
        json!({
            "reminder": { "id": plain, "status": "DUE", "note": "stretch", "firedAt": fired["reminder"]["firedAt"] },
            "message": null,
            "room": null,
        })
    );
    bobs_due.assert_nothing(QUIET).await;
}

async fn bad_reminders_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_MAX_PENDING_REMINDERS", "2")]).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "general", &[&bob]).await;
    let secret = create_private_channel(&app, &bob, "secret", &[]).await;
    let hidden = id_of(&send(&app, &bob, &secret, "not for alice").await);
    let other = app.create_org().await.user("olga").await;
    let foreign_room = create_channel(&app, &other, "elsewhere", &[]).await;
    let message = id_of(&send(&app, &alice, &room, "here").await);

    let later = in_millis(3_600_000);
    let refusals = [
        (json!({ "remindAt": in_millis(-1_000) }), "BAD_USER_INPUT"),
        (json!({ "remindAt": in_millis(366 * 24 * 3_600_000) }), "BAD_USER_INPUT"),
        (json!({ "remindAt": later, "note": "x".repeat(1_001) }), "BAD_USER_INPUT"),
        (json!({ "remindAt": later, "messageId": hidden }), "NOT_FOUND"),
        (json!({ "remindAt": later, "roomId": secret }), "NOT_FOUND"),
        (json!({ "remindAt": later, "roomId": foreign_room }), "NOT_FOUND"),
        (json!({ "remindAt": later, "roomId": uuid::Uuid::new_v4() }), "NOT_FOUND"),
        (json!({ "remindAt": later, "roomId": "not-an-id" }), "BAD_USER_INPUT"),
        (json!({ "remindAt": later, "messageId": message, "roomId": secret }), "BAD_USER_INPUT"),
    ];
    for (input, code) in refusals {
        assert_error_code(&create(&app, &alice, input).await, code);
    }
    assert_eq!(listed(&app, &alice, Value::Null).await, Vec::<String>::new(), "a refusal writes nothing");

    // At most two pending: a third is refused until one is settled.
    let first = create_ok(&app, &alice, json!({ "remindAt": later, "messageId": message })).await;
    create_ok(&app, &alice, json!({ "remindAt": later, "roomId": room })).await;
    assert_error_code(&create(&app, &alice, json!({ "remindAt": later })).await, "BAD_USER_INPUT");
    app.ok(&alice, CANCEL, json!({ "id": first })).await;
    create_ok(&app, &alice, json!({ "remindAt": later })).await;

    // Another user's reminder is not found, whatever is asked of it.
    let bobs = create_ok(&app, &bob, json!({ "remindAt": later, "note": "bob's" })).await;
    assert_error_code(&app.gql(&alice, CANCEL, json!({ "id": bobs })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&alice, COMPLETE, json!({ "id": bobs })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&alice, SNOOZE, json!({ "id": bobs, "until": later })).await, "NOT_FOUND");
    assert_error_code(
        &app.gql(&alice, SNOOZE, json!({ "id": first, "until": in_millis(-1) })).await,
        "BAD_USER_INPUT",
    );
    assert_error_code(&app.gql(&alice, LIST, json!({ "status": "LATER" })).await, "BAD_USER_INPUT");
    assert_eq!(listed(&app, &bob, json!("PENDING")).await, [bobs]);
}

async fn a_sooner_reminder_wakes_the_scheduler(backend: Backend) {
    let (_database, app) = spawn_app_alone(backend).await;
    sooner_reminder_wakes_the_scheduler(&app, &app).await;
}

/// The scheduler sleeps until the soonest reminder (an hour away, capped at 30 s); one
/// created on `creating` for a second from now must wake it. The wait below is shorter
/// than the cap, so a scheduler that did not wake would fail it.
async fn sooner_reminder_wakes_the_scheduler(creating: &TestApp, listening: &TestApp) {
    let org = creating.create_org().await;
    let alice = org.user("alice").await;
    create_ok(creating, &alice, json!({ "remindAt": in_millis(3_600_000), "note": "far" })).await;
    tokio::time::sleep(QUIET).await;
    let mut ws = WsClient::connect(listening, &alice).await;
    let mut due = ws.subscribe("due", DUE, json!({})).await;
    let soon = create_ok(creating, &alice, json!({ "remindAt": in_millis(1_000), "note": "soon" })).await;
    let fired = due.next_frame(WAIT).await;
    assert_eq!(fired["payload"]["data"]["reminderDue"]["reminder"]["id"], soon);
}

async fn a_sooner_reminder_created_on_another_instance_fires_in_time() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let (_database, a) = spawn_app_alone(backend).await;
    let b = a.spawn_second_instance().await;
    sooner_reminder_wakes_the_scheduler(&b, &a).await;
}

/// B reaches Redis through a proxy that is cut while A fires Alice's reminder: B never hears
/// the event, and its own scheduler, deaf to the new reminder, sleeps on. Once B's link is
/// back, its resync reads the reminder from the database and Alice's subscription on B gets
/// it, once.
async fn a_reminder_fired_while_its_instance_was_cut_off_arrives_later() {
    let Some((_, redis_url)) = crate::helpers::pg_redis_urls() else { return };
    let (proxy, via_proxy) = CuttableProxy::in_front_of(&redis_url, 6379).await;
    // A database of their own: no other test's scheduler may fire this reminder.
    let database = OwnDatabase::create();
    let a = spawn_app_with(Backend::PostgresRedis, &[("DATABASE_URL", database.url.as_str())]).await;
    let b_env = [("DATABASE_URL", database.url.as_str()), ("REDIS_URL", via_proxy.as_str())];
    let b = spawn_app_with(Backend::PostgresRedis, &b_env).await;
    let org = a.create_org().await;
    let alice = org.user("alice").await;
    let mut ws = WsClient::connect(&b, &alice).await;
    let mut due = ws.subscribe("due", DUE, json!({})).await;
    tokio::time::sleep(QUIET).await;

    proxy.cut();
    let id = create_ok(&a, &alice, json!({ "remindAt": in_millis(500), "note": "cut off" })).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(listed(&a, &alice, json!("DUE")).await, std::slice::from_ref(&id), "A fired it meanwhile");
    due.assert_nothing(QUIET).await;
    proxy.restore();

    let fired = due.next("reminderDue").await;
    assert_eq!((id_of(&fired["reminder"]), fired["reminder"]["note"].as_str()), (id, Some("cut off")));
    due.assert_nothing(QUIET).await;
}

/// A fires Alice's reminder while its own link to Redis is cut, so the announcement reaches no
/// other instance, and her subscription on B, which never lost Redis, has nothing to resync
/// on. Once A's link is back, A tells the other instances to resync, and B delivers it, once.
async fn a_reminder_its_instance_could_not_announce_arrives_once_it_can() {
    if crate::helpers::pg_redis_urls().is_none() {
        return;
    }
    // A database and a Redis of their own: no other test's scheduler may fire this reminder,
    // and no other test's resync notice may deliver it before A's does.
    let (database, redis) = (OwnDatabase::create(), PrivateRedis::start().await);
    let (proxy, via_proxy) = CuttableProxy::in_front_of(&redis.url, 6379).await;
    let a_env = [("DATABASE_URL", database.url.as_str()), ("REDIS_URL", via_proxy.as_str())];
    let a = spawn_app_with(Backend::PostgresRedis, &a_env).await;
    let b_env = [("DATABASE_URL", database.url.as_str()), ("REDIS_URL", redis.url.as_str())];
    let b = spawn_app_with(Backend::PostgresRedis, &b_env).await;
    let alice = a.create_org().await.user("alice").await;
    let mut ws = WsClient::connect(&b, &alice).await;
    let mut due = ws.subscribe("due", DUE, json!({})).await;
    due.assert_nothing(QUIET).await;

    proxy.cut();
    let fired_by_a = a.metric("parley_reminders_fired_total").await;
    let id = create_ok(&a, &alice, json!({ "remindAt": in_millis(500), "note": "unheard" })).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a.metric("parley_reminders_fired_total").await, fired_by_a + 1.0, "A fired it");
    due.assert_nothing(QUIET).await;
    proxy.restore();

    let fired = due.next("reminderDue").await;
    assert_eq!((id_of(&fired["reminder"]), fired["reminder"]["note"].as_str()), (id, Some("unheard")));
    due.assert_nothing(Duration::from_secs(2)).await;
}

/// More reminders due at one moment than a user topic buffers (16 events): none is lost.
async fn forty_reminders_due_together_all_arrive(backend: Backend) {
    let (_database, app) = spawn_app_alone(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut due = ws.subscribe("due", DUE, json!({})).await;
    let at = in_millis(2_000);
    let mut expected = Vec::new();
    for i in 0..40 {
        expected.push(create_ok(&app, &alice, json!({ "remindAt": at, "note": format!("n{i}") })).await);
    }
    let mut heard: Vec<String> = due
        .drain("reminderDue", Duration::from_secs(3))
        .await
        .iter()
        .map(|f| id_of(&f["reminder"]))
        .collect();
    heard.sort();
    expected.sort();
    assert_eq!(heard, expected);
}

async fn a_reminder_due_while_down_fires_at_the_next_start(backend: Backend) {
    // PostgreSQL: a database of the test's own, so no other test's instance fires it.
    let own_pg = match backend {
        Backend::PostgresRedis => Some(PrivatePostgres::start().await),
        Backend::Sqlite => None,
    };
    let overrides: Vec<(&str, &str)> = own_pg.iter().map(|pg| ("DATABASE_URL", pg.url.as_str())).collect();
    let mut first = spawn_app_with(backend, &overrides).await;
    let org = first.create_org().await;
    let alice = org.user("alice").await;
    let reminder =
        create_ok(&first, &alice, json!({ "remindAt": in_millis(1_500), "note": "while down" })).await;
    first.kill().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let second = first.spawn_second_instance().await;
    let mut due = Vec::new();
    for _ in 0..50 {
        due = listed(&second, &alice, json!("DUE")).await;
        if !due.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(due, [reminder]);
}

async fn two_instances_fire_each_reminder_exactly_once() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let (_database, a) = spawn_app_alone(backend).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(org.user(&format!("user{i}")).await);
    }
    // Each user listens on one instance; reminders are created through both.
    let mut listeners: Vec<(WsClient, Subscription)> = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let mut ws = WsClient::connect(if i % 2 == 0 { &a } else { &b }, user).await;
        let due = ws.subscribe("due", DUE, json!({})).await;
        listeners.push((ws, due));
    }
    let mut expected = Vec::new();
    for i in 0..120 {
        let (app, user) = (if i % 2 == 0 { &a } else { &b }, &users[i % users.len()]);
        let at = in_millis(1_500 + (i as i64 % 10) * 50);
        expected.push(create_ok(app, user, json!({ "remindAt": at, "note": format!("n{i}") })).await);
    }
    let mut heard: HashMap<String, usize> = HashMap::new();
    for (_, due) in &mut listeners {
        for frame in due.drain("reminderDue", WAIT).await {
            *heard.entry(id_of(&frame["reminder"])).or_default() += 1;
        }
    }
    let twice: Vec<_> = heard.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "fired more than once: {twice:?}");
    let mut heard: Vec<String> = heard.into_keys().collect();
    heard.sort();
    expected.sort();
    assert_eq!(heard, expected, "every reminder fires");
    for user in &users {
        assert_eq!(listed(&a, user, json!("DUE")).await.len(), 30);
    }
}

//! Support inboxes through HTTP and WebSocket: inboxes and who sees them; the signed inbound
//! webhook (accepted, and refused for a wrong secret, a missing header, a tampered body, a
//! stale timestamp, an unknown inbox, bad input); idempotent redelivery, sequential and
//! concurrent; agents live-notified of a new conversation; round robin over three agents;
//! least busy with capacity and the queue draining; online agents first; reopening on a
//! contact's message and when a snooze runs out; status changes on `roomUpdated`; access for
//! non-agents, admins, other organisations and integration tokens; and on PostgreSQL + Redis,
//! two instances deciding at once without exceeding capacity.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::api::unread_count;
use crate::helpers::receiver::Receiver;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, WAIT, assert_error_code, spawn_app, spawn_app_with};

backend_tests!(
    admins_manage_inboxes_and_agents_see_only_theirs,
    signed_webhooks_are_stored_and_bad_ones_refused,
    a_redelivered_message_is_stored_once,
    round_robin_takes_three_agents_in_turn,
    least_busy_honours_capacity_and_drains_the_queue,
    online_agents_are_preferred,
    contacts_reopen_and_snoozes_run_out,
    conversations_are_hidden_from_non_agents_and_integration_tokens_only_ingest,
    replies_go_out_signed_and_are_retried_across_a_restart,
    metrics_match_hand_computed_figures,
    agents_see_the_first_message_of_every_new_conversation_in_a_burst,
    assignments_are_posted_to_webhooks_that_want_them,
);

pg_test!(
    two_instances_never_exceed_capacity,
    concurrent_redeliveries_on_two_instances_store_once,
    a_snooze_runs_out_once_with_two_instances,
);

/// The README's example: the demo's inbox takes the `curl` that `parley sign` prints (SQLite:
/// the demo needs an empty database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_inbox_takes_the_signed_curl_of_parley_sign() {
    let app = spawn_app_with(Backend::Sqlite, &[("PARLEY_DEMO", "true")]).await;
    let body = r#"{"externalId":"sms-1","source":"sms","contact":{"phone":"+41 79 123 45 67","name":"Dana's mum"},"body":"Where is my parcel?"}"#;
    let curl = app.cli(&["sign", "--body", body, "--url", &app.url("")]).await;
    assert!(curl.starts_with("curl "), "{curl}");
    let run = |command: String| async move {
        let output =
            tokio::process::Command::new("sh").arg("-c").arg(command).output().await.expect("run curl");
        serde_json::from_slice::<Value>(&output.stdout).expect("a JSON answer")
    };
    let stored = run(curl.clone()).await;
    assert_eq!(stored["duplicate"], false, "{stored}");
    assert_eq!(run(curl).await["duplicate"], true, "the same command again is a redelivery");
    let admin = app.cli(&["token", "--user", "admin"]).await;
    let query = "{ supportInboxes { name conversations(first: 10) { edges { node { name conversation { status assignee { handle } contact { phone } } } } } } }";
    let inboxes = app.gql_token(Some(&admin), query, json!({})).await;
    let edges =
        inboxes["data"]["supportInboxes"][0]["conversations"]["edges"].as_array().expect("edges").clone();
    let conversations: Vec<Value> = edges.iter().map(|e| e["node"].clone()).collect();
    assert_eq!(conversations.len(), 3, "two seeded, one posted: {inboxes}");
    assert!(conversations.iter().any(|c| c["conversation"]["contact"]["phone"] == "+41791234567"));
}

const CREATE: &str = "mutation($input: CreateSupportInboxInput!) { createSupportInbox(input: $input) { \
    webhookSecret inbox { id name assignment agentCapacity } } }";
const ADD: &str =
    "mutation($inbox: ID!, $user: ID!) { addInboxMember(inboxId: $inbox, userId: $user) { id } }";
const CONVERSATION: &str = "query($id: ID!) { room(id: $id) { id kind name conversation { status \
    assignee { handle } contact { displayName phone email } assignmentDecision { strategy reason \
    chosen { handle } candidates { agent { handle } load capacity online } } } } }";
const SET_STATUS: &str = "mutation($room: ID!, $status: ConversationStatus!, $until: DateTime) { \
    setConversationStatus(roomId: $room, status: $status, snoozedUntil: $until) { id conversation { status } } }";
const ROOM_UPDATES: &str = "subscription { roomUpdated { roomId reason conversationChange { statusFrom statusTo \
    assigneeFrom assigneeTo by } } }";

/// An inbox of `org`'s admin with `agents`; returns its id and secret.
async fn inbox(app: &TestApp, admin: &TestUser, input: Value, agents: &[&TestUser]) -> (String, String) {
    let created = app.ok(admin, CREATE, json!({ "input": input })).await;
    let created = &created["createSupportInbox"];
    let id = created["inbox"]["id"].as_str().expect("an id").to_owned();
    for agent in agents {
        app.ok(admin, ADD, json!({ "inbox": id, "user": agent.id })).await;
    }
    (id, created["webhookSecret"].as_str().expect("a secret").to_owned())
}

fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `body` to the inbox's webhook, signed with `secret` now; returns status and JSON.
async fn post(app: &TestApp, inbox_id: &str, secret: &str, body: &Value) -> (u16, Value) {
    let raw = body.to_string();
    let now = chrono::Utc::now().timestamp().to_string();
    let signature = sign(secret, &now, raw.as_bytes());
    post_raw(app, inbox_id, Some(&now), Some(&signature), raw).await
}

async fn post_raw(
    app: &TestApp,
    inbox_id: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    raw: String,
) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url(&format!("/webhooks/inboxes/{inbox_id}/messages")))
        .header("Content-Type", "application/json")
        .body(raw);
    if let Some(ts) = timestamp {
        request = request.header("X-Parley-Timestamp", ts);
    }
    if let Some(sig) = signature {
        request = request.header("X-Parley-Signature", sig);
    }
    let response = request.send().await.expect("POST the webhook");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn sms(external_id: &str, phone: &str, body: &str) -> Value {
    json!({ "externalId": external_id, "source": "sms", "contact": { "phone": phone, "name": format!("Customer {phone}") }, "body": body })
}

async fn conversation(app: &TestApp, viewer: &TestUser, room_id: &str) -> Value {
    app.ok(viewer, CONVERSATION, json!({ "id": room_id })).await["room"].clone()
}

async fn admins_manage_inboxes_and_agents_see_only_theirs(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (agent, other) = (org.user_with_role("sam", "agent").await, org.user("olga").await);
    let eve = app.create_org().await.user_with_role("eve", "admin").await;

    let input = json!({ "name": "SMS", "assignment": "LEAST_BUSY", "agentCapacity": 3 });
    assert_error_code(&app.gql(&agent, CREATE, json!({ "input": input.clone() })).await, "FORBIDDEN");
    for bad in [
        json!({ "name": " " }),
        json!({ "name": "x", "agentCapacity": 0 }),
        json!({ "name": "x", "outboundWebhookUrl": "ftp://x" }),
    ] {
        assert_error_code(&app.gql(&ada, CREATE, json!({ "input": bad })).await, "BAD_USER_INPUT");
    }
    let (id, secret) = inbox(&app, &ada, input, &[&agent]).await;
    assert_eq!(secret.len(), 64);
    let list = "{ supportInboxes { id name assignment agentCapacity members { user { handle } active openAssigned } } }";
    let seen = app.ok(&agent, list, json!({})).await;
    assert_eq!(
        seen["supportInboxes"],
        json!([{ "id": id, "name": "SMS", "assignment": "LEAST_BUSY", "agentCapacity": 3,
                 "members": [{ "user": { "handle": "sam" }, "active": true, "openAssigned": 0 }] }])
    );
    assert_eq!(app.ok(&other, list, json!({})).await["supportInboxes"], json!([]));
    let one = "query($id: ID!) { supportInbox(id: $id) { id } }";
    assert_error_code(&app.gql(&other, one, json!({ "id": id })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&eve, one, json!({ "id": id })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&eve, ADD, json!({ "inbox": id, "user": eve.id })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&ada, ADD, json!({ "inbox": id, "user": eve.id })).await, "NOT_FOUND");
    let rotate = "mutation($id: ID!) { rotateInboxSecret(inboxId: $id) { webhookSecret } }";
    assert_error_code(&app.gql(&agent, rotate, json!({ "id": id })).await, "FORBIDDEN");
    let rotated = app.ok(&ada, rotate, json!({ "id": id })).await;
    let new_secret = rotated["rotateInboxSecret"]["webhookSecret"].as_str().expect("a secret").to_owned();
    assert_ne!(new_secret, secret);
    let (status, _) = post(&app, &id, &secret, &sms("m-1", "+41790000001", "hi")).await;
    assert_eq!(status, 401, "the old secret stops working at once");
    let (status, _) = post(&app, &id, &new_secret, &sms("m-1", "+41790000001", "hi")).await;
    assert_eq!(status, 201);
}

async fn signed_webhooks_are_stored_and_bad_ones_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let (id, secret) = inbox(&app, &ada, json!({ "name": "SMS" }), &[&sam]).await;
    let mut ws = WsClient::connect(&app, &sam).await;
    let mut live = ws
        .subscribe(
            "live",
            "subscription { messageAdded { body seq roomId contact { phone displayName } author { id } } }",
            json!({}),
        )
        .await;
    ws.settle().await;

    let message = sms("sms-1", "+41 79 000 00 01", "Where is my parcel?");
    let raw = message.to_string();
    let now = chrono::Utc::now().timestamp().to_string();
    let good = sign(&secret, &now, raw.as_bytes());
    let stale_ts = (chrono::Utc::now().timestamp() - 600).to_string();
    for (timestamp, signature, body, why) in [
        (Some(now.as_str()), Some(sign("wrong", &now, raw.as_bytes())), raw.clone(), "wrong secret"),
        (None, Some(good.clone()), raw.clone(), "missing timestamp"),
        (Some(now.as_str()), None, raw.clone(), "missing signature"),
        (Some(now.as_str()), Some(good.clone()), raw.replace("parcel", "refund"), "tampered body"),
        (
            Some(stale_ts.as_str()),
            Some(sign(&secret, &stale_ts, raw.as_bytes())),
            raw.clone(),
            "stale timestamp",
        ),
    ] {
        let (status, answer) = post_raw(&app, &id, timestamp, signature.as_deref(), body).await;
        assert_eq!(status, 401, "{why}: {answer}");
    }
    let (status, _) = post(&app, &uuid::Uuid::now_v7().to_string(), &secret, &message).await;
    assert_eq!(status, 401, "an unknown inbox answers as a bad signature");
    for (bad, field) in [
        (json!({ "source": "sms", "contact": { "phone": "+41790000001" }, "body": "x" }), "externalId"),
        (
            json!({ "externalId": "b", "source": "fax", "contact": { "phone": "+41790000001" }, "body": "x" }),
            "source",
        ),
        (
            json!({ "externalId": "b", "source": "sms", "contact": { "phone": "079 000" }, "body": "x" }),
            "contact.phone",
        ),
        (json!({ "externalId": "b", "source": "sms", "contact": {}, "body": "x" }), "contact"),
        (
            json!({ "externalId": "b", "source": "sms", "contact": { "phone": "+41790000001" }, "body": "  " }),
            "body",
        ),
    ] {
        let (status, answer) = post(&app, &id, &secret, &bad).await;
        assert_eq!((status, answer["field"].as_str()), (400, Some(field)), "{answer}");
    }
    live.assert_no_data(Duration::from_millis(300)).await;

    let (status, stored) = post_raw(&app, &id, Some(&now), Some(&good), raw).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["duplicate"], false);
    let added = live.next("messageAdded").await;
    assert_eq!(added["body"], "Where is my parcel?");
    assert_eq!(
        added["contact"],
        json!({ "phone": "+41790000001", "displayName": "Customer +41 79 000 00 01" })
    );
    assert_eq!(added["author"], Value::Null);
    let room_id = stored["conversationId"].as_str().expect("a conversation").to_owned();
    assert_eq!(added["roomId"], room_id.as_str());
    assert_eq!(unread_count(&app, &sam, &room_id).await, 1);
    let room = conversation(&app, &sam, &room_id).await;
    assert_eq!(room["kind"], "SUPPORT");
    assert_eq!(room["conversation"]["status"], "OPEN");
    assert_eq!(room["conversation"]["assignee"]["handle"], "sam", "round robin with one agent");

    // The agent replies with the ordinary sendMessage.
    let reply = app
        .ok(
            &sam,
            "mutation($room: ID!) { sendMessage(input: {roomId: $room, body: \"On its way\"}) { seq } }",
            json!({ "room": room_id }),
        )
        .await;
    assert_eq!(reply["sendMessage"]["seq"], 2);
}

async fn a_redelivered_message_is_stored_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let (id, secret) = inbox(&app, &ada, json!({ "name": "SMS" }), &[&sam]).await;
    let message = sms("dup-1", "+41790000002", "hello");
    let (first, stored) = post(&app, &id, &secret, &message).await;
    let (again, repeat) = post(&app, &id, &secret, &message).await;
    assert_eq!((first, again), (201, 200));
    assert_eq!(repeat["duplicate"], true);
    assert_eq!(repeat["messageId"], stored["messageId"]);
    // Ten at once on one instance.
    let again = sms("dup-2", "+41790000002", "again");
    let posts = (0..10).map(|_| post(&app, &id, &secret, &again));
    let answers = futures_util::future::join_all(posts).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(answers.iter().all(|(status, _)| *status == 201 || *status == 200), "{answers:?}");
    let room = stored["conversationId"].as_str().expect("a room");
    assert_eq!(unread_count(&app, &sam, room).await, 2, "one unread per distinct message");
    // Another inbox of the organisation cannot reuse (or read through) that id.
    let (other, other_secret) = inbox(&app, &ada, json!({ "name": "Email" }), &[&sam]).await;
    let (status, answer) = post(&app, &other, &other_secret, &message).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.get("messageId").is_none(), "nothing of the other inbox's message: {answer}");
    // The inbox decides who is in its conversations.
    let add = "mutation($room: ID!, $user: ID!) { addMembers(roomId: $room, userIds: [$user]) { id } }";
    let olga = org.user("olga").await;
    assert_error_code(&app.gql(&sam, add, json!({ "room": room, "user": olga.id })).await, "BAD_USER_INPUT");
}

/// Nine contacts write; returns each conversation's assignee.
async fn nine_conversations(app: &TestApp, admin: &TestUser, inbox_id: &str, secret: &str) -> Vec<String> {
    let mut assignees = Vec::new();
    for n in 1..=9 {
        let (status, stored) =
            post(app, inbox_id, secret, &sms(&format!("rr-{n}"), &format!("+4179000010{n}"), "hi")).await;
        assert_eq!(status, 201, "{stored}");
        let room = conversation(app, admin, stored["conversationId"].as_str().expect("a room")).await;
        assignees.push(room["conversation"]["assignee"]["handle"].as_str().unwrap_or("nobody").to_owned());
    }
    assignees
}

async fn round_robin_takes_three_agents_in_turn(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (a, b, c) = (
        org.user_with_role("a1", "agent").await,
        org.user_with_role("b2", "agent").await,
        org.user_with_role("c3", "agent").await,
    );
    let (id, secret) =
        inbox(&app, &ada, json!({ "name": "RR", "assignment": "ROUND_ROBIN" }), &[&a, &b, &c]).await;
    let assignees = nine_conversations(&app, &ada, &id, &secret).await;
    assert_eq!(assignees, ["a1", "b2", "c3", "a1", "b2", "c3", "a1", "b2", "c3"]);
    let mine = "{ viewer { assignedConversations { conversation { assignee { handle } } } } }";
    let assigned = app.ok(&a, mine, json!({})).await;
    assert_eq!(assigned["viewer"]["assignedConversations"].as_array().map(Vec::len), Some(3));
    let filtered = "query($inbox: ID!, $agent: ID!) { viewer { rooms(filter: {inboxId: $inbox, status: OPEN, assigneeId: $agent}) { \
        edges { node { kind } } } } }";
    let rooms = app.ok(&b, filtered, json!({ "inbox": id, "agent": b.id })).await;
    assert_eq!(
        rooms["viewer"]["rooms"]["edges"].as_array().map(Vec::len),
        Some(3),
        "b2's three, out of nine"
    );
    let resolved = app
        .ok(&b, filtered.replace("OPEN", "RESOLVED").as_str(), json!({ "inbox": id, "agent": b.id }))
        .await;
    assert_eq!(resolved["viewer"]["rooms"]["edges"], json!([]));
}

async fn least_busy_honours_capacity_and_drains_the_queue(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (a, b) = (org.user_with_role("a1", "agent").await, org.user_with_role("b2", "agent").await);
    let input = json!({ "name": "LB", "assignment": "LEAST_BUSY", "agentCapacity": 1 });
    let (id, secret) = inbox(&app, &ada, input, &[&a, &b]).await;
    let mut rooms = Vec::new();
    for n in 1..=3 {
        let (_, stored) =
            post(&app, &id, &secret, &sms(&format!("lb-{n}"), &format!("+4179000020{n}"), "hi")).await;
        rooms.push(stored["conversationId"].as_str().expect("a room").to_owned());
    }
    let first = conversation(&app, &ada, &rooms[0]).await;
    let second = conversation(&app, &ada, &rooms[1]).await;
    let third = conversation(&app, &ada, &rooms[2]).await;
    assert_eq!(first["conversation"]["assignee"]["handle"], "a1");
    assert_eq!(second["conversation"]["assignee"]["handle"], "b2", "the less busy one");
    assert_eq!(third["conversation"]["assignee"], Value::Null, "both at capacity: it waits");
    let decision = &third["conversation"]["assignmentDecision"];
    assert_eq!(decision["strategy"], "least_busy");
    assert_eq!(decision["chosen"], Value::Null);
    assert!(decision["reason"].as_str().is_some_and(|r| r.contains("capacity")), "{decision}");
    assert_eq!(
        decision["candidates"],
        json!([{ "agent": { "handle": "a1" }, "load": 1, "capacity": 1, "online": false },
               { "agent": { "handle": "b2" }, "load": 1, "capacity": 1, "online": false }])
    );
    // b2 resolves theirs: the waiting conversation goes to b2 at once.
    app.ok(&b, SET_STATUS, json!({ "room": rooms[1], "status": "RESOLVED" })).await;
    let third = conversation(&app, &ada, &rooms[2]).await;
    assert_eq!(third["conversation"]["assignee"]["handle"], "b2");
    assert!(
        third["conversation"]["assignmentDecision"]["reason"].as_str().is_some_and(|r| r.contains("fewest"))
    );
}

async fn online_agents_are_preferred(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (a, b) = (org.user_with_role("a1", "agent").await, org.user_with_role("b2", "agent").await);
    let (id, secret) =
        inbox(&app, &ada, json!({ "name": "RR", "assignment": "ROUND_ROBIN" }), &[&a, &b]).await;
    let _online = WsClient::connect(&app, &b).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 1..=2 {
        let (_, stored) =
            post(&app, &id, &secret, &sms(&format!("on-{n}"), &format!("+4179000030{n}"), "hi")).await;
        let room = conversation(&app, &ada, stored["conversationId"].as_str().expect("a room")).await;
        assert_eq!(room["conversation"]["assignee"]["handle"], "b2", "the online agent, every time");
        let candidates = &room["conversation"]["assignmentDecision"]["candidates"];
        assert_eq!(
            (candidates[0]["online"].as_bool(), candidates[1]["online"].as_bool()),
            (Some(false), Some(true))
        );
    }
}

async fn contacts_reopen_and_snoozes_run_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let (id, secret) = inbox(&app, &ada, json!({ "name": "SMS" }), &[&sam]).await;
    let (_, stored) = post(&app, &id, &secret, &sms("r-1", "+41790000401", "first")).await;
    let room = stored["conversationId"].as_str().expect("a room").to_owned();
    let mut ws = WsClient::connect(&app, &sam).await;
    let mut updates = ws.subscribe("updates", ROOM_UPDATES, json!({})).await;
    ws.settle().await;

    app.ok(&sam, SET_STATUS, json!({ "room": room, "status": "RESOLVED" })).await;
    let resolved = updates.next_room_update(&room, &["CONVERSATION_CHANGED"]).await;
    assert_eq!(
        resolved["conversationChange"],
        json!({ "statusFrom": "OPEN", "statusTo": "RESOLVED", "assigneeFrom": sam.id, "assigneeTo": sam.id, "by": sam.id })
    );
    post(&app, &id, &secret, &sms("r-2", "+41790000401", "still broken")).await;
    let reopened = updates.next_room_update(&room, &["CONVERSATION_CHANGED"]).await;
    assert_eq!(reopened["conversationChange"]["statusTo"], "OPEN");
    assert_eq!(reopened["conversationChange"]["by"], "contact");
    assert_eq!(conversation(&app, &sam, &room).await["conversation"]["status"], "OPEN");

    // Snoozed: the contact writing reopens it, and so does the time running out.
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    app.ok(&sam, SET_STATUS, json!({ "room": room, "status": "SNOOZED", "until": soon })).await;
    updates.next_room_update(&room, &["CONVERSATION_CHANGED"]).await;
    post(&app, &id, &secret, &sms("r-3", "+41790000401", "hello?")).await;
    let woke = updates.next_room_update(&room, &["CONVERSATION_CHANGED"]).await;
    assert_eq!(
        (woke["conversationChange"]["statusFrom"].as_str(), woke["conversationChange"]["by"].as_str()),
        (Some("SNOOZED"), Some("contact"))
    );

    let in_a_second = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    app.ok(&sam, SET_STATUS, json!({ "room": room, "status": "SNOOZED", "until": in_a_second })).await;
    updates.next_room_update(&room, &["CONVERSATION_CHANGED"]).await;
    let expired = updates.next_room_update(&room, &["CONVERSATION_CHANGED"]).await;
    assert_eq!(
        (expired["conversationChange"]["statusTo"].as_str(), expired["conversationChange"]["by"].as_str()),
        (Some("OPEN"), Some("snooze"))
    );
    updates.assert_no_data(Duration::from_millis(1_500)).await;

    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    for variables in [
        json!({ "room": room, "status": "SNOOZED" }),
        json!({ "room": room, "status": "SNOOZED", "until": past }),
        json!({ "room": room, "status": "OPEN", "until": soon }),
    ] {
        assert_error_code(&app.gql(&sam, SET_STATUS, variables).await, "BAD_USER_INPUT");
    }
}

async fn conversations_are_hidden_from_non_agents_and_integration_tokens_only_ingest(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (sam, olga) = (org.user_with_role("sam", "agent").await, org.user("olga").await);
    let hook = org.user_with_role("gateway", "integration").await;
    let eve = app.create_org().await.user_with_role("eve", "admin").await;
    let (id, _) = inbox(&app, &ada, json!({ "name": "SMS", "assignment": "MANUAL" }), &[&sam]).await;
    let ingest = "mutation($inbox: ID!, $input: InboundMessageInput!) { ingestInboundMessage(inboxId: $inbox, input: $input) { id roomId body } }";
    let input = json!({ "externalId": "g-1", "source": "API", "contact": { "email": "Dana@Example.org" }, "body": "hi" });
    let stored = app.ok(&hook, ingest, json!({ "inbox": id, "input": input })).await;
    let room = stored["ingestInboundMessage"]["roomId"].as_str().expect("a room").to_owned();
    let again = app.ok(&hook, ingest, json!({ "inbox": id, "input": input })).await;
    assert_eq!(again["ingestInboundMessage"]["id"], stored["ingestInboundMessage"]["id"], "idempotent");
    assert_error_code(&app.gql(&hook, "{ viewer { id } }", json!({})).await, "FORBIDDEN");
    assert_error_code(&app.gql(&hook, "{ supportInboxes { id } }", json!({})).await, "FORBIDDEN");
    assert_error_code(&app.gql(&olga, ingest, json!({ "inbox": id, "input": input })).await, "FORBIDDEN");
    assert_error_code(&app.gql(&eve, ingest, json!({ "inbox": id, "input": input })).await, "NOT_FOUND");

    let read = conversation(&app, &sam, &room).await;
    assert_eq!(read["conversation"]["contact"]["email"], "dana@example.org");
    assert_eq!(read["conversation"]["assignee"], Value::Null, "manual: nobody yet");
    assert_eq!(read["conversation"]["assignmentDecision"]["strategy"], "manual");
    assert!(
        conversation(&app, &ada, &room).await["conversation"].is_object(),
        "admins read every conversation"
    );
    for outsider in [&olga, &eve] {
        assert_error_code(&app.gql(outsider, CONVERSATION, json!({ "id": room })).await, "NOT_FOUND");
        assert_error_code(
            &app.gql(outsider, SET_STATUS, json!({ "room": room, "status": "RESOLVED" })).await,
            "NOT_FOUND",
        );
    }
    let assign = "mutation($room: ID!, $user: ID!) { assignConversation(roomId: $room, userId: $user) { conversation { assignee { handle } } } }";
    assert_error_code(&app.gql(&sam, assign, json!({ "room": room, "user": olga.id })).await, "NOT_FOUND");
    let taken = app.ok(&sam, assign, json!({ "room": room, "user": sam.id })).await;
    assert_eq!(taken["assignConversation"]["conversation"]["assignee"]["handle"], "sam");
    let read = conversation(&app, &ada, &room).await;
    assert_eq!(read["conversation"]["assignmentDecision"]["strategy"], "manual");
    assert!(
        read["conversation"]["assignmentDecision"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("assigned by"))
    );
}

async fn two_instances_never_exceed_capacity() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let a = spawn_app(backend).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (x, y) = (org.user_with_role("x1", "agent").await, org.user_with_role("y2", "agent").await);
    let input = json!({ "name": "Busy", "assignment": "LEAST_BUSY", "agentCapacity": 2 });
    let (id, secret) = inbox(&a, &ada, input, &[&x, &y]).await;
    let posts = (0..8).map(|n| {
        let app = if n % 2 == 0 { &a } else { &b };
        let message = sms(&format!("cap-{n}"), &format!("+4179000050{n}"), "hi");
        let (id, secret) = (id.clone(), secret.clone());
        async move { post(app, &id, &secret, &message).await }
    });
    let answers = futures_util::future::join_all(posts).await;
    assert!(answers.iter().all(|(status, _)| *status == 201), "{answers:?}");
    let query = "query($id: ID!) { supportInbox(id: $id) { members { user { handle } openAssigned } \
        conversations(first: 50) { edges { node { conversation { assignee { handle } } } } } } }";
    let inbox = a.ok(&ada, query, json!({ "id": id })).await;
    assert_eq!(
        inbox["supportInbox"]["members"],
        json!([{ "user": { "handle": "x1" }, "openAssigned": 2 }, { "user": { "handle": "y2" }, "openAssigned": 2 }])
    );
    let edges = inbox["supportInbox"]["conversations"]["edges"].as_array().expect("edges").clone();
    let conversations: Vec<Value> = edges.iter().map(|e| e["node"].clone()).collect();
    let waiting = conversations.iter().filter(|c| c["conversation"]["assignee"].is_null()).count();
    assert_eq!((conversations.len(), waiting), (8, 4), "4 assigned (2 each), 4 waiting");
}

async fn concurrent_redeliveries_on_two_instances_store_once() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let a = spawn_app(backend).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let (id, secret) = inbox(&a, &ada, json!({ "name": "SMS" }), &[&sam]).await;
    let message = sms("storm-1", "+41790000601", "once");
    let posts = (0..10).map(|n| post(if n % 2 == 0 { &a } else { &b }, &id, &secret, &message));
    let answers = futures_util::future::join_all(posts).await;
    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 1, "{answers:?}");
    let ids: std::collections::HashSet<_> =
        answers.iter().map(|(_, body)| body["messageId"].to_string()).collect();
    assert_eq!(ids.len(), 1, "every answer names the one stored message: {answers:?}");
    let room = answers[0].1["conversationId"].as_str().expect("a room").to_owned();
    assert_eq!(unread_count(&a, &sam, &room).await, 1);
    let _ = WAIT;
}

async fn replies_go_out_signed_and_are_retried_across_a_restart(backend: Backend) {
    // The retry comes a second or more after the failure, and a lease ends in 3 s: the
    // instance that failed is dead by then, whether or not it recorded the failure.
    let slow_retry = [("PARLEY_WEBHOOK_RETRY_BASE_MS", "2000"), ("PARLEY_WEBHOOK_TIMEOUT_MS", "1000")];
    let mut app = spawn_app_with(backend, &slow_retry).await;
    let gateway = Receiver::start().await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let input = json!({ "name": "SMS", "outboundWebhookUrl": format!("{}/sms/out", gateway.url) });
    let (id, secret) = inbox(&app, &ada, input, &[&sam]).await;
    let (_, stored) = post(&app, &id, &secret, &sms("o-1", "+41790000701", "Is it shipped?")).await;
    let room = stored["conversationId"].as_str().expect("a room").to_owned();
    assert_eq!(conversation(&app, &sam, &room).await["conversation"]["status"], "OPEN");

    // The gateway fails once; the instance that tried dies; another one delivers.
    gateway.answer_with(&[500]);
    let reply = "mutation($room: ID!) { sendMessage(input: {roomId: $room, body: \"Yes, today\"}) { id } }";
    let sent = app.ok(&sam, reply, json!({ "room": room })).await;
    let message_id = sent["sendMessage"]["id"].as_str().expect("an id").to_owned();
    gateway.wait_for(1, WAIT).await;
    app.kill().await;
    let second = app.spawn_second_instance().await;
    let received = gateway.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(gateway.received().len(), 2, "one failed attempt, one delivery: {received:#?}");
    let delivered = &received[1];
    assert_eq!(delivered.path, "/sms/out");
    assert!(delivered.signed_with(&secret), "signed with the inbox secret");
    assert_eq!(
        delivered.header("idempotency-key"),
        received[0].header("idempotency-key"),
        "one key per delivery"
    );
    let body = delivered.json();
    assert_eq!(body["message"]["body"], "Yes, today");
    assert_eq!(body["conversationId"], room.as_str());
    assert_eq!(body["channel"], "sms");
    assert_eq!(body["contact"]["phone"], "+41790000701");
    assert_eq!(body["agent"]["handle"], "sam");

    let query = "query($room: ID!) { messages(roomId: $room, last: 5) { edges { node { id body delivery { kind status attempts lastError } } } } \
        room(id: $room) { conversation { firstResponseAt } } }";
    let seen = second.ok(&sam, query, json!({ "room": room })).await;
    let nodes: Vec<Value> =
        seen["messages"]["edges"].as_array().expect("edges").iter().map(|e| e["node"].clone()).collect();
    let reply = nodes.iter().find(|n| n["id"] == message_id.as_str()).expect("the reply");
    assert_eq!(
        reply["delivery"],
        json!({ "kind": "OUTBOUND", "status": "DELIVERED", "attempts": 2, "lastError": null })
    );
    let inbound = nodes.iter().find(|n| n["body"] == "Is it shipped?").expect("the contact's message");
    assert_eq!(inbound["delivery"], Value::Null, "only replies go out");
    assert!(seen["room"]["conversation"]["firstResponseAt"].is_string());

    // A contact writing through the API reads replies there: nothing goes to the gateway.
    let api = json!({ "externalId": "o-2", "source": "api", "contact": { "externalRef": "app-user-7" }, "body": "from the app" });
    let (_, stored) = post(&second, &id, &secret, &api).await;
    let app_room = stored["conversationId"].as_str().expect("a room").to_owned();
    let answer = "mutation($room: ID!) { sendMessage(input: {roomId: $room, body: \"Thanks\"}) { id } }";
    second.ok(&sam, answer, json!({ "room": app_room })).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(gateway.received().len(), 2, "no outbound delivery for an api conversation");
}

/// Seconds between two RFC 3339 times.
fn between(later: &Value, earlier: &Value) -> f64 {
    let parse =
        |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("RFC 3339");
    (parse(later) - parse(earlier)).num_microseconds().expect("small") as f64 / 1e6
}

/// The nearest-rank percentile `p` of `values`.
fn nearest_rank(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

async fn metrics_match_hand_computed_figures(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (a, b) = (org.user_with_role("a1", "agent").await, org.user_with_role("b2", "agent").await);
    let (id, secret) =
        inbox(&app, &ada, json!({ "name": "M", "assignment": "ROUND_ROBIN" }), &[&a, &b]).await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let reply = "mutation($room: ID!) { sendMessage(input: {roomId: $room, body: \"on it\"}) { id } }";
    let mut rooms = Vec::new();
    for n in 1..=5 {
        let (_, stored) =
            post(&app, &id, &secret, &sms(&format!("m-{n}"), &format!("+4179000080{n}"), "help")).await;
        rooms.push(stored["conversationId"].as_str().expect("a room").to_owned());
    }
    // a1 has 1, 3, 5 and b2 has 2, 4. Replies after different waits; 4 stays unanswered;
    // 1 and 2 are resolved.
    for (n, wait_ms) in [(0, 50), (1, 250), (2, 120), (4, 400)] {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let agent = if n % 2 == 0 { &a } else { &b };
        app.ok(agent, reply, json!({ "room": rooms[n] })).await;
    }
    app.ok(&a, SET_STATUS, json!({ "room": rooms[0], "status": "RESOLVED" })).await;
    app.ok(&b, SET_STATUS, json!({ "room": rooms[1], "status": "RESOLVED" })).await;

    let detail = "query($id: ID!) { room(id: $id) { createdAt conversation { firstResponseAt resolvedAt assignee { handle } } } }";
    let mut first_responses: Vec<(String, f64)> = Vec::new();
    let mut resolutions = Vec::new();
    for room in &rooms {
        let seen = app.ok(&ada, detail, json!({ "id": room })).await["room"].clone();
        let handle = seen["conversation"]["assignee"]["handle"].as_str().expect("assigned").to_owned();
        if seen["conversation"]["firstResponseAt"].is_string() {
            first_responses
                .push((handle, between(&seen["conversation"]["firstResponseAt"], &seen["createdAt"])));
        }
        if seen["conversation"]["resolvedAt"].is_string() {
            resolutions.push(between(&seen["conversation"]["resolvedAt"], &seen["createdAt"]));
        }
    }
    let until = chrono::Utc::now() + chrono::Duration::seconds(5);
    let query = "query($id: ID!, $since: DateTime!, $until: DateTime!) { supportMetrics(inboxId: $id, since: $since, until: $until) { \
        inbox { opened resolved responseRate firstResponseSeconds { average median p90 } resolutionSeconds { average median } } \
        agents { agent { handle } metrics { opened responseRate firstResponseSeconds { median } } } } }";
    let variables = json!({ "id": id, "since": since.to_rfc3339(), "until": until.to_rfc3339() });
    let metrics = app.ok(&a, query, variables).await["supportMetrics"].clone();
    let close = |got: &Value, want: Option<f64>| {
        let (got, want) = (got.as_f64().expect("a figure"), want.expect("a value"));
        assert!((got - want).abs() < 0.01, "{got} against {want}");
    };
    let all: Vec<f64> = first_responses.iter().map(|(_, s)| *s).collect();
    let inbox = &metrics["inbox"];
    assert_eq!((inbox["opened"].as_i64(), inbox["resolved"].as_i64()), (Some(5), Some(2)));
    close(&inbox["responseRate"], Some(0.8));
    close(&inbox["firstResponseSeconds"]["average"], Some(all.iter().sum::<f64>() / all.len() as f64));
    close(&inbox["firstResponseSeconds"]["median"], nearest_rank(&all, 0.5));
    close(&inbox["firstResponseSeconds"]["p90"], nearest_rank(&all, 0.9));
    close(&inbox["resolutionSeconds"]["average"], Some(resolutions.iter().sum::<f64>() / 2.0));
    close(&inbox["resolutionSeconds"]["median"], nearest_rank(&resolutions, 0.5));
    let agents = metrics["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 2);
    for agent in agents {
        let handle = agent["agent"]["handle"].as_str().expect("a handle");
        let mine: Vec<f64> = first_responses.iter().filter(|(h, _)| h == handle).map(|(_, s)| *s).collect();
        let opened = if handle == "a1" { 3 } else { 2 };
        assert_eq!(agent["metrics"]["opened"], opened, "{handle}");
        close(&agent["metrics"]["responseRate"], Some(mine.len() as f64 / opened as f64));
        close(&agent["metrics"]["firstResponseSeconds"]["median"], nearest_rank(&mine, 0.5));
    }
    let empty = json!({ "id": id, "since": until.to_rfc3339(), "until": (until + chrono::Duration::hours(1)).to_rfc3339() });
    let none = app.ok(&a, query, empty).await["supportMetrics"].clone();
    assert_eq!(none["inbox"]["opened"], 0);
    assert_eq!(none["inbox"]["responseRate"], Value::Null);
    let backwards = json!({ "id": id, "since": until.to_rfc3339(), "until": since.to_rfc3339() });
    assert_error_code(&app.gql(&a, query, backwards).await, "BAD_USER_INPUT");
}

async fn a_snooze_runs_out_once_with_two_instances() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let a = spawn_app(backend).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let (id, secret) = inbox(&a, &ada, json!({ "name": "SMS" }), &[&sam]).await;
    let (_, stored) = post(&a, &id, &secret, &sms("s-1", "+41790000901", "hi")).await;
    let room = stored["conversationId"].as_str().expect("a room").to_owned();
    let (mut on_a, mut on_b) = (WsClient::connect(&a, &sam).await, WsClient::connect(&b, &sam).await);
    let mut updates_a = on_a.subscribe("a", ROOM_UPDATES, json!({})).await;
    let mut updates_b = on_b.subscribe("b", ROOM_UPDATES, json!({})).await;
    on_a.settle().await;
    on_b.settle().await;
    let in_a_second = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    a.ok(&sam, SET_STATUS, json!({ "room": room, "status": "SNOOZED", "until": in_a_second })).await;
    for updates in [&mut updates_a, &mut updates_b] {
        let snoozed = updates.next_room_update(&room, &["CONVERSATION_CHANGED"]).await;
        assert_eq!(snoozed["conversationChange"]["statusTo"], "SNOOZED");
        let woke = updates.next_room_update(&room, &["CONVERSATION_CHANGED"]).await;
        assert_eq!(woke["conversationChange"]["by"], "snooze");
    }
    for updates in [&mut updates_a, &mut updates_b] {
        updates.assert_no_data(Duration::from_millis(2_500)).await;
    }
    assert_eq!(conversation(&b, &sam, &room).await["conversation"]["status"], "OPEN");
}

async fn agents_see_the_first_message_of_every_new_conversation_in_a_burst(backend: Backend) {
    // More than a user topic's buffer (16): the agent's subscription lags, resyncs, and must
    // still deliver every conversation's first message.
    const N: usize = 60;
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let (id, secret) = inbox(&app, &ada, json!({ "name": "Burst" }), &[&sam]).await;
    let mut ws = WsClient::connect(&app, &sam).await;
    let mut live = ws.subscribe("live", "subscription { messageAdded { body } }", json!({})).await;
    ws.settle().await;
    let messages: Vec<Value> = (0..N)
        .map(|n| sms(&format!("burst-{n}"), &format!("+417900011{n:02}"), &format!("first {n}")))
        .collect();
    let posts = messages.iter().map(|m| post(&app, &id, &secret, m));
    let answers = futures_util::future::join_all(posts).await;
    assert!(answers.iter().all(|(status, _)| *status == 201), "{answers:?}");
    let mut bodies: Vec<String> = Vec::new();
    for _ in 0..N {
        bodies.push(live.next("messageAdded").await["body"].as_str().expect("a body").to_owned());
    }
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), N, "every first message, once");
}

async fn assignments_are_posted_to_webhooks_that_want_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let (slack, json_hook) = (Receiver::start().await, Receiver::start().await);
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (sam, tia) = (org.user_with_role("sam", "agent").await, org.user_with_role("tia", "agent").await);
    let (id, secret) =
        inbox(&app, &ada, json!({ "name": "SMS", "assignment": "ROUND_ROBIN" }), &[&sam, &tia]).await;
    let create =
        "mutation($input: CreateOutgoingWebhookInput!) { createOutgoingWebhook(input: $input) { secret } }";
    let to = |url: String, format: &str| json!({ "input": { "url": url, "events": ["CONVERSATION_ASSIGNED"], "format": format } });
    app.ok(&ada, create, to(format!("{}/slack", slack.url), "SLACK")).await;
    let created = app.ok(&ada, create, to(format!("{}/hook", json_hook.url), "JSON")).await;
    let hook_secret = created["createOutgoingWebhook"]["secret"].as_str().expect("a secret").to_owned();

    let (_, stored) = post(&app, &id, &secret, &sms("a-1", "+41790000111", "hello")).await;
    let room = stored["conversationId"].as_str().expect("a room").to_owned();
    let posted = slack.wait_for(1, WAIT).await;
    assert_eq!(
        posted[0].json(),
        json!({ "text": "Conversation with *Customer +41790000111* in SMS assigned to *Sam*" })
    );
    let delivered = json_hook.wait_for(1, WAIT).await;
    assert!(delivered[0].signed_with(&hook_secret));
    let body = delivered[0].json();
    assert_eq!(body["event"], "CONVERSATION_ASSIGNED");
    assert_eq!(body["conversation"]["id"], room.as_str());
    assert_eq!(body["conversation"]["inbox"]["name"], "SMS");
    assert_eq!(body["assignee"]["handle"], "sam");
    assert_eq!(body["contact"]["phone"], "+41790000111");

    // A second message to the same conversation assigns nothing; a hand-over does.
    post(&app, &id, &secret, &sms("a-2", "+41790000111", "again")).await;
    let assign =
        "mutation($room: ID!, $user: ID!) { assignConversation(roomId: $room, userId: $user) { id } }";
    app.ok(&sam, assign, json!({ "room": room, "user": tia.id })).await;
    let posted = slack.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(slack.received().len(), 2, "{posted:#?}");
    assert!(
        posted[1].json()["text"].as_str().is_some_and(|t| t.ends_with("assigned to *Tia*")),
        "{:?}",
        posted[1].json()
    );
}

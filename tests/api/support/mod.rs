//! Support inboxes through HTTP and WebSocket, on SQLite and on PostgreSQL + Redis:
//! `inbound` (the signed webhook, idempotency, live first messages, the demo's `parley sign`),
//! `contacts` (which contact a message is from; which way it is stored),
//! `assignment` (round robin, least busy, capacity and the queue, online first, two
//! instances, assignment webhooks), `departures` (agents who leave or are deactivated),
//! `conversations` (statuses and snoozes, access, replies going out, metrics), `live` (what
//! agents see live) and `admins` (an admin in a conversation they are not in). The helpers here create inboxes and post signed messages as a sender
//! would, with `hmac` of their own.

mod admins;
mod assignment;
mod contacts;
mod conversations;
mod departures;
mod inbound;
mod live;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{TestApp, TestUser};

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
pub(crate) async fn inbox(
    app: &TestApp,
    admin: &TestUser,
    input: Value,
    agents: &[&TestUser],
) -> (String, String) {
    let created = app.ok(admin, CREATE, json!({ "input": input })).await;
    let created = &created["createSupportInbox"];
    let id = created["inbox"]["id"].as_str().expect("an id").to_owned();
    for agent in agents {
        app.ok(admin, ADD, json!({ "inbox": id, "user": agent.id })).await;
    }
    (id, created["webhookSecret"].as_str().expect("a secret").to_owned())
}

/// A new organisation's admin (ada) and agent (sam), and an inbox of ada's named `name` with
/// sam in it: `[ada, sam]`, the inbox's id and its secret.
pub(crate) async fn an_inbox(app: &TestApp, name: &str) -> ([TestUser; 2], String, String) {
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let (id, secret) = inbox(app, &ada, json!({ "name": name }), &[&sam]).await;
    ([ada, sam], id, secret)
}

/// An organisation's admin (ada), an inbox's agent (sam), an agent outside it (tom), and the
/// conversation one SMS (`external_id` from `phone`) opened there: the webhook's answer
/// (`conversationId`, `messageId`).
pub(crate) async fn admin_agents_and_a_conversation(
    app: &TestApp,
    external_id: &str,
    phone: &str,
    text: &str,
) -> (TestUser, TestUser, TestUser, Value) {
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (sam, tom) = (org.user_with_role("sam", "agent").await, org.user_with_role("tom", "agent").await);
    let (inbox_id, secret) = inbox(app, &ada, json!({ "name": "SMS" }), &[&sam]).await;
    let (status, stored) = post(app, &inbox_id, &secret, &sms(external_id, phone, text)).await;
    assert_eq!(status, 201, "{stored}");
    (ada, sam, tom, stored)
}

fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `body` to the inbox's webhook, signed with `secret` now; returns status and JSON.
pub(crate) async fn post(app: &TestApp, inbox_id: &str, secret: &str, body: &Value) -> (u16, Value) {
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

pub(crate) fn sms(external_id: &str, phone: &str, body: &str) -> Value {
    json!({ "externalId": external_id, "source": "sms", "contact": { "phone": phone, "name": format!("Customer {phone}") }, "body": body })
}

async fn conversation(app: &TestApp, viewer: &TestUser, room_id: &str) -> Value {
    app.ok(viewer, CONVERSATION, json!({ "id": room_id })).await["room"].clone()
}

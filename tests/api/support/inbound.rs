//! The signed inbound webhook: accepted, and refused for a wrong secret, a missing header, a
//! tampered body, a stale timestamp, an unknown inbox and bad input; inboxes and who sees
//! them; idempotent redelivery (sequential, concurrent, across inboxes, on two instances); a
//! rotated secret on two instances; a conversation's webhook; the README's `parley sign`.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::helpers::api::{send, unread_count};
use crate::helpers::proxy::CuttableProxy;
use crate::helpers::receiver::Receiver;
use crate::helpers::ws::WsClient;
use crate::helpers::{
    Backend, TestApp, TestUser, WAIT, assert_error_code, pg_redis_urls, spawn_app, spawn_app_alone,
    spawn_app_with,
};

backend_tests!(
    admins_manage_inboxes_and_agents_see_only_theirs,
    signed_webhooks_are_stored_and_bad_ones_refused,
    a_redelivered_message_is_stored_once,
    a_conversation_webhook_hears_the_customer_and_the_agents,
);

pg_test!(
    concurrent_redeliveries_on_two_instances_store_once,
    a_rotated_secret_stops_working_on_every_instance,
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
    let ([_, sam], id, secret) = an_inbox(&app, "SMS").await;
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
        // PostgreSQL cannot store NUL and SQLite could: refused alike.
        (
            json!({ "externalId": "b", "source": "sms", "contact": { "phone": "+41790000001" }, "body": "a\u{0}b" }),
            "body",
        ),
        (
            json!({ "externalId": "b", "source": "sms", "contact": { "phone": "+41790000001", "name": "\u{0}" }, "body": "x" }),
            "contact",
        ),
        // Refused, never cut to fit.
        (
            json!({ "externalId": "b", "source": "sms", "contact": { "phone": "+41790000001", "name": "n".repeat(121) }, "body": "x" }),
            "contact.name",
        ),
        (
            json!({ "externalId": "b", "source": "sms", "contact": { "phone": "+41790000001" }, "body": "x",
                    "attachments": [{ "name": "a", "url": "javascript:alert(1)", "contentType": "text/plain", "size": 1 }] }),
            "attachments",
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
    // A redelivery into a resolved conversation neither reopens it nor takes a seq.
    app.ok(&sam, SET_STATUS, json!({ "room": room, "status": "RESOLVED" })).await;
    let (status, repeat) = post(&app, &id, &secret, &message).await;
    assert_eq!((status, &repeat["messageId"]), (200, &stored["messageId"]), "{repeat}");
    assert_eq!(conversation(&app, &sam, room).await["conversation"]["status"], "RESOLVED");
    let (status, next) = post(&app, &id, &secret, &sms("dup-3", "+41790000002", "later")).await;
    assert_eq!((status, &next["seq"]), (201, &json!(3)), "{next}");
    // Another inbox of the organisation cannot reuse (or read through) that id.
    let (other, other_secret) = inbox(&app, &ada, json!({ "name": "Email" }), &[&sam]).await;
    let (status, answer) = post(&app, &other, &other_secret, &message).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.get("messageId").is_none(), "nothing of the other inbox's message: {answer}");
    // The same contact writing to the other inbox has a conversation of its own there.
    let (status, elsewhere) = post(&app, &other, &other_secret, &sms("dup-4", "+41790000002", "hi")).await;
    assert_eq!((status, &elsewhere["seq"]), (201, &json!(1)), "{elsewhere}");
    assert_ne!(elsewhere["conversationId"], stored["conversationId"]);
    // The inbox decides who is in its conversations.
    let add = "mutation($room: ID!, $user: ID!) { addMembers(roomId: $room, userIds: [$user]) { id } }";
    let olga = org.user("olga").await;
    assert_error_code(&app.gql(&sam, add, json!({ "room": room, "user": olga.id })).await, "BAD_USER_INPUT");
}

/// Two instances on PostgreSQL + Redis, an organisation's admin and agent, and an inbox of
/// theirs: its id and secret.
async fn two_instances_and_an_inbox(backend: Backend) -> ([TestApp; 2], [TestUser; 2], String, String) {
    let a = spawn_app(backend).await;
    let b = a.spawn_second_instance().await;
    let (users, id, secret) = an_inbox(&a, "SMS").await;
    ([a, b], users, id, secret)
}

async fn concurrent_redeliveries_on_two_instances_store_once() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let ([a, b], [_, sam], id, secret) = two_instances_and_an_inbox(backend).await;
    let message = sms("storm-1", "+41790000601", "once");
    let posts = (0..10).map(|n| post(if n % 2 == 0 { &a } else { &b }, &id, &secret, &message));
    let answers = futures_util::future::join_all(posts).await;
    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 1, "{answers:?}");
    let ids: std::collections::HashSet<_> =
        answers.iter().map(|(_, body)| body["messageId"].to_string()).collect();
    assert_eq!(ids.len(), 1, "every answer names the one stored message: {answers:?}");
    let room = answers[0].1["conversationId"].as_str().expect("a room").to_owned();
    assert_eq!(unread_count(&a, &sam, &room).await, 1);
    // Into the conversation as it stands (open, assigned): PostgreSQL's one-statement way,
    // where a racing copy must neither store twice nor skip a seq.
    let next = sms("storm-2", "+41790000601", "twice");
    let posts = (0..10).map(|n| post(if n % 2 == 0 { &a } else { &b }, &id, &secret, &next));
    let answers = futures_util::future::join_all(posts).await;
    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 1, "{answers:?}");
    assert!(answers.iter().all(|(_, body)| body["seq"] == 2), "{answers:?}");
    let (status, last) = post(&b, &id, &secret, &sms("storm-3", "+41790000601", "thrice")).await;
    assert_eq!((status, &last["seq"]), (201, &json!(3)), "{last}");
    assert_eq!(unread_count(&a, &sam, &room).await, 3);
}

/// Each instance keeps the inboxes it checked webhooks with. After a rotation on one, the old
/// secret stops working on the other once it has heard (here: B's link to Redis is cut while
/// A rotates, so B misses the event and learns from the resync when the link is back); and
/// the new secret works on the other at once, before it has heard (cut again for a second
/// rotation: B holds the old secret when the new one comes, and must read the inbox again).
async fn a_rotated_secret_stops_working_on_every_instance() {
    let Some((_, redis_url)) = pg_redis_urls() else { return };
    let (redis, redis_via_proxy) = CuttableProxy::in_front_of(&redis_url, 6379).await;
    let a = spawn_app(Backend::PostgresRedis).await;
    let b = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", redis_via_proxy.as_str())]).await;
    let ([ada, _], id, first) = an_inbox(&a, "SMS").await;
    let rotate = || async {
        let rotate = "mutation($id: ID!) { rotateInboxSecret(inboxId: $id) { webhookSecret } }";
        let rotated = a.ok(&ada, rotate, json!({ "id": id })).await;
        rotated["rotateInboxSecret"]["webhookSecret"].as_str().expect("a secret").to_owned()
    };
    let (status, _) = post(&b, &id, &first, &sms("r-1", "+41790000701", "before")).await;
    assert_eq!(status, 201, "B now holds the inbox with its first secret");

    redis.cut();
    let second = rotate().await;
    redis.restore();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, answer) = post(&b, &id, &first, &sms("r-2", "+41790000701", "stale")).await;
        if status == 401 {
            break;
        }
        // Taken (201, then 200 for the same id) until B has dropped the old secret.
        assert!(status == 201 || status == 200, "{status} {answer}");
        assert!(tokio::time::Instant::now() < deadline, "B still takes the old secret");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, answer) = post(&b, &id, &second, &sms("r-3", "+41790000701", "second")).await;
    assert_eq!(status, 201, "{answer}");

    redis.cut();
    let third = rotate().await;
    let (status, answer) = post(&b, &id, &third, &sms("r-4", "+41790000701", "at once")).await;
    assert_eq!(status, 201, "the new secret works on B at once, with no event: {answer}");
    redis.restore();
}

/// A webhook made for one conversation is posted every message of it: the customer's, which
/// arrive through the inbound webhook, as well as the agents' replies, each saying who wrote
/// it (Slack's text names the inbox and the customer, not the conversation's name). Its
/// maker, an admin, never joined the conversation: admins read every one.
async fn a_conversation_webhook_hears_the_customer_and_the_agents(backend: Backend) {
    // A database of its own: on the shared one, any other test's server may claim the
    // delivery and be stopped with its test before posting it, holding it for a 30 s lease.
    let (_database, app) = spawn_app_alone(backend).await;
    let (hook, slack) = (Receiver::start().await, Receiver::start().await);
    let ([ada, sam], id, secret) = an_inbox(&app, "SMS").await;
    let (_, first) = post(&app, &id, &secret, &sms("w-1", "+41790000222", "hello")).await;
    let room = first["conversationId"].as_str().expect("a room").to_owned();
    let create =
        "mutation($input: CreateOutgoingWebhookInput!) { createOutgoingWebhook(input: $input) { secret } }";
    let input = json!({ "url": hook.url, "events": ["MESSAGE_ADDED"], "roomId": room });
    app.ok(&ada, create, json!({ "input": input })).await;
    let input = json!({ "url": slack.url, "events": ["MESSAGE_ADDED"], "roomId": room, "format": "SLACK" });
    app.ok(&ada, create, json!({ "input": input })).await;

    let (status, asked) = post(&app, &id, &secret, &sms("w-2", "+41790000222", "anyone there?")).await;
    assert_eq!(status, 201, "{asked}");
    send(&app, &sam, &room, "yes, how can I help?").await;
    let mut posted: Vec<Value> = hook.wait_for(2, WAIT).await.iter().map(|p| p.json()).collect();
    posted.sort_by_key(|p| p["message"]["seq"].as_i64());
    let heard = |p: &Value| {
        (
            p["message"]["seq"].clone(),
            p["message"]["body"].clone(),
            p["author"]["handle"].clone(),
            p["contact"]["phone"].clone(),
        )
    };
    assert_eq!(
        posted.iter().map(heard).collect::<Vec<_>>(),
        [
            (json!(2), json!("anyone there?"), Value::Null, json!("+41790000222")),
            (json!(3), json!("yes, how can I help?"), json!("sam"), Value::Null),
        ]
    );
    let mut texts: Vec<Value> =
        slack.wait_for(2, WAIT).await.iter().map(|p| p.json()["text"].clone()).collect();
    texts.sort_by_key(|t| t.to_string());
    assert_eq!(
        texts,
        [
            json!("*Customer +41790000222* in SMS: anyone there?"),
            json!("*Sam* in SMS with Customer +41790000222: yes, how can I help?")
        ]
    );
}

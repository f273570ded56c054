//! Conversations: reopening on a contact's message and when a snooze runs out (once, with two
//! instances), status changes on `roomUpdated`, access for non-agents, admins (who reply
//! without joining first), other organisations and integration tokens, agents' replies going out signed and retried across
//! a restart, and metrics against hand-computed figures.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::helpers::api::int;
use crate::helpers::receiver::Receiver;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, WAIT, assert_error_code, spawn_app, spawn_app_alone, spawn_app_alone_with};

backend_tests!(
    contacts_reopen_and_snoozes_run_out,
    conversations_are_hidden_from_non_agents_and_integration_tokens_only_ingest,
    replies_go_out_signed_and_are_retried_across_a_restart,
    metrics_match_hand_computed_figures,
);

pg_test!(a_snooze_runs_out_once_with_two_instances,);

async fn contacts_reopen_and_snoozes_run_out(backend: Backend) {
    let (_database, app) = spawn_app_alone(backend).await;
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
        // It would compare as past on SQLite and reopen at once.
        json!({ "room": room, "status": "SNOOZED", "until": "+10000-01-01T00:00:00Z" }),
    ] {
        assert_error_code(&app.gql(&sam, SET_STATUS, variables).await, "BAD_USER_INPUT");
    }
}

async fn a_snooze_runs_out_once_with_two_instances() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let (_database, a) = spawn_app_alone(backend).await;
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
    // Nor is it an agent: it could never answer the customers handed to it.
    let made_agent = app.gql(&ada, ADD, json!({ "inbox": id, "user": hook.id })).await;
    assert_error_code(&made_agent, "BAD_USER_INPUT");

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

    // Admins reply without joining first (their first reply joins them); nobody else does.
    let reply = "mutation($room: ID!, $body: String!) { sendMessage(input: { roomId: $room, body: $body }) { seq author { handle } } }";
    for outsider in [&olga, &eve] {
        let refused = app.gql(outsider, reply, json!({ "room": room, "body": "let me in" })).await;
        assert_error_code(&refused, "NOT_FOUND");
    }
    let sent = app.ok(&ada, reply, json!({ "room": room, "body": "An admin here: on it." })).await;
    assert_eq!(sent["sendMessage"]["author"]["handle"], "ada");
    let again = app.ok(&ada, reply, json!({ "room": room, "body": "Done." })).await;
    assert_eq!(int(&again["sendMessage"]["seq"]), int(&sent["sendMessage"]["seq"]) + 1);
    let role = "query($id: ID!) { room(id: $id) { viewerRole } }";
    let listed = app.ok(&ada, role, json!({ "id": room })).await;
    assert!(!listed["room"]["viewerRole"].is_null(), "a participant now: {listed}");
    let history = "query($room: ID!) { messages(roomId: $room, last: 2) { edges { node { body } } } }";
    let bodies = app.ok(&sam, history, json!({ "room": room })).await;
    assert_eq!(
        bodies["messages"]["edges"],
        json!([{ "node": { "body": "An admin here: on it." } }, { "node": { "body": "Done." } }]),
        "the agent reads the admin's replies"
    );
}

async fn replies_go_out_signed_and_are_retried_across_a_restart(backend: Backend) {
    // The retry comes a second or more after the failure, and a lease ends in 3 s: the
    // instance that failed is dead by then, whether or not it recorded the failure.
    let slow_retry = [("PARLEY_WEBHOOK_RETRY_BASE_MS", "2000"), ("PARLEY_WEBHOOK_TIMEOUT_MS", "1000")];
    // A database of its own: on the shared one, any other test's server may claim a
    // delivery and be stopped with its test before posting it, holding it for a 30 s lease.
    let (_database, mut app) = spawn_app_alone_with(backend, &slow_retry).await;
    let gateway = Receiver::start().await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let input = json!({ "name": "SMS", "outboundWebhookUrl": format!("{}/sms/out", gateway.url) });
    let (id, secret) = inbox(&app, &ada, input, &[&sam]).await;
    // The gateway's URL may carry its token: admins see it, agents do not.
    let url = "query($id: ID!) { supportInbox(id: $id) { outboundWebhookUrl } }";
    let seen = app.ok(&ada, url, json!({ "id": id })).await;
    assert_eq!(seen["supportInbox"]["outboundWebhookUrl"], json!(format!("{}/sms/out", gateway.url)));
    assert_eq!(
        app.ok(&sam, url, json!({ "id": id })).await["supportInbox"]["outboundWebhookUrl"],
        Value::Null
    );
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
    // A lease or a backoff of up to 3 s, then a poll: twice the usual wait, as a loaded
    // two-core CI machine once took longer than 10 s (2026-12-06, on PostgreSQL; maybe another
    // test's server holding the delivery, before this test had a database of its own).
    let received = gateway.wait_for(2, 2 * WAIT).await;
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

    // Later replies go out too, once the instance knows the room is a conversation (its send
    // statement then carries the outbound part because of the room's kind, not by default).
    for body in ["Tracking: 123", "Anything else?"] {
        let reply = format!(
            "mutation($room: ID!) {{ sendMessage(input: {{roomId: $room, body: \"{body}\"}}) {{ id }} }}"
        );
        second.ok(&sam, &reply, json!({ "room": room })).await;
    }
    let received = gateway.wait_for(4, WAIT).await;
    let mut bodies: Vec<Value> = received[2..].iter().map(|r| r.json()["message"]["body"].clone()).collect();
    bodies.sort_by_key(Value::to_string);
    assert_eq!(bodies, [json!("Anything else?"), json!("Tracking: 123")]);

    // A contact writing through the API reads replies there: nothing goes to the gateway.
    let api = json!({ "externalId": "o-2", "source": "api", "contact": { "externalRef": "app-user-7" }, "body": "from the app" });
    let (_, stored) = post(&second, &id, &secret, &api).await;
    let app_room = stored["conversationId"].as_str().expect("a room").to_owned();
    let answer = "mutation($room: ID!) { sendMessage(input: {roomId: $room, body: \"Thanks\"}) { id } }";
    second.ok(&sam, answer, json!({ "room": app_room })).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(gateway.received().len(), 4, "no outbound delivery for an api conversation");
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

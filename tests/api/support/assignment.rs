//! Assignment: round robin over three agents, least busy with capacity and the queue
//! draining, paused agents passed over until they resume, conversations back in the queue
//! when unassigned (to another agent) or their agent removed, online agents first, two instances deciding at once without exceeding capacity,
//! and assignments posted to the webhooks that want them.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::helpers::receiver::Receiver;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, WAIT, assert_error_code, spawn_app, spawn_app_alone};

backend_tests!(
    round_robin_takes_three_agents_in_turn,
    least_busy_honours_capacity_and_drains_the_queue,
    a_paused_agent_gets_no_new_conversations_until_resumed,
    round_robin_keeps_its_turn_across_a_pause,
    unassigned_or_removed_agents_conversations_go_back_to_the_queue,
    online_agents_are_preferred,
    assignments_are_posted_to_webhooks_that_want_them,
);

pg_test!(two_instances_never_exceed_capacity,);

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
    let mine = "query($first: Int, $after: String) { viewer { assignedConversations(first: $first, after: $after) { \
        nodes { conversation { assignee { handle } } } pageInfo { hasNextPage endCursor } } } }";
    let assigned = app.ok(&a, mine, json!({})).await;
    let page = &assigned["viewer"]["assignedConversations"];
    assert_eq!(page["nodes"].as_array().map(Vec::len), Some(3));
    assert!(
        page["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|n| n["conversation"]["assignee"]["handle"] == "a1")
    );
    // A page at a time: two, then the third.
    let first = app.ok(&a, mine, json!({ "first": 2 })).await["viewer"]["assignedConversations"].clone();
    assert_eq!(
        (first["nodes"].as_array().map(Vec::len), &first["pageInfo"]["hasNextPage"]),
        (Some(2), &json!(true))
    );
    let rest = app.ok(&a, mine, json!({ "first": 2, "after": first["pageInfo"]["endCursor"] })).await;
    let rest = &rest["viewer"]["assignedConversations"];
    assert_eq!(
        (rest["nodes"].as_array().map(Vec::len), &rest["pageInfo"]["hasNextPage"]),
        (Some(1), &json!(false))
    );
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

async fn a_paused_agent_gets_no_new_conversations_until_resumed(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (ada, alice) = (org.user_with_role("ada", "admin").await, org.user("alice").await);
    let (a, b) = (org.user_with_role("a1", "agent").await, org.user_with_role("b2", "agent").await);
    let (id, secret) =
        inbox(&app, &ada, json!({ "name": "Pause", "assignment": "LEAST_BUSY" }), &[&a, &b]).await;
    let set = "mutation($inbox: ID!, $user: ID!, $active: Boolean!) { \
        setInboxMemberActive(inboxId: $inbox, userId: $user, active: $active) { members { user { handle } active } } }";
    let new_conversation = |n: u32| {
        let (app, id, secret) = (&app, &id, &secret);
        async move {
            let (_, stored) =
                post(app, id, secret, &sms(&format!("pause-{n}"), &format!("+4179000030{n}"), "hi")).await;
            stored["conversationId"].as_str().expect("a room").to_owned()
        }
    };
    let assignee =
        async |room: &str| conversation(&app, &ada, room).await["conversation"]["assignee"].clone();

    // b2 goes on a break: the next conversation is a1's.
    let paused = app.ok(&b, set, json!({ "inbox": id, "user": b.id, "active": false })).await;
    assert_eq!(
        paused["setInboxMemberActive"]["members"],
        json!([{ "user": { "handle": "a1" }, "active": true }, { "user": { "handle": "b2" }, "active": false }])
    );
    let first = new_conversation(1).await;
    assert_eq!(assignee(&first).await["handle"], "a1");

    // Only admins pause or resume someone else; a user who is not an agent is not found.
    let by_agent = app.gql(&a, set, json!({ "inbox": id, "user": b.id, "active": true })).await;
    assert_error_code(&by_agent, "FORBIDDEN");
    let not_an_agent = app.gql(&ada, set, json!({ "inbox": id, "user": alice.id, "active": false })).await;
    assert_error_code(&not_an_agent, "NOT_FOUND");
    let outsider = app.gql(&alice, set, json!({ "inbox": id, "user": alice.id, "active": false })).await;
    assert_error_code(&outsider, "NOT_FOUND");

    // Nobody active: it waits; b2 back from the break takes it at once, and the next one.
    app.ok(&ada, set, json!({ "inbox": id, "user": a.id, "active": false })).await;
    let second = new_conversation(2).await;
    assert_eq!(assignee(&second).await, Value::Null, "no active agent: it waits");
    app.ok(&b, set, json!({ "inbox": id, "user": b.id, "active": true })).await;
    assert_eq!(assignee(&second).await["handle"], "b2", "the queue drained to the agent back");
    let third = new_conversation(3).await;
    assert_eq!(assignee(&third).await["handle"], "b2", "a1 is still paused");
    assert_eq!(assignee(&first).await["handle"], "a1", "a pause keeps what was assigned");
}

/// The turn passes to whoever joined after the last agent chosen: pausing or resuming
/// someone else neither skips nor repeats anyone.
async fn round_robin_keeps_its_turn_across_a_pause(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (a, b) = (org.user_with_role("a1", "agent").await, org.user_with_role("b2", "agent").await);
    let c = org.user_with_role("c3", "agent").await;
    let (id, secret) =
        inbox(&app, &ada, json!({ "name": "Turns", "assignment": "ROUND_ROBIN" }), &[&a, &b, &c]).await;
    let set = "mutation($inbox: ID!, $user: ID!, $active: Boolean!) { \
        setInboxMemberActive(inboxId: $inbox, userId: $user, active: $active) { id } }";
    let (mut assignees, mut rooms) = (Vec::new(), Vec::new());
    for n in 1..=4 {
        match n {
            2 => app.ok(&ada, set, json!({ "inbox": id, "user": a.id, "active": false })).await,
            3 => app.ok(&ada, set, json!({ "inbox": id, "user": a.id, "active": true })).await,
            _ => json!(null),
        };
        let (_, stored) =
            post(&app, &id, &secret, &sms(&format!("turn-{n}"), &format!("+4179000050{n}"), "hi")).await;
        let room = stored["conversationId"].as_str().expect("a room").to_owned();
        let assignee = conversation(&app, &ada, &room).await["conversation"]["assignee"]["handle"].clone();
        assignees.push(assignee.as_str().unwrap_or("nobody").to_owned());
        rooms.push(room);
    }
    // a1; a1 paused: b2 (not c3); a1 back: c3 (not b2 again); then a1.
    assert_eq!(assignees, ["a1", "b2", "c3", "a1"]);

    // b2 takes the fifth and leaves: their two open conversations go back to the queue and
    // the turn is still after b2's place: the second to c3, the fifth to a1, a sixth to c3.
    for n in [5, 6] {
        if n == 6 {
            let remove = "mutation($inbox: ID!, $user: ID!) { removeInboxMember(inboxId: $inbox, userId: $user) { id } }";
            app.ok(&ada, remove, json!({ "inbox": id, "user": b.id })).await;
        }
        let (_, stored) =
            post(&app, &id, &secret, &sms(&format!("turn-{n}"), &format!("+4179000050{n}"), "hi")).await;
        rooms.push(stored["conversationId"].as_str().expect("a room").to_owned());
    }
    let handle = async |room: &str| {
        let assignee = conversation(&app, &ada, room).await["conversation"]["assignee"]["handle"].clone();
        assignee.as_str().unwrap_or("nobody").to_owned()
    };
    let after = [handle(&rooms[1]).await, handle(&rooms[4]).await, handle(&rooms[5]).await];
    assert_eq!(after, ["c3", "a1", "c3"], "the second and fifth requeued, then the sixth");
}

async fn unassigned_or_removed_agents_conversations_go_back_to_the_queue(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (a, b) = (org.user_with_role("a1", "agent").await, org.user_with_role("b2", "agent").await);
    let (id, secret) =
        inbox(&app, &ada, json!({ "name": "Manual", "assignment": "MANUAL" }), &[&a, &b]).await;
    let mut rooms = Vec::new();
    for n in 1..=2 {
        let (_, stored) =
            post(&app, &id, &secret, &sms(&format!("q-{n}"), &format!("+4179000040{n}"), "hi")).await;
        rooms.push(stored["conversationId"].as_str().expect("a room").to_owned());
    }
    let assignee =
        async |room: &str| conversation(&app, &ada, room).await["conversation"]["assignee"].clone();
    assert_eq!(assignee(&rooms[0]).await, Value::Null, "manual: nobody until someone takes it");
    let assign =
        "mutation($room: ID!, $user: ID!) { assignConversation(roomId: $room, userId: $user) { id } }";
    app.ok(&ada, assign, json!({ "room": rooms[0], "user": a.id })).await;
    app.ok(&ada, assign, json!({ "room": rooms[1], "user": b.id })).await;
    assert_eq!(assignee(&rooms[1]).await["handle"], "b2");

    // a1 hands theirs back: it waits, as the strategy is manual.
    let unassign = "mutation($room: ID!) { unassignConversation(roomId: $room) { id } }";
    app.ok(&a, unassign, json!({ "room": rooms[0] })).await;
    assert_eq!(assignee(&rooms[0]).await, Value::Null);
    // A strategy that assigns takes the queue at once: to the less busy a1.
    let update =
        "mutation($input: UpdateSupportInboxInput!) { updateSupportInbox(input: $input) { assignment } }";
    let updated =
        app.ok(&ada, update, json!({ "input": { "inboxId": id, "assignment": "LEAST_BUSY" } })).await;
    assert_eq!(updated["updateSupportInbox"]["assignment"], "LEAST_BUSY");
    assert_eq!(assignee(&rooms[0]).await["handle"], "a1");
    // a1 gives it back again: it goes to b2, not straight back to a1 (now the less busy).
    app.ok(&a, unassign, json!({ "room": rooms[0] })).await;
    assert_eq!(assignee(&rooms[0]).await["handle"], "b2");

    // b2 leaves the inbox: their conversations go to a1, and b2 no longer sees them.
    let remove = "mutation($inbox: ID!, $user: ID!) { removeInboxMember(inboxId: $inbox, userId: $user) { members { user { handle } } } }";
    let removed = app.ok(&ada, remove, json!({ "inbox": id, "user": b.id })).await;
    assert_eq!(removed["removeInboxMember"]["members"], json!([{ "user": { "handle": "a1" } }]));
    assert_eq!(
        (assignee(&rooms[0]).await["handle"].clone(), assignee(&rooms[1]).await["handle"].clone()),
        (json!("a1"), json!("a1"))
    );
    let seen_by_b = app.gql(&b, "query($id: ID!) { room(id: $id) { id } }", json!({ "id": rooms[1] })).await;
    assert_error_code(&seen_by_b, "NOT_FOUND");
    let again = app.gql(&ada, remove, json!({ "inbox": id, "user": b.id })).await;
    assert_error_code(&again, "NOT_FOUND");
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

async fn assignments_are_posted_to_webhooks_that_want_them(backend: Backend) {
    // A database of its own: on the shared one, any other test's server may claim the
    // delivery and be stopped with its test before posting it, holding it for a 30 s lease.
    let (_database, app) = spawn_app_alone(backend).await;
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

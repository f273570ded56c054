//! Agents who leave: a resolved conversation keeps the agent who resolved it, but when its
//! contact writes again after that agent left the inbox or was deactivated, it goes to an
//! agent who is still there; a deactivated account is never chosen, online or not; and an
//! agent leaves conversations only by leaving the inbox (an admin who joined one may leave).
//! Deactivating an agent hands their open and snoozed conversations back to the queue.
//! Reopened by hand, a resolved conversation whose agent left goes to the queue as well.

use serde_json::{Value, json};

use super::*;
use crate::helpers::api::{edge_ids, send};
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, spawn_app};

backend_tests!(
    a_conversation_reopened_after_its_agent_left_goes_to_one_still_there,
    a_conversation_reopened_by_hand_after_its_agent_left_goes_to_one_still_there,
    resolved_at_is_when_it_was_resolved_whatever_changes_hands_after,
    deactivated_agents_are_never_chosen,
    agents_leave_conversations_only_with_the_inbox,
    deactivating_an_agent_hands_their_conversations_back,
    a_removed_agent_leaves_every_conversation_at_once,
    an_agent_made_an_integration_hands_their_conversations_back,
);

const REMOVE: &str =
    "mutation($inbox: ID!, $user: ID!) { removeInboxMember(inboxId: $inbox, userId: $user) { id } }";
const DEACTIVATE: &str = "mutation($id: ID!) { deactivateUser(userId: $id) { deactivatedAt } }";

/// A new organisation's admin ada and agents sam then tia, a round-robin inbox of ada's with
/// both, and the conversation one contact opened there (sam's, first in turn), which sam
/// then resolved: the three, the inbox's id and secret, and the room.
async fn resolved_by_sam(app: &TestApp) -> ([TestUser; 3], String, String, String) {
    let ([ada, sam, tia], id, secret) = round_robin_inbox(app).await;
    let (status, stored) = post(app, &id, &secret, &sms("d-1", "+41790000601", "hello")).await;
    assert_eq!(status, 201, "{stored}");
    let room = stored["conversationId"].as_str().expect("a room").to_owned();
    assert_eq!(assignee(app, &ada, &room).await, "sam");
    app.ok(&sam, SET_STATUS, json!({ "room": room, "status": "RESOLVED" })).await;
    ([ada, sam, tia], id, secret, room)
}

/// Admin ada, agents sam and tia, and a round-robin inbox of sam and tia: its id and secret.
async fn round_robin_inbox(app: &TestApp) -> ([TestUser; 3], String, String) {
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (sam, tia) = (org.user_with_role("sam", "agent").await, org.user_with_role("tia", "agent").await);
    let (id, secret) =
        inbox(app, &ada, json!({ "name": "RR", "assignment": "ROUND_ROBIN" }), &[&sam, &tia]).await;
    ([ada, sam, tia], id, secret)
}

async fn assignee(app: &TestApp, viewer: &TestUser, room: &str) -> String {
    let conversation = conversation(app, viewer, room).await["conversation"].clone();
    conversation["assignee"]["handle"].as_str().unwrap_or("nobody").to_owned()
}

async fn a_conversation_reopened_after_its_agent_left_goes_to_one_still_there(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([ada, sam, tia], id, secret, room) = resolved_by_sam(&app).await;
    // Resolved, it keeps sam (the metrics' history), also once sam has left.
    app.ok(&ada, REMOVE, json!({ "inbox": id, "user": sam.id })).await;
    assert_eq!(assignee(&app, &ada, &room).await, "sam");

    let (status, again) = post(&app, &id, &secret, &sms("d-2", "+41790000601", "still there?")).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["conversationId"], json!(room), "the contact's one conversation");
    let reopened = conversation(&app, &ada, &room).await["conversation"].clone();
    assert_eq!(reopened["status"], "OPEN");
    assert_eq!(reopened["assignee"]["handle"], "tia", "{reopened}");
    // And tia, now its agent, reads it.
    let seen = app.ok(&tia, "query($id: ID!) { room(id: $id) { latestSeq } }", json!({ "id": room })).await;
    assert_eq!(seen["room"]["latestSeq"], 2);
}

/// An agent reopens it by hand after sam left the inbox: it goes to tia, and sam no longer
/// finds it among their assigned conversations (it stayed sam's, out of their reach, and
/// nothing assigned it again).
async fn a_conversation_reopened_by_hand_after_its_agent_left_goes_to_one_still_there(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([ada, sam, tia], id, _secret, room) = resolved_by_sam(&app).await;
    app.ok(&ada, REMOVE, json!({ "inbox": id, "user": sam.id })).await;

    let reopened = app.ok(&tia, SET_STATUS, json!({ "room": room, "status": "OPEN" })).await;
    assert_eq!(reopened["setConversationStatus"]["conversation"]["status"], "OPEN");
    assert_eq!(assignee(&app, &ada, &room).await, "tia");
    let mine = "query { viewer { assignedConversations(first: 10) { edges { node { id } } } } }";
    let sams = app.ok(&sam, mine, json!({})).await;
    assert_eq!(edge_ids(&sams["viewer"]["assignedConversations"]), Vec::<String>::new());
    let tias = app.ok(&tia, mine, json!({})).await;
    assert_eq!(edge_ids(&tias["viewer"]["assignedConversations"]), [room]);
}

/// `resolvedAt` (and so the metrics' resolution time) is the moment it was resolved: handing
/// the resolved conversation to another agent, or resolving it again, keeps it; reopening
/// clears it, and resolving anew sets it anew.
async fn resolved_at_is_when_it_was_resolved_whatever_changes_hands_after(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([ada, _sam, tia], _id, _secret, room) = resolved_by_sam(&app).await;
    let resolved_at = || async {
        let query = "query($id: ID!) { room(id: $id) { conversation { resolvedAt } } }";
        app.ok(&ada, query, json!({ "id": room })).await["room"]["conversation"]["resolvedAt"].clone()
    };
    let first = resolved_at().await;
    assert!(first.is_string(), "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let assign =
        "mutation($room: ID!, $user: ID!) { assignConversation(roomId: $room, userId: $user) { id } }";
    app.ok(&ada, assign, json!({ "room": room, "user": tia.id })).await;
    assert_eq!(assignee(&app, &ada, &room).await, "tia");
    assert_eq!(resolved_at().await, first, "assigned while resolved");
    app.ok(&tia, SET_STATUS, json!({ "room": room, "status": "RESOLVED" })).await;
    assert_eq!(resolved_at().await, first, "resolved again");

    app.ok(&tia, SET_STATUS, json!({ "room": room, "status": "OPEN" })).await;
    assert_eq!(resolved_at().await, Value::Null, "reopened");
    app.ok(&tia, SET_STATUS, json!({ "room": room, "status": "RESOLVED" })).await;
    let second = resolved_at().await;
    assert!(second.is_string() && second != first, "{first} then {second}");
}

async fn deactivated_agents_are_never_chosen(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([ada, sam, _tia], id, secret, room) = resolved_by_sam(&app).await;
    app.ok(&ada, DEACTIVATE, json!({ "id": sam.id })).await;

    // Nobody is online, so an offline agent may be chosen: but not a deactivated one.
    let (_, again) = post(&app, &id, &secret, &sms("d-2", "+41790000601", "hello again")).await;
    assert_eq!(again["conversationId"], json!(room));
    assert_eq!(assignee(&app, &ada, &room).await, "tia");
    for n in 3..=4 {
        let (status, stored) =
            post(&app, &id, &secret, &sms(&format!("d-{n}"), &format!("+4179000060{n}"), "hi")).await;
        assert_eq!(status, 201, "{stored}");
        let new = conversation(&app, &ada, stored["conversationId"].as_str().expect("a room")).await;
        let decision = &new["conversation"]["assignmentDecision"];
        assert_eq!(decision["chosen"]["handle"], "tia", "{decision}");
        let candidates: Vec<Value> = decision["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .map(|c| c["agent"]["handle"].clone())
            .collect();
        assert_eq!(candidates, [json!("tia")], "a deactivated agent is no candidate");
    }
}

async fn agents_leave_conversations_only_with_the_inbox(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, sam, _tom, stored) = admin_agents_and_a_conversation(&app, "l-1", "+41790000611", "help").await;
    let room = stored["conversationId"].as_str().expect("a room").to_owned();
    let leave = "mutation($id: ID!) { leaveRoom(roomId: $id) }";

    assert_error_code(&app.gql(&sam, leave, json!({ "id": room })).await, "BAD_USER_INPUT");
    let seen = app.ok(&sam, "query($id: ID!) { room(id: $id) { viewerRole } }", json!({ "id": room })).await;
    assert_eq!(seen["room"]["viewerRole"], "MEMBER", "sam is still in it");
    // An admin who joined by replying may leave again, and still reads it (as admins do).
    send(&app, &ada, &room, "Ada here").await;
    app.ok(&ada, leave, json!({ "id": room })).await;
    let seen = app.ok(&ada, "query($id: ID!) { room(id: $id) { viewerRole } }", json!({ "id": room })).await;
    assert_eq!(seen["room"]["viewerRole"], Value::Null);
}

/// Removing an agent takes them out of every conversation of the inbox in one step (one at a
/// time, a failure midway left them reading the rest, and a repeat answered NOT_FOUND); their
/// live feed stops at once, and a repeat is NOT_FOUND.
async fn a_removed_agent_leaves_every_conversation_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([ada, sam], id, secret) = an_inbox(&app, "SMS").await;
    let mut rooms = Vec::new();
    for n in 1..=3 {
        let (status, stored) =
            post(&app, &id, &secret, &sms(&format!("r-{n}"), &format!("+4179000062{n}"), "hi")).await;
        assert_eq!(status, 201, "{stored}");
        rooms.push(stored["conversationId"].as_str().expect("a room").to_owned());
    }
    let mut sams = WsClient::connect(&app, &sam).await;
    let mut sam_sees = sams.subscribe("m", "subscription { messageAdded { body } }", json!({})).await;
    sams.settle().await;

    app.ok(&ada, REMOVE, json!({ "inbox": id, "user": sam.id })).await;
    let role = "query($id: ID!) { room(id: $id) { viewerRole } }";
    for room in &rooms {
        assert_error_code(&app.gql(&sam, role, json!({ "id": room })).await, "NOT_FOUND");
    }
    let (status, _) = post(&app, &id, &secret, &sms("r-4", "+41790000621", "still there?")).await;
    assert_eq!(status, 201);
    sam_sees.assert_no_data(std::time::Duration::from_millis(500)).await;
    let again = app.gql(&ada, REMOVE, json!({ "inbox": id, "user": sam.id })).await;
    assert_error_code(&again, "NOT_FOUND");
}

async fn deactivating_an_agent_hands_their_conversations_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([ada, sam, tia], id, secret) = round_robin_inbox(&app).await;
    // Round robin: sam, tia, sam.
    let mut rooms = Vec::new();
    for n in 1..=3 {
        let (status, stored) =
            post(&app, &id, &secret, &sms(&format!("h-{n}"), &format!("+4179000070{n}"), "help")).await;
        assert_eq!(status, 201, "{stored}");
        rooms.push(stored["conversationId"].as_str().expect("a room").to_owned());
    }
    let [open, tias, snoozed] = [&rooms[0], &rooms[1], &rooms[2]];
    assert_eq!(
        [
            assignee(&app, &ada, open).await,
            assignee(&app, &ada, tias).await,
            assignee(&app, &ada, snoozed).await
        ],
        ["sam", "tia", "sam"]
    );
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    app.ok(&sam, SET_STATUS, json!({ "room": snoozed, "status": "SNOOZED", "until": later })).await;
    let mut ws = WsClient::connect(&app, &tia).await;
    let mut updates = ws.subscribe("updates", ROOM_UPDATES, json!({})).await;
    ws.settle().await;

    app.ok(&ada, DEACTIVATE, json!({ "id": sam.id })).await;
    // The open one goes to tia, now the only agent; the snoozed one waits unassigned for its time.
    let mut changes = Vec::new();
    while changes.len() < 3 {
        let update = updates.next("roomUpdated").await;
        if update["reason"] == "CONVERSATION_CHANGED" {
            changes.push((update["roomId"].clone(), update["conversationChange"].clone()));
        }
    }
    let change = |room: &str, status: &str, from: &TestUser, to: Option<&TestUser>, by: &TestUser| {
        let ids = (json!(from.id), to.map(|t| json!(t.id)).unwrap_or(Value::Null));
        (
            json!(room),
            json!({ "statusFrom": status, "statusTo": status, "assigneeFrom": ids.0, "assigneeTo": ids.1, "by": by.id }),
        )
    };
    assert!(changes.contains(&change(open, "OPEN", &sam, None, &ada)), "{changes:?}");
    assert!(changes.contains(&change(snoozed, "SNOOZED", &sam, None, &ada)), "{changes:?}");
    let taken = changes.iter().find(|(room, c)| room == open && c["assigneeTo"] == json!(tia.id));
    assert!(taken.is_some(), "tia takes it: {changes:?}");
    assert_eq!(assignee(&app, &ada, open).await, "tia");
    let waiting = conversation(&app, &ada, snoozed).await["conversation"].clone();
    assert_eq!((waiting["status"].as_str(), &waiting["assignee"]), (Some("SNOOZED"), &Value::Null));
    let mine = "query { viewer { assignedConversations(first: 10) { edges { node { id } } } } }";
    let listed = app.ok(&tia, mine, json!({})).await;
    let mut ids = edge_ids(&listed["viewer"]["assignedConversations"]);
    ids.sort();
    let mut expected = [open.clone(), tias.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    // A repeat changes nothing and is not refused.
    app.ok(&ada, DEACTIVATE, json!({ "id": sam.id })).await;
    assert_eq!(assignee(&app, &ada, open).await, "tia");
}

/// An integration account can send nothing: an agent whose role becomes one hands their open
/// conversations back, as a deactivated agent does, and is chosen no more.
async fn an_agent_made_an_integration_hands_their_conversations_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([ada, sam, _tia], id, secret) = round_robin_inbox(&app).await;
    let (_, stored) = post(&app, &id, &secret, &sms("i-1", "+41790000801", "help")).await;
    let room = stored["conversationId"].as_str().expect("a room").to_owned();
    assert_eq!(assignee(&app, &ada, &room).await, "sam");

    let set_role = "mutation($id: ID!) { updateUser(input: { userId: $id, role: INTEGRATION }) { role } }";
    app.ok(&ada, set_role, json!({ "id": sam.id })).await;
    assert_eq!(assignee(&app, &ada, &room).await, "tia");
    for n in 2..=3 {
        let (_, stored) =
            post(&app, &id, &secret, &sms(&format!("i-{n}"), &format!("+4179000080{n}"), "hi")).await;
        let room = stored["conversationId"].as_str().expect("a room").to_owned();
        assert_eq!(assignee(&app, &ada, &room).await, "tia", "sam is chosen no more");
    }
}

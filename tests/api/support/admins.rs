//! What an organisation admin does in a conversation they are not in (admins read every
//! conversation, as in Chatwoot): their first reply, which joins them, mentions agents like
//! any other, and they leave it again when they lose the admin role; and archiving a conversation is refused, because a contact's every later
//! message lands in it (a conversation is resolved instead), as is renaming it (it is named
//! after its contact).

use serde_json::json;

use super::*;
use crate::helpers::api::send;
use crate::helpers::{Backend, assert_error_code, spawn_app};

backend_tests!(
    an_admins_first_reply_mentions_agents,
    a_conversation_cannot_be_archived,
    a_conversation_cannot_be_renamed,
    a_demoted_admin_leaves_the_conversations_they_joined_by_replying,
);

async fn an_admins_first_reply_mentions_agents(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, sam, _tom, stored) = admin_agents_and_a_conversation(&app, "m-1", "+41790000701", "help").await;
    let room = stored["conversationId"].as_str().expect("a room").to_owned();

    send(&app, &ada, &room, "@sam please take this one").await;
    let counted = "query($id: ID!) { room(id: $id) { mentionCount } viewer { mentions(first: 5) { edges { node { body } } } } }";
    let seen = app.ok(&sam, counted, json!({ "id": room })).await;
    assert_eq!(seen["room"]["mentionCount"], 1, "{seen}");
    assert_eq!(seen["viewer"]["mentions"]["edges"][0]["node"]["body"], "@sam please take this one");
}

async fn a_conversation_cannot_be_archived(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, sam, _tom, stored) = admin_agents_and_a_conversation(&app, "a-1", "+41790000702", "help").await;
    let room = stored["conversationId"].as_str().expect("a room").to_owned();

    let archive = "mutation($id: ID!) { archiveRoom(roomId: $id) { archivedAt } }";
    let refused = app.gql(&ada, archive, json!({ "id": room })).await;
    assert_error_code(&refused, "BAD_USER_INPUT");
    let room_now =
        app.ok(&ada, "query($id: ID!) { room(id: $id) { archivedAt } }", json!({ "id": room })).await;
    assert_eq!(room_now["room"]["archivedAt"], serde_json::Value::Null, "nothing changed");
    // The agent still answers there.
    send(&app, &sam, &room, "on it").await;
}

/// Renaming a conversation is refused: it is named after its contact, whom another name would
/// hide from the agents. Its topic may still be set.
async fn a_conversation_cannot_be_renamed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, _sam, _tom, stored) =
        admin_agents_and_a_conversation(&app, "n-1", "+41790000703", "help").await;
    let room = stored["conversationId"].as_str().expect("a room").to_owned();
    let name = "query($id: ID!) { room(id: $id) { name } }";
    let before = app.ok(&ada, name, json!({ "id": room })).await["room"]["name"].clone();

    let rename = "mutation($input: UpdateRoomInput!) { updateRoom(input: $input) { name } }";
    let refused = app.gql(&ada, rename, json!({ "input": { "roomId": room, "name": "general" } })).await;
    assert_error_code(&refused, "BAD_USER_INPUT");
    assert_eq!(app.ok(&ada, name, json!({ "id": room })).await["room"]["name"], before, "nothing changed");
    let topic = app.ok(&ada, rename, json!({ "input": { "roomId": room, "topic": "refund" } })).await;
    assert_eq!(topic["updateRoom"]["name"], before);
}

/// An admin who replied in a conversation (and so joined it) and then becomes an agent no
/// longer reads it, unless they are an agent of its inbox: the inbox decides who reads its
/// conversations.
async fn a_demoted_admin_leaves_the_conversations_they_joined_by_replying(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, _sam, tom, stored) = admin_agents_and_a_conversation(&app, "d-1", "+41790000704", "help").await;
    let outside = stored["conversationId"].as_str().expect("a room").to_owned();
    let (mail, secret) = inbox(&app, &ada, json!({ "name": "Mail" }), &[&tom]).await;
    let (status, theirs) = post(&app, &mail, &secret, &sms("d-2", "+41790000705", "hello")).await;
    assert_eq!(status, 201, "{theirs}");
    let theirs = theirs["conversationId"].as_str().expect("a room").to_owned();
    let set_role =
        "mutation($id: ID!, $role: UserRole) { updateUser(input: { userId: $id, role: $role }) { role } }";
    app.ok(&ada, set_role, json!({ "id": tom.id, "role": "ADMIN" })).await;
    send(&app, &tom, &outside, "Tom here, as an admin").await;
    send(&app, &tom, &theirs, "Tom here, as the agent").await;

    app.ok(&ada, set_role, json!({ "id": tom.id, "role": "AGENT" })).await;
    let role = "query($id: ID!) { room(id: $id) { viewerRole } }";
    assert_error_code(&app.gql(&tom, role, json!({ "id": outside })).await, "NOT_FOUND");
    let reply =
        "mutation($room: ID!) { sendMessage(input: { roomId: $room, body: \"still here?\" }) { id } }";
    assert_error_code(&app.gql(&tom, reply, json!({ "room": outside })).await, "NOT_FOUND");
    let seen = app.ok(&tom, role, json!({ "id": theirs })).await;
    assert_eq!(seen["room"]["viewerRole"], "MEMBER", "an agent of Mail stays in its conversation");
    // A repeat of the same role leaves nothing more, and changes nothing.
    app.ok(&ada, set_role, json!({ "id": tom.id, "role": "AGENT" })).await;
    assert_eq!(app.ok(&tom, role, json!({ "id": theirs })).await["room"]["viewerRole"], "MEMBER");
}

//! The Later list (`viewer.later`): pending and due reminders by due time, then saved
//! messages, newest saved first; each with its kind and due state; settled reminders and
//! messages the viewer can no longer read drop out; paged.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::api::{create_private_channel, id_of, send};
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, data, spawn_app};

backend_tests!(later_lists_reminders_by_due_time_then_saved_messages);

const LATER: &str = "query($first: Int, $after: String) { viewer { later(first: $first, after: $after) { \
    edges { node { kind isDue dueAt reminder { id } message { id } room { id } } } pageInfo { hasNextPage endCursor } } } }";
const REMIND: &str = "mutation($input: CreateReminderInput!) { createReminder(input: $input) { id } }";
const SAVE: &str = "mutation($id: ID!) { setMessageFavorite(messageId: $id, favorite: true) { id } }";

fn in_millis(millis: i64) -> String {
    (Utc::now() + chrono::Duration::milliseconds(millis)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Every item, walking pages of `first`: (kind, isDue, the reminder's or message's id).
async fn later(app: &TestApp, user: &TestUser, first: i64) -> Vec<(String, bool, String)> {
    let (mut items, mut after) = (Vec::new(), Value::Null);
    loop {
        let page = app.ok(user, LATER, json!({ "first": first, "after": after })).await;
        let connection = &page["viewer"]["later"];
        for edge in connection["edges"].as_array().expect("edges") {
            let node = &edge["node"];
            let id =
                if node["kind"] == "REMINDER" { id_of(&node["reminder"]) } else { id_of(&node["message"]) };
            items.push((node["kind"].as_str().unwrap_or("").to_owned(), node["isDue"] == json!(true), id));
        }
        if connection["pageInfo"]["hasNextPage"] != json!(true) {
            return items;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
}

async fn remind(app: &TestApp, user: &TestUser, input: Value) -> String {
    id_of(&data(app.gql(user, REMIND, json!({ "input": input })).await)["createReminder"])
}

async fn later_lists_reminders_by_due_time_then_saved_messages(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_private_channel(&app, &bob, "deals", &[&alice]).await;
    let older = id_of(&send(&app, &bob, &room, "older").await);
    let newer = id_of(&send(&app, &bob, &room, "newer").await);
    for message in [&older, &newer] {
        app.ok(&alice, SAVE, json!({ "id": message })).await;
    }
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut due = ws.subscribe("due", "subscription { reminderDue { reminder { id } } }", json!({})).await;
    let far = remind(&app, &alice, json!({ "remindAt": in_millis(7_200_000), "note": "far" })).await;
    let near = remind(&app, &alice, json!({ "remindAt": in_millis(3_600_000), "messageId": older })).await;
    let fired = remind(&app, &alice, json!({ "remindAt": in_millis(500), "roomId": room })).await;
    let done = remind(&app, &alice, json!({ "remindAt": in_millis(600_000) })).await;
    app.ok(&alice, "mutation($id: ID!) { completeReminder(id: $id) { id } }", json!({ "id": done })).await;
    assert_eq!(due.next("reminderDue").await["reminder"]["id"], fired);

    let expected = [
        ("REMINDER".to_owned(), true, fired),
        ("REMINDER".to_owned(), false, near.clone()),
        ("REMINDER".to_owned(), false, far),
        ("SAVED_MESSAGE".to_owned(), false, newer),
        ("SAVED_MESSAGE".to_owned(), false, older),
    ];
    assert_eq!(later(&app, &alice, 50).await, expected);
    assert_eq!(later(&app, &alice, 2).await, expected, "pages of 2 walk the same list");
    assert_eq!(later(&app, &bob, 50).await, Vec::new(), "per user");

    // Removed from the room: the saved messages drop out; the reminders stay, without the room.
    app.ok(
        &bob,
        "mutation($r: ID!, $u: ID!) { removeMember(roomId: $r, userId: $u) { id } }",
        json!({ "r": room, "u": alice.id }),
    )
    .await;
    let items = later(&app, &alice, 50).await;
    assert_eq!(items.iter().map(|(kind, ..)| kind.as_str()).collect::<Vec<_>>(), ["REMINDER"; 3]);
    let page = app.ok(&alice, LATER, json!({ "first": 50 })).await;
    let second = &page["viewer"]["later"]["edges"][1]["node"];
    assert_eq!(
        (second["reminder"]["id"].as_str(), &second["message"], &second["room"]),
        (Some(near.as_str()), &Value::Null, &Value::Null)
    );
}

//! Relay paging on every list that can grow: `first`/`after` forward, `last`/`before`
//! backward (from the end with no `before`), cursors from either walk usable in the other
//! direction, and both directions at once refused. Each list is walked both ways and must
//! give the same items in the same order.

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, spawn_app};
use crate::support::{inbox, post, sms};

backend_tests!(every_list_pages_backward_as_it_pages_forward);

const PAGE_INFO: &str = "pageInfo { hasNextPage hasPreviousPage }";

/// A list: its query (taking `$first $after $last $before`), who reads it, and where its
/// connection is in the answer (a JSON pointer).
struct List<'a> {
    name: &'static str,
    query: String,
    reader: &'a TestUser,
    at: &'static str,
}

impl List<'_> {
    fn new<'a>(name: &'static str, reader: &'a TestUser, at: &'static str, field: &str) -> List<'a> {
        let query = format!(
            "query($first: Int, $after: String, $last: Int, $before: String) {{ {} }}",
            field
                .replace("PAGE", "first: $first, after: $after, last: $last, before: $before")
                .replace("EDGES", &format!("edges {{ cursor node {{ NODE }} }} {PAGE_INFO}"))
        );
        List { name, query, reader, at }
    }

    fn node(mut self, selection: &str) -> Self {
        self.query = self.query.replace("NODE", selection);
        self
    }

    async fn page(&self, app: &TestApp, variables: Value) -> Value {
        let answer = app.ok(self.reader, &self.query, variables).await;
        answer
            .pointer(self.at)
            .cloned()
            .unwrap_or_else(|| panic!("{}: no {} in {answer}", self.name, self.at))
    }
}

/// A page's nodes and cursors.
fn items(connection: &Value) -> (Vec<Value>, Vec<Value>) {
    let edges = connection["edges"].as_array().cloned().unwrap_or_default();
    edges.into_iter().map(|e| (e["node"].clone(), e["cursor"].clone())).unzip()
}

/// Checks one list: the walks agree, and each page says what lies beyond it.
async fn check(app: &TestApp, list: &List<'_>) {
    let name = list.name;
    // Forward, two at a time.
    let (mut forward, mut cursors, mut after) = (Vec::new(), Vec::new(), Value::Null);
    for pages in 0.. {
        assert!(pages < 20, "{name}: the forward walk does not end");
        let page = list.page(app, json!({ "first": 2, "after": after })).await;
        let (nodes, page_cursors) = items(&page);
        assert_eq!(page["pageInfo"]["hasPreviousPage"], !forward.is_empty(), "{name}: {page}");
        forward.extend(nodes);
        cursors.extend(page_cursors);
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = cursors.last().cloned().unwrap_or_default();
    }
    let len = forward.len();
    assert!(len >= 5, "{name}: enough items to page through: {forward:?}");
    // Backward from the end, two at a time.
    let (mut backward, mut before, mut first_page) = (Vec::new(), Value::Null, true);
    for pages in 0.. {
        assert!(pages < 20, "{name}: the backward walk does not end");
        let page = list.page(app, json!({ "last": 2, "before": before })).await;
        let (nodes, page_cursors) = items(&page);
        assert_eq!(page["pageInfo"]["hasNextPage"], !first_page, "{name}: {page}");
        first_page = false;
        backward.splice(0..0, nodes);
        if page["pageInfo"]["hasPreviousPage"] != true {
            break;
        }
        before = page_cursors.first().cloned().unwrap_or_default();
    }
    assert_eq!(backward, forward, "{name}: walked backward");
    // A forward cursor pages backward, and a backward one forward.
    let page = list.page(app, json!({ "last": 2, "before": cursors[3] })).await;
    assert_eq!(items(&page).0, forward[1..3], "{name}: the two before the fourth");
    assert_eq!(page["pageInfo"], json!({ "hasNextPage": true, "hasPreviousPage": true }), "{name}");
    let tail = list.page(app, json!({ "last": 3 })).await;
    let third_last = items(&tail).1[0].clone();
    let page = list.page(app, json!({ "first": 5, "after": third_last })).await;
    assert_eq!(items(&page).0, forward[len - 2..], "{name}: the two after the third from the end");
    assert_eq!(page["pageInfo"], json!({ "hasNextPage": false, "hasPreviousPage": true }), "{name}");
    let page = list.page(app, json!({ "last": 2, "before": cursors[1] })).await;
    assert_eq!(items(&page).0, forward[..1], "{name}: only one comes before the second");
    // Past the last item: nothing, and nothing to page on to.
    let nothing = json!({ "edges": [], "pageInfo": { "hasNextPage": false, "hasPreviousPage": false } });
    let page = list.page(app, json!({ "first": 2, "after": cursors[len - 1] })).await;
    assert_eq!(page, nothing, "{name}: after the last");
    // Both directions at once, and a cursor that names no item's place.
    let mixed = app.gql(list.reader, &list.query, json!({ "first": 2, "before": cursors[3] })).await;
    assert_error_code(&mixed, "BAD_USER_INPUT");
    let bad = app.gql(list.reader, &list.query, json!({ "last": 2, "before": "e-1" })).await;
    assert_error_code(&bad, "BAD_USER_INPUT");
}

async fn every_list_pages_backward_as_it_pages_forward(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let mut people = Vec::new();
    for i in 0..4 {
        people.push(org.user(&format!("user{i}")).await);
    }
    let everyone: Vec<&TestUser> = people.iter().chain([&sam]).collect();
    let general = create_channel(&app, &ada, "general", &everyone).await;
    let star = "mutation($id: ID!) { setRoomFavorite(roomId: $id, favorite: true) { id } }";
    for i in 0..5 {
        let room = create_channel(&app, &ada, &format!("room-{i}"), &[]).await;
        if i % 2 == 1 {
            // Two favorites among the older rooms: favorites first is not recent activity.
            app.ok(&ada, star, json!({ "id": room })).await;
        }
    }
    let remind = "mutation($input: CreateReminderInput!) { createReminder(input: $input) { id } }";
    let save = "mutation($id: ID!) { setMessageFavorite(messageId: $id, favorite: true) { id } }";
    for i in 0..5 {
        let message = id_of(&send(&app, &people[0], &general, &format!("@ada number {i}")).await);
        app.ok(&ada, save, json!({ "id": message })).await;
        let at = (chrono::Utc::now() + chrono::Duration::hours(i + 1)).to_rfc3339();
        app.ok(&ada, remind, json!({ "input": { "remindAt": at, "note": format!("n{i}") } })).await;
    }
    let cancel = "mutation($id: ID!) { cancelReminder(id: $id) { id } }";
    for i in 0..5 {
        let at = (chrono::Utc::now() + chrono::Duration::days(i + 1)).to_rfc3339();
        let created = app.ok(&ada, remind, json!({ "input": { "remindAt": at } })).await;
        app.ok(&ada, cancel, json!({ "id": id_of(&created["createReminder"]) })).await;
    }
    // A webhook on general (nothing listens: its deliveries fail and stay listed).
    let hook =
        "mutation($input: CreateOutgoingWebhookInput!) { createOutgoingWebhook(input: $input) { secret } }";
    let input = json!({ "url": "http://127.0.0.1:9/hook", "events": ["MESSAGE_ADDED"], "roomId": general });
    app.ok(&ada, hook, json!({ "input": input })).await;
    for i in 0..5 {
        send(&app, &people[2], &general, &format!("for the webhook {i}")).await;
    }
    let (inbox_id, secret) = inbox(&app, &ada, json!({ "name": "SMS" }), &[&sam]).await;
    for i in 0..5 {
        let (status, stored) =
            post(&app, &inbox_id, &secret, &sms(&format!("p-{i}"), &format!("+4179000070{i}"), "hi")).await;
        assert_eq!(status, 201, "{stored}");
    }

    let general_rooms =
        "rooms(first: 1, filter: { search: \"general\" }) { edges { node { members(PAGE) { EDGES } } } }";
    let conversations = format!("supportInbox(id: \"{inbox_id}\") {{ conversations(PAGE) {{ EDGES }} }}");
    let lists = [
        List::new("users", &ada, "/users", "users(PAGE) { EDGES }").node("id"),
        List::new("rooms", &ada, "/rooms", "rooms(PAGE) { EDGES }").node("id"),
        List::new("viewer.rooms", &ada, "/viewer/rooms", "viewer { rooms(PAGE) { EDGES } }").node("id"),
        List::new("favorites first", &ada, "/rooms", "rooms(orderBy: FAVORITES_FIRST, PAGE) { EDGES }")
            .node("id isFavorite"),
        List::new("browse", &people[1], "/rooms", "rooms(filter: { joined: false }, PAGE) { EDGES }")
            .node("id"),
        List::new("members", &ada, "/rooms/edges/0/node/members", general_rooms).node("user { id }"),
        List::new(
            "favoriteMessages",
            &ada,
            "/viewer/favoriteMessages",
            "viewer { favoriteMessages(PAGE) { EDGES } }",
        )
        .node("id"),
        List::new("reminders", &ada, "/viewer/reminders", "viewer { reminders(PAGE) { EDGES } }").node("id"),
        List::new(
            "cancelled reminders",
            &ada,
            "/viewer/reminders",
            "viewer { reminders(filter: { status: CANCELLED }, PAGE) { EDGES } }",
        )
        .node("id"),
        List::new("deliveries", &ada, "/notificationDeliveries", "notificationDeliveries(PAGE) { EDGES }")
            .node("id"),
        List::new(
            "assignedConversations",
            &sam,
            "/viewer/assignedConversations",
            "viewer { assignedConversations(PAGE) { EDGES } }",
        )
        .node("id"),
        List::new("later", &ada, "/viewer/later", "viewer { later(PAGE) { EDGES } }")
            .node("kind reminder { id } message { id }"),
        List::new("mentions", &ada, "/viewer/mentions", "viewer { mentions(PAGE) { EDGES } }").node("id"),
        List::new("conversations", &ada, "/supportInbox/conversations", &conversations).node("id"),
    ];
    for list in &lists {
        check(&app, list).await;
    }
}

//! Lists a user changes while paging them page by each item's place, not its position:
//! saved messages (saving and forgetting), reminders (completing and snoozing), the Later
//! list (both, across its two sections), the deliveries log (new deliveries), an inbox's
//! queue (conversations resolved, new ones arriving), and rooms (an unread list read, a
//! browse list joined, favorites first). Equal
//! times, times a fraction of a second apart (which SQLite keeps as text of different
//! lengths) and a leap second page one at a time in the same order both ways. After each change the next page, forward or
//! backward, starts beside the item its cursor named, even when that item is gone; with
//! positions as cursors each of these tests fails at its first page after a change.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, data, spawn_app};
use crate::support::{inbox, post, sms};

backend_tests!(
    saving_and_forgetting_while_paging_skips_nothing,
    settling_reminders_while_paging_skips_nothing,
    settling_later_items_while_paging_skips_nothing,
    deliveries_made_while_paging_repeat_nothing,
    equal_times_and_fractions_of_a_second_page_in_order,
    resolving_conversations_while_paging_the_queue_skips_none,
    reading_and_joining_rooms_while_paging_skips_none,
    members_leaving_while_paging_skip_nobody,
);

const SAVE: &str =
    "mutation($id: ID!, $f: Boolean!) { setMessageFavorite(messageId: $id, favorite: $f) { id } }";
const REMIND: &str = "mutation($input: CreateReminderInput!) { createReminder(input: $input) { id } }";
const COMPLETE: &str = "mutation($id: ID!) { completeReminder(id: $id) { id } }";

/// One list, read a page at a time with the four Relay arguments.
struct List<'a> {
    app: &'a TestApp,
    reader: &'a TestUser,
    /// The list's field (`viewer.later`: under `viewer`; the parent may take arguments), and
    /// its arguments besides paging.
    field: &'a str,
    args: &'static str,
    /// What each node selects; `name` reads an item's name from it.
    node: &'static str,
    name: fn(&Value) -> Option<&str>,
}

impl List<'_> {
    async fn page(&self, variables: Value) -> Page {
        let (parent, field) = self.field.rsplit_once('.').unwrap_or(("", self.field));
        let list = format!(
            "{field}({}first: $first, after: $after, last: $last, before: $before) {{ edges {{ cursor \
             node {{ {} }} }} pageInfo {{ hasNextPage hasPreviousPage }} }}",
            self.args, self.node
        );
        let selection = if parent.is_empty() { list } else { format!("{parent} {{ {list} }}") };
        let query =
            format!("query($first: Int, $after: String, $last: Int, $before: String) {{ {selection} }}");
        let answer = self.app.ok(self.reader, &query, variables).await;
        // A parent's answer is under its name, without its arguments.
        let parent_key = parent.split('(').next().unwrap_or_default();
        let connection = if parent.is_empty() { &answer[field] } else { &answer[parent_key][field] };
        let edges = connection["edges"].as_array().cloned().unwrap_or_default();
        Page {
            names: edges.iter().map(|e| (self.name)(&e["node"]).unwrap_or_default().to_owned()).collect(),
            cursors: edges.iter().map(|e| e["cursor"].clone()).collect(),
            more: (
                connection["pageInfo"]["hasPreviousPage"].clone(),
                connection["pageInfo"]["hasNextPage"].clone(),
            ),
        }
    }
}

struct Page {
    names: Vec<String>,
    cursors: Vec<Value>,
    /// (hasPreviousPage, hasNextPage)
    more: (Value, Value),
}

const BOTH: (Value, Value) = (Value::Bool(true), Value::Bool(true));

fn in_minutes(minutes: i64) -> String {
    (Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn remind(app: &TestApp, user: &TestUser, input: Value) -> String {
    id_of(&data(app.gql(user, REMIND, json!({ "input": input })).await)["createReminder"])
}

/// Forgetting the message a page ended with, and one before it, and saving a new one.
async fn saving_and_forgetting_while_paging_skips_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &bob, "general", &[&alice]).await;
    let mut ids = Vec::new();
    for body in ["m1", "m2", "m3", "m4", "m5", "m6"] {
        ids.push(id_of(&send(&app, &bob, &general, body).await));
    }
    for id in &ids[..5] {
        data(app.gql(&alice, SAVE, json!({ "id": id, "f": true })).await);
    }
    let saved = List {
        app: &app,
        reader: &alice,
        field: "viewer.favoriteMessages",
        args: "",
        node: "body",
        name: |node| node["body"].as_str(),
    };
    let first = saved.page(json!({ "first": 2 })).await;
    assert_eq!(first.names, ["m5", "m4"]);

    for id in [&ids[4], &ids[3]] {
        data(app.gql(&alice, SAVE, json!({ "id": id, "f": false })).await);
    }
    data(app.gql(&alice, SAVE, json!({ "id": ids[5], "f": true })).await);
    let next = saved.page(json!({ "first": 2, "after": first.cursors[1] })).await;
    assert_eq!(next.names, ["m3", "m2"], "the page after a forgotten message");
    assert_eq!(next.more, BOTH);
    let newer = saved.page(json!({ "last": 2, "before": next.cursors[0] })).await;
    assert_eq!(newer.names, ["m6"], "saved since, and nothing forgotten");
    assert_eq!(newer.more, (json!(false), json!(true)));
    let rest = saved.page(json!({ "first": 5, "after": first.cursors[0] })).await;
    assert_eq!(rest.names, ["m3", "m2", "m1"]);
    assert_eq!(rest.more, (json!(true), json!(false)));

    let query = "query($c: String) { viewer { favoriteMessages(after: $c) { edges { cursor } } } }";
    for bad in ["4", "e0", "1.000000000_x", &format!("-1.000000000_{}", ids[0])] {
        assert_error_code(&app.gql(&alice, query, json!({ "c": bad })).await, "BAD_USER_INPUT");
    }
}

/// Completing the reminders of a page and snoozing one past the next: the pending list, soonest
/// first, goes on after the completed ones; the done list, latest first, pages the same way.
async fn settling_reminders_while_paging_skips_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let mut ids = Vec::new();
    for hours in 1..=5 {
        ids.push(
            remind(&app, &alice, json!({ "remindAt": in_minutes(60 * hours), "note": format!("r{hours}") }))
                .await,
        );
    }
    let pending = List {
        app: &app,
        reader: &alice,
        field: "viewer.reminders",
        args: "",
        node: "note",
        name: |node| node["note"].as_str(),
    };
    let first = pending.page(json!({ "first": 2 })).await;
    assert_eq!(first.names, ["r1", "r2"]);

    for id in &ids[..2] {
        app.ok(&alice, COMPLETE, json!({ "id": id })).await;
    }
    let snooze = "mutation($id: ID!, $until: DateTime!) { snoozeReminder(id: $id, until: $until) { id } }";
    app.ok(&alice, snooze, json!({ "id": ids[2], "until": in_minutes(60 * 9) })).await;
    let next = pending.page(json!({ "first": 2, "after": first.cursors[1] })).await;
    assert_eq!(next.names, ["r4", "r5"], "after a completed reminder; the snoozed one moved on");
    assert_eq!(next.more, BOTH);
    let back = pending.page(json!({ "last": 5, "before": next.cursors[0] })).await;
    assert_eq!(back.names, Vec::<String>::new(), "nothing pending before r4 now");
    assert_eq!(back.more, (json!(false), json!(false)));
    let whole = pending.page(json!({ "last": 10 })).await;
    assert_eq!(whole.names, ["r4", "r5", "r3"]);

    // Done, latest first: r2, r1; completing r4 while paging puts it before them.
    let done = List { args: "filter: { status: DONE }, ", ..pending };
    let first = done.page(json!({ "first": 1 })).await;
    assert_eq!(first.names, ["r2"]);
    app.ok(&alice, COMPLETE, json!({ "id": ids[3] })).await;
    let next = done.page(json!({ "first": 1, "after": first.cursors[0] })).await;
    assert_eq!((next.names, next.more), (vec!["r1".to_owned()], (json!(true), json!(false))));
    let back = done.page(json!({ "last": 5, "before": first.cursors[0] })).await;
    assert_eq!((back.names, back.more), (vec!["r4".to_owned()], (json!(false), json!(true))));
}

/// Completing the reminders of a page, forgetting a saved message and adding a reminder:
/// each next page starts after the item its cursor named, across the two sections and both
/// ways.
async fn settling_later_items_while_paging_skips_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &bob, "deals", &[&alice]).await;
    let older = id_of(&send(&app, &bob, &room, "older").await);
    let newer = id_of(&send(&app, &bob, &room, "newer").await);
    for message in [&older, &newer] {
        app.ok(&alice, SAVE, json!({ "id": message, "f": true })).await;
    }
    let mut reminders = Vec::new();
    for hours in 1..=3 {
        reminders.push(
            remind(&app, &alice, json!({ "remindAt": in_minutes(60 * hours), "note": format!("r{hours}") }))
                .await,
        );
    }
    let later = List {
        app: &app,
        reader: &alice,
        field: "viewer.later",
        args: "",
        node: "reminder { note } message { body }",
        name: |node| node["reminder"]["note"].as_str().or(node["message"]["body"].as_str()),
    };
    let first = later.page(json!({ "first": 2 })).await;
    assert_eq!(first.names, ["r1", "r2"]);

    for id in &reminders[..2] {
        app.ok(&alice, COMPLETE, json!({ "id": id })).await;
    }
    remind(&app, &alice, json!({ "remindAt": in_minutes(30), "note": "r0" })).await;
    let next = later.page(json!({ "first": 2, "after": first.cursors[1] })).await;
    assert_eq!(next.names, ["r3", "newer"], "after a completed reminder, into the saved messages");
    assert_eq!(next.more, BOTH);

    app.ok(&alice, SAVE, json!({ "id": newer, "f": false })).await;
    let last = later.page(json!({ "first": 2, "after": next.cursors[1] })).await;
    assert_eq!(last.names, ["older"], "after a forgotten message");
    assert_eq!(last.more, (json!(true), json!(false)));
    let back = later.page(json!({ "last": 1, "before": next.cursors[1] })).await;
    assert_eq!(back.names, ["r3"], "back from a forgotten message into the reminders");
    let back = later.page(json!({ "last": 5, "before": next.cursors[0] })).await;
    assert_eq!(back.names, ["r0"], "added since, before the completed ones");
    assert_eq!(back.more, (json!(false), json!(true)));
    assert_eq!(later.page(json!({ "last": 10 })).await.names, ["r0", "r3", "older"]);
}

/// Deliveries made while an admin pages the log, newest first, go before its first page: the
/// next page repeats none of the first.
async fn deliveries_made_while_paging_repeat_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let general = create_channel(&app, &bob, "general", &[]).await;
    // Nothing listens on port 9: the deliveries fail and stay listed.
    let hook =
        "mutation($input: CreateOutgoingWebhookInput!) { createOutgoingWebhook(input: $input) { secret } }";
    let input = json!({ "url": "http://127.0.0.1:9/hook", "events": ["MESSAGE_ADDED"], "roomId": general });
    app.ok(&ada, hook, json!({ "input": input })).await;
    let mut sent = Vec::new();
    for i in 0..7 {
        sent.push(id_of(&send(&app, &bob, &general, &format!("d{i}")).await));
    }
    let log = List {
        app: &app,
        reader: &ada,
        field: "notificationDeliveries",
        args: "",
        node: "messageId",
        name: |node| node["messageId"].as_str(),
    };
    let first = log.page(json!({ "first": 2 })).await;
    assert_eq!(first.names, sent[5..7].iter().rev().cloned().collect::<Vec<_>>());
    for i in 7..9 {
        sent.push(id_of(&send(&app, &bob, &general, &format!("d{i}")).await));
    }
    let next = log.page(json!({ "first": 2, "after": first.cursors[1] })).await;
    assert_eq!(
        next.names,
        sent[3..5].iter().rev().cloned().collect::<Vec<_>>(),
        "the page after, not a repeat of the first"
    );
    let newer = log.page(json!({ "last": 5, "before": first.cursors[0] })).await;
    assert_eq!(newer.names, sent[7..9].iter().rev().cloned().collect::<Vec<_>>(), "made since");
}

/// One item at a time, forward and then backward: every item once, the same order both ways.
async fn walk_one_at_a_time(list: &List<'_>) -> Vec<String> {
    let (mut forward, mut after) = (Vec::new(), Value::Null);
    for _ in 0..20 {
        let page = list.page(json!({ "first": 1, "after": after })).await;
        forward.extend(page.names);
        if page.more.1 != json!(true) {
            break;
        }
        after = page.cursors[0].clone();
    }
    let (mut backward, mut before) = (Vec::new(), Value::Null);
    for _ in 0..20 {
        let page = list.page(json!({ "last": 1, "before": before })).await;
        backward.splice(0..0, page.names);
        if page.more.0 != json!(true) {
            break;
        }
        before = page.cursors[0].clone();
    }
    assert_eq!(backward, forward, "{}: walked backward", list.field);
    forward
}

/// Three reminders due at the same time (a "tomorrow at 9" preset), three a millionth, half
/// and a whole second later, and one in the leap second before: both lists that page by due
/// time walk them in order, one at a time, both ways.
async fn equal_times_and_fractions_of_a_second_page_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let minute = (Utc::now() + chrono::Duration::hours(2)).format("%Y-%m-%dT%H:%M").to_string();
    let earlier =
        (Utc::now() + chrono::Duration::hours(2) - chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M");
    let times = [
        ("tie-a", format!("{minute}:00Z")),
        ("tie-b", format!("{minute}:00Z")),
        ("tie-c", format!("{minute}:00Z")),
        ("micro", format!("{minute}:00.000001Z")),
        ("half", format!("{minute}:00.5Z")),
        ("second", format!("{minute}:01Z")),
        ("leap", format!("{earlier}:60Z")),
    ];
    for (note, at) in &times {
        remind(&app, &alice, json!({ "remindAt": at, "note": note })).await;
    }
    let reminders = List {
        app: &app,
        reader: &alice,
        field: "viewer.reminders",
        args: "",
        node: "note",
        name: |node| node["note"].as_str(),
    };
    let later = List {
        field: "viewer.later",
        node: "reminder { note }",
        name: |node| node["reminder"]["note"].as_str(),
        ..reminders
    };
    for list in [&reminders, &later] {
        let walked = walk_one_at_a_time(list).await;
        // PostgreSQL stores the leap second as the full minute (a fourth tie), SQLite as text
        // that sorts just before it: either way among the first four.
        let (first, rest) = walked.split_at(4);
        let mut first = first.to_vec();
        first.sort();
        assert_eq!(first, ["leap", "tie-a", "tie-b", "tie-c"], "{}: {walked:?}", list.field);
        assert_eq!(rest, ["micro", "half", "second"], "{}: {walked:?}", list.field);
    }
}

/// An agent works through an inbox's open conversations, most recent first, resolving each
/// page's: the next page starts after the last one resolved, and a conversation opened
/// meanwhile goes before the first page.
async fn resolving_conversations_while_paging_the_queue_skips_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (ada, sam) = (org.user_with_role("ada", "admin").await, org.user_with_role("sam", "agent").await);
    let (inbox_id, secret) = inbox(&app, &ada, json!({ "name": "SMS" }), &[&sam]).await;
    let mut opened = Vec::new();
    for i in 0..6 {
        let (status, stored) =
            post(&app, &inbox_id, &secret, &sms(&format!("q-{i}"), &format!("+4179000080{i}"), "help")).await;
        assert_eq!(status, 201, "{stored}");
        opened.push(stored["conversationId"].as_str().unwrap_or_default().to_owned());
    }
    let field = format!("supportInbox(id: \"{inbox_id}\").conversations");
    let queue = List {
        app: &app,
        reader: &sam,
        field: &field,
        args: "filter: { status: OPEN }, ",
        node: "id",
        name: |node| node["id"].as_str(),
    };
    let newest = |range: std::ops::Range<usize>| opened[range].iter().rev().cloned().collect::<Vec<_>>();
    let first = queue.page(json!({ "first": 2 })).await;
    assert_eq!(first.names, newest(4..6));

    let resolve = "mutation($id: ID!) { setConversationStatus(roomId: $id, status: RESOLVED) { id } }";
    for id in &opened[4..6] {
        app.ok(&sam, resolve, json!({ "id": id })).await;
    }
    let (status, stored) = post(&app, &inbox_id, &secret, &sms("q-6", "+41790000806", "me too")).await;
    assert_eq!(status, 201, "{stored}");
    let next = queue.page(json!({ "first": 2, "after": first.cursors[1] })).await;
    assert_eq!(next.names, newest(2..4), "after the resolved ones");
    let newer = queue.page(json!({ "last": 5, "before": next.cursors[0] })).await;
    assert_eq!(newer.names, [stored["conversationId"].as_str().unwrap_or_default()], "opened since");
}

/// Reading the rooms of an unread list's page, and joining the channels of a browse page: the
/// next page starts after them. Favorites first pages across its two parts both ways.
async fn reading_and_joining_rooms_while_paging_skips_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let mut talked = Vec::new();
    for i in 0..5 {
        let room = create_channel(&app, &bob, &format!("c{i}"), &[&alice]).await;
        send(&app, &bob, &room, "news").await;
        talked.push(room);
    }
    let unread = List {
        app: &app,
        reader: &alice,
        field: "viewer.rooms",
        args: "filter: { unread: true }, ",
        node: "name",
        name: |node| node["name"].as_str(),
    };
    let first = unread.page(json!({ "first": 2 })).await;
    assert_eq!(first.names, ["c4", "c3"]);
    let read = "mutation($id: ID!) { markRoomRead(roomId: $id) { unreadCount } }";
    for room in &talked[3..] {
        app.ok(&alice, read, json!({ "id": room })).await;
    }
    let next = unread.page(json!({ "first": 2, "after": first.cursors[1] })).await;
    assert_eq!(next.names, ["c2", "c1"], "after the rooms read");

    let mut browsable = Vec::new();
    for i in 0..5 {
        browsable.push(create_channel(&app, &bob, &format!("b{i}"), &[]).await);
    }
    let browse = List { field: "rooms", args: "filter: { joined: false }, ", ..unread };
    let first = browse.page(json!({ "first": 2 })).await;
    assert_eq!(first.names, ["b0", "b1"]);
    for room in &browsable[..2] {
        app.ok(&alice, "mutation($id: ID!) { joinRoom(roomId: $id) { id } }", json!({ "id": room })).await;
    }
    let next = browse.page(json!({ "first": 2, "after": first.cursors[1] })).await;
    assert_eq!(next.names, ["b2", "b3"], "after the channels joined");
    let back = browse.page(json!({ "last": 5, "before": next.cursors[0] })).await;
    assert_eq!((back.names.len(), back.more), (0, (json!(false), json!(false))), "the joined ones left");

    let star = "mutation($id: ID!) { setRoomFavorite(roomId: $id, favorite: true) { id } }";
    for room in [&talked[0], &talked[2]] {
        app.ok(&alice, star, json!({ "id": room })).await;
    }
    let favorites_first = List { field: "viewer.rooms", args: "orderBy: FAVORITES_FIRST, ", ..unread };
    // The channels joined have no message: their activity is their creation, after the news.
    let walked = walk_one_at_a_time(&favorites_first).await;
    assert_eq!(walked, ["c2", "c0", "b1", "b0", "c4", "c3", "c1"]);
    let cursor = |page: Page| page.cursors[0].clone();
    let browse_cursor = cursor(browse.page(json!({ "first": 1 })).await);
    let refused = "query($c: String) { viewer { rooms(after: $c) { edges { cursor } } } }";
    assert_error_code(&app.gql(&alice, refused, json!({ "c": browse_cursor })).await, "BAD_USER_INPUT");
}

/// Members who leave between two pages of a channel's member list: the next page starts
/// after the last one shown, gone or not.
async fn members_leaving_while_paging_skip_nobody(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let owner = org.user("owner").await;
    let mut people = Vec::new();
    for i in 0..5 {
        people.push(org.user(&format!("m{i}")).await);
    }
    let general = create_channel(&app, &owner, "general", &[]).await;
    let join = "mutation($id: ID!) { joinRoom(roomId: $id) { id } }";
    for person in &people {
        app.ok(person, join, json!({ "id": general })).await;
    }
    let field = format!("room(id: \"{general}\").members");
    let members = List {
        app: &app,
        reader: &owner,
        field: &field,
        args: "",
        node: "user { handle }",
        name: |node| node["user"]["handle"].as_str(),
    };
    let first = members.page(json!({ "first": 3 })).await;
    assert_eq!(first.names, ["owner", "m0", "m1"]);
    let leave = "mutation($id: ID!) { leaveRoom(roomId: $id) }";
    for person in &people[..2] {
        app.ok(person, leave, json!({ "id": general })).await;
    }
    let next = members.page(json!({ "first": 3, "after": first.cursors[2] })).await;
    assert_eq!(next.names, ["m2", "m3", "m4"], "after a member who left");
}

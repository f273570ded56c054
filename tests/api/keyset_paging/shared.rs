//! Lists others change too: the deliveries log, an inbox's queue, rooms and members.

use serde_json::json;

use super::{List, Page, walk_one_at_a_time};
use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::{Backend, assert_error_code, spawn_app};
use crate::support::{inbox, post, sms};

backend_tests!(
    deliveries_made_while_paging_repeat_nothing,
    resolving_conversations_while_paging_the_queue_skips_none,
    reading_and_joining_rooms_while_paging_skips_none,
    members_leaving_while_paging_skip_nobody,
    channels_of_one_name_page_by_id,
);

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
    // A cursor names a place in the order it came from only: another order refuses it.
    let cursor = |page: Page| page.cursors[0].clone();
    let by_activity = List { args: "", ..favorites_first };
    let cursors = [
        ("", cursor(browse.page(json!({ "first": 1 })).await)),
        ("", cursor(favorites_first.page(json!({ "first": 1 })).await)),
        ("orderBy: FAVORITES_FIRST, ", cursor(by_activity.page(json!({ "first": 1 })).await)),
        ("filter: { joined: false }, ", cursor(by_activity.page(json!({ "first": 1 })).await)),
    ];
    for (args, cursor) in cursors {
        let refused =
            format!("query($c: String) {{ viewer {{ rooms({args}after: $c) {{ edges {{ cursor }} }} }} }}");
        assert_error_code(&app.gql(&alice, &refused, json!({ "c": cursor })).await, "BAD_USER_INPUT");
    }
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

/// Archived channels may share a name (only live ones are unique): browsing them, the name
/// ties and their ids order them, one at a time, the same both ways.
async fn channels_of_one_name_page_by_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let mut archived = Vec::new();
    for _ in 0..3 {
        let room = create_channel(&app, &bob, "retro", &[]).await;
        app.ok(&bob, "mutation($id: ID!) { archiveRoom(roomId: $id) { id } }", json!({ "id": room })).await;
        archived.push(room);
    }
    let browse = List {
        app: &app,
        reader: &alice,
        field: "rooms",
        args: "filter: { joined: false, archived: true }, ",
        node: "id",
        name: |node| node["id"].as_str(),
    };
    let mut walked = walk_one_at_a_time(&browse).await;
    walked.sort();
    archived.sort();
    assert_eq!(walked, archived, "each once");
}

//! Sending and reading messages: `sendMessage` (fields, replies,
//! attachments, limits, access), `clientId` retries, the `messages`
//! connection in both directions and around a seq, the per-user send
//! rate limit, and the sender role a bot's messages carry.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::api::{
    all_messages, create_channel, create_private_channel, int, latest_seq, open_dm, room, send, send_input,
    seqs, try_send,
};
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestUser, assert_error_code, spawn_app, spawn_app_with};

backend_tests!(
    send_message_returns_the_stored_message,
    messages_page_by_seq_in_both_directions,
    body_and_attachment_limits_change_nothing,
    sending_requires_access,
    client_id_makes_retries_safe,
    send_rate_is_limited_per_user,
    a_bots_messages_carry_the_assistant_role,
);

const PAGE: &str = "query($room: ID!, $first: Int, $after: String, $last: Int, $before: String, $around: Int) { \
    messages(roomId: $room, first: $first, after: $after, last: $last, before: $before, aroundSeq: $around) { \
    edges { cursor node { seq } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

fn page_seqs(page: &Value) -> Vec<i64> {
    page["edges"].as_array().expect("edges").iter().map(|e| int(&e["node"]["seq"])).collect()
}

fn attachment(i: usize) -> Value {
    json!({ "name": format!("file{i}.png"), "url": format!("https://files.example/{i}.png"), "contentType": "image/png", "size": 1024 + i })
}

async fn send_message_returns_the_stored_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;

    let first = send(&app, &alice, &general, "hello").await;
    assert_eq!(first["seq"], 1);
    assert_eq!(first["body"], "hello");
    assert_eq!(first["author"], json!({ "id": alice.id, "handle": "alice" }));
    assert_eq!(first["room"]["id"], json!(general));
    assert_eq!((first["senderRole"].clone(), first["source"].clone()), (json!("USER"), json!("CHAT")));
    assert!(first["createdAt"].is_string() && first["editedAt"].is_null() && first["deletedAt"].is_null());
    assert!(first["replyTo"].is_null() && first["clientId"].is_null());
    assert_eq!(first["attachments"], json!([]));

    let files = vec![attachment(1), attachment(2)];
    let input =
        json!({ "roomId": general, "body": "see these", "replyToId": first["id"], "attachments": files });
    let reply = send_input(&app, &bob, input).await;
    assert_eq!(reply["seq"], 2);
    assert_eq!(reply["replyTo"], json!({ "id": first["id"], "seq": 1 }));
    assert_eq!(reply["attachments"], json!(files));

    let stored = all_messages(&app, &alice, &general).await;
    assert_eq!(seqs(&stored), vec![1, 2]);
    assert_eq!(stored[1], reply, "the list shows what sendMessage returned");
    let summary = room(&app, &alice, &general).await;
    assert_eq!(summary["lastMessage"]["id"], reply["id"]);
    assert_eq!(summary["latestSeq"], 2);
    assert!(summary["lastMessageAt"].is_string());
}

async fn messages_page_by_seq_in_both_directions(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let id = create_channel(&app, &alice, "log", &[]).await;
    for i in 1..=55 {
        send(&app, &alice, &id, &format!("message {i}")).await;
    }
    let page = |vars: Value| {
        let mut vars = vars;
        vars["room"] = json!(id);
        let app = &app;
        let alice = &alice;
        async move { app.ok(alice, PAGE, vars).await["messages"].clone() }
    };

    let default = page(json!({})).await;
    let default_seqs = page_seqs(&default);
    assert_eq!(default_seqs.len(), 50, "the default page is 50");
    assert!(default_seqs.windows(2).all(|w| w[1] == w[0] + 1), "ascending, consecutive: {default_seqs:?}");

    let first = page(json!({ "first": 3 })).await;
    assert_eq!(page_seqs(&first), vec![1, 2, 3]);
    assert_eq!(
        (first["pageInfo"]["hasNextPage"].clone(), first["pageInfo"]["hasPreviousPage"].clone()),
        (json!(true), json!(false))
    );
    let next = page(json!({ "first": 3, "after": first["pageInfo"]["endCursor"] })).await;
    assert_eq!(page_seqs(&next), vec![4, 5, 6]);
    let tail = page(json!({ "first": 100, "after": next["edges"][2]["cursor"] })).await;
    assert_eq!(page_seqs(&tail), (7..=55).collect::<Vec<_>>());
    assert_eq!(tail["pageInfo"]["hasNextPage"], false);

    let last = page(json!({ "last": 2 })).await;
    assert_eq!(page_seqs(&last), vec![54, 55]);
    assert_eq!(
        (last["pageInfo"]["hasPreviousPage"].clone(), last["pageInfo"]["hasNextPage"].clone()),
        (json!(true), json!(false))
    );
    let before = page(json!({ "last": 2, "before": last["pageInfo"]["startCursor"] })).await;
    assert_eq!(page_seqs(&before), vec![52, 53]);

    let around = page_seqs(&page(json!({ "around": 30 })).await);
    assert!(around.contains(&30) && around.len() <= 50, "aroundSeq 30 gave {around:?}");
    assert!(around.windows(2).all(|w| w[1] == w[0] + 1), "ascending, consecutive: {around:?}");
    assert!(
        around.iter().any(|s| *s < 30) && around.iter().any(|s| *s > 30),
        "around means both sides: {around:?}"
    );

    for vars in [
        json!({ "room": id, "first": 101 }),
        json!({ "room": id, "last": 101 }),
        json!({ "room": id, "around": 5, "after": "40" }),
        json!({ "room": id, "around": 5, "before": "40" }),
    ] {
        assert_error_code(&app.gql(&alice, PAGE, vars).await, "BAD_USER_INPUT");
    }
}

async fn body_and_attachment_limits_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let id = create_channel(&app, &alice, "limits", &[]).await;

    let too_many: Vec<Value> = (0..11).map(attachment).collect();
    let file = |name: &str, url: &str, content_type: &str| json!([{ "name": name, "url": url, "contentType": content_type, "size": 1 }]);
    let long = "n".repeat(256);
    let long_url = format!("https://files.example/{}", "u".repeat(8192));
    for input in [
        json!({ "roomId": id, "body": "" }),
        json!({ "roomId": id, "body": "  \n\t  " }),
        json!({ "roomId": id, "body": "x".repeat(10_001) }),
        json!({ "roomId": id, "body": "eleven files", "attachments": too_many }),
        json!({ "roomId": id, "body": "x", "attachments": file("a.png", "javascript:alert(1)", "image/png") }),
        json!({ "roomId": id, "body": "x", "attachments": file("a.png", "data:text/html,hi", "image/png") }),
        json!({ "roomId": id, "body": "x", "attachments": file("a.png", "files/a.png", "image/png") }),
        json!({ "roomId": id, "body": "x", "attachments": file("a.png", &long_url, "image/png") }),
        json!({ "roomId": id, "body": "x", "attachments": file(&long, "https://f.example/a", "image/png") }),
        json!({ "roomId": id, "body": "x", "attachments": file("a.png", "https://f.example/a", &long) }),
    ] {
        assert_error_code(&try_send(&app, &alice, input).await, "BAD_USER_INPUT");
    }
    assert_eq!(latest_seq(&app, &alice, &id).await, 0, "rejected messages are not stored");

    // The limit counts characters after trimming.
    let longest = format!("  {}  ", "é".repeat(10_000));
    assert_eq!(send(&app, &alice, &id, &longest).await["seq"], 1);
    let ten: Vec<Value> = (0..10).map(attachment).collect();
    let input = json!({ "roomId": id, "body": "ten files", "attachments": ten });
    assert_eq!(send_input(&app, &alice, input).await["attachments"].as_array().map(Vec::len), Some(10));
    let longest = file(&"n".repeat(255), "http://f.example/a", &"t".repeat(255));
    let input = json!({ "roomId": id, "body": "longest names", "attachments": longest });
    assert_eq!(send_input(&app, &alice, input).await["attachments"], longest);
}

async fn sending_requires_access(backend: Backend) {
    let app = spawn_app(backend).await;
    let (acme, globex) = (app.create_org().await, app.create_org().await);
    let (alice, bob, carol) = (acme.user("alice").await, acme.user("bob").await, acme.user("carol").await);
    let mallory = globex.user("mallory").await;
    let dm = open_dm(&app, &alice, &[&bob]).await;
    let theirs = create_channel(&app, &mallory, "theirs", &[]).await;

    assert_error_code(&try_send(&app, &carol, json!({ "roomId": dm, "body": "hi" })).await, "NOT_FOUND");
    assert_error_code(&try_send(&app, &alice, json!({ "roomId": theirs, "body": "hi" })).await, "NOT_FOUND");
    assert_error_code(
        &try_send(&app, &alice, json!({ "roomId": "room-1", "body": "hi" })).await,
        "BAD_USER_INPUT",
    );
    let unknown_reply = json!({ "roomId": dm, "body": "hi", "replyToId": uuid::Uuid::now_v7().to_string() });
    let reply = try_send(&app, &alice, unknown_reply).await;
    assert!(reply["errors"].is_array(), "a reply to an unknown message is refused: {reply:#}");
    // The parent must be in the same room, even one the sender reads.
    let general = create_channel(&app, &alice, "general", &[]).await;
    let parent = send(&app, &alice, &general, "in general").await;
    let elsewhere = json!({ "roomId": dm, "body": "hi", "replyToId": parent["id"] });
    assert_error_code(&try_send(&app, &alice, elsewhere).await, "NOT_FOUND");
    assert_eq!(latest_seq(&app, &alice, &dm).await, 0);
    assert_eq!(latest_seq(&app, &alice, &general).await, 1);
    assert_eq!(latest_seq(&app, &mallory, &theirs).await, 0);

    let messages = "query($id: ID!) { messages(roomId: $id) { edges { node { id } } } }";
    assert_error_code(&app.gql(&carol, messages, json!({ "id": dm })).await, "NOT_FOUND");
}

async fn client_id_makes_retries_safe(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    let other = create_channel(&app, &alice, "other", &[]).await;
    let input = json!({ "roomId": general, "body": "hello", "clientId": "c-1" });

    let original = send_input(&app, &alice, input.clone()).await;
    assert_eq!(original["clientId"], "c-1");
    let retried = send_input(&app, &alice, input.clone()).await;
    assert_eq!(retried, original, "a retry returns the stored message unchanged");
    assert_eq!(latest_seq(&app, &alice, &general).await, 1);

    let changed =
        try_send(&app, &alice, json!({ "roomId": general, "body": "hello!", "clientId": "c-1" })).await;
    assert_error_code(&changed, "CONFLICT");
    assert_eq!(latest_seq(&app, &alice, &general).await, 1);

    // A retry whose first answer was lost while the message was edited, or deleted, on
    // another device: the stored message is still its answer.
    let edit = "mutation($id: ID!) { editMessage(input: { messageId: $id, body: \"hello, all\" }) { id } }";
    app.ok(&alice, edit, json!({ "id": original["id"] })).await;
    let after_edit = send_input(&app, &alice, input.clone()).await;
    assert_eq!((&after_edit["id"], &after_edit["body"]), (&original["id"], &json!("hello, all")));
    let delete = "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }";
    app.ok(&alice, delete, json!({ "id": original["id"] })).await;
    let after_delete = send_input(&app, &alice, input.clone()).await;
    assert_eq!(after_delete["id"], original["id"]);
    assert_eq!(latest_seq(&app, &alice, &general).await, 1);

    // The key is (room, author, clientId).
    let bobs = send_input(&app, &bob, input).await;
    assert_eq!(bobs["seq"], 2);
    let elsewhere =
        send_input(&app, &alice, json!({ "roomId": other, "body": "hello", "clientId": "c-1" })).await;
    assert_eq!(elsewhere["seq"], 1);
    assert_ne!(elsewhere["id"], original["id"]);

    // Still its answer once the room was archived since (as a DM is when its other member is
    // deactivated): the message everyone sees is not reported as failed. A new one is refused.
    let last = json!({ "roomId": other, "body": "bye", "clientId": "c-2" });
    let sent = send_input(&app, &alice, last.clone()).await;
    app.ok(&alice, "mutation($id: ID!) { archiveRoom(roomId: $id) { id } }", json!({ "id": other })).await;
    assert_eq!(send_input(&app, &alice, last).await, sent, "the retry after archiving");
    let new_one = try_send(&app, &alice, json!({ "roomId": other, "body": "bye", "clientId": "c-3" })).await;
    assert_error_code(&new_one, "FORBIDDEN");

    // Not once the author was removed from a private room: the answer would show it to them.
    let team = create_private_channel(&app, &alice, "team", &[&bob]).await;
    let bobs = json!({ "roomId": team, "body": "in", "clientId": "c-4" });
    send_input(&app, &bob, bobs.clone()).await;
    let remove = "mutation($id: ID!, $user: ID!) { removeMember(roomId: $id, userId: $user) { id } }";
    app.ok(&alice, remove, json!({ "id": team, "user": bob.id })).await;
    assert_error_code(&try_send(&app, &bob, bobs).await, "NOT_FOUND");
}

async fn send_rate_is_limited_per_user(backend: Backend) {
    let limits = [("PARLEY_SEND_RATE_PER_SEC", "1"), ("PARLEY_SEND_BURST", "3")];
    let app = spawn_app_with(backend, &limits).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "general", &[&bob]).await;
    // Refused input spends nothing of the budget: a bad attachment is refused first.
    let bad =
        json!([{ "name": "a.png", "url": "https://x.test/a.png", "contentType": "image/png", "size": -1 }]);
    for _ in 0..3 {
        let refused =
            try_send(&app, &alice, json!({ "roomId": general, "body": "x", "attachments": bad })).await;
        assert_error_code(&refused, "BAD_USER_INPUT");
    }

    let mut accepted = 0;
    let mut limited = 0;
    for i in 0..6 {
        let response =
            try_send(&app, &alice, json!({ "roomId": general, "body": format!("spam {i}") })).await;
        if response["errors"].is_array() {
            assert_error_code(&response, "RATE_LIMITED");
            limited += 1;
        } else {
            accepted += 1;
        }
    }
    // A burst of 3, plus at most one token refilled while we were sending.
    assert!((3..=4).contains(&accepted) && limited >= 2, "accepted {accepted}, limited {limited}");
    assert_eq!(latest_seq(&app, &alice, &general).await, accepted, "limited sends stored nothing");

    assert_eq!(int(&send(&app, &bob, &general, "my own bucket").await["seq"]), accepted + 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&app, &alice, &general, "refilled").await;
}

/// A bot is an AI assistant: what it sends is stored, answered, listed and delivered with the
/// sender role `ASSISTANT`, a person's with `USER`.
async fn a_bots_messages_carry_the_assistant_role(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (admin, alice) = (org.user_with_role("admin", "admin").await, org.user("alice").await);
    let create = "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }";
    let input = json!({ "handle": "helper", "displayName": "Helper", "kind": "BOT" });
    let id = app.ok(&admin, create, json!({ "input": input })).await["createUser"]["id"].clone();
    let token = app.cli(&["token", "--user", "helper", "--org", &org.slug]).await;
    let bot = TestUser { id: id.as_str().expect("an id").to_owned(), handle: "helper".into(), token };
    let general = create_channel(&app, &alice, "general", &[&bot]).await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let feed = "subscription($room: ID) { messageAdded(roomId: $room) { body senderRole } }";
    let mut frames = ws.subscribe("feed", feed, json!({ "room": general })).await;

    let send = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { senderRole } }";
    let answered =
        app.ok(&bot, send, json!({ "input": { "roomId": general, "body": "How can I help?" } })).await;
    assert_eq!(answered["sendMessage"]["senderRole"], "ASSISTANT");
    app.ok(&alice, send, json!({ "input": { "roomId": general, "body": "Summarise" } })).await;

    let bodies_and_roles = json!([
        { "body": "How can I help?", "senderRole": "ASSISTANT" },
        { "body": "Summarise", "senderRole": "USER" },
    ]);
    let delivered = json!([frames.next("messageAdded").await, frames.next("messageAdded").await]);
    assert_eq!(delivered, bodies_and_roles, "delivered with their roles");
    let list =
        "query($room: ID!) { messages(roomId: $room, first: 10) { edges { node { body senderRole } } } }";
    let listed = app.ok(&alice, list, json!({ "room": general })).await;
    let nodes: Vec<Value> =
        listed["messages"]["edges"].as_array().expect("edges").iter().map(|e| e["node"].clone()).collect();
    assert_eq!(json!(nodes), bodies_and_roles, "stored with their roles");
}

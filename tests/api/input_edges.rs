//! Inputs at the edges: wildcard characters in searches, cursors that do not fit, paging
//! arguments on their own, writes into archived rooms, and queries too deep, too costly,
//! too large once their fragments are spread, or with too many aliases (fragments counted per
//! spread, pages weighed by their size), pages past the largest configured, text holding
//! NUL, and arguments that do not parse into their type. Each is a clear error or the
//! literal answer, and changes nothing.

use serde_json::json;

use crate::helpers::api::{create_channel, edge_ids, send, seqs};
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, spawn_app, spawn_app_with};

backend_tests!(
    search_matches_wildcards_literally,
    oversized_cursors_are_bad_input,
    paging_follows_the_cursor_given,
    archived_rooms_refuse_deletions_and_removals,
    queries_past_the_depth_complexity_or_alias_limits_are_refused,
    pages_stop_at_the_largest_page_configured,
    text_holding_nul_is_refused_and_changes_nothing,
    arguments_that_do_not_parse_are_bad_input,
);

const USERS: &str = "query($search: String) { users(search: $search) { edges { node { id handle } } } }";
const MESSAGES: &str = "query($room: ID!, $first: Int, $after: String, $last: Int, $before: String, $around: Int) { \
    messages(roomId: $room, first: $first, after: $after, last: $last, before: $before, aroundSeq: $around) { \
    edges { node { seq } } } }";

async fn search_matches_wildcards_literally(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let (john, johnx) = (org.user("john_doe").await, org.user("johnxdoe").await);

    let found = app.ok(&alice, USERS, json!({ "search": "john_d" })).await;
    assert_eq!(edge_ids(&found["users"]), vec![john.id.clone()], "`_` is a character, not a wildcard");
    let found = app.ok(&alice, USERS, json!({ "search": "JOHN" })).await;
    assert_eq!(edge_ids(&found["users"]).len(), 2, "case-insensitive: {found}");
    assert!(edge_ids(&found["users"]).contains(&johnx.id));
    let found = app.ok(&alice, USERS, json!({ "search": "%" })).await;
    assert!(edge_ids(&found["users"]).is_empty(), "`%` matches only itself: {found}");
}

async fn oversized_cursors_are_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let rooms = "query($after: String) { rooms(after: $after) { edges { cursor } } }";
    for after in ["9223372036854775807", "18446744073709551615", "-1", "x"] {
        assert_error_code(&app.gql(&alice, rooms, json!({ "after": after })).await, "BAD_USER_INPUT");
        let users = "query($after: String) { users(after: $after) { edges { cursor } } }";
        assert_error_code(&app.gql(&alice, users, json!({ "after": after })).await, "BAD_USER_INPUT");
    }
    let around = app.gql(&alice, MESSAGES, json!({ "room": room, "around": i64::MIN })).await;
    assert_error_code(&around, "BAD_USER_INPUT");
    let mixed = app.gql(&alice, MESSAGES, json!({ "room": room, "first": 5, "before": "3" })).await;
    assert_error_code(&mixed, "BAD_USER_INPUT");
}

async fn paging_follows_the_cursor_given(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    for i in 1..=6 {
        send(&app, &alice, &room, &format!("m{i}")).await;
    }
    let page = |data: serde_json::Value| {
        let edges = data["messages"]["edges"].as_array().expect("edges").clone();
        seqs(&edges.iter().map(|e| e["node"].clone()).collect::<Vec<_>>())
    };
    let after = app.ok(&alice, MESSAGES, json!({ "room": room, "after": "4" })).await;
    assert_eq!(page(after), vec![5, 6], "`after` alone pages forward from the cursor");
    let before = app.ok(&alice, MESSAGES, json!({ "room": room, "before": "3" })).await;
    assert_eq!(page(before), vec![1, 2], "`before` alone pages backward from the cursor");
}

async fn archived_rooms_refuse_deletions_and_removals(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "general", &[&bob]).await;
    let message = send(&app, &alice, &room, "keep me").await;
    app.ok(&alice, "mutation($id: ID!) { archiveRoom(roomId: $id) { id } }", json!({ "id": room })).await;

    let delete = "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }";
    assert_error_code(&app.gql(&alice, delete, json!({ "id": message["id"] })).await, "FORBIDDEN");
    let remove = "mutation($room: ID!, $user: ID!) { removeMember(roomId: $room, userId: $user) { id } }";
    assert_error_code(&app.gql(&alice, remove, json!({ "room": room, "user": bob.id })).await, "FORBIDDEN");

    let history = app.ok(&bob, MESSAGES, json!({ "room": room })).await;
    assert_eq!(history["messages"]["edges"][0]["node"]["seq"], 1, "still there, still readable by bob");
    let body = app
        .ok(
            &bob,
            "query($id: ID!) { node(id: $id) { ... on Message { body } } }",
            json!({ "id": message["id"] }),
        )
        .await;
    assert_eq!(body["node"]["body"], "keep me", "not deleted");
}

async fn queries_past_the_depth_complexity_or_alias_limits_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let refused = async |app: &TestApp, user: &TestUser, query: &str, why: &str| {
        let answer = app.gql(user, query, json!({})).await;
        assert_error_code(&answer, "BAD_USER_INPUT");
        assert!(answer.get("data").is_none_or(serde_json::Value::is_null), "{why}: nothing runs: {answer}");
    };

    // Depth 19 (the limit is 16): a message's room's last message's room …
    let nested = "lastMessage { room { ".repeat(7);
    let deep = format!(
        "{{ viewer {{ rooms(first: 1) {{ edges {{ node {{ {nested} id {} }} }} }} }} }}",
        "} } ".repeat(7)
    );
    refused(&app, &alice, &deep, "too deep").await;

    // Aliases: 31 of them (the limit is 30), written out or run through a fragment spread
    // three times (3 + 3 × 10).
    let aliased: Vec<String> = (0..31).map(|i| format!("a{i}: handle")).collect();
    refused(&app, &alice, &format!("{{ viewer {{ {} }} }}", aliased.join(" ")), "31 aliases").await;
    let ten: Vec<String> = (0..10).map(|i| format!("h{i}: handle")).collect();
    let fragment = format!("fragment Ten on Viewer {{ {} }}", ten.join(" "));
    let thrice =
        format!("{{ a: viewer {{ ...Ten }} b: viewer {{ ...Ten }} c: viewer {{ ...Ten }} }} {fragment}");
    refused(&app, &alice, &thrice, "33 run").await;
    let twice = format!("{{ a: viewer {{ ...Ten }} b: viewer {{ ...Ten }} }} {fragment}");
    let answer = app.ok(&alice, &twice, json!({})).await;
    assert_eq!(
        (answer["a"]["h9"].as_str(), answer["b"]["h0"].as_str()),
        (Some("alice"), Some("alice")),
        "22 run"
    );

    // A document holding two operations of 20 aliases each (a GraphiQL tab, say) runs either:
    // the limit is per operation, not for the document's sum.
    let twenty = |name: &str| {
        let aliased: Vec<String> = (0..20).map(|i| format!("{name}{i}: handle")).collect();
        format!("query {name} {{ viewer {{ {} }} }}", aliased.join(" "))
    };
    let tab = format!("{} {}", twenty("A"), twenty("B"));
    for operation in ["A", "B"] {
        let body = json!({ "query": tab, "operationName": operation });
        let answer: serde_json::Value =
            app.post_graphql(Some(&alice.token), &body).await.json().await.expect("a JSON answer");
        assert_eq!(answer["data"]["viewer"][format!("{operation}19")], "alice", "{answer}");
    }

    // Fragments each spreading the next twice, 28 deep (within every depth limit): 2²⁷ fields
    // once spread, refused before anything walks them all.
    let mut bomb = String::from("{ viewer { ...F0 } } fragment F27 on Viewer { handle }");
    for i in 0..27 {
        bomb.push_str(&format!(" fragment F{i} on Viewer {{ ...F{next} ...F{next} }}", next = i + 1));
    }
    refused(&app, &alice, &bomb, "a fragment bomb").await;

    // Fragments that spread each other are refused, not followed for ever.
    let cycle = "{ viewer { ...A } } fragment A on Viewer { handle ...B } fragment B on Viewer { id ...A }";
    refused(&app, &alice, cycle, "a fragment cycle").await;

    // Complexity: one per field, and what a page selects once per item it may hold. 100
    // rooms × 100 members of six fields is 60 201 (over the default 50 000), whether the
    // size is written out or a variable's; pages of 10 members fit.
    let pages = "query($n: Int) { rooms(first: 100) { nodes { members(first: $n) { \
        nodes { role lastReadSeq user { id handle } } } } } }";
    let answer = app.gql(&alice, pages, json!({ "n": 100 })).await;
    assert_error_code(&answer, "BAD_USER_INPUT");
    assert!(
        answer.get("data").is_none_or(serde_json::Value::is_null),
        "pages of pages: nothing runs: {answer}"
    );
    refused(&app, &alice, &pages.replace("$n", "100"), "pages of pages, written out").await;
    let answer = app.ok(&alice, pages, json!({ "n": 10 })).await;
    assert!(answer["rooms"]["nodes"].is_array(), "smaller pages fit: {answer}");
    // The document passed with one variable's value; with the other it is still refused.
    let answer = app.gql(&alice, pages, json!({ "n": 100 })).await;
    assert_error_code(&answer, "BAD_USER_INPUT");
    assert!(answer.get("data").is_none_or(serde_json::Value::is_null), "still refused: {answer}");

    // With a limit of 12: a page of 2 users' id and handle costs 1 + 2 × 4, a page of 3
    // costs 13, and so does any page left at its default of 50.
    let limits = [
        ("PARLEY_MAX_QUERY_COMPLEXITY", "12"),
        ("PARLEY_MAX_QUERY_FIELDS", "10"),
        ("PARLEY_MAX_QUERY_BYTES", "300"),
    ];
    let strict = spawn_app_with(backend, &limits).await;
    let bob = strict.create_org().await.user("bob").await;
    let page = |first: &str| format!("{{ users{first} {{ edges {{ node {{ id handle }} }} }} }}");
    refused(&strict, &bob, &page("(first: 3)"), "three users").await;
    refused(&strict, &bob, &page(""), "a default page").await;
    assert_eq!(
        strict.ok(&bob, &page("(first: 2)"), json!({})).await["users"]["edges"][0]["node"]["handle"],
        "bob"
    );

    // A document longer than 300 bytes is refused before anything parses it: over HTTP with
    // a token or without, and as a subscription.
    let padded = |bytes: usize| {
        let query = "{ viewer { handle } }";
        format!("{query}{}", " ".repeat(bytes - query.len()))
    };
    assert_eq!(strict.ok(&bob, &padded(300), json!({})).await["viewer"]["handle"], "bob");
    refused(&strict, &bob, &padded(301), "301 bytes").await;
    let anonymous = strict.gql_token(None, &padded(301), json!({})).await;
    assert_error_code(&anonymous, "BAD_USER_INPUT");
    let message = anonymous["errors"][0]["message"].as_str().unwrap_or_default();
    assert_eq!(message, "the query is 301 bytes long; at most 300 are allowed", "{anonymous}");
    let mut client = WsClient::connect(&strict, &bob).await;
    let long = format!("subscription {{ messageAdded {{ seq }} }}{}", " ".repeat(300));
    let mut subscription = client.subscribe("1", &long, json!({})).await;
    assert_eq!(subscription.next_error_code().await, "BAD_USER_INPUT");

    // Fields count over the whole document (10 here), each operation's 4 included: every
    // operation is walked before one runs.
    let operations = |n: usize| {
        (0..n)
            .map(|i| format!("query Q{i} {{ viewer {{ id handle displayName }} }}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (n, allowed) in [(2, true), (3, false)] {
        let body = json!({ "query": operations(n), "operationName": "Q0" });
        let answer: serde_json::Value =
            strict.post_graphql(Some(&bob.token), &body).await.json().await.expect("a JSON answer");
        if allowed {
            assert_eq!(answer["data"]["viewer"]["handle"], "bob", "{answer}");
        } else {
            assert_error_code(&answer, "BAD_USER_INPUT");
            let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.contains("12 fields"), "refused by the field cap: {answer}");
        }
    }
}

/// `PARLEY_MAX_PAGE_SIZE` bounds every page, and a page asked for with no size stops there too.
async fn pages_stop_at_the_largest_page_configured(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_MAX_PAGE_SIZE", "3")]).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    for name in ["bob", "carol", "dave"] {
        org.user(name).await;
    }
    let room = create_channel(&app, &alice, "general", &[]).await;
    for i in 0..4 {
        send(&app, &alice, &room, &format!("m{i}")).await;
    }

    let answer = app.gql(&alice, "{ users(first: 4) { edges { node { id } } } }", json!({})).await;
    assert_error_code(&answer, "BAD_USER_INPUT");
    assert!(answer["errors"][0]["message"].as_str().is_some_and(|m| m.contains("at most 3")), "{answer}");
    assert_error_code(&app.gql(&alice, MESSAGES, json!({ "room": room, "last": 4 })).await, "BAD_USER_INPUT");

    let users =
        app.ok(&alice, "{ users { edges { node { id } } pageInfo { hasNextPage } } }", json!({})).await;
    assert_eq!(users["users"]["edges"].as_array().map(Vec::len), Some(3), "{users}");
    assert_eq!(users["users"]["pageInfo"]["hasNextPage"], true);
    let newest = app.ok(&alice, MESSAGES, json!({ "room": room, "last": 3 })).await;
    let edges = newest["messages"]["edges"].as_array().cloned().unwrap_or_default();
    assert_eq!(seqs(&edges.iter().map(|e| e["node"].clone()).collect::<Vec<_>>()), vec![2, 3, 4]);
}

/// PostgreSQL's `text` cannot hold U+0000: before, a body holding it failed as INTERNAL there
/// and was stored on SQLite. Now it is refused alike, in variables and in literals, before
/// anything runs; a backslash followed by `u0000` is plain text.
async fn text_holding_nul_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let send = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { body } }";
    let refused = app.gql(&alice, send, json!({ "input": { "roomId": room, "body": "a\u{0}b" } })).await;
    assert_error_code(&refused, "BAD_USER_INPUT");
    assert!(refused["errors"][0]["message"].as_str().is_some_and(|m| m.contains("NUL")), "{refused}");
    let literal =
        format!(r#"mutation {{ sendMessage(input: {{ roomId: "{room}", body: "a\u0000b" }}) {{ body }} }}"#);
    assert_error_code(&app.gql(&alice, &literal, json!({})).await, "BAD_USER_INPUT");
    let search = "query($q: String!) { searchMessages(query: $q) { edges { node { id } } } }";
    assert_error_code(&app.gql(&alice, search, json!({ "q": "from:@alice\u{0}" })).await, "BAD_USER_INPUT");
    let rename = "mutation($name: String!) { updateProfile(input: { displayName: $name }) { displayName } }";
    assert_error_code(&app.gql(&alice, rename, json!({ "name": "Al\u{0}ice" })).await, "BAD_USER_INPUT");
    // Over WebSocket too: an operation's variables, and a literal of a document not seen yet.
    let mut ws = WsClient::connect(&app, &alice).await;
    let mut over_ws =
        ws.subscribe_raw("v", send, json!({ "input": { "roomId": room, "body": "a\u{0}b" } })).await;
    assert_eq!(over_ws.next_error_code().await, "BAD_USER_INPUT");
    let live = "subscription($room: ID!) { messageAdded(roomId: $room) { body } }";
    let mut subscription = ws.subscribe("l", live, json!({ "room": room })).await;
    let ws_literal =
        format!(r#"mutation {{ sendMessage(input: {{ roomId: "{room}", body: "w\u0000" }}) {{ body }} }}"#);
    assert_eq!(ws.subscribe_raw("w", &ws_literal, json!({})).await.next_error_code().await, "BAD_USER_INPUT");
    ws.settle().await;

    let history = "query($room: ID!) { messages(roomId: $room) { edges { node { body } } } }";
    let stored = app.ok(&alice, history, json!({ "room": room })).await;
    assert_eq!(stored["messages"]["edges"], json!([]), "nothing was stored");
    let text = r"a \u0000 b";
    let sent = app.ok(&alice, send, json!({ "input": { "roomId": room, "body": text } })).await;
    assert_eq!(sent["sendMessage"]["body"], text, "a backslash and `u0000` are kept as typed");
    assert_eq!(subscription.next("messageAdded").await["body"], text, "the refused sends published nothing");
}

/// A `DateTime` that is no date and an `Int` past 32 bits pass validation and are refused as
/// the field runs: still `BAD_USER_INPUT`, as variables and as literals, and nothing changes.
async fn arguments_that_do_not_parse_are_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let mute =
        "mutation($room: ID!, $until: DateTime) { muteRoom(roomId: $room, until: $until) { isMuted } }";
    let refused = app.gql(&alice, mute, json!({ "room": room, "until": "tomorrow" })).await;
    assert_error_code(&refused, "BAD_USER_INPUT");
    let literal = format!("mutation {{ muteRoom(roomId: \"{room}\", until: \"soon\") {{ isMuted }} }}");
    assert_error_code(&app.gql(&alice, &literal, json!({})).await, "BAD_USER_INPUT");
    let muted = app.ok(&alice, "query($id: ID!) { room(id: $id) { isMuted } }", json!({ "id": room })).await;
    assert_eq!(muted["room"]["isMuted"], false, "nothing changed");

    let rooms = "query($first: Int) { viewer { rooms(first: $first) { edges { node { id } } } } }";
    let too_large = app.gql(&alice, rooms, json!({ "first": 2_147_483_648_i64 })).await;
    assert_error_code(&too_large, "BAD_USER_INPUT");
}

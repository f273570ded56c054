//! Search: `searchMessages` ranks, highlights, parses the query syntax users know, pages with
//! stable cursors, sees only what the viewer may read, forgets deleted messages and re-indexes
//! edits, ranks by the message alone (another organisation's words move nothing); rooms and users are found by name in any case and script. The same assertions run
//! on SQLite (FTS5) and PostgreSQL (tsvector); `window` holds the recency window's cases.

mod window;

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, create_private_channel, id_of, open_dm, send, send_input};
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, data, spawn_app};

backend_tests!(
    search_ranks_and_highlights_matches,
    search_understands_phrases_exclusions_alternatives_prefixes_and_operators,
    search_filters_narrow_the_hits,
    search_sees_only_readable_messages_and_follows_edits_and_deletions,
    search_treats_engine_syntax_as_words_and_refuses_bad_input,
    search_pages_walk_every_hit_once,
    another_organisations_messages_move_no_rank,
    rooms_and_users_are_found_in_any_case_and_script,
);

const SEARCH: &str = "query($q: String!, $filter: MessageSearchFilter, $first: Int, $after: String) { \
    searchMessages(query: $q, filter: $filter, first: $first, after: $after) { \
      edges { cursor rank snippet node { id body room { id } } } pageInfo { hasNextPage endCursor } } }";

/// The bodies of every hit for `query`, best first, walking pages of `first`.
async fn hits(app: &TestApp, viewer: &TestUser, query: &str, filter: Value, first: i64) -> Vec<String> {
    let (mut bodies, mut after) = (Vec::new(), Value::Null);
    loop {
        let variables = json!({ "q": query, "filter": filter, "first": first, "after": after });
        let page = &app.ok(viewer, SEARCH, variables).await["searchMessages"];
        for edge in page["edges"].as_array().expect("edges") {
            bodies.push(edge["node"]["body"].as_str().expect("a body").to_owned());
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return bodies;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

async fn found(app: &TestApp, viewer: &TestUser, query: &str) -> Vec<String> {
    hits(app, viewer, query, Value::Null, 50).await
}

/// Messages that match none of the tests' queries: a corpus where the searched words are
/// rare, as they are in a real one (BM25 gives words in over half the messages no weight).
async fn filler(app: &TestApp, author: &TestUser, room: &str) {
    for body in
        ["good morning", "lunch at noon?", "see you tomorrow", "thanks!", "on my way", "ok", "sounds good"]
    {
        send(app, author, room, body).await;
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn search_ranks_and_highlights_matches(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "engineering", &[&bob]).await;
    filler(&app, &alice, &room).await;
    let close = "rust async runtime";
    let far = "rust is a language we picked, and it is fast, and later we went async everywhere";
    let dense = "async rust async rust";
    for body in [far, close, dense, "rust only", "<b>rust</b> & async tricks"] {
        send(&app, &bob, &room, body).await;
    }

    let ranked = found(&app, &alice, "rust async").await;
    assert_eq!(ranked.len(), 4, "every message with both words, none with one: {ranked:?}");
    let position = |body: &str| ranked.iter().position(|b| b == body).expect("a hit");
    assert!(position(dense) < position(close), "more occurrences rank higher: {ranked:?}");
    assert!(position(close) < position(far), "words close together rank higher: {ranked:?}");

    let response = app.ok(&alice, SEARCH, json!({ "q": "RUST Tricks" })).await;
    let edge = &response["searchMessages"]["edges"][0];
    let snippet = edge["snippet"].as_str().expect("a snippet");
    assert!(snippet.contains("<mark>rust</mark>"), "{snippet}");
    assert!(snippet.contains("<mark>tricks</mark>"), "{snippet}");
    // The tags are escaped (SQLite) or left out (PostgreSQL's headline parser drops them), never
    // passed through.
    assert!(snippet.contains("&amp;") && !snippet.contains("<b>"), "the rest is escaped: {snippet}");
    assert!(edge["rank"].as_f64().is_some_and(|r| r > 0.0), "{edge}");
    assert_eq!(edge["node"]["room"]["id"], room);
}

async fn search_understands_phrases_exclusions_alternatives_prefixes_and_operators(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&app, &alice, "General", &[&bob]).await;
    let ops = create_channel(&app, &alice, "ops", &[&bob]).await;
    filler(&app, &alice, &general).await;
    send(&app, &alice, &general, "deploy the release notes").await;
    send(&app, &bob, &general, "notes about the release").await;
    send(&app, &bob, &ops, "deploy staging tonight").await;
    send(&app, &alice, &ops, "deployment finished").await;

    assert_eq!(found(&app, &bob, "\"release notes\"").await, ["deploy the release notes"]);
    assert_eq!(
        sorted(found(&app, &bob, "release notes").await),
        ["deploy the release notes", "notes about the release"]
    );
    assert_eq!(found(&app, &bob, "deploy -staging").await, ["deploy the release notes"]);
    assert_eq!(found(&app, &bob, "release -\"release notes\"").await, ["notes about the release"]);
    assert_eq!(
        sorted(found(&app, &bob, "staging OR finished").await),
        ["deploy staging tonight", "deployment finished"]
    );
    assert_eq!(
        sorted(found(&app, &bob, "deploy*").await),
        ["deploy staging tonight", "deploy the release notes", "deployment finished"]
    );
    assert_eq!(found(&app, &bob, "deploy").await.len(), 2, "without `*` a word is whole");
    assert_eq!(
        sorted(found(&app, &alice, "from:@bob release").await),
        ["notes about the release"],
        "from: narrows to an author"
    );
    assert_eq!(
        sorted(found(&app, &alice, "in:#general deploy*").await),
        ["deploy the release notes"],
        "in: narrows to a channel, in any case"
    );
    assert_eq!(
        found(&app, &alice, "from:@bob in:#ops").await,
        ["deploy staging tonight"],
        "operators alone list the matching messages"
    );
    assert_eq!(found(&app, &alice, "from:@nobody deploy").await, Vec::<String>::new());
}

async fn search_filters_narrow_the_hits(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let channel = create_channel(&app, &alice, "plans", &[&bob]).await;
    let dm = open_dm(&app, &alice, &[&bob]).await;
    filler(&app, &alice, &channel).await;
    send(&app, &alice, &channel, "budget draft one").await;
    let attachment = json!({ "name": "b.pdf", "url": "https://files.example/b.pdf", "contentType": "application/pdf", "size": 10 });
    send_input(
        &app,
        &bob,
        json!({ "roomId": channel, "body": "budget draft two", "attachments": [attachment] }),
    )
    .await;
    let dm_message = send(&app, &bob, &dm, "budget draft three").await;
    let cutoff = dm_message["createdAt"].as_str().expect("createdAt").to_owned();

    let narrowed = |filter: Value| {
        let (app, alice) = (&app, &alice);
        async move { sorted(hits(app, alice, "budget", filter, 50).await) }
    };
    assert_eq!(narrowed(json!({ "roomId": dm })).await, ["budget draft three"]);
    let short = "query($q: String!, $room: ID) { searchMessages(query: $q, roomId: $room) { edges { node { body } } } }";
    let page = app.ok(&alice, short, json!({ "q": "budget", "room": dm })).await;
    assert_eq!(
        page["searchMessages"]["edges"][0]["node"]["body"], "budget draft three",
        "roomId: the SPEC's shorthand"
    );
    let both = "query($room: ID, $other: ID) { searchMessages(query: \"budget\", roomId: $room, filter: { roomId: $other }) { edges { cursor } } }";
    assert_error_code(
        &app.gql(&alice, both, json!({ "room": dm, "other": channel })).await,
        "BAD_USER_INPUT",
    );
    assert_eq!(narrowed(json!({ "authorId": alice.id })).await, ["budget draft one"]);
    assert_eq!(narrowed(json!({ "kind": "DIRECT" })).await, ["budget draft three"]);
    assert_eq!(narrowed(json!({ "hasAttachments": true })).await, ["budget draft two"]);
    assert_eq!(
        narrowed(json!({ "hasAttachments": false })).await,
        ["budget draft one", "budget draft three"]
    );
    assert_eq!(narrowed(json!({ "before": cutoff })).await, ["budget draft one", "budget draft two"]);
    assert_eq!(
        narrowed(json!({ "after": "2000-01-01T00:00:00Z", "kind": "CHANNEL", "authorId": bob.id })).await,
        ["budget draft two"]
    );
}

/// A hit's rank is the message's own: what another organisation writes (how often it uses
/// the word searched) changes no rank, nor any cursor. Before, SQLite's `bm25()` weighed the
/// word by the whole index, every organisation's.
async fn another_organisations_messages_move_no_rank(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let eve = app.create_org().await.user("eve").await;
    let ours = create_channel(&app, &alice, "ours", &[]).await;
    let theirs = create_channel(&app, &eve, "theirs", &[]).await;
    // The private-use characters are what the engine marks matches with: a body holding
    // them counts no match more.
    let marked = format!("falcon {}", "\u{E000}".repeat(8));
    for body in ["falcon landing at noon", "the falcon and the falcon nest", "no bird here", &marked] {
        send(&app, &alice, &ours, body).await;
    }
    let query = "query { searchMessages(query: \"falcon\") { edges { rank cursor node { body } } } }";
    let before = app.ok(&alice, query, json!({})).await["searchMessages"]["edges"].clone();
    assert_eq!(before.as_array().map(Vec::len), Some(3), "{before}");
    assert_eq!(before[0]["node"]["body"], "the falcon and the falcon nest", "two matches rank higher");

    for n in 0..12 {
        send(&app, &eve, &theirs, &format!("falcon report {n}")).await;
    }
    let after = app.ok(&alice, query, json!({})).await["searchMessages"]["edges"].clone();
    assert_eq!(after, before, "another organisation's messages changed a rank");
}

async fn search_sees_only_readable_messages_and_follows_edits_and_deletions(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let public = create_channel(&app, &alice, "town-square", &[]).await;
    let private = create_private_channel(&app, &alice, "secret-plans", &[&bob]).await;
    filler(&app, &alice, &public).await;
    send(&app, &alice, &public, "zebra crossing in public").await;
    send(&app, &alice, &private, "zebra crossing in private").await;
    let other = app.create_org().await;
    let mallory = other.user("mallory").await;
    let elsewhere = create_channel(&app, &mallory, "town-square", &[]).await;
    send(&app, &mallory, &elsewhere, "zebra crossing elsewhere").await;

    assert_eq!(
        sorted(found(&app, &bob, "zebra").await),
        ["zebra crossing in private", "zebra crossing in public"]
    );
    assert_eq!(
        found(&app, &carol, "zebra").await,
        ["zebra crossing in public"],
        "public channels, not joined"
    );
    assert_eq!(
        found(&app, &mallory, "zebra").await,
        ["zebra crossing elsewhere"],
        "never another organisation's"
    );
    let probe = hits(&app, &carol, "zebra", json!({ "roomId": private }), 50).await;
    assert_eq!(probe, Vec::<String>::new(), "a private room's id reveals nothing");

    let message = send(&app, &alice, &public, "quokka sighting").await;
    let id = id_of(&message);
    app.ok(
        &alice,
        "mutation($id: ID!) { editMessage(input: { messageId: $id, body: \"wombat sighting\" }) { id } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(found(&app, &carol, "quokka").await, Vec::<String>::new(), "an edit re-indexes");
    assert_eq!(found(&app, &carol, "wombat").await, ["wombat sighting"]);
    app.ok(&alice, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": id })).await;
    assert_eq!(found(&app, &carol, "wombat").await, Vec::<String>::new(), "deleted messages never match");
    assert_eq!(found(&app, &carol, "from:@alice sighting").await, Vec::<String>::new());
}

async fn search_treats_engine_syntax_as_words_and_refuses_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "lab", &[]).await;
    filler(&app, &alice, &room).await;
    send(&app, &alice, &room, "near the body of the lake").await;
    for hostile in [
        "NEAR(near lake)",
        "body:lake",
        "^lake",
        "lake & !near | x:*",
        "lake\" OR 1=1 --",
        "'; DROP TABLE messages; --",
        "lake)) OR ((",
        "{near} [lake] <-> lake:AB",
    ] {
        let response = app.gql(&alice, SEARCH, json!({ "q": hostile })).await;
        data(response);
    }
    assert_eq!(
        found(&app, &alice, "NEAR(near lake)").await,
        ["near the body of the lake"],
        "the words still match"
    );
    assert_eq!(found(&app, &alice, "body:lake").await, ["near the body of the lake"]);
    assert_eq!(found(&app, &alice, "lake").await.len(), 1, "the table is intact");

    let long = "a".repeat(257);
    let many = "word ".repeat(33);
    for bad in ["", "   ", "-lake", long.as_str(), many.as_str()] {
        assert_error_code(&app.gql(&alice, SEARCH, json!({ "q": bad })).await, "BAD_USER_INPUT");
    }
    let bad_cursor = app.gql(&alice, SEARCH, json!({ "q": "lake", "after": "1.5~not-a-uuid" })).await;
    assert_error_code(&bad_cursor, "BAD_USER_INPUT");
    assert_error_code(&app.gql(&alice, SEARCH, json!({ "q": "lake", "first": 101 })).await, "BAD_USER_INPUT");
    // Bounds past the years 1-9999 (a far-off date for "no bound") are clamped: on SQLite
    // `+10000-…` compared as text sorted before every message.
    let open_bounds = json!({ "before": "+10000-01-01T00:00:00Z", "after": "-0001-01-01T00:00:00Z" });
    let found = app.ok(&alice, SEARCH, json!({ "q": "lake", "filter": open_bounds })).await;
    assert_eq!(found["searchMessages"]["edges"].as_array().map(Vec::len), Some(1), "{found}");
}

async fn search_pages_walk_every_hit_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "log", &[]).await;
    filler(&app, &alice, &room).await;
    filler(&app, &alice, &room).await;
    for i in 0..7 {
        // Equal ranks for some, so ties are broken by id across page boundaries.
        let body = if i % 2 == 0 { format!("kiwi entry {i}") } else { format!("kiwi kiwi entry {i}") };
        send(&app, &alice, &room, &body).await;
    }
    let whole = found(&app, &alice, "kiwi").await;
    assert_eq!(whole.len(), 7);
    for first in [1, 2, 3] {
        assert_eq!(hits(&app, &alice, "kiwi", Value::Null, first).await, whole, "pages of {first}");
    }
}

async fn rooms_and_users_are_found_in_any_case_and_script(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let club = create_channel(&app, &alice, "École-Club", &[&bob]).await;
    let notes = create_channel(&app, &alice, "notes", &[&bob]).await;
    app.ok(
        &alice,
        "mutation($id: ID!) { updateRoom(input: { roomId: $id, topic: \"Über alles: ΣΟΦΙΑ\" }) { id } }",
        json!({ "id": notes }),
    )
    .await;
    app.ok(
        &alice,
        "mutation($id: ID!) { updateUser(input: { userId: $id, displayName: \"Émile Zoë\" }) { id } }",
        json!({ "id": alice.id }),
    )
    .await;
    let rooms = |search: &'static str| {
        let (app, bob) = (&app, &bob);
        async move {
            let query = "query($s: String) { rooms(filter: { search: $s }) { edges { node { id } } } }";
            let page = app.ok(bob, query, json!({ "s": search })).await;
            page["rooms"]["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| id_of(&e["node"]))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(rooms("école").await, std::slice::from_ref(&club));
    assert_eq!(rooms("ÉCOLE-C").await, [club]);
    assert_eq!(rooms("über").await, std::slice::from_ref(&notes), "topics match too");
    assert_eq!(rooms("σοφια").await, [notes]);
    assert_eq!(rooms("100%").await, Vec::<String>::new(), "LIKE and regex syntax are literal");
    assert_eq!(rooms(".*").await, Vec::<String>::new());

    let users = |search: &'static str| {
        let (app, bob) = (&app, &bob);
        async move {
            let query = "query($s: String) { users(search: $s) { edges { node { id } } } }";
            let page = app.ok(bob, query, json!({ "s": search })).await;
            page["users"]["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| id_of(&e["node"]))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(users("émile zOË").await, std::slice::from_ref(&alice.id));
    assert_eq!(users("ÉMILE").await, [alice.id]);
}

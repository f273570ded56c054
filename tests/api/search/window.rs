//! The recency window (`PARLEY_SEARCH_WINDOW`): the organisation's newest messages rank
//! first and pages cross into the older ones with stable cursors; inside the window a phrase
//! still matches exactly.

use serde_json::{Value, json};

use super::{SEARCH, filler, found, hits, sorted};
use crate::helpers::api::{create_channel, send};
use crate::helpers::{Backend, spawn_app_with};

backend_tests!(
    search_ranks_the_newest_messages_first_and_pages_across_the_window,
    search_matches_phrases_exactly_inside_the_window,
);

/// With a window of the organisation's 4 newest messages, hits among them come first, however
/// strong an older match; cursors keep the window their first page saw.
async fn search_ranks_the_newest_messages_first_and_pages_across_the_window(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_SEARCH_WINDOW", "4")]).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "log", &[]).await;
    filler(&app, &alice, &room).await;
    let (strong_old, weak_old) = ("kiwi kiwi kiwi strong and old", "kiwi old");
    let (weak_new, strong_new) = ("kiwi new", "kiwi kiwi newer");
    for body in [strong_old, weak_old, "ok", "fine", "sure", weak_new, strong_new, "done"] {
        send(&app, &alice, &room, body).await;
    }

    let whole = found(&app, &alice, "kiwi").await;
    assert_eq!(whole, [strong_new, weak_new, strong_old, weak_old], "the window first, each tier by rank");
    for first in [1, 2, 3] {
        assert_eq!(hits(&app, &alice, "kiwi", Value::Null, first).await, whole, "pages of {first}");
    }

    let variables = json!({ "q": "kiwi", "first": 1 });
    let page = app.ok(&alice, SEARCH, variables).await["searchMessages"]["pageInfo"]["endCursor"].clone();
    send(&app, &alice, &room, "kiwi kiwi kiwi kiwi newest").await;
    let mut rest = Vec::new();
    let mut after = page;
    while after != Value::Null {
        let variables = json!({ "q": "kiwi", "first": 2, "after": after });
        let page = &app.ok(&alice, SEARCH, variables).await["searchMessages"];
        rest.extend(page["edges"].as_array().expect("edges").iter().map(|e| e["node"]["body"].clone()));
        after = if page["pageInfo"]["hasNextPage"] == json!(true) {
            page["pageInfo"]["endCursor"].clone()
        } else {
            Value::Null
        };
    }
    assert_eq!(
        rest,
        [weak_new, strong_old, weak_old],
        "a message sent meanwhile neither repeats nor shifts a page"
    );
    assert_eq!(found(&app, &alice, "kiwi").await[0], "kiwi kiwi kiwi kiwi newest", "a new search sees it");
}

/// Inside the window PostgreSQL finds a phrase's rows by any of its words, then checks the
/// phrase itself (`SearchQuery::loosened_tsquery`): the words apart or reversed never match.
async fn search_matches_phrases_exactly_inside_the_window(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_SEARCH_WINDOW", "4")]).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "log", &[]).await;
    filler(&app, &alice, &room).await;
    for body in
        ["green apple crumble", "ok", "apple is green", "green and ripe apple", "a green apple", "done"]
    {
        send(&app, &alice, &room, body).await;
    }

    assert_eq!(
        found(&app, &alice, "\"green apple\"").await,
        ["a green apple", "green apple crumble"],
        "the window's exact match, then the older one"
    );
    assert_eq!(found(&app, &alice, "\"green apple\" -crumble").await, ["a green apple"]);
    assert_eq!(found(&app, &alice, "ripe \"green apple\"").await, Vec::<String>::new());
    assert_eq!(
        sorted(found(&app, &alice, "green-app*").await),
        ["a green apple", "green apple crumble"],
        "a phrase ending in a prefix"
    );
}

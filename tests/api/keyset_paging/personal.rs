//! Lists of one user's own things: saved messages, reminders and the Later list.

use chrono::Utc;
use serde_json::json;

use super::{BOTH, COMPLETE, List, SAVE, in_minutes, remind, remind_hourly, walk_one_at_a_time};
use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::{Backend, assert_error_code, data, spawn_app};

backend_tests!(
    saving_and_forgetting_while_paging_skips_nothing,
    settling_reminders_while_paging_skips_nothing,
    settling_later_items_while_paging_skips_nothing,
    equal_times_and_fractions_of_a_second_page_in_order,
);

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
    let ids = remind_hourly(&app, &alice, 5).await;
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
    let reminders = remind_hourly(&app, &alice, 3).await;
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

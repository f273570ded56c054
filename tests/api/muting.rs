//! Muting a room: per member, until a time or until unmuted. A muted room still counts
//! unread messages, but the viewer's `unreadCountChanged` carries `notify: false` (other
//! members' keep `true`); the mute reaches the viewer's feeds on every instance, and ends by
//! itself at its time. Bad input changes nothing.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::api::{create_channel, create_private_channel, send};
use crate::helpers::subscription::Subscription;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, spawn_app};

backend_tests!(a_muted_room_counts_but_does_not_notify, bad_mutes_are_refused_and_change_nothing);
pg_test!(a_mute_reaches_the_feed_on_the_other_instance);

const MUTE: &str =
    "mutation($id: ID!, $until: DateTime) { muteRoom(roomId: $id, until: $until) { id isMuted mutedUntil } }";
const UNMUTE: &str = "mutation($id: ID!) { unmuteRoom(roomId: $id) { id isMuted mutedUntil } }";
const COUNTS: &str = "subscription { unreadCountChanged { roomId unreadCount notify } }";
const ROOM: &str = "query($id: ID!) { room(id: $id) { isMuted mutedUntil unreadCount } }";

fn in_millis(millis: i64) -> String {
    (Utc::now() + chrono::Duration::milliseconds(millis)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn counts(app: &TestApp, user: &TestUser) -> (WsClient, Subscription) {
    let mut ws = WsClient::connect(app, user).await;
    let sub = ws.subscribe("counts", COUNTS, json!({})).await;
    (ws, sub)
}

async fn a_muted_room_counts_but_does_not_notify(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let room = create_channel(&app, &alice, "general", &[&bob, &carol]).await;
    let (_alices_ws, mut alices) = counts(&app, &alice).await;
    let (_carols_ws, mut carols) = counts(&app, &carol).await;

    send(&app, &bob, &room, "one").await;
    assert_eq!(
        alices.next("unreadCountChanged").await,
        json!({ "roomId": room, "unreadCount": 1, "notify": true })
    );
    carols.next("unreadCountChanged").await;

    // Muted until unmuted: counted, not notified; others still notified.
    let muted = app.ok(&alice, MUTE, json!({ "id": room, "until": null })).await;
    assert_eq!(muted["muteRoom"], json!({ "id": room, "isMuted": true, "mutedUntil": null }));
    send(&app, &bob, &room, "two").await;
    assert_eq!(
        alices.next("unreadCountChanged").await,
        json!({ "roomId": room, "unreadCount": 2, "notify": false })
    );
    assert_eq!(carols.next("unreadCountChanged").await["notify"], true);
    assert_eq!(app.ok(&alice, ROOM, json!({ "id": room })).await["room"]["unreadCount"], 2);
    assert_eq!(app.ok(&carol, ROOM, json!({ "id": room })).await["room"]["isMuted"], false);

    let unmuted = app.ok(&alice, UNMUTE, json!({ "id": room })).await;
    assert_eq!(unmuted["unmuteRoom"], json!({ "id": room, "isMuted": false, "mutedUntil": null }));
    send(&app, &bob, &room, "three").await;
    assert_eq!(alices.next("unreadCountChanged").await["notify"], true);

    // Muted until a time: notified again once it passed.
    let until = in_millis(1_500);
    let muted = app.ok(&alice, MUTE, json!({ "id": room, "until": until })).await;
    assert_eq!(muted["muteRoom"]["isMuted"], true);
    assert!(muted["muteRoom"]["mutedUntil"].is_string());
    send(&app, &bob, &room, "four").await;
    assert_eq!(alices.next("unreadCountChanged").await["notify"], false);
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert_eq!(app.ok(&alice, ROOM, json!({ "id": room })).await["room"]["isMuted"], false);
    send(&app, &bob, &room, "five").await;
    assert_eq!(
        alices.next("unreadCountChanged").await,
        json!({ "roomId": room, "unreadCount": 5, "notify": true })
    );
}

async fn bad_mutes_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let open = create_channel(&app, &bob, "open", &[]).await;
    let closed = create_private_channel(&app, &bob, "closed", &[]).await;
    let mine = create_channel(&app, &alice, "mine", &[]).await;
    let other = app.create_org().await.user("olga").await;
    let foreign = create_channel(&app, &other, "foreign", &[]).await;

    for until in [in_millis(-1_000), "+10000-01-01T00:00:00Z".to_owned()] {
        // A year past 9999 would compare as past on SQLite: refused on every backend.
        assert_error_code(
            &app.gql(&alice, MUTE, json!({ "id": mine, "until": until })).await,
            "BAD_USER_INPUT",
        );
    }
    assert_error_code(&app.gql(&alice, MUTE, json!({ "id": open, "until": null })).await, "FORBIDDEN");
    assert_error_code(&app.gql(&alice, MUTE, json!({ "id": closed, "until": null })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&alice, MUTE, json!({ "id": foreign, "until": null })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&alice, UNMUTE, json!({ "id": foreign })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&alice, MUTE, json!({ "id": "nope", "until": null })).await, "BAD_USER_INPUT");
    let room = app.ok(&alice, ROOM, json!({ "id": mine })).await;
    assert_eq!(room["room"], json!({ "isMuted": false, "mutedUntil": null, "unreadCount": 0 }));
}

async fn a_mute_reaches_the_feed_on_the_other_instance() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let a = spawn_app(backend).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "general", &[&bob]).await;
    let (_ws, mut alices) = counts(&b, &alice).await;
    a.ok(&alice, MUTE, json!({ "id": room, "until": Value::Null })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&a, &bob, &room, "quiet please").await;
    assert_eq!(
        alices.next("unreadCountChanged").await,
        json!({ "roomId": room, "unreadCount": 1, "notify": false })
    );
}

//! Mentions: `@handle` parsed when a message is stored (punctuation around it, unknown
//! handles, addresses and non-members mention nobody), `@channel` and `@here` in channels,
//! `Room.mentionCount` after reads, edits and deletions, `viewer.mentions`, and
//! `unreadCountChanged.mentionCount`, also on another instance; room-wide mentions refused in
//! channels past `PARLEY_MAX_ROOM_MENTION_MEMBERS`.

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, edge_ids, id_of, mark_read, open_dm, send, try_send};
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, spawn_app, spawn_app_with};

backend_tests!(
    mentions_are_parsed_counted_and_listed,
    channel_and_here_reach_members_and_those_online,
    here_follows_a_status_set_by_hand,
    unread_changes_carry_the_mention_count,
    room_wide_mentions_stop_at_the_configured_size,
);
pg_test!(mention_counts_reach_the_other_instance);

const COUNT: &str = "query($room: ID!) { room(id: $room) { unreadCount mentionCount } }";
const LIST: &str =
    "query($after: String) { viewer { mentions(first: 10, after: $after) { edges { node { id body } } } } }";
const EDIT: &str =
    "mutation($id: ID!, $body: String!) { editMessage(input: { messageId: $id, body: $body }) { id } }";
const DELETE: &str = "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }";
const CHANGES: &str = "subscription { unreadCountChanged { roomId unreadCount mentionCount } }";

async fn mention_count(app: &TestApp, viewer: &TestUser, room: &str) -> Value {
    app.ok(viewer, COUNT, json!({ "room": room })).await["room"]["mentionCount"].clone()
}

async fn mentions_of(app: &TestApp, viewer: &TestUser) -> Vec<String> {
    edge_ids(&app.ok(viewer, LIST, json!({})).await["viewer"]["mentions"])
}

async fn mentions_are_parsed_counted_and_listed(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol, dave) =
        (org.user("alice").await, org.user("bob").await, org.user("carol").await, org.user("dave").await);
    let room = create_channel(&app, &alice, "general", &[&bob, &carol]).await;

    let body = "hi @bob, ask @dave (not here) or bob@example.com, @nobody, @alice";
    let first = id_of(&send(&app, &alice, &room, body).await);
    assert_eq!(mention_count(&app, &bob, &room).await, 1);
    assert_eq!(mention_count(&app, &carol, &room).await, 0, "an address is no mention");
    assert_eq!(mention_count(&app, &alice, &room).await, 0, "nor is oneself");
    assert_eq!(mentions_of(&app, &bob).await, std::slice::from_ref(&first));
    assert_eq!(mentions_of(&app, &dave).await, Vec::<String>::new(), "not a member: not mentioned");

    let second = id_of(&send(&app, &alice, &room, "@bob.").await);
    assert_eq!(mention_count(&app, &bob, &room).await, 2);
    assert_eq!(mentions_of(&app, &bob).await, [second.clone(), first.clone()], "newest first");
    mark_read(&app, &bob, &room, Some(1)).await;
    assert_eq!(mention_count(&app, &bob, &room).await, 1, "read mentions no longer count");

    // An edit moves the mention; a deletion removes it.
    app.ok(&alice, EDIT, json!({ "id": second, "body": "@carol instead" })).await;
    assert_eq!(mention_count(&app, &bob, &room).await, 0);
    assert_eq!(mention_count(&app, &carol, &room).await, 1);
    assert_eq!(mentions_of(&app, &bob).await, std::slice::from_ref(&first));
    app.ok(&alice, DELETE, json!({ "id": second })).await;
    assert_eq!(mention_count(&app, &carol, &room).await, 0);
    assert_eq!(mentions_of(&app, &carol).await, Vec::<String>::new());

    // Handles may end in `_`, `-` or `.`: the full handle if someone has it, else without.
    let eve = org.user("eve_").await;
    let side = create_channel(&app, &alice, "side", &[&bob, &eve]).await;
    send(&app, &alice, &side, "thanks @eve_, and @bob_.").await;
    assert_eq!(mention_count(&app, &eve, &side).await, 1);
    assert_eq!(mention_count(&app, &bob, &side).await, 1, "nobody is bob_: bob is meant");
    // gus_ exists, though not in the room: `@gus_` means him, never gus.
    let (gus, _gus_) = (org.user("gus").await, org.user("gus_").await);
    let third = create_channel(&app, &alice, "third", &[&gus]).await;
    send(&app, &alice, &third, "@gus_ can you review?").await;
    assert_eq!(mention_count(&app, &gus, &third).await, 0, "gus_ is meant, and is not a member");

    let page = app.gql(&bob, LIST, json!({ "after": "not-a-cursor" })).await;
    assert_error_code(&page, "BAD_USER_INPUT");
    let after_first = app.ok(&bob, LIST, json!({ "after": first })).await;
    assert_eq!(edge_ids(&after_first["viewer"]["mentions"]), Vec::<String>::new());
}

async fn channel_and_here_reach_members_and_those_online(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let room = create_channel(&app, &alice, "general", &[&bob, &carol]).await;
    let carol_online = WsClient::connect(&app, &carol).await;

    let standup = id_of(&send(&app, &alice, &room, "@here standup").await);
    assert_eq!(mention_count(&app, &carol, &room).await, 1, "online");
    assert_eq!(mention_count(&app, &bob, &room).await, 0, "offline: @here is not for him");
    // An edit keeps whom `@here` reached when sent, whoever is online now.
    drop(carol_online);
    let _bob_online = WsClient::connect(&app, &bob).await;
    app.ok(&alice, EDIT, json!({ "id": standup, "body": "@here standup!" })).await;
    assert_eq!(mention_count(&app, &carol, &room).await, 1, "still hers");
    assert_eq!(mention_count(&app, &bob, &room).await, 0, "not handed to him");
    // Handles are resolved again: named, then no more.
    app.ok(&alice, EDIT, json!({ "id": standup, "body": "@here standup! @bob too" })).await;
    assert_eq!(mention_count(&app, &bob, &room).await, 1);
    app.ok(&alice, EDIT, json!({ "id": standup, "body": "@here standup!" })).await;
    assert_eq!(mention_count(&app, &bob, &room).await, 0);
    assert_eq!(mention_count(&app, &carol, &room).await, 1);
    send(&app, &alice, &room, "@channel release day").await;
    assert_eq!(mention_count(&app, &carol, &room).await, 2);
    assert_eq!(mention_count(&app, &bob, &room).await, 1);
    assert_eq!(mention_count(&app, &alice, &room).await, 0);

    let dm = open_dm(&app, &alice, &[&bob]).await;
    send(&app, &alice, &dm, "@channel is for channels").await;
    assert_eq!(mention_count(&app, &bob, &dm).await, 0);
}

/// `@here` reaches the members others see as online: not one who set themselves away with a
/// tab open, but one who set themselves online by hand without one (as Slack's `@here` is for
/// active members).
async fn here_follows_a_status_set_by_hand(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let (carol, dave) = (org.user("carol").await, org.user("dave").await);
    let room = create_channel(&app, &alice, "general", &[&bob, &carol, &dave]).await;
    let set = "mutation($status: ManualStatus) { setPresence(status: $status) { status } }";
    let (_bob_online, _carol_online) =
        (WsClient::connect(&app, &bob).await, WsClient::connect(&app, &carol).await);
    app.ok(&carol, set, json!({ "status": "AWAY" })).await;
    app.ok(&dave, set, json!({ "status": "ONLINE" })).await;

    send(&app, &alice, &room, "@here standup").await;
    assert_eq!(mention_count(&app, &bob, &room).await, 1, "connected");
    assert_eq!(mention_count(&app, &carol, &room).await, 0, "away, tab open or not");
    assert_eq!(mention_count(&app, &dave, &room).await, 1, "online by hand");
}

/// A room-wide mention writes a row per member inside the send: past the configured size it
/// is refused (messages and edits alike), and nothing is stored; handles still work there.
async fn room_wide_mentions_stop_at_the_configured_size(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_MAX_ROOM_MENTION_MEMBERS", "2")]).await;
    let org = app.create_org().await;
    let (alice, bob, carol, dave) =
        (org.user("alice").await, org.user("bob").await, org.user("carol").await, org.user("dave").await);
    let small = create_channel(&app, &alice, "small", &[&bob, &carol]).await;
    let two = id_of(&send(&app, &alice, &small, "@channel two of us").await);
    assert_eq!(mention_count(&app, &carol, &small).await, 1, "two members besides the author: allowed");
    // Grown past the limit since: fixing a typo still works, and reaches whom it reached.
    let add = "mutation($room: ID!, $users: [ID!]!) { addMembers(roomId: $room, userIds: $users) { id } }";
    app.ok(&alice, add, json!({ "room": small, "users": [dave.id] })).await;
    app.ok(&alice, EDIT, json!({ "id": two, "body": "@channel two of us!" })).await;
    assert_eq!(
        (mention_count(&app, &carol, &small).await, mention_count(&app, &dave, &small).await),
        (json!(1), json!(0))
    );

    let large = create_channel(&app, &alice, "large", &[&bob, &carol, &dave]).await;
    for body in ["@channel release day", "@everyone", "@here standup"] {
        let refused = try_send(&app, &alice, json!({ "roomId": large, "body": body })).await;
        assert_error_code(&refused, "BAD_USER_INPUT");
    }
    // Someone who may not post there learns nothing of the channel's size: the usual answer.
    let outsider = org.user("erin").await;
    let refused = try_send(&app, &outsider, json!({ "roomId": large, "body": "@channel hi" })).await;
    assert_error_code(&refused, "FORBIDDEN");
    let history = "query($room: ID!) { messages(roomId: $room) { edges { node { body } } } }";
    let stored = app.ok(&alice, history, json!({ "room": large })).await;
    assert_eq!(stored["messages"]["edges"], json!([]), "nothing was stored");

    let named = id_of(&send(&app, &alice, &large, "@bob and @dave").await);
    let edit = app.gql(&alice, EDIT, json!({ "id": named, "body": "@channel after all" })).await;
    assert_error_code(&edit, "BAD_USER_INPUT");
    let stored = app.ok(&alice, history, json!({ "room": large })).await;
    assert_eq!(
        stored["messages"]["edges"],
        json!([{ "node": { "body": "@bob and @dave" } }]),
        "the edit changed nothing"
    );
    assert_eq!(mention_count(&app, &carol, &large).await, 0);
    assert_eq!(mention_count(&app, &dave, &large).await, 1);

    // The limit is on members reached by `@here`, never on people named: in a direct room
    // (where `@here` means nothing) all four named are mentioned.
    let frank = org.user("frank").await;
    let dm = open_dm(&app, &alice, &[&bob, &carol, &dave, &frank]).await;
    send(&app, &alice, &dm, "@here @bob @carol @dave @frank").await;
    for named in [&bob, &carol, &dave, &frank] {
        assert_eq!(mention_count(&app, named, &dm).await, 1, "{}", named.handle);
    }
}

async fn unread_changes_carry_the_mention_count(backend: Backend) {
    let app = spawn_app(backend).await;
    mention_counts_arrive_live(&app, &app).await;
}

async fn mention_counts_reach_the_other_instance() {
    let Some(backend) = Backend::postgres_redis() else { return };
    let a = spawn_app(backend).await;
    let b = a.spawn_second_instance().await;
    mention_counts_arrive_live(&a, &b).await;
}

/// Bob listens on `listening` while Alice writes through `acting`.
async fn mention_counts_arrive_live(acting: &TestApp, listening: &TestApp) {
    let org = acting.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(acting, &alice, "general", &[&bob]).await;
    let mut bobs = WsClient::connect(listening, &bob).await;
    let mut changes = bobs.subscribe("unread", CHANGES, json!({})).await;

    let message = id_of(&send(acting, &alice, &room, "@bob have a look").await);
    assert_eq!(
        changes.next("unreadCountChanged").await,
        json!({ "roomId": room, "unreadCount": 1, "mentionCount": 1 })
    );
    acting.ok(&alice, EDIT, json!({ "id": message, "body": "have a look" })).await;
    assert_eq!(
        changes.next("unreadCountChanged").await,
        json!({ "roomId": room, "unreadCount": 1, "mentionCount": 0 })
    );
    acting.ok(&alice, EDIT, json!({ "id": message, "body": "@bob have a look" })).await;
    assert_eq!(changes.next("unreadCountChanged").await["mentionCount"], 1);
    mark_read(acting, &bob, &room, None).await;
    assert_eq!(
        changes.next("unreadCountChanged").await,
        json!({ "roomId": room, "unreadCount": 0, "mentionCount": 0 })
    );
}

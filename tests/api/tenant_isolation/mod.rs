//! Tenant isolation, for every root field of the schema as introspection lists
//! it (so a new field is covered the day it lands): a user of organisation B
//! calls each query, mutation and subscription with each id of organisation A
//! (a public channel, a private channel, a direct room, a message, a user) in
//! each place an id goes, and with an id that exists nowhere. The answer must
//! be NOT_FOUND or an empty result, identical for "exists elsewhere" and "does
//! not exist", and carry nothing of A. Afterwards both organisations look
//! exactly as before to each of their users, and none of B's subscriptions saw
//! anything of A's later activity, while they do see B's own.
//!
//! Fields without an id are read as B (they must show nothing of A, while A's
//! own user sees A's data through the same selection); a mutation without an
//! id cannot be probed without changing B and is listed in [`UNCOVERED`] with
//! the reason.

mod schema_walk;

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::helpers::api::{
    MESSAGE, all_messages, create_channel, create_private_channel, id_of, open_dm, send,
};
use crate::helpers::subscription::Subscription;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, QUIET, TestApp, TestUser, WAIT, data, error_codes, spawn_app};
use schema_walk::{INTROSPECTION, IdPath, Operation, RootField, SchemaWalk};

backend_tests!(every_root_field_hides_another_organisations_data);

/// Root fields the matrix cannot probe, and why.
const UNCOVERED: &[(&str, &str)] = &[
    (
        "createUser",
        "takes no id and only ever creates a user in the caller's own organisation \
         (users.rs tests who may do so); probing it would change B",
    ),
    ("updateProfile", "takes no id and only ever changes the caller; probing it would change B"),
    ("setPresence", "takes no id and only ever changes the caller; probing it would change B"),
    (
        "createSupportInbox",
        "takes no id and only ever creates an inbox in the caller's organisation (support.rs tests \
         who may); probing it would change B",
    ),
    ("updateNotificationSettings", "takes no id and only ever changes the caller; probing it would change B"),
    (
        "registerPushSubscription",
        "takes a browser's push endpoint, no id; registering one moves that browser to the caller \
         (personal_notifications.rs), and its answer shows only what the caller sent",
    ),
    (
        "unregisterPushSubscription",
        "takes an endpoint and only ever removes the caller's own (false for anyone else's)",
    ),
];

/// Organisation A: the data B must never reach.
struct Victim {
    amber: TestUser,
    arthur: TestUser,
    /// Every id of A the matrix probes with.
    ids: Vec<String>,
    /// Strings only A's data contains: its ids, names, handles and bodies.
    markers: Vec<String>,
}

/// Organisation B: the caller, with ids of its own for every other argument.
struct Caller {
    bob: TestUser,
    carol: TestUser,
    room: String,
    own: HashMap<&'static str, String>,
}

async fn every_root_field_hides_another_organisations_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = seed_victim(&app).await;
    let b = seed_caller(&app).await;
    let schema = data(app.gql(&b.bob, INTROSPECTION, json!({})).await);
    let walk = SchemaWalk::new(&schema["__schema"]);
    assert_eq!(
        walk.nested_id_arguments(),
        Vec::<String>::new(),
        "only root fields are probed: extend the matrix"
    );
    for (name, _) in UNCOVERED {
        assert!(
            walk.fields.iter().any(|f| f.name == *name),
            "UNCOVERED lists `{name}`, which the schema lacks"
        );
    }

    let users = [&a.amber, &a.arthur, &b.bob, &b.carol];
    let before = snapshots(&app, &users).await;
    let mut ws = WsClient::connect(&app, &b.bob).await;
    let mut watchers = watch_everything(&walk, &mut ws, &b).await;

    let mut findings = Vec::new();
    let mut probes = 0;
    for field in &walk.fields {
        let paths = walk.id_paths(field);
        if paths.is_empty() {
            findings.extend(check_without_ids(&app, &walk, field, &a, &b).await);
            continue;
        }
        for path in &paths {
            let nowhere = uuid::Uuid::new_v4().to_string();
            let baseline = probe(&app, &mut ws, &walk, field, path, &nowhere, &b).await;
            let at = format!("{}({})", field.name, path.join("."));
            if let Some(problem) = refusal_problem(&baseline, &field.name) {
                findings.push(format!("{at} with an unknown id: {problem}: {baseline}"));
            }
            for foreign in &a.ids {
                probes += 1;
                let answer = probe(&app, &mut ws, &walk, field, path, foreign, &b).await;
                if answer != baseline {
                    findings.push(format!("{at}: A's id answers {answer}, an unknown id {baseline}"));
                }
                if let Some(marker) = leaked(&answer, &a.markers) {
                    findings.push(format!("{at}: the answer shows A's `{marker}`: {answer}"));
                }
            }
        }
    }
    assert!(findings.is_empty(), "{} findings in {probes} probes:\n{}", findings.len(), findings.join("\n"));
    assert_eq!(snapshots(&app, &users).await, before, "the probes changed what someone sees");

    act_in(&app, &a).await;
    for (name, watcher) in &mut watchers {
        if let Ok(Some(frame)) = watcher.poll(QUIET).await {
            panic!("B's `{name}` saw A's activity: {frame:#}");
        }
    }
    act_in_caller(&app, &b).await;
    for (name, watcher) in &mut watchers {
        let frame = watcher.poll(WAIT).await;
        assert!(
            matches!(frame, Ok(Some(_))),
            "B's `{name}` saw nothing of B's own activity: the quiet check proved nothing"
        );
    }
}

/// Calls `field` as B with `id` at `path`; the answer with `id` replaced by
/// `<probe>` (an echo of the caller's own input is no leak), as `{data, errors}`.
async fn probe(
    app: &TestApp,
    ws: &mut WsClient,
    walk: &SchemaWalk,
    field: &RootField,
    path: &IdPath,
    id: &str,
    b: &Caller,
) -> Value {
    let (document, variables) = walk.call(field, Some(path), id, &b.own);
    let answer = match field.operation {
        Operation::Subscription => subscribe_once(ws, &document, variables).await,
        Operation::Query | Operation::Mutation => app.gql(&b.bob, &document, variables).await,
    };
    serde_json::from_str(&answer.to_string().replace(id, "<probe>")).expect("JSON stays JSON")
}

/// The first frame of a subscription, as `{data, errors}`.
async fn subscribe_once(ws: &mut WsClient, document: &str, variables: Value) -> Value {
    let id = uuid::Uuid::new_v4().to_string();
    let mut subscription = ws.subscribe_raw(&id, document, variables).await;
    let answer = match subscription.poll(WAIT).await {
        Ok(Some(frame)) if frame["type"] == "error" => json!({ "errors": frame["payload"] }),
        Ok(Some(frame)) => frame["payload"].clone(),
        Ok(None) => json!({ "accepted": "the subscription was accepted and stayed silent" }),
        Err(()) => json!({ "closed": "the connection closed" }),
    };
    subscription.complete().await;
    answer
}

/// Why `answer` is not a refusal: NOT_FOUND, or no error and an empty result.
fn refusal_problem(answer: &Value, field: &str) -> Option<String> {
    let codes = error_codes(answer);
    if !codes.is_empty() {
        return codes
            .iter()
            .any(|c| c != "NOT_FOUND")
            .then(|| format!("error codes {codes:?}, not NOT_FOUND"));
    }
    let result = &answer["data"][field];
    // Null, an empty list, or a connection without edges (a search narrowed to an id).
    let empty = result.is_null()
        || result.as_array().is_some_and(Vec::is_empty)
        || result["edges"].as_array().is_some_and(Vec::is_empty);
    (!empty).then(|| "a result".to_owned())
}

fn leaked<'m>(answer: &Value, markers: &'m [String]) -> Option<&'m str> {
    let text = answer.to_string();
    markers.iter().find(|m| text.contains(m.as_str())).map(String::as_str)
}

/// A field without an id: a query B reads without seeing A while A's own user
/// sees A's data through the same selection; a subscription is one of the
/// watchers; a mutation must be listed in [`UNCOVERED`].
async fn check_without_ids(
    app: &TestApp,
    walk: &SchemaWalk,
    field: &RootField,
    a: &Victim,
    b: &Caller,
) -> Vec<String> {
    let listed = UNCOVERED.iter().any(|(name, _)| *name == field.name);
    match field.operation {
        Operation::Subscription => return Vec::new(),
        Operation::Mutation if listed => return Vec::new(),
        Operation::Mutation => {
            return vec![format!(
                "{}: a mutation without an id: probe it or list it in UNCOVERED",
                field.name
            )];
        }
        Operation::Query => {}
    }
    let (document, variables) = walk.call(field, None, "", &b.own);
    let as_b = app.gql(&b.bob, &document, variables.clone()).await;
    let as_a = app.gql(&a.amber, &document, variables).await;
    let mut findings = Vec::new();
    if !error_codes(&as_b).is_empty() || !error_codes(&as_a).is_empty() {
        findings.push(format!("{}: errors in {as_b} or {as_a}", field.name));
    }
    if let Some(marker) = leaked(&as_b, &a.markers) {
        findings.push(format!("{}: B sees A's `{marker}`: {as_b}", field.name));
    }
    if leaked(&as_a, &a.markers).is_none() {
        findings.push(format!("{}: even A sees none of A's data through this selection: {as_a}", field.name));
    }
    findings
}

/// B's subscriptions to every subscription field, optional arguments left out
/// (so "all the viewer's rooms"), required ones filled with B's own ids.
async fn watch_everything(walk: &SchemaWalk, ws: &mut WsClient, b: &Caller) -> Vec<(String, Subscription)> {
    let mut watchers = Vec::new();
    for field in walk.fields.iter().filter(|f| f.operation == Operation::Subscription) {
        let (document, variables) = walk.call(field, None, "", &b.own);
        let id = format!("watch-{}", field.name);
        watchers.push((field.name.clone(), ws.subscribe(&id, &document, variables).await));
    }
    watchers
}

async fn seed_victim(app: &TestApp) -> Victim {
    let org = app.create_org().await;
    let amber = org.user_with_role("amber", "admin").await;
    let arthur = org.user("arthur").await;
    let atlas = create_channel(app, &amber, "atlas-plans", &[&arthur]).await;
    let aegis = create_private_channel(app, &amber, "aegis-plans", &[&arthur]).await;
    let dm = open_dm(app, &amber, &[&arthur]).await;
    // Before the messages, so A has a webhook delivery too (to a port where nothing listens).
    let webhook = create_webhook(app, &amber, "http://127.0.0.1:9/atlas-hook").await;
    let message = id_of(&send(app, &amber, &atlas, "acorn one").await);
    send(app, &arthur, &aegis, "acorn two").await;
    send(app, &arthur, &dm, "acorn three").await;
    let reminder = remind(app, &amber, json!({ "messageId": message, "remindAt": in_an_hour() })).await;
    let (inbox, conversation) = support_inbox(app, &amber, "acorn-desk", "Acorn Customer").await;
    let ids = vec![atlas, aegis, dm, message, amber.id.clone(), reminder, webhook, inbox, conversation];
    let mut markers = ids.clone();
    markers.extend([&org.id, &arthur.id].map(String::clone));
    markers.extend(["amber", "arthur", "atlas", "aegis", "acorn"].map(str::to_owned));
    Victim { amber, arthur, ids, markers }
}

/// An inbox of `admin`'s (with them as its agent) and one conversation of a contact called
/// `contact`, written through `ingestInboundMessage`; returns both ids.
async fn support_inbox(app: &TestApp, admin: &TestUser, name: &str, contact: &str) -> (String, String) {
    let create = "mutation($name: String!) { createSupportInbox(input: {name: $name}) { inbox { id } } }";
    let inbox =
        id_of(&data(app.gql(admin, create, json!({ "name": name })).await)["createSupportInbox"]["inbox"]);
    let add = "mutation($inbox: ID!, $user: ID!) { addInboxMember(inboxId: $inbox, userId: $user) { id } }";
    data(app.gql(admin, add, json!({ "inbox": inbox, "user": admin.id })).await);
    let ingest = "mutation($inbox: ID!, $input: InboundMessageInput!) { ingestInboundMessage(inboxId: $inbox, input: $input) { roomId } }";
    let input = json!({ "externalId": format!("{name}-1"), "source": "API", "contact": { "externalRef": name, "name": contact }, "body": format!("{contact} writes") });
    let stored = data(app.gql(admin, ingest, json!({ "inbox": inbox, "input": input })).await);
    (inbox, stored["ingestInboundMessage"]["roomId"].as_str().expect("a conversation").to_owned())
}

async fn create_webhook(app: &TestApp, admin: &TestUser, url: &str) -> String {
    let create = "mutation($input: CreateOutgoingWebhookInput!) { createOutgoingWebhook(input: $input) { webhook { id } } }";
    let input = json!({ "url": url, "events": ["MESSAGE_ADDED"] });
    id_of(&data(app.gql(admin, create, json!({ "input": input })).await)["createOutgoingWebhook"]["webhook"])
}

async fn seed_caller(app: &TestApp) -> Caller {
    let org = app.create_org().await;
    let bob = org.user_with_role("bob", "admin").await;
    let carol = org.user("carol").await;
    let room = create_channel(app, &bob, "bay", &[&carol]).await;
    let message = id_of(&send(app, &carol, &room, "hello bob").await);
    let (inbox, _) = support_inbox(app, &bob, "bay-desk", "Bay Customer").await;
    let own = HashMap::from([
        ("inboxId", inbox),
        ("id", room.clone()),
        ("roomId", room.clone()),
        ("roomIds", room.clone()),
        ("userId", carol.id.clone()),
        ("userIds", carol.id.clone()),
        ("memberIds", carol.id.clone()),
        ("messageId", message.clone()),
        ("replyToId", message),
    ]);
    Caller { bob, carol, room, own }
}

/// What each user sees of their organisation: rooms (live and archived) with
/// members and read state, every message, their reminders, the people.
async fn snapshots(app: &TestApp, users: &[&TestUser]) -> Vec<Value> {
    const ROOMS: &str = "query($archived: Boolean) { viewer { rooms(filter: { archived: $archived }, first: 100) { \
        edges { node { id kind name topic visibility archivedAt latestSeq lastReadSeq unreadCount viewerRole \
        members { edges { node { role lastReadSeq user { id handle displayName } } } } } } } \
        reminders(first: 100) { edges { node { id status remindAt note } } } } \
        users(first: 100) { edges { node { id handle displayName role kind deactivatedAt } } } }";
    let mut views = Vec::new();
    for user in users {
        let mut view = json!({});
        for archived in [false, true] {
            let seen = app.ok(user, ROOMS, json!({ "archived": archived })).await;
            for edge in seen["viewer"]["rooms"]["edges"].as_array().expect("room edges") {
                let room = id_of(&edge["node"]);
                view["messages"][&room] = json!(all_messages(app, user, &room).await);
            }
            view[if archived { "archived" } else { "live" }] = seen;
        }
        views.push(view);
    }
    views
}

/// A's ordinary activity, each kind of event B's subscriptions could leak.
async fn act_in(app: &TestApp, a: &Victim) {
    let atlas = &a.ids[0];
    remind(app, &a.amber, json!({ "roomId": atlas, "remindAt": in_millis(200) })).await;
    let message = id_of(&send(app, &a.arthur, atlas, "acorn four").await);
    let edit = format!(
        "mutation($id: ID!) {{ editMessage(input: {{ messageId: $id, body: \"acorn five\" }}) {{ {MESSAGE} }} }}"
    );
    app.ok(&a.arthur, &edit, json!({ "id": message })).await;
    app.ok(&a.amber, "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }", json!({ "id": message }))
        .await;
    app.ok(
        &a.amber,
        "mutation($id: ID!) { markRoomRead(roomId: $id) { lastReadSeq } }",
        json!({ "id": atlas }),
    )
    .await;
    let rename = "mutation($id: ID!) { updateRoom(input: { roomId: $id, topic: \"acorn topic\" }) { id } }";
    app.ok(&a.amber, rename, json!({ "id": atlas })).await;
    create_channel(app, &a.amber, "atlas-more", &[&a.arthur]).await;
    let star = "mutation($id: ID!) { setRoomFavorite(roomId: $id, favorite: true) { id } }";
    app.ok(&a.amber, star, json!({ "id": atlas })).await;
    app.ok(&a.arthur, TYPE, json!({ "id": atlas })).await;
    send(app, &a.amber, atlas, "acorn six").await;
    app.ok(&a.arthur, READ, json!({ "id": atlas })).await;
    app.ok(&a.arthur, AWAY, json!({})).await;
}

const TYPE: &str = "mutation($id: ID!) { setTyping(roomId: $id, typing: true) }";
const AWAY: &str = "mutation { setPresence(status: AWAY) { status } }";
const READ: &str = "mutation($id: ID!) { markRoomRead(roomId: $id) { lastReadSeq } }";

/// Creates a reminder for `user`; its id.
async fn remind(app: &TestApp, user: &TestUser, input: Value) -> String {
    let create = "mutation($input: CreateReminderInput!) { createReminder(input: $input) { id } }";
    id_of(&app.ok(user, create, json!({ "input": input })).await["createReminder"])
}

fn in_millis(millis: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(millis)).to_rfc3339()
}

fn in_an_hour() -> String {
    in_millis(3_600_000)
}

/// The same kinds of activity in B, which B's watchers must see.
async fn act_in_caller(app: &TestApp, b: &Caller) {
    remind(app, &b.bob, json!({ "roomId": b.room, "remindAt": in_millis(200) })).await;
    let message = id_of(&send(app, &b.carol, &b.room, "carol again").await);
    let edit = "mutation($id: ID!) { editMessage(input: { messageId: $id, body: \"carol edited\" }) { id } }";
    app.ok(&b.carol, edit, json!({ "id": message })).await;
    let rename = "mutation($id: ID!) { updateRoom(input: { roomId: $id, topic: \"bay topic\" }) { id } }";
    app.ok(&b.bob, rename, json!({ "id": b.room })).await;
    let star = "mutation($id: ID!) { setRoomFavorite(roomId: $id, favorite: true) { id } }";
    app.ok(&b.bob, star, json!({ "id": b.room })).await;
    app.ok(&b.carol, TYPE, json!({ "id": b.room })).await;
    send(app, &b.bob, &b.room, "bob again").await;
    app.ok(&b.carol, READ, json!({ "id": b.room })).await;
    app.ok(&b.carol, AWAY, json!({})).await;
}

//! Unread counts against a model (proptest): random interleavings of send, read, markUnread,
//! delete, edit, join, leave, add and remove by three users in two channels. After every
//! step each member's count — `room { unreadCount }`, `unreadCounts(roomIds:)` and the last
//! `unreadCountChanged` received — equals a recount from scratch in a few lines of model:
//! live messages above the member's watermark.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::helpers::api::{create_channel, id_of, int, mark_read, send};
use crate::helpers::subscription::Subscription;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, data, spawn_app};

backend_tests!(unread_counts_match_a_model_under_random_interleavings);

const STEPS: u32 = 80;
const CHANGES: &str = "subscription { unreadCountChanged { roomId unreadCount } }";

#[derive(Debug, Clone, Copy)]
enum Op {
    Send,
    Read,
    MarkUnread,
    Delete,
    Edit,
    Join,
    Leave,
    Add,
    Remove,
}

/// One step: who does what where; `pick` chooses a message or a seq where one is needed.
#[derive(Debug, Clone)]
struct Step {
    op: Op,
    user: usize,
    room: usize,
    pick: Index,
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        4 => Just(Op::Send),
        2 => Just(Op::Read),
        2 => Just(Op::MarkUnread),
        2 => Just(Op::Delete),
        1 => Just(Op::Edit),
        1 => Just(Op::Join),
        1 => Just(Op::Leave),
        1 => Just(Op::Add),
        1 => Just(Op::Remove),
    ];
    (op, 0..3usize, 0..2usize, any::<Index>()).prop_map(|(op, user, room, pick)| Step {
        op,
        user,
        room,
        pick,
    })
}

/// What the server should hold: messages (author, deleted) by seq, and watermarks.
#[derive(Default)]
struct Room {
    id: String,
    /// seq → (message id, author, deleted)
    messages: BTreeMap<i64, (String, usize, bool)>,
    /// member → last read seq
    members: BTreeMap<usize, i64>,
}

impl Room {
    fn last_seq(&self) -> i64 {
        self.messages.keys().next_back().copied().unwrap_or(0)
    }

    fn unread(&self, user: usize) -> Option<i64> {
        let watermark = *self.members.get(&user)?;
        Some(self.messages.range(watermark + 1..).filter(|(_, (_, _, deleted))| !deleted).count() as i64)
    }
}

async fn unread_counts_match_a_model_under_random_interleavings(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    // Alice owns both channels and never leaves them (she adds and removes the others).
    let users = [org.user("alice").await, org.user("bob").await, org.user("carol").await];
    let mut rooms = Vec::new();
    for name in ["one", "two"] {
        let id = create_channel(&app, &users[0], name, &[&users[1]]).await;
        let members = BTreeMap::from([(0, 0), (1, 0)]);
        rooms.push(Room { id, members, ..Room::default() });
    }
    let mut feeds = Vec::new();
    for user in &users {
        let mut ws = WsClient::connect(&app, user).await;
        let feed = ws.subscribe("changes", CHANGES, json!({})).await;
        feeds.push((ws, feed, HashMap::new()));
    }

    let mut runner = TestRunner::new(Config::default());
    let strategy = prop::collection::vec(step(), STEPS as usize);
    let steps = strategy.new_tree(&mut runner).expect("generated steps").current();
    for (n, step) in steps.iter().enumerate() {
        let done = apply(&app, &users, &mut rooms, step).await;
        let context = format!("after step {n}: {step:?} ({done})");
        for (user, (_, feed, last)) in feeds.iter_mut().enumerate() {
            check_counts(&app, &users[user], user, &rooms, &context).await;
            check_feed(feed, last, user, &rooms, &context).await;
        }
    }
}

/// Performs `step` through the API and in the model; returns what was done.
async fn apply(app: &TestApp, users: &[TestUser; 3], rooms: &mut [Room], step: &Step) -> String {
    let (user, room) = (step.user, &mut rooms[step.room]);
    let actor = &users[user];
    let member = room.members.contains_key(&user);
    match step.op {
        _ if !member => {
            data(
                app.gql(actor, "mutation($r: ID!) { joinRoom(roomId: $r) { id } }", json!({ "r": room.id }))
                    .await,
            );
            room.members.insert(user, room.last_seq());
            "joined".into()
        }
        Op::Send => {
            let message = send(app, actor, &room.id, "hello").await;
            let seq = int(&message["seq"]);
            room.messages.insert(seq, (id_of(&message), user, false));
            room.members.insert(user, seq);
            format!("sent {seq}")
        }
        Op::Read => {
            mark_read(app, actor, &room.id, None).await;
            let last = room.last_seq();
            room.members.entry(user).and_modify(|w| *w = (*w).max(last));
            "read".into()
        }
        Op::MarkUnread if room.last_seq() > 0 => {
            let seq = 1 + step.pick.index(room.last_seq() as usize) as i64;
            let query = "mutation($r: ID!, $s: Int!) { markUnread(roomId: $r, seq: $s) { lastReadSeq } }";
            data(app.gql(actor, query, json!({ "r": room.id, "s": seq })).await);
            room.members.insert(user, seq - 1);
            format!("marked unread from {seq}")
        }
        Op::Delete | Op::Edit => {
            let own: Vec<i64> =
                room.messages.iter().filter(|(_, (_, a, d))| *a == user && !d).map(|(s, _)| *s).collect();
            let Some(&seq) = (!own.is_empty()).then(|| &own[step.pick.index(own.len())]) else {
                return "nothing of theirs to change".into();
            };
            let entry = room.messages.get_mut(&seq).expect("a message of the model");
            if matches!(step.op, Op::Delete) {
                let query = "mutation($m: ID!) { deleteMessage(messageId: $m) { id } }";
                data(app.gql(actor, query, json!({ "m": entry.0 })).await);
                entry.2 = true;
                format!("deleted {seq}")
            } else {
                let query =
                    "mutation($m: ID!) { editMessage(input: { messageId: $m, body: \"edited\" }) { id } }";
                data(app.gql(actor, query, json!({ "m": entry.0 })).await);
                format!("edited {seq}")
            }
        }
        Op::Leave if user != 0 => {
            data(
                app.gql(actor, "mutation($r: ID!) { leaveRoom(roomId: $r) }", json!({ "r": room.id })).await,
            );
            room.members.remove(&user);
            "left".into()
        }
        Op::Add | Op::Remove => {
            // Alice adds a non-member or removes a member other than herself.
            let others: Vec<usize> =
                (1..3).filter(|u| room.members.contains_key(u) == matches!(step.op, Op::Remove)).collect();
            let Some(&other) = (!others.is_empty()).then(|| &others[step.pick.index(others.len())]) else {
                return "nobody to add or remove".into();
            };
            let vars = json!({ "r": room.id, "u": users[other].id });
            if matches!(step.op, Op::Add) {
                let query = "mutation($r: ID!, $u: ID!) { addMembers(roomId: $r, userIds: [$u]) { id } }";
                data(app.gql(&users[0], query, vars).await);
                room.members.insert(other, room.last_seq());
                format!("added user {other}")
            } else {
                let query = "mutation($r: ID!, $u: ID!) { removeMember(roomId: $r, userId: $u) { id } }";
                data(app.gql(&users[0], query, vars).await);
                room.members.remove(&other);
                format!("removed user {other}")
            }
        }
        _ => "nothing".into(),
    }
}

/// `room { unreadCount }` for each room the user is in, and one `unreadCounts` for both.
async fn check_counts(app: &TestApp, viewer: &TestUser, user: usize, rooms: &[Room], context: &str) {
    let mut expected = HashMap::new();
    for room in rooms {
        let Some(count) = room.unread(user) else { continue };
        let single = data(
            app.gql(viewer, "query($r: ID!) { room(id: $r) { unreadCount } }", json!({ "r": room.id })).await,
        );
        assert_eq!(
            int(&single["room"]["unreadCount"]),
            count,
            "room.unreadCount of user {user} in {} {context}",
            room.id
        );
        if count > 0 {
            expected.insert(room.id.clone(), count);
        }
    }
    let ids: Vec<&str> = rooms.iter().map(|r| r.id.as_str()).collect();
    let query = "query($ids: [ID!]!) { unreadCounts(roomIds: $ids) { roomId unreadCount } }";
    let batch = data(app.gql(viewer, query, json!({ "ids": ids })).await);
    let listed: HashMap<String, i64> = batch["unreadCounts"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| (room_id(c), int(&c["unreadCount"])))
        .collect();
    assert_eq!(listed, expected, "unreadCounts of user {user} {context}");
}

/// The last `unreadCountChanged` per room equals the model wherever one was received
/// (events may trail the mutation's answer a little: waits up to 3 s for them).
async fn check_feed(
    feed: &mut Subscription,
    last: &mut HashMap<String, i64>,
    user: usize,
    rooms: &[Room],
    context: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        while let Ok(Some(frame)) = feed.poll(Duration::ZERO).await {
            record(&frame, last);
        }
        let wrong: Vec<(&str, i64, i64)> = rooms
            .iter()
            .filter_map(|room| {
                let expected = room.unread(user)?;
                let seen = *last.get(&room.id)?;
                (seen != expected).then_some((room.id.as_str(), seen, expected))
            })
            .collect();
        if wrong.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "unreadCountChanged of user {user} (room, seen, model) {wrong:?} {context}"
        );
        if let Ok(Some(frame)) = feed.poll(Duration::from_millis(50)).await {
            record(&frame, last);
        }
    }
}

fn record(frame: &Value, last: &mut HashMap<String, i64>) {
    let change = &frame["payload"]["data"]["unreadCountChanged"];
    last.insert(room_id(change), int(&change["unreadCount"]));
}

fn room_id(value: &Value) -> String {
    value["roomId"].as_str().expect("a roomId").to_owned()
}

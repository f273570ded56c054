//! Races that must come out right on both databases: concurrent senders get
//! gap-free, unique seqs; a `clientId` retried in parallel stores one
//! message; parallel `openDirectRoom` calls agree on one room; parallel
//! channel creations with one name yield one channel and CONFLICTs; sends
//! that share a commit (PostgreSQL) still get their own answers, and so do sends into many
//! rooms that share a statement; parallel joins of one user announce one join.
//!
//! The checks are `pub(crate)` so `cross_instance` runs them across two
//! processes as well.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::api::{
    all_messages, create_channel, create_channel_query, create_private_channel, id_of, latest_seq,
    my_room_ids, send_query, seqs, spawn_sender, unread_count,
};
use crate::helpers::services::HeldTransaction;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, QUIET, TestApp, TestUser, assert_error_code, data, spawn_app};

backend_tests!(
    concurrent_senders_get_gap_free_seqs,
    concurrent_client_id_retries_store_one_message,
    concurrent_direct_room_opens_agree,
    concurrent_channel_creates_with_one_name_conflict,
    concurrent_sends_keep_their_own_answers,
    sends_into_many_rooms_at_once_keep_their_own_answers,
    concurrent_joins_announce_one_join,
);

/// `tasks` senders (round-robin over `apps` and `authors`), `per_task`
/// messages each, all at once into `room`: seqs are exactly 1..=N.
pub(crate) async fn assert_gap_free_concurrent_sends(
    apps: &[&TestApp],
    authors: &[&TestUser],
    room: &str,
    tasks: usize,
    per_task: usize,
) {
    let senders: Vec<_> = (0..tasks)
        .map(|t| {
            spawn_sender(
                apps[t % apps.len()],
                authors[t % authors.len()],
                room,
                &format!("task{t}"),
                per_task,
                Duration::ZERO,
            )
        })
        .collect();
    let mut returned = Vec::new();
    for sender in senders {
        let seqs = sender.await.expect("a sender task");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "one sender's seqs increase: {seqs:?}");
        returned.extend(seqs);
    }
    let total = i64::try_from(tasks * per_task).expect("a small count");
    returned.sort_unstable();
    assert_eq!(returned, (1..=total).collect::<Vec<_>>(), "every response got its own seq");

    let stored = all_messages(apps[0], authors[0], room).await;
    assert_eq!(seqs(&stored), (1..=total).collect::<Vec<_>>(), "stored seqs are 1..=N, no gap, no duplicate");
    let mut bodies: Vec<String> =
        stored.iter().map(|m| m["body"].as_str().expect("body").to_owned()).collect();
    bodies.sort();
    let mut expected: Vec<String> =
        (0..tasks).flat_map(|t| (1..=per_task).map(move |i| format!("task{t} {i}"))).collect();
    expected.sort();
    assert_eq!(bodies, expected, "every message stored exactly once");
    assert_eq!(latest_seq(apps[0], authors[0], room).await, total);
}

/// 16 identical `sendMessage` calls with one `clientId` at once (round-robin
/// over `apps`): one stored message, every response carries it.
pub(crate) async fn assert_one_message_for_parallel_retries(
    apps: &[&TestApp],
    author: &TestUser,
    room: &str,
) {
    let input = json!({ "roomId": room, "body": "exactly once", "clientId": "retry-42" });
    let attempts = (0..16).map(|i| {
        let (app, input) = (apps[i % apps.len()], input.clone());
        async move { app.gql(author, &send_query(), json!({ "input": input })).await }
    });
    let messages: Vec<Value> =
        join_all(attempts).await.into_iter().map(|r| data(r)["sendMessage"].clone()).collect();
    for message in &messages {
        assert_eq!(
            (message["id"].clone(), message["seq"].clone()),
            (messages[0]["id"].clone(), json!(1)),
            "{messages:#?}"
        );
    }
    assert_eq!(latest_seq(apps[0], author, room).await, 1);
    assert_eq!(all_messages(apps[0], author, room).await.len(), 1);
}

async fn concurrent_senders_get_gap_free_seqs(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "busy", &[&bob]).await;

    assert_gap_free_concurrent_sends(&[&app], &[&alice, &bob], &room, 8, 25).await;
}

async fn concurrent_client_id_retries_store_one_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "retries", &[]).await;

    assert_one_message_for_parallel_retries(&[&app], &alice, &room).await;
}

async fn concurrent_direct_room_opens_agree(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let query = "mutation($ids: [ID!]!) { openDirectRoom(userIds: $ids) { id } }";

    let opens = (0..8).map(|i| {
        let (app, viewer, other) = if i % 2 == 0 { (&app, &alice, &bob) } else { (&app, &bob, &alice) };
        async move { app.gql(viewer, query, json!({ "ids": [other.id] })).await }
    });
    let ids: Vec<String> =
        join_all(opens).await.into_iter().map(|r| id_of(&data(r)["openDirectRoom"])).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one room for one member set: {ids:?}");
    assert_eq!(my_room_ids(&app, &alice, json!({ "kind": "DIRECT" })).await, vec![ids[0].clone()]);
}

async fn concurrent_channel_creates_with_one_name_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);

    let creates =
        (0..8).map(|i| {
            let (app, creator) = (&app, if i % 2 == 0 { &alice } else { &bob });
            async move {
                app.gql(creator, &create_channel_query(), json!({ "input": { "name": "launch" } })).await
            }
        });
    let responses = join_all(creates).await;
    let created: Vec<&Value> = responses.iter().filter(|r| r["errors"].is_null()).collect();
    assert_eq!(created.len(), 1, "exactly one channel named launch: {responses:#?}");
    for failed in responses.iter().filter(|r| !r["errors"].is_null()) {
        assert_error_code(failed, "CONFLICT");
    }
    let channels = [
        my_room_ids(&app, &alice, json!({ "kind": "CHANNEL" })).await,
        my_room_ids(&app, &bob, json!({ "kind": "CHANNEL" })).await,
    ]
    .concat();
    assert_eq!(channels, vec![id_of(&created[0]["data"]["createChannel"])]);
}

/// 30 sends into one room at once, a third of them from someone who may not see it: the
/// members' messages get seqs 1..=20, the others NOT_FOUND with nothing stored. On
/// PostgreSQL such sends share commits (`messages::group_commit`), and this shows they did.
async fn concurrent_sends_keep_their_own_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, mallory) = (org.user("alice").await, org.user("bob").await, org.user("mallory").await);
    let room = create_private_channel(&app, &alice, "busy", &[&bob]).await;

    let sends = (0..30).map(|i| {
        let (app, room, author) = (&app, &room, [&alice, &bob, &mallory][i % 3]);
        async move {
            let input = json!({ "roomId": room, "body": format!("m{i}") });
            (i % 3 == 2, app.gql(author, &send_query(), json!({ "input": input })).await)
        }
    });
    let mut returned = Vec::new();
    for (refused, response) in join_all(sends).await {
        if refused {
            assert_error_code(&response, "NOT_FOUND");
        } else {
            returned.push(data(response)["sendMessage"]["seq"].as_i64().expect("a seq"));
        }
    }
    returned.sort_unstable();
    assert_eq!(returned, (1..=20).collect::<Vec<_>>(), "every member's send got its own seq");
    let stored = all_messages(&app, &alice, &room).await;
    assert_eq!(seqs(&stored), (1..=20).collect::<Vec<_>>());
    let mut bodies: Vec<&str> = stored.iter().filter_map(|m| m["body"].as_str()).collect();
    bodies.sort_unstable();
    let members = (0..30).filter(|i| i % 3 != 2).map(|i| format!("m{i}")).collect::<Vec<_>>();
    let mut expected: Vec<&str> = members.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(bodies, expected, "the members' messages, none of the refused ones");
    if backend == Backend::PostgresRedis {
        assert!(app.metric("parley_sends_grouped_total").await > 0.0, "no two sends shared a commit");
    }
}

/// One send into each of ten channels at once, as a busy instance meets them. On PostgreSQL
/// a held row forces them to meet: they run as one statement (`messages::group_commit`), and
/// each still gets its own answer: members their seq (with the attachments they sent),
/// another organisation's user NOT_FOUND, a non-member of a private channel NOT_FOUND, a reply
/// to another room's message NOT_FOUND. Each stored message moved its sender's watermark and
/// got its one webhook delivery; a retried `clientId` gets the message it stored first.
async fn sends_into_many_rooms_at_once_keep_their_own_answers(backend: Backend) {
    const WEBHOOK: &str =
        "mutation($input: CreateOutgoingWebhookInput!) { createOutgoingWebhook(input: $input) { secret } }";
    const DELIVERIES: &str =
        "{ notificationDeliveries(first: 100) { edges { node { event messageId roomId } } } }";
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let (carol, mallory) = (org.user("carol").await, app.create_org().await.user("mallory").await);
    let hook = json!({ "url": "http://127.0.0.1:9/hook", "events": ["MESSAGE_ADDED"] });
    app.ok(&ada, WEBHOOK, json!({ "input": hook })).await;
    // Room 7 is private: carol, not in it, may not see it (and webhooks do not see it).
    let mut rooms = Vec::new();
    for r in 0..10 {
        let name = format!("lane-{r}");
        let room = match r {
            7 => create_private_channel(&app, &ada, &name, &[&bob]).await,
            _ => create_channel(&app, &ada, &name, &[&bob]).await,
        };
        rooms.push(room);
    }
    // One send per room first: afterwards this instance knows each room is a channel, which
    // is what lets a send join a batch.
    let mut first = Vec::new();
    for room in &rooms {
        let input = json!({ "roomId": room, "body": "first" });
        first
            .push(data(app.gql(&ada, &send_query(), json!({ "input": input })).await)["sendMessage"].clone());
    }
    let file = json!([{ "name": "a.txt", "url": "https://files.example/a.txt", "contentType": "text/plain", "size": 3 }]);
    let refused = [6, 7, 8];
    let sends: Vec<(&TestUser, Value)> = rooms
        .iter()
        .enumerate()
        .map(|(r, room)| match r {
            6 => (&mallory, json!({ "roomId": room, "body": "let me in" })),
            7 => (&carol, json!({ "roomId": room, "body": "let me in" })),
            8 => (&bob, json!({ "roomId": room, "body": "re", "replyToId": first[4]["id"] })),
            _ => {
                let attachments = if r % 2 == 0 { file.clone() } else { json!([]) };
                (&bob, json!({ "roomId": room, "body": format!("r{r}"), "attachments": attachments }))
            }
        })
        .collect();
    // The gate room's lane is busy with the gated send below, so this retry waits there and
    // runs alone: in a batch it would send the whole batch back to run alone.
    let gate = create_channel(&app, &ada, "lane-gate", &[&bob]).await;
    let retried = json!({ "roomId": gate, "body": "first", "clientId": "gate-first" });
    let gate_first = data(app.gql(&ada, &send_query(), json!({ "input": retried.clone() })).await);
    let batched = app.metric("parley_sends_batched_total").await;
    // On PostgreSQL the race is forced: a transaction holding the gate room's row stops a
    // send in the lane all rooms share, so the burst queues behind it and runs as one batch.
    let holder = HeldTransaction::room_row(backend, &gate).await;
    let query = send_query();
    let gated = app.gql(&ada, &query, json!({ "input": { "roomId": gate, "body": "gated" } }));
    let burst = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let retry = (&ada, retried.clone());
        let all = sends.iter().chain([&retry]);
        join_all(all.map(|(author, input)| app.gql(author, &query, json!({ "input": input })))).await
    };
    let release = async {
        if let Some(holder) = holder {
            tokio::time::sleep(Duration::from_secs(3)).await;
            holder.commit().await;
        }
    };
    let (gated, answers, ()) = tokio::join!(gated, burst, release);
    assert_eq!(data(gated)["sendMessage"]["seq"], json!(2));
    assert_eq!(
        answers[10]["data"]["sendMessage"], gate_first["sendMessage"],
        "the retry gets the first answer"
    );

    for (r, room) in rooms.iter().enumerate() {
        let stored = all_messages(&app, &ada, room).await;
        if refused.contains(&r) {
            assert_error_code(&answers[r], "NOT_FOUND");
            assert_eq!(seqs(&stored), vec![1], "room {r}: nothing stored");
            continue;
        }
        assert_eq!(answers[r]["data"]["sendMessage"]["seq"], json!(2), "room {r}: {}", answers[r]);
        assert_eq!(seqs(&stored), vec![1, 2], "room {r}");
        assert_eq!(stored[1]["body"], format!("r{r}"));
        assert_eq!(stored[1]["attachments"], if r % 2 == 0 { file.clone() } else { json!([]) });
        assert_eq!(unread_count(&app, &bob, room).await, 0, "room {r}: bob read up to his own message");
        assert_eq!(unread_count(&app, &ada, room).await, 1, "room {r}: bob's message is unread for ada");
    }
    let deliveries = app.ok(&ada, DELIVERIES, json!({})).await;
    let mut delivered: Vec<&str> = deliveries["notificationDeliveries"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["messageId"].as_str())
        .collect();
    delivered.sort_unstable();
    let mut stored: Vec<String> = Vec::new();
    for (r, room) in rooms.iter().enumerate().chain([(0, &gate)]) {
        if r != 7 {
            stored.extend(all_messages(&app, &ada, room).await.iter().map(id_of));
        }
    }
    stored.sort_unstable();
    assert_eq!(delivered, stored, "one webhook delivery per message stored in a public channel");
    if backend == Backend::PostgresRedis {
        let more = app.metric("parley_sends_batched_total").await - batched;
        assert!(more >= 10.0, "the sends into ten rooms shared a statement: {more} batched");
    }
}

/// A user joining one channel from several tabs at once (or an admin's simultaneous first
/// replies to a conversation) is one member, announced once: each join announces only the
/// row it wrote. On PostgreSQL the race is forced: a transaction holding the room's row
/// (as a rename would) stops both joins at their insert, past their check for an existing
/// membership; SQLite's writes take turns.
async fn concurrent_joins_announce_one_join(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, carol) = (org.user("alice").await, org.user("carol").await);
    let open = create_channel(&app, &carol, "open", &[]).await;
    let mut ws = WsClient::connect(&app, &alice).await;
    let query = "subscription { roomUpdated { roomId reason } }";
    let mut updates = ws.subscribe("rooms", query, json!({})).await;

    let holder = HeldTransaction::room_row(backend, &open).await;
    let join = "mutation($id: ID!) { joinRoom(roomId: $id) { id } }";
    let joins = join_all((0..4).map(|_| app.gql(&alice, join, json!({ "id": open }))));
    let release = async {
        if let Some(holder) = holder {
            tokio::time::sleep(Duration::from_millis(500)).await;
            holder.commit().await;
        }
    };
    for joined in tokio::join!(joins, release).0 {
        assert_eq!(data(joined)["joinRoom"]["id"], json!(open));
    }
    let seen = updates.drain("roomUpdated", QUIET).await;
    let count =
        |reason: &str| seen.iter().filter(|u| u["roomId"] == json!(open) && u["reason"] == reason).count();
    // MEMBERS_CHANGED reaches alice only if her subscription follows the room by then.
    assert!(count("JOINED") == 1 && count("MEMBERS_CHANGED") <= 1, "{seen:#?}");
    let members = "query($id: ID!) { room(id: $id) { members { totalCount } } }";
    assert_eq!(app.ok(&alice, members, json!({ "id": open })).await["room"]["members"]["totalCount"], 2);
}

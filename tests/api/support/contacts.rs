//! Which stored contact an inbound message is from, and which way it is stored: PostgreSQL's
//! one statement (`settled`) for a message into an existing conversation with nothing to
//! fill in, the transactional way for the rest, each counted on `/metrics`; messages that
//! arrive together share that statement, and each is still stored once, in its place.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::*;
use crate::helpers::api::{all_messages, seqs};
use crate::helpers::services::HeldTransaction;
use crate::helpers::{Backend, spawn_app};

backend_tests!(
    contacts_are_found_by_reference_then_phone_then_email,
    a_phone_given_later_is_kept_and_finds_the_conversation,
    messages_arriving_together_are_each_stored_once_in_their_place,
);

/// Which stored contact a message is from: the first of external reference, phone and email
/// that matches one; a name, phone, email or reference fills in once (unless another contact
/// holds it) and is never overwritten. On PostgreSQL a message
/// into an existing conversation takes the one-statement way, which must pick the same.
async fn contacts_are_found_by_reference_then_phone_then_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([_, sam], id, secret) = an_inbox(&app, "Any").await;
    let message = |external_id: &str, contact: Value| json!({ "externalId": external_id, "source": "api", "contact": contact, "body": external_id });
    let room_of = |answer: (u16, Value)| {
        assert!(answer.0 == 201, "{answer:?}");
        answer.1["conversationId"].as_str().expect("a conversation").to_owned()
    };
    let (phone, email) = ("+41790000801", "dana@example.org");
    let by_phone = room_of(post(&app, &id, &secret, &message("c-1", json!({ "phone": phone }))).await);
    let by_email = room_of(post(&app, &id, &secret, &message("c-2", json!({ "email": email }))).await);
    let by_ref = room_of(post(&app, &id, &secret, &message("c-3", json!({ "externalRef": "crm-1" }))).await);
    assert!(by_phone != by_email && by_email != by_ref && by_phone != by_ref);
    let cases = [
        ("c-4", json!({ "phone": phone, "email": email }), &by_phone),
        ("c-5", json!({ "externalRef": "crm-unknown", "email": email }), &by_email),
        ("c-6", json!({ "externalRef": "crm-1", "phone": phone, "email": email }), &by_ref),
        // c-5 (an API message, whose reference its gateway vouches for) taught the email's
        // contact the reference, which now decides first.
        ("c-7", json!({ "externalRef": "crm-unknown", "phone": phone, "email": email }), &by_email),
    ];
    for (external_id, contact, expected) in cases {
        let room = room_of(post(&app, &id, &secret, &message(external_id, contact.clone())).await);
        assert_eq!(&room, expected, "{contact}");
    }
    let name = |room: String| {
        let (app, sam) = (&app, &sam);
        async move { conversation(app, sam, &room).await["conversation"]["contact"]["displayName"].clone() }
    };
    assert_eq!(name(by_phone.clone()).await, Value::Null);
    room_of(post(&app, &id, &secret, &message("c-8", json!({ "phone": phone, "name": "Dana" }))).await);
    assert_eq!(name(by_phone.clone()).await, "Dana", "a first name fills in");
    room_of(post(&app, &id, &secret, &message("c-9", json!({ "phone": phone, "name": "Other" }))).await);
    assert_eq!(name(by_phone.clone()).await, "Dana", "and stays");
    let (status, answer) = post(&app, &id, &secret, &message("c-9", json!({ "phone": phone }))).await;
    // c-1, c-4, c-8, c-9 (c-7 went to the email's contact).
    assert_eq!((status, &answer["seq"]), (200, &json!(4)), "a redelivery, {answer}");
    // How each was stored: on PostgreSQL messages into an existing conversation with nothing
    // to fill in took the one statement (c-4, c-6, c-7, c-9: an API message vouches for no
    // phone or email); new conversations, the reference (c-5) and the first name (c-8) the
    // transactional way.
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("GET /metrics");
    let metrics = metrics.text().await.expect("metrics");
    let stored = |way: &str| {
        let series = format!("parley_inbound_messages_total{{way=\"{way}\"}} ");
        metrics.lines().find_map(|line| line.strip_prefix(&series)).unwrap_or("0").to_owned()
    };
    let expected = match backend {
        Backend::PostgresRedis => ("4", "5"),
        Backend::Sqlite => ("0", "9"),
    };
    assert_eq!((stored("statement").as_str(), stored("transaction").as_str()), expected, "{metrics}");
}

/// The customer who wrote by email and then by SMS, giving both: their phone is kept, so an
/// agent's reply can go by SMS, and their next SMS (phone only) lands in the same
/// conversation instead of opening a second one with a second contact.
async fn a_phone_given_later_is_kept_and_finds_the_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([_, sam], id, secret) = an_inbox(&app, "Any").await;
    let (phone, email) = ("+41790000901", "dana@example.org");
    let message = |external_id: &str, source: &str, contact: Value| json!({ "externalId": external_id, "source": source, "contact": contact, "body": external_id });
    let mut rooms = Vec::new();
    for (external_id, source, contact) in [
        ("e-1", "email", json!({ "email": email })),
        ("s-1", "sms", json!({ "phone": phone, "email": email })),
        ("s-2", "sms", json!({ "phone": phone })),
    ] {
        let (status, answer) = post(&app, &id, &secret, &message(external_id, source, contact)).await;
        assert_eq!(status, 201, "{answer}");
        rooms.push(answer["conversationId"].clone());
    }
    assert!(rooms.iter().all(|room| *room == rooms[0]), "one conversation: {rooms:?}");
    let room = rooms[0].as_str().expect("a conversation id");
    let contact = conversation(&app, &sam, room).await["conversation"]["contact"].clone();
    assert_eq!((contact["phone"].as_str(), contact["email"].as_str()), (Some(phone), Some(email)));
}

/// A burst of inbound messages while one is being stored. On PostgreSQL the race is forced: a
/// transaction holds one conversation's row, so that conversation's message waits in the
/// statement, and the burst queues behind it and runs as one statement (`group_commit`'s
/// inbound lane). In the burst: six conversations' next messages, a second one into the
/// first conversation (its room is taken in the batch: it runs again alone), a new contact
/// (the transactional way) and a redelivery. Each gets its own answer, and every
/// conversation's seqs run on without a gap.
async fn messages_arriving_together_are_each_stored_once_in_their_place(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([_, sam], id, secret) = an_inbox(&app, "Burst").await;
    let phone = |c: usize| format!("+4179000{c:04}");
    // Conversations 0–5 and the gate's, each opened by a first message and assigned.
    let mut rooms = Vec::new();
    for c in 0..7 {
        let (status, opened) = post(&app, &id, &secret, &sms(&format!("b-{c}-1"), &phone(c), "hello")).await;
        assert_eq!(status, 201, "{opened}");
        rooms.push(opened["conversationId"].as_str().expect("a conversation").to_owned());
    }
    let (gate, first_of_1) = (&rooms[6], sms("b-1-1", &phone(1), "hello"));
    let batched = app.metric("parley_inbound_batched_total").await;
    let holder = HeldTransaction::room_row(backend, gate).await;
    let gated = sms("b-6-2", &phone(6), "gated");
    let gated = post(&app, &id, &secret, &gated);
    let mut burst: Vec<Value> =
        (0..6).map(|c| sms(&format!("b-{c}-2"), &phone(c), &format!("m{c}"))).collect();
    burst.extend([sms("b-0-3", &phone(0), "m0 again"), sms("b-new-1", &phone(99), "new"), first_of_1]);
    let burst = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        join_all(burst.iter().map(|message| post(&app, &id, &secret, message))).await
    };
    let release = async {
        if let Some(holder) = holder {
            // Long enough for the burst to queue on a busy machine.
            tokio::time::sleep(Duration::from_secs(6)).await;
            holder.commit().await;
        }
    };
    let (gated, answers, ()) = tokio::join!(gated, burst, release);
    assert_eq!((gated.0, &gated.1["seq"]), (201, &json!(2)), "{gated:?}");
    for (c, (status, answer)) in answers[1..6].iter().enumerate().map(|(c, a)| (c + 1, a)) {
        assert_eq!((*status, &answer["seq"]), (201, &json!(2)), "conversation {c}: {answer}");
        assert_eq!(answer["conversationId"], json!(rooms[c]));
    }
    let mut zero: Vec<i64> =
        [&answers[0], &answers[6]].iter().map(|(_, a)| a["seq"].as_i64().unwrap_or(0)).collect();
    zero.sort_unstable();
    assert_eq!(zero, [2, 3], "both of conversation 0's messages, each its own seq: {answers:?}");
    assert_eq!((answers[7].0, &answers[7].1["seq"]), (201, &json!(1)), "a new contact's first message");
    assert_eq!(
        (answers[8].0, &answers[8].1["seq"]),
        (200, &json!(1)),
        "the redelivery gets the stored message"
    );
    for (c, room) in rooms.iter().enumerate() {
        let stored = all_messages(&app, &sam, room).await;
        let expected: Vec<i64> = if c == 0 { vec![1, 2, 3] } else { vec![1, 2] };
        assert_eq!(seqs(&stored), expected, "conversation {c}");
    }
    if backend == Backend::PostgresRedis {
        // Conversations 0–5's messages at least (a redelivery met in the batch can send its
        // conversation's new message to run alone).
        let more = app.metric("parley_inbound_batched_total").await - batched;
        assert!(more >= 5.0, "the burst shared a statement: {more} batched");
    }
}

//! Which stored contact an inbound message is from, and which way it is stored: PostgreSQL's
//! one statement (`settled`) for a message into an existing conversation with nothing to
//! fill in, the transactional way for the rest, each counted on `/metrics`.

use serde_json::{Value, json};

use super::*;
use crate::helpers::{Backend, spawn_app};

backend_tests!(contacts_are_found_by_reference_then_phone_then_email,);

/// Which stored contact a message is from: the first of external reference, phone and email
/// that matches one; a name fills in once and is never overwritten. On PostgreSQL a message
/// into an existing conversation takes the one-statement way, which must pick the same.
async fn contacts_are_found_by_reference_then_phone_then_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let sam = org.user_with_role("sam", "agent").await;
    let (id, secret) = inbox(&app, &ada, json!({ "name": "Any" }), &[&sam]).await;
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
        ("c-7", json!({ "externalRef": "crm-unknown", "phone": phone, "email": email }), &by_phone),
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
    assert_eq!((status, &answer["seq"]), (200, &json!(5)), "a redelivery, {answer}");
    // How each was stored: on PostgreSQL every message into an existing conversation with
    // nothing to fill in took the one statement (c-4 to c-7, c-9); new conversations and the
    // first name the transactional way.
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("GET /metrics");
    let metrics = metrics.text().await.expect("metrics");
    let stored = |way: &str| {
        let series = format!("parley_inbound_messages_total{{way=\"{way}\"}} ");
        metrics.lines().find_map(|line| line.strip_prefix(&series)).unwrap_or("0").to_owned()
    };
    let expected = match backend {
        Backend::PostgresRedis => ("5", "4"),
        Backend::Sqlite => ("0", "9"),
    };
    assert_eq!((stored("statement").as_str(), stored("transaction").as_str()), expected, "{metrics}");
}

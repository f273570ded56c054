//! What agents see live of their conversations: frames that show the conversation as it
//! stands, and the first message of every new conversation in a burst.

use serde_json::{Value, json};

use super::*;
use crate::helpers::api::send;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, spawn_app};

backend_tests!(
    live_frames_show_the_conversation_as_it_stands,
    agents_see_the_first_message_of_every_new_conversation_in_a_burst,
);

/// A live frame's room is the one the message left behind, support side included: what an
/// agent's conversation view renders without asking again.
async fn live_frames_show_the_conversation_as_it_stands(backend: Backend) {
    let app = spawn_app(backend).await;
    let ([_, sam], id, secret) = an_inbox(&app, "SMS").await;
    let (status, stored) = post(&app, &id, &secret, &sms("m-1", "+41790000001", "hi")).await;
    assert_eq!(status, 201, "{stored}");
    let room_id = stored["conversationId"].as_str().expect("a conversation").to_owned();
    let mut ws = WsClient::connect(&app, &sam).await;
    let mut live = ws
        .subscribe(
            "live",
            "subscription { messageAdded { body room { id conversation { status assignee { handle } \
             contact { displayName } inbox { name } } } } }",
            json!({}),
        )
        .await;
    ws.settle().await;

    let expected = |body: &str| {
        json!({ "body": body, "room": { "id": room_id, "conversation": {
            "status": "OPEN", "assignee": { "handle": "sam" },
            "contact": { "displayName": "Customer +41790000001" }, "inbox": { "name": "SMS" } } } })
    };
    let (status, _) = post(&app, &id, &secret, &sms("m-2", "+41790000001", "still there?")).await;
    assert_eq!(status, 201);
    assert_eq!(live.next("messageAdded").await, expected("still there?"));
    send(&app, &sam, &room_id, "yes").await;
    assert_eq!(live.next("messageAdded").await, expected("yes"));
}

async fn agents_see_the_first_message_of_every_new_conversation_in_a_burst(backend: Backend) {
    // More than a user topic's buffer (16): the agent's subscription lags, resyncs, and must
    // still deliver every conversation's first message.
    const N: usize = 60;
    let app = spawn_app(backend).await;
    let ([_, sam], id, secret) = an_inbox(&app, "Burst").await;
    let mut ws = WsClient::connect(&app, &sam).await;
    let mut live = ws.subscribe("live", "subscription { messageAdded { body } }", json!({})).await;
    ws.settle().await;
    let messages: Vec<Value> = (0..N)
        .map(|n| sms(&format!("burst-{n}"), &format!("+417900011{n:02}"), &format!("first {n}")))
        .collect();
    let posts = messages.iter().map(|m| post(&app, &id, &secret, m));
    let answers = futures_util::future::join_all(posts).await;
    assert!(answers.iter().all(|(status, _)| *status == 201), "{answers:?}");
    let mut bodies: Vec<String> = Vec::new();
    for _ in 0..N {
        bodies.push(live.next("messageAdded").await["body"].as_str().expect("a body").to_owned());
    }
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), N, "every first message, once");
}

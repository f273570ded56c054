//! Webhook deliveries across instances, on PostgreSQL + Redis: two instances delivering each
//! notification once, a delivery that outlives the instance that first tried it (between two
//! attempts, and cut off mid-attempt until its lease ends; a lease another transaction holds
//! delaying nothing else), and targets checked again at delivery.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::{PAST_A_POLL, deliveries, delivery_of, everything_to, register};
use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::receiver::Receiver;
use crate::helpers::services::{HeldTransaction, OwnDatabase};
use crate::helpers::{
    Backend, TestApp, TestUser, WAIT, spawn_app_alone, spawn_app_alone_with, spawn_app_with,
};

pg_test!(
    two_instances_deliver_each_notification_once,
    a_delivery_outlives_the_instance_that_tried_it,
    an_attempt_cut_off_by_a_crash_is_retried_when_its_lease_ends,
    an_expired_lease_another_transaction_holds_delays_no_other_delivery,
    targets_are_checked_again_at_delivery,
);

async fn two_instances_deliver_each_notification_once() {
    let (_database, a) = spawn_app_alone(Backend::PostgresRedis).await;
    let b = a.spawn_second_instance().await;
    let receiver = Receiver::start().await;
    let org = a.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let general = create_channel(&a, &ada, "general", &[&bob]).await;
    register(&a, &ada, everything_to(&receiver.url)).await;

    let mut sent = HashSet::new();
    for i in 0..40 {
        let through = if i % 2 == 0 { &a } else { &b };
        sent.insert(
            send(through, &bob, &general, &format!("message {i}")).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let received = receiver.wait_for(40, WAIT).await;
    tokio::time::sleep(PAST_A_POLL).await;
    let received_now = receiver.received();
    assert_eq!(received_now.len(), 40, "each notification once: {} requests", received_now.len());
    let keys: HashSet<&str> = received.iter().map(|r| r.header("idempotency-key")).collect();
    assert_eq!(keys.len(), 40);
    let messages: HashSet<String> =
        received.iter().map(|r| r.json()["message"]["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(messages, sent);
}

async fn a_delivery_outlives_the_instance_that_tried_it() {
    let (_database, mut a) =
        spawn_app_alone_with(Backend::PostgresRedis, &[("PARLEY_WEBHOOK_RETRY_BASE_MS", "1500")]).await;
    let receiver = Receiver::start().await;
    let org = a.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let general = create_channel(&a, &ada, "general", &[&bob]).await;
    register(&a, &ada, everything_to(&receiver.url)).await;

    receiver.answer_with(&[500]);
    let message = id_of(&send(&a, &bob, &general, "survives").await);
    receiver.wait_for(1, WAIT).await;
    // Killed between two attempts: the failed one is recorded, the retry is due in 0.75–2.25 s.
    let pending = delivery_of(&a, &ada, &message, "PENDING").await;
    assert_eq!((pending["attempts"].as_i64(), pending["lastError"].as_str()), (Some(1), Some("HTTP 500")));
    a.kill().await;
    let b = a.spawn_second_instance().await;
    let received = receiver.wait_for(2, WAIT).await;
    assert_eq!((received[0].status, received[1].status), (500, 200));
    assert_eq!(received[0].header("idempotency-key"), received[1].header("idempotency-key"));
    let delivered = delivery_of(&b, &ada, &message, "DELIVERED").await;
    assert_eq!(delivered["attempts"], 2);
}

/// A deployment whose instance A died mid-attempt: the first post of `body`'s delivery hangs
/// (attempts time out after 1 s, so a claim's lease is 3 s) and A is killed while it waits,
/// before it can record anything, so the row stays leased.
struct CutOff {
    /// Killed; `spawn_second_instance` starts another on the same deployment.
    a: TestApp,
    receiver: Receiver,
    ada: TestUser,
    bob: TestUser,
    general: String,
    message: String,
    /// Dropped after the servers that use it.
    database: Option<OwnDatabase>,
}

async fn cut_off_mid_attempt(body: &str) -> CutOff {
    let (database, mut a) =
        spawn_app_alone_with(Backend::PostgresRedis, &[("PARLEY_WEBHOOK_TIMEOUT_MS", "1000")]).await;
    let receiver = Receiver::start().await;
    let org = a.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let general = create_channel(&a, &ada, "general", &[&bob]).await;
    register(&a, &ada, everything_to(&receiver.url)).await;
    receiver.stall_with(&[Duration::from_secs(5)]);
    let message = id_of(&send(&a, &bob, &general, body).await);
    receiver.wait_for(1, WAIT).await;
    a.kill().await;
    CutOff { a, receiver, ada, bob, general, message, database }
}

async fn an_attempt_cut_off_by_a_crash_is_retried_when_its_lease_ends() {
    let CutOff { a, receiver, ada, message, database: _database, .. } = cut_off_mid_attempt("cut off").await;
    let b = a.spawn_second_instance().await;
    let received = receiver.wait_for(2, WAIT).await;
    assert_eq!(received[0].header("idempotency-key"), received[1].header("idempotency-key"));
    let delivered = delivery_of(&b, &ada, &message, "DELIVERED").await;
    assert_eq!(delivered["attempts"], 2, "the cut-off attempt counts");
}

async fn an_expired_lease_another_transaction_holds_delays_no_other_delivery() {
    let CutOff { a, receiver, ada, bob, general, message: held, database } =
        cut_off_mid_attempt("held").await;
    // Another transaction holds that row (as one settling it, or another instance expiring
    // it, would for a moment) until the test lets go.
    let url = database.as_ref().map(|d| d.url.clone()).expect("a database of its own");
    let leased = "SELECT count(*) FROM (SELECT id FROM notification_deliveries \
        WHERE status = 'delivering' FOR UPDATE) AS held;";
    let (holder, locked) = HeldTransaction::hold(&url, leased).await;
    assert_eq!(locked.as_deref(), Some("1"), "the leased row is held");

    // Past the lease, a claim on B meets the expired, held row first.
    let b = a.spawn_second_instance().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let free = id_of(&send(&b, &bob, &general, "free").await);
    let received = receiver.wait_for(2, WAIT).await;
    assert_eq!(received[1].json()["message"]["id"], free.as_str(), "delivered while the other row is held");

    holder.commit().await;
    let received = receiver.wait_for(3, WAIT).await;
    assert_eq!(received[2].json()["message"]["id"], held.as_str());
    assert_eq!(received[0].header("idempotency-key"), received[2].header("idempotency-key"));
    let delivered = delivery_of(&b, &ada, &held, "DELIVERED").await;
    assert_eq!(delivered["attempts"], 2, "the cut-off attempt counts");
}

async fn targets_are_checked_again_at_delivery() {
    let (database, mut allowed) = spawn_app_alone(Backend::PostgresRedis).await;
    let receiver = Receiver::start().await;
    let org = allowed.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let general = create_channel(&allowed, &ada, "general", &[&bob]).await;
    // Registered while private targets were allowed: an IP literal and a name for loopback.
    register(&allowed, &ada, everything_to(&receiver.url)).await;
    register(&allowed, &ada, everything_to(&receiver.url.replace("127.0.0.1", "localhost"))).await;
    allowed.kill().await;

    let strict = [
        ("DATABASE_URL", database.as_ref().map_or("", |d| d.url.as_str())),
        ("PARLEY_WEBHOOK_ALLOW_PRIVATE", "false"),
        ("PARLEY_WEBHOOK_MAX_ATTEMPTS", "2"),
    ];
    let app = spawn_app_with(Backend::PostgresRedis, &strict).await;
    let message = id_of(&send(&app, &bob, &general, "stays inside").await);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let all = deliveries(&app, &ada).await;
        let failed: Vec<&Value> =
            all.iter().filter(|d| d["messageId"] == message.as_str() && d["status"] == "FAILED").collect();
        if failed.len() == 2 {
            assert!(failed.iter().any(|d| d["lastError"] == "url: not a public address"), "{failed:#?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "both deliveries fail: {all:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.received().len(), 0, "nothing reached the loopback receiver");
}

//! Settled deliveries are pruned after their retention; pending ones stay.

use std::time::Duration;

use serde_json::Value;

use super::{deliveries, delivery_of, everything_to, register};
use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::receiver::Receiver;
use crate::helpers::{Backend, WAIT, spawn_app_alone_with};

backend_tests!(settled_deliveries_are_pruned_after_their_retention);

/// With a retention of 1 s, a delivered row leaves `notificationDeliveries` a few seconds after
/// its attempt (its 3 s lease, then the retention); a delivery still waiting for its retry stays.
async fn settled_deliveries_are_pruned_after_their_retention(backend: Backend) {
    let settings = [
        ("PARLEY_DELIVERY_RETENTION_SECS", "1"),
        ("PARLEY_WEBHOOK_TIMEOUT_MS", "1000"),
        ("PARLEY_WEBHOOK_RETRY_BASE_MS", "600000"),
    ];
    let (_database, app) = spawn_app_alone_with(backend, &settings).await;
    let receiver = Receiver::start().await;
    let org = app.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let general = create_channel(&app, &ada, "general", &[&bob]).await;
    register(&app, &ada, everything_to(&receiver.url)).await;

    let delivered = id_of(&send(&app, &bob, &general, "delivered, then forgotten").await);
    delivery_of(&app, &ada, &delivered, "DELIVERED").await;
    receiver.answer_with(&[500]);
    let waiting = id_of(&send(&app, &bob, &general, "retried in ten minutes").await);
    receiver.wait_for(2, WAIT).await;
    let retry = delivery_of(&app, &ada, &waiting, "PENDING").await;
    assert_eq!(retry["attempts"].as_i64(), Some(1));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let listed: Vec<Value> = deliveries(&app, &ada).await;
        if listed.iter().all(|d| d["messageId"] != delivered.as_str()) {
            let ids: Vec<&str> = listed.iter().filter_map(|d| d["messageId"].as_str()).collect();
            assert_eq!(ids, [waiting.as_str()], "the pending delivery stays");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the delivered row was never pruned: {listed:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

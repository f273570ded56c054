//! Settled deliveries are pruned after their retention; pending ones stay.

use std::time::Duration;

use serde_json::Value;

use super::{Hooked, deliveries, delivery_of, hooked};
use crate::helpers::api::{id_of, send};
use crate::helpers::{Backend, WAIT};

backend_tests!(settled_deliveries_are_pruned_after_their_retention);

/// With a retention of 1 s, a delivered row leaves `notificationDeliveries` a few seconds after
/// its attempt (its 3 s lease, then the retention); a delivery still waiting for its retry stays.
async fn settled_deliveries_are_pruned_after_their_retention(backend: Backend) {
    let settings = [
        ("PARLEY_DELIVERY_RETENTION_SECS", "1"),
        ("PARLEY_WEBHOOK_TIMEOUT_MS", "1000"),
        ("PARLEY_WEBHOOK_RETRY_BASE_MS", "600000"),
    ];
    let Hooked { _database, app, receiver, ada, bob, general, .. } = hooked(backend, &settings).await;

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

//! A resync notice sent while the subscriber's instance is itself reconnecting to Redis
//! (PostgreSQL + Redis only, on a Redis of the test's own: no other test's notice may repair
//! B). Pub/sub never brings B that notice; B finds it in the notice log when it is back.

use std::time::Duration;

use serde_json::json;

use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::proxy::CuttableProxy;
use crate::helpers::services::PrivateRedis;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, QUIET, data, spawn_app_with};

pg_test!(an_edit_whose_notice_came_while_b_reconnected_still_reaches_message_updated);

/// B's subscriber connection proves itself with a ping every 10 s; its reconnect rereads from
/// the last one Redis answered, less 2 s. Waiting this long after the loss puts that ping
/// after the loss began.
const PAST_B_NEXT_PING: Duration = Duration::from_secs(13);

/// Alice edits a message through A while A is cut off from Redis. B is cut off in turn
/// before A is back, so B's subscriber connection is down when A sends its notice, and B's
/// own reconnect rereads only from its last ping, which came after the edit. Bob's
/// `messageUpdated` on B still shows the edit: B found A's notice in the log.
async fn an_edit_whose_notice_came_while_b_reconnected_still_reaches_message_updated() {
    let private = PrivateRedis::start().await;
    let (to_a, via_a) = CuttableProxy::in_front_of(&private.url, 6379).await;
    let (to_b, via_b) = CuttableProxy::in_front_of(&private.url, 6379).await;
    let a = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", via_a.as_str())]).await;
    let b = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", via_b.as_str())]).await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let general = create_channel(&a, &alice, "general", &[&bob]).await;
    let typo = id_of(&send(&a, &alice, &general, "tpyo").await);
    let mut ws = WsClient::connect(&b, &bob).await;
    let mut updates = ws.subscribe("updates", "subscription { messageUpdated { id body } }", json!({})).await;
    updates.assert_nothing(QUIET).await;

    to_a.cut();
    let edit = "mutation($input: EditMessageInput!) { editMessage(input: $input) { id } }";
    data(a.gql(&alice, edit, json!({ "input": { "messageId": typo, "body": "typo" } })).await);
    tokio::time::sleep(PAST_B_NEXT_PING).await;
    to_b.cut();
    to_a.restore();
    a.wait_for_metric_above("parley_bus_resync_notices_total", 0.0, "A sent its notice").await;
    updates.assert_nothing(QUIET).await;
    to_b.restore();

    b.wait_for_metric_above("parley_bus_reconnects_total", 0.0, "B reconnected").await;
    assert_eq!(updates.next("messageUpdated").await, json!({ "id": typo, "body": "typo" }));
    // At least A's: a publish of A's lost just as Redis came back may have made a second notice.
    assert!(b.metric("parley_bus_notices_from_log_total").await >= 1.0, "B read A's notice from the log");
}

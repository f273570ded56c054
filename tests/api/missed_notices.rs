//! A resync notice sent while the subscriber's instance is itself reconnecting to Redis
//! (PostgreSQL + Redis only, on a Redis of the test's own: no other test's notice may repair
//! B). Pub/sub never brings B that notice; B finds it in the notice log when it is back, or,
//! if it cannot read the log, rereads further back.

use std::time::Duration;

use serde_json::json;

use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::proxy::CuttableProxy;
use crate::helpers::services::PrivateRedis;
use crate::helpers::subscription::Subscription;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, QUIET, TestApp, data, spawn_app_with};

pg_test!(
    an_edit_whose_notice_came_while_b_reconnected_still_reaches_message_updated,
    a_log_b_cannot_read_when_back_still_brings_the_edit,
);

/// B's subscriber connection proves itself with a ping every 10 s; its reconnect rereads from
/// the last one Redis answered, less 2 s. Waiting this long after the loss puts that ping
/// after the loss began.
const PAST_B_NEXT_PING: Duration = Duration::from_secs(13);

/// Alice's edit, made through A while A was cut off from Redis; A's notice of it went out
/// while B was cut off in turn, and B is still cut off. B's own reconnect will reread only
/// from its last ping, which came after the edit.
struct EditNoticedWhileBWasCut {
    redis: PrivateRedis,
    _a: TestApp,
    _to_a: CuttableProxy,
    to_b: CuttableProxy,
    b: TestApp,
    _ws: WsClient,
    /// Bob's `messageUpdated` on B.
    updates: Subscription,
    edited: String,
}

async fn edit_noticed_while_b_was_cut() -> EditNoticedWhileBWasCut {
    let redis = PrivateRedis::start().await;
    let (to_a, via_a) = CuttableProxy::in_front_of(&redis.url, 6379).await;
    let (to_b, via_b) = CuttableProxy::in_front_of(&redis.url, 6379).await;
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
    EditNoticedWhileBWasCut { redis, _a: a, _to_a: to_a, to_b, b, _ws: ws, updates, edited: typo }
}

/// Bob's `messageUpdated` on B still shows the edit: B found A's notice in the log.
async fn an_edit_whose_notice_came_while_b_reconnected_still_reaches_message_updated() {
    // Every part bound: a part left to `..` would be dropped here (Redis killed, sockets closed).
    let EditNoticedWhileBWasCut { redis: _redis, _a, _to_a, to_b, b, _ws, mut updates, edited } =
        edit_noticed_while_b_was_cut().await;
    to_b.restore();

    b.wait_for_metric_above("parley_bus_reconnects_total", 0.0, "B reconnected").await;
    assert_eq!(updates.next("messageUpdated").await, json!({ "id": edited, "body": "typo" }));
    // At least A's: a publish of A's lost just as Redis came back may have made a second notice.
    assert!(b.metric("parley_bus_notices_from_log_total").await >= 1.0, "B read A's notice from the log");
}

/// Redis refuses B's read of the log when B is back (an ACL denies ZRANGEBYSCORE), while
/// SUBSCRIBE and PING work. The log may then hold a loss of any moment, so B's feeds reread
/// from their previous reread, and Bob still gets the edit (B reread only from its own last
/// ping, and read the log again only at a next reconnect, days away perhaps).
async fn a_log_b_cannot_read_when_back_still_brings_the_edit() {
    let EditNoticedWhileBWasCut { redis, _a, _to_a, to_b, b, _ws, mut updates, edited } =
        edit_noticed_while_b_was_cut().await;
    acl_default_user(&redis, "-zrangebyscore").await;
    to_b.restore();

    b.wait_for_metric_above("parley_bus_notice_log_read_failures_total", 0.0, "B's log read failed").await;
    acl_default_user(&redis, "+zrangebyscore").await;
    assert_eq!(updates.next("messageUpdated").await, json!({ "id": edited, "body": "typo" }));
}

/// Changes what the `default` user (every connection's) may run, at once for open connections.
/// While ZRANGEBYSCORE is denied, the presence scripts that prune leases fail too (a moment's
/// "Redis unreachable" if a heartbeat falls in it); this test publishes nothing meanwhile.
async fn acl_default_user(redis: &PrivateRedis, rule: &str) {
    let client = redis::Client::open(redis.url.as_str()).expect("a valid URL");
    let mut conn = client.get_multiplexed_async_connection().await.expect("the private Redis answers");
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg(rule)
        .query_async(&mut conn)
        .await
        .expect("ACL SETUSER");
}

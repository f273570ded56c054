//! Membership changed twice in a row through two instances, whose events reach the
//! subscriber's instance in the other order than the changes were made (PostgreSQL + Redis
//! only): B's Redis link is held, so B's event arrives after A's later one. What the
//! subscriber receives follows the last change, not the last event to arrive.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::api::{create_channel, create_private_channel, member_ids, room, send};
use crate::helpers::proxy::b_behind_proxies;
use crate::helpers::ws::WsClient;
use crate::helpers::{QUIET, TestApp, TestUser};

pg_test!(an_addition_overtaken_by_a_removal_stays_removed, a_removal_overtaken_by_a_rejoin_stays_joined);

const ALL: &str = "subscription { messageAdded { seq body room { id } } }";
const ADD: &str = "mutation($room: ID!, $user: ID!) { addMembers(roomId: $room, userIds: [$user]) { id } }";
const REMOVE: &str = "mutation($room: ID!, $user: ID!) { removeMember(roomId: $room, userId: $user) { id } }";

/// Long enough for a watcher that wrongly followed a room to have subscribed its topic.
const SETTLE: Duration = Duration::from_millis(500);

/// Alice adds Bob through B, then removes him through A; B's event arrives last.
async fn an_addition_overtaken_by_a_removal_stays_removed() {
    let Some((redis, _pg, a, b)) = b_behind_proxies().await else { return };
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let secret = create_private_channel(&a, &alice, "secret", &[]).await;
    let open = create_channel(&a, &alice, "open", &[&bob]).await;
    let mut ws = WsClient::connect(&a, &bob).await;
    let mut all = ws.subscribe("all", ALL, json!({})).await;
    let members = json!({ "room": secret, "user": bob.id });

    redis.hold();
    let removing_on_a = async {
        until_membership(&a, &alice, &secret, &bob, true).await;
        a.ok(&alice, REMOVE, members.clone()).await;
        // A's removal has reached Redis: B's addition, held until now, arrives after it.
        redis.release();
    };
    let (added, ()) = tokio::join!(b.ok(&alice, ADD, members.clone()), removing_on_a);
    assert_eq!(added["addMembers"]["id"], secret);
    tokio::time::sleep(SETTLE).await;

    send(&a, &alice, &secret, "not for bob").await;
    send(&a, &alice, &open, "for bob").await;
    assert_eq!(all.next("messageAdded").await["body"], "for bob", "a removed member received the room");
    all.assert_nothing(QUIET).await;
}

/// Alice removes Bob through B, then adds him back through A; B's event arrives last.
async fn a_removal_overtaken_by_a_rejoin_stays_joined() {
    let Some((redis, _pg, a, b)) = b_behind_proxies().await else { return };
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let secret = create_private_channel(&a, &alice, "secret", &[&bob]).await;
    let mut ws = WsClient::connect(&a, &bob).await;
    let mut all = ws.subscribe("all", ALL, json!({})).await;
    let members = json!({ "room": secret, "user": bob.id });

    redis.hold();
    let rejoining_on_a = async {
        until_membership(&a, &alice, &secret, &bob, false).await;
        a.ok(&alice, ADD, members.clone()).await;
        redis.release();
    };
    let (removed, ()) = tokio::join!(b.ok(&alice, REMOVE, members.clone()), rejoining_on_a);
    assert_eq!(removed["removeMember"]["id"], secret);
    tokio::time::sleep(SETTLE).await;

    send(&a, &alice, &secret, "welcome back").await;
    let message = all.next("messageAdded").await;
    assert_eq!(message["body"], "welcome back", "a member back in the room missed its message");
    all.assert_nothing(QUIET).await;
}

/// Waits until `user` is (or is no longer) a member of the room, as `owner` sees it through
/// `app`.
async fn until_membership(app: &TestApp, owner: &TestUser, room_id: &str, user: &TestUser, member: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while member_ids(&room(app, owner, room_id).await).contains(&user.id) != member {
        assert!(Instant::now() < deadline, "the membership change never committed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! Two `parley` processes on one PostgreSQL database and one Redis, as behind
//! a load balancer (PostgreSQL + Redis only): events cross instances, races
//! across instances come out right, both instances start at once on a fresh
//! database, and losing the Redis subscriber connection mid-stream loses
//! nothing for a client that resumes with `after`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::concurrency::{assert_gap_free_concurrent_sends, assert_one_message_for_parallel_retries};
use crate::helpers::api::{
    create_channel, create_private_channel, int, latest_seq, mark_read, send, spawn_sender, try_send,
};
use crate::helpers::services::PrivateRedis;
use crate::helpers::ws::WsClient;
use crate::helpers::{
    Backend, TestApp, TestUser, assert_error_code, data, pg_redis_urls, spawn_app, spawn_app_with,
};

pg_test!(
    message_added_crosses_instances,
    unread_count_changed_crosses_instances,
    races_across_instances_come_out_right,
    redis_subscriber_loss_loses_nothing_with_after,
    a_removal_lost_on_the_bus_is_repaired_on_resync,
    two_instances_start_at_once,
    the_send_rate_limit_holds_across_instances,
);

const ONE: &str =
    "subscription($room: ID, $after: Int) { messageAdded(roomId: $room, after: $after) { seq body } }";
const ALL: &str = "subscription { messageAdded { seq body room { id } } }";

async fn two() -> (TestApp, TestApp) {
    let a = spawn_app(Backend::PostgresRedis).await;
    let b = a.spawn_second_instance().await;
    (a, b)
}

async fn message_added_crosses_instances() {
    let (a, b) = two().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "general", &[&bob]).await;
    let mut ws = WsClient::connect(&a, &alice).await;
    let mut all = ws.subscribe("all", ALL, json!({})).await;
    let mut one = ws.subscribe("one", ONE, json!({ "room": room })).await;

    send(&b, &bob, &room, "sent on B").await;
    assert_eq!(
        all.next("messageAdded").await,
        json!({ "seq": 1, "body": "sent on B", "room": { "id": room } })
    );
    assert_eq!(one.next("messageAdded").await["body"], "sent on B");

    // A room created on B after subscribing on A delivers too.
    let later = create_channel(&b, &bob, "later", &[&alice]).await;
    send(&b, &bob, &later, "new room on B").await;
    assert_eq!(all.next("messageAdded").await["room"]["id"], json!(later));
}

async fn unread_count_changed_crosses_instances() {
    let (a, b) = two().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "general", &[&bob]).await;
    let mut ws = WsClient::connect(&a, &alice).await;
    let mut counts = ws
        .subscribe(
            "counts",
            "subscription { unreadCountChanged { roomId unreadCount unreadTotal seq } }",
            json!({}),
        )
        .await;

    send(&b, &bob, &room, "one").await;
    let expected = json!({ "roomId": room, "unreadCount": 1, "unreadTotal": 1, "seq": 1 });
    assert_eq!(counts.next("unreadCountChanged").await, expected);
    send(&b, &bob, &room, "two").await;
    assert_eq!(counts.next("unreadCountChanged").await["unreadCount"], 2);

    // Read on another device connected to B.
    mark_read(&b, &alice, &room, None).await;
    let read = counts.next("unreadCountChanged").await;
    assert_eq!((read["unreadCount"].clone(), read["unreadTotal"].clone()), (json!(0), json!(0)));
}

async fn races_across_instances_come_out_right() {
    let (a, b) = two().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let busy = create_channel(&a, &alice, "busy", &[&bob]).await;
    let retries = create_channel(&a, &alice, "retries", &[]).await;

    assert_gap_free_concurrent_sends(&[&a, &b], &[&alice, &bob], &busy, 8, 25).await;
    assert_one_message_for_parallel_retries(&[&a, &b], &alice, &retries).await;
}

async fn redis_subscriber_loss_loses_nothing_with_after() {
    let (a, b) = two().await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&a, &alice, "stream", &[&bob]).await;
    let mut ws = WsClient::connect(&a, &alice).await;
    let mut live = ws.subscribe("live", ONE, json!({ "room": room })).await;

    let total = 60;
    let sender = spawn_sender(&b, &bob, &room, "stream", total, Duration::from_millis(20));
    let mut seen = Vec::new();
    while seen.len() < 10 {
        seen.push(int(&live.next("messageAdded").await["seq"]));
    }
    kill_subscriber_connection(&a).await;
    // Whatever still arrives live; a gap is allowed here, a duplicate is not.
    seen.extend(live.drain("messageAdded", Duration::from_secs(2)).await.iter().map(|m| int(&m["seq"])));
    assert_eq!(sender.await.expect("sender task").len(), total);
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates on the live stream: {seen:?}");

    // The client resumes from the last seq it saw without a gap.
    let last_seen = (1..).take_while(|s| unique.contains(s)).last().unwrap_or(0);
    let mut resumed_ws = WsClient::connect(&a, &alice).await;
    let mut resumed = resumed_ws.subscribe("resumed", ONE, json!({ "room": room, "after": last_seen })).await;
    let total = i64::try_from(total).expect("small");
    let mut replayed = Vec::new();
    while replayed.last().copied().unwrap_or(last_seen) < total {
        replayed.push(int(&resumed.next("messageAdded").await["seq"]));
        assert!(replayed.len() as i64 <= total - last_seen, "duplicates on resume: {replayed:?}");
    }
    assert_eq!(replayed, (last_seen + 1..=total).collect::<Vec<_>>(), "every message exactly once");

    // The instance reconnects to Redis (with backoff) and live delivery
    // resumes; what it missed meanwhile it recovers by seq (SPEC §7).
    for attempt in 1..=15 {
        send(&b, &bob, &room, &format!("after recovery {attempt}")).await;
        let arrived: Vec<i64> = resumed
            .drain("messageAdded", Duration::from_secs(1))
            .await
            .iter()
            .map(|m| int(&m["seq"]))
            .collect();
        if !arrived.is_empty() {
            assert_eq!(
                arrived,
                (total + 1..=total + attempt).collect::<Vec<_>>(),
                "live again, nothing missed"
            );
            return;
        }
    }
    panic!("A never received B's messages again after losing its Redis subscriber");
}

/// Redis pub/sub is at-most-once, so a "removed" event can be lost. B publishes on a Redis
/// of its own here, so A never hears of Bob's removal; after A's subscriber connection drops
/// and comes back, A must repair Bob's rooms from the database and stop delivering the room.
async fn a_removal_lost_on_the_bus_is_repaired_on_resync() {
    let other_redis = PrivateRedis::start().await;
    let a = spawn_app(Backend::PostgresRedis).await;
    let b = spawn_app_with(Backend::PostgresRedis, &[("REDIS_URL", other_redis.url.as_str())]).await;
    let org = a.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let secret = create_private_channel(&a, &alice, "secret", &[&bob]).await;
    let open = create_channel(&a, &alice, "open", &[&bob]).await;
    let mut ws = WsClient::connect(&a, &bob).await;
    let mut all = ws.subscribe("all", ALL, json!({})).await;

    let remove = "mutation($room: ID!, $user: ID!) { removeMember(roomId: $room, userId: $user) { id } }";
    data(b.gql(&alice, remove, json!({ "room": secret, "user": bob.id })).await);
    kill_subscriber_connection(&a).await;
    // A reconnects within its backoff (50 ms) and resyncs its subscribers.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Sent through A: delivered by A's own hub if Bob's subscription still followed the room.
    send(&a, &alice, &secret, "not for bob any more").await;
    send(&a, &alice, &open, "still for bob").await;
    loop {
        let message = all.next("messageAdded").await;
        assert_ne!(message["body"], "not for bob any more", "a removed member received the room");
        if message["body"] == "still for bob" {
            break;
        }
    }
}

async fn two_instances_start_at_once() {
    let (shared_url, _) = pg_redis_urls().expect("postgres configured");
    let fresh = fresh_database(&shared_url).await;
    let url = fresh.as_ref().map_or(shared_url.clone(), |(url, _)| url.clone());
    // Demo seeding races too, but only seed a database of our own.
    let demo = if fresh.is_some() { "true" } else { "false" };
    let overrides = [("DATABASE_URL", url.as_str()), ("PARLEY_DEMO", demo)];

    let (a, b) = tokio::join!(
        spawn_app_with(Backend::PostgresRedis, &overrides),
        spawn_app_with(Backend::PostgresRedis, &overrides)
    );
    for app in [&a, &b] {
        let ready = app.http.get(app.url("/readyz")).send().await.expect("GET /readyz");
        assert_eq!(ready.status().as_u16(), 200);
    }
    let org = a.create_org().await;
    let alice = org.user("alice").await;
    for app in [&a, &b] {
        assert_eq!(app.ok(&alice, "{ viewer { handle } }", json!({})).await["viewer"]["handle"], "alice");
    }
    if fresh.is_some() {
        let token = a.cli(&["token", "--user", "alice", "--org", "demo"]).await;
        let query = "{ rooms(filter: { kind: CHANNEL, search: \"general\" }) { edges { node { name } } } }";
        let rooms = data(a.gql_token(Some(&token), query, json!({})).await);
        assert_eq!(rooms["rooms"]["edges"].as_array().map(Vec::len), Some(1), "seeded once: {rooms}");
    }
    drop((a, b));
    if let Some((_, name)) = fresh {
        psql(&shared_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }
}

/// Creates `parley_test_<uuid>` next to the shared database with `psql`, if
/// it is installed (the suite has no PostgreSQL client library); returns its
/// URL and name, or `None` to fall back to the shared database.
async fn fresh_database(shared_url: &str) -> Option<(String, String)> {
    let name = format!("parley_test_{}", uuid::Uuid::now_v7().simple());
    if !psql(shared_url, &format!("CREATE DATABASE {name}")).await {
        eprintln!("psql unavailable: testing concurrent start on the shared database");
        return None;
    }
    let (base, query) = shared_url.split_once('?').map_or((shared_url, None), |(b, q)| (b, Some(q)));
    let host_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[host_end..].find('/').map_or(base.len(), |i| host_end + i);
    let url = format!("{}/{name}{}", &base[..path_start], query.map(|q| format!("?{q}")).unwrap_or_default());
    Some((url, name))
}

pub async fn psql(url: &str, sql: &str) -> bool {
    let output = tokio::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .output()
        .await;
    matches!(output, Ok(o) if o.status.success())
}

/// Kills instance `app`'s Redis subscriber connection(s): its sockets to Redis
/// are found through `/proc` and matched with `CLIENT LIST`, so servers of
/// other tests keep theirs. Falls back to `CLIENT KILL TYPE pubsub`.
async fn kill_subscriber_connection(app: &TestApp) {
    let (_, redis_url) = pg_redis_urls().expect("redis configured");
    let client = redis::Client::open(redis_url.as_str()).expect("a valid REDIS_URL");
    let mut con = client.get_multiplexed_async_connection().await.expect("connect to Redis");
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut con).await.expect("CLIENT LIST");
    let ports = app.pid().map(local_ports_of).unwrap_or_default();

    let clients: Vec<Vec<(&str, &str)>> =
        list.lines().map(|line| line.split(' ').filter_map(|kv| kv.split_once('=')).collect()).collect();
    let field = |c: &[(&str, &str)], k: &str| {
        c.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string()).unwrap_or_default()
    };
    let port_of =
        |c: &[(&str, &str)]| field(c, "addr").rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    let subscribed = |c: &[(&str, &str)]| {
        ["sub", "psub", "ssub"].iter().any(|k| field(c, k).parse::<u64>().is_ok_and(|n| n > 0))
            || field(c, "flags").contains('P')
    };
    let ours: Vec<&Vec<(&str, &str)>> =
        clients.iter().filter(|c| port_of(c).is_some_and(|p| ports.contains(&p))).collect();
    let mut targets: Vec<String> = ours.iter().filter(|c| subscribed(c)).map(|c| field(c, "id")).collect();
    if targets.is_empty() {
        // Ours, but none is visibly subscribed: drop every connection of the instance.
        targets = ours.iter().map(|c| field(c, "id")).collect();
    }
    if targets.is_empty() {
        eprintln!("could not match the instance's Redis connections; killing every pubsub client");
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut con)
            .await
            .expect("CLIENT KILL TYPE pubsub");
        return;
    }
    eprintln!("killing Redis clients {targets:?} of instance {} (local ports {ports:?})", app.addr);
    for id in targets {
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&id)
            .query_async(&mut con)
            .await
            .expect("CLIENT KILL ID");
    }
}

/// Local TCP ports of the sockets process `pid` holds (Linux `/proc`).
fn local_ports_of(pid: u32) -> HashSet<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    target.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')).map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = HashSet::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let port = cols.get(1).and_then(|local| local.rsplit(':').next());
            let port = port.and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(inode), Some(port)) = (cols.get(9), port)
                && inodes.contains(*inode)
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// One bucket per user for the cluster: alternating between two instances
/// does not double the rate.
async fn the_send_rate_limit_holds_across_instances() {
    let limits = [("PARLEY_SEND_RATE_PER_SEC", "1"), ("PARLEY_SEND_BURST", "3")];
    let a = spawn_app_with(Backend::PostgresRedis, &limits).await;
    let b = a.spawn_second_instance().await;
    let org = a.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&a, &alice, "general", &[]).await;

    let (accepted, limited) = send_alternately(&[&a, &b], &alice, &room, 8).await;
    // A burst of 3 for the cluster (each instance alone would allow 3), plus at most one
    // token refilled while we were sending.
    assert!((3..=4).contains(&accepted) && limited >= 4, "accepted {accepted}, limited {limited}");
    assert_eq!(latest_seq(&a, &alice, &room).await, accepted as i64, "limited sends stored nothing");
}

/// Sends `n` messages, alternating between `apps`; returns (accepted, RATE_LIMITED).
pub async fn send_alternately(apps: &[&TestApp], author: &TestUser, room: &str, n: usize) -> (usize, usize) {
    let (mut accepted, mut limited) = (0, 0);
    for i in 0..n {
        let input = json!({ "roomId": room, "body": format!("spam {i}") });
        let response = try_send(apps[i % apps.len()], author, input).await;
        if response["errors"].is_array() {
            assert_error_code(&response, "RATE_LIMITED");
            limited += 1;
        } else {
            accepted += 1;
        }
    }
    (accepted, limited)
}

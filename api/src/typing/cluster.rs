//! The cluster's side of the typing throttle. A user's calls may reach any instance (a load
//! balancer need not be sticky), and each instance's [`super::throttle`] alone would let N
//! instances publish N times a second. So before publishing, an instance asks Redis, in one
//! script: was this state published for this user and room within the last second, by any
//! instance? The same state: drop it. Another state: wait for the second to end, then publish
//! whatever state was asked for last, on any instance. Without Redis (one instance, or Redis
//! down) the local throttle decides alone.

use std::sync::LazyLock;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::throttle::{INTERVAL, Key};
use crate::bus::RedisLink;

/// How long the gate may take before the local throttle decides alone.
const TIMEOUT: Duration = Duration::from_millis(250);

/// KEYS: the gate (the state published within the interval), the wish (the state last asked
/// for, on any instance). ARGV: the state asked for now ("1" typing, "0" not; "" for a retry,
/// which takes the wish), interval ms. Returns 1 or 2 (publish typing / not typing: the gate
/// now holds it for the interval), 0 (nothing to publish: that state is what was published)
/// or minus the ms until the interval of another state ends.
static GATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local state = ARGV[1]
        if state == '' then
          state = redis.call('GET', KEYS[2])
          if not state then return 0 end
        else
          redis.call('SET', KEYS[2], state, 'PX', 3 * tonumber(ARGV[2]))
        end
        local last = redis.call('GET', KEYS[1])
        if last == state then return 0 end
        if last then return -math.max(redis.call('PTTL', KEYS[1]), 1) end
        redis.call('SET', KEYS[1], state, 'PX', ARGV[2])
        if state == '1' then return 1 end
        return 2
        ",
    )
});

/// What the cluster says of a publish.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Publish this state.
    Publish(bool),
    Drop,
    /// Another state was published within the second: ask again (with no state: the latest
    /// wish of any instance wins) after this long.
    Wait(Duration),
}

/// The gate's and the wish's keys of a user typing in a room.
fn keys(link: &RedisLink, (user_id, room_id): Key) -> [String; 2] {
    [link.key(&format!("typing:{user_id}:{room_id}")), link.key(&format!("typing-wish:{user_id}:{room_id}"))]
}

/// Opens the gate again for any state, and drops the wish a retry would publish.
pub async fn clear(link: Option<&RedisLink>, key: Key) {
    let Some(link) = link else { return };
    let keys = keys(link, key);
    let run = |mut c: ConnectionManager| async move { c.del::<_, ()>(&keys).await };
    link.run(TIMEOUT, run).await;
}

/// `typing`: the state asked for now; `None` for a retry after [`Gate::Wait`].
pub async fn gate(link: Option<&RedisLink>, key: Key, typing: Option<bool>) -> Gate {
    let Some(link) = link else { return typing.map_or(Gate::Drop, Gate::Publish) };
    let [gate, wish] = keys(link, key);
    let mut call = GATE.key(gate);
    call.key(wish);
    call.arg(match typing {
        Some(true) => "1",
        Some(false) => "0",
        None => "",
    });
    call.arg(INTERVAL.as_millis() as u64);
    let run = |mut c: ConnectionManager| async move { call.invoke_async::<i64>(&mut c).await };
    match link.run(TIMEOUT, run).await {
        Some(1) => Gate::Publish(true),
        Some(2) => Gate::Publish(false),
        Some(wait) if wait < 0 => Gate::Wait(Duration::from_millis(wait.unsigned_abs())),
        Some(_) => Gate::Drop,
        // Redis is down: the local throttle has already limited this instance.
        None => typing.map_or(Gate::Drop, Gate::Publish),
    }
}

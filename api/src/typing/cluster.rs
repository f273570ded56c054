//! The cluster's side of the typing throttle. A user's calls may reach any instance (a load
//! balancer need not be sticky), and each instance's [`super::throttle`] alone would let N
//! instances publish N times a second. So before publishing, an instance asks Redis, in one
//! script: was this state published for this user and room within the last second, by any
//! instance? The same state: drop it. Another state: wait for the second to end. Without
//! Redis (one instance, or Redis down) the local throttle decides alone.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::throttle::{INTERVAL, Key};
use crate::bus::RedisLink;

/// How long the gate may take before the local throttle decides alone.
const TIMEOUT: Duration = Duration::from_millis(250);

/// KEYS: the user's and room's gate. ARGV: state ("1" typing, "0" not), interval ms. Returns
/// 1 (publish: the gate now holds this state for the interval), 0 (this state was published
/// within the interval) or minus the ms until another state's interval ends.
static GATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local last = redis.call('GET', KEYS[1])
        if last == ARGV[1] then return 0 end
        if last then return -math.max(redis.call('PTTL', KEYS[1]), 1) end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        return 1
        ",
    )
});

/// What the cluster says of a publish.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    Publish,
    Drop,
    /// Another state was published within the second: try again after this long.
    Wait(Duration),
}

pub async fn gate(link: Option<&RedisLink>, (user_id, room_id): Key, typing: bool) -> Gate {
    let Some(link) = link else { return Gate::Publish };
    let mut call = GATE.key(format!("parley:typing:{user_id}:{room_id}"));
    call.arg(if typing { "1" } else { "0" }).arg(INTERVAL.as_millis() as u64);
    let run = |mut c: ConnectionManager| async move { call.invoke_async::<i64>(&mut c).await };
    match link.run(TIMEOUT, run).await {
        Some(0) => Gate::Drop,
        Some(wait) if wait < 0 => Gate::Wait(Duration::from_millis(wait.unsigned_abs())),
        // Published, or Redis is down: the local throttle has already limited this instance.
        _ => Gate::Publish,
    }
}

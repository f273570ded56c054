//! The per-user send rate limit, one for the whole cluster.
//!
//! Every instance keeps a local token bucket (governor) as its fast path: a user over the
//! limit on this instance alone is refused without a network round trip. With Redis, a send
//! the local bucket allows is also checked against one GCRA bucket per user in Redis (one
//! atomic script, timed by Redis's clock) through the bus's `RedisLink`, so N instances do not
//! give a user N times the rate. While Redis is down the link answers at once and the local
//! bucket decides alone (counted in `parley_send_rate_fallback_total`).

use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::bus::RedisLink;
use crate::config::Limits;

/// How long a Redis check may take before the local bucket decides alone.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// GCRA: the bucket is the "theoretical arrival time" (TAT) of the next send, in ms of
/// Redis's clock. A send is allowed when the TAT, advanced by one interval, is at most `burst`
/// intervals ahead of now. Returns 1 (allowed) or 0.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local t = redis.call('TIME')
        local now = t[1] * 1000 + math.floor(t[2] / 1000)
        local interval = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now) + interval
        if tat - now > burst * interval then return 0 end
        redis.call('SET', KEYS[1], tat, 'PX', tat - now)
        return 1
        ",
    )
});

#[derive(Clone)]
pub struct SendLimiter {
    local: Arc<DefaultKeyedRateLimiter<Uuid>>,
    /// The cluster's buckets live in Redis; `None` for a single instance.
    cluster: Option<RedisLink>,
    interval_ms: u64,
    burst: u32,
}

impl SendLimiter {
    pub fn new(limits: &Limits, cluster: Option<RedisLink>) -> Self {
        let rate = NonZeroU32::new(limits.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.send_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            local: Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))),
            cluster,
            interval_ms: (1000 / u64::from(rate.get())).max(1),
            burst: burst.get(),
        }
    }

    /// Spends one send of `user`; false when they are over the limit.
    pub async fn allow(&self, user: Uuid) -> bool {
        if self.local.check_key(&user).is_err() {
            return false;
        }
        let Some(link) = &self.cluster else { return true };
        let mut invocation = GCRA.key(link.key(&format!("send-rate:{user}")));
        invocation.arg(self.interval_ms).arg(self.burst);
        let check = move |mut conn: redis::aio::ConnectionManager| async move {
            invocation.invoke_async::<i64>(&mut conn).await
        };
        match link.run(REDIS_TIMEOUT, check).await {
            Some(allowed) => allowed == 1,
            // Redis is down: the local bucket, which allowed this send, decides alone.
            None => {
                metrics::counter!("parley_send_rate_fallback_total").increment(1);
                true
            }
        }
    }

    /// Drops local buckets that are full again, so memory follows active users.
    pub fn forget_idle(&self) {
        self.local.retain_recent();
    }
}

//! The per-user send rate limit, one for the whole cluster.
//!
//! Every instance keeps a local token bucket (governor) as its fast path: a user over the
//! limit on this instance alone is refused without a network round trip. With Redis configured,
//! a send the local bucket allows is also checked against one GCRA bucket per user in Redis
//! (one atomic script, timed by Redis's clock), so N instances do not give a user N times the
//! rate. When Redis does not answer, the local bucket decides alone for a second before Redis
//! is tried again: counted in `parley_send_rate_fallback_total`, logged once per outage.
//!
//! Besides `bus/`, the only module that talks to Redis.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use crate::config::Limits;

/// How long a Redis check may take before the local bucket decides alone.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How long the local bucket decides alone after Redis failed to answer.
const FALLBACK_FOR: Duration = Duration::from_secs(1);

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
    cluster: Option<Arc<ClusterBucket>>,
    interval_ms: u64,
    burst: u32,
}

struct ClusterBucket {
    redis: ConnectionManager,
    /// Milliseconds since `started` before which Redis is not asked (after a failure).
    skip_until_ms: AtomicU64,
    /// True while Redis is failing, so the outage is logged once.
    failing: AtomicBool,
    started: Instant,
}

impl SendLimiter {
    /// The local bucket alone (one instance, no Redis).
    pub fn local(limits: &Limits) -> Self {
        let rate = NonZeroU32::new(limits.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.send_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            local: Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))),
            cluster: None,
            interval_ms: (1000 / u64::from(rate.get())).max(1),
            burst: burst.get(),
        }
    }

    /// The local bucket plus the cluster's bucket in Redis at `url`.
    pub async fn cluster(limits: &Limits, url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_millis(500)));
        let redis = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect: {e}"))?;
        let bucket = ClusterBucket {
            redis,
            skip_until_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            started: Instant::now(),
        };
        Ok(Self { cluster: Some(Arc::new(bucket)), ..Self::local(limits) })
    }

    /// Spends one send of `user`; false when they are over the limit.
    pub async fn allow(&self, user: Uuid) -> bool {
        if self.local.check_key(&user).is_err() {
            return false;
        }
        match &self.cluster {
            Some(cluster) => cluster.allow(user, self.interval_ms, self.burst).await,
            None => true,
        }
    }

    /// Drops local buckets that are full again, so memory follows active users.
    pub fn forget_idle(&self) {
        self.local.retain_recent();
    }
}

impl ClusterBucket {
    /// Asks Redis; when it cannot answer, allows (the local bucket already did).
    async fn allow(&self, user: Uuid, interval_ms: u64, burst: u32) -> bool {
        let now_ms = self.elapsed_ms();
        if now_ms < self.skip_until_ms.load(Ordering::Acquire) {
            metrics::counter!("parley_send_rate_fallback_total").increment(1);
            return true;
        }
        let mut conn = self.redis.clone();
        let mut invocation = GCRA.key(format!("parley:send-rate:{user}"));
        invocation.arg(interval_ms).arg(burst);
        let answer = tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<i64>(&mut conn)).await;
        match answer {
            Ok(Ok(allowed)) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("send rate limit: Redis answers again; the cluster's bucket applies");
                }
                allowed == 1
            }
            failed => {
                let error = match failed {
                    Ok(Err(err)) => err.to_string(),
                    _ => "timed out".to_owned(),
                };
                let retry_at = self.elapsed_ms() + FALLBACK_FOR.as_millis() as u64;
                self.skip_until_ms.store(retry_at, Ordering::Release);
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        error,
                        "send rate limit: Redis unreachable; each instance's own bucket applies"
                    );
                }
                metrics::counter!("parley_send_rate_fallback_total").increment(1);
                true
            }
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

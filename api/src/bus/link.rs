//! `RedisLink`: the instance's command connection to Redis, shared by the bus's publishes,
//! presence, the typing gate and the send rate limit (`crate::rate_limit`), and the
//! deployment's namespace, which names every key and channel they use.
//!
//! A caller must not wait for a Redis that is down. After one failed command the link knows
//! Redis is down: later commands return `None` at once (gauge `parley_redis_up`, logged once
//! per outage) while a probe task pings Redis, with backoff, until it answers again.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Reconnect delays start here and double up to `MAX_BACKOFF`, so recovery after a short
/// outage stays short.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a PING may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisLink {
    manager: ConnectionManager,
    /// False from a failed command until the probe reaches Redis again.
    up: Arc<AtomicBool>,
    /// `PARLEY_REDIS_NAMESPACE`: deployments sharing one Redis do not hear or touch each
    /// other's keys and channels.
    namespace: Arc<str>,
}

impl RedisLink {
    pub async fn connect(client: redis::Client, namespace: &str) -> anyhow::Result<Self> {
        // Fail fast: callers have a fallback (subscribers recover by seq; each instance's
        // own send bucket), and a mutation should not wait seconds for Redis.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_connection_timeout(Some(Duration::from_millis(500)));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect: {e}"))?;
        metrics::gauge!("parley_redis_up").set(1.0);
        Ok(Self { manager, up: Arc::new(AtomicBool::new(true)), namespace: namespace.into() })
    }

    /// The deployment's namespace (checked by `config::parse_namespace`: letters, digits,
    /// `.`, `_` and `-`, so it is safe inside a Lua string).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The key or channel `name` of this deployment: `{namespace}:{name}`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.namespace)
    }

    /// Runs one command (`command` gets its own handle on the connection) within `timeout`;
    /// `None` when Redis is known to be down or the command fails.
    pub async fn run<T, F, Fut>(&self, timeout: Duration, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.up.load(Ordering::Acquire) {
            return None;
        }
        let error = match tokio::time::timeout(timeout, command(self.manager.clone())).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(err)) => err.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        // Concurrent commands may all fail here; only the first to notice starts the probe.
        if self.up.swap(false, Ordering::AcqRel) {
            metrics::gauge!("parley_redis_up").set(0.0);
            tracing::warn!(
                error,
                "Redis unreachable: events are not published (subscribers recover by seq) and \
                 each instance's own send bucket applies until it answers"
            );
            tokio::spawn(self.clone().probe_until_up());
        }
        None
    }

    /// True when Redis answers a PING now (whatever the link believes).
    pub async fn ping(&self) -> bool {
        let mut conn = self.manager.clone();
        let ping = redis::cmd("PING");
        let pong = ping.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(PING_TIMEOUT, pong).await, Ok(Ok(_)))
    }

    async fn probe_until_up(self) {
        let mut backoff = Backoff::default();
        loop {
            tokio::time::sleep(backoff.next_delay()).await;
            if self.ping().await {
                self.up.store(true, Ordering::Release);
                metrics::gauge!("parley_redis_up").set(1.0);
                return tracing::info!(
                    "Redis answers again: publishing and the cluster's send bucket resume"
                );
            }
        }
    }
}

/// Reconnect delays: `MIN_BACKOFF` doubling to `MAX_BACKOFF`, each shortened by a random
/// part of up to half, so instances that lost Redis together do not retry in lockstep.
pub struct Backoff {
    base: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: MIN_BACKOFF }
    }
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.base.mul_f64(rand::random_range(0.5..=1.0));
        self.base = (self.base * 2).min(MAX_BACKOFF);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_to_one_second_at_most_with_jitter() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= MIN_BACKOFF / 2 && delays[0] <= MIN_BACKOFF);
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF), "{delays:?}");
        assert!(delays[11] >= MAX_BACKOFF / 2, "the cap is reached: {delays:?}");
    }
}

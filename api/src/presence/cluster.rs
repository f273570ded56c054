//! `Leases`: the cluster's presence in Redis. Every operation is one atomic script timed by
//! Redis's clock, so instances need no synchronised clocks and a connect or disconnect costs
//! one command (plus the announcement's PUBLISH when it changes something).
//!
//! Keys, in the deployment's namespace (`parley` by default):
//!
//! - `{ns}:presence-conns:{user}`: sorted set, member = instance id, score = lease expiry
//!   (ms). A user is online while it has a member with a future score.
//! - `{ns}:presence-leases`: sorted set of every lease, member = `{user}|{instance}`, the
//!   same score, so the leases of an instance that died are found by score alone.
//! - `{ns}:presence-seen:{user}`: when their last lease ended (ms), kept 30 days.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::tracker::Seen;
use crate::bus::RedisLink;

/// How long a presence command may take before this instance falls back on what it knows.
const TIMEOUT: Duration = Duration::from_millis(250);
/// Leases ended per sweep; a longer backlog is taken by the next sweeps.
const SWEEP_BATCH: u64 = 1_000;
/// Users renewed or read per script call, so one call never holds Redis for long.
const RENEW_BATCH: usize = 500;
const SEEN_BATCH: usize = 1_000;
/// How long a user's last-seen time is kept.
const SEEN_TTL_MS: u64 = 30 * 24 * 3_600 * 1_000;

const NOW: &str = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)";

/// The scripts of one namespace (`{ns}`): they name keys they find by their contents (a
/// sweep finds users in the leases set), so the namespace is written into them.
struct Scripts {
    acquire: redis::Script,
    release: redis::Script,
    seen: redis::Script,
    renew: redis::Script,
    sweep: redis::Script,
}

impl Scripts {
    /// `namespace` holds no quote (`config::parse_namespace`), so it is safe in a Lua string.
    fn new(namespace: &str) -> Self {
        let leases = format!("{namespace}:presence-leases");
        let conns = format!("{namespace}:presence-conns:");
        let seen = format!("{namespace}:presence-seen:");
        // `prune(conns, user, now)`: ends the user's expired leases in both sets, so a sweep
        // never finds (and announces) a lease that something else already ended.
        let prune = format!(
            "local function prune(key, user, now)
              for _, instance in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', now)) do
                redis.call('ZREM', key, instance)
                redis.call('ZREM', '{leases}', user .. '|' .. instance)
              end
            end"
        );
        Self {
            // KEYS: conns, leases. ARGV: instance, lease ms, user. Returns the user's live
            // leases before this one. Called for a user with no socket here, so a lease of
            // this instance's is a leftover and does not count.
            acquire: redis::Script::new(&format!(
                "{NOW} {prune}
                redis.call('ZREM', KEYS[1], ARGV[1])
                prune(KEYS[1], ARGV[3], now)
                local before = redis.call('ZCARD', KEYS[1])
                local expiry = now + tonumber(ARGV[2])
                redis.call('ZADD', KEYS[1], expiry, ARGV[1])
                redis.call('ZADD', KEYS[2], expiry, ARGV[3] .. '|' .. ARGV[1])
                return before"
            )),
            // KEYS: conns, leases, seen. ARGV: instance, user, seen ttl. Returns -1 while other
            // leases remain, else the time the user went offline.
            release: redis::Script::new(&format!(
                "{NOW} {prune}
                redis.call('ZREM', KEYS[1], ARGV[1])
                redis.call('ZREM', KEYS[2], ARGV[2] .. '|' .. ARGV[1])
                prune(KEYS[1], ARGV[2], now)
                if redis.call('ZCARD', KEYS[1]) > 0 then return -1 end
                redis.call('SET', KEYS[3], now, 'PX', ARGV[3])
                return now"
            )),
            // ARGV: user ids. Returns, per user, its live lease count and last-seen time (-1:
            // none).
            seen: redis::Script::new(&format!(
                "{NOW}
                local out = {{}}
                for _, user in ipairs(ARGV) do
                  out[#out + 1] = redis.call('ZCOUNT', '{conns}' .. user, '(' .. now, '+inf')
                  out[#out + 1] = tonumber(redis.call('GET', '{seen}' .. user) or -1)
                end
                return out"
            )),
            // ARGV: instance, lease ms, user ids. Renews the instance's lease of each user;
            // returns the users who had no live lease at all (offline until now).
            renew: redis::Script::new(&format!(
                "{NOW} {prune}
                local expiry = now + tonumber(ARGV[2])
                local back = {{}}
                for i = 3, #ARGV do
                  local key = '{conns}' .. ARGV[i]
                  prune(key, ARGV[i], now)
                  if redis.call('ZCARD', key) == 0 then back[#back + 1] = ARGV[i] end
                  redis.call('ZADD', key, expiry, ARGV[1])
                  redis.call('ZADD', '{leases}', expiry, ARGV[i] .. '|' .. ARGV[1])
                end
                return back"
            )),
            // ARGV: batch, seen ttl. Ends expired leases; returns the time (as text), then the
            // users it left with none. Atomic, and a user is announced only by the call that
            // ended their last lease, so of instances sweeping at once exactly one announces
            // each user, once.
            sweep: redis::Script::new(&format!(
                "{NOW} {prune}
                local stale = redis.call('ZRANGEBYSCORE', '{leases}', '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
                local out = {{ tostring(now) }}
                for _, member in ipairs(stale) do
                  redis.call('ZREM', '{leases}', member)
                  local sep = string.find(member, '|', 1, true)
                  local user, instance = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
                  local key = '{conns}' .. user
                  local score = redis.call('ZSCORE', key, instance)
                  if score and tonumber(score) <= now then
                    redis.call('ZREM', key, instance)
                    prune(key, user, now)
                    if redis.call('ZCARD', key) == 0 then
                      redis.call('SET', '{seen}' .. user, now, 'PX', ARGV[2])
                      out[#out + 1] = user
                    end
                  end
                end
                return out"
            )),
        }
    }
}

pub struct Leases {
    link: RedisLink,
    scripts: Scripts,
    instance: String,
    lease_ms: u64,
}

impl Leases {
    pub fn new(link: RedisLink, instance: Uuid, lease: Duration) -> Self {
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let scripts = Scripts::new(link.namespace());
        Self { link, scripts, instance: instance.to_string(), lease_ms }
    }

    /// This instance's lease of `user`; `Some(true)` when the user had none before.
    pub async fn acquire(&self, user: Uuid) -> Option<bool> {
        let mut call = self.scripts.acquire.key(self.link.key(&format!("presence-conns:{user}")));
        call.key(self.link.key(LEASES)).arg(&self.instance).arg(self.lease_ms).arg(user.to_string());
        let before: i64 = self
            .link
            .run(TIMEOUT, |mut c: ConnectionManager| async move { call.invoke_async(&mut c).await })
            .await?;
        Some(before == 0)
    }

    /// Ends this instance's lease of `user`; `Some(Some(when))` when it was their last.
    pub async fn release(&self, user: Uuid) -> Option<Option<DateTime<Utc>>> {
        let mut call = self.scripts.release.key(self.link.key(&format!("presence-conns:{user}")));
        call.key(self.link.key(LEASES)).key(self.link.key(&format!("presence-seen:{user}")));
        call.arg(&self.instance).arg(user.to_string()).arg(SEEN_TTL_MS);
        let offline_at: i64 = self
            .link
            .run(TIMEOUT, |mut c: ConnectionManager| async move { call.invoke_async(&mut c).await })
            .await?;
        Some((offline_at >= 0).then(|| millis(offline_at)).flatten())
    }

    /// The connection state of each user; `None` when Redis did not answer.
    pub async fn seen(&self, users: &[Uuid]) -> Option<HashMap<Uuid, Seen>> {
        let mut seen = HashMap::with_capacity(users.len());
        for batch in users.chunks(SEEN_BATCH) {
            let mut call = self.scripts.seen.prepare_invoke();
            for user in batch {
                call.arg(user.to_string());
            }
            let run = |mut c: ConnectionManager| async move { call.invoke_async::<Vec<i64>>(&mut c).await };
            let flat = self.link.run(TIMEOUT, run).await?;
            seen.extend(batch.iter().zip(flat.chunks_exact(2)).map(|(user, pair)| {
                let connected = pair[0] > 0;
                let last_seen_at = if connected { None } else { millis(pair[1]) };
                (*user, Seen { connected, last_seen_at })
            }));
        }
        Some(seen)
    }

    /// Renews this instance's leases of `users`; those who were offline until now.
    pub async fn renew(&self, users: &[Uuid]) -> Vec<Uuid> {
        let mut back = Vec::new();
        for batch in users.chunks(RENEW_BATCH) {
            let mut call = self.scripts.renew.prepare_invoke();
            call.arg(&self.instance).arg(self.lease_ms);
            for user in batch {
                call.arg(user.to_string());
            }
            let ids: Option<Vec<String>> = self
                .link
                .run(TIMEOUT, |mut c: ConnectionManager| async move { call.invoke_async(&mut c).await })
                .await;
            back.extend(ids.unwrap_or_default().iter().filter_map(|id| Uuid::parse_str(id).ok()));
        }
        back
    }

    /// Ends expired leases; the users who went offline with them, and when.
    pub async fn sweep(&self) -> Vec<(Uuid, DateTime<Utc>)> {
        let mut call = self.scripts.sweep.prepare_invoke();
        call.arg(SWEEP_BATCH).arg(SEEN_TTL_MS);
        let run = |mut c: ConnectionManager| async move { call.invoke_async::<Vec<String>>(&mut c).await };
        let reply = self.link.run(TIMEOUT, run).await.unwrap_or_default();
        let Some(at) = reply.first().and_then(|now| now.parse().ok()).and_then(millis) else {
            return Vec::new();
        };
        reply[1..].iter().filter_map(|id| Uuid::parse_str(id).ok()).map(|user| (user, at)).collect()
    }
}

const LEASES: &str = "presence-leases";

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    (ms >= 0).then(|| DateTime::from_timestamp_millis(ms)).flatten()
}

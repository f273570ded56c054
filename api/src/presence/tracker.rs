//! `Presence`: who holds an authenticated WebSocket, on this instance and in the cluster.
//!
//! Each instance counts its own sockets per user; only a user's first socket here and their
//! last one talk to the cluster, so five tabs going to four costs nothing. With one instance
//! the counts are the whole truth. With Redis, each instance holding a user keeps a lease in
//! the user's sorted set (`{ns}:presence-conns:{user}`, member = instance, score = expiry),
//! mirrored in one sorted set of all leases (`{ns}:presence-leases`) so that any instance
//! can find the leases of an instance that died; a heartbeat renews this instance's leases
//! ([`cluster`]). A user is online while any lease of theirs is unexpired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::cluster::Leases;
use crate::bus::RedisLink;

/// A user's connection state as the cluster knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    pub connected: bool,
    /// When their last connection closed; `None` while connected or never seen.
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

struct Inner {
    /// Authenticated sockets per user on this instance.
    local: Mutex<HashMap<Uuid, usize>>,
    /// When each user's last socket here closed (single instance: the whole truth).
    last_seen: Mutex<HashMap<Uuid, DateTime<Utc>>>,
    cluster: Option<Leases>,
    heartbeat: Duration,
}

impl Presence {
    /// `heartbeat`: how often leases are renewed; a lease lasts three heartbeats, so the
    /// users of a killed instance go offline within three heartbeats and one sweep.
    pub fn new(instance: Uuid, link: Option<RedisLink>, heartbeat: Duration) -> Self {
        let cluster = link.map(|link| Leases::new(link, instance, heartbeat * 3));
        let inner = Inner { local: Mutex::default(), last_seen: Mutex::default(), cluster, heartbeat };
        Self { inner: Arc::new(inner) }
    }

    pub fn heartbeat(&self) -> Duration {
        self.inner.heartbeat
    }

    /// A socket of `user` authenticated. True when this made them online (they had no
    /// connection anywhere before).
    pub async fn connect(&self, user: Uuid) -> bool {
        let first_here = {
            let mut local = lock(&self.inner.local);
            let count = local.entry(user).or_insert(0);
            *count += 1;
            *count == 1
        };
        if !first_here {
            return false;
        }
        match &self.inner.cluster {
            // Redis unreachable: no announcement now; the heartbeat after it returns adds
            // the lease and announces the user then.
            Some(cluster) => cluster.acquire(user).await.unwrap_or(false),
            None => true,
        }
    }

    /// A socket of `user` closed. `Some(when)` when this made them offline everywhere.
    pub async fn disconnect(&self, user: Uuid) -> Option<DateTime<Utc>> {
        {
            let mut local = lock(&self.inner.local);
            let count = local.get_mut(&user)?;
            *count -= 1;
            if *count > 0 {
                return None;
            }
            local.remove(&user);
        }
        let now = Utc::now();
        match &self.inner.cluster {
            Some(cluster) => cluster.release(user).await.flatten(),
            None => {
                lock(&self.inner.last_seen).insert(user, now);
                Some(now)
            }
        }
    }

    /// The connection state of each user, in one round trip. While Redis is unreachable only
    /// this instance's own sockets count.
    pub async fn seen(&self, users: &[Uuid]) -> HashMap<Uuid, Seen> {
        match self.seen_exactly(users).await {
            Some(seen) => seen,
            None => self.seen_here(users),
        }
    }

    /// [`Presence::seen`], or `None` when the cluster did not answer (rather than this
    /// instance's partial view).
    pub async fn seen_exactly(&self, users: &[Uuid]) -> Option<HashMap<Uuid, Seen>> {
        match &self.inner.cluster {
            Some(cluster) => cluster.seen(users).await,
            None => Some(self.seen_here(users)),
        }
    }

    fn seen_here(&self, users: &[Uuid]) -> HashMap<Uuid, Seen> {
        let (local, last_seen) = (lock(&self.inner.local), lock(&self.inner.last_seen));
        let seen = |user: &Uuid| {
            let connected = local.contains_key(user);
            // A last-seen time is shown only while offline: once someone is back, their
            // previous close is no answer to "when were they last here".
            Seen { connected, last_seen_at: if connected { None } else { last_seen.get(user).copied() } }
        };
        users.iter().map(|user| (*user, seen(user))).collect()
    }

    /// Renews this instance's leases; the users whose lease had lapsed (Redis was away, or
    /// a sweep took it) and who are therefore online again.
    pub async fn renew(&self) -> Vec<Uuid> {
        let Some(cluster) = &self.inner.cluster else { return Vec::new() };
        let users: Vec<Uuid> = lock(&self.inner.local).keys().copied().collect();
        let mut back = cluster.renew(&users).await;
        // A user whose last socket here closed while the renewal ran may have had the lease
        // renewed after its release: release it again, or it would keep them online for a
        // lease's length. Their going offline was announced by the close.
        let gone: Vec<Uuid> = {
            let local = lock(&self.inner.local);
            back.retain(|user| local.contains_key(user));
            users.into_iter().filter(|user| !local.contains_key(user)).collect()
        };
        for user in gone {
            cluster.release(user).await;
        }
        back
    }

    /// Ends expired leases (of instances that died); the users who went offline with them.
    pub async fn sweep(&self) -> Vec<(Uuid, DateTime<Utc>)> {
        match &self.inner.cluster {
            Some(cluster) => cluster.sweep().await,
            None => Vec::new(),
        }
    }

    /// Users with a socket on this instance.
    pub fn local_users(&self) -> usize {
        lock(&self.inner.local).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single map operation: a panic leaves no half state.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

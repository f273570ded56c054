//! Which users open connections act for, so that a change to a user wakes only that user's
//! connections: per watched user, a count of the changes announced for them and a `Notify`
//! for whoever waits, dropped with the user's last connection. A count of every announcement
//! lets a connection tell whether one came while it was authenticating, before it watched.
//!
//! A `Notify` and a counter, not a `watch` channel: a `watch`'s shared state holds nine
//! `Notify`s (about 0.3 KiB more per user), and every open connection may be another user.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

/// One watched user.
#[derive(Default)]
struct Watched {
    changes: AtomicU64,
    notify: Notify,
}

/// Each watched user, with how many `UserWatch`es there are (counted under the lock, so the
/// last one to go removes the entry).
type ByUser = HashMap<Uuid, (Arc<Watched>, usize)>;

#[derive(Clone, Default)]
pub(super) struct Watchers {
    by_user: Arc<Mutex<ByUser>>,
    announced: Arc<AtomicU64>,
}

impl Watchers {
    /// How many changes were announced so far.
    pub(super) fn announced(&self) -> u64 {
        self.announced.load(Ordering::SeqCst)
    }

    /// Wakes the connections watching `user`.
    pub(super) fn announce(&self, user: Uuid) {
        self.announced.fetch_add(1, Ordering::SeqCst);
        if let Some((watched, _)) = self.lock().get(&user) {
            watched.changes.fetch_add(1, Ordering::SeqCst);
            watched.notify.notify_waiters();
        }
    }

    pub(super) fn watch(&self, user: Uuid) -> UserWatch {
        let watched = {
            let mut by_user = self.lock();
            let (watched, count) = by_user.entry(user).or_default();
            *count += 1;
            watched.clone()
        };
        let seen = watched.changes.load(Ordering::SeqCst);
        UserWatch { user, watched, seen, watchers: self.clone() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByUser> {
        self.by_user.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One connection's watch of its viewer (`Directory::watch_user`).
pub struct UserWatch {
    user: Uuid,
    watched: Arc<Watched>,
    /// The user's change count this watch has answered for.
    seen: u64,
    watchers: Watchers,
}

impl UserWatch {
    /// Resolves when the user is announced changed, or was since the last time this
    /// resolved (or since [`UserWatch::mark_changed`]). Cancel-safe: a change announced while
    /// nobody awaited this is seen by the next call.
    pub async fn changed(&mut self) {
        loop {
            // Registered before the count is read: a change after the read wakes it, one
            // before it shows in the count.
            let notified = self.watched.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let changes = self.watched.changes.load(Ordering::SeqCst);
            if changes != self.seen {
                self.seen = changes;
                return;
            }
            notified.await;
        }
    }

    /// Makes the next [`UserWatch::changed`] resolve at once.
    pub fn mark_changed(&mut self) {
        self.seen = self.seen.wrapping_sub(1);
    }
}

impl Drop for UserWatch {
    fn drop(&mut self) {
        let mut by_user = self.watchers.lock();
        if let Some((_, count)) = by_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn wakes(watch: &mut UserWatch) -> bool {
        tokio::time::timeout(Duration::from_millis(20), watch.changed()).await.is_ok()
    }

    #[tokio::test]
    async fn a_change_wakes_only_its_users_watches_and_the_last_one_leaves_no_entry() {
        let watchers = Watchers::default();
        let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (mut ann_1, mut ann_2, mut bob_1) =
            (watchers.watch(ann), watchers.watch(ann), watchers.watch(bob));
        assert!(!wakes(&mut ann_1).await, "nothing announced yet");
        watchers.announce(ann);
        assert!(wakes(&mut ann_1).await && wakes(&mut ann_2).await);
        assert!(!wakes(&mut bob_1).await, "another user's change");
        assert!(!wakes(&mut ann_1).await, "once per announcement");
        assert_eq!(watchers.announced(), 1);
        bob_1.mark_changed();
        assert!(wakes(&mut bob_1).await);
        // A wait given up (a `select!` took another branch) loses nothing announced after it.
        assert!(!wakes(&mut bob_1).await);
        watchers.announce(bob);
        assert!(wakes(&mut bob_1).await, "heard by the next wait");

        drop(ann_1);
        assert!(watchers.lock().contains_key(&ann), "ann has another connection");
        drop((ann_2, bob_1));
        assert!(watchers.lock().is_empty());
        watchers.announce(ann);
        assert_eq!(watchers.announced(), 3, "counted even with nobody watching");
    }
}

//! Which users open connections act for, so that a change to a user wakes only that user's
//! connections: a `watch` per watched user, bumped when the user is announced changed, and
//! dropped with its last connection. A count of every announcement lets a connection tell
//! whether one came while it was authenticating, before it watched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use uuid::Uuid;

#[derive(Clone, Default)]
pub(super) struct Watchers {
    by_user: Arc<Mutex<HashMap<Uuid, watch::Sender<()>>>>,
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
        if let Some(sender) = self.lock().get(&user) {
            sender.send_replace(());
        }
    }

    pub(super) fn watch(&self, user: Uuid) -> UserWatch {
        let changed = self.lock().entry(user).or_insert_with(|| watch::channel(()).0).subscribe();
        UserWatch { user, changed, watchers: self.clone() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, watch::Sender<()>>> {
        self.by_user.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One connection's watch of its viewer (`Directory::watch_user`).
pub struct UserWatch {
    user: Uuid,
    changed: watch::Receiver<()>,
    watchers: Watchers,
}

impl UserWatch {
    /// Resolves when the user is announced changed, or was since the last time this
    /// resolved (or since [`UserWatch::mark_changed`]).
    pub async fn changed(&mut self) {
        // The sender lives in the map while this receiver does, so this cannot fail.
        if self.changed.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Makes the next [`UserWatch::changed`] resolve at once.
    pub fn mark_changed(&mut self) {
        self.changed.mark_changed();
    }
}

impl Drop for UserWatch {
    fn drop(&mut self) {
        let mut by_user = self.watchers.lock();
        // This receiver still counts until the fields drop, after this.
        if by_user.get(&self.user).is_some_and(|sender| sender.receiver_count() <= 1) {
            by_user.remove(&self.user);
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

        drop(ann_1);
        assert!(watchers.lock().contains_key(&ann), "ann has another connection");
        drop((ann_2, bob_1));
        assert!(watchers.lock().is_empty());
        watchers.announce(ann);
        assert_eq!(watchers.announced(), 2, "counted even with nobody watching");
    }
}

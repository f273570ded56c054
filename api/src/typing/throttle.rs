//! `TypingThrottle`: at most one typing publish per user, room and second from this instance.
//!
//! A client may call `setTyping` on every keystroke. A renewal of the state last published
//! within the second is dropped (subscribers' states last [`super::EXPIRY`]); a change within
//! the second is published when the second is over, with whatever state is latest by then,
//! so the last word always reaches the room and the bus sees one publish per second at most.
//! A message ends its author's typing for every viewer: within the second after it, a stop
//! repeats what the message said and is dropped, and a start is news, published at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

/// Shortest time between two publishes for one user in one room.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// A user typing in a room.
pub type Key = (Uuid, Uuid);

/// What to do with a typing state offered by `setTyping`.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Publish,
    /// A renewal within the second, or a change a publish is already scheduled for.
    Drop,
    /// A change within the second: publish [`TypingThrottle::take_scheduled`] after this long.
    Schedule(Duration),
}

#[derive(Clone, Default)]
pub struct TypingThrottle {
    slots: Arc<Mutex<HashMap<Key, Slot>>>,
}

struct Slot {
    published_at: Instant,
    published: bool,
    /// The newest state offered since, while a publish of it is scheduled.
    scheduled: Option<bool>,
    /// The "stop" was the user's message, not a publish: a start within the second is news.
    after_message: bool,
}

impl TypingThrottle {
    pub fn offer(&self, key: Key, typing: bool, now: Instant) -> Offer {
        let mut slots = self.slots();
        let slot = match slots.get_mut(&key) {
            Some(slot) if now < slot.published_at + INTERVAL => slot,
            _ => {
                slots.insert(
                    key,
                    Slot { published_at: now, published: typing, scheduled: None, after_message: false },
                );
                return Offer::Publish;
            }
        };
        if slot.after_message {
            if !typing {
                return Offer::Drop;
            }
            *slot = Slot { published_at: now, published: true, scheduled: None, after_message: false };
            return Offer::Publish;
        }
        match slot.scheduled {
            Some(_) => {
                slot.scheduled = Some(typing);
                Offer::Drop
            }
            None if typing == slot.published => Offer::Drop,
            None => {
                slot.scheduled = Some(typing);
                Offer::Schedule(slot.published_at + INTERVAL - now)
            }
        }
    }

    /// The state to publish now for a scheduled change, unless it ended where it started.
    pub fn take_scheduled(&self, key: Key, now: Instant) -> Option<bool> {
        let mut slots = self.slots();
        let slot = slots.get_mut(&key)?;
        let typing = slot.scheduled.take()?;
        if typing == slot.published {
            return None;
        }
        (slot.published_at, slot.published) = (now, typing);
        Some(typing)
    }

    /// The user sent a message in the room, which ended their typing there: a publish
    /// scheduled for the slot will find nothing, and the second after it starts afresh. True
    /// if the cluster's gate may still hold what was published from here (the gate keeps a
    /// state for `INTERVAL`, the wish for three). Users who did not type here lately have no
    /// slot and cost nothing.
    pub fn message_sent(&self, key: Key, now: Instant) -> bool {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(&key) else { return false };
        let held = slot.scheduled.is_some() || now < slot.published_at + 3 * INTERVAL;
        *slot = Slot { published_at: now, published: false, scheduled: None, after_message: true };
        held
    }

    /// Forgets users who have not typed for a while, so memory follows active typists.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        self.slots().retain(|_, slot| slot.scheduled.is_some() || now < slot.published_at + super::EXPIRY);
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<Key, Slot>> {
        // Nothing can be left half-updated by a panic under this lock: take the map as it is.
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_within_a_second_are_dropped_and_changes_wait_for_its_end() {
        let throttle = TypingThrottle::default();
        let key = (Uuid::nil(), Uuid::max());
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(throttle.offer(key, true, t0), Offer::Publish);
        assert_eq!(throttle.offer(key, true, ms(300)), Offer::Drop);
        assert_eq!(throttle.offer(key, false, ms(400)), Offer::Schedule(Duration::from_millis(600)));
        assert_eq!(throttle.offer(key, true, ms(500)), Offer::Drop);
        assert_eq!(throttle.offer(key, false, ms(600)), Offer::Drop);
        assert_eq!(throttle.take_scheduled(key, ms(1000)), Some(false), "the latest state wins");
        assert_eq!(throttle.offer(key, true, ms(1500)), Offer::Schedule(Duration::from_millis(500)));
        assert_eq!(throttle.offer(key, false, ms(1600)), Offer::Drop);
        assert_eq!(throttle.take_scheduled(key, ms(2000)), None, "back where it started");
        assert_eq!(throttle.offer(key, true, ms(2100)), Offer::Publish);
    }

    /// The client's "stop" after a send repeats what the message said; typing again right
    /// after is shown at once, not when the second is over.
    #[test]
    fn after_a_message_a_stop_is_dropped_and_a_start_published_at_once() {
        let throttle = TypingThrottle::default();
        let key = (Uuid::nil(), Uuid::max());
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(throttle.offer(key, true, t0), Offer::Publish);
        assert_eq!(throttle.offer(key, false, ms(100)), Offer::Schedule(Duration::from_millis(900)));
        assert!(throttle.message_sent(key, ms(200)), "the gate may hold the start");
        assert_eq!(throttle.take_scheduled(key, ms(1000)), None, "the message cancelled it");
        assert_eq!(throttle.offer(key, false, ms(300)), Offer::Drop);
        assert_eq!(throttle.offer(key, true, ms(400)), Offer::Publish);
        assert_eq!(throttle.offer(key, false, ms(500)), Offer::Schedule(Duration::from_millis(900)));
        assert!(!throttle.message_sent((Uuid::max(), Uuid::nil()), ms(600)), "never typed here");
    }
}

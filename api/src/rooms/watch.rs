//! Setting up and repairing the bus `Watcher` behind every subscription: which rooms it
//! follows is decided here, from the database, so a subscriber only ever follows rooms the
//! viewer may read. [`RoomEvents`] is the watcher of the one-room feeds of signals (typing,
//! read receipts), which end when the viewer leaves.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::access;
use crate::auth::Viewer;
use crate::bus::{Envelope, Event, MembershipCheck, Scope, Watched, Watcher};
use crate::error::{ApiResult, found};
use crate::state::AppState;

/// A watcher following the viewer's rooms (`AllRooms`) or one room they may read.
pub async fn watch(state: &AppState, viewer: &Viewer, scope: Scope) -> ApiResult<Watcher> {
    if let Scope::Room(room_id) = scope {
        // Check before subscribing anything: an unreadable room is NOT_FOUND.
        access::readable(&state.store, viewer, room_id).await?;
    }
    // The user topic first, so a membership change after the read below arrives as an event.
    let mut watcher = Watcher::start(&state.bus, viewer.id, scope, Box::new(state.clone())).await;
    let rooms = match scope {
        Scope::Room(room_id) => vec![room_id],
        Scope::AllRooms => access::member_room_ids(&state.store, viewer.id).await?,
    };
    for room_id in rooms {
        watcher.follow(room_id).await;
    }
    Ok(watcher)
}

/// The database's answer to a watcher about to apply a membership event.
#[async_trait]
impl MembershipCheck for AppState {
    async fn is_member(&self, user_id: Uuid, room_id: Uuid) -> Option<bool> {
        match access::is_member(&self.store, user_id, room_id).await {
            Ok(member) => Some(member),
            Err(err) => {
                tracing::warn!(?err, "membership check failed; resynced");
                None
            }
        }
    }
}

/// What changed while events may have been lost.
#[derive(Debug, Default)]
pub struct Repaired {
    pub joined: Vec<Uuid>,
    pub left: Vec<Uuid>,
}

/// After a resync, brings the followed rooms back in line with the database: membership
/// events may have been among the lost ones.
pub async fn repair(state: &AppState, viewer: &Viewer, watcher: &mut Watcher) -> ApiResult<Repaired> {
    let readable: HashSet<Uuid> = match watcher.scope() {
        Scope::Room(room_id) => match found(access::readable(&state.store, viewer, room_id).await)? {
            Some(_) => HashSet::from([room_id]),
            None => HashSet::new(),
        },
        Scope::AllRooms => access::member_room_ids(&state.store, viewer.id).await?.into_iter().collect(),
    };
    // Taken once the read succeeded: a repair that fails leaves them for the retry.
    let followed =
        Followed { now: watcher.rooms().into_iter().collect(), unconfirmed: watcher.take_unconfirmed() };
    let repaired = followed.compare(&readable);
    for room_id in &repaired.left {
        watcher.unfollow(*room_id);
    }
    for room_id in readable.iter().filter(|room_id| !followed.now.contains(room_id)) {
        watcher.follow(*room_id).await;
    }
    Ok(repaired)
}

/// What a watcher followed before a repair.
struct Followed {
    now: HashSet<Uuid>,
    /// Dropped on a membership event the database could not confirm (`Watcher::take_unconfirmed`).
    unconfirmed: Vec<Uuid>,
}

impl Followed {
    /// Left: followed or dropped unconfirmed, and not readable. Joined: readable and neither;
    /// a room dropped unconfirmed that is still readable is followed again, as it was, not
    /// announced as joined anew.
    fn compare(&self, readable: &HashSet<Uuid>) -> Repaired {
        let was_followed = |room_id: &Uuid| self.now.contains(room_id) || self.unconfirmed.contains(room_id);
        let left = self.now.iter().chain(&self.unconfirmed).filter(|room_id| !readable.contains(room_id));
        let mut left: Vec<Uuid> = left.copied().collect();
        left.sort_unstable();
        left.dedup();
        let joined = readable.iter().filter(|room_id| !was_followed(room_id)).copied().collect();
        Repaired { joined, left }
    }
}

/// [`repair`] for feeds that go on when it fails: the failure is logged and the watcher
/// yields `Retry` after a backoff, on which the feed repairs again.
pub async fn repair_or_retry(state: &AppState, viewer: &Viewer, watcher: &mut Watcher) -> Option<Repaired> {
    match repair(state, viewer, watcher).await {
        Ok(repaired) => Some(repaired),
        Err(err) => {
            tracing::warn!(?err, "resync failed; retried");
            watcher.retry_later();
            None
        }
    }
}

/// One readable room's events, of its topic and of its signals topic, until the viewer may no
/// longer read it.
pub struct RoomEvents {
    state: AppState,
    viewer: Viewer,
    room_id: Uuid,
    watcher: Watcher,
    access: Access,
}

/// Whether the viewer's access is known to hold since the last resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Checked,
    /// A resync or a retry arrived: check again before the next event.
    CheckDue,
    /// The check failed (the database did not answer): events are dropped until a retry,
    /// after a backoff, succeeds. Typing and receipts are of the moment, so they are dropped,
    /// and the subscription lives on: graphql-ws clients do not subscribe again after
    /// `complete`.
    CheckFailed,
}

impl RoomEvents {
    pub async fn open(state: AppState, viewer: Viewer, room_id: Uuid) -> ApiResult<Self> {
        let mut watcher = watch(&state, &viewer, Scope::Room(room_id)).await?;
        watcher.follow_signals(room_id).await;
        Ok(Self { state, viewer, room_id, watcher, access: Access::Checked })
    }

    pub fn viewer_id(&self) -> Uuid {
        self.viewer.id
    }

    /// The next event; `None` once the viewer left the room or lost access to it. Cancel-safe:
    /// a feed may race it against a timer, and an interrupted access check is done again.
    pub async fn next(&mut self) -> Option<Arc<Envelope>> {
        loop {
            if self.access == Access::CheckDue {
                // Events may have been lost, a membership change among them.
                let repaired = repair_or_retry(&self.state, &self.viewer, &mut self.watcher).await;
                match repaired {
                    Some(repaired) if repaired.left.contains(&self.room_id) => return None,
                    Some(_) => {
                        // A membership event the database could not confirm dropped both
                        // topics; the repair follows the room's again, not its signals'.
                        self.watcher.follow_signals(self.room_id).await;
                        self.access = Access::Checked;
                    }
                    None => self.access = Access::CheckFailed,
                }
            }
            match self.watcher.next().await? {
                Watched::Room(_, envelope) if self.access == Access::Checked => return Some(envelope),
                Watched::Room(..) => {}
                Watched::User(envelope) => {
                    if let Event::MembershipChanged { room_id, change, .. } = envelope.event
                        && room_id == self.room_id
                        && !change.is_member()
                    {
                        return None;
                    }
                }
                Watched::Resync(_) | Watched::Retry => self.access = Access::CheckDue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use uuid::Uuid;

    use super::Followed;

    /// A removal whose membership check failed dropped the room before the repair: it is still
    /// left, or a feed would never say so (and typing would follow the room's signals again).
    #[test]
    fn a_room_dropped_unconfirmed_is_left_unless_readable() {
        let (kept, removed, dropped_but_member, new) =
            (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let followed =
            Followed { now: HashSet::from([kept]), unconfirmed: vec![removed, dropped_but_member] };
        let repaired = followed.compare(&HashSet::from([kept, dropped_but_member, new]));
        assert_eq!(repaired.left, [removed]);
        assert_eq!(repaired.joined, [new], "a room followed before is not joined anew");
    }
}

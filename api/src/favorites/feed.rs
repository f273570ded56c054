//! The `favoritesChanged` feed: the viewer's favorites as they are set or cleared on any
//! device, including those whose events never came.
//!
//! Events (`FavoriteChanged` on the viewer's user topic) say what changed and carry the
//! viewer's favorites version after it, one more per change. The feed keeps the set of the
//! viewer's favorite rooms and saved messages (ids only, read with their version, from one
//! snapshot, when it starts). An event the feed's version already counts is dropped (it came
//! late, after a newer one); one that skips a version means events were lost: on the bus, or
//! never published because the acting instance was cut off from Redis. Then, as after a
//! resync (a bus reconnect, or this reader lagging), the feed reads the sets again and
//! announces the net difference, in no particular order: a room favored meanwhile shows up as
//! favored, one cleared as not. So each room's and message's last frame is its state now. A
//! failed read is tried again after a backoff (`bus::Retry`). A lost last change is caught up
//! by the next change or resync, since nothing says it was made; an event from an instance
//! older than versions (version 0) is applied as it comes, and its loss goes unnoticed.

use std::collections::{HashSet, VecDeque};

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::service::{self, Favorites};
use crate::bus::{BusItem, Event, Retry, Topic, TopicSubscription};
use crate::error::ApiResult;
use crate::state::AppState;

/// A favorite set or cleared: a room or a saved message.
pub struct Change {
    pub room_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub favorite: bool,
}

struct FavoritesFeed {
    state: AppState,
    user_id: Uuid,
    events: TopicSubscription,
    /// The favorites as of the last event or reread: what a reread is compared with.
    known: Favorites,
    pending: VecDeque<Change>,
    /// Pending after a failed reread: when due, read again.
    retry: Retry,
}

/// The viewer's favorite changes; subscribed when this returns. Fails when the favorites
/// cannot be read, since a later loss could not be repaired without them.
pub async fn favorites_changed(state: AppState, user_id: Uuid) -> ApiResult<BoxStream<'static, Change>> {
    // Subscribed before reading, so that a change made in between is both read and heard.
    let events = state.bus.subscribe(Topic::User(user_id)).await;
    let known = service::favorites(&state.store, user_id).await?;
    let feed =
        FavoritesFeed { state, user_id, events, known, pending: VecDeque::new(), retry: Retry::default() };
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|c| (c, feed)) }).boxed())
}

impl FavoritesFeed {
    async fn next(&mut self) -> Option<Change> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Some(change);
            }
            let item = tokio::select! {
                // Both cancel-safe: a broadcast receiver loses nothing to a cancelled `recv`.
                () = self.retry.due() => {
                    self.reread().await;
                    continue;
                }
                item = self.events.receiver.recv() => item,
            };
            match item {
                Ok(BusItem::Event(envelope)) => match envelope.event {
                    Event::FavoriteChanged { room_id, message_id, favorite, version } => {
                        match place(self.known.version, version) {
                            Place::Next => {
                                self.known.version = self.known.version.max(version);
                                self.known.apply(room_id, message_id, favorite);
                                return Some(Change { room_id, message_id, favorite });
                            }
                            Place::Counted => {}
                            // A pending retry rereads anyway: while the database is down,
                            // every event would otherwise try it again.
                            Place::AfterGap if self.retry.is_pending() => {}
                            Place::AfterGap => self.reread().await,
                        }
                    }
                    // Leaving drops the membership and its star, uncounted and unannounced
                    // (the viewer's devices hear `roomUpdated`): known as not favored, so a
                    // reread after a rejoin does not announce it cleared.
                    Event::MembershipChanged { room_id, change, .. } if !change.is_member() => {
                        self.known.rooms.remove(&room_id);
                    }
                    _ => {}
                },
                Ok(BusItem::Resync(_)) | Err(RecvError::Lagged(_)) => {
                    self.retry.cancel();
                    self.reread().await;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Reads the favorites again and queues what changed since the feed last knew them.
    async fn reread(&mut self) {
        let now = match service::favorites(&self.state.store, self.user_id).await {
            Ok(now) => now,
            Err(error) => {
                tracing::warn!(%error, "favoritesChanged: cannot reread favorites; retrying");
                self.retry.later();
                return;
            }
        };
        self.retry.settle();
        let rooms = differences(&self.known.rooms, &now.rooms);
        let messages = differences(&self.known.messages, &now.messages);
        self.pending.extend(rooms.map(|(id, favorite)| Change {
            room_id: Some(id),
            message_id: None,
            favorite,
        }));
        self.pending.extend(messages.map(|(id, favorite)| Change {
            room_id: None,
            message_id: Some(id),
            favorite,
        }));
        self.known = now;
    }
}

/// What was added to `before` (true) and taken from it (false) to make `after`.
fn differences<'a>(
    before: &'a HashSet<Uuid>,
    after: &'a HashSet<Uuid>,
) -> impl Iterator<Item = (Uuid, bool)> + 'a {
    let added = after.difference(before).map(|id| (*id, true));
    added.chain(before.difference(after).map(|id| (*id, false)))
}

/// Where an event stands against the version the feed knows.
#[derive(Debug, PartialEq)]
enum Place {
    /// The next change, or an unversioned one (version 0, from an older instance): applied.
    Next,
    /// A change the known sets already hold: dropped.
    Counted,
    /// Changes before it were missed: the sets are read again.
    AfterGap,
}

fn place(known: i64, version: i64) -> Place {
    if version == 0 || version == known + 1 {
        Place::Next
    } else if version <= known {
        Place::Counted
    } else {
        Place::AfterGap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_version_is_applied() {
        assert_eq!(place(0, 1), Place::Next);
        assert_eq!(place(41, 42), Place::Next);
    }

    #[test]
    fn a_version_already_counted_is_dropped() {
        assert_eq!(place(5, 5), Place::Counted);
        assert_eq!(place(5, 3), Place::Counted);
    }

    #[test]
    fn a_skipped_version_is_a_gap() {
        assert_eq!(place(5, 7), Place::AfterGap);
        assert_eq!(place(0, 2), Place::AfterGap);
    }

    #[test]
    fn an_unversioned_change_is_applied() {
        assert_eq!(place(5, 0), Place::Next);
    }

    #[test]
    fn differences_name_what_was_added_and_taken() {
        let id = |n: u128| Uuid::from_u128(n);
        let before = HashSet::from([id(1), id(2)]);
        let after = HashSet::from([id(2), id(3)]);
        let found: HashSet<(Uuid, bool)> = differences(&before, &after).collect();
        assert_eq!(found, HashSet::from([(id(3), true), (id(1), false)]));
    }
}

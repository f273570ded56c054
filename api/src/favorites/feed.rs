//! The `favoritesChanged` feed: the viewer's favorites as they are set or cleared on any
//! device, including those this instance missed while cut off from Redis.
//!
//! Events (`FavoriteChanged` on the viewer's user topic) say what changed. The bus is at most
//! once, so the feed keeps the set of the viewer's favorite rooms and saved messages (ids
//! only, read when it starts) and, after a resync (a bus reconnect, or this reader lagging),
//! reads the sets again and announces the difference: a room favored on another device while
//! this instance could not hear the bus shows up as favored, one left or cleared as not. A
//! failed read is tried again after a backoff (`bus::Retry`). An event the acting instance
//! failed to publish (its own link down) causes no resync here, and is only caught up at the
//! next one: `FavoriteChanged` carries no sequence number to reveal the gap.

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
                Ok(BusItem::Event(envelope)) => {
                    if let Event::FavoriteChanged { room_id, message_id, favorite } = envelope.event {
                        self.known.apply(room_id, message_id, favorite);
                        return Some(Change { room_id, message_id, favorite });
                    }
                }
                Ok(BusItem::Resync) | Err(RecvError::Lagged(_)) => {
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

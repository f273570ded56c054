//! The `messageAdded` feed (`messageUpdated`'s is `changes.rs`).
//!
//! `messageAdded` keeps, per room, the last seq it delivered. An event with the next seq is
//! delivered as it is; an older one is a duplicate and dropped; a newer one means events were
//! missed, and the room falls "behind": the gap is then read from the database, one batch at a
//! time as the client consumes them. After a bus reconnect or a lag, membership is repaired
//! and every room catches up the same way. Hence: no gap, no duplicate, whatever the bus does.

use std::collections::{HashMap, VecDeque};

use futures_util::stream::{self, BoxStream, StreamExt};
use uuid::Uuid;

use super::record::{LiveMessage, MessageRecord};
use super::service;
use crate::auth::Viewer;
use crate::bus::{Event, Scope, Watched, Watcher};
use crate::error::{ApiError, ApiResult};
use crate::read_state::service as read_state;
use crate::rooms::watch::{repair_or_retry, watch};
use crate::state::AppState;

/// Rows read per database round trip while catching up.
const CATCH_UP_BATCH: u64 = 100;

/// Seqs by room. Looked up for every event by every subscriber, so hashed with foldhash:
/// SipHash, the default, cost ≈ 230 more instructions per frame; the keys are the rooms the
/// viewer follows, not values a client picks.
type Seqs = HashMap<Uuid, i64, foldhash::fast::RandomState>;

struct MessageFeed {
    state: AppState,
    viewer: Viewer,
    watcher: Watcher,
    /// The last seq delivered per followed room.
    delivered: Seqs,
    /// Rooms with messages in the database beyond `delivered`.
    behind: VecDeque<Uuid>,
    /// Rooms whose catch-up failed, caught up again on the watcher's `Retry`.
    failed: Vec<Uuid>,
    /// A resync failed: the watcher's `Retry` resyncs again.
    resync_failed: bool,
    pending: VecDeque<LiveMessage>,
}

pub async fn message_added(
    state: AppState,
    viewer: Viewer,
    room_id: Option<Uuid>,
    after: Option<i64>,
) -> ApiResult<BoxStream<'static, LiveMessage>> {
    let scope = match (room_id, after) {
        (None, Some(_)) => return Err(ApiError::bad_input("`after` needs a `roomId`")),
        (_, Some(after)) if after < 0 => return Err(ApiError::bad_input("`after` must be ≥ 0")),
        (Some(room_id), _) => Scope::Room(room_id),
        (None, None) => Scope::AllRooms,
    };
    let watcher = watch(&state, &viewer, scope).await?;
    // Read seqs after subscribing, so no message falls between the two.
    let latest = read_state::latest_seqs(&state.store, &watcher.rooms()).await?;
    let mut delivered: Seqs = latest.into_iter().collect();
    let mut behind = VecDeque::new();
    if let (Some(room_id), Some(after)) = (room_id, after) {
        delivered.entry(room_id).and_modify(|seq| *seq = after.min(*seq));
        behind.push_back(room_id);
    }
    // Boxed: each item then moves a pointer in and out of the stream, not the feed.
    let feed = Box::new(MessageFeed {
        state,
        viewer,
        watcher,
        delivered,
        behind,
        failed: Vec::new(),
        resync_failed: false,
        pending: VecDeque::new(),
    });
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|m| (m, feed)) }).boxed())
}

impl MessageFeed {
    async fn next(&mut self) -> Option<LiveMessage> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            // Drained: free the buffer (a catch-up fills it with a hundred messages). Every
            // subscriber has a feed, and an idle one should hold nothing it does not need.
            self.pending = VecDeque::new();
            if let Some(&room_id) = self.behind.front() {
                // The database reads are boxed: their futures are large, and inline they
                // would stay allocated in every idle subscription's stream.
                Box::pin(self.catch_up(room_id)).await;
                continue;
            }
            match self.watcher.next().await? {
                Watched::Room(_, envelope) => {
                    if let Event::MessageAdded { message, author, room, .. } = &envelope.event {
                        let (message, author, room) = (message.clone(), author.clone(), room.clone());
                        self.accept(LiveMessage::Event { message, author, room });
                    }
                }
                Watched::User(envelope) => {
                    let Event::MembershipChanged { room_id, change, seq } = envelope.event else { continue };
                    if change.is_member() && self.watcher.scope() == Scope::AllRooms {
                        self.delivered.entry(room_id).or_insert(seq);
                        self.fall_behind(room_id);
                    } else if !change.is_member() {
                        self.delivered.remove(&room_id);
                        if self.watcher.scope() == Scope::Room(room_id) {
                            return None;
                        }
                    }
                }
                Watched::Resync(_) => {
                    if !Box::pin(self.resync()).await {
                        return None;
                    }
                }
                Watched::Retry if self.resync_failed => {
                    if !Box::pin(self.resync()).await {
                        return None;
                    }
                }
                Watched::Retry => {
                    for room_id in std::mem::take(&mut self.failed) {
                        self.fall_behind(room_id);
                    }
                }
            }
        }
    }

    fn accept(&mut self, live: LiveMessage) {
        let (room_id, seq) = (live.room_id(), live.seq());
        let Some(&last) = self.delivered.get(&room_id) else { return };
        if seq == last + 1 && !self.behind.contains(&room_id) {
            self.delivered.insert(room_id, seq);
            self.pending.push_back(live);
        } else if seq > last {
            self.fall_behind(room_id);
        }
    }

    fn fall_behind(&mut self, room_id: Uuid) {
        if !self.behind.contains(&room_id) {
            self.behind.push_back(room_id);
        }
    }

    /// Reads the next batch after the last delivered seq of a room from the database.
    async fn catch_up(&mut self, room_id: Uuid) {
        let Some(&last) = self.delivered.get(&room_id) else {
            self.behind.retain(|id| *id != room_id);
            return;
        };
        let store = &self.state.store;
        // Only while the viewer may still read the room: a removal ends the catch-up even
        // before its event, queued behind it, is read.
        match service::readable_after(store, &self.viewer, room_id, last, CATCH_UP_BATCH).await {
            Ok(rows) => {
                if (rows.len() as u64) < CATCH_UP_BATCH {
                    self.behind.retain(|id| *id != room_id);
                }
                for row in rows {
                    self.delivered.insert(room_id, row.seq);
                    self.pending.push_back(LiveMessage::from(MessageRecord::from(row)));
                }
            }
            Err(err) => {
                // Caught up again on the retry, from the same seq; the other rooms go on.
                tracing::warn!(?err, %room_id, "catch-up failed; retried");
                self.behind.retain(|id| *id != room_id);
                self.failed.push(room_id);
                self.watcher.retry_later();
            }
        }
    }

    /// Events may have been lost: repair membership, then every room catches up. False when
    /// the one room of this feed is no longer readable.
    async fn resync(&mut self) -> bool {
        // Every room falls behind below: rooms whose catch-up failed are among them.
        self.failed.clear();
        self.resync_failed = false;
        let Some(repaired) = repair_or_retry(&self.state, &self.viewer, &mut self.watcher).await else {
            self.resync_failed = true;
            return true;
        };
        for room_id in &repaired.left {
            self.delivered.remove(room_id);
        }
        if let Scope::Room(room_id) = self.watcher.scope()
            && repaired.left.contains(&room_id)
        {
            return false;
        }
        // A room joined while events were lost starts where the viewer's watermark stands:
        // at the join (members start with everything before it read), so its first messages
        // are delivered, not skipped (a new support conversation's first message is one).
        // Rooms whose start a failed resync could not read are among them.
        let unknown: Vec<Uuid> =
            self.watcher.rooms().into_iter().filter(|id| !self.delivered.contains_key(id)).collect();
        if !unknown.is_empty() {
            match read_state::positions(&self.state.store, self.viewer.id, Some(&unknown)).await {
                Ok(positions) => {
                    self.delivered.extend(positions.into_iter().map(|p| (p.room_id, p.last_read_seq)));
                }
                Err(err) => {
                    tracing::warn!(?err, "resync failed; retried");
                    self.resync_failed = true;
                    self.watcher.retry_later();
                }
            }
        }
        let rooms: Vec<Uuid> = self.delivered.keys().copied().collect();
        for room_id in rooms {
            self.fall_behind(room_id);
        }
        true
    }
}

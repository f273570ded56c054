//! The `unreadCountChanged` feed: unread counts derived at the edge.
//!
//! The feed holds the viewer's read position in each room. Room events (one per message, not
//! one per member) update it by seq — a message raises `latest_seq`, a deletion above the
//! watermark is remembered, the viewer's own message moves the watermark — so the result does
//! not depend on event order. User events (reads on another device, joins) and resyncs reread
//! that user's positions from the database. An archived room keeps its counts but leaves the
//! total, as it leaves the viewer's room list.

use std::collections::{HashMap, VecDeque};

use futures_util::stream::{self, BoxStream, StreamExt};
use uuid::Uuid;

use super::service::{self, ReadPosition};
use crate::auth::Viewer;
use crate::bus::{Event, RoomChange, Scope, Watched, Watcher};
use crate::error::ApiResult;
use crate::rooms::watch::{repair_or_retry, watch};
use crate::state::AppState;

struct UnreadFeed {
    state: AppState,
    viewer: Viewer,
    watcher: Watcher,
    positions: HashMap<Uuid, ReadPosition>,
    /// The unread and mention counts last sent per room, so unchanged counts are not sent again.
    sent: HashMap<Uuid, (i64, i64)>,
    pending: VecDeque<UnreadChange>,
}

/// A change of the viewer's unread count in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadChange {
    pub room_id: Uuid,
    pub unread_count: i64,
    /// Unread messages that mention the viewer.
    pub mention_count: i64,
    /// Across all the viewer's rooms.
    pub unread_total: i64,
    /// The room seq the count was computed at.
    pub seq: i64,
    /// False once the viewer left or was removed (the count is then 0).
    pub member: bool,
    /// True when someone else's new message raised the count and the viewer has not muted
    /// the room: what a client shows a notification for.
    pub notify: bool,
}

pub async fn unread_changes(state: AppState, viewer: Viewer) -> ApiResult<BoxStream<'static, UnreadChange>> {
    let watcher = watch(&state, &viewer, Scope::AllRooms).await?;
    // Read now that events are flowing, so no change falls between the two.
    let positions: HashMap<Uuid, ReadPosition> = service::positions(&state.store, viewer.id, None)
        .await?
        .into_iter()
        .map(|p| (p.room_id, p))
        .collect();
    let sent = positions.values().map(|p| (p.room_id, (p.unread(), p.mention_count()))).collect();
    let feed = UnreadFeed { state, viewer, watcher, positions, sent, pending: VecDeque::new() };
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|c| (c, feed)) }).boxed())
}

impl UnreadFeed {
    async fn next(&mut self) -> Option<UnreadChange> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Some(change);
            }
            // Drained: free the buffer, as `messageAdded`'s feed does.
            self.pending = VecDeque::new();
            match self.watcher.next().await? {
                Watched::Room(room_id, envelope) => {
                    let Some(position) = self.positions.get_mut(&room_id) else { continue };
                    let mut notify = false;
                    let viewer = self.viewer.id;
                    match &envelope.event {
                        Event::MessageAdded { message, mentioned, .. } => {
                            notify = message.author_user_id != Some(viewer) && !position.is_muted();
                            position.latest_seq = position.latest_seq.max(message.seq);
                            if message.author_user_id == Some(viewer) {
                                position.read_to(message.seq);
                            }
                            mark(
                                &mut position.mentioned_above,
                                message.seq,
                                position.last_read_seq,
                                mentioned.contains(&viewer),
                            );
                        }
                        // Out of the total from now on: told with the room's counts.
                        Event::RoomChanged { change: RoomChange::Archived, .. } => {
                            position.archived = true;
                            self.sent.remove(&room_id);
                        }
                        Event::MessageUpdated { message, mentioned } => {
                            position.latest_seq = position.latest_seq.max(message.seq);
                            let (seq, read) = (message.seq, position.last_read_seq);
                            if message.deleted_at.is_some() {
                                mark(&mut position.deleted_above, seq, read, true);
                            }
                            mark(&mut position.mentioned_above, seq, read, mentioned.contains(&viewer));
                        }
                        _ => continue,
                    }
                    self.send_if_changed(room_id, notify);
                }
                Watched::User(envelope) => match envelope.event {
                    // The database reads are boxed: their futures are large, and inline they
                    // would stay allocated in every idle subscription's stream.
                    Event::ReadStateChanged { room_id, .. } | Event::MuteChanged { room_id } => {
                        Box::pin(self.reload(room_id)).await
                    }
                    Event::MembershipChanged { room_id, change, .. } if change.is_member() => {
                        Box::pin(self.reload(room_id)).await
                    }
                    Event::MembershipChanged { room_id, .. } => {
                        if let Some(position) = self.positions.remove(&room_id) {
                            self.sent.remove(&room_id);
                            self.push(room_id, (0, 0), position.latest_seq, false);
                        }
                    }
                    _ => {}
                },
                // One statement rereads every position: a retry does the same as a resync.
                Watched::Resync(_) | Watched::Retry => Box::pin(self.resync()).await,
            }
        }
    }

    /// Events may have been lost: repair membership and reread every position.
    async fn resync(&mut self) {
        if repair_or_retry(&self.state, &self.viewer, &mut self.watcher).await.is_none() {
            return;
        }
        let current = match service::positions(&self.state.store, self.viewer.id, None).await {
            Ok(current) => current,
            Err(err) => {
                tracing::warn!(?err, "resync failed; retried");
                return self.watcher.retry_later();
            }
        };
        let gone: Vec<Uuid> =
            self.positions.keys().filter(|id| !current.iter().any(|p| p.room_id == **id)).copied().collect();
        for room_id in gone {
            if let Some(position) = self.positions.remove(&room_id) {
                self.sent.remove(&room_id);
                self.push(room_id, (0, 0), position.latest_seq, false);
            }
        }
        self.update(current);
    }

    /// Takes reread positions, all of them before telling any: each change carries the
    /// total over them all. A room archived meanwhile is told even if its counts stayed, as
    /// the total moved.
    fn update(&mut self, reread: Vec<ReadPosition>) {
        let mut changed = Vec::with_capacity(reread.len());
        for position in reread {
            let room_id = position.room_id;
            if self.positions.get(&room_id).is_some_and(|old| old.archived != position.archived) {
                self.sent.remove(&room_id);
            }
            self.positions.insert(room_id, position);
            changed.push(room_id);
        }
        for room_id in changed {
            self.send_if_changed(room_id, false);
        }
    }

    /// Rereads one room's position from the database.
    async fn reload(&mut self, room_id: Uuid) {
        match service::positions(&self.state.store, self.viewer.id, Some(&[room_id])).await {
            Ok(positions) => self.update(positions),
            Err(err) => {
                // The resync rereads every position, this one included.
                tracing::warn!(?err, "unread positions reload failed; retried");
                self.watcher.retry_later();
            }
        }
    }

    fn send_if_changed(&mut self, room_id: Uuid, notify: bool) {
        let Some(position) = self.positions.get(&room_id) else { return };
        let counts = (position.unread(), position.mention_count());
        if self.sent.get(&room_id) != Some(&counts) {
            self.sent.insert(room_id, counts);
            self.push(room_id, counts, position.latest_seq, notify);
        }
    }

    fn push(&mut self, room_id: Uuid, (unread_count, mention_count): (i64, i64), seq: i64, notify: bool) {
        let unread_total = self.positions.values().filter(|p| !p.archived).map(ReadPosition::unread).sum();
        let member = self.positions.contains_key(&room_id);
        let change = UnreadChange { room_id, unread_count, mention_count, unread_total, seq, member, notify };
        self.pending.push_back(change);
    }
}

/// Keeps `seqs` (of messages above the watermark `read`) holding `seq` exactly when `holds`.
fn mark(seqs: &mut Vec<i64>, seq: i64, read: i64, holds: bool) {
    let present = seqs.contains(&seq);
    if holds && seq > read && !present {
        seqs.push(seq);
    } else if !holds && present {
        seqs.retain(|s| *s != seq);
    }
}

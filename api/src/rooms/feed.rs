//! The `roomUpdated` feed: room events of every room the viewer is in, plus the viewer's own
//! membership changes. After a resync, rooms joined or left meanwhile are reported, and so
//! are rooms whose own state changed meanwhile (`rooms.changed_at`), once each, as `UPDATED`
//! (`ARCHIVED` when archived, `CONVERSATION_CHANGED` without its `conversationChange` for a
//! conversation): the event that said how is lost, the room's fields say what is.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, BoxStream, StreamExt};

use super::service;
use super::types::{RoomUpdate, RoomUpdateReason};
use super::watch::{repair_or_retry, watch};
use crate::auth::Viewer;
use crate::bus::{ConversationChangePayload, Event, REREAD_OVERLAP, Scope, Watched, Watcher};
use crate::error::ApiResult;
use crate::state::AppState;
use entity::rooms;

struct RoomFeed {
    state: AppState,
    viewer: Viewer,
    watcher: Watcher,
    /// Rooms changed after this moment are reread at the next resync (as `messageUpdated`'s
    /// `since`, `messages/changes.rs`).
    since: DateTime<Utc>,
    /// A reread is due of the rooms changed after this moment (it waits for a repair that
    /// failed, or failed itself, until the watcher's `Retry`).
    reread_from: Option<DateTime<Utc>>,
    pending: VecDeque<RoomUpdate>,
}

pub async fn room_updates(state: AppState, viewer: Viewer) -> ApiResult<BoxStream<'static, RoomUpdate>> {
    let since = Utc::now() - REREAD_OVERLAP;
    let watcher = watch(&state, &viewer, Scope::AllRooms).await?;
    let feed = RoomFeed { state, viewer, watcher, since, reread_from: None, pending: VecDeque::new() };
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|u| (u, feed)) }).boxed())
}

impl RoomFeed {
    async fn next(&mut self) -> Option<RoomUpdate> {
        loop {
            if let Some(update) = self.pending.pop_front() {
                return Some(update);
            }
            match self.watcher.next().await? {
                Watched::Room(room_id, envelope) => match &envelope.event {
                    Event::RoomChanged { change, .. } => {
                        return Some(RoomUpdate::new(room_id, (*change).into()));
                    }
                    Event::ConversationChanged { change, .. } => {
                        let mut update = RoomUpdate::new(room_id, RoomUpdateReason::ConversationChanged);
                        update.conversation_change = Some(ConversationChangePayload::clone(change).into());
                        return Some(update);
                    }
                    _ => {}
                },
                Watched::User(envelope) => {
                    if let Event::MembershipChanged { room_id, change, .. } = envelope.event {
                        return Some(RoomUpdate::new(room_id, change.into()));
                    }
                }
                Watched::Resync => {
                    let from = self.reread_from.map_or(self.since, |from| from.min(self.since));
                    self.reread_from = Some(from);
                    self.since = Utc::now() - REREAD_OVERLAP;
                    self.resync().await;
                }
                Watched::Retry => self.resync().await,
            }
        }
    }

    /// Repairs membership (again, after a failure: a repair that finds nothing new reports
    /// nothing), then rereads the rooms changed since `reread_from`.
    async fn resync(&mut self) {
        let Some(repaired) = repair_or_retry(&self.state, &self.viewer, &mut self.watcher).await else {
            return;
        };
        let joined = repaired.joined.into_iter().map(|id| (id, RoomUpdateReason::Joined));
        let left = repaired.left.into_iter().map(|id| (id, RoomUpdateReason::Left));
        for (room_id, reason) in joined.chain(left) {
            self.pending.push_back(RoomUpdate::new(room_id, reason));
        }
        let Some(from) = self.reread_from else { return };
        match service::changed_since(&self.state.store, &self.watcher.rooms(), from).await {
            Ok(changed) => {
                self.reread_from = None;
                self.pending
                    .extend(changed.iter().map(|room| RoomUpdate::new(room.id, reason_after_reread(room))));
            }
            Err(err) => {
                tracing::warn!(?err, "rereading changed rooms failed; retried");
                self.watcher.retry_later();
            }
        }
    }
}

/// What a room's fields say of a change whose event was lost.
fn reason_after_reread(room: &rooms::Model) -> RoomUpdateReason {
    if room.archived_at.is_some() {
        RoomUpdateReason::Archived
    } else if room.inbox_id.is_some() {
        RoomUpdateReason::ConversationChanged
    } else {
        RoomUpdateReason::Updated
    }
}

//! The `roomUpdated` feed: room events of every room the viewer is in, plus the viewer's own
//! membership changes. After a resync, rooms joined or left meanwhile are reported, and so
//! are rooms whose own state changed meanwhile (`rooms.changed_at`), once each, as `UPDATED`
//! (`ARCHIVED` when archived, `CONVERSATION_CHANGED` without its `conversationChange` for a
//! conversation): the event that said how is lost, the room's fields say what is.

use std::collections::VecDeque;

use futures_util::stream::{self, BoxStream, StreamExt};

use super::service;
use super::types::{RoomUpdate, RoomUpdateReason};
use super::watch::{repair_or_retry, watch};
use crate::auth::Viewer;
use crate::bus::{ConversationChangePayload, Event, RereadWindow, Scope, Watched, Watcher};
use crate::error::ApiResult;
use crate::state::AppState;
use entity::rooms;

struct RoomFeed {
    state: AppState,
    viewer: Viewer,
    watcher: Watcher,
    /// From when the next reread of changed rooms reads.
    window: RereadWindow,
    pending: VecDeque<RoomUpdate>,
}

pub async fn room_updates(state: AppState, viewer: Viewer) -> ApiResult<BoxStream<'static, RoomUpdate>> {
    let window = RereadWindow::starting_now();
    let watcher = watch(&state, &viewer, Scope::AllRooms).await?;
    let feed = RoomFeed { state, viewer, watcher, window, pending: VecDeque::new() };
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
                Watched::Resync(lost_after) => {
                    self.window.resync(lost_after);
                    self.resync().await;
                }
                Watched::Retry => self.resync().await,
            }
        }
    }

    /// Repairs membership (again, after a failure: a repair that finds nothing new reports
    /// nothing), then rereads the rooms changed in the window.
    async fn resync(&mut self) {
        let Some(repaired) = repair_or_retry(&self.state, &self.viewer, &mut self.watcher).await else {
            return;
        };
        let joined = repaired.joined.into_iter().map(|id| (id, RoomUpdateReason::Joined));
        let left = repaired.left.into_iter().map(|id| (id, RoomUpdateReason::Left));
        for (room_id, reason) in joined.chain(left) {
            self.pending.push_back(RoomUpdate::new(room_id, reason));
        }
        let Some(from) = self.window.begin() else { return };
        match service::changed_since(&self.state.store, &self.watcher.rooms(), from).await {
            Ok(changed) => {
                self.pending
                    .extend(changed.iter().map(|room| RoomUpdate::new(room.id, reason_after_reread(room))));
            }
            Err(err) => {
                self.window.failed(from);
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

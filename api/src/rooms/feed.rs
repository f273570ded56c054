//! The `roomUpdated` feed: room events of every room the viewer is in, plus the viewer's own
//! membership changes. After a resync, rooms joined or left meanwhile are reported too.

use std::collections::VecDeque;

use futures_util::stream::{self, BoxStream, StreamExt};

use super::types::{RoomUpdate, RoomUpdateReason};
use super::watch::{repair_or_retry, watch};
use crate::auth::Viewer;
use crate::bus::{ConversationChangePayload, Event, Scope, Watched, Watcher};
use crate::error::ApiResult;
use crate::state::AppState;

struct RoomFeed {
    state: AppState,
    viewer: Viewer,
    watcher: Watcher,
    pending: VecDeque<RoomUpdate>,
}

pub async fn room_updates(state: AppState, viewer: Viewer) -> ApiResult<BoxStream<'static, RoomUpdate>> {
    let watcher = watch(&state, &viewer, Scope::AllRooms).await?;
    let feed = RoomFeed { state, viewer, watcher, pending: VecDeque::new() };
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
                Watched::Resync | Watched::Retry => {
                    let repaired = repair_or_retry(&self.state, &self.viewer, &mut self.watcher).await;
                    if let Some(repaired) = repaired {
                        let joined = repaired.joined.into_iter().map(|id| (id, RoomUpdateReason::Joined));
                        let left = repaired.left.into_iter().map(|id| (id, RoomUpdateReason::Left));
                        for (room_id, reason) in joined.chain(left) {
                            self.pending.push_back(RoomUpdate::new(room_id, reason));
                        }
                    }
                }
            }
        }
    }
}

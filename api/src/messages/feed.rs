//! The `messageAdded` and `messageUpdated` feeds.
//!
//! `messageAdded` keeps, per room, the last seq it delivered. An event with the next seq is
//! delivered as it is; an older one is a duplicate and dropped; a newer one means events were
//! missed, and the gap is read from the database. After a bus reconnect or a lag every room
//! catches up the same way. Hence: no gap, no duplicate, whatever the bus does.

use std::collections::{HashMap, VecDeque};

use futures_util::stream::{self, BoxStream, StreamExt};
use uuid::Uuid;

use super::record::MessageRecord;
use super::service;
use crate::auth::Viewer;
use crate::bus::{Event, Scope, Watched, Watcher};
use crate::error::{ApiError, ApiResult};
use crate::read_state::service as read_state;
use crate::rooms::access;
use crate::state::AppState;

/// Rows read per database round trip while catching up.
const CATCH_UP_BATCH: u64 = 200;

struct MessageFeed {
    state: AppState,
    scope: Scope,
    watcher: Watcher,
    /// The last seq delivered per followed room.
    delivered: HashMap<Uuid, i64>,
    pending: VecDeque<MessageRecord>,
}

pub async fn message_added(
    state: AppState,
    viewer: Viewer,
    room_id: Option<Uuid>,
    after: Option<i64>,
) -> ApiResult<BoxStream<'static, MessageRecord>> {
    let mut feed = match room_id {
        Some(room_id) => {
            access::readable(&state.store, &viewer, room_id).await?;
            let watcher = Watcher::start(&state.bus, viewer.id, Scope::Room(room_id), vec![room_id]).await;
            // Read after subscribing, so nothing falls between the two.
            let latest = access::readable(&state.store, &viewer, room_id).await?.room.last_seq;
            let start = match after {
                Some(after) if after < 0 => return Err(ApiError::bad_input("after must be ≥ 0")),
                Some(after) => after.min(latest),
                None => latest,
            };
            MessageFeed::new(state, Scope::Room(room_id), watcher, HashMap::from([(room_id, start)]))
        }
        None if after.is_some() => return Err(ApiError::bad_input("`after` needs a `roomId`")),
        None => {
            let rooms = read_state::positions(&state.store, viewer.id, None).await?;
            let watcher = Watcher::start(
                &state.bus,
                viewer.id,
                Scope::AllRooms,
                rooms.iter().map(|p| p.room_id).collect(),
            )
            .await;
            // Read again after subscribing, so no message falls between the two; a room joined
            // in between arrives as a membership event.
            let positions = read_state::positions(&state.store, viewer.id, None).await?;
            let delivered = positions.into_iter().map(|p| (p.room_id, p.latest_seq)).collect();
            MessageFeed::new(state, Scope::AllRooms, watcher, delivered)
        }
    };
    if let (Some(room_id), Some(_)) = (room_id, after) {
        feed.catch_up(room_id).await;
    }
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|m| (m, feed)) }).boxed())
}

impl MessageFeed {
    fn new(state: AppState, scope: Scope, watcher: Watcher, delivered: HashMap<Uuid, i64>) -> Self {
        Self { state, scope, watcher, delivered, pending: VecDeque::new() }
    }

    async fn next(&mut self) -> Option<MessageRecord> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            match self.watcher.next().await? {
                Watched::Room(_, envelope) => {
                    if let Event::MessageAdded { message } = &envelope.event {
                        self.accept(message).await;
                    }
                }
                Watched::User(envelope) => {
                    let Event::MembershipChanged { room_id, change, seq } = envelope.event else { continue };
                    if change.is_member() && self.scope == Scope::AllRooms {
                        self.delivered.entry(room_id).or_insert(seq);
                        self.catch_up(room_id).await;
                    } else if !change.is_member() {
                        self.delivered.remove(&room_id);
                        if self.scope == Scope::Room(room_id) {
                            return None;
                        }
                    }
                }
                Watched::Resync => {
                    let rooms: Vec<Uuid> = self.delivered.keys().copied().collect();
                    for room_id in rooms {
                        self.catch_up(room_id).await;
                    }
                }
            }
        }
    }

    async fn accept(&mut self, message: &MessageRecord) {
        let Some(&last) = self.delivered.get(&message.room_id) else { return };
        if message.seq <= last {
            return;
        }
        if message.seq == last + 1 {
            self.delivered.insert(message.room_id, message.seq);
            self.pending.push_back(message.clone());
        } else {
            self.catch_up(message.room_id).await;
        }
    }

    /// Reads everything after the last delivered seq of a room from the database.
    async fn catch_up(&mut self, room_id: Uuid) {
        loop {
            let Some(&last) = self.delivered.get(&room_id) else { return };
            match service::range(&self.state.store, room_id, last, i64::MAX, CATCH_UP_BATCH, true).await {
                Ok(rows) if rows.is_empty() => return,
                Ok(rows) => {
                    let full = rows.len() as u64 == CATCH_UP_BATCH;
                    for row in rows {
                        self.delivered.insert(room_id, row.seq);
                        self.pending.push_back(row.into());
                    }
                    if !full {
                        return;
                    }
                }
                Err(err) => {
                    // The next event or resync retries from the same seq.
                    tracing::warn!(?err, %room_id, "catch-up failed");
                    return;
                }
            }
        }
    }
}

pub async fn message_updated(
    state: AppState,
    viewer: Viewer,
    room_id: Option<Uuid>,
) -> ApiResult<BoxStream<'static, MessageRecord>> {
    let (scope, rooms) = match room_id {
        Some(room_id) => {
            access::readable(&state.store, &viewer, room_id).await?;
            (Scope::Room(room_id), vec![room_id])
        }
        None => {
            let positions = read_state::positions(&state.store, viewer.id, None).await?;
            (Scope::AllRooms, positions.into_iter().map(|p| p.room_id).collect())
        }
    };
    let watcher = Watcher::start(&state.bus, viewer.id, scope, rooms).await;
    Ok(stream::unfold(watcher, |mut watcher| async move {
        loop {
            if let Watched::Room(_, envelope) = watcher.next().await?
                && let Event::MessageUpdated { message } = &envelope.event
            {
                return Some((message.clone(), watcher));
            }
        }
    })
    .boxed())
}

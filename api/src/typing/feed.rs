//! The `typing(roomId)` feed: the room's typing events as changes, with expiry.
//!
//! Each subscriber keeps the deadline of every user typing in the room: a renewal moves it, a
//! `false`, a message from that user or the deadline passing ends it (as in Slack, sending is
//! the end of typing). Only changes are delivered (a renewal is not news), and the viewer's own
//! typing never is.

use std::collections::HashMap;

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::time::Instant;
use uuid::Uuid;

use super::EXPIRY;
use crate::auth::Viewer;
use crate::bus::{Event, Scope, Watched, Watcher};
use crate::error::ApiResult;
use crate::rooms::watch::{repair, watch};
use crate::state::AppState;

/// Someone started or stopped typing.
#[derive(Debug, Clone, Copy)]
pub struct TypingChange {
    pub room_id: Uuid,
    pub user_id: Uuid,
    pub typing: bool,
}

struct TypingFeed {
    state: AppState,
    viewer: Viewer,
    room_id: Uuid,
    watcher: Watcher,
    deadlines: HashMap<Uuid, Instant>,
}

pub async fn typing_changes(
    state: AppState,
    viewer: Viewer,
    room_id: Uuid,
) -> ApiResult<BoxStream<'static, TypingChange>> {
    let watcher = watch(&state, &viewer, Scope::Room(room_id)).await?;
    let feed = TypingFeed { state, viewer, room_id, watcher, deadlines: HashMap::new() };
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|c| (c, feed)) }).boxed())
}

impl TypingFeed {
    async fn next(&mut self) -> Option<TypingChange> {
        loop {
            let soonest = self.deadlines.iter().min_by_key(|(_, at)| **at).map(|(user, at)| (*user, *at));
            let watched = match soonest {
                // A watcher of one room awaits nothing but its streams, so dropping its `next`
                // when the deadline wins loses no event.
                Some((user_id, at)) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => {
                        self.deadlines.remove(&user_id);
                        return Some(self.change(user_id, false));
                    }
                    watched = self.watcher.next() => watched?,
                },
                None => self.watcher.next().await?,
            };
            let envelope = match watched {
                Watched::Room(_, envelope) => envelope,
                Watched::User(envelope) => match envelope.event {
                    // The viewer left the room: its typing is no longer theirs to see.
                    Event::MembershipChanged { room_id, change, .. }
                        if room_id == self.room_id && !change.is_member() =>
                    {
                        return None;
                    }
                    _ => continue,
                },
                Watched::Resync => {
                    // Typing is not replayed (states lapse on their own), but access is.
                    let repaired = repair(&self.state, &self.viewer, &mut self.watcher).await.ok()?;
                    if repaired.left.contains(&self.room_id) {
                        return None;
                    }
                    continue;
                }
            };
            let (user_id, typing) = match &envelope.event {
                Event::Typing { user_id, typing, .. } => (*user_id, *typing),
                Event::MessageAdded { message, .. } => match message.author_user_id {
                    Some(author) => (author, false),
                    None => continue,
                },
                _ => continue,
            };
            if user_id == self.viewer.id {
                continue;
            }
            let was_typing = if typing {
                self.deadlines.insert(user_id, Instant::now() + EXPIRY).is_some()
            } else {
                self.deadlines.remove(&user_id).is_some()
            };
            if typing != was_typing {
                return Some(self.change(user_id, typing));
            }
        }
    }

    fn change(&self, user_id: Uuid, typing: bool) -> TypingChange {
        TypingChange { room_id: self.room_id, user_id, typing }
    }
}

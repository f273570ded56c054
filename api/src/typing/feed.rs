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
use crate::bus::Event;
use crate::error::ApiResult;
use crate::rooms::watch::RoomEvents;
use crate::state::AppState;

/// Someone started or stopped typing.
#[derive(Debug, Clone, Copy)]
pub struct TypingChange {
    pub room_id: Uuid,
    pub user_id: Uuid,
    pub typing: bool,
}

struct TypingFeed {
    events: RoomEvents,
    room_id: Uuid,
    deadlines: HashMap<Uuid, Instant>,
}

pub async fn typing_changes(
    state: AppState,
    viewer: Viewer,
    room_id: Uuid,
) -> ApiResult<BoxStream<'static, TypingChange>> {
    let events = RoomEvents::open(state, viewer, room_id).await?;
    let feed = TypingFeed { events, room_id, deadlines: HashMap::new() };
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|c| (c, feed)) }).boxed())
}

impl TypingFeed {
    async fn next(&mut self) -> Option<TypingChange> {
        loop {
            let soonest = self.deadlines.iter().min_by_key(|(_, at)| **at).map(|(user, at)| (*user, *at));
            let envelope = match soonest {
                // `RoomEvents::next` is cancel-safe: the deadline may win the race.
                Some((user_id, at)) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => {
                        self.deadlines.remove(&user_id);
                        return Some(self.change(user_id, false));
                    }
                    envelope = self.events.next() => envelope?,
                },
                None => self.events.next().await?,
            };
            let (user_id, typing) = match &envelope.event {
                Event::Typing { user_id, typing, .. } => (*user_id, *typing),
                Event::MessageAdded { message, .. } => match message.author_user_id {
                    Some(author) => (author, false),
                    None => continue,
                },
                _ => continue,
            };
            if user_id == self.events.viewer_id() {
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

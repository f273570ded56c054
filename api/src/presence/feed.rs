//! The `presenceChanged` feed: presence changes of the people the viewer shares a room with
//! (or of those of them the client names), one bus topic per person, so an instance receives
//! only the changes its subscribers asked for.
//!
//! Naming someone the viewer shares no room with is NOT_FOUND. The set of people is read when
//! the subscription starts (a client that joins a room
//! resubscribes to follow its new members). The feed remembers what it last delivered for each
//! person: repeats are dropped, and after a resync it rereads everyone and delivers what
//! differs; a reread that fails (the database, or a cluster that does not answer) is tried
//! again after a backoff, as the other feeds' are.

use std::collections::{HashMap, HashSet, VecDeque};

use futures_util::FutureExt;
use futures_util::future::join_all;
use futures_util::stream::{self, BoxStream, StreamExt};
use sea_orm::ConnectionTrait;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use super::Status;
use super::service::{UserPresence, presence_of, presence_of_exactly};
use crate::auth::Viewer;
use crate::bus::{BusItem, Event, Retry, Topic, TopicGuard, TopicSubscription};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Most people one subscription follows (a room of thousands is better watched by naming
/// the people on screen).
pub const MAX_WATCHED: usize = 5_000;
/// Most ids a client may name.
pub const MAX_NAMED: usize = 1_000;

struct PresenceFeed {
    state: AppState,
    streams: StreamMap<Uuid, BroadcastStream<BusItem>>,
    /// Keeps the topic subscriptions alive.
    _guards: Vec<TopicGuard>,
    last: HashMap<Uuid, UserPresence>,
    pending: VecDeque<UserPresence>,
    /// Pending while a reread after a resync failed: when due, reread again.
    retry: Retry,
}

pub async fn presence_changes(
    state: AppState,
    viewer: Viewer,
    named: Option<Vec<Uuid>>,
) -> ApiResult<BoxStream<'static, UserPresence>> {
    if named.as_ref().is_some_and(|ids| ids.len() > MAX_NAMED) {
        return Err(ApiError::bad_input("name at most 1000 users"));
    }
    let people = co_members(&state, &viewer, named.as_deref()).await?;
    if let Some(named) = named {
        // Someone the viewer shares no room with is as unknown as an id that exists nowhere.
        let known: HashSet<&Uuid> = people.iter().collect();
        if named.iter().any(|id| !known.contains(id)) {
            return Err(ApiError::not_found("user"));
        }
    }
    let subscriptions: Vec<TopicSubscription> =
        join_all(people.iter().map(|id| state.bus.subscribe(Topic::Presence(*id)))).await;
    let mut streams = StreamMap::new();
    let mut guards = Vec::with_capacity(subscriptions.len());
    for (id, subscription) in people.iter().zip(subscriptions) {
        streams.insert(*id, BroadcastStream::new(subscription.receiver));
        guards.push(subscription.guard);
    }
    // Read once subscribed, so no change falls between the two.
    let last = presence_of(&state, &people).await?;
    let feed = PresenceFeed {
        state,
        streams,
        _guards: guards,
        last,
        pending: VecDeque::new(),
        retry: Retry::default(),
    };
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|p| (p, feed)) }).boxed())
}

impl PresenceFeed {
    async fn next(&mut self) -> Option<UserPresence> {
        if self.streams.is_empty() {
            // Nobody to follow: stay open and silent, as a client expects of a subscription.
            return std::future::pending().await;
        }
        loop {
            if let Some(presence) = self.pending.pop_front() {
                return Some(presence);
            }
            let item = tokio::select! {
                item = self.streams.next() => item?,
                () = self.retry.due() => {
                    self.reread().await;
                    continue;
                }
            };
            match item {
                (_, Ok(BusItem::Event(envelope))) => self.offer_event(&envelope.event),
                // Changes may have been lost: reread everyone once for the whole burst (a
                // reconnect resyncs every topic), and only from an answer of the cluster.
                (_, Ok(BusItem::Resync) | Err(_)) => {
                    while let Some(Some((_, item))) = self.streams.next().now_or_never() {
                        if let Ok(BusItem::Event(envelope)) = item {
                            self.offer_event(&envelope.event);
                        }
                    }
                    self.retry.cancel();
                    self.reread().await;
                }
            }
        }
    }

    /// Rereads everyone's presence and offers what differs, or schedules another try.
    async fn reread(&mut self) {
        let people: Vec<Uuid> = self.last.keys().copied().collect();
        match presence_of_exactly(&self.state, &people).await {
            Ok(Some(now)) => {
                self.retry.settle();
                now.into_values().for_each(|presence| self.offer(presence));
            }
            failed => {
                if let Err(err) = failed {
                    tracing::warn!(?err, "presence reread failed; retried");
                }
                self.retry.later();
            }
        }
    }

    fn offer_event(&mut self, event: &Event) {
        if let Event::PresenceChanged { user_id, status, last_seen_at } = event
            && let Some(status) = Status::parse(status)
        {
            self.offer(UserPresence { user_id: *user_id, status, last_seen_at: *last_seen_at });
        }
    }

    /// Queues a presence that differs from the one last delivered for that person.
    fn offer(&mut self, presence: UserPresence) {
        if self.last.get(&presence.user_id).is_some_and(|last| last.status == presence.status) {
            return;
        }
        self.last.insert(presence.user_id, presence);
        self.pending.push_back(presence);
    }
}

/// The people the viewer shares a live room with (at most [`MAX_WATCHED`]), or those of
/// `named` who are.
async fn co_members(state: &AppState, viewer: &Viewer, named: Option<&[Uuid]>) -> ApiResult<Vec<Uuid>> {
    let store = &state.store;
    let mut values = vec![viewer.id.into()];
    let only = match named {
        Some([]) => return Ok(Vec::new()),
        Some(ids) => {
            let (condition, ids) = store.in_ids("other.user_id", ids, 2);
            values.extend(ids);
            format!("AND {condition}")
        }
        None => String::new(),
    };
    let rows = store
        .db
        .query_all_raw(store.stmt(
            &format!(
                "SELECT DISTINCT other.user_id FROM room_members mine \
                 JOIN room_members other ON other.room_id = mine.room_id \
                 JOIN rooms r ON r.id = mine.room_id \
                 WHERE mine.user_id = $1 AND other.user_id <> $1 AND r.deleted_at IS NULL {only} \
                 LIMIT {MAX_WATCHED}"
            ),
            values,
        ))
        .await?;
    Ok(rows.iter().filter_map(|row| row.try_get::<Uuid>("", "user_id").ok()).collect())
}

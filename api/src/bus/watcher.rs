//! `Watcher`: the bus topics one subscription follows — the viewer's user topic plus the room
//! topics in scope, and a room's signals topic for the feeds that want it — merged into one
//! stream. It follows rooms the viewer joins and drops rooms
//! the viewer leaves or is removed from, as soon as the membership event arrives, once the
//! database confirms it: two instances' membership events can arrive in the other order than
//! their commits (an addition on one, then a removal on the other), and the older one, arriving
//! last, must not win. A member removed must not go on receiving the room's messages.
//!
//! A feed whose database read failed asks for `retry_later`: the watcher then yields `Retry`
//! after a backoff, and the feed reads again what failed. So a failed read delays a delivery;
//! it never drops one.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use chrono::Utc;
use futures_util::FutureExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt, StreamMap};
use uuid::Uuid;

use super::hub::{BusItem, LostAfter, TopicStream};
use super::retry::Retry;
use super::{Envelope, Event, EventBus, Topic};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every room the viewer is a member of, now or later.
    AllRooms,
    /// One room.
    Room(Uuid),
}

/// Whether a user is a member of a room now, as the database says; `None` when it cannot
/// tell (the database did not answer: the implementation logs why). The rooms domain answers;
/// the bus only asks.
#[async_trait]
pub trait MembershipCheck: Send + Sync {
    async fn is_member(&self, user_id: Uuid, room_id: Uuid) -> Option<bool>;
}

/// What a watcher yields.
#[derive(Debug)]
pub enum Watched {
    /// An event of a room's topic or of its signals topic.
    Room(Uuid, Arc<Envelope>),
    User(Arc<Envelope>),
    /// Events published after the moment given may have been missed: reread state from the
    /// database.
    Resync(LostAfter),
    /// Asked for with [`Watcher::retry_later`]: read again what failed.
    Retry,
}

/// What became of a membership event (`Watcher::apply_membership`).
enum Applied {
    /// The database agrees: applied, and yielded.
    Current,
    /// Overtaken by a later change: dropped.
    Stale,
    /// The database did not answer: the watcher resyncs.
    Unknown,
}

/// What woke a waiting watcher.
enum Woken {
    Item(Key, Result<BusItem, BroadcastStreamRecvError>),
    Retry,
}

/// Which followed topic an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    User,
    Room(Uuid),
    Signals(Uuid),
}

pub struct Watcher {
    bus: EventBus,
    viewer_id: Uuid,
    scope: Scope,
    /// Asked before a membership event is applied.
    members: Box<dyn MembershipCheck>,
    /// The viewer's user topic, read before the rooms' (see `next`).
    user: TopicStream,
    /// The rooms' topics and signals topics.
    streams: StreamMap<Key, TopicStream>,
    /// Events read while coalescing a burst of resyncs, yielded next.
    backlog: VecDeque<(Key, Arc<Envelope>)>,
    /// A retry asked for by the feed after a failed read.
    retry: Retry,
    /// The last moment the watcher found none of its topics with an event waiting: a lag
    /// lost only events published after it.
    caught_up_at: LostAfter,
    /// Rooms followed until a membership event the database could not confirm dropped them:
    /// the resync's repair decides whether they were left (see `take_unconfirmed`).
    unconfirmed: Vec<Uuid>,
}

impl Watcher {
    /// Subscribes the viewer's user topic. Callers then read the viewer's rooms from the
    /// database and `follow` them: a membership change after this point arrives as an event,
    /// so none falls between the read and the subscription.
    pub async fn start(
        bus: &EventBus,
        viewer_id: Uuid,
        scope: Scope,
        members: Box<dyn MembershipCheck>,
    ) -> Self {
        Self {
            bus: bus.clone(),
            viewer_id,
            scope,
            members,
            user: bus.subscribe(Topic::User(viewer_id)).await.into_stream(),
            streams: StreamMap::new(),
            backlog: VecDeque::new(),
            retry: Retry::default(),
            caught_up_at: None,
            unconfirmed: Vec::new(),
        }
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Follows a room; once this returns, its events published from now on arrive.
    pub async fn follow(&mut self, room_id: Uuid) {
        if !self.streams.contains_key(&Key::Room(room_id)) {
            self.add(Key::Room(room_id), Topic::Room(room_id)).await;
        }
    }

    /// Also follows a room's typing and read receipts (`Topic::Signals`).
    pub async fn follow_signals(&mut self, room_id: Uuid) {
        if !self.streams.contains_key(&Key::Signals(room_id)) {
            self.add(Key::Signals(room_id), Topic::Signals(room_id)).await;
        }
    }

    /// Stops following a room, and forgets its events still waiting in the backlog.
    pub fn unfollow(&mut self, room_id: Uuid) {
        for key in [Key::Room(room_id), Key::Signals(room_id)] {
            self.streams.remove(&key);
        }
        self.backlog.retain(|(key, _)| !matches!(key, Key::Room(r) | Key::Signals(r) if *r == room_id));
    }

    /// The rooms dropped since the last call on membership events the database could not
    /// confirm. No longer followed, so a repair that compared only the rooms followed with
    /// the readable ones would never tell the feed they were left.
    pub fn take_unconfirmed(&mut self) -> Vec<Uuid> {
        std::mem::take(&mut self.unconfirmed)
    }

    pub fn rooms(&self) -> Vec<Uuid> {
        let room = |key: &Key| match key {
            Key::Room(room_id) => Some(*room_id),
            Key::User | Key::Signals(_) => None,
        };
        self.streams.keys().filter_map(room).collect()
    }

    async fn add(&mut self, key: Key, topic: Topic) {
        self.streams.insert(key, self.bus.subscribe(topic).await.into_stream());
    }

    /// Yields `Retry` after a backoff: the caller's database read failed, and what it was to
    /// deliver must be read again. Events keep arriving meanwhile. The backoff grows while
    /// each retry fails, and starts short again once one went through.
    pub fn retry_later(&mut self) {
        self.retry.later();
    }

    pub async fn next(&mut self) -> Option<Watched> {
        loop {
            self.retry.settle();
            let (key, envelope) = match self.backlog.pop_front() {
                Some(event) => event,
                None => {
                    let woken = poll_fn(|cx| self.poll_wait(cx)).await;
                    match woken? {
                        Woken::Retry => return Some(Watched::Retry),
                        Woken::Item(key, Ok(BusItem::Event(envelope))) => (key, envelope),
                        // The bus reconnected, or another instance lost publishes.
                        Woken::Item(_, Ok(BusItem::Resync(lost_after))) => {
                            return Some(self.resync(lost_after));
                        }
                        Woken::Item(_, Err(_)) => {
                            // A slow reader: it catches up from the database, nobody waits.
                            metrics::counter!("parley_subscription_lagged_total").increment(1);
                            return Some(self.resync(self.caught_up_at));
                        }
                    }
                }
            };
            let room_id = match key {
                Key::Room(room_id) | Key::Signals(room_id) => room_id,
                Key::User => {
                    if let Event::MembershipChanged { room_id, change, .. } = envelope.event
                        && self.concerns(room_id)
                    {
                        // Kept at the front of the backlog while checked: a caller that gives up
                        // waiting (a feed racing a timer) finds it there next time, checked
                        // again. Boxed: a large future, rarely run, that would otherwise stay
                        // allocated in every idle subscription's stream.
                        self.backlog.push_front((key, envelope.clone()));
                        let applied = Box::pin(self.apply_membership(room_id, change.is_member())).await;
                        self.backlog.pop_front();
                        match applied {
                            Applied::Current => {}
                            Applied::Stale => continue,
                            // The room's unread events went with it: published after the
                            // watcher last caught up.
                            Applied::Unknown => return Some(self.resync(self.caught_up_at)),
                        }
                    }
                    return Some(Watched::User(envelope));
                }
            };
            return Some(Watched::Room(room_id, envelope));
        }
    }

    /// The next item of a followed topic, or a due retry; `None` once the user topic is closed
    /// (the bus shut down). By hand rather than `select!`: no state of its own to keep in
    /// every idle subscription's future, and it sees when nothing is waiting. The user topic
    /// first: when a removal from a room and that room's later messages are both waiting, the
    /// removal must win, and StreamMap starts each poll at a random stream. Cancel-safe: the
    /// retry is kept, and no stream loses an item.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<Option<Woken>> {
        if let Poll::Ready(item) = Pin::new(&mut self.user).poll_next(cx) {
            return Poll::Ready(item.map(|item| Woken::Item(Key::User, item)));
        }
        if self.retry.poll_due(cx).is_ready() {
            return Poll::Ready(Some(Woken::Retry));
        }
        // An empty StreamMap answers `None` at once: no room followed yet.
        if !self.streams.is_empty()
            && let Poll::Ready(Some((key, item))) = Pin::new(&mut self.streams).poll_next(cx)
        {
            return Poll::Ready(Some(Woken::Item(key, item)));
        }
        // Not when the task's scheduling budget ran out: a topic then answers `Pending` with
        // events waiting. Read just after the polls: an event published in between is within
        // `REREAD_OVERLAP` of it.
        if tokio::task::coop::has_budget_remaining() {
            self.caught_up_at = Some(Utc::now());
        }
        Poll::Pending
    }

    /// Whether a membership change of `room_id` changes what this watcher follows.
    fn concerns(&self, room_id: Uuid) -> bool {
        match self.scope {
            Scope::AllRooms => true,
            Scope::Room(scoped) => scoped == room_id,
        }
    }

    /// Follows or drops a room on a membership event the database confirms. One it contradicts
    /// is older than a change whose own event came first or is still coming, and is dropped.
    async fn apply_membership(&mut self, room_id: Uuid, joined: bool) -> Applied {
        let Some(member) = self.members.is_member(self.viewer_id, room_id).await else {
            // On the safe side until the resync's repair reads membership again.
            if self.streams.contains_key(&Key::Room(room_id)) && !self.unconfirmed.contains(&room_id) {
                self.unconfirmed.push(room_id);
            }
            self.unfollow(room_id);
            return Applied::Unknown;
        };
        if member != joined {
            metrics::counter!("parley_membership_events_stale_total").increment(1);
            return Applied::Stale;
        }
        // Confirmed now: the feed hears of this change itself, so the repair must not again.
        self.unconfirmed.retain(|dropped| *dropped != room_id);
        if !member {
            self.unfollow(room_id);
        } else if self.scope == Scope::AllRooms {
            self.follow(room_id).await;
        }
        Applied::Current
    }

    /// Events published after `lost_after` may have been missed: one database reread covers
    /// them, whatever a pending retry was for.
    fn resync(&mut self, lost_after: LostAfter) -> Watched {
        let lost_after = self.coalesce_resyncs(lost_after);
        self.retry.cancel();
        Watched::Resync(lost_after)
    }

    /// A reconnect sends a resync down every followed topic at once; one database reread
    /// covers them all, from the earliest moment any of them gives. Events already waiting are
    /// kept, to be yielded after the resync (feeds ignore what they already have, by seq).
    fn coalesce_resyncs(&mut self, mut lost_after: LostAfter) -> LostAfter {
        let mut waiting = Vec::new();
        while let Some(Some(item)) = self.user.next().now_or_never() {
            waiting.push((Key::User, item));
        }
        while let Some(Some(item)) = self.streams.next().now_or_never() {
            waiting.push(item);
        }
        for (key, item) in waiting {
            match item {
                Ok(BusItem::Event(envelope)) => self.backlog.push_back((key, envelope)),
                Ok(BusItem::Resync(also)) => lost_after = lost_after.min(also),
                Err(_) => lost_after = lost_after.min(self.caught_up_at),
            }
        }
        lost_after
    }
}

#[cfg(test)]
mod tests;

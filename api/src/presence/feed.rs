//! The `presenceChanged` feed: presence changes of the people the viewer shares a room with
//! (or of those of them the client names), one bus topic per person, so an instance receives
//! only the changes its subscribers asked for.
//!
//! Naming someone the viewer shares no room with is NOT_FOUND. Who is followed changes with
//! membership, as a member list does in Slack: the feed also follows the viewer's user topic
//! (their own joins and leaves, after which it rereads who shares a room with them) and each
//! of their rooms' members topic (others joining and leaving, which it applies to the rooms
//! it knows each person shares, without a query: a join in a room of thousands reaches
//! thousands of feeds). Someone who starts sharing a room is delivered at once with their
//! presence at that moment, so a client needs no second read; someone who shares none any
//! more is no longer followed.
//!
//! The feed remembers what it last delivered for each person: repeats are dropped, and after
//! a resync it rereads rooms, people and presence and delivers what differs. A burst (a
//! reconnect resyncs every topic; many people join at once) is one reread. A reread that
//! fails (the database, or a cluster that does not answer) is tried again after a backoff, as
//! the other feeds' are.

use std::collections::{HashMap, HashSet, VecDeque};

use futures_util::FutureExt;
use futures_util::future::join_all;
use futures_util::stream::{self, BoxStream, StreamExt};
use sea_orm::ConnectionTrait;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use uuid::Uuid;

use super::Status;
use super::service::{UserPresence, presence_of, presence_of_exactly};
use crate::auth::Viewer;
use crate::bus::{BusItem, Event, Retry, Topic, TopicStream};
use crate::error::{ApiError, ApiResult};
use crate::rooms::access::member_room_ids;
use crate::state::AppState;

/// Most people one subscription follows (a room of thousands is better watched by naming
/// the people on screen).
pub const MAX_WATCHED: usize = 5_000;
/// Most ids a client may name.
pub const MAX_NAMED: usize = 1_000;

/// A topic the feed follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// The viewer's user topic: their own joins and leaves.
    Viewer,
    /// One of the viewer's rooms: others joining and leaving.
    Members(Uuid),
    /// Someone who shares a room with the viewer.
    Person(Uuid),
}

impl Key {
    fn topic(self, viewer_id: Uuid) -> Topic {
        match self {
            Self::Viewer => Topic::User(viewer_id),
            Self::Members(room_id) => Topic::Members(room_id),
            Self::Person(user_id) => Topic::Presence(user_id),
        }
    }
}

/// What must be read again before the feed is in line with the database.
#[derive(Debug, Default, Clone, Copy)]
struct Stale {
    /// Which rooms the viewer is in (their membership events may have been lost).
    rooms: bool,
    /// Who shares a room with the viewer.
    people: bool,
    /// Everyone's presence, not only that of people newly followed.
    presence: bool,
    /// The presence of people newly followed.
    newcomers: bool,
}

impl Stale {
    const EVERYTHING: Self = Self { rooms: true, people: true, presence: true, newcomers: true };

    fn any(self) -> bool {
        self.rooms || self.people || self.presence || self.newcomers
    }
}

struct PresenceFeed {
    state: AppState,
    viewer: Viewer,
    /// The people the client named, if it did: only those of them who share a room are
    /// followed.
    named: Option<Vec<Uuid>>,
    streams: StreamMap<Key, TopicStream>,
    /// The people followed, and which of the viewer's rooms each shares.
    shared: HashMap<Uuid, HashSet<Uuid>>,
    /// What was last delivered (or read at the start) for each person followed; someone
    /// followed but not in here yet is delivered once their presence is read.
    last: HashMap<Uuid, UserPresence>,
    pending: VecDeque<UserPresence>,
    stale: Stale,
    /// Pending while a reread failed: when due, read again what is stale.
    retry: Retry,
}

pub async fn presence_changes(
    state: AppState,
    viewer: Viewer,
    mut named: Option<Vec<Uuid>>,
) -> ApiResult<BoxStream<'static, UserPresence>> {
    if named.as_ref().is_some_and(|ids| ids.len() > MAX_NAMED) {
        return Err(ApiError::bad_input("name at most 1000 users"));
    }
    // A client names the people on its screen, the viewer among them: their own presence is
    // not this feed's (as without names), but naming them is no error.
    if let Some(ids) = named.as_mut() {
        ids.retain(|id| *id != viewer.id);
    }
    let mut feed = PresenceFeed {
        state,
        viewer,
        named,
        streams: StreamMap::new(),
        shared: HashMap::new(),
        last: HashMap::new(),
        pending: VecDeque::new(),
        stale: Stale::default(),
        retry: Retry::default(),
    };
    // Each topic is subscribed before what it announces is read, so no change falls between
    // the two: the viewer's topic, then their rooms', then the people in them.
    feed.follow([Key::Viewer]).await;
    let rooms = member_room_ids(&feed.state.store, feed.viewer.id).await?;
    feed.follow(rooms.into_iter().map(Key::Members)).await;
    feed.shared = feed.co_members().await?;
    if let Some(named) = &feed.named {
        // Someone the viewer shares no room with is as unknown as an id that exists nowhere.
        if named.iter().any(|id| !feed.shared.contains_key(id)) {
            return Err(ApiError::not_found("user"));
        }
    }
    let people: Vec<Uuid> = feed.shared.keys().copied().collect();
    feed.follow(people.iter().copied().map(Key::Person)).await;
    // What the client can read at the start is not delivered: only changes are.
    feed.last = presence_of(&feed.state, &people).await?;
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|p| (p, feed)) }).boxed())
}

impl PresenceFeed {
    async fn next(&mut self) -> Option<UserPresence> {
        loop {
            if let Some(presence) = self.pending.pop_front() {
                return Some(presence);
            }
            let (key, item) = tokio::select! {
                item = self.streams.next() => item?,
                () = self.retry.due() => {
                    self.catch_up(Vec::new()).await;
                    continue;
                }
            };
            let mut heard = Vec::new();
            self.take(key, item, &mut heard).await;
            while let Some(Some((key, item))) = self.streams.next().now_or_never() {
                self.take(key, item, &mut heard).await;
            }
            if self.stale.any() && !self.retry.is_pending() {
                // One reread for the whole burst.
                self.catch_up(heard).await;
            } else {
                // While a failed reread waits for its retry, what is heard of the people
                // followed still goes out.
                self.offer_followed(heard);
            }
        }
    }

    /// Notes what an item makes stale; presence heard goes to `heard`.
    async fn take(
        &mut self,
        key: Key,
        item: Result<BusItem, BroadcastStreamRecvError>,
        heard: &mut Vec<UserPresence>,
    ) {
        let envelope = match item {
            Ok(BusItem::Event(envelope)) => envelope,
            // Changes may have been lost: of presence, and of who shares a room.
            Ok(BusItem::Resync(_)) | Err(_) => {
                self.stale = Stale::EVERYTHING;
                return;
            }
        };
        match (key, &envelope.event) {
            (Key::Person(_), Event::PresenceChanged { user_id, status, last_seen_at }) => {
                if let Some(status) = Status::parse(status) {
                    heard.push(UserPresence { user_id: *user_id, status, last_seen_at: *last_seen_at });
                }
            }
            (Key::Viewer, Event::MembershipChanged { room_id, change, .. }) => {
                if change.is_member() {
                    self.follow([Key::Members(*room_id)]).await;
                } else {
                    self.unfollow(Key::Members(*room_id));
                }
                // Two instances' events can arrive in the other order than their commits: an
                // older join after the removal would follow the room for good. The reread
                // of the rooms, from the database, has the last word.
                self.stale.rooms = true;
                self.stale.people = true;
            }
            (Key::Members(room_id), Event::RoomMembers { joined, left, .. }) => {
                left.iter().for_each(|user_id| self.left(*user_id, room_id));
                let newcomers: Vec<Uuid> =
                    joined.iter().copied().filter(|user_id| self.joined(*user_id, room_id)).collect();
                self.stale.newcomers |= !newcomers.is_empty();
                self.follow(newcomers.into_iter().map(Key::Person)).await;
            }
            _ => {}
        }
    }

    /// Reads again what is stale and offers what differs, or schedules another try.
    /// `heard` is offered once who is followed has been reread (someone who left a room with
    /// the viewer just before going offline is not announced), and before presence is reread
    /// (which wins, being newer).
    async fn catch_up(&mut self, heard: Vec<UserPresence>) {
        self.retry.cancel();
        let membership = self.reread_membership().await;
        self.offer_followed(heard);
        match membership.and(self.reread_presence().await) {
            Ok(()) => self.retry.settle(),
            Err(err) => {
                tracing::warn!(?err, "presence reread failed; retried");
                self.retry.later();
            }
        }
    }

    /// Brings the rooms and people followed in line with the database, when stale.
    async fn reread_membership(&mut self) -> ApiResult<()> {
        if self.stale.rooms {
            let rooms: HashSet<Uuid> =
                member_room_ids(&self.state.store, self.viewer.id).await?.into_iter().collect();
            let followed: HashSet<Uuid> = self
                .streams
                .keys()
                .filter_map(|key| if let Key::Members(room_id) = key { Some(*room_id) } else { None })
                .collect();
            followed.difference(&rooms).for_each(|room_id| self.unfollow(Key::Members(*room_id)));
            self.follow(rooms.difference(&followed).map(|room_id| Key::Members(*room_id))).await;
            self.stale.rooms = false;
        }
        if self.stale.people {
            let people = self.co_members().await?;
            let gone: Vec<Uuid> = self.shared.keys().filter(|id| !people.contains_key(id)).copied().collect();
            for user_id in gone {
                self.unfollow(Key::Person(user_id));
                self.last.remove(&user_id);
            }
            let newcomers: Vec<Uuid> =
                people.keys().filter(|id| !self.shared.contains_key(id)).copied().collect();
            self.follow(newcomers.into_iter().map(Key::Person)).await;
            self.shared = people;
            self.stale.people = false;
        }
        Ok(())
    }

    /// `user_id` joined one of the viewer's rooms; true when they are someone to follow now.
    /// At [`MAX_WATCHED`] nobody new is, until the next full reread.
    fn joined(&mut self, user_id: Uuid, room_id: Uuid) -> bool {
        let wanted = self.named.as_ref().is_none_or(|named| named.contains(&user_id));
        if user_id == self.viewer.id || !wanted {
            return false;
        }
        if let Some(rooms) = self.shared.get_mut(&user_id) {
            rooms.insert(room_id);
            return false;
        }
        if self.shared.len() >= MAX_WATCHED {
            return false;
        }
        self.shared.insert(user_id, HashSet::from([room_id]));
        true
    }

    /// `user_id` left one of the viewer's rooms: unfollowed once they share none.
    fn left(&mut self, user_id: Uuid, room_id: Uuid) {
        let Some(rooms) = self.shared.get_mut(&user_id) else { return };
        rooms.remove(&room_id);
        if rooms.is_empty() {
            self.shared.remove(&user_id);
            self.unfollow(Key::Person(user_id));
            self.last.remove(&user_id);
        }
    }

    /// Reads the presence of the people newly followed, or of everyone after a resync, and
    /// offers what differs. Only an answer of the cluster counts: this instance's partial
    /// view would show everyone else offline.
    async fn reread_presence(&mut self) -> ApiResult<()> {
        let everyone = self.shared.keys().copied();
        let unread: Vec<Uuid> = if self.stale.presence {
            everyone.collect()
        } else {
            everyone.filter(|user_id| !self.last.contains_key(user_id)).collect()
        };
        if !unread.is_empty() {
            let Some(now) = presence_of_exactly(&self.state, &unread).await? else {
                return Err(ApiError::internal(anyhow::anyhow!("the presence cluster did not answer")));
            };
            now.into_values().for_each(|presence| self.offer(presence));
        }
        (self.stale.presence, self.stale.newcomers) = (false, false);
        Ok(())
    }

    /// Subscribes the topics not followed yet, all at once (each waits for Redis to confirm).
    async fn follow(&mut self, keys: impl IntoIterator<Item = Key>) {
        let keys: Vec<Key> = keys.into_iter().filter(|key| !self.streams.contains_key(key)).collect();
        let viewer_id = self.viewer.id;
        let bus = &self.state.bus;
        let subscriptions = join_all(keys.iter().map(|key| bus.subscribe(key.topic(viewer_id)))).await;
        for (key, subscription) in keys.into_iter().zip(subscriptions) {
            self.streams.insert(key, subscription.into_stream());
        }
    }

    fn unfollow(&mut self, key: Key) {
        self.streams.remove(&key);
    }

    /// Offers what was heard of people still followed (not of someone who stopped sharing a
    /// room with the viewer in the same burst).
    fn offer_followed(&mut self, heard: Vec<UserPresence>) {
        for presence in heard {
            if self.shared.contains_key(&presence.user_id) {
                self.offer(presence);
            }
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

    /// The people the viewer shares a live room with (at most [`MAX_WATCHED`], the same ones
    /// each time), or those of the named who do, and which rooms each shares.
    async fn co_members(&self) -> ApiResult<HashMap<Uuid, HashSet<Uuid>>> {
        let store = &self.state.store;
        let mut values = vec![self.viewer.id.into()];
        let only = match self.named.as_deref() {
            Some([]) => return Ok(HashMap::new()),
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
                    "WITH shared AS (SELECT other.user_id, other.room_id FROM room_members mine \
                       JOIN room_members other ON other.room_id = mine.room_id \
                       JOIN rooms r ON r.id = mine.room_id \
                       WHERE mine.user_id = $1 AND other.user_id <> $1 AND r.deleted_at IS NULL {only}) \
                     SELECT user_id, room_id FROM shared WHERE user_id IN \
                       (SELECT DISTINCT user_id FROM shared ORDER BY user_id LIMIT {MAX_WATCHED})"
                ),
                values,
            ))
            .await?;
        let mut shared: HashMap<Uuid, HashSet<Uuid>> = HashMap::new();
        for row in &rows {
            if let (Ok(user_id), Ok(room_id)) =
                (row.try_get::<Uuid>("", "user_id"), row.try_get::<Uuid>("", "room_id"))
            {
                shared.entry(user_id).or_default().insert(room_id);
            }
        }
        Ok(shared)
    }
}

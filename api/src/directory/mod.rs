//! The directory: this instance's bounded caches of users and rooms, so that resolving a
//! message's author or room on every subscription frame, or the caller of every request,
//! costs no database round trip; and of support inboxes, whose secret every inbound webhook
//! is checked with.
//!
//! Invalidation: a change to a user (renamed, deactivated, role changed), to a room's
//! metadata (renamed, topic, archived) or to an inbox (settings, a rotated secret) is
//! forgotten locally by the service that made it and published on the directory topic, which
//! every instance follows for its whole life. A bus resync (events may have been lost) drops
//! the three caches whole, and entries expire after `TIME_TO_LIVE` whatever happens, which
//! bounds what a lost event could leave behind. A webhook signature the cached secret refuses
//! is checked again with the inbox read afresh, so a rotated secret works at once everywhere.
//!
//! Open WebSockets outlive a token check, so the directory also tells each the changes to its
//! own viewer (`watch_user`, in `watchers.rs`): a connection whose viewer was deactivated
//! closes itself, and a change to one user wakes no other connection. After a resync, when
//! events may have been lost, the users deactivated meanwhile are announced again from one
//! query.
//!
//! A third cache holds the kind of each room this instance sent into (`room_kind`): a room's
//! kind never changes, so it is neither invalidated nor dropped on a resync, only bounded.
//!
//! Architecture invariant: the caches hold rows as read from the database, never values
//! taken from bus payloads (an event can arrive after the change that supersedes it), never a
//! row whose read a change overtook (`Rows::keep`), and a room's live fields (`last_seq`,
//! `last_message_at`) are never served from here.

mod payload;
mod watchers;

pub use payload::{room_of, user_of};
pub use watchers::UserWatch;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::bus::{BusItem, Event, EventBus, Topic};
use crate::db::Store;
use crate::error::ApiResult;
use entity::enums::RoomKind;
use entity::{rooms, support_inboxes, users};

const CAPACITY: u64 = 100_000;
const TIME_TO_LIVE: Duration = Duration::from_secs(30);

/// Deactivations are announced again after a resync if they happened up to this long before
/// the previous one: covers clock skew between instances and the moment Redis went away.
const RESYNC_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
/// The pause before a failed reread of deactivations is tried again.
const RESYNC_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Clone)]
pub struct Directory {
    users: Rows<users::Model>,
    rooms: Rows<rooms::Model>,
    inboxes: Rows<support_inboxes::Model>,
    /// Kinds of the rooms this instance sent into. A room's kind never changes, so these need
    /// no invalidation and no time to live; only the bound.
    kinds: Cache<Uuid, RoomKind>,
    watchers: watchers::Watchers,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            users: Rows::default(),
            rooms: Rows::default(),
            inboxes: Rows::default(),
            kinds: Cache::new(CAPACITY),
            watchers: watchers::Watchers::default(),
        }
    }
}

/// Rows cached by id, and how many times any was forgotten: a read that a change overtook
/// (the change forgotten while the read was on its way) must not cache the row it read
/// before the change, e.g. a user's row from before their deactivation. Clones share both.
#[derive(Clone)]
struct Rows<V: Clone + Send + Sync + 'static> {
    cache: Cache<Uuid, V>,
    forgotten: Arc<AtomicU64>,
}

impl<V: Clone + Send + Sync + 'static> Default for Rows<V> {
    fn default() -> Self {
        let cache = Cache::builder().max_capacity(CAPACITY).time_to_live(TIME_TO_LIVE).build();
        Self { cache, forgotten: Arc::default() }
    }
}

impl<V: Clone + Send + Sync + 'static> Rows<V> {
    fn get(&self, id: &Uuid) -> Option<V> {
        self.cache.get(id)
    }

    /// To be read before a database read whose rows are then [`keep`](Self::keep)s.
    fn generation(&self) -> u64 {
        self.forgotten.load(Ordering::Acquire)
    }

    /// Caches a row read since `generation`, unless a row was forgotten meanwhile (checked
    /// after the insert, so that no change slips in between).
    fn keep(&self, id: Uuid, value: V, generation: u64) {
        self.cache.insert(id, value);
        if self.generation() != generation {
            self.cache.invalidate(&id);
        }
    }

    fn forget(&self, id: &Uuid) {
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(id);
    }

    fn forget_all(&self) {
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }
}

/// The cached values of `ids`, plus those `load` reads (in one call) for the rest, which are
/// then cached.
async fn cached_or_loaded<V, F, Fut>(
    rows: &Rows<V>,
    ids: &[Uuid],
    id_of: fn(&V) -> Uuid,
    load: F,
) -> ApiResult<HashMap<Uuid, V>>
where
    V: Clone + Send + Sync + 'static,
    F: FnOnce(Vec<Uuid>) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Vec<V>>>,
{
    let mut found: HashMap<Uuid, V> = ids.iter().filter_map(|id| rows.get(id).map(|v| (*id, v))).collect();
    let missing: Vec<Uuid> = ids.iter().copied().filter(|id| !found.contains_key(id)).collect();
    if !missing.is_empty() {
        let generation = rows.generation();
        for value in load(missing).await? {
            rows.keep(id_of(&value), value.clone(), generation);
            found.insert(id_of(&value), value);
        }
    }
    Ok(found)
}

impl Directory {
    /// The kind of a room, if this instance has read the room; no query.
    pub fn room_kind(&self, id: Uuid) -> Option<RoomKind> {
        self.kinds.get(&id).or_else(|| self.rooms.get(&id).map(|room| room.kind))
    }

    /// Keeps the kind of a room just read from the database.
    pub fn remember_kind(&self, room: &rooms::Model) {
        self.kinds.insert(room.id, room.kind);
    }

    /// A user by id, deactivated or not, in any organisation: callers check both.
    pub async fn user(&self, store: &Store, id: Uuid) -> ApiResult<Option<users::Model>> {
        Ok(self.users(store, &[id]).await?.remove(&id))
    }

    /// Users by id, one query for those not cached.
    pub async fn users(&self, store: &Store, ids: &[Uuid]) -> ApiResult<HashMap<Uuid, users::Model>> {
        cached_or_loaded(
            &self.users,
            ids,
            |u| u.id,
            |missing| async move {
                Ok(users::Entity::find().filter(users::Column::Id.is_in(missing)).all(&store.db).await?)
            },
        )
        .await
    }

    /// Users by id read from the database, whatever is cached, and cached again. For rereads
    /// after a resync: the cache may still hold rows older than the events that were lost,
    /// until this instance's own resync drops it.
    pub async fn users_fresh(&self, store: &Store, ids: &[Uuid]) -> ApiResult<HashMap<Uuid, users::Model>> {
        let generation = self.users.generation();
        let rows = users::Entity::find().filter(users::Column::Id.is_in(ids.to_vec())).all(&store.db).await?;
        let fresh = rows.into_iter().map(|user| (user.id, user)).collect::<HashMap<_, _>>();
        for user in fresh.values() {
            self.users.keep(user.id, user.clone(), generation);
        }
        Ok(fresh)
    }

    /// Rooms of an organisation by id (deleted ones left out), one query for those not
    /// cached. Their `last_seq` and `last_message_at` may be stale.
    pub async fn rooms(
        &self,
        store: &Store,
        org_id: Uuid,
        ids: &[Uuid],
    ) -> ApiResult<HashMap<Uuid, rooms::Model>> {
        let mut found = cached_or_loaded(
            &self.rooms,
            ids,
            |r| r.id,
            |missing| async move {
                Ok(rooms::Entity::find().filter(rooms::Column::Id.is_in(missing)).all(&store.db).await?)
            },
        )
        .await?;
        found.retain(|_, room| room.org_id == org_id && room.deleted_at.is_none());
        Ok(found)
    }

    /// A support inbox by id, in any organisation (the webhook's signature decides). Its
    /// round-robin turn may be stale: decisions read the inbox again under its lock.
    pub async fn inbox(&self, store: &Store, id: Uuid) -> ApiResult<Option<support_inboxes::Model>> {
        match self.inboxes.get(&id) {
            Some(inbox) => Ok(Some(inbox)),
            None => self.inbox_fresh(store, id).await,
        }
    }

    /// A support inbox read from the database whatever is cached, and cached again: for a
    /// signature the cached secret refused, which may be one rotated meanwhile.
    pub async fn inbox_fresh(&self, store: &Store, id: Uuid) -> ApiResult<Option<support_inboxes::Model>> {
        let generation = self.inboxes.generation();
        let inbox = support_inboxes::Entity::find_by_id(id).one(&store.db).await?;
        if let Some(inbox) = &inbox {
            self.inboxes.keep(id, inbox.clone(), generation);
        }
        Ok(inbox)
    }

    fn forget_inbox(&self, id: Uuid) {
        self.inboxes.forget(&id);
    }

    pub fn forget_user(&self, id: Uuid) {
        self.users.forget(&id);
    }

    /// Changes to `user` from now on, announced on any instance.
    pub fn watch_user(&self, user: Uuid) -> UserWatch {
        self.watchers.watch(user)
    }

    /// How many user changes were announced so far: read before an authentication and again
    /// once its user is watched, a difference says a change may have come in between.
    pub fn user_changes_announced(&self) -> u64 {
        self.watchers.announced()
    }

    fn announce_user_change(&self, id: Uuid) {
        // Forgotten first: whoever is woken rereads the user.
        self.forget_user(id);
        self.watchers.announce(id);
    }

    pub fn forget_room(&self, id: Uuid) {
        self.rooms.forget(&id);
    }

    fn forget_all(&self) {
        self.users.forget_all();
        self.rooms.forget_all();
        self.inboxes.forget_all();
    }

    /// Follows the directory topic until shutdown. Returns once the topic is subscribed, so
    /// no change published after start-up can be missed.
    pub async fn spawn_invalidator(
        &self,
        store: &Store,
        bus: &EventBus,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let subscription = bus.subscribe(Topic::Directory).await;
        let directory = self.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let _guard = subscription.guard;
            let mut events = subscription.receiver;
            let mut in_sync_since = Utc::now();
            // Set while the reread after a resync failed: it is tried again then, from the
            // same moment, so a deactivation or role change missed during an outage still
            // reaches the sockets.
            let mut retry_at: Option<tokio::time::Instant> = None;
            loop {
                // `None`: the retry of a failed reread, which needs no second `forget_all`.
                let item = tokio::select! {
                    _ = shutdown.changed() => return,
                    () = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)),
                        if retry_at.is_some() => None,
                    item = events.recv() => Some(item),
                };
                match item {
                    Some(Ok(BusItem::Event(envelope))) => {
                        match envelope.event {
                            Event::UserChanged { user_id } => directory.announce_user_change(user_id),
                            Event::RoomInfoChanged { room_id } => directory.forget_room(room_id),
                            Event::InboxChanged { inbox_id } => directory.forget_inbox(inbox_id),
                            _ => {}
                        }
                        continue;
                    }
                    Some(Ok(BusItem::Resync(_)) | Err(broadcast::error::RecvError::Lagged(_))) => {
                        directory.forget_all()
                    }
                    Some(Err(broadcast::error::RecvError::Closed)) => return,
                    None => {}
                }
                let now = Utc::now();
                if directory.announce_changed_since(&store, in_sync_since - RESYNC_MARGIN).await {
                    (in_sync_since, retry_at) = (now, None);
                } else {
                    retry_at = Some(tokio::time::Instant::now() + RESYNC_RETRY);
                }
            }
        });
    }

    /// Announces the users deactivated or whose role an admin set since `since`, whose events
    /// may have been lost: their sockets recheck them. False when the database could not say.
    async fn announce_changed_since(&self, store: &Store, since: DateTime<Utc>) -> bool {
        let changed = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(
                Condition::any()
                    .add(users::Column::DeactivatedAt.gte(since))
                    .add(users::Column::RoleChangedAt.gte(since)),
            )
            .into_tuple::<Uuid>()
            .all(&store.db)
            .await;
        match changed {
            Ok(ids) => {
                ids.into_iter().for_each(|id| self.announce_user_change(id));
                true
            }
            Err(error) => {
                tracing::warn!(%error, "could not reread deactivations and role changes after a resync; retried");
                false
            }
        }
    }

    /// Announces a change to a user: forgotten here at once, on other instances when the
    /// event arrives.
    pub async fn user_changed(&self, bus: &EventBus, user_id: Uuid) {
        self.forget_user(user_id);
        bus.publish(Topic::Directory, Event::UserChanged { user_id }).await;
    }

    /// Announces a change to a room's metadata, like `user_changed`.
    pub async fn room_changed(&self, bus: &EventBus, room_id: Uuid) {
        self.forget_room(room_id);
        bus.publish(Topic::Directory, Event::RoomInfoChanged { room_id }).await;
    }

    /// Announces a change to a support inbox, like `user_changed`.
    pub async fn inbox_changed(&self, bus: &EventBus, inbox_id: Uuid) {
        self.forget_inbox(inbox_id);
        bus.publish(Topic::Directory, Event::InboxChanged { inbox_id }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row read before a change and kept after the change was forgotten is not served: it
    /// could be a user's row from before their deactivation.
    #[test]
    fn a_read_overtaken_by_a_change_is_not_kept() {
        let rows: Rows<u32> = Rows::default();
        let (id, other) = (Uuid::now_v7(), Uuid::now_v7());
        let before = rows.generation();
        rows.forget(&other);
        rows.keep(id, 1, before);
        assert_eq!(rows.get(&id), None);

        let now = rows.generation();
        rows.keep(id, 2, now);
        assert_eq!(rows.get(&id), Some(2));
        rows.forget_all();
        assert_eq!(rows.get(&id), None);
    }
}

//! DataLoaders: one per request (or per subscription), scoped to the viewer, so a page of
//! rooms with members, last messages and unread counts costs a constant number of queries.
//! No caching in the loaders themselves (a subscription's loader must not serve yesterday's
//! values); users come through the directory cache, which the bus keeps current.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::db::Store;
use crate::directory::Directory;
use crate::error::ApiError;
use crate::favorites::service as favorites;
use crate::messages::{MessageRecord, service as messages};
use crate::paging::{Keyset, TimeKey};
use crate::presence::service::{UserPresence, shown};
use crate::presence::tracker::Presence;
use crate::read_state::receipts::{self, Receipt};
use crate::read_state::service::{self as read_state, ReadPosition};
use crate::rooms::members;
use entity::{room_members, rooms, users};

pub struct Loaders {
    pub store: Store,
    pub directory: Directory,
    pub presence: Presence,
    pub viewer: Viewer,
}

/// Wraps `ApiError` for loaders, whose error type must be `Clone`.
#[derive(Clone)]
pub struct LoadError(String);

/// Keeps the cause's text: it is logged (once, in the request's span) and masked when the
/// error reaches the response.
impl From<ApiError> for LoadError {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Internal(cause) => Self(format!("{cause:#}")),
            client => Self(client.public_message().to_owned()),
        }
    }
}

impl From<sea_orm::DbErr> for LoadError {
    fn from(err: sea_orm::DbErr) -> Self {
        ApiError::from(err).into()
    }
}

impl From<LoadError> for ApiError {
    fn from(err: LoadError) -> Self {
        ApiError::internal(anyhow::anyhow!(err.0))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserKey(pub Uuid);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomKey(pub Uuid);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageKey(pub Uuid);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LastMessageKey(pub Uuid);
/// The viewer's own membership of a room.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembershipKey(pub Uuid);
/// A page of a room's members, with one more to tell whether more lie beyond it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembersPageKey {
    pub room_id: Uuid,
    pub page: Keyset<TimeKey>,
}
/// How many members a room has.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberCountKey(pub Uuid);
/// Whether the viewer saved a message.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SavedKey(pub Uuid);
/// The viewer's read position in a room (unread and mention counts).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnreadKey(pub Uuid);
/// A user's presence as others see it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PresenceKey(pub Uuid);
/// Up to `limit` read receipts of a room, furthest read first.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiptsKey {
    pub room_id: Uuid,
    pub limit: u64,
}

impl Loader<UserKey> for Loaders {
    type Value = users::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[UserKey]) -> Result<HashMap<UserKey, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let users = self.directory.users(&self.store, &ids).await?;
        let org_id = self.viewer.org_id;
        Ok(users.into_values().filter(|u| u.org_id == org_id).map(|u| (UserKey(u.id), u)).collect())
    }
}

impl Loader<RoomKey> for Loaders {
    type Value = rooms::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[RoomKey]) -> Result<HashMap<RoomKey, Self::Value>, Self::Error> {
        let rows = rooms::Entity::find()
            .filter(rooms::Column::OrgId.eq(self.viewer.org_id))
            .filter(rooms::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.store.db)
            .await?;
        Ok(rows.into_iter().map(|r| (RoomKey(r.id), r)).collect())
    }
}

impl Loader<MessageKey> for Loaders {
    type Value = MessageRecord;
    type Error = LoadError;

    async fn load(&self, keys: &[MessageKey]) -> Result<HashMap<MessageKey, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = messages::by_ids(&self.store, self.viewer.org_id, &ids).await?;
        Ok(rows.into_iter().map(|m| (MessageKey(m.id), m)).collect())
    }
}

impl Loader<LastMessageKey> for Loaders {
    type Value = MessageRecord;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[LastMessageKey],
    ) -> Result<HashMap<LastMessageKey, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = messages::latest_of_rooms(&self.store, &ids).await?;
        Ok(rows.into_iter().map(|m| (LastMessageKey(m.room_id), m)).collect())
    }
}

impl Loader<MembershipKey> for Loaders {
    type Value = room_members::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[MembershipKey]) -> Result<HashMap<MembershipKey, Self::Value>, Self::Error> {
        let rows = room_members::Entity::find()
            .filter(room_members::Column::UserId.eq(self.viewer.id))
            .filter(room_members::Column::RoomId.is_in(keys.iter().map(|k| k.0)))
            .all(&self.store.db)
            .await?;
        Ok(rows.into_iter().map(|m| (MembershipKey(m.room_id), m)).collect())
    }
}

impl Loader<MembersPageKey> for Loaders {
    type Value = Vec<room_members::Model>;
    type Error = LoadError;

    /// One statement per distinct page (rooms of one list ask for the same page).
    async fn load(
        &self,
        keys: &[MembersPageKey],
    ) -> Result<HashMap<MembersPageKey, Self::Value>, Self::Error> {
        let mut by_page: HashMap<Keyset<TimeKey>, Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_page.entry(key.page).or_default().push(key.room_id);
        }
        let mut found = HashMap::new();
        for (page, room_ids) in by_page {
            for (room_id, members) in members::pages(&self.store, &room_ids, page).await? {
                found.insert(MembersPageKey { room_id, page }, members);
            }
        }
        Ok(found)
    }
}

impl Loader<MemberCountKey> for Loaders {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[MemberCountKey]) -> Result<HashMap<MemberCountKey, i64>, Self::Error> {
        let room_ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let counts = members::counts(&self.store, &room_ids).await?;
        Ok(counts.into_iter().map(|(room_id, n)| (MemberCountKey(room_id), n)).collect())
    }
}

impl Loader<UnreadKey> for Loaders {
    type Value = ReadPosition;
    type Error = LoadError;

    async fn load(&self, keys: &[UnreadKey]) -> Result<HashMap<UnreadKey, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let positions = read_state::positions(&self.store, self.viewer.id, Some(&ids)).await?;
        Ok(positions.into_iter().map(|p| (UnreadKey(p.room_id), p)).collect())
    }
}

impl Loader<SavedKey> for Loaders {
    type Value = bool;
    type Error = LoadError;

    /// Only saved messages are listed: a missing key means "not saved".
    async fn load(&self, keys: &[SavedKey]) -> Result<HashMap<SavedKey, bool>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let saved = favorites::saved_among(&self.store, self.viewer.id, &ids).await?;
        Ok(saved.into_iter().map(|id| (SavedKey(id), true)).collect())
    }
}

impl Loader<PresenceKey> for Loaders {
    type Value = UserPresence;
    type Error = LoadError;

    /// One Redis round trip for all of them (connection states), users through the directory.
    async fn load(&self, keys: &[PresenceKey]) -> Result<HashMap<PresenceKey, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut users = self.directory.users(&self.store, &ids).await?;
        // Only people of the viewer's organisation.
        users.retain(|_, user| user.org_id == self.viewer.org_id);
        let ids: Vec<Uuid> = users.keys().copied().collect();
        let seen = self.presence.seen(&ids).await;
        Ok(shown(users, &seen).into_iter().map(|(id, presence)| (PresenceKey(id), presence)).collect())
    }
}

impl Loader<ReceiptsKey> for Loaders {
    type Value = Vec<Receipt>;
    type Error = LoadError;

    /// One query per distinct limit (a page of rooms asks with one).
    async fn load(&self, keys: &[ReceiptsKey]) -> Result<HashMap<ReceiptsKey, Self::Value>, Self::Error> {
        let mut found: HashMap<ReceiptsKey, Vec<Receipt>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        let mut limits: Vec<u64> = keys.iter().map(|k| k.limit).collect();
        limits.sort_unstable();
        limits.dedup();
        for limit in limits {
            let ids: Vec<Uuid> = keys.iter().filter(|k| k.limit == limit).map(|k| k.room_id).collect();
            for receipt in receipts::receipts(&self.store, &ids, limit).await? {
                let key = ReceiptsKey { room_id: receipt.room_id, limit };
                found.entry(key).or_default().push(receipt);
            }
        }
        Ok(found)
    }
}

impl From<LoadError> for async_graphql::Error {
    fn from(err: LoadError) -> Self {
        ApiError::from(err).into()
    }
}

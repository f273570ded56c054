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
use crate::read_state::service as read_state;
use entity::{room_members, rooms, users};

pub struct Loaders {
    pub store: Store,
    pub directory: Directory,
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
/// Every membership of a room.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembersKey(pub Uuid);
/// Whether the viewer saved a message.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SavedKey(pub Uuid);
/// The viewer's unread count in a room.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnreadKey(pub Uuid);

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

impl Loader<MembersKey> for Loaders {
    type Value = Vec<room_members::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[MembersKey]) -> Result<HashMap<MembersKey, Self::Value>, Self::Error> {
        let rows = room_members::Entity::find()
            .filter(room_members::Column::RoomId.is_in(keys.iter().map(|k| k.0)))
            .all(&self.store.db)
            .await?;
        let mut members: HashMap<MembersKey, Self::Value> = HashMap::new();
        for row in rows {
            members.entry(MembersKey(row.room_id)).or_default().push(row);
        }
        Ok(members)
    }
}

impl Loader<UnreadKey> for Loaders {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[UnreadKey]) -> Result<HashMap<UnreadKey, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let positions = read_state::positions(&self.store, self.viewer.id, Some(&ids)).await?;
        Ok(positions.into_iter().map(|p| (UnreadKey(p.room_id), p.unread())).collect())
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

impl From<LoadError> for async_graphql::Error {
    fn from(err: LoadError) -> Self {
        ApiError::from(err).into()
    }
}

//! Rooms tied to an outside record: one private channel per organisation and `contextRef`
//! (an order, a contract, a ticket in another system), created on first use. The unique
//! index on `(org_id, context_ref)` makes opening idempotent, also when two instances race:
//! the loser of the insert reads the winner's room.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::access;
use super::name::ChannelName;
use super::service::{create_with_members, new_channel, other_members};
use crate::auth::Viewer;
use crate::db::Store;
use crate::error::{ApiError, ApiResult};
use crate::state::Ctx;
use entity::rooms;

/// A reference to an outside record: trimmed, 1–200 characters, kept as given otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextRef(String);

impl ContextRef {
    const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> ApiResult<Self> {
        let reference = raw.trim();
        match reference.chars().count() {
            0 => Err(ApiError::bad_input("a contextRef cannot be empty")),
            n if n > Self::MAX_CHARS => Err(ApiError::bad_input("a contextRef has at most 200 characters")),
            _ => Ok(Self(reference.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub struct NewContextRoom {
    pub context_ref: ContextRef,
    pub name: Option<ChannelName>,
    pub member_ids: Vec<Uuid>,
}

/// The organisation's room for `context_ref`: created (private, the viewer its owner, with
/// `member_ids`) on first use; afterwards returned as it is to its members — name and member
/// list are only used to create it (add members later with `addMembers`). To anyone else it
/// is NOT_FOUND, like every private room.
#[tracing::instrument(skip(cx, new), fields(viewer = %cx.viewer.id))]
pub async fn open(cx: &Ctx<'_>, new: NewContextRoom) -> ApiResult<rooms::Model> {
    let store = &cx.app.store;
    if let Some(room) = find(store, cx.viewer, &new.context_ref).await? {
        return Ok(room);
    }
    let member_ids = other_members(cx, new.member_ids).await?;
    let room = rooms::Model {
        name_key: new.name.as_ref().map(ChannelName::key),
        name: new.name.map(ChannelName::into_string),
        context_ref: Some(new.context_ref.as_str().to_owned()),
        ..new_channel(cx.viewer)
    };
    match create_with_members(cx, room, member_ids).await {
        Err(err) if err.is_unique_violation() => {
            // Someone opened it at the same moment (theirs is ours), or the name is taken.
            find(store, cx.viewer, &new.context_ref)
                .await?
                .ok_or_else(|| ApiError::conflict("a channel with this name already exists"))
        }
        result => result,
    }
}

/// The room for `context_ref`, if there is one and the viewer may read it; NOT_FOUND when
/// there is one they may not read.
pub async fn find(
    store: &Store,
    viewer: &Viewer,
    context_ref: &ContextRef,
) -> ApiResult<Option<rooms::Model>> {
    let id = rooms::Entity::find()
        .filter(rooms::Column::OrgId.eq(viewer.org_id))
        .filter(rooms::Column::ContextRef.eq(context_ref.as_str()))
        .filter(rooms::Column::DeletedAt.is_null())
        .one(&store.db)
        .await?
        .map(|room| room.id);
    match id {
        Some(id) => Ok(Some(access::readable(store, viewer, id).await?.room)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::ContextRef;

    #[test]
    fn a_reference_is_trimmed_and_bounded() {
        assert_eq!(
            ContextRef::parse("  order-42 ").ok().map(|r| r.as_str().to_owned()),
            Some("order-42".into())
        );
        assert!(ContextRef::parse("   ").is_err());
        assert!(ContextRef::parse(&"é".repeat(200)).is_ok());
        assert!(ContextRef::parse(&"é".repeat(201)).is_err());
    }
}

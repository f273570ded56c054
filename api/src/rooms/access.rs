//! Who may read and write a room. A member reads and writes; anyone in the organisation may
//! read a public channel (and join it to write); org admins read every support conversation
//! (their first reply joins them to it). Everything else is NOT_FOUND.

use sea_orm::sea_query::{Expr, IntoCondition};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, JoinType, QueryFilter, QuerySelect, RelationTrait,
};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::db::Store;
use crate::error::{ApiError, ApiResult};
use entity::enums::{MemberRole, RoomKind, Visibility};
use entity::{room_members, rooms};

/// A room the viewer may read, with the viewer's membership if any.
pub struct RoomAccess {
    pub room: rooms::Model,
    pub membership: Option<room_members::Model>,
}

impl RoomAccess {
    /// Room owners and admins, and org admins, manage a room.
    pub fn can_manage(&self, viewer: &Viewer) -> bool {
        viewer.is_admin()
            || self
                .membership
                .as_ref()
                .is_some_and(|m| matches!(m.role, MemberRole::Owner | MemberRole::Admin))
    }

    pub fn require_member(self) -> ApiResult<(rooms::Model, room_members::Model)> {
        match self.membership {
            Some(member) => Ok((self.room, member)),
            None => Err(ApiError::forbidden("join the channel first")),
        }
    }

    /// An org admin outside a support conversation: they may reply (their first reply joins
    /// them to it, `messages::send`) and so may type there without being a member yet.
    pub fn joins_on_reply(&self, viewer: &Viewer) -> bool {
        self.membership.is_none() && self.room.kind == RoomKind::Support && viewer.is_admin()
    }

    pub fn require_writable(&self) -> ApiResult<()> {
        match self.room.archived_at {
            Some(_) => Err(ApiError::forbidden("the room is archived and read-only")),
            None => Ok(()),
        }
    }
}

/// The read rule of [`readable`] in SQL, for a read that filters many rooms' rows in one
/// statement: `r` is the room, `rm` the viewer's membership (LEFT JOINed: NULL when none).
/// The caller scopes `r` to the viewer's organisation. As [`viewer_may_read`]: an org admin
/// also reads every support conversation, so what they may save they also find listed.
pub fn readable_sql(viewer: &Viewer) -> &'static str {
    if viewer.is_admin() {
        "r.deleted_at IS NULL AND (rm.user_id IS NOT NULL OR (r.kind = 'channel' AND r.visibility = 'public') \
         OR r.kind = 'support')"
    } else {
        "r.deleted_at IS NULL AND (rm.user_id IS NOT NULL OR (r.kind = 'channel' AND r.visibility = 'public'))"
    }
}

pub fn is_public_channel(room: &rooms::Model) -> bool {
    room.kind == RoomKind::Channel && room.visibility == Visibility::Public
}

/// The read rule on rows already loaded: a live room the viewer is a member of, or a public
/// channel. The caller scoped `room` to the viewer's organisation.
pub fn may_read(room: &rooms::Model, member: bool) -> bool {
    room.deleted_at.is_none() && (member || is_public_channel(room))
}

/// [`may_read`] for a viewer: org admins also read every support conversation (as in
/// Chatwoot; their first reply joins them to it, `messages::send`).
pub fn viewer_may_read(room: &rooms::Model, member: bool, viewer: &Viewer) -> bool {
    user_may_read(room, member, viewer.is_admin())
}

/// [`viewer_may_read`] for someone not making the request (a webhook's creator), by role.
pub fn user_may_read(room: &rooms::Model, member: bool, admin: bool) -> bool {
    may_read(room, member) || (room.deleted_at.is_none() && room.kind == RoomKind::Support && admin)
}

/// Loads a room the viewer may read, with the viewer's membership, in one query; or NOT_FOUND.
pub async fn readable(store: &Store, viewer: &Viewer, room_id: Uuid) -> ApiResult<RoomAccess> {
    let viewer_id = viewer.id;
    let own_membership = rooms::Relation::Members.def().on_condition(move |_, members| {
        Expr::col((members, room_members::Column::UserId)).eq(viewer_id).into_condition()
    });
    let (room, membership) = rooms::Entity::find_by_id(room_id)
        .filter(rooms::Column::OrgId.eq(viewer.org_id))
        .filter(rooms::Column::DeletedAt.is_null())
        .select_also(room_members::Entity)
        .join(JoinType::LeftJoin, own_membership)
        .one(&store.db)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    if !viewer_may_read(&room, membership.is_some(), viewer) {
        return Err(ApiError::not_found("room"));
    }
    Ok(RoomAccess { room, membership })
}

/// Loads a room the viewer is a member of and may post in.
pub async fn writable(
    store: &Store,
    viewer: &Viewer,
    room_id: Uuid,
) -> ApiResult<(rooms::Model, room_members::Model)> {
    let access = readable(store, viewer, room_id).await?;
    access.require_writable()?;
    access.require_member()
}

/// Whether a user is a member of a room (not deleted): [`member_room_ids`] for one room.
pub async fn is_member(store: &Store, user_id: Uuid, room_id: Uuid) -> ApiResult<bool> {
    let row = store
        .db
        .query_one_raw(store.stmt(
            "SELECT 1 AS member FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
             WHERE rm.user_id = $1 AND rm.room_id = $2 AND r.deleted_at IS NULL",
            vec![user_id.into(), room_id.into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// Ids of the rooms a user is a member of (not deleted).
pub async fn member_room_ids(store: &Store, user_id: Uuid) -> ApiResult<Vec<Uuid>> {
    let rows = store
        .db
        .query_all_raw(store.stmt(
            "SELECT rm.room_id FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
             WHERE rm.user_id = $1 AND r.deleted_at IS NULL",
            vec![user_id.into()],
        ))
        .await?;
    Ok(rows.iter().map(|row| row.try_get("", "room_id")).collect::<Result<_, _>>()?)
}

//! Listing rooms: the viewer's rooms (`rooms`, `viewer.rooms`), most recent activity first or
//! favorites first, and the public channels they have not joined (`joined: false`), by name.
//! Pages start beyond a room's place ([`ListingKey`]), so reading the rooms of an unread list or
//! joining the channels of a browse page does not make the next page skip any.

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, ExprTrait, JoinType, Order, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait, Select,
};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::db::{Store, contains_ci};
use crate::error::{ApiError, ApiResult};
use crate::paging::{Keyset, TimeKey, Window, beyond_pair};
use crate::read_state::service as read_state;
use entity::enums::{RoomKind, Visibility};
use entity::{room_members, rooms};

/// Which rooms a listing shows, and in which order.
#[derive(Default)]
pub struct RoomFilter {
    pub kind: Option<RoomKind>,
    pub unread: Option<bool>,
    pub archived: Option<bool>,
    pub search: Option<String>,
    /// Only favorites (true) or only the others (false).
    pub favorite: Option<bool>,
    /// Favorites before the others, each group by recent activity.
    pub favorites_first: bool,
    /// False: public channels the viewer has not joined instead of the viewer's rooms.
    pub joined: Option<bool>,
    /// Support conversations of an inbox, in a status, assigned to someone.
    pub inbox_id: Option<Uuid>,
    pub status: Option<entity::enums::ConversationStatus>,
    pub assignee_id: Option<Uuid>,
}

/// A room's place in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingKey {
    /// The viewer's rooms by latest activity (the last message's time, or the room's creation
    /// before one), then id.
    Activity(TimeKey),
    /// The same, favorites first: `favorite` says in which part the room is.
    FavoritesFirst { favorite: bool, at: TimeKey },
    /// Channels to browse: by name as it compares (its key: case and invisible characters
    /// aside), then id.
    Name { name: String, id: Uuid },
}

/// A room's latest activity, as listings order by it: its last message's time, or its
/// creation's before one.
pub fn activity() -> Expr {
    Expr::cust("COALESCE(rooms.last_message_at, rooms.created_at)")
}

/// A room's place in a list by [`activity`].
pub fn activity_key(room: &rooms::Model) -> TimeKey {
    TimeKey { at: room.last_message_at.unwrap_or(room.created_at), id: room.id }
}

/// One page of the viewer's rooms, most recent activity first (or, with `joined: false`, the
/// channels to browse), and whether more lie beyond it.
pub async fn list(
    store: &Store,
    viewer: &Viewer,
    filter: &RoomFilter,
    page: Keyset<ListingKey>,
) -> ApiResult<(Vec<(ListingKey, rooms::Model)>, bool)> {
    if filter.joined == Some(false) {
        return browse(store, viewer, filter, page).await;
    }
    let joined = rooms::Entity::find()
        .join(JoinType::InnerJoin, rooms::Relation::Members.def())
        .filter(room_members::Column::UserId.eq(viewer.id))
        .filter(rooms::Column::OrgId.eq(viewer.org_id));
    let mut query = narrowed(store, joined, filter);
    if let Some(unread) = filter.unread {
        // Precise: live messages above the watermark, deletions subtracted.
        let unread_count = Expr::cust(read_state::UNREAD_COUNT_SQL);
        query = query.filter(if unread { unread_count.gt(0) } else { ExprTrait::eq(unread_count, 0) });
    }
    query = match filter.favorite {
        Some(true) => query.filter(room_members::Column::FavoriteAt.is_not_null()),
        Some(false) => query.filter(room_members::Column::FavoriteAt.is_null()),
        None => query,
    };
    let window = page.window;
    // A cursor of another order names no place in this one.
    let (favorite, at) = match (page.cursor, filter.favorites_first) {
        (None, _) => (None, None),
        (Some(ListingKey::Activity(at)), false) => (None, Some(at)),
        (Some(ListingKey::FavoritesFirst { favorite, at }), true) => (Some(favorite), Some(at)),
        _ => return Err(ApiError::bad_input("invalid cursor")),
    };
    let beyond = Keyset { cursor: at, window }.beyond(activity(), rooms::Column::Id, Order::Desc);
    query = query.filter(match favorite {
        Some(favorite) => {
            // Favorites, then the others: beyond the cursor in its own part, and all of the
            // other part if it lies ahead in the direction read.
            let (favorites, others) =
                (room_members::Column::FavoriteAt.is_not_null(), room_members::Column::FavoriteAt.is_null());
            let (own, other) = if favorite { (favorites, others) } else { (others, favorites) };
            let other_ahead = favorite != window.from_end;
            let within = Condition::all().add(own).add(beyond);
            if other_ahead { Condition::any().add(within).add(other) } else { within }
        }
        None => beyond,
    });
    if filter.favorites_first {
        query = query.order_by(Expr::cust("room_members.favorite_at IS NULL"), window.order(Order::Asc));
    }
    let query = query
        .order_by(activity(), window.order(Order::Desc))
        .order_by(rooms::Column::Id, window.order(Order::Desc))
        .limit(window.fetch_limit());
    let keyed: Vec<(ListingKey, rooms::Model)> = if filter.favorites_first {
        // The viewer's membership comes with each room (the join is there already), so a
        // room's part is read in the same snapshot as its place.
        let rows = query.select_also(room_members::Entity).all(&store.db).await?;
        rows.into_iter()
            .map(|(room, membership)| {
                let favorite = membership.is_some_and(|m| m.favorite_at.is_some());
                (ListingKey::FavoritesFirst { favorite, at: activity_key(&room) }, room)
            })
            .collect()
    } else {
        let rows = query.all(&store.db).await?;
        rows.into_iter().map(|room| (ListingKey::Activity(activity_key(&room)), room)).collect()
    };
    Ok(window.split(keyed))
}

/// What the viewer's rooms and browsing share: live rooms (or archived ones), of a kind,
/// whose name or topic contains `search`, ignoring case in any script.
fn narrowed(store: &Store, query: Select<rooms::Entity>, filter: &RoomFilter) -> Select<rooms::Entity> {
    let mut query = query.filter(rooms::Column::DeletedAt.is_null());
    query = match filter.archived {
        Some(true) => query.filter(rooms::Column::ArchivedAt.is_not_null()),
        _ => query.filter(rooms::Column::ArchivedAt.is_null()),
    };
    if let Some(kind) = filter.kind {
        query = query.filter(rooms::Column::Kind.eq(kind));
    }
    if let Some(inbox_id) = filter.inbox_id {
        query = query.filter(rooms::Column::InboxId.eq(inbox_id));
    }
    if let Some(status) = filter.status {
        query = query.filter(rooms::Column::Status.eq(status));
    }
    if let Some(assignee_id) = filter.assignee_id {
        query = query.filter(rooms::Column::AssigneeId.eq(assignee_id));
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        query =
            query.filter(
                Condition::any()
                    .add(contains_ci(store.backend(), rooms::Column::Name, search))
                    .add(contains_ci(store.backend(), rooms::Column::Topic, search)),
            );
    }
    query
}

/// The organisation's public channels the viewer has not joined, by name: what a "browse
/// channels" screen lists. Live ones unless `archived`; `search` and `kind` apply. The order is
/// the name's key, so `alpha` comes before `Zeta` on every database, as a reader expects.
async fn browse(
    store: &Store,
    viewer: &Viewer,
    filter: &RoomFilter,
    page: Keyset<ListingKey>,
) -> ApiResult<(Vec<(ListingKey, rooms::Model)>, bool)> {
    if filter.unread.is_some() || filter.favorite.is_some() || filter.favorites_first {
        return Err(ApiError::bad_input(
            "unread and favorites apply to rooms you joined, not to joined: false",
        ));
    }
    let joined = Query::select()
        .column(room_members::Column::RoomId)
        .from(room_members::Entity)
        .and_where(room_members::Column::UserId.eq(viewer.id))
        .to_owned();
    let unjoined_public = rooms::Entity::find()
        .filter(rooms::Column::OrgId.eq(viewer.org_id))
        .filter(rooms::Column::Kind.eq(RoomKind::Channel))
        .filter(rooms::Column::Visibility.eq(Visibility::Public))
        // Every public channel has one (`createChannel` requires it); a nameless one would
        // have no place in this order.
        .filter(rooms::Column::NameKey.is_not_null())
        .filter(rooms::Column::Id.not_in_subquery(joined));
    let window: Window = page.window;
    let beyond = match page.cursor {
        None => Condition::all(),
        Some(ListingKey::Name { name, id }) => beyond_pair(
            (rooms::Column::NameKey, name.into()),
            (rooms::Column::Id, id.into()),
            window.order(Order::Asc),
        ),
        Some(_) => return Err(ApiError::bad_input("invalid cursor")),
    };
    let rows = narrowed(store, unjoined_public, filter)
        .filter(beyond)
        .order_by(rooms::Column::NameKey, window.order(Order::Asc))
        .order_by(rooms::Column::Id, window.order(Order::Asc))
        .limit(window.fetch_limit())
        .all(&store.db)
        .await?;
    let (rows, more) = window.split(rows);
    let keyed = rows
        .into_iter()
        .map(|room| (ListingKey::Name { name: room.name_key.clone().unwrap_or_default(), id: room.id }, room))
        .collect();
    Ok((keyed, more))
}

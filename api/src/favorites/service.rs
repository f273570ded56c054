//! Setting favorites and reading them back: which of some rooms or messages the viewer
//! favored (one query per batch), the viewer's saved messages, newest saved first (paged by
//! when each was saved, so saving and forgetting while paging moves no page), and all
//! of a user's favorites as ids with their version (what `favoritesChanged` starts from and
//! compares after a resync or a gap). Each change counts one more `users.favorites_version`.

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, Order, QueryFilter, Set, Value};
use uuid::Uuid;

use crate::bus::{Event, Topic};
use crate::db::{self, Store, WriteTx, columns};
use crate::error::{ApiError, ApiResult};
use crate::messages::{MessageRecord, service as messages};
use crate::paging::{Keyset, TimeKey};
use crate::rooms::access;
use crate::state::Ctx;
use entity::{message_favorites, messages as message_rows, room_members, rooms};

/// Marks a room the viewer is a member of as a favorite, or not. Setting what is already set
/// changes nothing (a favorite keeps the time it was first made one) and announces nothing.
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn set_room(cx: &Ctx<'_>, room_id: Uuid, favorite: bool) -> ApiResult<rooms::Model> {
    let store = &cx.app.store;
    let (room, membership) = access::readable(store, cx.viewer, room_id).await?.require_member()?;
    if membership.favorite_at.is_some() == favorite {
        return Ok(room);
    }
    let tx = store.begin_write().await?;
    // Only a row that is not yet as asked: of two devices setting it at once, one changes it.
    let unchanged = if favorite {
        room_members::Column::FavoriteAt.is_null()
    } else {
        room_members::Column::FavoriteAt.is_not_null()
    };
    let changed = room_members::Entity::update_many()
        .col_expr(room_members::Column::FavoriteAt, Expr::value(favorite.then(Utc::now)))
        .filter(room_members::Column::RoomId.eq(room.id))
        .filter(room_members::Column::UserId.eq(cx.viewer.id))
        .filter(unchanged)
        .exec(&tx.txn)
        .await?
        .rows_affected;
    let version = if changed > 0 { Some(next_version(store, &tx, cx.viewer.id).await?) } else { None };
    tx.commit().await?;
    if let Some(version) = version {
        announce(cx, Some(room.id), None, favorite, version).await;
    }
    Ok(room)
}

/// Saves a message the viewer may read, or forgets it; idempotent like [`set_room`].
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn set_message(cx: &Ctx<'_>, message_id: Uuid, favorite: bool) -> ApiResult<MessageRecord> {
    let store = &cx.app.store;
    let (message, _) = messages::readable(store, cx.viewer, message_id).await?;
    // Forgetting a deleted message stays possible (it was saved before it was deleted), and
    // saving it again is the no-op it always is.
    if favorite
        && message.deleted_at.is_some()
        && saved_among(store, cx.viewer.id, &[message.id]).await?.is_empty()
    {
        return Err(ApiError::bad_input("a deleted message cannot be saved"));
    }
    let tx = store.begin_write().await?;
    let changed = if favorite {
        let row = message_favorites::ActiveModel {
            user_id: Set(cx.viewer.id),
            message_id: Set(message.id),
            created_at: Set(db::now()),
        };
        let keep_first =
            OnConflict::columns([message_favorites::Column::UserId, message_favorites::Column::MessageId])
                .do_nothing()
                .to_owned();
        message_favorites::Entity::insert(row).on_conflict(keep_first).exec_without_returning(&tx.txn).await?
    } else {
        message_favorites::Entity::delete_many()
            .filter(message_favorites::Column::UserId.eq(cx.viewer.id))
            .filter(message_favorites::Column::MessageId.eq(message.id))
            .exec(&tx.txn)
            .await?
            .rows_affected
    };
    let version = if changed > 0 { Some(next_version(store, &tx, cx.viewer.id).await?) } else { None };
    tx.commit().await?;
    if let Some(version) = version {
        announce(cx, None, Some(message.id), favorite, version).await;
    }
    Ok(message.into())
}

/// Counts a change of the user's favorites in the transaction that makes it. The update holds
/// the user's row until the commit, so versions follow the order the changes commit in.
async fn next_version(store: &Store, tx: &WriteTx, user_id: Uuid) -> ApiResult<i64> {
    let sql = "UPDATE users SET favorites_version = favorites_version + 1 WHERE id = $1 \
               RETURNING favorites_version";
    let row = tx.txn.query_one_raw(store.stmt(sql, vec![user_id.into()])).await?;
    let row = row.ok_or_else(|| ApiError::internal(anyhow::anyhow!("user {user_id} vanished")))?;
    Ok(row.try_get("", "favorites_version")?)
}

async fn announce(
    cx: &Ctx<'_>,
    room_id: Option<Uuid>,
    message_id: Option<Uuid>,
    favorite: bool,
    version: i64,
) {
    let event = Event::FavoriteChanged { room_id, message_id, favorite, version };
    cx.app.bus.publish(Topic::User(cx.viewer.id), event).await;
}

/// A user's favorite rooms and saved messages, as ids, and how many changes made them.
#[derive(Default)]
pub struct Favorites {
    pub rooms: HashSet<Uuid>,
    pub messages: HashSet<Uuid>,
    /// The user's `favorites_version`: the sets hold exactly the changes it counts.
    pub version: i64,
}

impl Favorites {
    /// Follows a change announced on the user's topic.
    pub fn apply(&mut self, room_id: Option<Uuid>, message_id: Option<Uuid>, favorite: bool) {
        for (set, id) in [(&mut self.rooms, room_id), (&mut self.messages, message_id)] {
            match id {
                Some(id) if favorite => set.insert(id),
                Some(id) => set.remove(&id),
                None => false,
            };
        }
    }
}

/// The user's favorites and their version, ids only. One statement, so that the sets and the
/// version come from one snapshot: with the version read apart, a change committed between
/// the reads would sit in the sets and then be applied again, out of order, by its event.
pub async fn favorites(store: &Store, user_id: Uuid) -> ApiResult<Favorites> {
    let sql = "SELECT 'version' AS kind, id, favorites_version AS version FROM users WHERE id = $1 \
               UNION ALL SELECT 'room', room_id, 0 FROM room_members \
               WHERE user_id = $1 AND favorite_at IS NOT NULL \
               UNION ALL SELECT 'message', message_id, 0 FROM message_favorites WHERE user_id = $1";
    let rows = store.db.query_all_raw(store.stmt(sql, vec![user_id.into()])).await?;
    let mut favorites = Favorites::default();
    for row in rows {
        let kind: String = row.try_get("", "kind")?;
        let id: Uuid = row.try_get("", "id")?;
        match kind.as_str() {
            "version" => favorites.version = row.try_get("", "version")?,
            "room" => _ = favorites.rooms.insert(id),
            _ => _ = favorites.messages.insert(id),
        }
    }
    Ok(favorites)
}

/// Which of `message_ids` the user saved: one query for a whole page of messages.
pub async fn saved_among(store: &Store, user_id: Uuid, message_ids: &[Uuid]) -> ApiResult<HashSet<Uuid>> {
    let rows = message_favorites::Entity::find()
        .filter(message_favorites::Column::UserId.eq(user_id))
        .filter(message_favorites::Column::MessageId.is_in(message_ids.iter().copied()))
        .all(&store.db)
        .await?;
    Ok(rows.into_iter().map(|row| row.message_id).collect())
}

/// The viewer's saved messages that they may still read (`rooms::access::readable_sql`),
/// newest saved first: one page beyond a saved message's place (when it was saved, then its
/// id, which stays put when messages are saved or forgotten, even that one), and whether
/// more lie beyond the page.
pub async fn saved_messages(
    store: &Store,
    viewer: &crate::auth::Viewer,
    page: Keyset<TimeKey>,
) -> ApiResult<(Vec<(TimeKey, MessageRecord)>, bool)> {
    let mut values: Vec<Value> = vec![viewer.id.into(), viewer.org_id.into()];
    let beyond = match page.cursor {
        Some(TimeKey { at, id }) => {
            values.extend([at.into(), id.into()]);
            format!("AND (f.created_at, f.message_id) {} ($3, $4)", page.sql_beyond(Order::Desc))
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT {}, f.created_at AS saved_at FROM message_favorites f \
         JOIN messages m ON m.id = f.message_id \
         JOIN rooms r ON r.id = m.room_id \
         LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = $1 \
         WHERE f.user_id = $1 AND r.org_id = $2 AND {} {beyond} \
         ORDER BY f.created_at {order}, f.message_id {order} LIMIT {}",
        columns::<message_rows::Entity>(Some("m")),
        access::readable_sql(viewer),
        page.window.fetch_limit(),
        order = page.window.sql_order(Order::Desc),
    );
    let rows = store.db.query_all_raw(store.stmt(&sql, values)).await?;
    let mut saved = Vec::with_capacity(rows.len());
    for row in rows {
        let message = message_rows::Model::from_query_result(&row, "")?;
        let at = row.try_get("", "saved_at")?;
        saved.push((TimeKey { at, id: message.id }, MessageRecord::from(message)));
    }
    Ok(page.window.split(saved))
}

//! Reading rooms' member lists: a page of members, and how many there are, for many rooms at
//! once (one statement each), so a page of rooms with their members costs a constant number
//! of queries and a channel of 5 000 members never comes back as one list. Members are in the
//! order they joined, paged by that place.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, EntityTrait, Order, QueryFilter, QuerySelect, Value};
use uuid::Uuid;

use crate::db::{Store, columns};
use crate::error::ApiResult;
use crate::paging::{Keyset, TimeKey};
use entity::room_members;

/// One page of each room's members beyond a member's place (when they joined, then their
/// id), in the order the window reads (`Window::split` puts them in joining order), with one
/// more to tell whether more lie beyond it.
pub async fn pages(
    store: &Store,
    room_ids: &[Uuid],
    page: Keyset<TimeKey>,
) -> ApiResult<HashMap<Uuid, Vec<room_members::Model>>> {
    if room_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut values = Vec::new();
    let beyond = match page.cursor {
        Some(TimeKey { at, id }) => {
            values.extend([Value::from(at), Value::from(id)]);
            format!(" AND (rm.joined_at, rm.user_id) {} ($1, $2)", page.sql_beyond(Order::Asc))
        }
        None => String::new(),
    };
    let (in_rooms, ids) = store.in_ids("rm.room_id", room_ids, values.len() + 1);
    values.extend(ids);
    let sql = format!(
        "SELECT {} FROM (SELECT rm.*, ROW_NUMBER() OVER \
           (PARTITION BY rm.room_id ORDER BY rm.joined_at {order}, rm.user_id {order}) AS position \
         FROM room_members rm WHERE {in_rooms}{beyond}) p \
         WHERE p.position <= {} ORDER BY p.room_id, p.position",
        columns::<room_members::Entity>(Some("p")),
        page.window.fetch_limit(),
        order = page.window.sql_order(Order::Asc),
    );
    let rows = room_members::Entity::find().from_raw_sql(store.stmt(&sql, values)).all(&store.db).await?;
    let mut pages: HashMap<Uuid, Vec<room_members::Model>> = HashMap::new();
    for row in rows {
        pages.entry(row.room_id).or_default().push(row);
    }
    Ok(pages)
}

/// How many members each room has; rooms without any are left out.
pub async fn counts(store: &Store, room_ids: &[Uuid]) -> ApiResult<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = room_members::Entity::find()
        .select_only()
        .column(room_members::Column::RoomId)
        .column_as(room_members::Column::UserId.count(), "members")
        .filter(room_members::Column::RoomId.is_in(room_ids.iter().copied()))
        .group_by(room_members::Column::RoomId)
        .into_tuple()
        .all(&store.db)
        .await?;
    Ok(rows.into_iter().collect())
}

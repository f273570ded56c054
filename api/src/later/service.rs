//! Reading one page of the Later list: one statement over both sources for the order, then
//! one per source for the rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::db::Store;
use crate::error::ApiResult;
use crate::messages::{MessageRecord, service as messages};
use crate::paging::Window;
use crate::rooms::access;
use entity::reminders;

/// One item of the list.
pub enum LaterEntry {
    Reminder(reminders::Model),
    Saved { message: MessageRecord, saved_at: DateTime<Utc> },
}

/// One window of the viewer's Later list, and whether more lie beyond it. Saved messages the
/// viewer can no longer read drop out, as in `viewer.favoriteMessages`.
pub async fn page(store: &Store, viewer: &Viewer, window: Window) -> ApiResult<(Vec<LaterEntry>, bool)> {
    let sql = format!(
        "SELECT kind, item_id, saved_at FROM ( \
           SELECT 'reminder' AS kind, r.id AS item_id, r.remind_at AS due_at, r.created_at AS saved_at \
           FROM reminders r WHERE r.user_id = $1 AND r.status IN ('pending', 'fired') \
           UNION ALL \
           SELECT 'saved', f.message_id, NULL, f.created_at FROM message_favorites f \
           JOIN messages m ON m.id = f.message_id JOIN rooms r ON r.id = m.room_id \
           LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = $1 \
           WHERE f.user_id = $1 AND r.org_id = $2 AND {} \
         ) later \
         ORDER BY CASE WHEN due_at IS NULL THEN 1 ELSE 0 END {asc}, due_at {asc}, saved_at {desc}, item_id {asc} \
         LIMIT {} OFFSET {}",
        access::readable_sql(viewer),
        window.fetch_limit(),
        window.offset,
        asc = window.sql_order(Order::Asc),
        desc = window.sql_order(Order::Desc),
    );
    let rows = store.db.query_all_raw(store.stmt(&sql, vec![viewer.id.into(), viewer.org_id.into()])).await?;
    let mut order = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("", "kind")?;
        let id: Uuid = row.try_get("", "item_id")?;
        let saved_at: DateTime<Utc> = row.try_get("", "saved_at")?;
        order.push((kind == "reminder", id, saved_at));
    }
    let (order, more) = window.split(order);
    let reminder_ids = order.iter().filter(|(reminder, ..)| *reminder).map(|(_, id, _)| *id);
    let mut reminders: HashMap<Uuid, reminders::Model> = reminders::Entity::find()
        .filter(reminders::Column::UserId.eq(viewer.id))
        .filter(reminders::Column::Id.is_in(reminder_ids))
        .all(&store.db)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let message_ids: Vec<Uuid> =
        order.iter().filter(|(reminder, ..)| !reminder).map(|(_, id, _)| *id).collect();
    let mut saved: HashMap<Uuid, MessageRecord> = messages::by_ids(store, viewer.org_id, &message_ids)
        .await?
        .into_iter()
        .map(|message| (message.id, message))
        .collect();
    let entries = order
        .into_iter()
        .filter_map(|(reminder, id, saved_at)| match reminder {
            true => reminders.remove(&id).map(LaterEntry::Reminder),
            false => saved.remove(&id).map(|message| LaterEntry::Saved { message, saved_at }),
        })
        .collect();
    Ok((entries, more))
}

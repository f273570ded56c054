//! Reading one page of the Later list: one statement over both sources for the order (paged
//! by each item's place, so completing a reminder or forgetting a message while paging skips
//! nothing), then one per source for the rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, Value};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::db::Store;
use crate::error::ApiResult;
use crate::messages::{MessageRecord, service as messages};
use crate::paging::Keyset;
use crate::rooms::access;
use entity::reminders;

/// One item of the list.
pub enum LaterEntry {
    Reminder(reminders::Model),
    Saved { message: MessageRecord, saved_at: DateTime<Utc> },
}

/// Where an item stands in the list: reminders (with `due_at`) by due time, then saved
/// messages; either by when it was set aside, newest first, then by id. Times are the ones
/// the database holds (see `paging::TimeKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaterKey {
    pub due_at: Option<DateTime<Utc>>,
    pub saved_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of the viewer's Later list beyond an item's place (which stays put when items
/// are added, done or forgotten around it), and whether more lie beyond the page. Saved
/// messages the viewer can no longer read drop out, as in `viewer.favoriteMessages`.
pub async fn page(
    store: &Store,
    viewer: &Viewer,
    page: Keyset<LaterKey>,
) -> ApiResult<(Vec<(LaterKey, LaterEntry)>, bool)> {
    let mut values: Vec<Value> = vec![viewer.id.into(), viewer.org_id.into()];
    // The order's terms run both ways (due time up, saved time down), so "beyond" is written
    // out per section rather than as one row comparison.
    let (up, down) = (page.sql_beyond(Order::Asc), page.sql_beyond(Order::Desc));
    let beyond = match page.cursor {
        None => String::new(),
        Some(LaterKey { due_at: Some(due_at), saved_at, id }) => {
            values.extend([due_at.into(), saved_at.into(), id.into()]);
            let saved_after = if page.window.from_end { "" } else { " OR section = 1" };
            format!(
                "WHERE (section = 0 AND (due_at {up} $3 OR (due_at = $3 AND (saved_at, item_id) {down} ($4, $5))))\
                 {saved_after}"
            )
        }
        Some(LaterKey { due_at: None, saved_at, id }) => {
            values.extend([saved_at.into(), id.into()]);
            let reminders_before = if page.window.from_end { " OR section = 0" } else { "" };
            format!("WHERE (section = 1 AND (saved_at, item_id) {down} ($3, $4)){reminders_before}")
        }
    };
    let sql = format!(
        "SELECT kind, item_id, due_at, saved_at FROM ( \
           SELECT 'reminder' AS kind, 0 AS section, r.id AS item_id, r.remind_at AS due_at, \
             r.created_at AS saved_at \
           FROM reminders r WHERE r.user_id = $1 AND r.status IN ('pending', 'fired') \
           UNION ALL \
           SELECT 'saved', 1, f.message_id, NULL, f.created_at FROM message_favorites f \
           JOIN messages m ON m.id = f.message_id JOIN rooms r ON r.id = m.room_id \
           LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = $1 \
           WHERE f.user_id = $1 AND r.org_id = $2 AND {} \
         ) later {beyond} \
         ORDER BY section {up_order}, due_at {up_order}, saved_at {down_order}, item_id {down_order} \
         LIMIT {}",
        access::readable_sql(viewer),
        page.window.fetch_limit(),
        up_order = page.window.sql_order(Order::Asc),
        down_order = page.window.sql_order(Order::Desc),
    );
    let rows = store.db.query_all_raw(store.stmt(&sql, values)).await?;
    let mut order = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("", "kind")?;
        let key = LaterKey {
            due_at: row.try_get("", "due_at")?,
            saved_at: row.try_get("", "saved_at")?,
            id: row.try_get("", "item_id")?,
        };
        order.push((kind == "reminder", key));
    }
    let (order, more) = page.window.split(order);
    let reminder_ids = order.iter().filter(|(reminder, _)| *reminder).map(|(_, key)| key.id);
    let mut reminders: HashMap<Uuid, reminders::Model> = reminders::Entity::find()
        .filter(reminders::Column::UserId.eq(viewer.id))
        .filter(reminders::Column::Id.is_in(reminder_ids))
        .all(&store.db)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let message_ids: Vec<Uuid> =
        order.iter().filter(|(reminder, _)| !reminder).map(|(_, key)| key.id).collect();
    let mut saved: HashMap<Uuid, MessageRecord> = messages::by_ids(store, viewer.org_id, &message_ids)
        .await?
        .into_iter()
        .map(|message| (message.id, message))
        .collect();
    let entries = order
        .into_iter()
        .filter_map(|(reminder, key)| {
            let entry = match reminder {
                true => reminders.remove(&key.id).map(LaterEntry::Reminder),
                false => {
                    saved.remove(&key.id).map(|message| LaterEntry::Saved { message, saved_at: key.saved_at })
                }
            };
            Some((key, entry?))
        })
        .collect();
    Ok((entries, more))
}

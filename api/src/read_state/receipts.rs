//! Read receipts for others: how far each member who shares them has read a room. A receipt
//! is the member's watermark (`room_members.last_read_seq`, `last_read_at`); nothing else is
//! stored. Members who turned `shareReadReceipts` off are left out of every answer and event,
//! and a member who has read nothing yet has no receipt.

use chrono::{DateTime, Utc};
use futures_util::stream::{self, BoxStream, StreamExt};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::bus::Event;
use crate::db::Store;
use crate::error::ApiResult;
use crate::rooms::watch::RoomEvents;
use crate::state::AppState;

/// How far one member has read one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub room_id: Uuid,
    pub user_id: Uuid,
    pub last_read_seq: i64,
    pub last_read_at: Option<DateTime<Utc>>,
}

/// The receipts of these rooms, at most `limit` per room, furthest read first, in one query
/// (a window per room, so a channel of thousands reads only its first `limit`).
pub async fn receipts(store: &Store, room_ids: &[Uuid], limit: u64) -> ApiResult<Vec<Receipt>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    let (condition, mut values) = store.in_ids("rm.room_id", room_ids, 1);
    values.push(Value::from(limit as i64));
    let rows = store
        .db
        .query_all_raw(store.stmt(
            &format!(
                "SELECT room_id, user_id, last_read_seq, last_read_at FROM ( \
                   SELECT rm.room_id, rm.user_id, rm.last_read_seq, rm.last_read_at, ROW_NUMBER() OVER \
                     (PARTITION BY rm.room_id ORDER BY rm.last_read_seq DESC, rm.user_id) AS n \
                   FROM room_members rm JOIN users u ON u.id = rm.user_id \
                   WHERE {condition} AND u.share_read_receipts AND rm.last_read_seq > 0 \
                 ) ranked WHERE n <= ${} ORDER BY room_id, n",
                values.len()
            ),
            values,
        ))
        .await?;
    let mut receipts = Vec::with_capacity(rows.len());
    for row in rows {
        receipts.push(Receipt {
            room_id: row.try_get("", "room_id")?,
            user_id: row.try_get("", "user_id")?,
            last_read_seq: row.try_get("", "last_read_seq")?,
            last_read_at: row.try_get("", "last_read_at")?,
        });
    }
    Ok(receipts)
}

/// The `readReceipt(roomId)` feed: other members' receipts as their watermarks move, until
/// the viewer leaves the room.
pub async fn receipt_changes(
    state: AppState,
    viewer: Viewer,
    room_id: Uuid,
) -> ApiResult<BoxStream<'static, Receipt>> {
    let events = RoomEvents::open(state, viewer, room_id).await?;
    Ok(stream::unfold(events, |mut events| async move {
        loop {
            let envelope = events.next().await?;
            if let Event::ReadReceipt { room_id, user_id, last_read_seq, last_read_at } = envelope.event
                && user_id != events.viewer_id()
            {
                let receipt = Receipt { room_id, user_id, last_read_seq, last_read_at: Some(last_read_at) };
                return Some((receipt, events));
            }
        }
    })
    .boxed())
}

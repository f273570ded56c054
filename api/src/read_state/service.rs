//! Moving watermarks and computing unread counts.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::bus::{Event, EventBus, Topic};
use crate::db::Store;
use crate::error::{ApiError, ApiResult};
use crate::rooms::access;

/// A member's read position in one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPosition {
    pub room_id: Uuid,
    pub last_read_seq: i64,
    /// The room's newest seq when this was read.
    pub latest_seq: i64,
    /// Seqs of deleted messages above the watermark.
    pub deleted_above: Vec<i64>,
}

impl ReadPosition {
    pub fn unread(&self) -> i64 {
        (self.latest_seq - self.last_read_seq - self.deleted_above.len() as i64).max(0)
    }
}

#[tracing::instrument(skip(store, bus), fields(viewer = %viewer.id))]
pub async fn mark_read(
    store: &Store,
    bus: &EventBus,
    viewer: &Viewer,
    room_id: Uuid,
    seq: Option<i64>,
) -> ApiResult<ReadPosition> {
    let (room, _) = access::readable(store, viewer, room_id).await?.require_member()?;
    let target = match seq {
        Some(seq) if seq < 0 => return Err(ApiError::bad_input("seq must be ≥ 0")),
        Some(seq) => seq.min(room.last_seq),
        None => room.last_seq,
    };
    // Never backwards: only `mark_unread` moves a watermark down.
    set_watermark(store, bus, viewer, room_id, target, "last_read_seq < $3").await
}

#[tracing::instrument(skip(store, bus), fields(viewer = %viewer.id))]
pub async fn mark_unread(
    store: &Store,
    bus: &EventBus,
    viewer: &Viewer,
    room_id: Uuid,
    seq: i64,
) -> ApiResult<ReadPosition> {
    let (room, _) = access::readable(store, viewer, room_id).await?.require_member()?;
    if seq < 1 || seq > room.last_seq {
        return Err(ApiError::bad_input("seq must be the seq of a message in the room"));
    }
    set_watermark(store, bus, viewer, room_id, seq - 1, "last_read_seq <> $3").await
}

async fn set_watermark(
    store: &Store,
    bus: &EventBus,
    viewer: &Viewer,
    room_id: Uuid,
    seq: i64,
    only_if: &str,
) -> ApiResult<ReadPosition> {
    let tx = store.begin_write().await?;
    let changed = tx
        .execute_raw(store.stmt(
            &format!(
                "UPDATE room_members SET last_read_seq = $3, last_read_at = $4 \
                 WHERE room_id = $1 AND user_id = $2 AND {only_if}"
            ),
            vec![room_id.into(), viewer.id.into(), seq.into(), Utc::now().into()],
        ))
        .await?
        .rows_affected();
    tx.commit().await?;
    if changed > 0 {
        let event = Event::ReadStateChanged { room_id, last_read_seq: seq };
        bus.publish(Topic::User(viewer.id), event).await;
    }
    positions(store, viewer.id, Some(&[room_id])).await?.pop().ok_or_else(|| ApiError::not_found("room"))
}

/// Read positions of a user in the given rooms (all their rooms when `None`), in two queries
/// whatever the number of rooms. Rooms the user is not a member of are absent.
pub async fn positions(
    store: &Store,
    user_id: Uuid,
    room_ids: Option<&[Uuid]>,
) -> ApiResult<Vec<ReadPosition>> {
    let mut values: Vec<Value> = vec![user_id.into()];
    let room_filter = match room_ids {
        Some([]) => return Ok(Vec::new()),
        Some(ids) => {
            let placeholders: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
            values.extend(ids.iter().map(|id| Value::from(*id)));
            format!("AND rm.room_id IN ({})", placeholders.join(","))
        }
        None => String::new(),
    };
    let rows = store
        .db
        .query_all_raw(store.stmt(
            &format!(
                "SELECT rm.room_id, rm.last_read_seq, r.last_seq FROM room_members rm \
                 JOIN rooms r ON r.id = rm.room_id \
                 WHERE rm.user_id = $1 AND r.deleted_at IS NULL {room_filter}"
            ),
            values.clone(),
        ))
        .await?;
    let deleted_rows = store
        .db
        .query_all_raw(store.stmt(
            &format!(
                "SELECT d.room_id, d.seq FROM messages d \
                 JOIN room_members rm ON rm.room_id = d.room_id AND rm.user_id = $1 \
                 WHERE d.deleted_at IS NOT NULL AND d.seq > rm.last_read_seq {room_filter}"
            ),
            values,
        ))
        .await?;
    let mut deleted: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for row in deleted_rows {
        deleted.entry(row.try_get("", "room_id")?).or_default().push(row.try_get("", "seq")?);
    }
    rows.into_iter()
        .map(|row| {
            let room_id: Uuid = row.try_get("", "room_id")?;
            Ok(ReadPosition {
                room_id,
                last_read_seq: row.try_get("", "last_read_seq")?,
                latest_seq: row.try_get("", "last_seq")?,
                deleted_above: deleted.remove(&room_id).unwrap_or_default(),
            })
        })
        .collect()
}

/// Unread counts of the viewer's rooms among `room_ids`, only those above zero.
pub async fn unread_counts(
    store: &Store,
    viewer: &Viewer,
    room_ids: &[Uuid],
) -> ApiResult<Vec<ReadPosition>> {
    let mut positions = positions(store, viewer.id, Some(room_ids)).await?;
    positions.retain(|p| p.unread() > 0);
    Ok(positions)
}

/// The viewer's unread messages across all their rooms, in one query.
pub async fn unread_total(store: &Store, viewer: &Viewer) -> ApiResult<i64> {
    let row = store
        .db
        .query_one_raw(store.stmt(
            "SELECT CAST(COALESCE(SUM(r.last_seq - rm.last_read_seq - (SELECT COUNT(*) FROM messages d \
               WHERE d.room_id = rm.room_id AND d.deleted_at IS NOT NULL AND d.seq > rm.last_read_seq)), 0) AS BIGINT) AS total \
             FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
             WHERE rm.user_id = $1 AND r.deleted_at IS NULL",
            vec![viewer.id.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get("", "total")?,
        None => 0,
    })
}

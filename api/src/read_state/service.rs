//! Moving watermarks and computing unread counts.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::bus::{Event, Topic};
use crate::db::{self, Store};
use crate::error::{ApiError, ApiResult};
use crate::rooms::access;
use crate::state::Ctx;

/// A member's unread count as SQL over `rooms` and `room_members`: live messages above the
/// watermark. The subquery reads the partial index over deleted rows only.
/// The redundant `d.seq <= rooms.last_seq` bounds the planner's estimate when `messages`
/// has no statistics yet (without it, it expects most rows to be deleted and scans them).
pub const UNREAD_COUNT_SQL: &str = "(rooms.last_seq - room_members.last_read_seq - \
    (SELECT COUNT(*) FROM messages d WHERE d.room_id = rooms.id AND d.deleted_at IS NOT NULL \
    AND d.seq > room_members.last_read_seq AND d.seq <= rooms.last_seq))";

/// A member's read position in one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPosition {
    pub room_id: Uuid,
    pub last_read_seq: i64,
    /// The room's newest seq when this was read.
    pub latest_seq: i64,
    /// Seqs of deleted messages above the watermark.
    pub deleted_above: Vec<i64>,
    /// Seqs of live messages above the watermark that mention the viewer.
    pub mentioned_above: Vec<i64>,
    /// The viewer muted the room until then (`muteRoom`).
    pub muted_until: Option<DateTime<Utc>>,
    /// Archived: out of the viewer's room list, so out of their unread total.
    pub archived: bool,
}

impl ReadPosition {
    pub fn unread(&self) -> i64 {
        (self.latest_seq - self.last_read_seq - self.deleted_above.len() as i64).max(0)
    }

    pub fn mention_count(&self) -> i64 {
        self.mentioned_above.len() as i64
    }

    /// The watermark moved up to `seq`: what lies at or below it is read.
    pub fn read_to(&mut self, seq: i64) {
        self.last_read_seq = self.last_read_seq.max(seq);
        let read = self.last_read_seq;
        self.deleted_above.retain(|s| *s > read);
        self.mentioned_above.retain(|s| *s > read);
    }

    pub fn is_muted(&self) -> bool {
        self.muted_until.is_some_and(|until| until > Utc::now())
    }
}

#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn mark_read(cx: &Ctx<'_>, room_id: Uuid, seq: Option<i64>) -> ApiResult<ReadPosition> {
    let (room, _) = access::readable(&cx.app.store, cx.viewer, room_id).await?.require_member()?;
    let target = match seq {
        Some(seq) if seq < 0 => return Err(ApiError::bad_input("seq must be ≥ 0")),
        Some(seq) => seq.min(room.last_seq),
        None => room.last_seq,
    };
    // Never backwards: only `mark_unread` moves a watermark down.
    set_watermark(cx, room_id, target, "last_read_seq < $3").await
}

#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn mark_unread(cx: &Ctx<'_>, room_id: Uuid, seq: i64) -> ApiResult<ReadPosition> {
    let (room, _) = access::readable(&cx.app.store, cx.viewer, room_id).await?.require_member()?;
    if seq < 1 || seq > room.last_seq {
        return Err(ApiError::bad_input("seq must be the seq of a message in the room"));
    }
    set_watermark(cx, room_id, seq - 1, "last_read_seq <> $3").await
}

async fn set_watermark(cx: &Ctx<'_>, room_id: Uuid, seq: i64, only_if: &str) -> ApiResult<ReadPosition> {
    let (store, bus, viewer) = (&cx.app.store, &cx.app.bus, cx.viewer);
    // Read before the write (the directory's row: every instance forgets it when the user
    // changes the setting): failing after the commit would leave the receipt unsent for good,
    // as a retry finds nothing left to change.
    let shares_receipts =
        cx.app.directory.user(store, viewer.id).await?.is_some_and(|u| u.share_read_receipts);
    let now = db::now();
    let tx = store.begin_write().await?;
    let changed = tx
        .execute_raw(store.stmt(
            &format!(
                "UPDATE room_members SET last_read_seq = $3, last_read_at = $4 \
                 WHERE room_id = $1 AND user_id = $2 AND {only_if}"
            ),
            vec![room_id.into(), viewer.id.into(), seq.into(), now.into()],
        ))
        .await?
        .rows_affected();
    tx.commit().await?;
    if changed > 0 {
        let event = Event::ReadStateChanged { room_id, last_read_seq: seq };
        bus.publish(Topic::User(viewer.id), event).await;
        if shares_receipts {
            let receipt =
                Event::ReadReceipt { room_id, user_id: viewer.id, last_read_seq: seq, last_read_at: now };
            bus.publish(Topic::Signals(room_id), receipt).await;
        }
    }
    positions(store, viewer.id, Some(&[room_id])).await?.pop().ok_or_else(|| ApiError::not_found("room"))
}

/// Read positions of a user in the given rooms (all their rooms when `None`), in one query
/// (one snapshot) whatever the number of rooms. Rooms the user is not a member of are
/// absent. The deleted seqs above the watermark are one correlated subquery per room, which
/// can only probe the partial index over deleted rows (a join could be planned as a scan of
/// every message when statistics are missing), skipped for rooms read to the end.
pub async fn positions(
    store: &Store,
    user_id: Uuid,
    room_ids: Option<&[Uuid]>,
) -> ApiResult<Vec<ReadPosition>> {
    let mut values: Vec<Value> = vec![user_id.into()];
    let room_filter = match room_ids {
        Some([]) => return Ok(Vec::new()),
        Some(ids) => {
            let (condition, ids) = store.in_ids("rm.room_id", ids, 2);
            values.extend(ids);
            format!("AND {condition}")
        }
        None => String::new(),
    };
    let (list, mention_list) = match store.backend() {
        sea_orm::DatabaseBackend::Postgres => {
            ("string_agg(d.seq::text, ',')", "string_agg(x.seq::text, ',')")
        }
        _ => ("group_concat(d.seq, ',')", "group_concat(x.seq, ',')"),
    };
    let rows = store
        .db
        .query_all_raw(store.stmt(
            &format!(
                "SELECT rm.room_id, rm.last_read_seq, rm.muted_until, r.last_seq, r.archived_at, \
                   CASE WHEN rm.last_read_seq >= r.last_seq THEN NULL ELSE \
                     (SELECT {list} FROM messages d WHERE d.room_id = rm.room_id \
                      AND d.deleted_at IS NOT NULL AND d.seq > rm.last_read_seq AND d.seq <= r.last_seq) \
                   END AS deleted_seqs, \
                   CASE WHEN rm.last_read_seq >= r.last_seq THEN NULL ELSE \
                     (SELECT {mention_list} FROM mentions x WHERE x.user_id = rm.user_id \
                      AND x.room_id = rm.room_id AND x.seq > rm.last_read_seq) \
                   END AS mention_seqs \
                 FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
                 WHERE rm.user_id = $1 AND r.deleted_at IS NULL {room_filter}"
            ),
            values,
        ))
        .await?;
    let mut positions = Vec::with_capacity(rows.len());
    for row in rows {
        let deleted: Option<String> = row.try_get("", "deleted_seqs")?;
        let mentioned: Option<String> = row.try_get("", "mention_seqs")?;
        positions.push(ReadPosition {
            room_id: row.try_get("", "room_id")?,
            last_read_seq: row.try_get("", "last_read_seq")?,
            latest_seq: row.try_get("", "last_seq")?,
            deleted_above: seqs(deleted.as_deref()),
            mentioned_above: seqs(mentioned.as_deref()),
            muted_until: row.try_get("", "muted_until")?,
            archived: row.try_get::<Option<DateTime<Utc>>>("", "archived_at")?.is_some(),
        });
    }
    Ok(positions)
}

/// A comma-separated list of seqs, as the aggregates above return it.
fn seqs(list: Option<&str>) -> Vec<i64> {
    list.iter().flat_map(|list| list.split(',')).filter_map(|s| s.parse().ok()).collect()
}

/// The newest seq of each room.
pub async fn latest_seqs(store: &Store, room_ids: &[Uuid]) -> ApiResult<Vec<(Uuid, i64)>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    let (condition, values) = store.in_ids("id", room_ids, 1);
    let rows = store
        .db
        .query_all_raw(store.stmt(&format!("SELECT id, last_seq FROM rooms WHERE {condition}"), values))
        .await?;
    rows.iter().map(|row| Ok((row.try_get("", "id")?, row.try_get("", "last_seq")?))).collect()
}

/// One room's unread count, computed at its newest seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomUnread {
    pub room_id: Uuid,
    pub unread_count: i64,
    pub seq: i64,
}

/// Unread counts of the viewer's rooms among `room_ids`, only those above zero, in one query.
/// Counts only, unlike [`positions`]: rooms read to the end are left out before any
/// subquery runs, and the rest cost one count over the partial index of deleted rows (no
/// lists of seqs, no mentions).
pub async fn unread_counts(store: &Store, viewer: &Viewer, room_ids: &[Uuid]) -> ApiResult<Vec<RoomUnread>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    let (condition, ids) = store.in_ids("room_members.room_id", room_ids, 2);
    let mut values: Vec<Value> = vec![viewer.id.into()];
    values.extend(ids);
    let rows = store
        .db
        .query_all_raw(store.stmt(
            &format!(
                "SELECT room_members.room_id, rooms.last_seq, {UNREAD_COUNT_SQL} AS unread \
                 FROM room_members JOIN rooms ON rooms.id = room_members.room_id \
                 WHERE room_members.user_id = $1 AND rooms.deleted_at IS NULL \
                 AND room_members.last_read_seq < rooms.last_seq AND {condition}"
            ),
            values,
        ))
        .await?;
    // By position: a column looked up by name is hashed, once per row and column.
    let mut counts = Vec::with_capacity(rows.len());
    for row in rows {
        let unread_count: i64 = row.try_get_by_index(2)?;
        if unread_count > 0 {
            counts.push(RoomUnread {
                room_id: row.try_get_by_index(0)?,
                unread_count,
                seq: row.try_get_by_index(1)?,
            });
        }
    }
    Ok(counts)
}

/// The viewer's unread messages across the rooms their room list shows (not archived ones,
/// which a badge would otherwise count until the viewer found and read them), in one query.
pub async fn unread_total(store: &Store, viewer: &Viewer) -> ApiResult<i64> {
    let row = store
        .db
        .query_one_raw(store.stmt(
            &format!(
                "SELECT CAST(COALESCE(SUM({UNREAD_COUNT_SQL}), 0) AS BIGINT) AS total \
                 FROM room_members JOIN rooms ON rooms.id = room_members.room_id \
                 WHERE room_members.user_id = $1 AND rooms.deleted_at IS NULL AND rooms.archived_at IS NULL"
            ),
            vec![viewer.id.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get("", "total")?,
        None => 0,
    })
}

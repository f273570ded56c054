//! Editing, deleting and paging messages (sending is `send.rs`).

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Value};
use uuid::Uuid;

use super::input::MessageBody;
use super::record::MessageRecord;
use crate::auth::Viewer;
use crate::bus::{Event, MessagePayload, Topic};
use crate::db::{self, Store, columns};
use crate::error::{ApiError, ApiResult, found};
use crate::mentions::parse::parse;
use crate::mentions::service as mentions;
use crate::paging::{fetch_limit, split_page};
use crate::rooms::access::{self, RoomAccess};
use crate::state::Ctx;
use entity::messages;

/// A message in a room the viewer may read, with the viewer's access to that room.
pub async fn readable(store: &Store, viewer: &Viewer, id: Uuid) -> ApiResult<(messages::Model, RoomAccess)> {
    let message = messages::Entity::find_by_id(id)
        .filter(messages::Column::OrgId.eq(viewer.org_id))
        .one(&store.db)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    let access = found(access::readable(store, viewer, message.room_id).await)?
        .ok_or_else(|| ApiError::not_found("message"))?;
    Ok((message, access))
}

#[tracing::instrument(skip(cx, body), fields(viewer = %cx.viewer.id))]
pub async fn edit(cx: &Ctx<'_>, id: Uuid, body: MessageBody) -> ApiResult<MessageRecord> {
    let (viewer, limits) = (cx.viewer, &cx.app.limits);
    let (message, access) = readable(&cx.app.store, viewer, id).await?;
    if message.author_user_id != Some(viewer.id) {
        return Err(ApiError::forbidden("only the author may edit a message"));
    }
    if message.deleted_at.is_some() {
        return Err(ApiError::bad_input("a deleted message cannot be edited"));
    }
    if Utc::now() - message.created_at > limits.edit_window() {
        return Err(ApiError::forbidden("the edit window of this message has passed"));
    }
    access.require_writable()?;
    access.require_member()?;
    let (before, after) = (parse(&message.body), parse(body.as_str()));
    let mentioned =
        mentions::resolve_edit(cx.app, (message.id, message.room_id), viewer.id, &before, &after).await?;
    save_change(cx, message, Change::Edit(body.into_string()), mentioned).await
}

#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn delete(cx: &Ctx<'_>, id: Uuid) -> ApiResult<MessageRecord> {
    let viewer = cx.viewer;
    let (message, access) = readable(&cx.app.store, viewer, id).await?;
    if message.author_user_id != Some(viewer.id) && !viewer.is_admin() {
        return Err(ApiError::forbidden("only the author or an admin may delete a message"));
    }
    if message.deleted_at.is_some() {
        return Ok(message.into());
    }
    access.require_writable()?;
    save_change(cx, message, Change::Delete, Vec::new()).await
}

enum Change {
    Edit(String),
    Delete,
}

/// Stores an edit or deletion with whom the message now mentions (nobody once deleted), then
/// announces it to the room.
async fn save_change(
    cx: &Ctx<'_>,
    message: messages::Model,
    change: Change,
    mentioned: Vec<Uuid>,
) -> ApiResult<MessageRecord> {
    let store = &cx.app.store;
    let tx = store.begin_write().await?;
    // Stamped once the write may go ahead: `messageUpdated`'s reread after a resync allows
    // a change 2 s between its moment and its commit, and waiting for the pool or SQLite's
    // write gate is not part of it.
    let now = db::now();
    let mut active: messages::ActiveModel = message.into();
    match change {
        Change::Edit(body) => {
            active.body = Set(body);
            active.edited_at = Set(Some(now));
        }
        Change::Delete => active.deleted_at = Set(Some(now)),
    }
    let updated = active.update(&tx.txn).await?;
    // An edit that waited for a deletion's lock finds the message deleted: it mentions nobody.
    let mentioned = if updated.deleted_at.is_some() { Vec::new() } else { mentioned };
    let message = (updated.id, updated.room_id, updated.seq);
    mentions::write(&tx.txn, store, message, &mentioned, true, now).await?;
    tx.commit().await?;
    let record = MessageRecord::from(updated);
    let event = Event::MessageUpdated { message: Box::new(MessagePayload::from(&record)), mentioned };
    cx.app.bus.publish(Topic::Room(record.room_id), event).await;
    Ok(record)
}

/// Which slice of a room's history to read; seqs are the cursors.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    /// Oldest first, after a seq.
    After { after: i64, limit: u64 },
    /// Newest first (returned oldest first), before a seq.
    Before { before: i64, limit: u64 },
    /// Centred on a seq, for jumping to a message.
    Around { seq: i64, limit: u64 },
}

/// A page of messages in seq order, with whether older and newer messages exist.
pub struct MessagePage {
    pub messages: Vec<MessageRecord>,
    pub has_older: bool,
    pub has_newer: bool,
}

pub async fn page(store: &Store, viewer: &Viewer, room_id: Uuid, page: Page) -> ApiResult<MessagePage> {
    let access = access::readable(store, viewer, room_id).await?;
    let last_seq = access.room.last_seq;
    let (messages, has_older, has_newer) = match page {
        Page::After { after, limit } => {
            let (rows, more) =
                split_page(range(store, room_id, after, i64::MAX, fetch_limit(limit), true).await?, limit);
            (rows, after > 0, more)
        }
        Page::Before { before, limit } => {
            let (mut rows, more) =
                split_page(range(store, room_id, 0, before, fetch_limit(limit), false).await?, limit);
            rows.reverse();
            (rows, more, before <= last_seq)
        }
        Page::Around { seq, limit } => {
            let older = limit / 2;
            let (mut before, has_older) =
                split_page(range(store, room_id, 0, seq, fetch_limit(older), false).await?, older);
            before.reverse();
            let newer = limit - older;
            let (after, has_newer) =
                split_page(range(store, room_id, seq - 1, i64::MAX, fetch_limit(newer), true).await?, newer);
            before.extend(after);
            (before, has_older, has_newer)
        }
    };
    Ok(MessagePage {
        messages: messages.into_iter().map(MessageRecord::from).collect(),
        has_older,
        has_newer,
    })
}

/// The next `limit` messages of a room after seq `after`, ascending, while `viewer` may read
/// it (`access::readable_sql`, in the same statement): a feed catching up from the database
/// stops at a removal, whenever it hears of the removal itself.
pub async fn readable_after(
    store: &Store,
    viewer: &Viewer,
    room_id: Uuid,
    after: i64,
    limit: u64,
) -> ApiResult<Vec<messages::Model>> {
    let sql = format!(
        "SELECT {} FROM messages m JOIN rooms r ON r.id = m.room_id \
         LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = $1 \
         WHERE m.room_id = $2 AND m.seq > $3 AND r.org_id = $4 AND {} ORDER BY m.seq LIMIT {limit}",
        columns::<messages::Entity>(Some("m")),
        access::readable_sql(viewer),
    );
    let values: Vec<Value> = vec![viewer.id.into(), room_id.into(), after.into(), viewer.org_id.into()];
    Ok(messages::Entity::find().from_raw_sql(store.stmt(&sql, values)).all(&store.db).await?)
}

/// Where a reread of changed messages stands: the moment of a change, then a message id.
pub type ChangeCursor = (DateTime<Utc>, Uuid);

/// The next `limit` messages of `room_ids` edited or deleted after `cursor`, ordered by the
/// moment of their last change (then id), in rooms the viewer may still read.
pub async fn changed_after(
    store: &Store,
    viewer: &Viewer,
    room_ids: &[Uuid],
    cursor: ChangeCursor,
    limit: u64,
) -> ApiResult<Vec<messages::Model>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    // The literal `edited_at IS NOT NULL OR deleted_at IS NOT NULL` lets both backends use
    // the partial index `messages_room_changed`.
    let (rooms, ids) = store.in_ids("m.room_id", room_ids, 5);
    let sql = format!(
        "SELECT {} FROM messages m JOIN rooms r ON r.id = m.room_id \
         LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = $1 \
         WHERE r.org_id = $2 AND {} AND {rooms} \
         AND (m.edited_at IS NOT NULL OR m.deleted_at IS NOT NULL) \
         AND (COALESCE(m.deleted_at, m.edited_at), m.id) > ($3, $4) \
         ORDER BY COALESCE(m.deleted_at, m.edited_at), m.id LIMIT {limit}",
        columns::<messages::Entity>(Some("m")),
        access::readable_sql(viewer),
    );
    let mut values: Vec<Value> =
        vec![viewer.id.into(), viewer.org_id.into(), cursor.0.into(), cursor.1.into()];
    values.extend(ids);
    Ok(messages::Entity::find().from_raw_sql(store.stmt(&sql, values)).all(&store.db).await?)
}

/// Messages with `after < seq < before`, ascending or descending.
pub async fn range(
    store: &Store,
    room_id: Uuid,
    after: i64,
    before: i64,
    limit: u64,
    ascending: bool,
) -> ApiResult<Vec<messages::Model>> {
    let query = messages::Entity::find()
        .filter(messages::Column::RoomId.eq(room_id))
        .filter(messages::Column::Seq.gt(after))
        .filter(messages::Column::Seq.lt(before));
    let query = if ascending {
        query.order_by_asc(messages::Column::Seq)
    } else {
        query.order_by_desc(messages::Column::Seq)
    };
    Ok(query.limit(limit).all(&store.db).await?)
}

/// Messages by id, scoped to an organisation (for loaders).
pub async fn by_ids(store: &Store, org_id: Uuid, ids: &[Uuid]) -> ApiResult<Vec<MessageRecord>> {
    let rows = messages::Entity::find()
        .filter(messages::Column::OrgId.eq(org_id))
        .filter(messages::Column::Id.is_in(ids.iter().copied()))
        .all(&store.db)
        .await?;
    Ok(rows.into_iter().map(MessageRecord::from).collect())
}

/// The newest message of each room, in one query.
pub async fn latest_of_rooms(store: &Store, room_ids: &[Uuid]) -> ApiResult<Vec<MessageRecord>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = (1..=room_ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT {} FROM messages m JOIN rooms r ON r.id = m.room_id AND m.seq = r.last_seq \
         WHERE r.id IN ({placeholders})",
        columns::<messages::Entity>(Some("m"))
    );
    let values: Vec<Value> = room_ids.iter().map(|id| (*id).into()).collect();
    let rows = messages::Entity::find().from_raw_sql(store.stmt(&sql, values)).all(&store.db).await?;
    Ok(rows.into_iter().map(MessageRecord::from).collect())
}

//! Sending, editing, deleting and paging messages.
//!
//! Seq assignment: `UPDATE rooms SET last_seq = last_seq + 1 … RETURNING last_seq` inside the
//! inserting transaction. The row lock on the room serialises concurrent senders, so seqs are
//! gap-free and commit in order; a rolled-back insert rolls its seq back too.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    Value,
};
use uuid::Uuid;

use super::record::{Attachment, MessageRecord};
use crate::auth::Viewer;
use crate::bus::{Event, EventBus, Topic};
use crate::config::Limits;
use crate::db::Store;
use crate::error::{ApiError, ApiResult, found};
use crate::rooms::access::{self, RoomAccess};
use entity::enums::{MessageSource, SenderRole};
use entity::messages;

const MAX_CLIENT_ID_CHARS: usize = 200;

pub struct NewMessage {
    pub room_id: Uuid,
    pub body: String,
    pub client_id: Option<String>,
    pub reply_to_id: Option<Uuid>,
    pub attachments: Vec<Attachment>,
}

/// A body within the limits, trimmed.
pub fn message_body(raw: &str, limits: &Limits) -> ApiResult<String> {
    let body = raw.trim();
    match body.chars().count() {
        0 => Err(ApiError::bad_input("a message cannot be empty")),
        n if n > limits.max_message_chars => {
            Err(ApiError::bad_input(format!("a message has at most {} characters", limits.max_message_chars)))
        }
        _ => Ok(body.to_owned()),
    }
}

fn validate_new(new: &NewMessage, limits: &Limits) -> ApiResult<String> {
    let body = message_body(&new.body, limits)?;
    if new.attachments.len() > limits.max_attachments {
        return Err(ApiError::bad_input(format!(
            "a message has at most {} attachments",
            limits.max_attachments
        )));
    }
    for a in &new.attachments {
        if a.name.trim().is_empty() || a.url.trim().is_empty() || a.size < 0 {
            return Err(ApiError::bad_input("an attachment needs a name, a url and a size ≥ 0"));
        }
    }
    if let Some(client_id) = &new.client_id
        && (client_id.is_empty() || client_id.chars().count() > MAX_CLIENT_ID_CHARS)
    {
        return Err(ApiError::bad_input("a clientId has 1–200 characters"));
    }
    Ok(body)
}

#[tracing::instrument(skip(store, bus, limits, new), fields(viewer = %viewer.id, room = %new.room_id))]
pub async fn send(
    store: &Store,
    bus: &EventBus,
    limits: &Limits,
    viewer: &Viewer,
    new: NewMessage,
) -> ApiResult<MessageRecord> {
    let body = validate_new(&new, limits)?;
    let (room, _) = access::writable(store, viewer, new.room_id).await?;
    if let Some(reply_to) = new.reply_to_id {
        let parent = messages::Entity::find_by_id(reply_to).one(&store.db).await?;
        if parent.is_none_or(|p| p.room_id != room.id) {
            return Err(ApiError::not_found("message to reply to"));
        }
    }
    // No lookup of `clientId` first: the unique index decides, and a retry takes the
    // conflict path below. One statement less on every send; retries are the rare case.

    let now = Utc::now();
    let tx = store.begin_write().await?;
    let seq_row = tx
        .query_one_raw(store.stmt(
            "UPDATE rooms SET last_seq = last_seq + 1, last_message_at = $2 WHERE id = $1 RETURNING last_seq",
            vec![room.id.into(), now.into()],
        ))
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    let seq: i64 = seq_row.try_get("", "last_seq")?;
    let model = messages::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(viewer.org_id),
        room_id: Set(room.id),
        seq: Set(seq),
        author_user_id: Set(Some(viewer.id)),
        author_contact_id: Set(None),
        sender_role: Set(SenderRole::User),
        body: Set(body.clone()),
        source: Set(MessageSource::Chat),
        external_id: Set(None),
        client_id: Set(new.client_id.clone()),
        reply_to_id: Set(new.reply_to_id),
        attachments: Set(serde_json::to_value(&new.attachments).map_err(ApiError::internal)?),
        created_at: Set(now),
        edited_at: Set(None),
        deleted_at: Set(None),
    };
    let inserted = match model.insert(&tx.txn).await {
        Ok(inserted) => inserted,
        Err(err) => {
            drop(tx);
            let err = ApiError::from(err);
            // The same clientId raced in from another request or instance and won.
            if let (true, Some(client_id)) = (err.is_unique_violation(), &new.client_id)
                && let Some(existing) = find_by_client_id(store, room.id, viewer.id, client_id).await?
            {
                return same_retry(existing, &body, &new.attachments);
            }
            return Err(err);
        }
    };
    // The sender has read everything up to their own message.
    tx.execute_raw(store.stmt(
        "UPDATE room_members SET last_read_seq = $3, last_read_at = $4 \
         WHERE room_id = $1 AND user_id = $2 AND last_read_seq < $3",
        vec![room.id.into(), viewer.id.into(), seq.into(), now.into()],
    ))
    .await?;
    tx.commit().await?;

    let record = MessageRecord::from(inserted);
    metrics::counter!("parley_messages_sent_total").increment(1);
    bus.publish(Topic::Room(room.id), Event::MessageAdded { message: record.clone() }).await;
    Ok(record)
}

/// A retry returns the stored message; the same key with other content is a client bug.
fn same_retry(existing: messages::Model, body: &str, attachments: &[Attachment]) -> ApiResult<MessageRecord> {
    let stored: Vec<Attachment> = serde_json::from_value(existing.attachments.clone()).unwrap_or_default();
    if existing.body == body && stored == attachments {
        Ok(existing.into())
    } else {
        Err(ApiError::conflict("this clientId was already used for a different message"))
    }
}

async fn find_by_client_id(
    store: &Store,
    room_id: Uuid,
    author: Uuid,
    client_id: &str,
) -> ApiResult<Option<messages::Model>> {
    Ok(messages::Entity::find()
        .filter(messages::Column::RoomId.eq(room_id))
        .filter(messages::Column::AuthorUserId.eq(author))
        .filter(messages::Column::ClientId.eq(client_id))
        .one(&store.db)
        .await?)
}

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

#[tracing::instrument(skip(store, bus, limits, body), fields(viewer = %viewer.id))]
pub async fn edit(
    store: &Store,
    bus: &EventBus,
    limits: &Limits,
    viewer: &Viewer,
    id: Uuid,
    body: &str,
) -> ApiResult<MessageRecord> {
    let body = message_body(body, limits)?;
    let (message, access) = readable(store, viewer, id).await?;
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
    let mut active: messages::ActiveModel = message.into();
    active.body = Set(body);
    active.edited_at = Set(Some(Utc::now()));
    save_change(store, bus, active).await
}

#[tracing::instrument(skip(store, bus), fields(viewer = %viewer.id))]
pub async fn delete(store: &Store, bus: &EventBus, viewer: &Viewer, id: Uuid) -> ApiResult<MessageRecord> {
    let (message, access) = readable(store, viewer, id).await?;
    if message.author_user_id != Some(viewer.id) && !viewer.is_admin() {
        return Err(ApiError::forbidden("only the author or an admin may delete a message"));
    }
    if message.deleted_at.is_some() {
        return Ok(message.into());
    }
    access.require_writable()?;
    let mut active: messages::ActiveModel = message.into();
    active.deleted_at = Set(Some(Utc::now()));
    save_change(store, bus, active).await
}

/// Stores an edit or deletion, then announces it to the room.
async fn save_change(
    store: &Store,
    bus: &EventBus,
    change: messages::ActiveModel,
) -> ApiResult<MessageRecord> {
    let tx = store.begin_write().await?;
    let updated = change.update(&tx.txn).await?;
    tx.commit().await?;
    let record = MessageRecord::from(updated);
    bus.publish(Topic::Room(record.room_id), Event::MessageUpdated { message: record.clone() }).await;
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
            let mut rows = range(store, room_id, after, i64::MAX, limit + 1, true).await?;
            let more = rows.len() as u64 > limit;
            rows.truncate(limit as usize);
            (rows, after > 0, more)
        }
        Page::Before { before, limit } => {
            let mut rows = range(store, room_id, 0, before, limit + 1, false).await?;
            let more = rows.len() as u64 > limit;
            rows.truncate(limit as usize);
            rows.reverse();
            (rows, more, before <= last_seq)
        }
        Page::Around { seq, limit } => {
            let older = limit / 2;
            let mut before = range(store, room_id, 0, seq, older + 1, false).await?;
            let has_older = before.len() as u64 > older;
            before.truncate(older as usize);
            before.reverse();
            let newer = limit - older;
            let mut after = range(store, room_id, seq - 1, i64::MAX, newer + 1, true).await?;
            let has_newer = after.len() as u64 > newer;
            after.truncate(newer as usize);
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
        "SELECT m.* FROM messages m JOIN rooms r ON r.id = m.room_id AND m.seq = r.last_seq \
         WHERE r.id IN ({placeholders})"
    );
    let values: Vec<Value> = room_ids.iter().map(|id| (*id).into()).collect();
    let rows = messages::Entity::find().from_raw_sql(store.stmt(&sql, values)).all(&store.db).await?;
    Ok(rows.into_iter().map(MessageRecord::from).collect())
}

//! Sending a message: seq assignment, the sender's watermark, idempotent retries, and the
//! `MessageAdded` event.
//!
//! Seq assignment: `UPDATE rooms SET last_seq = last_seq + 1 … RETURNING` in the statement or
//! transaction that inserts the message. The row lock on the room serialises concurrent
//! senders, so seqs are gap-free and commit in order; a rolled-back insert rolls its seq back.
//!
//! On PostgreSQL a send is one statement (`statement.rs`), with the mentions resolved just
//! before; sends into one room that meet on this instance share a transaction
//! (`group_commit`). SQLite, in process and with one writer, bumps the seq with the same
//! checks and runs the other writes as one batch, in a transaction. On both, only when the
//! write writes nothing are the checks run one by one, to say which one failed.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryTrait, Set, Statement,
};
use uuid::Uuid;

use super::input::{ClientId, MessageBody};
use super::record::{Attachment, MessageRecord, attachments_json};
use super::statement::{Binds, Parts, bump_sql};
use crate::bus::{Event, MessagePayload, RoomPayload, Topic, UserPayload};
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::mentions::parse::{Mentions, parse};
use crate::mentions::service as mentions;
use crate::notifications::{outbox, personal};
use crate::rooms::{access, membership};
use crate::state::{self, Ctx};
use crate::support::outbound;
use crate::typing::service as typing;
use entity::enums::{MessageSource, SenderRole, UserKind};
use entity::{messages, rooms};

/// A message to send, parsed.
pub struct NewMessage {
    pub room_id: Uuid,
    pub body: MessageBody,
    pub client_id: Option<ClientId>,
    pub reply_to_id: Option<Uuid>,
    pub attachments: Vec<Attachment>,
}

impl NewMessage {
    /// Called before the sender's rate is charged: bad input spends nothing of the budget.
    pub fn check_attachments(&self, max: usize) -> ApiResult<()> {
        if self.attachments.len() > max {
            return Err(ApiError::bad_input(format!("a message has at most {max} attachments")));
        }
        match self.attachments.iter().find_map(Attachment::problem) {
            Some(problem) => Err(ApiError::bad_input(format!("attachments: {problem}"))),
            None => Ok(()),
        }
    }

    fn record(&self, cx: &Ctx<'_>, sent: Sent, seq: i64) -> MessageRecord {
        let Sent { id, now, role } = sent;
        MessageRecord {
            id,
            org_id: cx.viewer.org_id,
            room_id: self.room_id,
            seq,
            author_user_id: Some(cx.viewer.id),
            author_contact_id: None,
            sender_role: role.to_value(),
            body: self.body.as_str().to_owned(),
            source: "chat".to_owned(),
            client_id: self.client_id.as_ref().map(|c| c.as_str().to_owned()),
            reply_to_id: self.reply_to_id,
            attachments: self.attachments.clone(),
            created_at: now,
            edited_at: None,
            deleted_at: None,
        }
    }
}

/// What a send decides before it stores the message.
#[derive(Clone, Copy)]
struct Sent {
    id: Uuid,
    now: DateTime<Utc>,
    role: SenderRole,
}

/// A bot is an AI assistant: its messages carry the sender role `assistant`, which is how
/// clients (and models reading the history back) tell its turns from people's.
fn sender_role(kind: UserKind) -> SenderRole {
    match kind {
        UserKind::Human => SenderRole::User,
        UserKind::Bot => SenderRole::Assistant,
        UserKind::System => SenderRole::System,
    }
}

/// Sends `new` to the end even if the request that asked is dropped meanwhile (its client
/// went away while the send waited for its turn in `group_commit`): a queued send is
/// stored, and a stored message must be announced. In the request's own future, a drop
/// after the commit skipped the announcement, and subscribers saw the message only with the
/// room's next one (a retry with its `clientId` returns it without announcing it).
pub async fn send_detached(cx: &Ctx<'_>, new: NewMessage) -> ApiResult<MessageRecord> {
    let (app, viewer) = (cx.app.clone(), cx.viewer.clone());
    state::to_the_end(async move { send(&Ctx { app: &app, viewer: &viewer }, new).await }).await
}

/// Sends `new`, parsed and checked by the resolver (`NewMessage::check_attachments` too).
#[tracing::instrument(skip(cx, new), fields(viewer = %cx.viewer.id, room = %new.room_id))]
async fn send(cx: &Ctx<'_>, new: NewMessage) -> ApiResult<MessageRecord> {
    // Cached when the request was authenticated: no query.
    let author = cx.app.directory.user(&cx.app.store, cx.viewer.id).await?;
    let role = author.as_ref().map_or(SenderRole::User, |a| sender_role(a.kind));
    // Microseconds: what the database keeps, so the answer equals what is read back later.
    let sent = Sent { id: Uuid::now_v7(), now: db::now(), role };
    // Resolved before the insert, so that it stores them atomically; only bodies with an `@`
    // cost a query.
    let asked = parse(new.body.as_str());
    let mentioned = mentions::resolve(cx.app, new.room_id, cx.viewer.id, &asked).await?;
    let (room, mentioned) = match stored(cx, &new, sent, &asked, mentioned).await {
        Ok(stored) => stored,
        Err(err) => return retried_or(cx, &new, err).await,
    };
    let record = new.record(cx, sent, room.last_seq);
    metrics::counter!("parley_messages_sent_total").increment(1);
    let was_typing = typing::message_sent(cx.app, cx.viewer.id, new.room_id);
    let author = author.as_ref().map(|a| Arc::new(UserPayload::from(a)));
    announce(cx, &record, &room, author, mentioned).await;
    if was_typing {
        typing::typing_ended(cx.app, cx.viewer.id, new.room_id).await;
    }
    Ok(record)
}

/// Publishes the message with its author and room, so subscribers need no lookup.
async fn announce(
    cx: &Ctx<'_>,
    record: &MessageRecord,
    room: &rooms::Model,
    author: Option<Arc<UserPayload>>,
    mentioned: Vec<Uuid>,
) {
    let topic = Topic::Room(room.id);
    let (message, room) = (Arc::new(MessagePayload::from(record)), Arc::new(RoomPayload::from(room)));
    cx.app.bus.publish(topic, Event::MessageAdded { message, author, room, mentioned }).await;
}

/// Stores the message; the room after the seq bump and the users it mentions, or
/// NOT_FOUND/FORBIDDEN/BAD_USER_INPUT from the checks. The write checks access itself; only
/// when it writes nothing are the checks run one by one, to say which one failed.
async fn stored(
    cx: &Ctx<'_>,
    new: &NewMessage,
    sent: Sent,
    asked: &Mentions,
    mut mentioned: Vec<Uuid>,
) -> ApiResult<(rooms::Model, Vec<Uuid>)> {
    let mut room = write(cx, new, sent, &mentioned).await?;
    if room.is_none() {
        // None does when an admin just joined a conversation to reply, or access changed
        // meanwhile: then it is sent once more. Mentions resolve among the room's members
        // for a member only, so an admin's are resolved again now that they are one.
        check_writable(cx, new).await?;
        mentioned = mentions::resolve(cx.app, new.room_id, cx.viewer.id, asked).await?;
        room = write(cx, new, sent, &mentioned).await?;
    }
    let room = room.ok_or_else(|| ApiError::conflict("the room changed while sending; retry"))?;
    Ok((room, mentioned))
}

/// The room after the seq bump, or `None` when a check failed and nothing was written.
async fn write(
    cx: &Ctx<'_>,
    new: &NewMessage,
    sent: Sent,
    mentioned: &[Uuid],
) -> ApiResult<Option<rooms::Model>> {
    match cx.app.store.backend() {
        DatabaseBackend::Postgres => write_in_one_statement(cx, new, sent, mentioned).await,
        _ => write_in_transaction(cx, new, sent, mentioned).await,
    }
}

async fn write_in_one_statement(
    cx: &Ctx<'_>,
    new: &NewMessage,
    Sent { id, now, role }: Sent,
    mentioned: &[Uuid],
) -> ApiResult<Option<rooms::Model>> {
    let binds = Binds {
        room_id: new.room_id,
        org_id: cx.viewer.org_id,
        now,
        author_id: cx.viewer.id,
        id,
        body: new.body.as_str(),
        client_id: new.client_id.as_ref().map(ClientId::as_str),
        reply_to_id: new.reply_to_id,
        attachments: &new.attachments,
        mentioned,
        email_due: personal::email_due(cx.app, now),
        sender_role: role,
    };
    let kind = cx.app.directory.room_kind(new.room_id);
    let parts = Parts::of(kind, !mentioned.is_empty());
    let room = cx.app.group_commit.send(&cx.app.store, new.room_id, binds.send(parts)).await?;
    if let Some(room) = room.as_ref().filter(|_| kind.is_none()) {
        cx.app.directory.remember_kind(room);
    }
    Ok(room)
}

/// SQLite, in process and with one writer: the seq bump (`statement::bump_sql`, the checks
/// of PostgreSQL's statement), then every other write as one batch (`db::batch`), in a
/// transaction under the write gate. Four calls to SQLite's worker thread, where a statement
/// each made seven to ten: the gate is held for each, and every send waits for the one
/// before it.
async fn write_in_transaction(
    cx: &Ctx<'_>,
    new: &NewMessage,
    sent: Sent,
    mentioned: &[Uuid],
) -> ApiResult<Option<rooms::Model>> {
    static BUMP: LazyLock<String> = LazyLock::new(|| bump_sql("$5"));
    let store = &cx.app.store;
    let tx = store.begin_write().await?;
    let values = vec![
        new.room_id.into(),
        cx.viewer.org_id.into(),
        sent.now.into(),
        cx.viewer.id.into(),
        new.reply_to_id.into(),
    ];
    let room = match rooms::Model::find_by_statement(store.stmt(&BUMP, values)).one(&tx.txn).await {
        Ok(Some(room)) => room,
        Ok(None) => {
            // A check failed: nothing is written.
            tx.rollback().await?;
            return Ok(None);
        }
        Err(err) => return Err(tx.rolled_back(err).await.into()),
    };
    let writes = db::batch(sqlite_writes(cx, new, sent, &room, mentioned));
    match tx.execute_raw(writes).await {
        Ok(_) => tx.commit().await?,
        // A unique violation here is a retry of the same `clientId` (`retried_or`).
        Err(err) => return Err(tx.rolled_back(err).await.into()),
    }
    Ok(Some(room))
}

/// The writes of a SQLite send after its seq bump, in order: the message, the sender's
/// watermark, mentions, then the deliveries (email and push after the mentions, which
/// choose whom a channel message notifies). As on PostgreSQL, those that cannot write for
/// the room's kind are left out.
fn sqlite_writes(
    cx: &Ctx<'_>,
    new: &NewMessage,
    Sent { id, now, role }: Sent,
    room: &rooms::Model,
    mentioned: &[Uuid],
) -> Vec<Statement> {
    let store = &cx.app.store;
    let (room_id, org_id, author_id) = (room.id, cx.viewer.org_id, cx.viewer.id);
    let message = messages::ActiveModel {
        id: Set(id),
        org_id: Set(org_id),
        room_id: Set(room_id),
        seq: Set(room.last_seq),
        author_user_id: Set(Some(author_id)),
        author_contact_id: Set(None),
        sender_role: Set(role),
        body: Set(new.body.as_str().to_owned()),
        source: Set(MessageSource::Chat),
        external_id: Set(None),
        client_id: Set(new.client_id.as_ref().map(|c| c.as_str().to_owned())),
        reply_to_id: Set(new.reply_to_id),
        attachments: Set(attachments_json(&new.attachments)),
        created_at: Set(now),
        edited_at: Set(None),
        deleted_at: Set(None),
    };
    let mut writes = vec![
        messages::Entity::insert(message).build(DatabaseBackend::Sqlite),
        // The sender has read everything up to their own message.
        store.stmt(
            "UPDATE room_members SET last_read_seq = $3, last_read_at = $4 \
             WHERE room_id = $1 AND user_id = $2 AND last_read_seq < $3",
            vec![room_id.into(), author_id.into(), room.last_seq.into(), now.into()],
        ),
    ];
    writes.extend(mentions::inserts(store, (id, room_id, room.last_seq), mentioned, now));
    writes.push(outbox::message_added(store, room_id, id, now));
    let parts = Parts::of(Some(room.kind), !mentioned.is_empty());
    static OUTBOUND: LazyLock<String> = LazyLock::new(outbound::enqueue_statement);
    if parts.outbound() {
        writes.push(store.stmt(&OUTBOUND, vec![room_id.into(), id.into(), now.into()]));
    }
    static PERSONAL: LazyLock<[String; 2]> = LazyLock::new(personal::enqueue_statements);
    if parts.personal() {
        let email_due = personal::email_due(cx.app, now);
        for sql in PERSONAL.iter() {
            let values = vec![
                room_id.into(),
                org_id.into(),
                now.into(),
                author_id.into(),
                id.into(),
                email_due.into(),
            ];
            writes.push(store.stmt(sql, values));
        }
    }
    writes
}

/// The room is writable by the viewer, a member, and a reply's parent is in it. An org
/// admin who is not in a support conversation joins it: admins read and reply to every
/// conversation (SPEC §5, as in Chatwoot), and replying makes them one of its participants.
async fn check_writable(cx: &Ctx<'_>, new: &NewMessage) -> ApiResult<()> {
    let access = access::readable(&cx.app.store, cx.viewer, new.room_id).await?;
    access.require_writable()?;
    if let Some(reply_to) = new.reply_to_id {
        let parent = messages::Entity::find_by_id(reply_to).one(&cx.app.store.db).await?;
        if parent.is_none_or(|p| p.room_id != new.room_id) {
            return Err(ApiError::not_found("message to reply to"));
        }
    }
    if access.joins_on_reply(cx.viewer) {
        return membership::add(&cx.app.store, &cx.app.bus, &access.room, &[cx.viewer.id]).await;
    }
    access.require_member().map(|_| ())
}

/// A unique violation on `clientId` means this is a retry (or a race between two instances
/// that the other one won): the stored message is the answer. There is no lookup before the
/// insert: the unique index decides, and retries are the rare case. A different body under
/// the same key is CONFLICT, unless the stored message was edited or deleted since: its text
/// no longer says what was sent, and a retry whose first answer was lost must not fail.
///
/// So must a retry refused (FORBIDDEN) because the room turned read-only since the first
/// attempt (archived, as a DM is when its other member is deactivated): the message everyone
/// already sees is the answer, not "failed". Only while the author may still read the room:
/// the answer's `room` would show one they were removed from.
async fn retried_or(cx: &Ctx<'_>, new: &NewMessage, err: ApiError) -> ApiResult<MessageRecord> {
    let Some(client_id) = new.client_id.as_ref() else {
        return Err(err);
    };
    let refused_since = err.code() == ErrorCode::Forbidden
        && access::readable(&cx.app.store, cx.viewer, new.room_id).await.is_ok();
    if !(err.is_unique_violation() || refused_since) {
        return Err(err);
    }
    let existing = messages::Entity::find()
        .filter(messages::Column::RoomId.eq(new.room_id))
        .filter(messages::Column::AuthorUserId.eq(cx.viewer.id))
        .filter(messages::Column::ClientId.eq(client_id.as_str()))
        .one(&cx.app.store.db)
        .await?
        .ok_or(err)?;
    let existing = MessageRecord::from(existing);
    let changed_since = existing.edited_at.is_some() || existing.deleted_at.is_some();
    if changed_since || (existing.body == new.body.as_str() && existing.attachments == new.attachments) {
        Ok(existing)
    } else {
        Err(ApiError::conflict("this clientId was already used for a different message"))
    }
}

//! The send on PostgreSQL as one statement: a data-modifying CTE checks access (same
//! organisation, not archived or deleted, the sender is a member, the parent of a reply is in
//! the room), bumps the seq, inserts, moves the sender's watermark, stores the mentions and
//! writes the outbox rows (webhooks, email and push, outbound replies), atomically.
//!
//! The statement comes in variants without the parts that cannot write for a send. PostgreSQL
//! opens every table and index of a statement on each execution, whether a part writes or not:
//! in the throughput benchmark, leaving out the email, push and outbound parts cut its CPU per
//! send by about a fifth (BENCHMARKS.md). A part is left out only when the room's kind is known
//! on this instance (kinds never change) and says it would write nothing.
//!
//! The sends that need none of them (a message into a channel that mentions nobody, the
//! common case) can also run several at once, into different rooms: [`BATCH_SQL`], the same
//! checks and writes row by row, with the rows as one JSON parameter (`group_commit`).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveEnum, DatabaseBackend, Statement};
use uuid::Uuid;

use super::record::{Attachment, attachments_json};
use crate::db::{self, columns};
use crate::notifications::{outbox, personal};
use crate::support::outbound;
use entity::enums::{RoomKind, SenderRole};
use entity::rooms;

/// Which optional parts a send's statement carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// Email and push rows (`notifications::personal`): for a DM's other members, and for
    /// the people a message mentions.
    personal: bool,
    /// The outbound delivery of an agent's reply (`support::outbound`): support rooms only.
    outbound: bool,
}

impl Parts {
    /// The parts a send into a room of `kind` (`None`: not known here) needs.
    pub fn of(kind: Option<RoomKind>, mentions: bool) -> Self {
        match kind {
            Some(RoomKind::Channel) => Self { personal: mentions, outbound: false },
            Some(RoomKind::Direct) => Self { personal: true, outbound: false },
            Some(RoomKind::Support) => Self { personal: mentions, outbound: true },
            None => Self { personal: true, outbound: true },
        }
    }

    const ALL: [Parts; 4] = [
        Parts { personal: false, outbound: false },
        Parts { personal: true, outbound: false },
        Parts { personal: false, outbound: true },
        Parts { personal: true, outbound: true },
    ];

    /// Whether email and push rows may be written.
    pub fn personal(self) -> bool {
        self.personal
    }

    /// Whether an outbound delivery may be written.
    pub fn outbound(self) -> bool {
        self.outbound
    }

    /// True when the send can join a batch across rooms ([`BATCH_SQL`] has no optional part).
    fn batchable(self) -> bool {
        !self.personal && !self.outbound
    }

    fn index(self) -> usize {
        usize::from(self.personal) | usize::from(self.outbound) << 1
    }
}

/// The statement's variants, by `Parts::index`. Every variant binds the same values; those of
/// a part left out go unused.
static SEND_SQL: LazyLock<[String; 4]> = LazyLock::new(|| Parts::ALL.map(sql));

fn sql(parts: Parts) -> String {
    let mut optional = vec![outbox::enqueue_message_added_cte()];
    if parts.personal {
        optional.push(personal::enqueue_ctes());
    }
    if parts.outbound {
        optional.push(outbound::enqueue_cte());
    }
    format!(
        "WITH room AS ({bump}), \
        message AS ( \
          INSERT INTO messages (id, org_id, room_id, seq, author_user_id, sender_role, body, source, \
            client_id, reply_to_id, attachments, created_at) \
          SELECT $5, $2, $1, room.last_seq, $4, $12, $6, 'chat', $7, $8, $9, $3 FROM room \
          RETURNING seq), \
        watermark AS ( \
          UPDATE room_members SET last_read_seq = message.seq, last_read_at = $3 FROM message \
          WHERE room_id = $1 AND user_id = $4 AND last_read_seq < message.seq), \
        mentioned AS ( \
          INSERT INTO mentions (message_id, user_id, room_id, seq, created_at) \
          SELECT $5, mentioned.id, $1, message.seq, $3 \
          FROM message, unnest(string_to_array($10, ',')::uuid[]) AS mentioned(id)), \
        {optional} \
        SELECT room.* FROM room, message",
        bump = bump_sql("$8::uuid"),
        optional = optional.join(", "),
    )
}

/// A send's seq bump with its checks (the room in the sender's organisation, not deleted or
/// archived, the sender a member, a reply's parent in the room), returning the room: `$1` the
/// room, `$2` the organisation, `$3` the time, `$4` the author, `reply` the parent (null for
/// none). Both backends' sends start with it, so that their checks cannot drift apart.
pub fn bump_sql(reply: &str) -> String {
    format!(
        "UPDATE rooms SET last_seq = last_seq + 1, last_message_at = $3, \
           first_response_at = CASE WHEN kind = 'support' THEN COALESCE(first_response_at, $3) END \
         WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL AND archived_at IS NULL \
           AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $4) \
           AND ({reply} IS NULL OR EXISTS (SELECT 1 FROM messages WHERE id = {reply} AND room_id = $1)) \
         RETURNING {}",
        columns::<rooms::Entity>(None)
    )
}

/// Sends into different rooms in one statement, each room at most once (an `UPDATE … FROM`
/// bumps a row once, however many input rows join it): `$1` is a JSON array of
/// [`Binds::row`]s. It returns the rooms written, each with the id of its message; a send
/// missing from the answer failed a check. Rooms are locked in id order, so two instances'
/// batches over the same rooms queue instead of deadlocking.
pub static BATCH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH input AS MATERIALIZED ( \
          SELECT * FROM jsonb_to_recordset($1::jsonb) AS input(room_id uuid, org_id uuid, at timestamptz, \
            author_id uuid, id uuid, body text, client_id text, reply_to_id uuid, attachments jsonb, \
            sender_role text)), \
        locked AS MATERIALIZED ( \
          SELECT rooms.id FROM rooms JOIN input ON rooms.id = input.room_id ORDER BY rooms.id FOR NO KEY UPDATE OF rooms), \
        room AS ( \
          UPDATE rooms SET last_seq = rooms.last_seq + 1, last_message_at = input.at, \
            first_response_at = CASE WHEN rooms.kind = 'support' THEN COALESCE(rooms.first_response_at, input.at) END \
          FROM input JOIN locked ON locked.id = input.room_id \
          WHERE rooms.id = input.room_id AND rooms.org_id = input.org_id \
            AND rooms.deleted_at IS NULL AND rooms.archived_at IS NULL \
            AND EXISTS (SELECT 1 FROM room_members WHERE room_id = input.room_id AND user_id = input.author_id) \
            AND (input.reply_to_id IS NULL OR EXISTS ( \
              SELECT 1 FROM messages WHERE id = input.reply_to_id AND room_id = input.room_id)) \
          RETURNING {room_columns}, input.id AS message_id), \
        message AS ( \
          INSERT INTO messages (id, org_id, room_id, seq, author_user_id, sender_role, body, source, \
            client_id, reply_to_id, attachments, created_at) \
          SELECT input.id, input.org_id, input.room_id, room.last_seq, input.author_id, input.sender_role, \
            input.body, 'chat', input.client_id, input.reply_to_id, input.attachments, input.at \
          FROM room JOIN input ON input.id = room.message_id \
          RETURNING id, room_id, seq, author_user_id, created_at), \
        watermark AS ( \
          UPDATE room_members SET last_read_seq = message.seq, last_read_at = message.created_at FROM message \
          WHERE room_members.room_id = message.room_id AND room_members.user_id = message.author_user_id \
            AND room_members.last_read_seq < message.seq), \
        {deliveries} \
        SELECT room.* FROM room JOIN message ON message.id = room.message_id",
        room_columns = columns::<rooms::Entity>(Some("rooms")),
        deliveries = outbox::enqueue_messages_added_cte(),
    )
});

/// A send's statement, and its values as a row of [`BATCH_SQL`] when it can join a batch.
pub struct SendStatement {
    pub statement: Statement,
    pub row: Option<BatchRow>,
}

/// A send's row of a batch statement ([`BATCH_SQL`], or an inbound message's
/// `support::settled::SQL`), and the id of its message, by which the answer is found.
pub struct BatchRow {
    /// The statement that runs rows like this one, as the elements of its `$1`.
    pub sql: &'static str,
    pub message_id: Uuid,
    pub values: serde_json::Value,
}

/// The statement's values, in placeholder order. Built in one place, so that a warm-up binds
/// the same types as a send: sqlx finds a prepared statement by its SQL alone, so the send
/// then runs the statement the warm-up prepared.
#[derive(Clone, Copy)]
pub struct Binds<'a> {
    pub room_id: Uuid,
    pub org_id: Uuid,
    pub now: DateTime<Utc>,
    pub author_id: Uuid,
    pub id: Uuid,
    pub body: &'a str,
    pub client_id: Option<&'a str>,
    pub reply_to_id: Option<Uuid>,
    pub attachments: &'a [Attachment],
    pub mentioned: &'a [Uuid],
    pub email_due: Option<DateTime<Utc>>,
    pub sender_role: SenderRole,
}

impl Binds<'_> {
    pub fn statement(self, parts: Parts) -> Statement {
        let values = vec![
            self.room_id.into(),
            self.org_id.into(),
            self.now.into(),
            self.author_id.into(),
            self.id.into(),
            self.body.into(),
            self.client_id.map(str::to_owned).into(),
            self.reply_to_id.into(),
            attachments_json(self.attachments).into(),
            self.mentioned.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",").into(),
            self.email_due.into(),
            self.sender_role.to_value().into(),
        ];
        Statement::from_sql_and_values(DatabaseBackend::Postgres, SEND_SQL[parts.index()].as_str(), values)
    }

    /// The statement, with the send's row of a batch when its parts allow one.
    pub fn send(self, parts: Parts) -> SendStatement {
        let row = (parts.batchable() && self.mentioned.is_empty()).then(|| BatchRow {
            sql: BATCH_SQL.as_str(),
            message_id: self.id,
            values: self.row(),
        });
        SendStatement { statement: self.statement(parts), row }
    }

    /// The send as a row of [`BATCH_SQL`]'s input.
    fn row(self) -> serde_json::Value {
        serde_json::json!({
            "room_id": self.room_id,
            "org_id": self.org_id,
            "at": self.now,
            "author_id": self.author_id,
            "id": self.id,
            "body": self.body,
            "client_id": self.client_id,
            "reply_to_id": self.reply_to_id,
            "attachments": attachments_json(self.attachments),
            "sender_role": self.sender_role.to_value(),
        })
    }
}

/// The send statement for `db::WarmUp`, into no room (so it writes nothing), in the two
/// variants most sends use: the first send into a room (kind not known yet, every part) and
/// a message into a channel that mentions nobody; and the batch, of no rows. Each statement
/// warmed costs every new connection six executions.
pub fn warm_up() -> Vec<Statement> {
    let now = db::now();
    [Parts::of(None, false), Parts::of(Some(RoomKind::Channel), false)]
        .map(|parts| {
            Binds {
                room_id: Uuid::nil(),
                org_id: Uuid::nil(),
                now,
                author_id: Uuid::nil(),
                id: Uuid::nil(),
                body: "",
                client_id: None,
                reply_to_id: None,
                attachments: &[],
                mentioned: &[],
                email_due: None,
                sender_role: SenderRole::User,
            }
            .statement(parts)
        })
        .into_iter()
        .chain([Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            BATCH_SQL.as_str(),
            [serde_json::json!([]).into()],
        )])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_not_known_here_gets_every_part() {
        assert_eq!(Parts::of(None, false), Parts { personal: true, outbound: true });
    }

    #[test]
    fn parts_follow_what_each_kind_of_room_can_write() {
        let (channel, direct, support) = (RoomKind::Channel, RoomKind::Direct, RoomKind::Support);
        // (kind, mentions someone) → (email and push, outbound)
        let cases = [
            (channel, false, (false, false)),
            (channel, true, (true, false)),
            (direct, false, (true, false)),
            (direct, true, (true, false)),
            (support, false, (false, true)),
            (support, true, (true, true)),
        ];
        for (kind, mentions, (personal, outbound)) in cases {
            assert_eq!(Parts::of(Some(kind), mentions), Parts { personal, outbound }, "{kind:?} {mentions}");
        }
    }

    #[test]
    fn each_variant_carries_exactly_its_parts() {
        for parts in Parts::ALL {
            let sql = &SEND_SQL[parts.index()];
            assert!(sql.contains("deliveries AS"), "webhooks always");
            assert_eq!(sql.contains("emails AS") && sql.contains("pushes AS"), parts.personal, "{parts:?}");
            assert_eq!(sql.contains("outbound AS"), parts.outbound, "{parts:?}");
        }
    }
}

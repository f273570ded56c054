//! Personal notifications (email and push): who is notified of a message, written to the
//! outbox with it, and whether that is still wanted when the delivery is due.
//!
//! Who: the other members of a direct conversation, and in a channel the people it mentions
//! (`@handle`, `@channel`, `@here`), as Slack and Mattermost do by default; never the author,
//! a deactivated user, or a member who muted the room. Each user can turn either channel off.
//!
//! Email rows are batches: a recipient has at most one not yet attempted email row per room
//! (a partial unique index), and later messages join it instead of writing their own. The
//! row is due `PARLEY_EMAIL_DELAY_SECS` after its first message and covers the messages from
//! its first one up to the first message of the recipient's next email row in that room.
//! Push rows are one per message and browser, due at once.
//!
//! When a row is due the worker asks [`still_wanted`]: a message read meanwhile, a room
//! muted since, a recipient who is online (they saw it live; not one who set themselves
//! away with a tab open) or in do-not-disturb, or a
//! channel turned off cancels it, with the reason recorded.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseBackend, EntityTrait};
use uuid::Uuid;

use super::settings;
use crate::error::ApiResult;
use crate::presence::Status;
use crate::state::AppState;
use entity::enums::PresenceStatus;
use entity::{room_members, users};

/// Which personal channel a delivery is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Push,
}

/// PostgreSQL: CTEs of the one-statement send (`room` and `message` are its CTEs; `$1` the
/// room, `$2` the organisation, `$3` the time, `$4` the author, `$5` the message id, `$10`
/// the mentioned ids, comma separated; `$11` when an email is due, null when email is off).
pub fn enqueue_ctes() -> String {
    let recipients = "recipients AS ( \
           SELECT m.user_id FROM room_members m, room \
           WHERE m.room_id = $1 AND m.user_id <> $4 AND (m.muted_until IS NULL OR m.muted_until <= $3) \
             AND (room.kind = 'direct' OR m.user_id = ANY(string_to_array($10, ',')::uuid[])))";
    format!(
        "{recipients}, emails AS ({emails}), pushes AS ({pushes})",
        emails =
            insert(DatabaseBackend::Postgres, Channel::Email, "recipients r", "$11::timestamptz IS NOT NULL"),
        pushes = insert(DatabaseBackend::Postgres, Channel::Push, "recipients r", "TRUE"),
    )
}

/// SQLite: statements of the send's transaction, after the mentions are written (`$1` the
/// room, `$2` the organisation, `$3` the time, `$4` the author, `$5` the message id, `$6`
/// when an email is due, null when email is off).
pub fn enqueue_statements() -> [String; 2] {
    let recipients = "(SELECT m.user_id FROM room_members m JOIN rooms ON rooms.id = m.room_id \
           WHERE m.room_id = $1 AND m.user_id <> $4 AND (m.muted_until IS NULL OR m.muted_until <= $3) \
             AND (rooms.kind = 'direct' \
               OR m.user_id IN (SELECT user_id FROM mentions WHERE message_id = $5))) r";
    [
        insert(DatabaseBackend::Sqlite, Channel::Email, recipients, "$6 IS NOT NULL"),
        insert(DatabaseBackend::Sqlite, Channel::Push, recipients, "1"),
    ]
}

/// One channel's rows for the recipients in `from` (which names them `r`); `enabled` is the
/// condition that the channel is configured at all.
fn insert(backend: DatabaseBackend, channel: Channel, from: &str, enabled: &str) -> String {
    let (id, due) = match (backend, channel) {
        (DatabaseBackend::Postgres, Channel::Email) => ("gen_random_uuid()", "$11"),
        (DatabaseBackend::Postgres, Channel::Push) => ("gen_random_uuid()", "$3"),
        (_, Channel::Email) => ("randomblob(16)", "$6"),
        (_, Channel::Push) => ("randomblob(16)", "$3"),
    };
    // PostgreSQL: nothing is written unless the send's `message` CTE wrote the message.
    let message = if backend == DatabaseBackend::Postgres { ", message" } else { "" };
    let columns = "id, org_id, channel, event, room_id, message_id, recipient_id, push_subscription_id, \
                   status, attempts, next_attempt_at, created_at";
    let common = "JOIN users u ON u.id = r.user_id AND u.deactivated_at IS NULL \
                  LEFT JOIN notification_settings s ON s.user_id = r.user_id";
    match channel {
        Channel::Email => format!(
            "INSERT INTO notification_deliveries ({columns}) \
             SELECT {id}, $2, 'email', 'MESSAGE_ADDED', $1, $5, r.user_id, NULL, 'pending', 0, {due}, $3 \
             FROM {from} {common}{message} \
             WHERE {enabled} AND u.email IS NOT NULL AND COALESCE(s.email_enabled, TRUE) \
             ON CONFLICT (recipient_id, room_id) \
               WHERE channel = 'email' AND status = 'pending' AND attempts = 0 DO NOTHING"
        ),
        Channel::Push => format!(
            "INSERT INTO notification_deliveries ({columns}) \
             SELECT {id}, $2, 'push', 'MESSAGE_ADDED', $1, $5, r.user_id, p.id, 'pending', 0, {due}, $3 \
             FROM {from} {common} JOIN push_subscriptions p ON p.user_id = r.user_id{message} \
             WHERE {enabled} AND COALESCE(s.push_enabled, TRUE)"
        ),
    }
}

/// When an email about a message sent `now` is due, or `None` when email is off.
pub fn email_due(app: &AppState, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let notifier = &app.notifier;
    notifier.mailer.as_ref()?;
    Some(now + chrono::Duration::from_std(notifier.email_delay).unwrap_or(chrono::Duration::minutes(10)))
}

/// `None` when `recipient` still wants to hear of messages up to `seq` in `room_id` through
/// `channel`, else why not.
pub async fn still_wanted(
    app: &AppState,
    recipient: &users::Model,
    room_id: Uuid,
    seq: i64,
    channel: Channel,
) -> ApiResult<Option<&'static str>> {
    if recipient.deactivated_at.is_some() {
        return Ok(Some("the recipient was deactivated"));
    }
    let Some(member) = room_members::Entity::find_by_id((room_id, recipient.id)).one(&app.store.db).await?
    else {
        return Ok(Some("the recipient left the room"));
    };
    if member.last_read_seq >= seq {
        return Ok(Some("read before it was sent"));
    }
    if member.muted_until.is_some_and(|until| until > Utc::now()) {
        return Ok(Some("the room is muted"));
    }
    let choices = settings::of(&app.store, recipient.id).await?;
    match channel {
        Channel::Email if !choices.email_enabled => return Ok(Some("the recipient turned email off")),
        Channel::Push if !choices.push_enabled => return Ok(Some("the recipient turned push off")),
        _ => {}
    }
    if recipient.presence_status == Some(PresenceStatus::Dnd) {
        return Ok(Some("the recipient is in do not disturb"));
    }
    let seen = app.presence.seen(&[recipient.id]).await;
    let connected = seen.get(&recipient.id).is_some_and(|s| s.connected);
    if Status::sees_live(recipient.presence_status, connected) {
        return Ok(Some("the recipient is online and sees it live"));
    }
    Ok(None)
}

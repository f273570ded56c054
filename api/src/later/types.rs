//! GraphQL types of the Later list.

use async_graphql::{Context, Enum, Object, Result};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::service::{self, LaterEntry, LaterKey};
use crate::graphql::context::ContextExt;
use crate::graphql::pages::{KeyCursor, keyset_connection, parse_time_cursor, time_cursor};
use crate::messages::types::{Message, readable_message};
use crate::paging::Keyset;
use crate::reminders::types::Reminder;
use crate::rooms::types::{Room, readable_room};
use entity::enums::ReminderStatus;

/// What a Later item is.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum LaterKind {
    Reminder,
    SavedMessage,
}

/// Something the viewer set aside for later.
pub struct LaterItem(LaterEntry);

#[Object]
impl LaterItem {
    async fn kind(&self) -> LaterKind {
        match &self.0 {
            LaterEntry::Reminder(_) => LaterKind::Reminder,
            LaterEntry::Saved { .. } => LaterKind::SavedMessage,
        }
    }
    /// When it is due: a reminder's time; null for a saved message.
    async fn due_at(&self) -> Option<DateTime<Utc>> {
        match &self.0 {
            LaterEntry::Reminder(reminder) => Some(reminder.remind_at),
            LaterEntry::Saved { .. } => None,
        }
    }
    /// True for a reminder whose time came (`reminderDue` was sent).
    async fn is_due(&self) -> bool {
        matches!(&self.0, LaterEntry::Reminder(reminder) if reminder.status == ReminderStatus::Fired)
    }
    /// When it was set aside: the reminder created, the message saved.
    async fn saved_at(&self) -> DateTime<Utc> {
        match &self.0 {
            LaterEntry::Reminder(reminder) => reminder.created_at,
            LaterEntry::Saved { saved_at, .. } => *saved_at,
        }
    }
    async fn reminder(&self) -> Option<Reminder> {
        match &self.0 {
            LaterEntry::Reminder(reminder) => Some(Reminder(reminder.clone())),
            LaterEntry::Saved { .. } => None,
        }
    }
    /// The saved message, or the message a reminder is about (while the viewer may read it).
    async fn message(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        match &self.0 {
            LaterEntry::Reminder(reminder) => match reminder.message_id {
                Some(id) => readable_message(ctx, id).await,
                None => Ok(None),
            },
            LaterEntry::Saved { message, .. } => Ok(Some(Message::from(message.clone()))),
        }
    }
    /// The room it is about, while the viewer may read it.
    async fn room(&self, ctx: &Context<'_>) -> Result<Option<Room>> {
        let room_id = match &self.0 {
            LaterEntry::Reminder(reminder) => reminder.room_id,
            LaterEntry::Saved { message, .. } => Some(message.room_id),
        };
        match room_id {
            Some(id) => readable_room(ctx, id).await,
            None => Ok(None),
        }
    }
}

pub type LaterConnection = async_graphql::connection::Connection<String, LaterItem>;

/// An item's place as a cursor: `<due time>_<time set aside>_<id>`, the due time empty for a
/// saved message.
impl KeyCursor for LaterKey {
    fn parse(cursor: &str) -> Option<Self> {
        let mut parts = cursor.split('_');
        let (due_at, saved_at, id) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let due_at = if due_at.is_empty() { None } else { Some(parse_time_cursor(due_at)?) };
        Some(Self { due_at, saved_at: parse_time_cursor(saved_at)?, id: Uuid::parse_str(id).ok()? })
    }

    fn cursor(&self) -> String {
        let due_at = self.due_at.map(time_cursor).unwrap_or_default();
        format!("{due_at}_{}_{}", time_cursor(self.saved_at), self.id)
    }
}

/// A page of the viewer's Later list.
pub async fn later_page(ctx: &Context<'_>, page: Keyset<LaterKey>) -> Result<LaterConnection> {
    let (entries, more) = service::page(&ctx.state()?.store, ctx.viewer()?, page).await?;
    let items = entries.into_iter().map(|(key, entry)| (key, LaterItem(entry))).collect();
    Ok(keyset_connection(&page, items, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_cursor_names_the_due_time_if_any_the_time_set_aside_and_the_id() {
        let at = |seconds| DateTime::from_timestamp(seconds, 7).unwrap_or_default();
        let reminder = LaterKey { due_at: Some(at(20)), saved_at: at(10), id: Uuid::nil() };
        let saved = LaterKey { due_at: None, ..reminder };
        assert_eq!(saved.cursor(), "_10.000000007_00000000-0000-0000-0000-000000000000");
        for key in [reminder, saved] {
            assert_eq!(LaterKey::parse(&key.cursor()), Some(key));
        }
        let id = Uuid::nil();
        for bad in
            ["", "12", "e12", &format!("_{id}"), &format!("1.000000000_{id}"), &format!("__1.000000000_{id}")]
        {
            assert_eq!(LaterKey::parse(bad), None, "{bad:?}");
        }
    }
}

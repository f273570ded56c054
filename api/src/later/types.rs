//! GraphQL types of the Later list.

use async_graphql::{Context, Enum, Object, Result};
use chrono::{DateTime, Utc};

use super::service::{self, LaterEntry};
use crate::graphql::context::ContextExt;
use crate::graphql::pages::window_connection;
use crate::messages::types::{Message, readable_message};
use crate::paging::Window;
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

/// A page of the viewer's Later list.
pub async fn later_page(ctx: &Context<'_>, window: Window) -> Result<LaterConnection> {
    let (entries, more) = service::page(&ctx.state()?.store, ctx.viewer()?, window).await?;
    Ok(window_connection(window, entries.into_iter().map(LaterItem).collect(), more))
}

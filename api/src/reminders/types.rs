//! GraphQL types of reminders: the reminder, its status, inputs, and the `reminderDue` item.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};

use super::service;
use crate::bus::ReminderPayload;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::to_id;
use crate::graphql::pages::keyset_connection;
use crate::messages::types::{Message, readable_message};
use crate::paging::{Keyset, TimeKey};

use crate::rooms::types::{Room, readable_room};
use entity::enums::ReminderStatus as Stored;
use entity::reminders;

/// Where a reminder stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReminderStatus {
    /// Waiting for its time.
    Pending,
    /// Its time came (`reminderDue` was sent); not yet completed or snoozed.
    Due,
    /// Completed.
    Done,
    Cancelled,
}

impl From<Stored> for ReminderStatus {
    fn from(status: Stored) -> Self {
        match status {
            Stored::Pending => Self::Pending,
            Stored::Fired => Self::Due,
            Stored::Done => Self::Done,
            Stored::Cancelled => Self::Cancelled,
        }
    }
}

impl From<ReminderStatus> for Stored {
    fn from(status: ReminderStatus) -> Self {
        match status {
            ReminderStatus::Pending => Self::Pending,
            ReminderStatus::Due => Self::Fired,
            ReminderStatus::Done => Self::Done,
            ReminderStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// A reminder of the viewer's.
pub struct Reminder(pub reminders::Model);

#[Object]
impl Reminder {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn remind_at(&self) -> DateTime<Utc> {
        self.0.remind_at
    }
    async fn status(&self) -> ReminderStatus {
        self.0.status.into()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it fired (null until then, and again once snoozed).
    async fn fired_at(&self) -> Option<DateTime<Utc>> {
        self.0.fired_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    /// The room it is about, while the viewer may read it.
    async fn room(&self, ctx: &Context<'_>) -> Result<Option<Room>> {
        let Some(id) = self.0.room_id else { return Ok(None) };
        readable_room(ctx, id).await
    }
    /// The message it is about, while the viewer may read its room; a deleted message shows
    /// as deleted.
    async fn message(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        let Some(id) = self.0.message_id else { return Ok(None) };
        readable_message(ctx, id).await
    }
}

impl From<ReminderPayload> for Reminder {
    fn from(fired: ReminderPayload) -> Self {
        Self(reminders::Model {
            id: fired.id,
            org_id: fired.org_id,
            user_id: fired.user_id,
            room_id: fired.room_id,
            message_id: fired.message_id,
            note: fired.note,
            remind_at: fired.remind_at,
            status: Stored::Fired,
            created_at: fired.created_at,
            fired_at: Some(fired.fired_at),
            completed_at: None,
        })
    }
}

pub type ReminderConnection = async_graphql::connection::Connection<String, Reminder>;

#[derive(InputObject)]
pub struct CreateReminderInput {
    /// A message the viewer may read; the reminder is then about its room too.
    pub message_id: Option<ID>,
    /// A room the viewer may read.
    pub room_id: Option<ID>,
    /// In the future, at most a year ahead.
    pub remind_at: DateTime<Utc>,
    /// Up to 1 000 characters.
    pub note: Option<String>,
}

#[derive(InputObject, Default)]
pub struct ReminderFilter {
    /// Only reminders in this state; without it, pending and due ones.
    pub status: Option<ReminderStatus>,
}

/// A reminder whose time came, with what it is about.
pub struct ReminderDue(pub Reminder);

#[Object]
impl ReminderDue {
    async fn reminder(&self) -> &Reminder {
        &self.0
    }
    async fn message(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        self.0.message(ctx).await
    }
    async fn room(&self, ctx: &Context<'_>) -> Result<Option<Room>> {
        self.0.room(ctx).await
    }
}

/// A page of the viewer's reminders (see `service::list` for the order).
pub async fn reminder_page(
    ctx: &Context<'_>,
    filter: Option<ReminderFilter>,
    page: Keyset<TimeKey>,
) -> Result<ReminderConnection> {
    let statuses = match filter.unwrap_or_default().status {
        Some(status) => vec![status.into()],
        None => vec![Stored::Pending, Stored::Fired],
    };
    let (rows, more) = service::list(&ctx.state()?.store, ctx.viewer()?, &statuses, page).await?;
    let items = rows.into_iter().map(|(key, row)| (key, Reminder(row))).collect();
    Ok(keyset_connection(&page, items, more))
}

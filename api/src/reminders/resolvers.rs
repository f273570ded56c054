//! Reminder mutations and the `reminderDue` subscription (`viewer.reminders` lives on the
//! viewer, with `types::reminder_page`).

use async_graphql::{Context, ID, Object, Result, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{FutureExt, Stream, StreamExt};

use super::feed;
use super::input::{RemindAt, ReminderNote};
use super::service::{self, NewReminder};
use super::types::{CreateReminderInput, Reminder, ReminderDue};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::parse_id;
use crate::graphql::live::live;

#[derive(Default)]
pub struct ReminderMutation;

#[Object]
impl ReminderMutation {
    /// Reminds the viewer of a message, a room, or only a note, at `remindAt`.
    async fn create_reminder(&self, ctx: &Context<'_>, input: CreateReminderInput) -> Result<Reminder> {
        let new = NewReminder {
            message_id: input.message_id.as_ref().map(parse_id).transpose()?,
            room_id: input.room_id.as_ref().map(parse_id).transpose()?,
            remind_at: RemindAt::parse(input.remind_at, Utc::now())?,
            note: ReminderNote::parse(input.note.as_deref())?,
        };
        Ok(Reminder(service::create(&ctx.service()?, new).await?))
    }

    /// Moves a pending or due reminder to `until`; it is pending again.
    async fn snooze_reminder(&self, ctx: &Context<'_>, id: ID, until: DateTime<Utc>) -> Result<Reminder> {
        let (id, until) = (parse_id(&id)?, RemindAt::parse(until, Utc::now())?);
        Ok(Reminder(service::snooze(&ctx.service()?, id, until).await?))
    }

    /// Marks a pending or due reminder done. Idempotent.
    async fn complete_reminder(&self, ctx: &Context<'_>, id: ID) -> Result<Reminder> {
        Ok(Reminder(service::complete(&ctx.service()?, parse_id(&id)?).await?))
    }

    /// Cancels a pending or due reminder. Idempotent.
    async fn cancel_reminder(&self, ctx: &Context<'_>, id: ID) -> Result<Reminder> {
        Ok(Reminder(service::cancel(&ctx.service()?, parse_id(&id)?).await?))
    }
}

#[derive(Default)]
pub struct ReminderSubscription;

#[Subscription]
impl ReminderSubscription {
    /// The viewer's reminders as they fall due, once each, on whichever instance the viewer
    /// is connected to. One that fired while this instance could not hear the others arrives
    /// once it can again; after a reconnect of the client, reread
    /// `viewer.reminders(filter: {status: DUE})`.
    async fn reminder_due(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = ReminderDue>> {
        let due = feed::reminders_due(ctx.state()?.clone(), ctx.viewer()?.clone());
        let due = due.map(|feed| Ok::<_, ApiError>(feed.map(|fired| ReminderDue(Reminder::from(fired)))));
        live(ctx, due).await
    }
}

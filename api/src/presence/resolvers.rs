//! `setPresence`, the `Presence` type (also `User.presence`) and `presenceChanged`.

use async_graphql::{Context, Enum, ID, Object, Result, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt, TryFutureExt};
use uuid::Uuid;

use super::Status;
use super::feed;
use super::service::{self, UserPresence};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::{parse_ids, to_id};
use crate::graphql::live::live;
use crate::graphql::loaders::{PresenceKey, UserKey};
use crate::users::types::User;
use entity::enums::PresenceStatus as Manual;

/// What others see of a user.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PresenceStatus {
    Online,
    Away,
    /// Do not disturb.
    Dnd,
    Offline,
}

impl From<Status> for PresenceStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Online => Self::Online,
            Status::Away => Self::Away,
            Status::Dnd => Self::Dnd,
            Status::Offline => Self::Offline,
        }
    }
}

/// A status set by hand.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ManualStatus {
    Online,
    Away,
    Dnd,
}

impl From<ManualStatus> for Manual {
    fn from(status: ManualStatus) -> Self {
        match status {
            ManualStatus::Online => Self::Online,
            ManualStatus::Away => Self::Away,
            ManualStatus::Dnd => Self::Dnd,
        }
    }
}

/// A user's presence: online while they hold a connection on any instance, unless they set a
/// status by hand.
pub struct Presence(pub UserPresence);

#[Object]
impl Presence {
    async fn user_id(&self) -> ID {
        to_id(self.0.user_id)
    }
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        let user = ctx.loaders()?.load_one(UserKey(self.0.user_id)).await?;
        Ok(User(user.ok_or_else(|| ApiError::not_found("user"))?))
    }
    async fn status(&self) -> PresenceStatus {
        self.0.status.into()
    }
    /// When their last connection closed; null while connected (or never seen).
    async fn last_seen_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_seen_at
    }
}

#[derive(Default)]
pub struct PresenceMutation;

#[Object]
impl PresenceMutation {
    /// Sets the viewer's status by hand (shown instead of their connection state), or clears
    /// it with `null`.
    async fn set_presence(&self, ctx: &Context<'_>, status: Option<ManualStatus>) -> Result<Presence> {
        Ok(Presence(service::set_presence(&ctx.service()?, status.map(Into::into)).await?))
    }
}

#[derive(Default)]
pub struct PresenceSubscription;

#[Subscription]
impl PresenceSubscription {
    /// Presence changes of the people the viewer shares a room with (at most 5 000), or of
    /// `userIds` (at most 1 000, each someone the viewer shares a room with when subscribing,
    /// else NOT_FOUND; the viewer's own id may be among them, but their own changes are not
    /// sent). Only changes of what is shown: a fifth tab closing is none. Follows
    /// membership: someone who comes to share a room with the viewer is announced at once
    /// with their presence; someone who no longer shares one is no longer followed.
    async fn presence_changed(
        &self,
        ctx: &Context<'_>,
        user_ids: Option<Vec<ID>>,
    ) -> Result<impl Stream<Item = Presence>> {
        let named = user_ids.as_deref().map(parse_ids).transpose()?;
        let (state, viewer) = (ctx.state()?.clone(), ctx.viewer()?.clone());
        let changes = feed::presence_changes(state, viewer, named);
        live(ctx, changes.map_ok(|changes| changes.map(Presence))).await
    }
}

/// `User.presence`, batched through the loaders.
pub async fn presence_of_user(ctx: &Context<'_>, user_id: Uuid) -> Result<Presence> {
    let presence = ctx.loaders()?.load_one(PresenceKey(user_id)).await?;
    Ok(Presence(presence.unwrap_or(UserPresence { user_id, status: Status::Offline, last_seen_at: None })))
}

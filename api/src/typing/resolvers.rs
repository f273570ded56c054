//! `setTyping` and the `typing(roomId)` subscription.

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::{Stream, TryFutureExt};

use super::feed::{self, TypingChange};
use super::service;
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::live::live;
use crate::graphql::loaders::UserKey;
use crate::rooms::types::{Room, room_by_id};
use crate::users::types::User;

#[derive(Default)]
pub struct TypingMutation;

#[Object]
impl TypingMutation {
    /// Says the viewer is (or stopped) typing in a room, to its other members on every
    /// instance. Call it again every few seconds while typing: a state lapses after 6 s without
    /// renewal. Calls faster than one a second are coalesced. Returns `typing`.
    async fn set_typing(&self, ctx: &Context<'_>, room_id: ID, typing: bool) -> Result<bool> {
        Ok(service::set_typing(&ctx.service()?, parse_id(&room_id)?, typing).await?)
    }
}

#[derive(Default)]
pub struct TypingSubscription;

#[Subscription]
impl TypingSubscription {
    /// Other members of a room starting and stopping to type (`typing: false` also when a
    /// state lapses 6 s after its last renewal).
    async fn typing(&self, ctx: &Context<'_>, room_id: ID) -> Result<impl Stream<Item = TypingEvent>> {
        let (state, viewer) = (ctx.state()?.clone(), ctx.viewer()?.clone());
        let changes = feed::typing_changes(state, viewer, parse_id(&room_id)?);
        live(ctx, changes.map_ok(|changes| futures_util::StreamExt::map(changes, TypingEvent))).await
    }
}

/// Someone started or stopped typing in a room.
pub struct TypingEvent(TypingChange);

#[Object]
impl TypingEvent {
    async fn room_id(&self) -> ID {
        to_id(self.0.room_id)
    }
    async fn room(&self, ctx: &Context<'_>) -> Result<Room> {
        room_by_id(ctx, self.0.room_id).await
    }
    async fn user_id(&self) -> ID {
        to_id(self.0.user_id)
    }
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        let user = ctx.loaders()?.load_one(UserKey(self.0.user_id)).await?;
        Ok(User(user.ok_or_else(|| ApiError::not_found("user"))?))
    }
    async fn typing(&self) -> bool {
        self.0.typing
    }
}

//! Favorite mutations and the `favoritesChanged` subscription.

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::{FutureExt, Stream};

use super::service;
use super::types::FavoriteChange;
use crate::bus::{Event, Topic};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::live::live;
use crate::messages::types::Message;
use crate::rooms::types::Room;

#[derive(Default)]
pub struct FavoriteMutation;

#[Object]
impl FavoriteMutation {
    /// Marks a room the viewer is a member of as a favorite (or not). Idempotent.
    async fn set_room_favorite(&self, ctx: &Context<'_>, room_id: ID, favorite: bool) -> Result<Room> {
        Ok(Room::from(service::set_room(&ctx.service()?, parse_id(&room_id)?, favorite).await?))
    }

    /// Saves a message the viewer may read (or forgets it). Idempotent.
    async fn set_message_favorite(
        &self,
        ctx: &Context<'_>,
        message_id: ID,
        favorite: bool,
    ) -> Result<Message> {
        Ok(Message::from(service::set_message(&ctx.service()?, parse_id(&message_id)?, favorite).await?))
    }
}

#[derive(Default)]
pub struct FavoriteSubscription;

#[Subscription]
impl FavoriteSubscription {
    /// Favorites the viewer sets or clears on any device. Like every event, a hint: after a
    /// reconnect, reread `isFavorite` and `favoriteMessages`.
    async fn favorites_changed(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = FavoriteChange>> {
        let changes = ctx.state()?.bus.picked_events(Topic::User(ctx.viewer()?.id), |event| match event {
            Event::FavoriteChanged { room_id, message_id, favorite } => Some(FavoriteChange {
                room_id: room_id.map(to_id),
                message_id: message_id.map(to_id),
                favorite: *favorite,
            }),
            _ => None,
        });
        live(ctx, changes.map(Ok::<_, ApiError>)).await
    }
}

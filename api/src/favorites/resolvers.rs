//! Favorite mutations and the `favoritesChanged` subscription.

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::{Stream, StreamExt, TryFutureExt};

use super::types::FavoriteChange;
use super::{feed, service};
use crate::graphql::context::ContextExt;
use crate::graphql::ids::parse_id;
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
    /// Favorites the viewer sets or clears on any device; a room's or message's last frame is
    /// its state now. Changes whose events this server missed (it was cut off from the bus,
    /// or the changing server was) are announced, as what differs, once it notices: when it
    /// is back on the bus, or with the next change. After a reconnect, reread `isFavorite`
    /// and `favoriteMessages`.
    async fn favorites_changed(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = FavoriteChange>> {
        let changes = feed::favorites_changed(ctx.state()?.clone(), ctx.viewer()?.id);
        live(ctx, changes.map_ok(|changes| changes.map(FavoriteChange::from))).await
    }
}

//! Favorite mutations and the `favoritesChanged` subscription.

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::service;
use super::types::FavoriteChange;
use crate::bus::{BusItem, Event, Topic};
use crate::graphql::context::ContextExt;
use crate::graphql::ids::{parse_id, to_id};
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
        let topic = Topic::User(ctx.viewer()?.id);
        let subscription = ctx.state()?.bus.subscribe(topic).await;
        Ok(stream::unfold(subscription, |mut subscription| async move {
            loop {
                match subscription.receiver.recv().await {
                    Ok(BusItem::Event(envelope)) => {
                        if let Event::FavoriteChanged { room_id, message_id, favorite } = envelope.event {
                            let change = FavoriteChange {
                                room_id: room_id.map(to_id),
                                message_id: message_id.map(to_id),
                                favorite,
                            };
                            return Some((change, subscription));
                        }
                    }
                    Ok(BusItem::Resync) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                }
            }
        }))
    }
}

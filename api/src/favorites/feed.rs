//! The `favoritesChanged` feed: the viewer's favorite changes from their user topic. It
//! reads nothing from the database, so a missed event (bus resync, lag) is not replayed:
//! clients reread `isFavorite` and `favoriteMessages` after a reconnect.

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::bus::{BusItem, Event, EventBus, Topic};

/// A favorite set or cleared: a room or a message, and whether it is one now.
pub struct Change {
    pub room_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub favorite: bool,
}

pub async fn favorite_changes(bus: &EventBus, user_id: Uuid) -> BoxStream<'static, Change> {
    let subscription = bus.subscribe(Topic::User(user_id)).await;
    stream::unfold(subscription, |mut subscription| async move {
        loop {
            match subscription.receiver.recv().await {
                Ok(BusItem::Event(envelope)) => {
                    if let Event::FavoriteChanged { room_id, message_id, favorite } = envelope.event {
                        return Some((Change { room_id, message_id, favorite }, subscription));
                    }
                }
                Ok(BusItem::Resync) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

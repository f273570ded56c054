//! GraphQL types of favorites: the `favoritesChanged` item and the saved-messages page.

use async_graphql::{ComplexObject, Context, ID, Result, SimpleObject};

use super::{feed, service};
use crate::graphql::context::ContextExt;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::pages::keyset_connection;
use crate::messages::types::{Message, MessageConnection, readable_message};
use crate::paging::{Keyset, TimeKey};
use crate::rooms::types::{Room, readable_room};

/// A favorite set or cleared by the viewer, on any of their devices: a room (`roomId`) or a
/// saved message (`messageId`).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct FavoriteChange {
    pub room_id: Option<ID>,
    pub message_id: Option<ID>,
    pub favorite: bool,
}

impl From<feed::Change> for FavoriteChange {
    fn from(change: feed::Change) -> Self {
        Self {
            room_id: change.room_id.map(to_id),
            message_id: change.message_id.map(to_id),
            favorite: change.favorite,
        }
    }
}

#[ComplexObject]
impl FavoriteChange {
    /// The room, while the viewer may read it.
    async fn room(&self, ctx: &Context<'_>) -> Result<Option<Room>> {
        let Some(id) = &self.room_id else { return Ok(None) };
        readable_room(ctx, parse_id(id)?).await
    }
    /// The message, while the viewer may read its room.
    async fn message(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        let Some(id) = &self.message_id else { return Ok(None) };
        readable_message(ctx, parse_id(id)?).await
    }
}

/// A page of the viewer's saved messages, newest saved first.
pub async fn saved_message_page(ctx: &Context<'_>, page: Keyset<TimeKey>) -> Result<MessageConnection> {
    let (saved, more) = service::saved_messages(&ctx.state()?.store, ctx.viewer()?, page).await?;
    let items = saved.into_iter().map(|(at, message)| (at, Message::from(message))).collect();
    Ok(keyset_connection(&page, items, more))
}

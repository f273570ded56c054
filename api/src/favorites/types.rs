//! GraphQL types of favorites: the `favoritesChanged` item and the saved-messages page.

use async_graphql::{ComplexObject, Context, ID, Result, SimpleObject};
use chrono::DateTime;
use uuid::Uuid;

use super::{feed, service};
use crate::graphql::context::ContextExt;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::pages::{KeyCursor, keyset_connection};
use crate::messages::types::{Message, MessageConnection, readable_message};
use crate::paging::Keyset;
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

/// A saved message's place as a cursor: `<seconds>.<nanoseconds>_<message id>`.
impl KeyCursor for service::SavedAt {
    fn parse(cursor: &str) -> Option<Self> {
        let (time, id) = cursor.split_once('_')?;
        let (seconds, nanos) = time.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(seconds) || !digits(nanos) {
            return None;
        }
        let at = DateTime::from_timestamp(seconds.parse().ok()?, nanos.parse().ok()?)?;
        Some(Self { at, message_id: Uuid::parse_str(id).ok()? })
    }

    fn cursor(&self) -> String {
        format!("{}.{:09}_{}", self.at.timestamp(), self.at.timestamp_subsec_nanos(), self.message_id)
    }
}

/// A page of the viewer's saved messages, newest saved first.
pub async fn saved_message_page(
    ctx: &Context<'_>,
    page: Keyset<service::SavedAt>,
) -> Result<MessageConnection> {
    let (saved, more) = service::saved_messages(&ctx.state()?.store, ctx.viewer()?, page).await?;
    let items = saved.into_iter().map(|(at, message)| (at, Message::from(message))).collect();
    Ok(keyset_connection(&page, items, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_message_cursor_names_its_time_to_the_nanosecond_and_its_id() {
        let at = DateTime::from_timestamp(1_796_000_000, 5_000).unwrap_or_default();
        let saved = service::SavedAt { at, message_id: Uuid::nil() };
        let cursor = saved.cursor();
        assert_eq!(cursor, "1796000000.000005000_00000000-0000-0000-0000-000000000000");
        assert_eq!(service::SavedAt::parse(&cursor), Some(saved));
        for bad in [
            "",
            "12",
            "e12",
            "1.5",
            "1.5_x",
            "-1.0_00000000-0000-0000-0000-000000000000",
            "1._00000000-0000-0000-0000-000000000000",
            "1.+5_00000000-0000-0000-0000-000000000000",
        ] {
            assert_eq!(service::SavedAt::parse(bad), None, "{bad:?}");
        }
    }
}

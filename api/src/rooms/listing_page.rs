//! The GraphQL side of room listings (`rooms`, `viewer.rooms`): the filter, the order, and
//! a page with its cursors, each a room's place ([`ListingKey`]) written out.

use async_graphql::{Context, Enum, ID, InputObject, Result};
use uuid::Uuid;

use super::listing::{self, ListingKey, RoomFilter};
use super::types::{Room, RoomConnection};
use crate::db::search_text;
use crate::graphql::context::ContextExt;
use crate::graphql::enums::{ConversationStatus, RoomKind};
use crate::graphql::pages::{KeyCursor, keyset_connection};
use crate::paging::{Keyset, TimeKey};

#[derive(InputObject, Default)]
#[graphql(name = "RoomFilter")]
pub struct RoomFilterInput {
    pub kind: Option<RoomKind>,
    /// Only rooms with (true) or without (false) unread messages.
    pub unread: Option<bool>,
    /// Archived rooms instead of live ones.
    pub archived: Option<bool>,
    /// Part of the room's name or topic, in any case.
    pub search: Option<String>,
    /// Only the viewer's favorite rooms (true) or the others (false).
    pub favorite: Option<bool>,
    /// False: browse the organisation's public channels the viewer has not joined, by name
    /// (with `members { totalCount }`). Absent or true: the viewer's rooms.
    pub joined: Option<bool>,
    /// Support conversations of this inbox.
    pub inbox_id: Option<ID>,
    /// Support conversations in this status.
    pub status: Option<ConversationStatus>,
    /// Support conversations assigned to this user.
    pub assignee_id: Option<ID>,
}

/// How the viewer's rooms are ordered.
#[derive(Enum, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum RoomOrder {
    /// Most recent activity first.
    #[default]
    RecentActivity,
    /// Favorite rooms first, each group by most recent activity.
    FavoritesFirst,
}

/// A page of the viewer's rooms; shared by `rooms` and `viewer.rooms`.
pub async fn room_page(
    ctx: &Context<'_>,
    filter: Option<RoomFilterInput>,
    order_by: RoomOrder,
    page: Keyset<ListingKey>,
) -> Result<RoomConnection> {
    let filter = filter.unwrap_or_default();
    let filter = RoomFilter {
        kind: filter.kind.map(Into::into),
        unread: filter.unread,
        archived: filter.archived,
        search: search_text(filter.search.as_deref(), "filter.search")?.map(str::to_owned),
        favorite: filter.favorite,
        favorites_first: order_by == RoomOrder::FavoritesFirst,
        joined: filter.joined,
        inbox_id: filter.inbox_id.as_ref().map(crate::graphql::ids::parse_id).transpose()?,
        status: filter.status.map(Into::into),
        assignee_id: filter.assignee_id.as_ref().map(crate::graphql::ids::parse_id).transpose()?,
    };
    let (rooms, more) = listing::list(&ctx.state()?.store, ctx.viewer()?, &filter, page.clone()).await?;
    let items = rooms.into_iter().map(|(key, room)| (key, Room::from(room))).collect();
    Ok(keyset_connection(&page, items, more))
}

/// A room's place as a cursor: `a<activity>_<id>` by activity, `f…` or `o…` with favorites
/// first (a favorite, or one of the others), `n<id>_<name key>` for a channel to browse.
impl KeyCursor for ListingKey {
    fn parse(cursor: &str) -> Option<Self> {
        let (tag, rest) = (cursor.get(..1)?, cursor.get(1..)?);
        match tag {
            "a" => Some(Self::Activity(TimeKey::parse(rest)?)),
            "f" | "o" => Some(Self::FavoritesFirst { favorite: tag == "f", at: TimeKey::parse(rest)? }),
            "n" => {
                let (id, name) = rest.split_once('_')?;
                Some(Self::Name { name: name.to_owned(), id: Uuid::parse_str(id).ok()? })
            }
            _ => None,
        }
    }

    fn cursor(&self) -> String {
        match self {
            Self::Activity(at) => format!("a{}", at.cursor()),
            Self::FavoritesFirst { favorite, at } => {
                format!("{}{}", if *favorite { "f" } else { "o" }, at.cursor())
            }
            Self::Name { name, id } => format!("n{id}_{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    #[test]
    fn a_room_cursor_says_which_order_it_belongs_to() {
        let at =
            TimeKey { at: DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default(), id: Uuid::nil() };
        let keys = [
            ListingKey::Activity(at),
            ListingKey::FavoritesFirst { favorite: true, at },
            ListingKey::FavoritesFirst { favorite: false, at },
            ListingKey::Name { name: "dev_ops_2".into(), id: Uuid::nil() },
        ];
        let mut tags = Vec::new();
        for key in keys {
            let cursor = key.cursor();
            assert_eq!(ListingKey::parse(&cursor), Some(key), "{cursor}");
            tags.push(cursor[..1].to_owned());
        }
        assert_eq!(tags, ["a", "f", "o", "n"]);
        for bad in ["", "x", "a", "e12", "n", "nnot-an-id_dev"] {
            assert_eq!(ListingKey::parse(bad), None, "{bad:?}");
        }
    }
}

//! GraphQL types of message search: the filter, and a connection whose edges carry each
//! hit's rank and highlighted snippet beside the message.

use async_graphql::connection::{Connection, ConnectionNameType, EdgeNameType, EmptyFields};
use async_graphql::{ID, InputObject, OutputType, SimpleObject};
use chrono::{DateTime, Utc};

use super::service::SearchFilter;
use crate::error::ApiResult;
use crate::graphql::enums::RoomKind;
use crate::graphql::ids::parse_id;
use crate::messages::types::Message;
use crate::times;

/// Narrows `searchMessages` beyond its words; all given conditions apply.
#[derive(InputObject, Default)]
pub struct MessageSearchFilter {
    pub room_id: Option<ID>,
    pub author_id: Option<ID>,
    /// Messages sent before this moment.
    pub before: Option<DateTime<Utc>>,
    /// Messages sent after this moment.
    pub after: Option<DateTime<Utc>>,
    /// Messages in rooms of this kind.
    pub kind: Option<RoomKind>,
    pub has_attachments: Option<bool>,
}

impl MessageSearchFilter {
    pub fn parse(self) -> ApiResult<SearchFilter> {
        Ok(SearchFilter {
            room_id: self.room_id.as_ref().map(parse_id).transpose()?,
            author_id: self.author_id.as_ref().map(parse_id).transpose()?,
            before: self.before.map(times::clamped),
            after: self.after.map(times::clamped),
            room_kind: self.kind.map(Into::into),
            has_attachments: self.has_attachments,
        })
    }
}

/// What a search edge says about its message.
#[derive(SimpleObject)]
pub struct SearchHitFields {
    /// Relevance: higher is better, comparable within one search only (0 for a search by
    /// `from:`/`in:` alone, which lists the newest first). Hits among the organisation's
    /// newest messages come first, ranked among themselves, then older hits ranked among
    /// themselves.
    pub rank: f64,
    /// The best passage of the body as HTML: matched words in `<mark>…</mark>`, the rest
    /// escaped.
    pub snippet: String,
}

pub struct MessageSearchConnectionName;

impl ConnectionNameType for MessageSearchConnectionName {
    fn type_name<T: OutputType>() -> String {
        "MessageSearchConnection".into()
    }
}

pub struct MessageSearchEdgeName;

impl EdgeNameType for MessageSearchEdgeName {
    fn type_name<T: OutputType>() -> String {
        "MessageSearchEdge".into()
    }
}

pub type MessageSearchConnection = Connection<
    String,
    Message,
    EmptyFields,
    SearchHitFields,
    MessageSearchConnectionName,
    MessageSearchEdgeName,
>;

//! `searchMessages`.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object, Result};

use super::query::SearchQuery;
use super::service::{self, HitCursor};
use super::types::{MessageSearchConnection, MessageSearchFilter, SearchHitFields};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::parse_id;
use crate::messages::types::Message;
use crate::paging;

#[derive(Default)]
pub struct SearchQueryRoot;

#[Object]
impl SearchQueryRoot {
    /// Messages the viewer may read that match `query`, best first. The query takes words
    /// (all must match), `"exact phrases"`, `-excluded` words, `a OR b`, prefixes `deploy*`,
    /// and `from:@handle` / `in:#channel`; anything else is searched as plain words.
    /// `roomId` is short for `filter: {roomId}`.
    #[graphql(complexity = "paging::complexity(first, child_complexity)")]
    async fn search_messages(
        &self,
        ctx: &Context<'_>,
        query: String,
        room_id: Option<ID>,
        filter: Option<MessageSearchFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<MessageSearchConnection> {
        let query = SearchQuery::parse(&query)?;
        let mut filter = filter.unwrap_or_default().parse()?;
        if let Some(room_id) = room_id.as_ref().map(parse_id).transpose()? {
            if filter.room_id.is_some_and(|other| other != room_id) {
                return Err(ApiError::bad_input("roomId and filter.roomId name different rooms").into());
            }
            filter.room_id = Some(room_id);
        }
        let after = after.as_deref().map(HitCursor::parse).transpose()?;
        let limit = ctx.page_size(first)?;
        let (hits, more) =
            service::search(ctx.state()?, ctx.viewer()?, &query, &filter, after, limit).await?;
        let mut connection = Connection::new(after.is_some(), more);
        for hit in hits {
            let fields = SearchHitFields { rank: hit.cursor.rank, snippet: hit.snippet };
            let edge = Edge::with_additional_fields(hit.cursor.encode(), Message::from(hit.message), fields);
            connection.edges.push(edge);
        }
        Ok(connection)
    }
}

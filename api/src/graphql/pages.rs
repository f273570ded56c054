//! Relay cursors: offsets for lists ordered by the server, seqs for messages. Page sizes are
//! `paging::PageSize`.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{ObjectType, OutputType};

use crate::error::{ApiError, ApiResult};

/// Offset cursors (`"12"`): the position after which the next page starts. Bounded, so no
/// cursor can overflow the database's integer types.
pub fn offset_after(after: Option<&str>) -> ApiResult<u64> {
    match after {
        None => Ok(0),
        Some(cursor) => {
            cursor.parse::<u32>().map(|n| u64::from(n) + 1).map_err(|_| ApiError::bad_input("invalid cursor"))
        }
    }
}

/// A page read at `offset` as a connection whose cursors are the items' positions.
pub fn offset_connection<T: OutputType>(offset: u64, has_more: bool, items: Vec<T>) -> Connection<String, T> {
    offset_connection_with(offset, has_more, items, EmptyFields)
}

/// [`offset_connection`] with fields of the connection's own (`totalCount`).
pub fn offset_connection_with<T: OutputType, F: ObjectType>(
    offset: u64,
    has_more: bool,
    items: Vec<T>,
    fields: F,
) -> Connection<String, T, F> {
    let mut connection = Connection::with_additional_fields(offset > 0, has_more, fields);
    for (i, item) in items.into_iter().enumerate() {
        connection.edges.push(Edge::new((offset + i as u64).to_string(), item));
    }
    connection
}

/// A seq cursor (`"42"`): a non-negative seq.
pub fn seq_cursor(cursor: &str) -> ApiResult<i64> {
    cursor.parse::<i64>().ok().filter(|seq| *seq >= 0).ok_or_else(|| ApiError::bad_input("invalid cursor"))
}

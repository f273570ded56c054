//! Relay pagination arguments: page sizes and offset cursors for lists ordered by the server.

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_PAGE: u64 = 50;
pub const MAX_PAGE: u64 = 100;

/// A page size: at most 100, default 50.
pub fn page_size(requested: Option<i32>) -> ApiResult<u64> {
    match requested {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n < 0 => Err(ApiError::bad_input("a page size cannot be negative")),
        Some(n) if n as u64 > MAX_PAGE => Err(ApiError::bad_input("a page holds at most 100 items")),
        Some(n) => Ok(n as u64),
    }
}

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

/// A seq cursor (`"42"`): a non-negative seq.
pub fn seq_cursor(cursor: &str) -> ApiResult<i64> {
    cursor.parse::<i64>().ok().filter(|seq| *seq >= 0).ok_or_else(|| ApiError::bad_input("invalid cursor"))
}

//! Page sizes and "fetch one more than the page" reads, shared by every list that can grow:
//! the extra row says whether more follow, without a count.

use crate::error::{ApiError, ApiResult};

/// A page size: 0–100, 50 when the client asks for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u64);

impl PageSize {
    pub const DEFAULT: u64 = 50;
    pub const MAX: u64 = 100;

    pub fn parse(requested: Option<i32>) -> ApiResult<Self> {
        match requested {
            None => Ok(Self(Self::DEFAULT)),
            Some(n) if n < 0 => Err(ApiError::bad_input("a page size cannot be negative")),
            Some(n) if n as u64 > Self::MAX => Err(ApiError::bad_input("a page holds at most 100 items")),
            Some(n) => Ok(Self(n as u64)),
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// Rows to read for a page of `limit`: one more, to learn whether more follow.
pub fn fetch_limit(limit: u64) -> u64 {
    limit + 1
}

/// Cuts rows read with `fetch_limit(limit)` to the page, and says whether more follow.
pub fn split_page<T>(mut rows: Vec<T>, limit: u64) -> (Vec<T>, bool) {
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    (rows, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_to_50_and_stop_at_100() {
        assert_eq!(PageSize::parse(None).map(PageSize::get).ok(), Some(50));
        assert_eq!(PageSize::parse(Some(0)).map(PageSize::get).ok(), Some(0));
        assert_eq!(PageSize::parse(Some(100)).map(PageSize::get).ok(), Some(100));
        assert!(PageSize::parse(Some(101)).is_err());
        assert!(PageSize::parse(Some(-1)).is_err());
    }

    #[test]
    fn an_overfetched_read_says_whether_more_follow() {
        assert_eq!(split_page(vec![1, 2, 3], 2), (vec![1, 2], true));
        assert_eq!(split_page(vec![1, 2], 2), (vec![1, 2], false));
        assert_eq!(split_page(Vec::<u8>::new(), 0), (vec![], false));
        assert_eq!(split_page(vec![1], 0), (vec![], true));
        assert_eq!(fetch_limit(2), 3);
    }
}

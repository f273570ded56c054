//! Page sizes, windows (how many rows a page reads, from which end), keysets (a window that
//! starts beyond an item's key), what a page weighs in a query's complexity, and "fetch one
//! more than the page" reads, shared by every list that can grow: the extra row says whether
//! more follow, without a count.

use chrono::{DateTime, Utc};
use sea_orm::{Condition, IntoSimpleExpr, Order, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// A page size: 0 to the server's largest page (`PARLEY_MAX_PAGE_SIZE`), 50 (or the largest
/// page, if smaller) when the client asks for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageSize(u64);

impl PageSize {
    pub const DEFAULT: u64 = 50;

    pub fn parse(requested: Option<i32>, max: u64) -> ApiResult<Self> {
        match requested {
            None => Ok(Self(Self::DEFAULT.min(max))),
            Some(n) if n < 0 => Err(ApiError::bad_input("a page size cannot be negative")),
            Some(n) if n as u64 > max => {
                Err(ApiError::bad_input(format!("a page holds at most {max} items")))
            }
            Some(n) => Ok(Self(n as u64)),
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// How a page reads its list: `limit` items, from the list's start or, with `from_end`, from
/// its end (beyond a cursor, if the page has one: [`Keyset`]). A window from the end reads the
/// list in reverse order (every `ORDER BY` term flipped) and [`Window::split`] turns the rows
/// round, so `last: 10` costs what `first: 10` does and needs no count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub limit: PageSize,
    pub from_end: bool,
}

impl Window {
    /// A sort direction as this window reads the list (`"ASC"` or `"DESC"` for raw SQL).
    pub fn sql_order(self, natural: Order) -> &'static str {
        match self.order(natural) {
            Order::Desc => "DESC",
            _ => "ASC",
        }
    }

    /// A sort direction as this window reads the list.
    pub fn order(self, natural: Order) -> Order {
        match (natural, self.from_end) {
            (Order::Asc, true) => Order::Desc,
            (Order::Desc, true) => Order::Asc,
            (natural, _) => natural,
        }
    }

    /// Rows to read: the page and one more ([`fetch_limit`]).
    pub fn fetch_limit(self) -> u64 {
        fetch_limit(self.limit.get())
    }

    /// Rows read with [`Window::fetch_limit`], cut to the page and put in the
    /// list's own order; and whether more lie beyond the page, in the direction it was read.
    pub fn split<T>(self, rows: Vec<T>) -> (Vec<T>, bool) {
        let (mut rows, more) = split_page(rows, self.limit.get());
        if self.from_end {
            rows.reverse();
        }
        (rows, more)
    }
}

/// A page: `window.limit` items beyond `cursor`, an item's key, in the direction the window
/// reads (from the list's start or end, without a cursor). Every list that grows pages this
/// way: a key, unlike a position, does not move when items are added or removed ahead of it,
/// even the item it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Keyset<K> {
    pub cursor: Option<K>,
    pub window: Window,
}

impl<K> Keyset<K> {
    /// The SQL comparison that keeps the rows beyond the cursor in a list whose `natural`
    /// order is that of its key: `<` where the window reads it descending, else `>`.
    pub fn sql_beyond(&self, natural: Order) -> &'static str {
        match self.window.order(natural) {
            Order::Desc => "<",
            _ => ">",
        }
    }
}

/// An item's place in a list ordered by a time, then by the item's id: a saved message's
/// (when it was saved), a reminder's (when it is due). The time is the one the database
/// holds, so it compares equal to the row's: on SQLite a bound time is written as the
/// stored one was (RFC 3339 in UTC, 0, 3, 6 or 9 fraction digits), and that text sorts as
/// the time does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeKey {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Keyset<TimeKey> {
    /// The rows beyond the cursor (every row, without one) of a list ordered by `at`, then
    /// `id` (columns, or expressions such as a `COALESCE`), both in `natural` order.
    pub fn beyond(&self, at: impl IntoSimpleExpr, id: impl IntoSimpleExpr, natural: Order) -> Condition {
        let Some(TimeKey { at: time, id: key }) = self.cursor else { return Condition::all() };
        beyond_pair((at, time.into()), (id, key.into()), self.window.order(natural))
    }
}

/// The rows past the key `(first, then)` of a list ordered by those two terms, both read in
/// `order` (before it, reading descending): `first` past the key's, or equal and `then` past.
pub fn beyond_pair(
    (first, first_key): (impl IntoSimpleExpr, Value),
    (then, then_key): (impl IntoSimpleExpr, Value),
    order: Order,
) -> Condition {
    // Called as functions: in scope as a trait, its `min`/`eq` would shadow `Ord`'s.
    use sea_orm::sea_query::ExprTrait as E;
    let (first, then) = (first.into_simple_expr(), then.into_simple_expr());
    let (past, tie) = match order {
        Order::Desc => (E::lt(first.clone(), first_key.clone()), E::lt(then, then_key)),
        _ => (E::gt(first.clone(), first_key.clone()), E::gt(then, then_key)),
    };
    Condition::any().add(past).add(Condition::all().add(E::eq(first, first_key)).add(tie))
}

/// A paged field's share of a query's complexity (async-graphql's `complexity` attribute):
/// what it selects counts once per item the page may hold, so a few fields nested in pages
/// of pages weigh what they may return. A size the page refuses weighs as asked (a negative
/// one nothing): the field's own check then answers it.
pub fn complexity(requested: Option<i32>, child_complexity: usize) -> usize {
    let items = requested.map_or(PageSize::DEFAULT as usize, |n| usize::try_from(n).unwrap_or(0));
    items.saturating_mul(child_complexity).saturating_add(1)
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
    fn page_sizes_default_to_50_and_stop_at_the_largest_page() {
        assert_eq!(PageSize::parse(None, 100).map(PageSize::get).ok(), Some(50));
        assert_eq!(PageSize::parse(Some(0), 100).map(PageSize::get).ok(), Some(0));
        assert_eq!(PageSize::parse(Some(100), 100).map(PageSize::get).ok(), Some(100));
        assert!(PageSize::parse(Some(101), 100).is_err());
        assert!(PageSize::parse(Some(-1), 100).is_err());
        assert_eq!(PageSize::parse(None, 20).map(PageSize::get).ok(), Some(20));
        assert_eq!(PageSize::parse(Some(500), 1_000).map(PageSize::get).ok(), Some(500));
    }

    #[test]
    fn a_page_weighs_what_it_selects_once_per_item() {
        assert_eq!(complexity(Some(100), 5), 501);
        assert_eq!(complexity(None, 5), 251);
        assert_eq!(complexity(Some(0), 5), 1);
        assert_eq!(complexity(Some(-3), 5), 1);
        assert_eq!(complexity(Some(i32::MAX), usize::MAX), usize::MAX);
    }

    #[test]
    fn a_window_from_the_end_reads_in_reverse_and_turns_the_page_round() {
        let size = PageSize::parse(Some(2), 100).unwrap_or(PageSize(0));
        let start = Window { limit: size, from_end: false };
        assert_eq!((start.sql_order(Order::Desc), start.order(Order::Asc)), ("DESC", Order::Asc));
        assert_eq!(start.split(vec![1, 2, 3]), (vec![1, 2], true));
        let end = Window { from_end: true, ..start };
        assert_eq!((end.sql_order(Order::Desc), end.order(Order::Asc)), ("ASC", Order::Desc));
        assert_eq!(end.split(vec![9, 8, 7]), (vec![8, 9], true), "read 9, 8 from the end");
        assert_eq!(end.split(vec![9]), (vec![9], false));
        assert_eq!(end.fetch_limit(), 3);
    }

    #[test]
    fn a_keyset_keeps_the_rows_beyond_its_cursor_in_the_direction_it_reads() {
        let limit = PageSize::parse(Some(2), 100).unwrap_or(PageSize(0));
        let forward = Keyset { cursor: Some(7), window: Window { limit, from_end: false } };
        assert_eq!((forward.sql_beyond(Order::Desc), forward.sql_beyond(Order::Asc)), ("<", ">"));
        let backward = Keyset { window: Window { from_end: true, ..forward.window }, ..forward };
        assert_eq!((backward.sql_beyond(Order::Desc), backward.sql_beyond(Order::Asc)), (">", "<"));
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

//! Relay cursors: list positions for lists ordered by the server, items' keys for lists read
//! by key (`paging::Keyset`: rooms, mentions, saved messages, reminders, Later, deliveries,
//! conversations), seqs for messages. What a page reads is a `paging::Window`; page sizes are `paging::PageSize`.
//!
//! A position cursor counts from the end of the list the page was read from: `"12"` is the
//! thirteenth item from the start, `"e12"` the thirteenth from the end. `last` without
//! `before` reads from the end, so its cursors count from there, and paging on from them
//! stays there: no page needs the list's length.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{ObjectType, OutputType};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::paging::{Keyset, PageSize, TimeKey, Window};

/// Where a position cursor points. Bounded, so no cursor can overflow the database's
/// integer types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    index: u64,
    from_end: bool,
}

impl Position {
    fn parse(cursor: &str) -> ApiResult<Self> {
        let (digits, from_end) = match cursor.strip_prefix('e') {
            Some(digits) => (digits, true),
            None => (cursor, false),
        };
        // `u32::from_str` takes a leading `+`; a cursor is only ever digits.
        let index = digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse::<u32>().ok())
            .flatten()
            .ok_or_else(|| ApiError::bad_input("invalid cursor"))?;
        Ok(Self { index: index.into(), from_end })
    }

    fn cursor(self) -> String {
        if self.from_end { format!("e{}", self.index) } else { self.index.to_string() }
    }
}

/// Whether a page's Relay arguments page backward (`last`/`before`) rather than forward
/// (`first`/`after`, or none); both at once is refused.
pub fn backward<T, U>(
    first: Option<T>,
    after: Option<U>,
    last: Option<T>,
    before: Option<U>,
) -> ApiResult<bool> {
    let forward = first.is_some() || after.is_some();
    let backward = last.is_some() || before.is_some();
    if forward && backward {
        return Err(ApiError::bad_input("page forward (first/after) or backward (last/before), not both"));
    }
    Ok(backward)
}

/// The window a page's Relay arguments ask for: `first`/`after` page forward, `last`/`before`
/// backward (from the end with no `before`); both directions at once is refused.
pub fn window(
    first: Option<i32>,
    after: Option<&str>,
    last: Option<i32>,
    before: Option<&str>,
    max_page: u64,
) -> ApiResult<Window> {
    let backward = backward(first, after, last, before)?;
    let (size, cursor) = if backward { (last, before) } else { (first, after) };
    let limit = PageSize::parse(size, max_page)?;
    let Some(cursor) = cursor.map(Position::parse).transpose()? else {
        return Ok(Window { offset: 0, limit, from_end: backward });
    };
    let Position { index, from_end } = cursor;
    // Moving away from the end the cursor counts from: the items past it. Moving towards
    // it: the `limit` items just before it, fewer if the end comes first.
    Ok(if backward == from_end {
        Window { offset: index + 1, limit, from_end }
    } else {
        Window { offset: index.saturating_sub(limit.get()), limit: limit.at_most(index), from_end }
    })
}

/// A page read through `window` ([`Window::split`]) as a connection whose cursors are the
/// items' positions.
pub fn window_connection<T: OutputType>(window: Window, items: Vec<T>, more: bool) -> Connection<String, T> {
    window_connection_with(window, items, more, EmptyFields)
}

/// [`window_connection`] with fields of the connection's own (`totalCount`).
pub fn window_connection_with<T: OutputType, F: ObjectType>(
    window: Window,
    items: Vec<T>,
    more: bool,
    fields: F,
) -> Connection<String, T, F> {
    let Window { offset, from_end, .. } = window;
    // `more` lies beyond the page in the direction it was read; behind it, the skipped items,
    // unless the page is empty (its cursor pointed past the end): with no cursor to page on
    // from, "more that way" would send a client round in circles.
    let behind = offset > 0 && !items.is_empty();
    let (has_previous, has_next) = if from_end { (more, behind) } else { (behind, more) };
    let mut connection = Connection::with_additional_fields(has_previous, has_next, fields);
    let last = items.len().saturating_sub(1) as u64;
    for (i, item) in items.into_iter().enumerate() {
        let i = i as u64;
        let index = if from_end { offset + (last - i) } else { offset + i };
        connection.edges.push(Edge::new(Position { index, from_end }.cursor(), item));
    }
    connection
}

/// An item's key written as a cursor, and read back: the cursors of a [`Keyset`] page.
pub trait KeyCursor: Sized {
    /// The key a cursor names; `None` if it names none.
    fn parse(cursor: &str) -> Option<Self>;
    fn cursor(&self) -> String;
}

/// A message id (UUIDv7, so ids grow with time), for lists ordered by message.
impl KeyCursor for Uuid {
    fn parse(cursor: &str) -> Option<Self> {
        Uuid::parse_str(cursor).ok()
    }

    fn cursor(&self) -> String {
        self.to_string()
    }
}

/// A time in a key cursor: `<seconds>.<nanoseconds>`, nine digits (ten in a leap second,
/// which chrono keeps as a nanosecond count past 10⁹ and SQLite as text), so that the time
/// read back is exactly the one the database holds.
pub fn time_cursor(at: DateTime<Utc>) -> String {
    format!("{}.{:09}", at.timestamp(), at.timestamp_subsec_nanos())
}

/// The time a [`time_cursor`] names.
pub fn parse_time_cursor(cursor: &str) -> Option<DateTime<Utc>> {
    let (seconds, nanos) = cursor.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(seconds) || !(9..=10).contains(&nanos.len()) || !digits(nanos) {
        return None;
    }
    DateTime::from_timestamp(seconds.parse().ok()?, nanos.parse().ok()?)
}

/// An item's place in a list ordered by time as a cursor: `<time>_<id>`.
impl KeyCursor for TimeKey {
    fn parse(cursor: &str) -> Option<Self> {
        let (at, id) = cursor.split_once('_')?;
        Some(Self { at: parse_time_cursor(at)?, id: Uuid::parse_str(id).ok()? })
    }

    fn cursor(&self) -> String {
        format!("{}_{}", time_cursor(self.at), self.id)
    }
}

/// The keyset a page's Relay arguments ask for: `first` items after the key `after`, or, from
/// the list's end, `last` items before the key `before`; both directions at once is refused.
pub fn keyset<K: KeyCursor>(
    first: Option<i32>,
    after: Option<&str>,
    last: Option<i32>,
    before: Option<&str>,
    max_page: u64,
) -> ApiResult<Keyset<K>> {
    let backward = backward(first, after, last, before)?;
    let (size, cursor) = if backward { (last, before) } else { (first, after) };
    let limit = PageSize::parse(size, max_page)?;
    let cursor = cursor.map(|c| K::parse(c).ok_or_else(|| ApiError::bad_input("invalid cursor")));
    Ok(Keyset { cursor: cursor.transpose()?, window: Window { offset: 0, limit, from_end: backward } })
}

/// A page read through `keyset` ([`Window::split`]) as a connection whose cursors are the
/// items' keys.
pub fn keyset_connection<K: KeyCursor, T: OutputType>(
    keyset: &Keyset<K>,
    items: Vec<(K, T)>,
    more: bool,
) -> Connection<String, T> {
    // As in `window_connection`: `more` lies ahead, and behind lies what the cursor's side
    // held, unless the page is empty (the cursor named the list's last item).
    let behind = keyset.cursor.is_some() && !items.is_empty();
    let (has_previous, has_next) = if keyset.window.from_end { (more, behind) } else { (behind, more) };
    let mut connection = Connection::new(has_previous, has_next);
    for (key, item) in items {
        connection.edges.push(Edge::new(key.cursor(), item));
    }
    connection
}

/// A seq cursor (`"42"`): a non-negative seq.
pub fn seq_cursor(cursor: &str) -> ApiResult<i64> {
    cursor.parse::<i64>().ok().filter(|seq| *seq >= 0).ok_or_else(|| ApiError::bad_input("invalid cursor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
    ) -> (u64, u64, bool) {
        let window = window(first, after, last, before, 100).map_err(|e| e.public_message().to_string());
        let window = window.unwrap_or_else(|e| panic!("{e}"));
        (window.offset, window.limit.get(), window.from_end)
    }

    #[test]
    fn forward_pages_count_from_the_start() {
        assert_eq!(at(None, None, None, None), (0, 50, false));
        assert_eq!(at(Some(3), None, None, None), (0, 3, false));
        assert_eq!(at(Some(3), Some("4"), None, None), (5, 3, false));
    }

    #[test]
    fn backward_pages_without_a_cursor_count_from_the_end() {
        assert_eq!(at(None, None, Some(3), None), (0, 3, true));
        assert_eq!(at(None, None, Some(3), Some("e0")), (1, 3, true), "the 3 before the last");
        assert_eq!(at(Some(3), Some("e5"), None, None), (2, 3, true), "the 3 after the sixth from the end");
        assert_eq!(at(Some(9), Some("e2"), None, None), (0, 2, true), "only 2 follow it");
    }

    #[test]
    fn backward_pages_before_a_cursor_from_the_start_stop_at_the_start() {
        assert_eq!(at(None, None, Some(3), Some("10")), (7, 3, false));
        assert_eq!(at(None, None, Some(3), Some("2")), (0, 2, false));
        assert_eq!(at(None, None, Some(3), Some("0")), (0, 0, false));
    }

    #[test]
    fn bad_cursors_and_mixed_directions_are_refused() {
        for cursor in ["x", "-1", "+1", "e", "e-1", "4294967296", "e4294967296", " 1"] {
            assert!(window(None, Some(cursor), None, None, 100).is_err(), "{cursor:?}");
            assert!(window(None, None, None, Some(cursor), 100).is_err(), "{cursor:?}");
        }
        assert!(window(Some(1), None, None, Some("3"), 100).is_err());
        assert!(window(None, Some("3"), Some(1), None, 100).is_err());
        assert!(window(None, None, Some(101), None, 100).is_err());
    }

    #[test]
    fn cursors_name_each_item_counted_from_the_end_it_was_read_from() {
        let cursors = |window: Window, items: Vec<u8>, more| {
            let connection = window_connection(window, items, more);
            let edges = connection.edges.iter().map(|e| e.cursor.clone()).collect::<Vec<_>>();
            (edges, connection.has_previous_page, connection.has_next_page)
        };
        let size = PageSize::parse(Some(2), 100).unwrap_or_else(|_| panic!("a size"));
        let start = Window { offset: 3, limit: size, from_end: false };
        assert_eq!(cursors(start, vec![1, 2], true), (vec!["3".into(), "4".into()], true, true));
        let end = Window { offset: 0, limit: size, from_end: true };
        assert_eq!(cursors(end, vec![1, 2], false), (vec!["e1".into(), "e0".into()], false, false));
        let inner = Window { offset: 4, ..end };
        assert_eq!(cursors(inner, vec![1, 2], true), (vec!["e5".into(), "e4".into()], true, true));
        let past_the_end = (vec![], false, false);
        assert_eq!(cursors(inner, vec![], false), past_the_end, "no cursor to page on from");
        assert_eq!(cursors(start, vec![], false), past_the_end);
    }

    #[test]
    fn key_cursors_read_beyond_the_key_and_say_what_lies_either_side() {
        let id = Uuid::now_v7();
        let page = keyset::<Uuid>(Some(2), Some(&id.to_string()), None, None, 100);
        let page = page.unwrap_or_else(|e| panic!("{}", e.public_message()));
        assert_eq!((page.cursor, page.window.limit.get(), page.window.from_end), (Some(id), 2, false));
        let end = keyset::<Uuid>(None, None, Some(3), None, 100).unwrap_or_else(|_| panic!("a keyset"));
        assert_eq!((end.cursor, end.window.from_end), (None, true));
        for cursor in ["12", "e12", "x"] {
            assert!(keyset::<Uuid>(None, Some(cursor), None, None, 100).is_err(), "{cursor:?}");
        }
        assert!(keyset::<Uuid>(Some(1), None, None, Some(&id.to_string()), 100).is_err());

        let flags = |page: &Keyset<Uuid>, items: Vec<(Uuid, u8)>, more| {
            let connection = keyset_connection(page, items, more);
            let cursors = connection.edges.iter().map(|e| e.cursor.clone()).collect::<Vec<_>>();
            (cursors, connection.has_previous_page, connection.has_next_page)
        };
        assert_eq!(flags(&page, vec![(id, 1)], true), (vec![id.to_string()], true, true));
        assert_eq!(flags(&page, vec![], false), (vec![], false, false), "nothing beyond the last item");
        assert_eq!(flags(&end, vec![(id, 1)], true), (vec![id.to_string()], true, false));
    }

    #[test]
    fn times_in_cursors_keep_every_nanosecond() {
        let at = DateTime::from_timestamp(1_796_000_000, 5_000).unwrap_or_default();
        assert_eq!(time_cursor(at), "1796000000.000005000");
        assert_eq!(parse_time_cursor(&time_cursor(at)), Some(at));
        let leap = DateTime::from_timestamp(1_796_000_039, 1_000_000_005).unwrap_or_default();
        assert_eq!(time_cursor(leap), "1796000039.1000000005", "second 60 of a minute");
        assert_eq!(parse_time_cursor(&time_cursor(leap)), Some(leap));
        let bad = ["", "12", "1.5", "-1.000000000", "1.+00000000", ".000000000", "1.00000000000"];
        for bad in bad.into_iter().chain(["1796000000.1000000000"]) {
            assert_eq!(parse_time_cursor(bad), None, "{bad:?}");
        }
        let key = TimeKey { at, id: Uuid::nil() };
        assert_eq!(key.cursor(), "1796000000.000005000_00000000-0000-0000-0000-000000000000");
        assert_eq!(TimeKey::parse(&key.cursor()), Some(key));
        let id = Uuid::nil();
        for bad in ["e12", "1796000000.000005000", "1796000000.000005000_x", &format!("x_{id}")] {
            assert_eq!(TimeKey::parse(bad), None, "{bad:?}");
        }
    }
}

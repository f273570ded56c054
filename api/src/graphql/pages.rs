//! Relay cursors. Every list that grows pages by key (`paging::Keyset`): a cursor names an
//! item's place (`KeyCursor`), and a page starts beyond it, so items added or removed around
//! it, even the item itself, move no page. Messages page by seq. Which rows a page reads,
//! and in which direction, is a `paging::Window`; page sizes are `paging::PageSize`.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{ObjectType, OutputType};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::paging::{Keyset, PageSize, TimeKey, Window};

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

/// The longest cursor read: room cursors carry a channel's name (80 characters), user cursors
/// a handle; anything longer names no place and is refused before it is parsed.
const MAX_CURSOR_BYTES: usize = 512;

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
    let parse = |c: &str| Some(c).filter(|c| c.len() <= MAX_CURSOR_BYTES).and_then(K::parse);
    let cursor = cursor.map(|c| parse(c).ok_or_else(|| ApiError::bad_input("invalid cursor")));
    Ok(Keyset { cursor: cursor.transpose()?, window: Window { limit, from_end: backward } })
}

/// A page read through `keyset` ([`Window::split`]) as a connection whose cursors are the
/// items' keys.
pub fn keyset_connection<K: KeyCursor, T: OutputType>(
    keyset: &Keyset<K>,
    items: Vec<(K, T)>,
    more: bool,
) -> Connection<String, T> {
    keyset_connection_with(keyset, items, more, EmptyFields)
}

/// [`keyset_connection`] with fields of the connection's own (`totalCount`).
pub fn keyset_connection_with<K: KeyCursor, T: OutputType, F: ObjectType>(
    keyset: &Keyset<K>,
    items: Vec<(K, T)>,
    more: bool,
    fields: F,
) -> Connection<String, T, F> {
    // `more` lies beyond the page in the direction it was read; behind it lies what the
    // cursor's side held, unless the page is empty (the cursor named the list's last item).
    let behind = keyset.cursor.is_some() && !items.is_empty();
    let (has_previous, has_next) = if keyset.window.from_end { (more, behind) } else { (behind, more) };
    let mut connection = Connection::with_additional_fields(has_previous, has_next, fields);
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

    #[test]
    fn key_cursors_read_beyond_the_key_and_say_what_lies_either_side() {
        let id = Uuid::now_v7();
        let page = keyset::<Uuid>(Some(2), Some(&id.to_string()), None, None, 100);
        let page = page.unwrap_or_else(|e| panic!("{}", e.public_message()));
        assert_eq!((page.cursor, page.window.limit.get(), page.window.from_end), (Some(id), 2, false));
        let end = keyset::<Uuid>(None, None, Some(3), None, 100).unwrap_or_else(|_| panic!("a keyset"));
        assert_eq!((end.cursor, end.window.from_end), (None, true));
        for cursor in ["12", "e12", "x", &format!("{id}{}", " ".repeat(512))] {
            assert!(keyset::<Uuid>(None, Some(cursor), None, None, 100).is_err(), "{cursor:?}");
        }
        assert!(keyset::<Uuid>(Some(1), None, None, Some(&id.to_string()), 100).is_err(), "both ways");
        assert!(keyset::<Uuid>(None, None, Some(101), None, 100).is_err(), "past the largest page");

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

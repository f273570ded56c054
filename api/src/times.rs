//! Moments a client gives, kept to the years 1 to 9999, which every backend stores and
//! compares alike. SQLite compares the stored text, in which a year past 9999 (`+10000-…`)
//! sorts before today, so such a moment would read as past; PostgreSQL refuses years it
//! cannot hold, which would answer INTERNAL. A moment to store (`muteRoom(until:)`,
//! `snoozedUntil`) outside them is refused; a bound of a query (search, metrics) is clamped
//! to them, as a client may send a far-off date for "no bound".

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::error::{ApiError, ApiResult};

/// `at` if its year is 1 to 9999; else BAD_USER_INPUT naming `field`.
pub fn storable(at: DateTime<Utc>, field: &str) -> ApiResult<DateTime<Utc>> {
    if (1..=9999).contains(&at.year()) {
        Ok(at)
    } else {
        Err(ApiError::bad_input(format!("{field}: a moment between the years 1 and 9999")))
    }
}

/// `at`, moved to the first or last moment of the years 1 to 9999 when it lies outside them.
pub fn clamped(at: DateTime<Utc>) -> DateTime<Utc> {
    let first = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC);
    let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single().unwrap_or(DateTime::<Utc>::MAX_UTC);
    at.clamp(first, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn years_past_9999_and_before_1_are_refused_or_clamped() {
        for (text, ok) in [
            ("2026-12-07T00:00:00Z", true),
            ("9999-12-31T23:59:59Z", true),
            ("0001-01-01T00:00:00Z", true),
            ("+10000-01-01T00:00:00Z", false),
            ("-0001-01-01T00:00:00Z", false),
        ] {
            assert_eq!(storable(at(text), "until").is_ok(), ok, "{text}");
        }
        assert_eq!(clamped(at("+10000-01-01T00:00:00Z")), at("9999-12-31T23:59:59Z"));
        assert_eq!(clamped(at("-0001-01-01T00:00:00Z")), at("0001-01-01T00:00:00Z"));
        assert_eq!(clamped(at("2026-12-07T00:00:00Z")), at("2026-12-07T00:00:00Z"));
    }
}

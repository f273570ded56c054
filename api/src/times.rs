//! Moments a client gives (`muteRoom(until:)`, `snoozedUntil`, search and metrics bounds):
//! refused outside the years 1 to 9999, which every backend stores and compares alike.
//! SQLite compares the stored text, in which a year past 9999 (`+10000-…`) sorts before
//! today, so such a moment would read as past; PostgreSQL refuses years it cannot hold, which
//! would answer INTERNAL.

use chrono::{DateTime, Datelike, Utc};

use crate::error::{ApiError, ApiResult};

/// `at` if its year is 1 to 9999; else BAD_USER_INPUT naming `field`.
pub fn storable(at: DateTime<Utc>, field: &str) -> ApiResult<DateTime<Utc>> {
    if (1..=9999).contains(&at.year()) {
        Ok(at)
    } else {
        Err(ApiError::bad_input(format!("{field}: a moment between the years 1 and 9999")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_past_9999_and_before_1_are_refused() {
        for (text, ok) in [
            ("2026-12-07T00:00:00Z", true),
            ("9999-12-31T23:59:59Z", true),
            ("0001-01-01T00:00:00Z", true),
            ("+10000-01-01T00:00:00Z", false),
            ("-0001-01-01T00:00:00Z", false),
        ] {
            let at: DateTime<Utc> = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(storable(at, "until").is_ok(), ok, "{text}");
        }
    }
}

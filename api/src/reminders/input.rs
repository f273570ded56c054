//! Validated inputs of reminders: a moment in the next year and a note of bounded length.

use chrono::{DateTime, Duration, Utc};

use crate::error::{ApiError, ApiResult};

/// When a reminder fires: after now, and at most a year ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemindAt(DateTime<Utc>);

impl RemindAt {
    pub fn parse(at: DateTime<Utc>, now: DateTime<Utc>) -> ApiResult<Self> {
        if at <= now {
            return Err(ApiError::bad_input("remindAt must be in the future"));
        }
        if at > now + Duration::days(365) {
            return Err(ApiError::bad_input("remindAt may be at most a year ahead"));
        }
        Ok(Self(at))
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

/// A reminder's note: trimmed, at most 1 000 characters; an empty one is no note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderNote(String);

impl ReminderNote {
    const MAX_CHARS: usize = 1_000;

    pub fn parse(raw: Option<&str>) -> ApiResult<Option<Self>> {
        let Some(note) = raw.map(str::trim).filter(|note| !note.is_empty()) else { return Ok(None) };
        if note.chars().count() > Self::MAX_CHARS {
            return Err(ApiError::bad_input("a reminder's note has at most 1000 characters"));
        }
        Ok(Some(Self(note.to_owned())))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remind_at_is_in_the_next_year() {
        let now = Utc::now();
        assert!(RemindAt::parse(now, now).is_err());
        assert!(RemindAt::parse(now - Duration::seconds(1), now).is_err());
        assert!(RemindAt::parse(now + Duration::seconds(1), now).is_ok());
        assert!(RemindAt::parse(now + Duration::days(365), now).is_ok());
        assert!(RemindAt::parse(now + Duration::days(366), now).is_err());
    }

    #[test]
    fn a_note_is_trimmed_and_bounded() {
        assert_eq!(ReminderNote::parse(Some("  ")).ok(), Some(None));
        assert_eq!(
            ReminderNote::parse(Some(" hi ")).ok().flatten().map(ReminderNote::into_string),
            Some("hi".into())
        );
        assert!(ReminderNote::parse(Some(&"é".repeat(1_000))).is_ok());
        assert!(ReminderNote::parse(Some(&"é".repeat(1_001))).is_err());
    }
}

//! `ChannelName`: a channel's name, parsed (parse, don't validate).

use crate::error::{ApiError, ApiResult};

/// Trimmed, without a leading `#`, 1–80 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelName(String);

impl ChannelName {
    const MAX_CHARS: usize = 80;

    pub fn parse(raw: &str) -> ApiResult<Self> {
        let name = raw.trim().trim_start_matches('#').trim();
        match name.chars().count() {
            0 => Err(ApiError::bad_input("a channel name cannot be empty")),
            n if n > Self::MAX_CHARS => Err(ApiError::bad_input("a channel name has at most 80 characters")),
            _ => Ok(Self(name.to_owned())),
        }
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::ChannelName;

    fn parsed(raw: &str) -> Option<String> {
        ChannelName::parse(raw).ok().map(ChannelName::into_string)
    }

    #[test]
    fn a_leading_hash_and_spaces_are_dropped() {
        assert_eq!(parsed("  #random "), Some("random".into()));
        assert_eq!(parsed("# two words"), Some("two words".into()));
    }

    #[test]
    fn empty_names_are_refused() {
        assert_eq!(parsed(""), None);
        assert_eq!(parsed(" # "), None);
    }

    #[test]
    fn names_have_at_most_80_characters() {
        assert!(parsed(&"é".repeat(80)).is_some());
        assert!(parsed(&"é".repeat(81)).is_none());
    }
}

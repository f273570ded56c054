//! `ChannelName`: a channel's name, parsed (parse, don't validate).

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::{ApiError, ApiResult};

/// Trimmed, without a leading `#`, 1–80 characters, in one Unicode form (NFC), with nothing
/// invisible in it ([`invisible`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelName(String);

impl ChannelName {
    const MAX_CHARS: usize = 80;

    pub fn parse(raw: &str) -> ApiResult<Self> {
        let name: String = raw.trim().trim_start_matches('#').trim().nfc().collect();
        match name.chars().count() {
            0 => Err(ApiError::bad_input("a channel name cannot be empty")),
            n if n > Self::MAX_CHARS => Err(ApiError::bad_input("a channel name has at most 80 characters")),
            _ if name.chars().any(invisible) => Err(ApiError::bad_input(
                "a channel name cannot hold control characters, line breaks or invisible formatting",
            )),
            _ => Ok(Self(name)),
        }
    }

    /// What is unique among an organisation's live channels: the name lowercased, so that
    /// `General` and `general` are one name, as in Slack and Mattermost (which show the
    /// name as it was typed).
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Characters that show as nothing, or break the line: `general` with a zero-width space or
/// a soft hyphen in it looks like `general`, yet would be another name beside it. (Slack
/// allows only letters, digits, `-` and `_`; names here keep spaces and any script.)
fn invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
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
    fn names_that_differ_only_by_case_share_a_key() {
        let key = |raw: &str| ChannelName::parse(raw).map(|name| name.key()).ok();
        assert_eq!(key("#General"), key("general"));
        assert_eq!(key("ÉQUIPE Nord"), key("équipe nord"));
        assert_ne!(key("general"), key("generals"));
        assert_eq!(parsed("General"), Some("General".into()), "the name keeps its case");
    }

    #[test]
    fn names_have_at_most_80_characters() {
        assert!(parsed(&"é".repeat(80)).is_some());
        assert!(parsed(&"é".repeat(81)).is_none());
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for raw in
            ["gen\u{200B}eral", "gen\u{AD}eral", "two\nlines", "tab\there", "\u{202E}lareneg", "a\u{2028}b"]
        {
            assert_eq!(parsed(raw), None, "{raw:?}");
        }
        assert_eq!(parsed("équipe 🚀"), Some("équipe 🚀".into()));
    }

    #[test]
    fn one_name_whatever_its_unicode_form() {
        let (composed, decomposed) = ("\u{E9}quipe", "e\u{301}quipe");
        assert_eq!(parsed(decomposed), Some(composed.into()));
        let key = |raw: &str| ChannelName::parse(raw).map(|name| name.key()).ok();
        assert_eq!(key(composed), key(decomposed));
    }
}

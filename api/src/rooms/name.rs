//! `ChannelName`: a channel's name, parsed (parse, don't validate).

use unicode_normalization::UnicodeNormalization;

use crate::error::{ApiError, ApiResult};
use crate::text;

/// Trimmed, without a leading `#`, 1–80 characters, in one Unicode form (NFC), without control
/// characters or line breaks, and not one that shows as nothing (`text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelName(String);

impl ChannelName {
    const MAX_CHARS: usize = 80;

    pub fn parse(raw: &str) -> ApiResult<Self> {
        let name: String = raw.trim().trim_start_matches('#').trim().nfc().collect();
        match name.chars().count() {
            _ if text::shows_nothing(&name) => Err(ApiError::bad_input("a channel name cannot be empty")),
            n if n > Self::MAX_CHARS => Err(ApiError::bad_input("a channel name has at most 80 characters")),
            _ if !text::is_one_line(&name) => {
                Err(ApiError::bad_input("a channel name is one line, without control characters"))
            }
            _ => Ok(Self(name)),
        }
    }

    /// What is unique among an organisation's live channels: the name as it reads, lowercased,
    /// so that `General` and `general` are one name, as in Slack and Mattermost (which show the
    /// name as it was typed). Characters that show as nothing are left out and runs of spaces
    /// count as one, so `gen<zero-width space>eral` or `general<variation selector>` is
    /// `general` too; the name itself keeps them (Persian needs its zero-width non-joiner, an
    /// emoji sequence its joiner).
    pub fn key(&self) -> String {
        let visible: String = self.0.chars().filter(|c| !text::default_ignorable(*c)).collect();
        visible.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
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
        assert_eq!(parsed("\u{200B}"), None, "a name that shows as nothing is empty");
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
    fn control_characters_and_line_breaks_are_refused() {
        for raw in ["two\nlines", "tab\there", "bell\u{7}", "a\u{2028}b", "a\u{2029}b"] {
            assert_eq!(parsed(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn what_shows_as_nothing_is_no_part_of_the_key() {
        let key = |raw: &str| ChannelName::parse(raw).map(|name| name.key()).ok();
        for lookalike in
            ["gen\u{200B}eral", "gen\u{AD}eral", "general\u{FE0F}", "\u{2060}General", "gen\u{E0041}eral"]
        {
            assert_eq!(key(lookalike), key("general"), "{lookalike:?}");
        }
        assert_eq!(key("two  words"), key("two\u{A0}words"), "spaces of any kind and number");
        let persian = "می\u{200C}خواهم";
        assert_eq!(parsed(persian).as_deref(), Some(persian), "the name keeps what the key leaves out");
        assert_eq!(parsed("équipe 👩\u{200D}💻"), Some("équipe 👩\u{200D}💻".into()));
    }

    #[test]
    fn one_name_whatever_its_unicode_form() {
        let (composed, decomposed) = ("\u{E9}quipe", "e\u{301}quipe");
        assert_eq!(parsed(decomposed), Some(composed.into()));
        let key = |raw: &str| ChannelName::parse(raw).map(|name| name.key()).ok();
        assert_eq!(key(composed), key(decomposed));
    }
}

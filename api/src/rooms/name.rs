//! `ChannelName`: a channel's name, parsed (parse, don't validate).

use unicode_normalization::UnicodeNormalization;

use crate::error::{ApiError, ApiResult};

/// Trimmed, without a leading `#`, 1–80 characters, in one Unicode form (NFC), without control
/// characters or line breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelName(String);

impl ChannelName {
    const MAX_CHARS: usize = 80;

    pub fn parse(raw: &str) -> ApiResult<Self> {
        let name: String = raw.trim().trim_start_matches('#').trim().nfc().collect();
        match name.chars().count() {
            0 => Err(ApiError::bad_input("a channel name cannot be empty")),
            n if n > Self::MAX_CHARS => Err(ApiError::bad_input("a channel name has at most 80 characters")),
            _ if name.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) => {
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
        let visible: String = self.0.chars().filter(|c| !default_ignorable(*c)).collect();
        visible.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): what a renderer shows
/// as nothing unless it supports it, from soft hyphens and zero-width spaces to variation
/// selectors and tags.
fn default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{34F}'
            | '\u{61C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
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

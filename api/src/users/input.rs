//! Validated inputs of users: parse, don't validate.

use unicode_normalization::UnicodeNormalization;

use crate::error::{ApiError, ApiResult};
use crate::text;

/// A handle: lower-cased, without a leading `@`, 1–40 of letters, digits, `-`, `_`, `.`,
/// starting with a letter or digit; one that a mention could reach (`mentions::parse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle(String);

impl Handle {
    const MAX_CHARS: usize = 40;
    /// `@channel`, `@everyone` and `@here` mean rooms' members: a user so named (or with
    /// punctuation after it, which a mention takes as the sentence's) could never be named.
    const RESERVED: [&str; 3] = ["channel", "everyone", "here"];

    pub fn parse(raw: &str) -> ApiResult<Self> {
        let handle = raw.trim().trim_start_matches('@').to_lowercase();
        let valid = handle.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && handle.chars().count() <= Self::MAX_CHARS
            && handle.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(ApiError::bad_input(
                "a handle has 1–40 characters: letters, digits, '-', '_' or '.', and starts with a letter or digit",
            ));
        }
        if Self::RESERVED.contains(&handle.trim_end_matches(['.', '-', '_'])) {
            return Err(ApiError::bad_input(format!(
                "`{handle}` is reserved: @channel, @everyone and @here mention a room's members"
            )));
        }
        Ok(Self(handle))
    }

    /// A handle as typed to find an existing user: trimmed, without `@`, lower-cased, but
    /// not held to the rules of new handles (users created before a rule keep their handles).
    pub fn lookup(raw: &str) -> Self {
        Self(raw.trim().trim_start_matches('@').to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, 1–80 characters, in one Unicode form (NFC), one line, and not one
/// that shows as nothing (`text`), as channel names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    const MAX_CHARS: usize = 80;

    pub fn parse(raw: &str) -> ApiResult<Self> {
        let name: String = raw.trim().nfc().collect();
        match name.chars().count() {
            _ if text::shows_nothing(&name) => Err(ApiError::bad_input("a display name cannot be empty")),
            n if n > Self::MAX_CHARS => Err(ApiError::bad_input("a display name has at most 80 characters")),
            _ if !text::is_one_line(&name) => {
                Err(ApiError::bad_input("a display name is one line, without control characters"))
            }
            _ => Ok(Self(name)),
        }
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An email address: trimmed, lower-cased, and one that SMTP can address (`lettre`'s rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> ApiResult<Self> {
        let email = raw.trim().to_lowercase();
        match email.parse::<lettre::Address>() {
            Ok(_) if email.len() <= 254 => Ok(Self(email)),
            _ => Err(ApiError::bad_input("not an email address")),
        }
    }

    /// An address, or `None` for an empty one (which removes it).
    pub fn parse_or_empty(raw: &str) -> ApiResult<Option<Self>> {
        if raw.trim().is_empty() { Ok(None) } else { Self::parse(raw).map(Some) }
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{DisplayName, EmailAddress, Handle};

    #[test]
    fn an_email_address_is_trimmed_lower_cased_and_addressable() {
        let parsed = EmailAddress::parse(" Dana@Example.ORG ").map(EmailAddress::into_string);
        assert_eq!(parsed.ok(), Some("dana@example.org".to_owned()));
        for bad in ["", "dana", "dana@", "@example.org", "da na@example.org", "dana@exa mple.org"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn a_handle_is_lower_cased_without_its_at() {
        assert_eq!(Handle::parse(" @Dana.K ").ok().map(|h| h.as_str().to_owned()), Some("dana.k".into()));
    }

    #[test]
    fn a_handle_refuses_other_characters_and_lengths() {
        for raw in ["", "@", "da na", "dana!", "ダナ", &"a".repeat(41), ".dana", "_", "-x"] {
            assert!(Handle::parse(raw).is_err(), "{raw:?} should be refused");
        }
        assert!(Handle::parse(&"a".repeat(40)).is_ok());
    }

    #[test]
    fn a_handle_may_not_be_a_room_wide_mention() {
        for raw in ["channel", "@Everyone", "here", "here.", "channel__"] {
            let refused = Handle::parse(raw).err().map(|e| e.public_message().to_owned());
            assert!(refused.is_some_and(|m| m.contains("reserved")), "{raw:?} should be reserved");
        }
        for raw in ["channels", "here1", "everyone.else", "there"] {
            assert!(Handle::parse(raw).is_ok(), "{raw:?} is an ordinary handle");
        }
    }

    #[test]
    fn a_display_name_is_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Dana K ").ok().map(DisplayName::into_string), Some("Dana K".into()));
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(81)).is_err());
    }

    #[test]
    fn a_display_name_is_one_visible_line_in_one_unicode_form() {
        for raw in ["\u{200B}", " \u{2060} ", "Dana\nK", "Dana\tK", "Dana\u{2028}K"] {
            assert!(DisplayName::parse(raw).is_err(), "{raw:?} should be refused");
        }
        let parsed = DisplayName::parse("Rene\u{301}e").ok().map(DisplayName::into_string);
        assert_eq!(parsed, Some("Ren\u{E9}e".into()));
        assert!(DisplayName::parse("می\u{200C}خواهم").is_ok(), "a joiner inside a name is its own");
    }
}

//! Finding mentions in a message body: `@handle`, and `@channel` / `@here` (channels only,
//! decided by the caller).
//!
//! An `@` starts a mention only at the start of the body or after a character that cannot be
//! part of a handle or an address (so `bob@example.com` mentions nobody). The handle runs over
//! letters, digits, `-`, `_` and `.`; trailing `.`, `-` and `_` are sentence punctuation, not
//! handle (`@bob.` and `@bob...` mention `bob`). Handles compare lower-cased, as stored.

use std::collections::BTreeSet;

/// What a body mentions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    /// Lower-cased handles, each once.
    pub handles: BTreeSet<String>,
    /// `@channel` (or `@everyone`): every member.
    pub channel: bool,
    /// `@here`: the members online now.
    pub here: bool,
}

impl Mentions {
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty() && !self.channel && !self.here
    }
}

/// Longest handle (`users::input::Handle`).
const MAX_HANDLE: usize = 40;

fn is_handle_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

pub fn parse(body: &str) -> Mentions {
    let mut mentions = Mentions::default();
    let mut previous: Option<char> = None;
    for (at, c) in body.char_indices() {
        let starts =
            c == '@' && previous.is_none_or(|p| !is_handle_char(p) && !p.is_alphanumeric() && p != '@');
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &body[at + 1..];
        let end = rest.find(|c: char| !is_handle_char(c)).unwrap_or(rest.len());
        let handle = rest[..end].trim_end_matches(['.', '-', '_']).to_ascii_lowercase();
        match handle.as_str() {
            "" => {}
            "channel" | "everyone" => mentions.channel = true,
            "here" => mentions.here = true,
            _ if handle.len() <= MAX_HANDLE => {
                mentions.handles.insert(handle);
            }
            _ => {}
        }
    }
    mentions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handles(body: &str) -> Vec<String> {
        parse(body).handles.into_iter().collect()
    }

    #[test]
    fn handles_are_found_with_punctuation_around_them() {
        assert_eq!(handles("@alice, can you ask @Bob.Smith?"), ["alice", "bob.smith"]);
        assert_eq!(handles("(@carol) and @dave... and @erin-"), ["carol", "dave", "erin"]);
        assert_eq!(handles("@alice @alice"), ["alice"]);
        assert_eq!(handles("héllo@zoé"), Vec::<String>::new(), "after a letter in any script");
    }

    #[test]
    fn addresses_and_lone_signs_are_no_mentions() {
        assert_eq!(handles("mail bob@example.com or @ me"), Vec::<String>::new());
        assert_eq!(handles("@@alice"), Vec::<String>::new());
        assert_eq!(handles(&format!("@{}", "a".repeat(41))), Vec::<String>::new());
    }

    #[test]
    fn room_wide_mentions() {
        let m = parse("@channel standup, @here if you are around");
        assert!(m.channel && m.here && m.handles.is_empty());
        assert!(parse("no one").is_empty());
    }
}

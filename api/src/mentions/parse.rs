//! Finding mentions in a message body: `@handle`, and `@channel` / `@here` (channels only,
//! decided by the caller).
//!
//! An `@` starts a mention only at the start of the body or after a character that cannot be
//! part of a handle or an address (so `bob@example.com` mentions nobody). The handle runs over
//! letters, digits, `-`, `_` and `.`. Handles may end in those too (`bob_`), while in a
//! sentence they are punctuation (`@bob.`): such a mention names the full handle if someone
//! has it, else the handle without the trailing characters. Handles compare lower-cased, as
//! stored.

use std::collections::BTreeMap;

/// Most handles of one message that are looked up: the first written. Later ones mention
/// nobody (a pasted stack trace full of `@Override` must not cost a lookup per word).
pub const MAX_HANDLES: usize = 50;

/// What a body mentions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Mentions {
    /// Lower-cased handles as written, each once, in the order written; at most
    /// [`MAX_HANDLES`].
    pub handles: Vec<String>,
    /// For a handle written with trailing `.`, `-` or `_`: the handle without them, meant
    /// when nobody has the handle as written.
    pub fallbacks: BTreeMap<String, String>,
    /// `@channel` (or `@everyone`): every member.
    pub channel: bool,
    /// `@here`: the members online now.
    pub here: bool,
}

impl Mentions {
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty() && !self.channel && !self.here
    }

    /// The handles only, without `@channel` and `@here`.
    pub fn named(&self) -> Self {
        Self { channel: false, here: false, ..self.clone() }
    }

    fn add(&mut self, handle: String) {
        if self.handles.len() < MAX_HANDLES && !self.handles.contains(&handle) {
            self.handles.push(handle);
        }
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
        let written = rest[..end].to_ascii_lowercase();
        let trimmed = written.trim_end_matches(['.', '-', '_']);
        match trimmed {
            "" => {}
            "channel" | "everyone" => mentions.channel = true,
            "here" => mentions.here = true,
            _ if written.len() <= MAX_HANDLE => {
                if trimmed != written {
                    mentions.fallbacks.insert(written.clone(), trimmed.to_owned());
                }
                mentions.add(written);
            }
            // Too long to be a handle as written, so the punctuation is the sentence's.
            _ if trimmed.len() <= MAX_HANDLE => mentions.add(trimmed.to_owned()),
            _ => {}
        }
    }
    mentions
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The handles meant when nobody has a handle ending in punctuation.
    fn handles(body: &str) -> Vec<String> {
        let m = parse(body);
        m.handles
            .iter()
            .map(|h| m.fallbacks.get(h).unwrap_or(h).clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn handles_are_found_with_punctuation_around_them() {
        assert_eq!(handles("@alice, can you ask @Bob.Smith?"), ["alice", "bob.smith"]);
        assert_eq!(handles("(@carol) and @dave... and @erin-"), ["carol", "dave", "erin"]);
        let m = parse("thanks @bob_!");
        assert!(m.handles == ["bob_"] && m.fallbacks.get("bob_").is_some_and(|h| h == "bob"));
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
    fn a_longest_handle_ends_a_sentence() {
        let longest = "a".repeat(MAX_HANDLE);
        assert_eq!(handles(&format!("ask @{longest}.")), std::slice::from_ref(&longest));
        assert_eq!(handles(&format!("ask @{longest}...")), [longest]);
    }

    #[test]
    fn the_first_handles_written_count() {
        let body = format!("{} and @bob", (0..60).map(|i| format!("@a{i}")).collect::<Vec<_>>().join(" "));
        let m = parse(&format!("@zoe {body}"));
        assert_eq!(m.handles.len(), MAX_HANDLES);
        assert_eq!((m.handles[0].as_str(), m.handles[1].as_str()), ("zoe", "a0"));
        assert!(!m.handles.iter().any(|h| h == "bob"), "written after the first 50");
    }

    #[test]
    fn room_wide_mentions() {
        let m = parse("@channel standup, @here if you are around");
        assert!(m.channel && m.here && m.handles.is_empty());
        assert!(parse("no one").is_empty());
    }
}

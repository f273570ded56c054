//! `SearchQuery`: what a user typed into the search box, parsed (parse, don't validate).
//!
//! The syntax is the one Slack and web search engines taught users: words (all must match),
//! `"exact phrase"`, `-excluded`, `a OR b`, prefix `word*`, and the operators `from:@handle`
//! and `in:#channel`. Every word is cut to letters and digits before it reaches an engine, so
//! no text of the user's is ever read as FTS5 or tsquery syntax: `NEAR`, `^`, `col:`, `&`, `!`
//! and quotes are separators, and whatever the parser does not understand is searched as the
//! plain words it contains. The engines then receive queries built from these words only
//! ([`SearchQuery::tsquery`], [`SearchQuery::fts5`]).

use crate::error::{ApiError, ApiResult};

/// Longest query, in characters.
pub const MAX_CHARS: usize = 256;
/// Most words in one query (phrases count each of their words).
pub const MAX_TERMS: usize = 32;

/// One thing to look for: a word, a word's beginning, or words next to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Lower-cased runs of letters and digits; more than one make a phrase.
    pub words: Vec<String>,
    /// The last word is a prefix (`word*`).
    pub prefix: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// All of these must match; each is a choice of alternatives joined by `OR`.
    pub all_of: Vec<Vec<Term>>,
    /// None of these may match.
    pub none_of: Vec<Term>,
    /// `from:@handle`, lower-cased, without the `@`.
    pub from: Vec<String>,
    /// `in:#channel`, without the `#`.
    pub rooms: Vec<String>,
}

/// A piece of the query before terms are joined.
enum Token {
    Term { term: Term, negated: bool },
    Or,
    From(String),
    In(String),
}

impl SearchQuery {
    pub fn parse(raw: &str) -> ApiResult<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ApiError::bad_input("a search query cannot be empty"));
        }
        if raw.chars().count() > MAX_CHARS {
            return Err(ApiError::bad_input("a search query has at most 256 characters"));
        }
        let mut query = Self::default();
        let mut tokens = tokens(raw).into_iter().peekable();
        let mut joins_previous = false;
        while let Some(token) = tokens.next() {
            match token {
                Token::From(handle) => query.from.push(handle),
                Token::In(room) => query.rooms.push(room),
                Token::Term { term, negated: true } => query.none_of.push(term),
                Token::Term { term, negated: false } => match query.all_of.last_mut() {
                    Some(alternatives) if joins_previous => alternatives.push(term),
                    _ => query.all_of.push(vec![term]),
                },
                // `OR` joins two wanted terms; anywhere else it is the word "or".
                Token::Or => {
                    let between_terms = !joins_previous
                        && query.all_of.last().is_some()
                        && matches!(tokens.peek(), Some(Token::Term { negated: false, .. }));
                    if between_terms {
                        joins_previous = true;
                        continue;
                    }
                    query.all_of.push(vec![Term { words: vec!["or".into()], prefix: false }]);
                }
            }
            joins_previous = false;
        }
        let terms: usize = query.all_of.iter().flatten().chain(&query.none_of).map(|t| t.words.len()).sum();
        if terms > MAX_TERMS {
            return Err(ApiError::bad_input("a search query has at most 32 words"));
        }
        if query.all_of.is_empty() && query.from.is_empty() && query.rooms.is_empty() {
            return Err(ApiError::bad_input("a search query needs a word to look for (or from: or in:)"));
        }
        Ok(query)
    }

    /// Whether there are words to rank by; without them the operators alone select messages.
    pub fn has_words(&self) -> bool {
        !self.all_of.is_empty()
    }

    /// The wanted terms as a PostgreSQL `to_tsquery` text: `a & (b | c:*) & d <-> e`.
    pub fn tsquery(&self) -> Option<String> {
        self.wanted_tsquery(ts_term)
    }

    /// [`Self::tsquery`] with each phrase loosened to any of its words (`a & (b | c)` for
    /// `a "b c"`), or `None` when the query holds no phrase: an index condition that
    /// PostgreSQL's planner estimates at or above the truth. It estimates a phrase as if its
    /// words were independent, so a phrase of words that go together looks a hundred times
    /// rarer than it is, and the planner then skips the search window's index range (see
    /// [`super::window`]) and rechecks every older match as well. The rows found are checked
    /// against the exact query.
    pub fn loosened_tsquery(&self) -> Option<String> {
        let has_phrase = self.all_of.iter().flatten().any(|term| term.words.len() > 1);
        if has_phrase { self.wanted_tsquery(loose_ts_term) } else { None }
    }

    fn wanted_tsquery(&self, render: fn(&Term) -> String) -> Option<String> {
        join(&self.all_of, " & ", |alternatives| {
            let parts: Vec<String> = alternatives.iter().map(render).collect();
            if parts.len() == 1 { parts.concat() } else { format!("({})", parts.join(" | ")) }
        })
    }

    /// The excluded terms as one `to_tsquery` text matching any of them.
    pub fn excluded_tsquery(&self) -> Option<String> {
        join(&self.none_of, " | ", ts_term)
    }

    /// The wanted terms as an FTS5 query: `"a" AND ("b" OR "c"*) AND "d e"`.
    pub fn fts5(&self) -> Option<String> {
        join(&self.all_of, " AND ", |alternatives| {
            let parts: Vec<String> = alternatives.iter().map(fts5_term).collect();
            if parts.len() == 1 { parts.concat() } else { format!("({})", parts.join(" OR ")) }
        })
    }

    /// The excluded terms as one FTS5 query matching any of them.
    pub fn excluded_fts5(&self) -> Option<String> {
        join(&self.none_of, " OR ", fts5_term)
    }
}

fn join<T>(items: &[T], separator: &str, render: impl Fn(&T) -> String) -> Option<String> {
    (!items.is_empty()).then(|| items.iter().map(render).collect::<Vec<_>>().join(separator))
}

/// Words hold letters and digits only, so they need no quoting in a tsquery.
fn ts_term(term: &Term) -> String {
    let suffix = if term.prefix { ":*" } else { "" };
    let phrase = term.words.join(" <-> ");
    if term.words.len() > 1 { format!("({phrase}{suffix})") } else { format!("{phrase}{suffix}") }
}

/// A term with its words as alternatives: `(a | b:*)` for the phrase `a b*`.
fn loose_ts_term(term: &Term) -> String {
    let suffix = if term.prefix { ":*" } else { "" };
    let words = term.words.join(" | ");
    if term.words.len() > 1 { format!("({words}{suffix})") } else { format!("{words}{suffix}") }
}

/// Quoted, so FTS5 keywords (`NEAR`, `AND`) among the words stay words.
fn fts5_term(term: &Term) -> String {
    let suffix = if term.prefix { "*" } else { "" };
    format!("\"{}\"{suffix}", term.words.join(" "))
}

/// Splits the query at whitespace, keeping `"…"` together (an unclosed quote runs to the end).
fn tokens(raw: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        let (piece, quoted, negated);
        if let Some(body) = rest.strip_prefix('"').or_else(|| rest.strip_prefix("-\"")) {
            negated = rest.starts_with('-');
            let end = body.find('"').unwrap_or(body.len());
            (piece, quoted) = (&body[..end], true);
            rest = body.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (piece, quoted, negated) = (&rest[..end], false, false);
            rest = &rest[end..];
        }
        tokens.extend(token(piece, quoted, negated));
    }
    tokens
}

fn token(piece: &str, quoted: bool, negated: bool) -> Vec<Token> {
    if quoted {
        return phrase(piece, false).map(|term| Token::Term { term, negated }).into_iter().collect();
    }
    if piece == "OR" {
        return vec![Token::Or];
    }
    if let Some(handle) = piece.strip_prefix("from:").map(|h| h.trim_start_matches('@'))
        && !handle.is_empty()
    {
        return vec![Token::From(handle.to_lowercase())];
    }
    if let Some(room) = piece.strip_prefix("in:").map(|r| r.trim_start_matches('#'))
        && !room.is_empty()
    {
        return vec![Token::In(room.to_owned())];
    }
    let (negated, piece) = match piece.strip_prefix('-') {
        Some(rest) if !rest.is_empty() => (true, rest),
        _ => (false, piece),
    };
    let (prefix, piece) = match piece.strip_suffix('*') {
        Some(rest) => (true, rest),
        None => (false, piece),
    };
    // Brackets, operators and the like separate words; only the last piece is a prefix.
    let parts: Vec<&str> = piece.split(|c: char| !c.is_alphanumeric() && !JOINERS.contains(c)).collect();
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .filter_map(|(i, part)| phrase(part, prefix && i == last))
        .map(|term| Token::Term { term, negated })
        .collect()
}

/// Characters that join words into one: `e-mail`, `o'clock`, `v1.2`, `snake_case`, `a/b`.
const JOINERS: &str = "-_.'’/@";

/// The words of `text`: runs of letters and digits, lower-cased; several make a phrase, as
/// both engines' tokenizers see `e-mail` as "e mail".
fn phrase(text: &str, prefix: bool) -> Option<Term> {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    (!words.is_empty()).then_some(Term { words, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> SearchQuery {
        SearchQuery::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e:?}"))
    }

    #[test]
    fn words_phrases_exclusions_alternatives_and_prefixes() {
        let q = parsed(r#"deploy "release notes" -staging api OR rest wor*"#);
        assert_eq!(q.tsquery().as_deref(), Some("deploy & (release <-> notes) & (api | rest) & wor:*"));
        assert_eq!(
            q.fts5().as_deref(),
            Some(r#""deploy" AND "release notes" AND ("api" OR "rest") AND "wor"*"#)
        );
        assert_eq!(q.excluded_tsquery().as_deref(), Some("staging"));
        assert_eq!(q.excluded_fts5().as_deref(), Some(r#""staging""#));
    }

    #[test]
    fn operators_are_taken_out_of_the_text() {
        let q = parsed("from:@Alice in:#General budget");
        assert_eq!(q.tsquery().as_deref(), Some("budget"));
        assert_eq!((q.from, q.rooms), (vec!["alice".to_owned()], vec!["General".to_owned()]));
        assert!(parsed("from:@alice").tsquery().is_none());
    }

    #[test]
    fn engine_syntax_in_user_input_is_only_words() {
        let q = parsed(r#"NEAR(a b) body:x ^start a&b|!c 'quote' ") OR 1=1 --"#);
        let words: Vec<&str> = q.all_of.iter().flatten().flat_map(|t| &t.words).map(String::as_str).collect();
        assert!(words.iter().all(|w| w.chars().all(char::is_alphanumeric)), "{words:?}");
        assert!(q.tsquery().is_some_and(|t| !t.contains(['\'', '!', ':'])));
        assert!(q.fts5().is_some_and(|f| !f.contains(['^', '(', ':'])));
    }

    #[test]
    fn a_dangling_or_is_a_word_and_unclosed_quotes_run_to_the_end() {
        assert_eq!(parsed("OR cats").tsquery().as_deref(), Some("or & cats"));
        assert_eq!(parsed("cats OR").tsquery().as_deref(), Some("cats & or"));
        assert_eq!(parsed("\"big cats").tsquery().as_deref(), Some("(big <-> cats)"));
        assert_eq!(parsed("e-mail").tsquery().as_deref(), Some("(e <-> mail)"));
        assert_eq!(parsed("École").tsquery().as_deref(), Some("école"));
        assert_eq!(parsed("NEAR(near lake)").tsquery().as_deref(), Some("near & near & lake"));
        assert_eq!(parsed("-x(y) z*").tsquery().as_deref(), Some("z:*"));
        assert_eq!(parsed("-x(y) z*").excluded_tsquery().as_deref(), Some("x | y"));
    }

    #[test]
    fn phrases_loosen_to_any_of_their_words_and_nothing_else_does() {
        let q = parsed("deploy \"release notes\" api OR \"rest call\" wor*");
        assert_eq!(
            q.tsquery().as_deref(),
            Some("deploy & (release <-> notes) & (api | (rest <-> call)) & wor:*")
        );
        assert_eq!(
            q.loosened_tsquery().as_deref(),
            Some("deploy & (release | notes) & (api | (rest | call)) & wor:*")
        );
        assert_eq!(parsed("e-mail*").tsquery().as_deref(), Some("(e <-> mail:*)"));
        assert_eq!(parsed("e-mail*").loosened_tsquery().as_deref(), Some("(e | mail:*)"));
        assert!(parsed("deploy api OR rest wor*").loosened_tsquery().is_none());
        assert!(parsed("from:@alice").loosened_tsquery().is_none());
    }

    #[test]
    fn empty_long_and_wordless_queries_are_refused() {
        for raw in ["", "   ", "-alone", "!!! ^^^", &"a".repeat(257), &"w ".repeat(33)] {
            assert!(SearchQuery::parse(raw).is_err(), "{raw:?}");
        }
        assert!(SearchQuery::parse(&"w ".repeat(32)).is_ok());
    }
}

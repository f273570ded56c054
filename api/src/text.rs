//! Rules for the names people choose (channel names, users' display names): one line, and not
//! a name that shows as nothing. Shared so that a channel and a person cannot be named in ways
//! the other refuses. (Support contacts' names come from other systems and are kept as sent.)

/// No control characters (tabs, line feeds, escapes) and no Unicode line or paragraph
/// separators: a name is shown on one line, in lists, headers and notifications.
pub fn is_one_line(name: &str) -> bool {
    !name.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
}

/// True for a name that a reader would see as empty: only spaces and characters that show
/// as nothing (a zero-width space, say).
pub fn shows_nothing(name: &str) -> bool {
    name.chars().all(|c| c.is_whitespace() || default_ignorable(c))
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): what a renderer shows
/// as nothing unless it supports it, from soft hyphens and zero-width spaces to variation
/// selectors and tags.
pub fn default_ignorable(c: char) -> bool {
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
    use super::{is_one_line, shows_nothing};

    #[test]
    fn one_line_refuses_controls_and_separators() {
        for raw in ["two\nlines", "tab\there", "bell\u{7}", "a\u{2028}b", "a\u{2029}b"] {
            assert!(!is_one_line(raw), "{raw:?}");
        }
        assert!(is_one_line("équipe 👩\u{200D}💻"));
    }

    #[test]
    fn only_spaces_and_invisible_characters_show_nothing() {
        for raw in ["", " ", "\u{200B}", "\u{A0}\u{2060}\u{FEFF}", "\u{E0041}"] {
            assert!(shows_nothing(raw), "{raw:?}");
        }
        assert!(!shows_nothing("\u{200B}a"));
    }
}

//! Snippets as HTML: the engines mark matched words with two private-use characters, which no
//! HTML-escaping touches; everything else is escaped, then the marks become `<mark>` tags.

/// What `ts_headline` and `snippet()` put before and after a matched word.
pub const MARK_START: char = '\u{E000}';
pub const MARK_END: char = '\u{E001}';

/// Characters of a snippet when there was nothing to highlight (a search by operators only).
const EXCERPT_CHARS: usize = 160;

/// A marked snippet as HTML. Marks are kept balanced whatever the text held, so a body that
/// itself contains the private-use characters cannot open a tag it does not close.
pub fn to_html(marked: &str) -> String {
    let mut html = String::with_capacity(marked.len() + 32);
    let mut open = false;
    for c in marked.chars() {
        match c {
            MARK_START if !open => {
                html.push_str("<mark>");
                open = true;
            }
            MARK_END if open => {
                html.push_str("</mark>");
                open = false;
            }
            MARK_START | MARK_END => {}
            c => escape_into(&mut html, c),
        }
    }
    if open {
        html.push_str("</mark>");
    }
    html
}

/// The beginning of a body as HTML, with `…` when cut.
pub fn excerpt(body: &str) -> String {
    let mut html = String::new();
    for c in body.chars().take(EXCERPT_CHARS) {
        escape_into(&mut html, c);
    }
    if body.chars().nth(EXCERPT_CHARS).is_some() {
        html.push('…');
    }
    html
}

fn escape_into(html: &mut String, c: char) {
    match c {
        '&' => html.push_str("&amp;"),
        '<' => html.push_str("&lt;"),
        '>' => html.push_str("&gt;"),
        '"' => html.push_str("&quot;"),
        '\'' => html.push_str("&#39;"),
        c => html.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_become_tags_and_the_rest_is_escaped() {
        let marked = format!("a <b> & {MARK_START}cat{MARK_END}'s");
        assert_eq!(to_html(&marked), "a &lt;b&gt; &amp; <mark>cat</mark>&#39;s");
    }

    #[test]
    fn stray_marks_cannot_unbalance_the_html() {
        let marked = format!("{MARK_END}x{MARK_START}{MARK_START}y");
        assert_eq!(to_html(&marked), "x<mark>y</mark>");
    }

    #[test]
    fn excerpts_are_cut_and_escaped() {
        assert_eq!(excerpt("<i>"), "&lt;i&gt;");
        assert_eq!(excerpt(&"é".repeat(200)).chars().count(), EXCERPT_CHARS + 1);
    }
}

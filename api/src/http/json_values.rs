//! How many values a JSON text holds, counted before it is parsed. Read into GraphQL values,
//! each takes ≈ 200 bytes while the request is handled, far more than it took to send: a 1 MB
//! body of `[1,1,…]` in a request's variables, within the body limit, took an instance from
//! 15 to 125 MiB. So a GraphQL body, a GET request's URL and a WebSocket message may hold one
//! value per [`BYTES_PER_VALUE`] bytes of the body or frame limit.

/// Everyday requests hold a few dozen values; a list of 10 000 ids is 400 KB.
const BYTES_PER_VALUE: usize = 10;

/// The values a text within a size limit of `max_bytes` may hold.
pub fn allowed(max_bytes: usize) -> usize {
    max_bytes / BYTES_PER_VALUE
}

/// About how many values a JSON text holds, counted without parsing it: one, plus one per
/// comma and per opening bracket outside strings. Exact but for each empty `[]` or `{}`,
/// counted as holding one; an invalid text gets some count and fails to parse next.
pub fn count(text: &[u8]) -> usize {
    let (mut count, mut in_string, mut escaped) = (1usize, false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match byte {
                b'"' => in_string = true,
                b',' | b'[' | b'{' => count += 1,
                _ => {}
            }
        }
    }
    count
}

/// At least how many values the JSON in a URL's query string holds (`variables`,
/// `extensions`), counted without decoding it: every comma and opening bracket, written out
/// or percent-encoded, wherever it is. An over-count (the document's own braces count too)
/// only matters for a URL far longer than any client sends.
pub fn count_in_url(query: &str) -> usize {
    let bytes = query.as_bytes();
    let encoded = |i: usize| {
        let code = bytes.get(i + 1..i + 3).map(|c| c.to_ascii_uppercase());
        matches!(code.as_deref(), Some(b"2C" | b"5B" | b"7B"))
    };
    1 + (0..bytes.len())
        .filter(|&i| matches!(bytes[i], b',' | b'[' | b'{') || (bytes[i] == b'%' && encoded(i)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::{count, count_in_url};

    #[test]
    fn values_in_a_url_are_counted_written_out_or_encoded() {
        assert_eq!(count_in_url("query=%7B+a+%7D"), 2);
        assert_eq!(count_in_url("variables=%5B1%2C1%2c1%5D"), 4);
        assert_eq!(count_in_url("variables=[1,1]"), 3);
        assert_eq!(count_in_url("query=%25%32C"), 1, "an encoded percent sign is not a comma");
    }

    #[test]
    fn json_values_are_counted_outside_strings_only() {
        assert_eq!(count(b"1"), 1);
        assert_eq!(count(b"[1,2,3]"), 4, "the list and its three numbers");
        assert_eq!(count(br#"{"a":[1,{"b":2}]}"#), 5);
        assert_eq!(count(br#"{"q":"{ a, b [c] }"}"#), 2, "brackets and commas in a string");
        assert_eq!(count(br#"["a\"b,[", 1]"#), 3, "an escaped quote does not end the string");
        assert_eq!(count(br#"["a\\", 1]"#), 3, "an escaped backslash does not escape the quote");
    }
}

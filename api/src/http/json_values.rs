//! How many values a JSON text holds, counted before it is parsed. Read into GraphQL values,
//! each takes ≈ 200 bytes while the request is handled, far more than it took to send: a 1 MB
//! body of `[1,1,…]` in a request's variables, within the body limit, took an instance from
//! 16 to 130 MiB. So a GraphQL body, and a WebSocket message, may hold one value per
//! [`BYTES_PER_VALUE`] bytes of its size limit.

/// Everyday requests hold a few dozen values; a list of 10 000 ids is 400 KB.
const BYTES_PER_VALUE: usize = 10;

/// The values a text within a size limit of `max_bytes` may hold.
pub fn allowed(max_bytes: usize) -> usize {
    max_bytes / BYTES_PER_VALUE
}

/// About how many values a JSON text holds, counted without parsing it: one, plus one per
/// comma and per opening bracket outside strings. Exact for arrays of scalars, over by one
/// per nested container; an invalid text gets some count and fails to parse next.
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

#[cfg(test)]
mod tests {
    use super::count;

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

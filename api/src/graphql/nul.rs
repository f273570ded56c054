//! Refuses a request that carries U+0000 (NUL) in any string: in its variables, or in a
//! literal of its document (`"\u0000"`). PostgreSQL's `text` cannot store the character, so
//! such a string would fail as a server error halfway through a mutation, and SQLite would
//! store it: refused at the door, it is the same clear error on every backend, before any
//! resolver runs. (Requests that bypass GraphQL, a gateway's inbound webhook, check their
//! own strings; `ApiError` maps PostgreSQL's refusal of the character the same way.)

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, ServerResult, Value, Variables};

use crate::error::{ErrorCode, NUL_REFUSED, graphql_error};

/// Refuses variables holding NUL anywhere, however deeply nested.
pub fn check_variables(variables: &Variables) -> ServerResult<()> {
    if variables.values().any(holds_nul) { Err(refused()) } else { Ok(()) }
}

/// Refuses a document whose literals (arguments, directives, variable defaults, in every
/// operation and fragment) hold NUL. Walks the document as a value: one walk covers every
/// place a literal can stand. Only documents not cached yet are checked.
pub fn check_document(document: &ExecutableDocument) -> ServerResult<()> {
    match async_graphql::to_value(document) {
        Ok(value) if holds_nul(&value) => Err(refused()),
        Ok(_) => Ok(()),
        // A parsed document always converts; if it ever did not, the database is still
        // the last word (see the module doc).
        Err(_) => Ok(()),
    }
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::List(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.values().any(holds_nul),
        _ => false,
    }
}

fn refused() -> ServerError {
    graphql_error(ErrorCode::BadUserInput, NUL_REFUSED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    #[test]
    fn nul_in_nested_variables_is_refused() {
        let vars = Variables::from_json(serde_json::json!({ "input": { "tags": ["ok", "a\u{0}b"] } }));
        assert!(check_variables(&vars).is_err());
        let vars = Variables::from_json(serde_json::json!({ "input": { "body": "a \\u0000 b" } }));
        assert!(check_variables(&vars).is_ok(), "a backslash followed by u0000 is plain text");
    }

    #[test]
    fn nul_in_a_literal_is_refused_wherever_it_stands() {
        for document in [
            r#"mutation { sendMessage(input: { roomId: "r", body: "a\u0000b" }) { seq } }"#,
            r#"query($q: String = "\u0000") { viewer { id } }"#,
            r#"query { ...F } fragment F on Query { search(q: ["x", "\u0000"]) { id } }"#,
            r#"query { viewer @include(if: true) { id @skip(if: "\u0000") } }"#,
        ] {
            let parsed = parse_query(document).expect("parses");
            assert!(check_document(&parsed).is_err(), "{document}");
        }
        let parsed =
            parse_query(r#"query { search(q: "a \\u0000 b", r: """\u0000""") { id } }"#).expect("parses");
        assert!(check_document(&parsed).is_ok(), "escaped backslashes and block strings are plain text");
    }
}

//! SQLite: several statements sent as one text, so that a write of several steps costs one
//! call to sqlx-sqlite's worker thread instead of one per step. Each call is a hand-over to
//! that thread and back (two thread switches): under the write gate, where every send waits
//! for the one before it, those hand-overs were what limited SQLite's send rate.
//!
//! sqlx-sqlite runs the statements of a text one after another and binds a numbered
//! placeholder (`$N`, `?N`) to the N-th value of the whole text, whichever statement holds
//! it. So each statement's placeholders are renumbered past the values of the statements
//! before it, and its values appended; an unnumbered `?` (sea-query's SQLite placeholder) is
//! numbered on the way, as SQLite itself would number it. PostgreSQL prepares one statement
//! per text: this is for SQLite only.

use sea_orm::{DatabaseBackend, Statement, Value};

/// The statements as one, run in order in one call. Rows and affected counts are those of
/// all of them together; on an error the statements before it have run, so a batch belongs
/// in a transaction. The statements hold no comments (a quote in one would hide the
/// placeholders after it).
pub fn batch(statements: impl IntoIterator<Item = Statement>) -> Statement {
    let (mut sql, mut values) = (String::new(), Vec::<Value>::new());
    for statement in statements {
        debug_assert_eq!(
            statement.db_backend,
            DatabaseBackend::Sqlite,
            "one text runs as one statement on PostgreSQL"
        );
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        let own = statement.values.map(|v| v.0).unwrap_or_default();
        let highest = renumber(statement.sql.trim_end().trim_end_matches(';'), values.len(), &mut sql);
        // A placeholder past its statement's values would take the next statement's.
        debug_assert!(highest <= own.len(), "a placeholder without a value in {}", statement.sql);
        values.extend(own);
    }
    Statement::from_sql_and_values(DatabaseBackend::Sqlite, sql, values)
}

/// Copies `sql` to `out` with every placeholder numbered and moved up by `offset`; returns
/// the highest number before the move. Quoted text and identifiers are copied as they are.
fn renumber(sql: &str, offset: usize, out: &mut String) -> usize {
    let mut chars = sql.chars().peekable();
    let (mut quote, mut highest) = (None, 0);
    while let Some(c) = chars.next() {
        match (quote, c) {
            // A doubled quote inside quotes closes and reopens: the same state either way.
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '$' | '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                // SQLite numbers a bare `?` one past the highest number so far.
                let n = digits.parse().unwrap_or(highest + 1);
                highest = highest.max(n);
                out.push('$');
                out.push_str(&(n + offset).to_string());
                continue;
            }
            (None, _) => {}
        }
        out.push(c);
    }
    highest
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectionTrait, Database, QueryResult};

    fn stmt(sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(DatabaseBackend::Sqlite, sql, values)
    }

    #[test]
    fn placeholders_move_past_the_values_before_them() {
        let joined = batch([
            stmt("UPDATE t SET a = $2 WHERE id = $1;", vec![1.into(), 2.into()]),
            stmt("INSERT INTO t (id, a) VALUES ($1, $2)", vec![3.into(), 4.into()]),
            stmt("INSERT INTO u (x, y) VALUES (?, ?)", vec![5.into(), 6.into()]),
        ]);
        assert_eq!(
            joined.sql,
            "UPDATE t SET a = $2 WHERE id = $1;\nINSERT INTO t (id, a) VALUES ($3, $4);\n\
             INSERT INTO u (x, y) VALUES ($5, $6)"
        );
        assert_eq!(joined.values.map(|v| v.0.len()), Some(6));
    }

    #[test]
    fn quoted_text_is_left_alone() {
        let mut out = String::new();
        let highest = renumber(r#"SELECT '$1 it''s ?', "a$2", $1, ?3, ? FROM t"#, 10, &mut out);
        assert_eq!(out, r#"SELECT '$1 it''s ?', "a$2", $11, $13, $14 FROM t"#);
        assert_eq!(highest, 4, "numbered before the move");
    }

    /// What the renumbering relies on: sqlx-sqlite binds a numbered placeholder to the value
    /// of that number across the whole text, and runs every statement of it.
    #[tokio::test]
    async fn sqlite_runs_every_statement_with_its_own_values() {
        let db = Database::connect("sqlite::memory:").await.expect("an in-memory database");
        db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT)").await.expect("a table");
        let joined = batch([
            stmt("INSERT INTO t (id, a) VALUES ($1, $2)", vec![1.into(), "one".into()]),
            stmt("INSERT INTO t (id, a) VALUES (?, ?)", vec![2.into(), "two".into()]),
            stmt("UPDATE t SET a = a || $2 WHERE id = $1 RETURNING a", vec![1.into(), "!".into()]),
        ]);
        let returned = db.query_all_raw(joined).await.expect("the batch runs");
        let first = |rows: &[QueryResult]| rows[0].try_get::<String>("", "a").expect("a text");
        assert_eq!(first(&returned), "one!");
        let rows = db.query_all_raw(stmt("SELECT a FROM t ORDER BY id", vec![])).await.expect("rows");
        let texts: Vec<String> = rows.iter().map(|r| r.try_get("", "a").expect("a text")).collect();
        assert_eq!(texts, ["one!", "two"]);
    }
}

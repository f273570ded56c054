//! The clauses of a search page: what each engine reads and ranks by (PostgreSQL's GIN-indexed
//! `tsvector`, SQLite's FTS5 table ranked by the message alone) and the conditions beyond the
//! words (exclusions, `from:`/`in:` operators, the filter). [`super::service`] assembles them
//! into one statement per tier.

use sea_orm::{ActiveEnum, DatabaseBackend, Value};

use super::highlight::MARK_START;
use super::query::SearchQuery;
use super::service::SearchFilter;
use crate::db::{Store, equals_ci_sql};

/// A statement under construction: SQL pieces and the values their `$n` placeholders bind.
#[derive(Default)]
pub(super) struct Sql {
    pub(super) conditions: Vec<String>,
    pub(super) values: Vec<Value>,
}

impl Sql {
    pub(super) fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }
}

/// The engine's side: what the query reads from and the rank of a row. Without words, the
/// operators alone select messages and every rank is 0, so the newest come first.
///
/// Within the window (`windowed`), a query with a phrase finds its rows by the phrase's
/// words, any of them ([`SearchQuery::loosened_tsquery`]), so that PostgreSQL ANDs the
/// window's id range into the index scan instead of rechecking every match in the
/// organisation; `ts_match_vq` (`@@` called as a function, which no index serves) then keeps
/// the rows that match exactly. The older tier has no range to AND and keeps the exact query,
/// which GIN narrows further.
pub(super) fn matches(store: &Store, query: &SearchQuery, windowed: bool, sql: &mut Sql) -> (String, String) {
    match (store.backend(), query.tsquery(), query.fts5()) {
        (DatabaseBackend::Postgres, Some(tsquery), _) => {
            let (config, words) = (sql.bind(store.search_config()), sql.bind(tsquery));
            let ts = format!("to_tsquery({config}::regconfig, {words})");
            match query.loosened_tsquery().filter(|_| windowed) {
                Some(loosened) => {
                    let loosened = sql.bind(loosened);
                    sql.conditions.extend([
                        format!("m.search_vector @@ to_tsquery({config}::regconfig, {loosened})"),
                        format!("ts_match_vq(m.search_vector, {ts})"),
                    ]);
                }
                None => sql.conditions.push(format!("m.search_vector @@ {ts}")),
            }
            ("messages m".into(), format!("ts_rank_cd(m.search_vector, {ts})::float8"))
        }
        (DatabaseBackend::Sqlite, _, Some(fts5)) => {
            // CROSS JOIN: the matches drive, whatever the planner thinks. Without statistics
            // (Parley never runs ANALYZE on SQLite) the bundled SQLite walked the window's
            // messages by `org_id` and matched each one: 1–1.8 s a query on 200 000 messages
            // instead of 10–30 ms (BENCHMARKS.md).
            //
            // Ranked by the message alone: FTS5's `bm25()` weighs a word by how many rows of
            // the one index hold it, every organisation's, so its ranks told one organisation
            // how often the others wrote a word (and moved, a cursor's with them, whenever
            // anyone wrote). `highlight()` marks each match FTS5 found in the body.
            let words = sql.bind(fts5);
            let hits = format!(
                "(SELECT rowid, highlight(messages_fts, 0, char({}), '') AS marked FROM messages_fts \
                 WHERE messages_fts MATCH {words}) hits CROSS JOIN messages m ON m.rowid = hits.rowid",
                u32::from(MARK_START)
            );
            (hits, own_bm25("hits.marked", "m.body"))
        }
        _ => ("messages m".into(), "CAST(0 AS DOUBLE PRECISION)".into()),
    }
}

/// SQLite's rank of a message: BM25 without its corpus weight (which only the organisation's
/// own messages could give, and FTS5 keeps one index for all). The matches count with BM25's
/// saturation (k1 = 1.2), against the body's length over a typical chat message's 60
/// characters (b = 0.75): more matches rank higher, a long message lower, as with `bm25()`,
/// and the same message ranks the same whatever else is stored.
///
/// `highlight()` put one [`MARK_START`] before each match, so the matches are what `marked`
/// has beyond `body` (not its marks: a body may hold the character itself). Written as
/// `k1 + 1 - (k1 + 1)·K / (matches + K)`, which names `marked` once: SQLite inlines the
/// subquery, and each mention would highlight the body again.
fn own_bm25(marked: &str, body: &str) -> String {
    let matches = format!("(length({marked}) - length({body}))");
    let k = format!("(1.2 * (0.25 + 0.75 * length({body}) / 60.0))");
    format!("(2.2 - 2.2 * {k} / ({matches} + {k}))")
}

/// Everything but the words: exclusions, operators and the filter.
pub(super) fn narrow(store: &Store, query: &SearchQuery, filter: &SearchFilter, org: &str, sql: &mut Sql) {
    let backend = store.backend();
    match (backend, query.excluded_tsquery(), query.excluded_fts5()) {
        (DatabaseBackend::Postgres, Some(tsquery), _) => {
            let (config, words) = (sql.bind(store.search_config()), sql.bind(tsquery));
            sql.conditions.push(format!("NOT (m.search_vector @@ to_tsquery({config}::regconfig, {words}))"));
        }
        (DatabaseBackend::Sqlite, _, Some(fts5)) => {
            let words = sql.bind(fts5);
            sql.conditions.push(format!(
                "m.rowid NOT IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH {words})"
            ));
        }
        _ => {}
    }
    if !query.from.is_empty() {
        let handles: Vec<String> = query.from.iter().map(|h| sql.bind(h.clone())).collect();
        sql.conditions.push(format!(
            "m.author_user_id IN (SELECT u.id FROM users u WHERE u.org_id = {org} AND u.handle IN ({}))",
            handles.join(", ")
        ));
    }
    if !query.rooms.is_empty() {
        let names: Vec<String> = query
            .rooms
            .iter()
            .map(|name| {
                let (condition, value) = equals_ci_sql(backend, "r.name", sql.values.len() + 1, name);
                sql.values.push(value);
                condition
            })
            .collect();
        sql.conditions.push(format!("({})", names.join(" OR ")));
    }
    if let Some(room) = filter.room_id {
        let room = sql.bind(room);
        sql.conditions.push(format!("m.room_id = {room}"));
    }
    if let Some(author) = filter.author_id {
        let author = sql.bind(author);
        sql.conditions.push(format!("m.author_user_id = {author}"));
    }
    if let Some(before) = filter.before {
        let before = sql.bind(before);
        sql.conditions.push(format!("m.created_at < {before}"));
    }
    if let Some(after) = filter.after {
        let after = sql.bind(after);
        sql.conditions.push(format!("m.created_at > {after}"));
    }
    if let Some(kind) = filter.room_kind {
        let kind = sql.bind(kind.to_value());
        sql.conditions.push(format!("r.kind = {kind}"));
    }
    if let Some(wanted) = filter.has_attachments {
        let length = match backend {
            DatabaseBackend::Postgres => "jsonb_array_length(m.attachments)",
            _ => "json_array_length(m.attachments)",
        };
        sql.conditions.push(format!("{length} {} 0", if wanted { ">" } else { "=" }));
    }
}

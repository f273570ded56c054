//! `searchMessages`: one page of ranked hits over the messages the viewer may read.
//!
//! One statement per tier finds the page (the newest messages first, then the older ones, see
//! [`super::window`]): the engine's matches (PostgreSQL's GIN index, SQLite's FTS5 table)
//! joined to the rooms the viewer may read and the filters, best rank first, newest first
//! among equals. A last statement highlights only the page's hits, so `ts_headline` and
//! `snippet()` never run over every match.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, FromQueryResult, IdenStatic, Iterable, QueryResult, Statement,
};
use uuid::Uuid;

use super::clauses::{Sql, matches, narrow};
use super::highlight::{self, MARK_END, MARK_START};
use super::query::SearchQuery;
use crate::auth::Viewer;
use crate::db::Store;
use crate::error::{ApiError, ApiResult};
use crate::messages::MessageRecord;
use crate::paging::{PageSize, fetch_limit, split_page};
use crate::rooms::access::readable_sql;
use crate::state::AppState;
use entity::enums::RoomKind;
use entity::messages;

/// Narrows a search beyond its words.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub room_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
    pub room_kind: Option<RoomKind>,
    pub has_attachments: Option<bool>,
}

/// A message that matched, with its body's best passage as HTML and the cursor after it.
pub struct Hit {
    pub message: MessageRecord,
    pub snippet: String,
    pub cursor: HitCursor,
}

/// The two tiers a search ranks in turn (see [`super::window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// The organisation's newest messages: ids at or above the floor (all of them without one).
    Recent,
    /// Everything below the floor.
    Older,
}

/// Where a page ends: the window's floor the search began with, and the last hit's tier, rank
/// and id. Ranks travel exactly (Rust prints an `f64` so that it parses back to the same
/// value), so the next page starts right after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HitCursor {
    pub floor: Option<Uuid>,
    pub tier: Tier,
    /// Relevance: higher is better, comparable within one tier of one search only.
    pub rank: f64,
    pub id: Uuid,
}

impl HitCursor {
    pub fn parse(cursor: &str) -> ApiResult<Self> {
        let invalid = || ApiError::bad_input("invalid cursor");
        let mut parts = cursor.split('~');
        let (Some(tier), Some(floor), Some(rank), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let tier = match tier {
            "0" => Tier::Recent,
            "1" => Tier::Older,
            _ => return Err(invalid()),
        };
        let floor = match floor {
            "" => None,
            floor => Some(Uuid::parse_str(floor).map_err(|_| invalid())?),
        };
        let rank: f64 = rank.parse().map_err(|_| invalid())?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        if !rank.is_finite() || (tier == Tier::Older && floor.is_none()) {
            return Err(invalid());
        }
        Ok(Self { floor, tier, rank, id })
    }

    pub fn encode(&self) -> String {
        let tier = match self.tier {
            Tier::Recent => 0,
            Tier::Older => 1,
        };
        let floor = self.floor.map(|floor| floor.to_string()).unwrap_or_default();
        format!("{tier}~{floor}~{}~{}", self.rank, self.id)
    }
}

/// One page of hits, best first within the newest messages, then best first among the older
/// ones; and whether more follow.
pub async fn search(
    app: &AppState,
    viewer: &Viewer,
    query: &SearchQuery,
    filter: &SearchFilter,
    after: Option<HitCursor>,
    limit: PageSize,
) -> ApiResult<(Vec<Hit>, bool)> {
    let store = &app.store;
    let floor = match after {
        Some(cursor) => cursor.floor,
        None => app.search_windows.floor(store, viewer.org_id).await?,
    };
    let wanted = fetch_limit(limit.get());
    let mut found = Vec::new();
    for tier in [Tier::Recent, Tier::Older] {
        if after.is_some_and(|cursor| cursor.tier > tier) || (tier == Tier::Older && floor.is_none()) {
            continue;
        }
        let tier_after = after.filter(|cursor| cursor.tier == tier);
        let statement =
            page(store, viewer, query, filter, (tier, floor), tier_after, wanted - found.len() as u64);
        for row in store.db.query_all_raw(statement).await? {
            let (message, rank) = hit_of(&row)?;
            let cursor = HitCursor { floor, tier, rank, id: message.id };
            found.push((message, cursor));
        }
        if found.len() as u64 >= wanted {
            break;
        }
    }
    let (found, more) = split_page(found, limit.get());
    let ids: Vec<Uuid> = found.iter().map(|(m, _)| m.id).collect();
    let mut snippets = snippets(store, query, &ids).await?;
    let hits = found
        .into_iter()
        .map(|(message, cursor)| {
            let snippet = match snippets.remove(&message.id) {
                Some(marked) => highlight::to_html(&marked),
                None => highlight::excerpt(&message.body),
            };
            Hit { message: message.into(), snippet, cursor }
        })
        .collect();
    Ok((hits, more))
}

/// The statement of one tier's page: the engine's matches joined to the rooms the viewer may
/// read and the filters, best rank first, newest first among equals.
fn page(
    store: &Store,
    viewer: &Viewer,
    query: &SearchQuery,
    filter: &SearchFilter,
    (tier, floor): (Tier, Option<Uuid>),
    after: Option<HitCursor>,
    limit: u64,
) -> Statement {
    let mut sql = Sql::default();
    let org = sql.bind(viewer.org_id);
    let viewer_id = sql.bind(viewer.id);
    sql.conditions.extend([
        format!("m.org_id = {org}"),
        "m.deleted_at IS NULL".into(),
        readable_sql(viewer).into(),
    ]);
    if let Some(floor) = floor {
        let floor = sql.bind(floor);
        let operator = if tier == Tier::Recent { ">=" } else { "<" };
        sql.conditions.push(format!("m.id {operator} {floor}"));
    }
    let windowed = tier == Tier::Recent && floor.is_some();
    let (from, rank) = matches(store, query, windowed, &mut sql);
    narrow(store, query, filter, &org, &mut sql);
    if let Some(cursor) = after {
        let (r, id) = (sql.bind(cursor.rank), sql.bind(cursor.id));
        sql.conditions.push(format!("({rank} < {r} OR ({rank} = {r} AND m.id < {id}))"));
    }
    let columns: Vec<String> = messages::Column::iter().map(|c| format!("m.{}", c.as_str())).collect();
    let text = format!(
        "SELECT {}, {rank} AS hit_rank FROM {from} \
         JOIN rooms r ON r.id = m.room_id \
         LEFT JOIN room_members rm ON rm.room_id = m.room_id AND rm.user_id = {viewer_id} \
         WHERE {} \
         ORDER BY hit_rank DESC, m.id DESC LIMIT {limit}",
        columns.join(", "),
        sql.conditions.join(" AND "),
    );
    store.stmt(&text, sql.values)
}

fn hit_of(row: &QueryResult) -> ApiResult<(messages::Model, f64)> {
    Ok((messages::Model::from_query_result(row, "")?, row.try_get::<f64>("", "hit_rank")?))
}

/// The page's hits with their matched words between [`MARK_START`] and [`MARK_END`], by id.
async fn snippets(store: &Store, query: &SearchQuery, ids: &[Uuid]) -> ApiResult<HashMap<Uuid, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let (text, mut values) = match (store.backend(), query.tsquery(), query.fts5()) {
        (DatabaseBackend::Postgres, Some(tsquery), _) => (
            "SELECT m.id AS id, ts_headline($1::regconfig, m.body, to_tsquery($1::regconfig, $2), $3) AS snippet \
             FROM messages m WHERE "
                .to_owned(),
            vec![
                store.search_config().into(),
                tsquery.into(),
                format!("StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=24, MinWords=8").into(),
            ],
        ),
        (DatabaseBackend::Sqlite, _, Some(fts5)) => (
            "SELECT m.id AS id, snippet(messages_fts, 0, $2, $3, '…', 24) AS snippet \
             FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid \
             WHERE messages_fts MATCH $1 AND "
                .to_owned(),
            vec![fts5.into(), MARK_START.to_string().into(), MARK_END.to_string().into()],
        ),
        _ => return Ok(HashMap::new()),
    };
    let (in_ids, id_values) = store.in_ids("m.id", ids, values.len() + 1);
    values.extend(id_values);
    let rows = store.db.query_all_raw(store.stmt(&format!("{text}{in_ids}"), values)).await?;
    rows.iter()
        .map(|row| Ok((row.try_get::<Uuid>("", "id")?, row.try_get::<String>("", "snippet")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseConfig;
    use crate::db::WarmUp;
    use entity::enums::UserRole;

    /// SQLite plans without statistics (Parley never runs `ANALYZE` there), so the plan an
    /// empty database gets is the plan every database gets. Each page of either tier, first
    /// or later, must read the full-text matches first: walking the organisation's messages
    /// and matching each took 1–1.8 s on 200 000 messages (BENCHMARKS.md).
    #[tokio::test]
    async fn sqlite_search_reads_the_matches_first() -> anyhow::Result<()> {
        let config = DatabaseConfig {
            database_url: "sqlite::memory:".into(),
            db_pool_size: 1,
            db_pool_warm: None,
            search_config: "simple".into(),
        };
        let store = Store::connect(&config, WarmUp::default()).await?;
        store.migrate_then(|_| async { Ok(()) }).await?;
        let viewer = Viewer { id: Uuid::now_v7(), org_id: Uuid::now_v7(), role: UserRole::Member };
        let floor = Some(Uuid::now_v7());
        let cursor = HitCursor { floor, tier: Tier::Recent, rank: 1.0, id: Uuid::now_v7() };
        for words in ["standup", "\"release notes\" -draft"] {
            let query = SearchQuery::parse(words)?;
            for tier in [Tier::Recent, Tier::Older] {
                for after in [None, Some(cursor)] {
                    let mut plan =
                        page(&store, &viewer, &query, &SearchFilter::default(), (tier, floor), after, 21);
                    plan.sql = format!("EXPLAIN QUERY PLAN {}", plan.sql);
                    let rows = store.db.query_all_raw(plan).await?;
                    let steps: Vec<String> =
                        rows.iter().map(|r| r.try_get::<String>("", "detail")).collect::<Result<_, _>>()?;
                    let first = steps.iter().find(|s| s.starts_with("SCAN") || s.starts_with("SEARCH"));
                    assert!(
                        first.is_some_and(|s| s.starts_with("SCAN messages_fts")),
                        "{words} {tier:?} after {}: {steps:?}",
                        after.is_some()
                    );
                }
            }
        }
        Ok(())
    }
}

//! `supportMetrics`: how an inbox and each of its agents answer, over the conversations opened
//! in a window. Computed in SQL, one statement per grouping, the same on both databases but
//! for how a duration becomes seconds; percentiles are nearest-rank (the value at rank
//! ⌈p·n⌉), which window functions give on both.
//!
//! - opened: conversations created in the window; responded: those with an agent reply;
//!   resolved: those resolved now.
//! - first response: from opening to the first agent reply; resolution: to resolving.
//! - per agent: by the conversation's current assignee.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseBackend, FromQueryResult};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::Ctx;
use crate::times;

/// One group's figures (the inbox, or one agent).
#[derive(Debug, Clone, FromQueryResult)]
pub struct Figures {
    pub agent: Option<Uuid>,
    pub opened: i64,
    pub responded: i64,
    pub resolved: i64,
    pub first_response_avg: Option<f64>,
    pub first_response_median: Option<f64>,
    pub first_response_p90: Option<f64>,
    pub resolution_avg: Option<f64>,
    pub resolution_median: Option<f64>,
}

pub struct Metrics {
    pub inbox: Figures,
    pub agents: Vec<Figures>,
}

/// Seconds between two timestamp columns, as each database counts them.
fn seconds(backend: DatabaseBackend, later: &str, earlier: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("EXTRACT(EPOCH FROM ({later} - {earlier}))::float8"),
        _ => format!("(julianday({later}) - julianday({earlier})) * 86400.0"),
    }
}

/// The statement for the whole inbox (`per_agent` false) or per assignee.
fn statement(backend: DatabaseBackend, per_agent: bool) -> String {
    let (group, only_assigned) =
        if per_agent { ("assignee_id", "AND assignee_id IS NOT NULL") } else { ("CAST(NULL AS uuid)", "") };
    let frt = seconds(backend, "first_response_at", "created_at");
    let rt = seconds(backend, "resolved_at", "created_at");
    // A constant group compares equal to itself only when it is not NULL.
    let same = if per_agent { "x.grp = c.grp" } else { "TRUE" };
    format!(
        "WITH c AS ( \
           SELECT {group} AS grp, {frt} AS frt, CASE WHEN status = 'resolved' THEN {rt} END AS rt \
           FROM rooms WHERE inbox_id = $1 AND kind = 'support' AND created_at >= $2 AND created_at < $3 {only_assigned}), \
         f AS (SELECT grp, frt AS v, ROW_NUMBER() OVER (PARTITION BY grp ORDER BY frt) AS k, \
                 COUNT(*) OVER (PARTITION BY grp) AS n FROM c WHERE frt IS NOT NULL), \
         r AS (SELECT grp, rt AS v, ROW_NUMBER() OVER (PARTITION BY grp ORDER BY rt) AS k, \
                 COUNT(*) OVER (PARTITION BY grp) AS n FROM c WHERE rt IS NOT NULL) \
         SELECT c.grp AS agent, COUNT(*) AS opened, \
           SUM(CASE WHEN c.frt IS NOT NULL THEN 1 ELSE 0 END) AS responded, \
           SUM(CASE WHEN c.rt IS NOT NULL THEN 1 ELSE 0 END) AS resolved, \
           AVG(c.frt) AS first_response_avg, \
           (SELECT x.v FROM f x WHERE {same} AND x.k = (x.n + 1) / 2) AS first_response_median, \
           (SELECT x.v FROM f x WHERE {same} AND x.k = (9 * x.n + 9) / 10) AS first_response_p90, \
           AVG(c.rt) AS resolution_avg, \
           (SELECT x.v FROM r x WHERE {same} AND x.k = (x.n + 1) / 2) AS resolution_median \
         FROM c GROUP BY c.grp"
    )
}

pub async fn compute(
    cx: &Ctx<'_>,
    inbox_id: Uuid,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> ApiResult<Metrics> {
    let (since, until) = (times::clamped(since), times::clamped(until));
    if until <= since {
        return Err(ApiError::bad_input("until: must be after since"));
    }
    super::inboxes::readable(cx, inbox_id).await?;
    let store = &cx.app.store;
    let values = || vec![inbox_id.into(), since.into(), until.into()];
    let run = |per_agent| {
        let sql = statement(store.backend(), per_agent);
        Figures::find_by_statement(store.stmt(&sql, values())).all(&store.db)
    };
    let inbox = run(false).await?.into_iter().next().unwrap_or(Figures {
        agent: None,
        opened: 0,
        responded: 0,
        resolved: 0,
        first_response_avg: None,
        first_response_median: None,
        first_response_p90: None,
        resolution_avg: None,
        resolution_median: None,
    });
    Ok(Metrics { inbox, agents: run(true).await? })
}

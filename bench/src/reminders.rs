//! Scenario `reminders`: `reminders` reminders due within the same `reminder_window_secs`
//! seconds, with two instances (A and B) racing to fire them.
//!
//! `reminder_users` users each hold one WebSocket with `reminderDue`, alternately on A and B.
//! A warm-up reminder per user, due two seconds later, proves every subscription live. Then
//! the reminders are created through A and B alternately (`createReminder`, 32 at a time),
//! round-robin over the users, their times spread evenly over a window that starts
//! `reminder_lead_secs` after creation begins (so every one is created before it is due).
//! Every reminder must arrive exactly once (a second arrival is an error, a missing one
//! undelivered), and the database must hold each as fired. Lateness is reported twice: when
//! the frame arrived (the user's view) and the server's `firedAt`, each minus `remindAt`, on
//! the one machine's clock. The split between the instances comes from their
//! `parley_reminders_fired_total`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::Gql;
use crate::config::Ctx;
use crate::inbox::{Inbox, WsEvent};
use crate::report::{Figure, Hist};
use crate::seed;
use crate::servers::prometheus_sums;
use crate::ws::{WsConn, close_all};

const S: &str = "reminders";
const DUE: &str = "subscription { reminderDue { reminder { id remindAt firedAt } } }";
const CREATE: &str = "mutation($input: CreateReminderInput!) { createReminder(input: $input) { id } }";
const CREATE_CONCURRENCY: usize = 32;
/// How long after the window's end the last reminders may still arrive.
const GRACE: Duration = Duration::from_secs(30);

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let z = ctx.sizes.clone();
    let org = seed::org(&ctx.db, "reminders").await?;
    let users = seed::users(&ctx.db, &org, "r", z.reminder_users, &ctx.env.jwt_secret).await?;
    let tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();
    let apis = [Gql::new(&ctx.a.http())?, Gql::new(&ctx.b.http())?];
    let mut inbox = Inbox::default();
    let mut conns = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let instance = if i % 2 == 0 { &ctx.a } else { &ctx.b };
        let conn = WsConn::connect(&instance.ws(), token, i as u32, &inbox).await?;
        conn.subscribe("r0", DUE, json!({}))?;
        conns.push(conn);
    }
    let result = measure(ctx, &apis, &tokens, org.id, &mut inbox).await;
    close_all(conns).await;
    result
}

async fn measure(
    ctx: &mut Ctx,
    apis: &[Gql; 2],
    tokens: &[String],
    org: Uuid,
    inbox: &mut Inbox,
) -> Result<()> {
    let z = ctx.sizes.clone();
    // Warm-up: one each, due together; all must arrive before anything is measured.
    let warm_at = Utc::now() + Duration::from_secs(2);
    let warm = create_all(apis, tokens, &vec![warm_at; tokens.len()]).await;
    let warm_ids: Vec<Uuid> = warm.into_iter().collect::<Result<_>>().context("warm-up reminders")?;
    let mut pending: std::collections::HashSet<Uuid> = warm_ids.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let all_live = inbox
        .recv_until(deadline, |event| {
            if let WsEvent::Reminder { id, .. } = event {
                pending.remove(&id);
            }
            pending.is_empty()
        })
        .await;
    if !all_live {
        bail!("{} warm-up reminders never arrived", pending.len());
    }
    let fired_before = fired_totals(ctx).await?;

    let n = z.reminders;
    let window = Duration::from_secs_f64(z.reminder_window_secs);
    let start = Utc::now() + Duration::from_secs_f64(z.reminder_lead_secs);
    let times: Vec<DateTime<Utc>> = (0..n).map(|k| start + window.mul_f64(k as f64 / n as f64)).collect();
    let creating = Instant::now();
    let created = create_all(apis, tokens, &times).await;
    let create_secs = creating.elapsed().as_secs_f64();
    let overran = Utc::now() > start;
    let mut expected: HashMap<Uuid, u32> = HashMap::new();
    let mut create_errors = Vec::new();
    for result in created {
        match result {
            Ok(id) => {
                expected.insert(id, 0);
            }
            Err(err) => create_errors.push(err),
        }
    }

    let (mut arrived, mut fired) = (Hist::default(), Hist::default());
    let (mut duplicates, mut strangers, mut heard) = (0u64, 0u64, 0usize);
    let deadline = Instant::now() + (start + window - Utc::now()).to_std().unwrap_or_default() + GRACE;
    inbox
        .recv_until(deadline, |event| {
            let WsEvent::Reminder { id, remind_at, fired_at, received } = event else { return false };
            match expected.get_mut(&id) {
                Some(count) => {
                    *count += 1;
                    if *count > 1 {
                        duplicates += 1;
                        return false;
                    }
                    heard += 1;
                    arrived.record((received - remind_at).to_std().unwrap_or_default());
                    fired.record((fired_at - remind_at).to_std().unwrap_or_default());
                }
                None => strangers += 1,
            }
            heard == expected.len()
        })
        .await;
    // Stragglers: a second firing would arrive now.
    inbox
        .recv_until(Instant::now() + Duration::from_secs(2), |event| {
            if let WsEvent::Reminder { id, .. } = event
                && expected.contains_key(&id)
            {
                duplicates += 1;
            }
            false
        })
        .await;
    let fired_after = fired_totals(ctx).await?;
    let stored = fired_in_database(ctx, org).await?;
    let missing = expected.values().filter(|c| **c == 0).count() as u64;

    let params = format!(
        "{n} reminders due evenly within {:.0} s, {} users listening alternately on A and B, \
         created through both ({:.1} s, {:.0}/s, {CREATE_CONCURRENCY} at a time)",
        z.reminder_window_secs,
        tokens.len(),
        create_secs,
        n as f64 / create_secs.max(f64::EPSILON),
    );
    let errors = create_errors.len() as u64 + duplicates + strangers + inbox.errors.len() as u64;
    let split = format!(
        "fired by A {:.0}, by B {:.0}; {} of {} fired in the database",
        fired_after.0 - fired_before.0,
        fired_after.1 - fired_before.1,
        stored,
        n + tokens.len()
    );
    let mut figure = Figure::new(S, "lateness: frame received − remindAt", params.clone())
        .dist(&arrived)
        .errors(errors)
        .undelivered(missing)
        .target(
            "p99 ≤ 1 s, each exactly once",
            arrived.dist().map(|d| d.p99 <= 1000.0 && errors + missing == 0),
        )
        .note(format!("{duplicates} arrived twice, {missing} never, {strangers} unknown"))
        .note(split);
    if overran {
        figure = figure.note("creation overran the lead: the first reminders were created late");
    }
    for err in create_errors.iter().map(|e| format!("{e:#}")).chain(inbox.errors.iter().cloned()).take(1) {
        figure = figure.note(format!("first error: {err}"));
    }
    ctx.report.push(figure);
    ctx.report.push(Figure::new(S, "lateness: firedAt − remindAt (server)", params).dist(&fired));
    Ok(())
}

/// Creates one reminder at each of `times`, round-robin over users and the two instances;
/// each result in order.
async fn create_all(apis: &[Gql; 2], tokens: &[String], times: &[DateTime<Utc>]) -> Vec<Result<Uuid>> {
    futures_util::stream::iter(times.iter().enumerate())
        .map(|(k, at)| async move {
            let (api, token) = (&apis[k % 2], &tokens[k % tokens.len()]);
            let input = json!({ "remindAt": at.to_rfc3339(), "note": format!("n{k}") });
            let data = api.call(token, CREATE, json!({ "input": input })).await?;
            let id = data["createReminder"]["id"].as_str().context("createReminder without id")?;
            Uuid::parse_str(id).context("createReminder id")
        })
        .buffered(CREATE_CONCURRENCY)
        .collect()
        .await
}

/// `parley_reminders_fired_total` of A and B.
async fn fired_totals(ctx: &Ctx) -> Result<(f64, f64)> {
    let http = reqwest::Client::new();
    let mut totals = [0.0; 2];
    for (total, base) in totals.iter_mut().zip([ctx.a.http(), ctx.b.http()]) {
        let text = http.get(format!("{base}/metrics")).send().await?.error_for_status()?.text().await?;
        *total = prometheus_sums(&text).get("parley_reminders_fired_total").copied().unwrap_or(0.0);
    }
    Ok((totals[0], totals[1]))
}

async fn fired_in_database(ctx: &Ctx, org: Uuid) -> Result<usize> {
    let rows = ctx
        .db
        .query("SELECT id FROM reminders WHERE org_id = $1 AND status = 'fired'", vec![org.into()])
        .await?;
    Ok(rows.len())
}

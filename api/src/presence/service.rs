//! Presence as others see it: reading it in batches, `setPresence`, the socket hold that
//! counts a connection, the upkeep loop (lease renewal and sweeping), and announcing changes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::ActiveModelTrait;
use sea_orm::ActiveValue::{Set, Unchanged};
use tokio::sync::watch;
use uuid::Uuid;

use super::Status;
use super::tracker::Seen;
use crate::bus::{Event, Topic};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Ctx};
use entity::enums::PresenceStatus as Manual;
use entity::users;

/// A user's presence as others see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserPresence {
    pub user_id: Uuid,
    pub status: Status,
    /// When their last connection closed; `None` while connected or never seen.
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// The presence of each user: one Redis round trip, and their rows through the directory.
pub async fn presence_of(app: &AppState, user_ids: &[Uuid]) -> ApiResult<HashMap<Uuid, UserPresence>> {
    let seen = app.presence.seen(user_ids).await;
    Ok(shown(app.directory.users(&app.store, user_ids).await?, &seen))
}

/// [`presence_of`] for a reread after a resync, or `None` when the cluster did not answer: a
/// feed that must not take this instance's partial view for the truth. The rows come from
/// the database, not the directory: a status set by hand may be among the lost events.
pub async fn presence_of_exactly(
    app: &AppState,
    user_ids: &[Uuid],
) -> ApiResult<Option<HashMap<Uuid, UserPresence>>> {
    let Some(seen) = app.presence.seen_exactly(user_ids).await else { return Ok(None) };
    Ok(Some(shown(app.directory.users_fresh(&app.store, user_ids).await?, &seen)))
}

/// What others see of each user: a status set by hand, else their connection state; a
/// deactivated user is offline, whatever they had set.
pub fn shown(users: HashMap<Uuid, users::Model>, seen: &HashMap<Uuid, Seen>) -> HashMap<Uuid, UserPresence> {
    let presence = users.into_values().map(|user| {
        let seen = seen.get(&user.id).copied().unwrap_or_default();
        let status = status_of(&user, seen.connected);
        (user.id, UserPresence { user_id: user.id, status, last_seen_at: seen.last_seen_at })
    });
    presence.collect()
}

/// [`Status::shown`] for `user`, unless they are deactivated: a socket of theirs that
/// authenticated just before is no sign of life, nor is a status they had set.
fn status_of(user: &users::Model, connected: bool) -> Status {
    match user.deactivated_at {
        Some(_) => Status::Offline,
        None => Status::shown(user.presence_status, connected),
    }
}

/// `setPresence`: a status set by hand, or `None` to show the connection state again.
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn set_presence(cx: &Ctx<'_>, manual: Option<Manual>) -> ApiResult<UserPresence> {
    let (app, user_id) = (cx.app, cx.viewer.id);
    let seen = app.presence.seen(&[user_id]).await.remove(&user_id).unwrap_or_default();
    let user = app.directory.user(&app.store, user_id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let change =
        users::ActiveModel { id: Unchanged(user_id), presence_status: Set(manual), ..Default::default() };
    let tx = app.store.begin_write().await?;
    change.update(&tx.txn).await?;
    tx.commit().await?;
    app.directory.user_changed(&app.bus, user_id).await;
    let status = Status::shown(manual, seen.connected);
    let presence = UserPresence { user_id, status, last_seen_at: seen.last_seen_at };
    if status != Status::shown(user.presence_status, seen.connected) {
        publish(app, presence).await;
    }
    Ok(presence)
}

/// Announces a user just deactivated as offline when they had set a status by hand: their
/// sockets closing announce only a status shown from the connection state.
pub async fn announce_deactivated(app: &AppState, user: &users::Model) {
    if user.presence_status.is_some() {
        let seen = app.presence.seen(&[user.id]).await.remove(&user.id).unwrap_or_default();
        let last_seen_at = seen.last_seen_at.or(Some(Utc::now()));
        publish(app, UserPresence { user_id: user.id, status: Status::Offline, last_seen_at }).await;
    }
}

/// Held by an authenticated WebSocket: its user counts as connected until it drops.
pub struct SocketPresence {
    app: AppState,
    user_id: Uuid,
}

impl SocketPresence {
    pub async fn hold(app: &AppState, user_id: Uuid) -> Self {
        if app.presence.connect(user_id).await {
            announce_connection(app, user_id, Seen { connected: true, last_seen_at: None }).await;
            // An agent coming online may take conversations waiting in their inboxes.
            let app = app.clone();
            tokio::spawn(async move { crate::support::assign::agent_online(&app, user_id).await });
        }
        Self { app: app.clone(), user_id }
    }
}

impl Drop for SocketPresence {
    fn drop(&mut self) {
        // Dropped with the connection's task; a runtime shutting down takes the leases with
        // it, and they lapse on their own.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (app, user_id) = (self.app.clone(), self.user_id);
        runtime.spawn(async move {
            if let Some(at) = app.presence.disconnect(user_id).await {
                announce_connection(&app, user_id, Seen { connected: false, last_seen_at: Some(at) }).await;
            }
        });
    }
}

/// Every heartbeat: renews this instance's leases and ends those of dead instances,
/// announcing who came back and who went away.
pub fn spawn_upkeep(app: AppState, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(app.presence.heartbeat());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let came_back = app.presence.renew().await.into_iter();
            let went_away = app.presence.sweep().await.into_iter();
            let changes: Vec<(Uuid, Seen)> = came_back
                .map(|user_id| (user_id, Seen { connected: true, last_seen_at: None }))
                .chain(
                    went_away
                        .map(|(user_id, at)| (user_id, Seen { connected: false, last_seen_at: Some(at) })),
                )
                .collect();
            // A dead instance's leases can end thousands at once: read their users in batches.
            for batch in changes.chunks(ANNOUNCE_BATCH) {
                announce_connections(&app, batch).await;
            }
            metrics::gauge!("parley_presence_local_users").set(app.presence.local_users() as f64);
        }
    });
}

/// A user connected or disconnected everywhere: announced unless a status set by hand hides
/// the change.
async fn announce_connection(app: &AppState, user_id: Uuid, seen: Seen) {
    announce_connections(app, &[(user_id, seen)]).await;
}

/// Users read per query when many connection changes are announced at once.
const ANNOUNCE_BATCH: usize = 1_000;

/// [`announce_connection`] for several users, with one directory read for all of them.
async fn announce_connections(app: &AppState, changes: &[(Uuid, Seen)]) {
    let ids: Vec<Uuid> = changes.iter().map(|(user_id, _)| *user_id).collect();
    let users = match app.directory.users(&app.store, &ids).await {
        Ok(users) => users,
        Err(err) => {
            tracing::warn!(users = ids.len(), error = %err, "presence changes not announced");
            return;
        }
    };
    for (user_id, seen) in changes {
        // Unknown users are left out, as are those whose status was set by hand.
        let Some(user) = users.get(user_id).filter(|user| user.presence_status.is_none()) else { continue };
        let status = status_of(user, seen.connected);
        publish(app, UserPresence { user_id: *user_id, status, last_seen_at: seen.last_seen_at }).await;
    }
}

async fn publish(app: &AppState, presence: UserPresence) {
    metrics::counter!("parley_presence_changes_total").increment(1);
    let UserPresence { user_id, status, last_seen_at } = presence;
    let event = Event::PresenceChanged { user_id, status: status.as_str().to_owned(), last_seen_at };
    app.bus.publish(Topic::Presence(user_id), event).await;
}

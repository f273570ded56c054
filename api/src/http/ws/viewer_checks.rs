//! The connection's viewer over its life: when its token stops being accepted, and whether
//! a viewer announced changed (renamed, deactivated, role changed) may stay connected. The
//! connection's task (`connection.rs`) keeps one timer for all of these.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::protocol::{Closing, close};
use crate::auth::Viewer;
use crate::directory::UserWatch;
use crate::http::HttpState;

/// The pause before a recheck of the viewer that met a failing database is tried again.
pub(super) const RECHECK_RETRY: Duration = Duration::from_secs(1);

/// What a recheck of a changed viewer decided.
pub(super) enum Recheck {
    Keep,
    Close(Closing),
    /// The database did not answer: the connection stays, and is rechecked shortly.
    Failed,
}

/// After the viewer changed: whether they may stay connected as they are. A new role closes
/// the socket for the client to reconnect: its subscriptions checked access with the old one
/// (a demoted admin would go on reading every support conversation). (Not a method: the
/// subscriptions' streams are `Send` but not `Sync`, so `&Connection` cannot be held across
/// an await.)
pub(super) async fn recheck_viewer(state: &HttpState, connection: Uuid, viewer: Option<&Viewer>) -> Recheck {
    let Some(viewer) = viewer else { return Recheck::Keep };
    let app = &state.app;
    match app.directory.user(&app.store, viewer.id).await {
        Ok(Some(user)) if user.deactivated_at.is_none() && user.role == viewer.role => Recheck::Keep,
        Ok(Some(user)) if user.deactivated_at.is_none() => {
            Recheck::Close(Some((close::RECONNECT, "the account's role changed: reconnect".into())))
        }
        Ok(_) => Recheck::Close(Some((close::FORBIDDEN, "Forbidden: the account was deactivated".into()))),
        Err(error) => {
            tracing::warn!(%connection, %error, "could not recheck a changed viewer; retried");
            Recheck::Failed
        }
    }
}

/// The longest the timer waits for a token's expiry before it looks again: tokio's timer
/// does not take deadlines years ahead, which a long-lived token may have.
const EXPIRY_CHECK_MAX: Duration = Duration::from_secs(24 * 3600);

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether a token accepted until `accepted_until` (Unix seconds) is refused now.
pub(super) fn expired(accepted_until: u32) -> bool {
    unix_now() > u64::from(accepted_until)
}

/// When to look at the token's expiry again: the first second in which it is refused, or a
/// day from now, whichever comes first.
pub(super) fn expiry(accepted_until: u32) -> Instant {
    let left = Duration::from_secs(u64::from(accepted_until).saturating_add(1).saturating_sub(unix_now()));
    Instant::now() + left.min(EXPIRY_CHECK_MAX)
}

/// Resolves with the watch when the viewer was announced changed.
pub(super) async fn next_change(mut watch: UserWatch) -> UserWatch {
    watch.changed().await;
    watch
}

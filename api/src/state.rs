//! `AppState`: what every request and subscription shares.

use std::future::Future;
use std::sync::Arc;

use tracing::Instrument;

use crate::auth::{JwtAuth, Viewer};
use crate::bus::EventBus;
use crate::config::Limits;
use crate::db::Store;
use crate::directory::Directory;
use crate::error::{ApiError, ApiResult};
use crate::messages::group_commit::GroupCommit;
use crate::notifications::Notifier;
use crate::presence::tracker::Presence;
use crate::rate_limit::SendLimiter;
use crate::search::window::SearchWindows;
use crate::typing::throttle::TypingThrottle;

/// Cloned by every request, feed and subscription, so a clone is one reference count: an
/// idle subscription's feed holds 8 bytes of it, not the 550 of the fields.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

/// The fields of `AppState`, reached through its `Deref`.
pub struct AppStateInner {
    pub store: Store,
    pub bus: EventBus,
    pub auth: Arc<JwtAuth>,
    pub limits: Arc<Limits>,
    /// Cached users and rooms, invalidated through the bus.
    pub directory: Directory,
    /// Where each organisation's newest messages begin, which search ranks first.
    pub search_windows: SearchWindows,
    /// Typing publishes of this instance's users, at most one per user, room and second.
    pub typing: TypingThrottle,
    /// Who holds a WebSocket here, and in the cluster through Redis leases.
    pub presence: Presence,
    /// Email and web push as configured.
    pub notifier: Arc<Notifier>,
    /// Concurrent sends into one room share a transaction (PostgreSQL).
    pub group_commit: GroupCommit,
    /// The per-user send rate limit (local, or shared by the cluster through Redis).
    send_limiter: SendLimiter,
}

impl AppState {
    pub fn new(
        store: Store,
        bus: EventBus,
        auth: JwtAuth,
        limits: Limits,
        send_limiter: SendLimiter,
        notifier: Notifier,
    ) -> Self {
        let presence = Presence::new(bus.instance_id(), bus.redis_link(), limits.presence_heartbeat());
        Self(Arc::new(AppStateInner {
            store,
            bus,
            auth: Arc::new(auth),
            search_windows: SearchWindows::new(limits.search_window),
            limits: Arc::new(limits),
            directory: Directory::default(),
            typing: TypingThrottle::default(),
            presence,
            notifier: Arc::new(notifier),
            group_commit: GroupCommit::default(),
            send_limiter,
        }))
    }

    /// Spends one send from the viewer's bucket, or RATE_LIMITED with nothing changed.
    pub async fn check_send_rate(&self, viewer: &Viewer) -> ApiResult<()> {
        if self.send_limiter.allow(viewer.id).await {
            Ok(())
        } else {
            Err(ApiError::rate_limited("you are sending messages too fast; retry shortly"))
        }
    }

    /// Drops rate-limit buckets that are full again and typing slots gone quiet, so memory
    /// follows active users.
    pub fn forget_idle_limits(&self) {
        self.send_limiter.forget_idle();
        self.typing.forget_idle();
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// What a service call needs: the shared state and who is asking. One value instead of
/// `store, bus, limits, viewer, …` in every signature.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub app: &'a AppState,
    pub viewer: &'a Viewer,
}

/// Runs `work` in a task of its own and waits for it, in the caller's span: dropping the
/// caller (a request whose client went away) no longer stops it halfway, e.g. between
/// storing a message and announcing it.
pub async fn to_the_end<T: Send + 'static>(
    work: impl Future<Output = ApiResult<T>> + Send + 'static,
) -> ApiResult<T> {
    tokio::spawn(work.in_current_span()).await.map_err(ApiError::internal)?
}

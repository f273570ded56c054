//! `AppState`: what every request and subscription shares.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::auth::{JwtAuth, Viewer};
use crate::bus::EventBus;
use crate::config::Limits;
use crate::db::Store;
use crate::directory::Directory;
use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub bus: EventBus,
    pub auth: Arc<JwtAuth>,
    pub limits: Arc<Limits>,
    /// Cached users and rooms, invalidated through the bus.
    pub directory: Directory,
    /// Per-user token bucket for sending messages.
    send_limiter: Arc<DefaultKeyedRateLimiter<Uuid>>,
}

impl AppState {
    pub fn new(store: Store, bus: EventBus, auth: JwtAuth, limits: Limits) -> Self {
        let rate = NonZeroU32::new(limits.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.send_burst).unwrap_or(NonZeroU32::MIN);
        let send_limiter = Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)));
        Self {
            store,
            bus,
            auth: Arc::new(auth),
            limits: Arc::new(limits),
            directory: Directory::default(),
            send_limiter,
        }
    }

    /// Spends one send from the viewer's bucket, or RATE_LIMITED with nothing changed.
    pub fn check_send_rate(&self, viewer: &Viewer) -> ApiResult<()> {
        self.send_limiter
            .check_key(&viewer.id)
            .map_err(|_| ApiError::rate_limited("you are sending messages too fast; retry shortly"))
    }

    /// Drops rate-limit buckets that are full again, so memory follows active users.
    pub fn forget_idle_limits(&self) {
        self.send_limiter.retain_recent();
    }
}

/// What a service call needs: the shared state and who is asking. One value instead of
/// `store, bus, limits, viewer, …` in every signature.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub app: &'a AppState,
    pub viewer: &'a Viewer,
}

//! `App`: builds everything from the configuration, then serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::time::Duration;
use tokio::net::TcpListener;

use tokio::sync::{mpsc, watch};

use crate::auth::JwtAuth;
use crate::bus::EventBus;
use crate::config::ServeConfig;
use crate::db::{Store, WarmUp};
use crate::demo;
use crate::graphql::build_schema;
use crate::graphql::frames::FrameMemo;
use crate::http::{self, HttpState};
use crate::messages;
use crate::notifications::{self, Notifier};
use crate::presence;
use crate::rate_limit::SendLimiter;
use crate::reminders;
use crate::secrets;
use crate::state::AppState;
use crate::support;

pub struct App {
    listener: TcpListener,
    router: axum::Router,
    shutdown: watch::Sender<bool>,
    /// Closes once every WebSocket connection has ended (each holds a sender).
    websockets_done: mpsc::Receiver<()>,
    /// Each connection's `TCP_USER_TIMEOUT` (`Limits::dead_peer_after`).
    dead_peer_after: Duration,
}

/// How long shutdown waits for WebSockets to send their close frames.
const WEBSOCKET_GRACE: Duration = Duration::from_secs(5);

impl App {
    /// Connects, migrates (and seeds the demo on an empty database), and binds.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        config.auth.validate(&config.database)?;
        let warm_connections = config.database.warm_connections()?;
        let store = Store::connect(&config.database, WarmUp::new(messages::statement::warm_up())).await?;
        let seed = config.seed_demo();
        let demo_users = store
            .migrate_then(
                |store| async move { if seed { demo::seed_if_empty(&store).await } else { Ok(None) } },
            )
            .await?;
        store.open_warm(warm_connections).await?;
        let secret = secrets::jwt_secret(&store, &config.database, &config.auth).await?;
        let auth = JwtAuth::new(&config.auth, secret.as_deref())?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let bus = match &config.redis_url {
            Some(url) => EventBus::redis(url, &config.redis_namespace, shutdown_rx.clone()).await?,
            None => EventBus::in_process(),
        };
        let send_limiter = SendLimiter::new(&config.limits, bus.redis_link());
        // Bound first: links in notifications name the port it got.
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|e| anyhow::anyhow!("PARLEY_BIND: cannot listen on {}: {e}", config.bind))?;
        let addr = listener.local_addr()?;
        let notifier = Notifier::new(&config.notifications, &config.limits, &store, addr).await?;
        let state = AppState::new(store, bus, auth, config.limits.clone(), send_limiter, notifier);
        state.directory.spawn_invalidator(&state.store, &state.bus, shutdown_rx.clone()).await;
        reminders::scheduler::spawn(state.clone(), shutdown_rx.clone()).await;
        presence::service::spawn_upkeep(state.clone(), shutdown_rx.clone());
        notifications::worker::spawn(state.clone(), shutdown_rx.clone());
        support::conversations::spawn_snooze_expiry(state.clone(), shutdown_rx.clone());
        let schema = build_schema(Some(state.clone()), Some(&config.limits), config.playground);
        let demo_logins = match demo_users {
            Some(users) => {
                let logins = demo::logins(&state, &users)?;
                demo::print_welcome(addr, &logins, config.playground);
                Some(Arc::new(logins))
            }
            None => None,
        };
        let (websockets, websockets_done) = mpsc::channel(1);
        let metrics = metrics_recorder();
        spawn_housekeeping(state.clone(), metrics.clone(), shutdown.subscribe());
        let http_state = HttpState {
            websockets,
            app: state,
            schema,
            frames: FrameMemo::default(),
            metrics,
            playground: config.playground,
            demo_logins,
            shutdown: shutdown_rx,
        };
        let router = http::router(http_state, &config.cors_origins);
        let dead_peer_after = config.limits.dead_peer_after();
        Ok(Self { listener, router, shutdown, websockets_done, dead_peer_after })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `signal` resolves; then stops accepting, closes WebSockets with 1001 and
    /// lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = self.shutdown;
        let stop = async move {
            signal.await;
            tracing::info!("shutting down");
            let _ = shutdown.send(true);
        };
        // The peer address tells `/app/demo-users` whether a request comes from this machine.
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        // Without TCP_NODELAY, Nagle's algorithm holds a small write (a frame, the tail of a
        // response) while an earlier one is unacknowledged, and clients delay ACKs by up to
        // 40 ms. axum's `serve` leaves it off. Without TCP_USER_TIMEOUT, a write to a peer that
        // vanished (no FIN) waits while TCP retransmits, about 15 minutes.
        let dead_peer_after = self.dead_peer_after;
        let listener = self.listener.tap_io(move |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY");
            }
            if let Err(error) = socket2::SockRef::from(&*tcp).set_tcp_user_timeout(Some(dead_peer_after)) {
                tracing::warn!(%error, "cannot set TCP_USER_TIMEOUT");
            }
        });
        axum::serve(listener, service).with_graceful_shutdown(stop).await?;
        // Upgraded connections outlive `serve`: let them send their 1001 close frames.
        let mut websockets_done = self.websockets_done;
        let _ = tokio::time::timeout(WEBSOCKET_GRACE, websockets_done.recv()).await;
        Ok(())
    }
}

/// The process-wide Prometheus recorder; `None` if one is installed already.
fn metrics_recorder() -> Option<PrometheusHandle> {
    PrometheusBuilder::new().install_recorder().ok()
}

/// Periodic upkeep: drain histogram samples into their summaries, and forget idle rate-limit
/// buckets. The recorder keeps every histogram sample until upkeep or a scrape drains it, so
/// without this an instance nobody scrapes grows by every request it times (the soak's RSS
/// climbed ≈ 400 KiB/min at 300 msg/s).
fn spawn_housekeeping(
    state: AppState,
    metrics: Option<PrometheusHandle>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut metrics_tick = tokio::time::interval(std::time::Duration::from_secs(5));
        let mut limits_tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = metrics_tick.tick() => if let Some(metrics) = &metrics { metrics.run_upkeep() },
                _ = limits_tick.tick() => state.forget_idle_limits(),
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

//! A TCP proxy a test can cut: one server loses its link to a dependency (Redis, say) while
//! the other servers still reach it, as when one host's network fails. Or hold: what the
//! server sends waits in the proxy until released, as on a slow link.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Backend, TestApp, pg_redis_urls, spawn_app, spawn_app_with};

/// Instance A, and instance B reaching Redis and PostgreSQL through proxies the test cuts:
/// `(redis, postgres, a, b)`. None (the test is skipped) without PostgreSQL and Redis.
pub async fn b_behind_proxies() -> Option<(CuttableProxy, CuttableProxy, TestApp, TestApp)> {
    let (database_url, redis_url) = pg_redis_urls()?;
    let (redis, redis_via_proxy) = CuttableProxy::in_front_of(&redis_url, 6379).await;
    let (pg, pg_via_proxy) = CuttableProxy::in_front_of(&database_url, 5432).await;
    let a = spawn_app(Backend::PostgresRedis).await;
    let b_env = [("DATABASE_URL", pg_via_proxy.as_str()), ("REDIS_URL", redis_via_proxy.as_str())];
    let b = spawn_app_with(Backend::PostgresRedis, &b_env).await;
    Some((redis, pg, a, b))
}

pub struct CuttableProxy {
    /// On 127.0.0.1: put it in a URL in place of the target's address.
    pub port: u16,
    cut: watch::Sender<bool>,
    held: watch::Sender<bool>,
    accepting: JoinHandle<()>,
}

impl CuttableProxy {
    /// A proxy in front of the service at `url` (say `redis://host:port/…`), and the same URL
    /// pointing at the proxy instead.
    pub async fn in_front_of(url: &str, default_port: u16) -> (CuttableProxy, String) {
        let mut via_proxy = reqwest::Url::parse(url).expect("a service URL");
        let host = via_proxy.host_str().expect("a host in the service URL").to_owned();
        let proxy =
            CuttableProxy::start(&format!("{host}:{}", via_proxy.port().unwrap_or(default_port))).await;
        via_proxy.set_host(Some("127.0.0.1")).expect("an IP host");
        via_proxy.set_port(Some(proxy.port)).expect("a port");
        (proxy, via_proxy.into())
    }

    /// Forwards connections to `target` (`host:port`) until cut.
    pub async fn start(target: &str) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let (cut, cut_rx) = watch::channel(false);
        let (held, held_rx) = watch::channel(false);
        let target = target.to_owned();
        let accepting = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    continue; // closed at once while cut
                }
                let (target, mut cut_rx, held_rx) = (target.clone(), cut_rx.clone(), held_rx.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&target).await else { return };
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let (mut from_client, mut to_client) = inbound.into_split();
                    tokio::select! {
                        _ = forward_unless_held(&mut from_client, &mut to_server, held_rx) => {}
                        _ = tokio::io::copy(&mut from_server, &mut to_client) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        CuttableProxy { port, cut, held, accepting }
    }

    /// Holds what the server sends (its commands) until [`Self::release`]; the connections
    /// stay open.
    pub fn hold(&self) {
        let _ = self.held.send(true);
    }

    pub fn release(&self) {
        let _ = self.held.send(false);
    }

    /// Closes every forwarded connection, and new ones as they come, until [`Self::restore`].
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

/// Copies `from` to `to`, each chunk waiting while the proxy is held.
async fn forward_unless_held(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    mut held: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut chunk = vec![0; 16 * 1024];
    loop {
        let read = from.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        let _ = held.wait_for(|held| !*held).await;
        to.write_all(&chunk[..read]).await?;
    }
}

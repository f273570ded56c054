//! Notifications beyond the open socket, delivered from one outbox: outgoing webhooks, email
//! about unread messages, and web push.
//!
//! - `webhooks`: registering and deleting webhooks (org admins), `target`: which URLs they may
//!   reach and the HTTP client that keeps to them.
//! - `personal`: who is notified of a message by email and push (direct messages and
//!   mentions), enqueued with it, and whether that is still wanted when it is due.
//! - `settings`: a user's choices and their browsers' push subscriptions.
//! - `outbox`: the `notification_deliveries` statements: enqueued in the transaction of the
//!   message that causes them (see `messages::send`), claimed, listed, pruned; `settle`
//!   records how an attempt ended.
//! - `worker`: one task per instance that delivers due rows through `webhook_attempt` (what
//!   a webhook may still post), `render` (webhook bodies and signatures), `post` (signed JSON posts), `email` (SMTP) and `push` (RFC 8291), with
//!   `slots` keeping each organisation to its share of the attempts in flight and `breaker`
//!   pausing the targets that keep failing.
//! - `unsubscribe`: the one-click links that turn email off.
//!
//! Architecture invariant: nothing is delivered that was not committed with its cause, and
//! nothing committed is dropped: a delivery ends delivered, failed (with its last error) or
//! cancelled (with the reason it was no longer wanted), never silently.

pub mod breaker;
pub mod email;
pub mod outbox;
pub mod personal;
pub(crate) mod post;
pub mod push;
pub(crate) mod render;
pub mod resolvers;
pub mod settings;
pub mod settle;
mod slots;
pub mod target;
pub mod types;
pub mod unsubscribe;
mod webhook_attempt;
pub mod webhooks;
pub mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{Limits, NotificationConfig};
use crate::db::Store;
use crate::secrets;

/// The personal channels as configured: email (when SMTP is set) and push.
pub struct Notifier {
    pub mailer: Option<email::Mailer>,
    pub pusher: push::Pusher,
    /// Where users reach this server, without a trailing slash.
    pub public_url: String,
    /// How long an unread message waits before it is emailed.
    pub email_delay: Duration,
    /// Signs unsubscribe links (kept in the database, like the VAPID key).
    link_key: Vec<u8>,
    /// The posted-to URLs that keep failing, paused (this instance's view).
    pub breakers: breaker::Breakers,
}

impl Notifier {
    pub async fn new(
        config: &NotificationConfig,
        limits: &Limits,
        store: &Store,
        bind: SocketAddr,
    ) -> anyhow::Result<Self> {
        let attempt_timeout = limits.webhook_timeout();
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{bind}"));
        let public_url = public_url.trim_end_matches('/').to_owned();
        let mailer = match &config.smtp_url {
            Some(url) => Some(email::Mailer::new(url, &config.smtp_from, attempt_timeout)?),
            None => {
                tracing::info!("notification emails are off: PARLEY_SMTP_URL is not set");
                None
            }
        };
        let pusher = push::Pusher::new(config, store, &public_url).await?;
        let link_key = secrets::kept(store, "notification_link_key", secrets::random_hex).await?;
        let email_delay = Duration::from_secs(config.email_delay_secs);
        // A probe ends within two attempt timeouts of its claim (`worker::deliver`).
        let breakers = breaker::Breakers::new(limits.webhook_pause(), attempt_timeout * 2);
        Ok(Self { mailer, pusher, public_url, email_delay, link_key: link_key.into_bytes(), breakers })
    }
}

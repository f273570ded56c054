//! Web push: the VAPID key (RFC 8292) and the requests a push service receives, each payload
//! encrypted to one browser's keys (RFC 8291, `aes128gcm`) by `web-push-native`.
//!
//! The key comes from `PARLEY_VAPID_PRIVATE_KEY`, or is generated once and kept in the
//! database like the development JWT secret, so every instance signs with the same key and
//! browsers subscribed through one instance are reached from any other.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use web_push_native::jwt_simple::algorithms::ES256KeyPair;
use web_push_native::p256::{self, elliptic_curve::sec1::ToEncodedPoint};
use web_push_native::{Auth, WebPushBuilder};

use sea_orm::EntityTrait;
use serde_json::{Value, json};

use super::personal::{self, Channel};
use super::post::without_url;
use super::worker::Failure;
use super::{email, settings, target};
use crate::config::NotificationConfig;
use crate::db::Store;
use crate::error::{ApiError, ApiResult};
use crate::mentions::service as mentions;
use crate::secrets;
use crate::state::AppState;
use entity::enums::RoomKind;
use entity::{messages, notification_deliveries, push_subscriptions, rooms, users};

/// How long a push service keeps a push for a browser that is offline. `web-push-native`
/// also makes it the VAPID token's lifetime, which RFC 8292 caps at 24 hours (and push
/// services refuse a token a clock-skewed second beyond): half a day keeps clear of it.
const TTL: Duration = Duration::from_secs(12 * 3_600);

pub struct Pusher {
    key: ES256KeyPair,
    /// The contact in the VAPID token (`mailto:` or `https:`).
    subject: String,
    /// The public key browsers subscribe with (`applicationServerKey`), base64url.
    pub public_key: String,
}

impl Pusher {
    pub async fn new(config: &NotificationConfig, store: &Store, public_url: &str) -> anyhow::Result<Self> {
        let raw = match &config.vapid_private_key {
            Some(key) => key.trim().to_owned(),
            None => {
                secrets::kept(store, "vapid_private_key", || {
                    URL_SAFE_NO_PAD.encode(ES256KeyPair::generate().to_bytes())
                })
                .await?
            }
        };
        let invalid = || anyhow::anyhow!("PARLEY_VAPID_PRIVATE_KEY: not a base64url P-256 private key");
        let bytes = URL_SAFE_NO_PAD.decode(&raw).map_err(|_| invalid())?;
        let key = ES256KeyPair::from_bytes(&bytes).map_err(|_| invalid())?;
        let public = p256::SecretKey::from_slice(&bytes).map_err(|_| invalid())?.public_key();
        let public_key = URL_SAFE_NO_PAD.encode(public.to_encoded_point(false).as_bytes());
        let subject = config.vapid_subject.clone().unwrap_or_else(|| public_url.to_owned());
        Ok(Self { key, subject, public_key })
    }

    /// The encrypted, signed request that delivers `payload` to one browser.
    pub fn request(
        &self,
        subscription: &push_subscriptions::Model,
        payload: Vec<u8>,
    ) -> Result<reqwest::Request, String> {
        let keys = BrowserKeys::parse(&subscription.p256dh, &subscription.auth).map_err(|e| e.to_string())?;
        let endpoint = subscription.endpoint.parse().map_err(|_| "the endpoint is not a URL".to_owned())?;
        let request = WebPushBuilder::new(endpoint, keys.public, keys.auth)
            .with_valid_duration(TTL)
            .with_vapid(&self.key, &self.subject)
            .build(payload)
            .map_err(|e| format!("encrypting the push: {e}"))?;
        reqwest::Request::try_from(request).map_err(|e| format!("the push request: {e}"))
    }
}

/// A browser's push keys, checked: a P-256 point and a 16-byte secret.
pub struct BrowserKeys {
    public: p256::PublicKey,
    auth: Auth,
}

impl BrowserKeys {
    pub fn parse(p256dh: &str, auth: &str) -> ApiResult<Self> {
        let decode = |field: &str, value: &str| {
            URL_SAFE_NO_PAD
                .decode(value.trim().trim_end_matches('='))
                .map_err(|_| ApiError::bad_input(format!("{field}: not base64url")))
        };
        let public = p256::PublicKey::from_sec1_bytes(&decode("p256dh", p256dh)?)
            .map_err(|_| ApiError::bad_input("p256dh: not a P-256 public key"))?;
        let auth: [u8; 16] =
            decode("auth", auth)?.try_into().map_err(|_| ApiError::bad_input("auth: must be 16 bytes"))?;
        Ok(Self { public, auth: Auth::from(auth) })
    }
}

/// Pushes one message to one browser. 404 and 410 mean the browser unsubscribed (or the
/// push service forgot it): the subscription is removed and the delivery fails for good.
pub(super) async fn attempt(
    state: &AppState,
    client: &reqwest::Client,
    message: &messages::Model,
    room: &rooms::Model,
    delivery: &notification_deliveries::Model,
) -> Result<(), Failure> {
    let subscription = match delivery.push_subscription_id {
        Some(id) => push_subscriptions::Entity::find_by_id(id)
            .one(&state.store.db)
            .await
            .map_err(|e| Failure::reading(e.into()))?,
        None => None,
    };
    let subscription = subscription.ok_or_else(|| Failure::Cancelled("the browser unsubscribed".into()))?;
    // The browser was registered again by someone else since: it is theirs now.
    if Some(subscription.user_id) != delivery.recipient_id {
        return Err(Failure::Cancelled("the browser now belongs to another user".into()));
    }
    if message.deleted_at.is_some() {
        return Err(Failure::Cancelled("the message was deleted".into()));
    }
    // Outside direct rooms a push is for a mention; an edit since may have taken it out
    // (the email batch reads the mentions as it sends, too).
    if room.kind != RoomKind::Direct {
        let mentioned = mentions::mentions_user(&state.store, message.id, subscription.user_id)
            .await
            .map_err(Failure::reading)?;
        if !mentioned {
            return Err(Failure::Cancelled("the message no longer mentions them".into()));
        }
    }
    let recipient =
        state.directory.user(&state.store, subscription.user_id).await.map_err(Failure::reading)?;
    let recipient = recipient.ok_or_else(|| Failure::Cancelled("the recipient no longer exists".into()))?;
    let unwanted = personal::still_wanted(state, &recipient, room.id, message.seq, Channel::Push).await;
    if let Some(reason) = unwanted.map_err(Failure::reading)? {
        return Err(Failure::Cancelled(reason.into()));
    }
    let author = match message.author_user_id {
        Some(id) => state.directory.user(&state.store, id).await.map_err(Failure::reading)?,
        None => None,
    };
    let payload = payload(state, message, room, author.as_ref());
    let request = state
        .notifier
        .pusher
        .request(&subscription, payload.to_string().into_bytes())
        .map_err(Failure::Permanent)?;
    if !target::literal_host_allowed(request.url(), state.limits.webhook_allow_private) {
        return Err(Failure::Permanent("endpoint: not a public address".into()));
    }
    let response = client.execute(request).await.map_err(|e| Failure::Retry(without_url(&e)))?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        status @ (404 | 410) => {
            settings::forget(&state.store, subscription.id).await.map_err(Failure::reading)?;
            Err(Failure::Permanent(format!("HTTP {status}: the subscription is gone and was removed")))
        }
        status @ (408 | 429 | 500..=599) => Err(Failure::Retry(format!("HTTP {status}"))),
        status => Err(Failure::Permanent(format!("HTTP {status}"))),
    }
}

/// What the service worker receives: enough to show a notification and open the room.
fn payload(
    state: &AppState,
    message: &messages::Model,
    room: &rooms::Model,
    author: Option<&users::Model>,
) -> Value {
    let author_name = author.map_or("Someone", |a| a.display_name.as_str());
    let title = match (room.kind, room.name.as_deref()) {
        (RoomKind::Direct, _) | (_, None) => author_name.to_owned(),
        (_, Some(name)) => format!("{author_name} in #{name}"),
    };
    json!({
        "type": "MESSAGE_ADDED",
        "title": title,
        "body": email::preview(&message.body),
        "roomId": room.id,
        "messageId": message.id,
        "seq": message.seq,
        "url": format!("{}/app#room={}", state.notifier.public_url, room.id),
    })
}

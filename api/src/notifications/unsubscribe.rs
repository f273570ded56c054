//! One-click unsubscribe (RFC 8058) from notification emails: every email carries a link
//! signed for its recipient, and a POST to it turns their email off. The signature is an
//! HMAC of the user id with a key kept in the database, so the link needs no sign-in and
//! works on any instance, and nobody can turn off someone else's email by guessing.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::{Notifier, settings};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const PURPOSE: &str = "unsubscribe-email:";

/// The recipient's unsubscribe link.
pub fn link(notifier: &Notifier, user_id: Uuid) -> String {
    format!(
        "{}/notifications/unsubscribe?user={user_id}&token={}",
        notifier.public_url,
        token(notifier, user_id)
    )
}

/// The HMAC of the user id; `None` only if the key were refused, which HMAC never does.
fn mac(notifier: &Notifier, user_id: Uuid) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&notifier.link_key).ok()?;
    mac.update(PURPOSE.as_bytes());
    mac.update(user_id.as_bytes());
    Some(mac)
}

fn token(notifier: &Notifier, user_id: Uuid) -> String {
    mac(notifier, user_id).map(|mac| hex::encode(mac.finalize().into_bytes())).unwrap_or_default()
}

/// True when `token` was made for `user_id` (compared in constant time).
pub fn verify(notifier: &Notifier, user_id: Uuid, token: &str) -> bool {
    let (Ok(bytes), Some(mac)) = (hex::decode(token), mac(notifier, user_id)) else { return false };
    mac.verify_slice(&bytes).is_ok()
}

/// Turns the user's email off; NOT_FOUND for a link that was not made for them.
pub async fn turn_email_off(app: &AppState, user_id: Uuid, token: &str) -> ApiResult<()> {
    if !verify(&app.notifier, user_id, token) {
        return Err(ApiError::not_found("unsubscribe link"));
    }
    settings::update(&app.store, user_id, Some(false), None).await?;
    Ok(())
}

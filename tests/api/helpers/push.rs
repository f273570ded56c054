//! A browser's side of web push: its key pair and secret (what `PushManager.subscribe()`
//! makes), and the reading of what a push service received for it: the payload decrypted
//! with the browser's private key (RFC 8291), the VAPID token checked against the server's
//! public key (RFC 8292).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use web_push_native::p256::{self, elliptic_curve::sec1::ToEncodedPoint};

use super::receiver::Received;

pub struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
    /// Where its push service receives its pushes.
    pub endpoint: String,
}

impl Browser {
    pub fn new(endpoint: String) -> Browser {
        let secret = p256::SecretKey::random(&mut web_push_native::p256::elliptic_curve::rand_core::OsRng);
        // A v4 uuid is 16 random bytes (less 6 bits): a secret enough for a test browser.
        let auth = uuid::Uuid::new_v4().into_bytes();
        Browser { secret, auth, endpoint }
    }

    /// `registerPushSubscription`'s input, as `subscription.toJSON()` gives it.
    pub fn subscription(&self) -> Value {
        let public = self.secret.public_key().to_encoded_point(false);
        json!({
            "endpoint": self.endpoint,
            "p256dh": URL_SAFE_NO_PAD.encode(public.as_bytes()),
            "auth": URL_SAFE_NO_PAD.encode(self.auth),
        })
    }

    /// The payload of a push, decrypted as the browser would.
    pub fn decrypt(&self, push: &Received) -> Value {
        assert_eq!(push.header("content-encoding"), "aes128gcm", "RFC 8291 encoding");
        let auth = web_push_native::Auth::from(self.auth);
        let plain = web_push_native::decrypt(push.body.to_vec(), &self.secret, &auth)
            .expect("decrypts with the browser's key");
        serde_json::from_slice(&plain).expect("a JSON payload")
    }
}

/// True when the push carries `Authorization: vapid t=<JWT>, k=<key>` with `k` the server's
/// public key, the JWT signed (ES256) by it, for the push service's origin, and not expired.
pub fn vapid_signed(push: &Received, server_key: &str, audience: &str) -> bool {
    let header = push.header("authorization");
    let Some(fields) = header.strip_prefix("vapid ") else { return false };
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let (token, key) = (field("t="), field("k="));
    if key != server_key {
        return false;
    }
    let Ok(point) = URL_SAFE_NO_PAD.decode(&key) else { return false };
    if point.len() != 65 {
        return false;
    }
    let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..]));
    let Ok(decoding) = jsonwebtoken::DecodingKey::from_ec_components(&x, &y) else { return false };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(&token, &decoding, &validation).is_ok()
}

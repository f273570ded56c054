//! The inbound webhook's signature: `X-Parley-Signature: sha256=<hex>`, the HMAC-SHA256 with
//! the inbox secret of `"<X-Parley-Timestamp>.<raw body>"` — the scheme of outgoing webhooks
//! (`notifications::render::signing_mac`).
//! The timestamp is signed with the body and must be within five minutes of now, so a
//! captured request cannot be replayed later, not even with a fresh timestamp.

use chrono::{DateTime, Utc};
use hmac::Mac;

use crate::notifications::render::signing_mac;

/// How far a request's timestamp may be from now.
const TOLERANCE_SECS: u64 = 300;

/// `Ok` when `signature` signs `timestamp` and `body` with `secret`, and the timestamp is
/// fresh; else what is wrong, for the 401 answer.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let timestamp = timestamp.ok_or("missing X-Parley-Timestamp")?;
    let signature = signature.ok_or("missing X-Parley-Signature")?;
    let at: i64 = timestamp.trim().parse().map_err(|_| "X-Parley-Timestamp: unix seconds expected")?;
    if now.timestamp().abs_diff(at) > TOLERANCE_SECS {
        return Err("X-Parley-Timestamp: more than 5 minutes from now");
    }
    let hex_signature =
        signature.trim().strip_prefix("sha256=").ok_or("X-Parley-Signature: sha256=<hex> expected")?;
    let expected = hex::decode(hex_signature).map_err(|_| "X-Parley-Signature: not hex")?;
    let mac = signing_mac(secret, timestamp.trim(), body).map_err(|_| "bad secret")?;
    // Constant time: no byte-by-byte timing oracle.
    mac.verify_slice(&expected).map_err(|_| "X-Parley-Signature: does not match")
}

#[cfg(test)]
mod tests {
    use super::verify;

    fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
        let at = ts.parse().ok().and_then(|t| chrono::DateTime::from_timestamp(t, 0)).unwrap_or_default();
        crate::notifications::render::signature(secret, at, body).unwrap_or_default()
    }

    #[test]
    fn only_a_fresh_matching_signature_passes() {
        let now = chrono::Utc::now();
        let ts = now.timestamp().to_string();
        let good = sign("s3cret", &ts, b"{}");
        assert_eq!(verify("s3cret", Some(&ts), Some(&good), b"{}", now), Ok(()));
        assert!(verify("other", Some(&ts), Some(&good), b"{}", now).is_err(), "wrong secret");
        assert!(verify("s3cret", Some(&ts), Some(&good), b"{ }", now).is_err(), "tampered body");
        assert!(verify("s3cret", None, Some(&good), b"{}", now).is_err(), "no timestamp");
        assert!(verify("s3cret", Some(&ts), None, b"{}", now).is_err(), "no signature");
        let old = (now.timestamp() - 301).to_string();
        let stale = sign("s3cret", &old, b"{}");
        assert!(verify("s3cret", Some(&old), Some(&stale), b"{}", now).is_err(), "stale");
    }
}

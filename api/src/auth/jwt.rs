//! JWT verification and minting with pinned algorithms, required `exp`, checked `nbf`, and a
//! small leeway (jsonwebtoken's default of 60 s is too generous).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::error::{ApiError, ApiResult};

const LEEWAY_SECS: u64 = 5;

/// What Parley reads from a token. `iss` and `aud` are checked by jsonwebtoken itself, from
/// the raw claims (where `aud` may be a string or an array), so they are not decoded here.
#[derive(Debug, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub org: Uuid,
    pub role: String,
    pub exp: u64,
}

/// What `mint` writes.
#[derive(Serialize)]
struct MintedClaims {
    sub: Uuid,
    org: Uuid,
    role: String,
    exp: u64,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

pub struct JwtAuth {
    decoding: DecodingKey,
    /// Present only with an HS256 secret: a public key cannot mint.
    encoding: Option<EncodingKey>,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl JwtAuth {
    /// Builds the verifier from configuration; `secret` is the configured or stored HS256
    /// secret, used when no public key is configured.
    pub fn new(config: &AuthConfig, secret: Option<&str>) -> anyhow::Result<Self> {
        let (decoding, encoding, algorithm) = match (&config.jwt_public_key, secret) {
            (Some(pem), _) => {
                let (key, alg) = public_key(&pem_bytes(pem)?)?;
                (key, None, alg)
            }
            (None, Some(secret)) if !secret.is_empty() => (
                DecodingKey::from_secret(secret.as_bytes()),
                Some(EncodingKey::from_secret(secret.as_bytes())),
                Algorithm::HS256,
            ),
            _ => anyhow::bail!("PARLEY_JWT_SECRET: set a secret or PARLEY_JWT_PUBLIC_KEY"),
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // A checked claim must also be present: the library rejects only a wrong `iss` or
        // `aud`, and accepts a token that leaves it out (one minted for another service).
        let mut required = vec!["exp", "sub"];
        required.extend(config.jwt_issuer.as_ref().map(|_| "iss"));
        required.extend(config.jwt_audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        match &config.jwt_audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.jwt_issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self {
            decoding,
            encoding,
            validation,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        })
    }

    pub fn verify(&self, token: &str) -> ApiResult<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| ApiError::unauthenticated(format!("invalid token: {err}")))
    }

    /// The last second (Unix time) in which `verify` still accepts a token with these claims.
    pub fn accepted_until(&self, claims: &Claims) -> u64 {
        claims.exp.saturating_add(self.validation.leeway)
    }

    /// Mints a token for development and tests.
    pub fn mint(&self, user: Uuid, org: Uuid, role: &str, ttl_secs: u64) -> anyhow::Result<String> {
        let Some(key) = &self.encoding else {
            anyhow::bail!("PARLEY_JWT_PUBLIC_KEY is set: tokens are minted by your identity provider");
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = MintedClaims {
            sub: user,
            org,
            role: role.to_owned(),
            exp: now + ttl_secs,
            iat: now,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        Ok(encode(&Header::new(Algorithm::HS256), &claims, key)?)
    }
}

/// The key itself, or a path to a file holding it.
fn pem_bytes(value: &str) -> anyhow::Result<Vec<u8>> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).map_err(|e| anyhow::anyhow!("PARLEY_JWT_PUBLIC_KEY: cannot read `{value}`: {e}"))
}

fn public_key(pem: &[u8]) -> anyhow::Result<(DecodingKey, Algorithm)> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((key, Algorithm::RS256));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((key, Algorithm::ES256));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((key, Algorithm::EdDSA));
    }
    anyhow::bail!("PARLEY_JWT_PUBLIC_KEY: not an RSA, EC (P-256) or Ed25519 public key in PEM")
}

//! Authentication: the only module that parses tokens. It turns a bearer token into a
//! `Viewer` (the caller, loaded from the database) and mints development tokens.
//!
//! Architecture invariant: a `Viewer` always belongs to the organisation named in the token,
//! and every service scopes its queries by `viewer.org_id`.

mod jwt;

pub use jwt::{Claims, JwtAuth};

use uuid::Uuid;

use crate::db::Store;
use crate::directory::Directory;
use crate::error::{ApiError, ApiResult};
use entity::enums::UserRole;

/// The authenticated caller of a request or WebSocket connection.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub id: Uuid,
    pub org_id: Uuid,
    pub role: UserRole,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role.is_admin()
    }
}

/// Reads `Bearer <token>` (the scheme is case-insensitive; a bare token is accepted too).
pub fn bearer_token(header_value: &str) -> &str {
    let value = header_value.trim();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => value,
    }
}

impl JwtAuth {
    /// Verifies a token and loads its user (through the directory cache, which forgets a
    /// user on every instance as soon as they are deactivated or change role), who must
    /// exist, be active, and belong to the token's organisation.
    pub async fn authenticate(&self, store: &Store, directory: &Directory, token: &str) -> ApiResult<Viewer> {
        Ok(self.authenticate_until(store, directory, token).await?.0)
    }

    /// As [`Self::authenticate`], and the last second (Unix time, the leeway included) in
    /// which the token is still accepted: a WebSocket opened with it closes after that.
    pub async fn authenticate_until(
        &self,
        store: &Store,
        directory: &Directory,
        token: &str,
    ) -> ApiResult<(Viewer, u64)> {
        let claims = self.verify(token)?;
        let user = directory
            .user(store, claims.sub)
            .await?
            .filter(|u| u.org_id == claims.org && u.deactivated_at.is_none())
            .ok_or_else(|| ApiError::unauthenticated("unknown user or organisation"))?;
        let viewer = Viewer { id: user.id, org_id: user.org_id, role: user.role };
        Ok((viewer, self.accepted_until(&claims)))
    }
}

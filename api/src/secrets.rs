//! Secrets generated on first use and kept in the database (the `settings` table), so every
//! process on it agrees: the HS256 secret when none is configured (SQLite only: on PostgreSQL
//! a secret or public key must be configured), the VAPID key and the key of unsubscribe
//! links.

use rand::Rng;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};

use crate::config::{AuthConfig, DatabaseConfig};
use crate::db::Store;
use entity::settings;

const KEY: &str = "jwt_secret";

pub async fn jwt_secret(
    store: &Store,
    database: &DatabaseConfig,
    auth: &AuthConfig,
) -> anyhow::Result<Option<String>> {
    if auth.jwt_secret.is_some() || auth.jwt_public_key.is_some() {
        return Ok(auth.jwt_secret.clone());
    }
    if !database.is_sqlite() {
        anyhow::bail!("PARLEY_JWT_SECRET: required with PostgreSQL (or set PARLEY_JWT_PUBLIC_KEY)");
    }
    Ok(Some(kept(store, KEY, random_hex).await?))
}

/// 32 random bytes, hex: every generated secret (JWT, webhook, inbox, link key).
pub fn random_hex() -> String {
    hex::encode(rand::rng().random::<[u8; 32]>())
}

/// The value kept under `key` in the database, generated and stored on first use. Two
/// processes starting at once agree: the second insert fails and reads the first one's.
pub async fn kept(store: &Store, key: &str, generate: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Some(stored) = settings::Entity::find_by_id(key.to_owned()).one(&store.db).await? {
        return Ok(stored.value);
    }
    let tx = store.begin_write().await?;
    let stored =
        settings::ActiveModel { key: Set(key.to_owned()), value: Set(generate()) }.insert(&tx.txn).await;
    match stored {
        Ok(stored) => {
            tx.commit().await?;
            Ok(stored.value)
        }
        Err(_) => {
            drop(tx);
            let stored = settings::Entity::find_by_id(key.to_owned()).one(&store.db).await?;
            stored.map(|s| s.value).ok_or_else(|| anyhow::anyhow!("cannot keep the {key} setting"))
        }
    }
}

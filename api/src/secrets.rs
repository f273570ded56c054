//! The HS256 secret when none is configured: on SQLite (the embedded default) one is
//! generated on first use and kept in the database, so `parley token` and `parley serve`
//! agree; on PostgreSQL a secret or public key must be configured.

use rand::RngCore;
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
    if let Some(stored) = settings::Entity::find_by_id(KEY.to_owned()).one(&store.db).await? {
        return Ok(Some(stored.value));
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tx = store.begin_write().await?;
    let stored = settings::ActiveModel { key: Set(KEY.to_owned()), value: Set(secret) }.insert(&tx.txn).await;
    match stored {
        Ok(stored) => {
            tx.commit().await?;
            Ok(Some(stored.value))
        }
        Err(_) => {
            // Another process stored one first: use theirs.
            drop(tx);
            let stored = settings::Entity::find_by_id(KEY.to_owned()).one(&store.db).await?;
            Ok(stored.map(|s| s.value))
        }
    }
}

//! A user's notification choices (`updateNotificationSettings`) and their browsers' push
//! subscriptions (`registerPushSubscription`, `unregisterPushSubscription`).
//!
//! An endpoint belongs to one browser: registering it again (new keys, or another user
//! signing in on that browser) replaces the row instead of adding one, so a browser is never
//! pushed twice or pushed another user's messages. A user keeps at most
//! `MAX_SUBSCRIPTIONS`; registering one more forgets their oldest.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::push::BrowserKeys;
use super::target;
use crate::db::Store;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::Ctx;
use entity::{notification_settings, push_subscriptions};

/// Browsers one user may register.
const MAX_SUBSCRIPTIONS: usize = 20;

/// A user's choices; both channels are on until turned off.
#[derive(Clone, Copy, Debug)]
pub struct Choices {
    pub email_enabled: bool,
    pub push_enabled: bool,
}

pub async fn of(store: &Store, user_id: Uuid) -> ApiResult<Choices> {
    let row = notification_settings::Entity::find_by_id(user_id).one(&store.db).await?;
    Ok(row.map_or(Choices { email_enabled: true, push_enabled: true }, |r| Choices {
        email_enabled: r.email_enabled,
        push_enabled: r.push_enabled,
    }))
}

/// Changes what is given and keeps the rest.
pub async fn update(
    store: &Store,
    user_id: Uuid,
    email: Option<bool>,
    push: Option<bool>,
) -> ApiResult<Choices> {
    if email.is_none() && push.is_none() {
        return Err(ApiError::bad_input("give emailEnabled or pushEnabled"));
    }
    let tx = store.begin_write().await?;
    let current = notification_settings::Entity::find_by_id(user_id).one(&tx.txn).await?;
    let choices = Choices {
        email_enabled: email.unwrap_or(current.as_ref().is_none_or(|c| c.email_enabled)),
        push_enabled: push.unwrap_or(current.as_ref().is_none_or(|c| c.push_enabled)),
    };
    let row = notification_settings::ActiveModel::from(notification_settings::Model {
        user_id,
        email_enabled: choices.email_enabled,
        push_enabled: choices.push_enabled,
        updated_at: Utc::now(),
    });
    let columns = [
        notification_settings::Column::EmailEnabled,
        notification_settings::Column::PushEnabled,
        notification_settings::Column::UpdatedAt,
    ];
    notification_settings::Entity::insert(row)
        .on_conflict(
            OnConflict::column(notification_settings::Column::UserId).update_columns(columns).to_owned(),
        )
        .exec(&tx.txn)
        .await?;
    tx.commit().await?;
    Ok(choices)
}

/// A browser's subscription as `PushManager.subscribe()` gives it.
pub struct NewSubscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

pub async fn register(cx: &Ctx<'_>, new: NewSubscription) -> ApiResult<push_subscriptions::Model> {
    let allow_private = cx.app.limits.webhook_allow_private;
    // Push services are public HTTPS; plain HTTP only where private targets are allowed
    // (tests, a push service on the local network).
    if !new.endpoint.trim().starts_with("https://") && !allow_private {
        return Err(ApiError::bad_input("endpoint: push services are reached over https"));
    }
    // The webhook rules, reported under this field's name.
    let endpoint = target::check_url(&new.endpoint, allow_private).await.map_err(|e| match e.code() {
        ErrorCode::BadUserInput => {
            let message = e.public_message();
            ApiError::bad_input(format!("endpoint{}", message.strip_prefix("url").unwrap_or(message)))
        }
        _ => e,
    })?;
    BrowserKeys::parse(&new.p256dh, &new.auth)?;
    let store = &cx.app.store;
    let row = push_subscriptions::Model {
        id: Uuid::now_v7(),
        org_id: cx.viewer.org_id,
        user_id: cx.viewer.id,
        endpoint: endpoint.to_string(),
        p256dh: new.p256dh.trim().to_owned(),
        auth: new.auth.trim().to_owned(),
        created_at: Utc::now(),
    };
    use push_subscriptions::Column;
    let replace = OnConflict::column(Column::Endpoint)
        .update_columns([Column::OrgId, Column::UserId, Column::P256dh, Column::Auth, Column::CreatedAt])
        .to_owned();
    let tx = store.begin_write().await?;
    push_subscriptions::Entity::insert(push_subscriptions::ActiveModel::from(row))
        .on_conflict(replace)
        .exec_without_returning(&tx.txn)
        .await?;
    let mine = push_subscriptions::Entity::find()
        .filter(Column::UserId.eq(cx.viewer.id))
        .order_by_desc(Column::CreatedAt);
    let stale: Vec<Uuid> =
        mine.all(&tx.txn).await?.into_iter().skip(MAX_SUBSCRIPTIONS).map(|s| s.id).collect();
    if !stale.is_empty() {
        push_subscriptions::Entity::delete_many().filter(Column::Id.is_in(stale)).exec(&tx.txn).await?;
    }
    let stored = push_subscriptions::Entity::find()
        .filter(Column::Endpoint.eq(endpoint.as_str()))
        .one(&tx.txn)
        .await?;
    tx.commit().await?;
    // A known endpoint keeps its row id: pushes queued for a previous owner find the new one
    // and are cancelled.
    stored.ok_or_else(|| ApiError::conflict("the subscription changed while registering; retry"))
}

/// Forgets the viewer's subscription of `endpoint`; false when they had none.
pub async fn unregister(cx: &Ctx<'_>, endpoint: &str) -> ApiResult<bool> {
    let endpoint = reqwest::Url::parse(endpoint.trim()).map(|u| u.to_string()).unwrap_or_default();
    let tx = cx.app.store.begin_write().await?;
    let deleted = push_subscriptions::Entity::delete_many()
        .filter(push_subscriptions::Column::Endpoint.eq(endpoint))
        .filter(push_subscriptions::Column::UserId.eq(cx.viewer.id))
        .exec(&tx.txn)
        .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected > 0)
}

/// The viewer's browsers, newest first.
pub async fn subscriptions(store: &Store, user_id: Uuid) -> ApiResult<Vec<push_subscriptions::Model>> {
    let rows = push_subscriptions::Entity::find()
        .filter(push_subscriptions::Column::UserId.eq(user_id))
        .order_by_desc(push_subscriptions::Column::CreatedAt)
        .all(&store.db)
        .await?;
    Ok(rows)
}

/// The push service said the subscription is gone (404, 410): forget it.
pub async fn forget(store: &Store, id: Uuid) -> ApiResult<()> {
    let tx = store.begin_write().await?;
    push_subscriptions::Entity::delete_by_id(id).exec(&tx.txn).await?;
    tx.commit().await?;
    Ok(())
}

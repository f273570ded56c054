//! Registering outgoing webhooks: organisation admins only; the URL must pass the target
//! checks; a room-scoped webhook needs a room the admin may read. The secret is generated
//! here and shown once, in the answer that creates the webhook.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use super::target;
use crate::error::{ApiError, ApiResult};
use crate::rooms::access;
use crate::secrets;
use crate::state::Ctx;
use entity::enums::WebhookFormat;
use entity::outgoing_webhooks::{self as webhooks, Column};

/// Live webhooks one organisation may have.
const MAX_PER_ORG: u64 = 50;

/// What a webhook can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookEvent {
    MessageAdded,
    ConversationAssigned,
}

impl WebhookEvent {
    pub fn name(self) -> &'static str {
        match self {
            Self::MessageAdded => "MESSAGE_ADDED",
            Self::ConversationAssigned => "CONVERSATION_ASSIGNED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "MESSAGE_ADDED" => Some(Self::MessageAdded),
            "CONVERSATION_ASSIGNED" => Some(Self::ConversationAssigned),
            _ => None,
        }
    }

    /// The events stored in `outgoing_webhooks.events`.
    pub fn parse_list(stored: &str) -> Vec<Self> {
        stored.split(',').filter_map(Self::parse).collect()
    }
}

pub struct NewWebhook {
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub room_id: Option<Uuid>,
    pub format: WebhookFormat,
}

fn require_admin(cx: &Ctx<'_>) -> ApiResult<()> {
    if cx.viewer.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("only organisation admins manage webhooks"))
    }
}

/// The webhook and its secret (shown this once).
#[tracing::instrument(skip(cx, new), fields(viewer = %cx.viewer.id))]
pub async fn create(cx: &Ctx<'_>, new: NewWebhook) -> ApiResult<(webhooks::Model, String)> {
    require_admin(cx)?;
    // The room first: another organisation's room id is NOT_FOUND whatever else is wrong.
    if let Some(room_id) = new.room_id {
        access::readable(&cx.app.store, cx.viewer, room_id).await?;
    }
    if new.events.is_empty() {
        return Err(ApiError::bad_input("events: name at least one"));
    }
    let url = target::check_url(&new.url, cx.app.limits.webhook_allow_private).await?;
    let mut events: Vec<&str> = new.events.iter().map(|e| e.name()).collect();
    events.sort_unstable();
    events.dedup();
    let secret = secrets::random_hex();
    let store = &cx.app.store;
    let tx = store.begin_write().await?;
    // Counted in the transaction that inserts, one create of the organisation at a time:
    // creates counted side by side would each see room for one more. SQLite's write
    // transaction already excludes every other writer; on PostgreSQL the organisation's row is
    // held.
    store.hold_row(&tx.txn, "organizations", cx.viewer.org_id).await?;
    let live = webhooks::Entity::find()
        .filter(Column::OrgId.eq(cx.viewer.org_id))
        .filter(Column::DeletedAt.is_null())
        .count(&tx.txn)
        .await?;
    if live >= MAX_PER_ORG {
        return Err(ApiError::bad_input("an organisation has at most 50 webhooks"));
    }
    let webhook = webhooks::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(cx.viewer.org_id),
        url: Set(url.to_string()),
        events: Set(format!(",{},", events.join(","))),
        room_id: Set(new.room_id),
        format: Set(new.format),
        secret: Set(secret.clone()),
        created_by: Set(cx.viewer.id),
        created_at: Set(Utc::now()),
        deleted_at: Set(None),
    }
    .insert(&tx.txn)
    .await?;
    tx.commit().await?;
    Ok((webhook, secret))
}

/// Deletes a webhook; its pending deliveries fail at their next attempt. Idempotent.
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn delete(cx: &Ctx<'_>, id: Uuid) -> ApiResult<webhooks::Model> {
    require_admin(cx)?;
    let webhook = find(cx, id).await?;
    if webhook.deleted_at.is_some() {
        return Ok(webhook);
    }
    let mut change: webhooks::ActiveModel = webhook.into();
    change.deleted_at = Set(Some(Utc::now()));
    let tx = cx.app.store.begin_write().await?;
    let webhook = change.update(&tx.txn).await?;
    tx.commit().await?;
    Ok(webhook)
}

/// The organisation's live webhooks, oldest first.
pub async fn list(cx: &Ctx<'_>) -> ApiResult<Vec<webhooks::Model>> {
    require_admin(cx)?;
    Ok(webhooks::Entity::find()
        .filter(Column::OrgId.eq(cx.viewer.org_id))
        .filter(Column::DeletedAt.is_null())
        .order_by_asc(Column::CreatedAt)
        .all(&cx.app.store.db)
        .await?)
}

async fn find(cx: &Ctx<'_>, id: Uuid) -> ApiResult<webhooks::Model> {
    webhooks::Entity::find_by_id(id)
        .filter(Column::OrgId.eq(cx.viewer.org_id))
        .one(&cx.app.store.db)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

//! Outgoing webhooks and the delivery log, for organisation admins; each user's notification
//! settings and push subscriptions.

use async_graphql::{Context, ID, Object, Result};

use super::outbox::{self, Whose};
use super::settings::{self, NewSubscription};
use super::types::{
    CreateOutgoingWebhookInput, CreatedOutgoingWebhook, NotificationDelivery, NotificationDeliveryConnection,
    NotificationDeliveryFilter, NotificationSettings, OutgoingWebhook, PushSubscription,
    RegisterPushSubscriptionInput, UpdateNotificationSettingsInput,
};
use super::webhooks::{self, NewWebhook};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::parse_id;
use crate::graphql::pages::keyset_connection;
use crate::paging::{self, Keyset, TimeKey};

#[derive(Default)]
pub struct NotificationQuery;

#[Object]
impl NotificationQuery {
    /// The organisation's webhooks (admins).
    async fn outgoing_webhooks(&self, ctx: &Context<'_>) -> Result<Vec<OutgoingWebhook>> {
        Ok(webhooks::list(&ctx.service()?).await?.into_iter().map(OutgoingWebhook).collect())
    }

    /// The organisation's webhook deliveries, newest first (admins). A user's own emails and
    /// pushes are `viewer.notificationDeliveries`.
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    async fn notification_deliveries(
        &self,
        ctx: &Context<'_>,
        filter: Option<NotificationDeliveryFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<NotificationDeliveryConnection> {
        let viewer = ctx.viewer()?;
        if !viewer.is_admin() {
            return Err(ApiError::forbidden("only organisation admins see deliveries").into());
        }
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        deliveries_page(ctx, Whose::Organisation(viewer.org_id), filter, page).await
    }
}

/// One page of deliveries for `notificationDeliveries` and `viewer.notificationDeliveries`.
pub async fn deliveries_page(
    ctx: &Context<'_>,
    whose: Whose,
    filter: Option<NotificationDeliveryFilter>,
    page: Keyset<TimeKey>,
) -> Result<NotificationDeliveryConnection> {
    let filter = filter.unwrap_or_default();
    let kind = filter.kind.map(|k| k.stored());
    let status = filter.status.map(Into::into);
    let (rows, more) = outbox::list(&ctx.state()?.store, whose, status, kind, page).await?;
    let items = rows.into_iter().map(|(key, row)| (key, NotificationDelivery(row))).collect();
    Ok(keyset_connection(&page, items, more))
}

#[derive(Default)]
pub struct NotificationMutation;

#[Object]
impl NotificationMutation {
    /// Registers a webhook (admins); the answer carries its signing secret, shown only here.
    async fn create_outgoing_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateOutgoingWebhookInput,
    ) -> Result<CreatedOutgoingWebhook> {
        let new = NewWebhook {
            url: input.url,
            events: input.events.into_iter().map(Into::into).collect(),
            room_id: input.room_id.as_ref().map(parse_id).transpose()?,
            format: input.format.into(),
        };
        let (webhook, secret) = webhooks::create(&ctx.service()?, new).await?;
        Ok(CreatedOutgoingWebhook { webhook: OutgoingWebhook(webhook), secret })
    }

    /// Deletes a webhook (admins); deliveries not yet made fail. Idempotent.
    async fn delete_outgoing_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<OutgoingWebhook> {
        Ok(OutgoingWebhook(webhooks::delete(&ctx.service()?, parse_id(&id)?).await?))
    }

    /// Turns the viewer's email or push notifications on or off; what is not given stays.
    async fn update_notification_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateNotificationSettingsInput,
    ) -> Result<NotificationSettings> {
        let user_id = ctx.viewer()?.id;
        let choices =
            settings::update(&ctx.state()?.store, user_id, input.email_enabled, input.push_enabled).await?;
        Ok(NotificationSettings { choices, user_id })
    }

    /// Registers this browser for web push (what `PushManager.subscribe()` returned). The
    /// same endpoint again replaces its keys (and its owner, if another user signed in).
    async fn register_push_subscription(
        &self,
        ctx: &Context<'_>,
        input: RegisterPushSubscriptionInput,
    ) -> Result<PushSubscription> {
        let new = NewSubscription { endpoint: input.endpoint, p256dh: input.p256dh, auth: input.auth };
        Ok(PushSubscription(settings::register(&ctx.service()?, new).await?))
    }

    /// Stops pushes to this browser; false when it was not registered by the viewer.
    async fn unregister_push_subscription(&self, ctx: &Context<'_>, endpoint: String) -> Result<bool> {
        Ok(settings::unregister(&ctx.service()?, &endpoint).await?)
    }
}

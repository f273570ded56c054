//! GraphQL types of notifications: outgoing webhooks, the deliveries of the outbox, and a
//! user's notification settings and push subscriptions.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::settings;
use super::webhooks::WebhookEvent;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::to_id;
use entity::enums::{DeliveryStatus as StoredStatus, WebhookFormat as StoredFormat};
use entity::{notification_deliveries, outgoing_webhooks, push_subscriptions};

/// What a webhook is told about.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "WebhookEvent")]
pub enum WebhookEventName {
    /// A message was sent in a room the webhook follows.
    MessageAdded,
    /// A support conversation was assigned to an agent (by the inbox's strategy or by hand).
    ConversationAssigned,
}

impl From<WebhookEventName> for WebhookEvent {
    fn from(name: WebhookEventName) -> Self {
        match name {
            WebhookEventName::MessageAdded => Self::MessageAdded,
            WebhookEventName::ConversationAssigned => Self::ConversationAssigned,
        }
    }
}

impl From<WebhookEvent> for WebhookEventName {
    fn from(event: WebhookEvent) -> Self {
        match event {
            WebhookEvent::MessageAdded => Self::MessageAdded,
            WebhookEvent::ConversationAssigned => Self::ConversationAssigned,
        }
    }
}

/// The body a webhook posts.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Parley's JSON: the event, the message, its room and author (see README).
    Json,
    /// `{"text": "*Alice* in #general: hello"}`, what a Slack incoming webhook takes.
    Slack,
}

impl From<WebhookFormat> for StoredFormat {
    fn from(format: WebhookFormat) -> Self {
        match format {
            WebhookFormat::Json => Self::Json,
            WebhookFormat::Slack => Self::Slack,
        }
    }
}

impl From<StoredFormat> for WebhookFormat {
    fn from(format: StoredFormat) -> Self {
        match format {
            StoredFormat::Json => Self::Json,
            StoredFormat::Slack => Self::Slack,
        }
    }
}

#[derive(InputObject)]
pub struct CreateOutgoingWebhookInput {
    /// An `http(s)` URL on a public address (private ones need `PARLEY_WEBHOOK_ALLOW_PRIVATE`).
    pub url: String,
    pub events: Vec<WebhookEventName>,
    /// Only this room's events (a room the admin may read). Without it, the organisation's
    /// public channels: direct messages and private channels need a webhook of their own.
    pub room_id: Option<ID>,
    #[graphql(default_with = "WebhookFormat::Json")]
    pub format: WebhookFormat,
}

/// Where an organisation's events are posted, each delivery signed with the webhook's secret.
pub struct OutgoingWebhook(pub outgoing_webhooks::Model);

#[Object]
impl OutgoingWebhook {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn events(&self) -> Vec<WebhookEventName> {
        WebhookEvent::parse_list(&self.0.events).into_iter().map(Into::into).collect()
    }
    async fn room_id(&self) -> Option<ID> {
        self.0.room_id.map(to_id)
    }
    async fn format(&self) -> WebhookFormat {
        self.0.format.into()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
}

/// A new webhook and its signing secret, which is shown only here.
#[derive(SimpleObject)]
pub struct CreatedOutgoingWebhook {
    pub webhook: OutgoingWebhook,
    /// Verify `X-Parley-Signature` with it: `sha256=` + hex HMAC-SHA256 of
    /// `"<X-Parley-Timestamp>.<raw body>"`.
    pub secret: String,
}

/// How a notification goes out.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    Webhook,
    /// An email about unread messages of one room.
    Email,
    /// A web push to one browser.
    Push,
    /// An agent's reply posted to a support inbox's outbound webhook.
    Outbound,
}

impl NotificationKind {
    pub fn stored(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
            Self::Push => "push",
            Self::Outbound => "outbound",
        }
    }

    fn from_stored(channel: &str) -> Self {
        match channel {
            "email" => Self::Email,
            "push" => Self::Push,
            "outbound" => Self::Outbound,
            _ => Self::Webhook,
        }
    }
}

/// Where a delivery stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or its next retry (`nextAttemptAt`).
    Pending,
    /// Being attempted now.
    Delivering,
    Delivered,
    /// Gave up: out of attempts, or its webhook or message is gone (`lastError` says which).
    Failed,
    /// No longer wanted, never sent: read meanwhile, the recipient came online, the room
    /// was muted or the channel turned off (`lastError` says which).
    Cancelled,
}

impl From<DeliveryStatus> for StoredStatus {
    fn from(status: DeliveryStatus) -> Self {
        match status {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Delivering => Self::Delivering,
            DeliveryStatus::Delivered => Self::Delivered,
            DeliveryStatus::Failed => Self::Failed,
            DeliveryStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<StoredStatus> for DeliveryStatus {
    fn from(status: StoredStatus) -> Self {
        match status {
            StoredStatus::Pending => Self::Pending,
            StoredStatus::Delivering => Self::Delivering,
            StoredStatus::Delivered => Self::Delivered,
            StoredStatus::Failed => Self::Failed,
            StoredStatus::Cancelled => Self::Cancelled,
        }
    }
}

#[derive(InputObject, Default)]
pub struct NotificationDeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub kind: Option<NotificationKind>,
}

/// One notification in the outbox and what became of it.
pub struct NotificationDelivery(pub notification_deliveries::Model);

#[Object]
impl NotificationDelivery {
    /// Also the `Idempotency-Key` of every attempt.
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn kind(&self) -> NotificationKind {
        NotificationKind::from_stored(&self.0.channel)
    }
    async fn event(&self) -> Option<WebhookEventName> {
        WebhookEvent::parse(&self.0.event).map(Into::into)
    }
    async fn status(&self) -> DeliveryStatus {
        self.0.status.into()
    }
    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// Why the last attempt failed (`HTTP 500`, `timed out`, …), or why a cancelled one was
    /// not sent; null once delivered.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When a pending delivery is tried next.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.status == StoredStatus::Pending).then_some(self.0.next_attempt_at)
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn webhook_id(&self) -> Option<ID> {
        self.0.webhook_id.map(to_id)
    }
    async fn message_id(&self) -> Option<ID> {
        self.0.message_id.map(to_id)
    }
    async fn room_id(&self) -> Option<ID> {
        self.0.room_id.map(to_id)
    }
    /// Whom an email or a push is for.
    async fn recipient_id(&self) -> Option<ID> {
        self.0.recipient_id.map(to_id)
    }
}

pub type NotificationDeliveryConnection = async_graphql::connection::Connection<String, NotificationDelivery>;

/// How the viewer hears of direct messages and mentions while they are not online.
pub struct NotificationSettings {
    pub choices: settings::Choices,
    pub user_id: Uuid,
}

#[Object]
impl NotificationSettings {
    /// Email about direct messages and mentions left unread for `emailDelaySeconds`.
    async fn email_enabled(&self) -> bool {
        self.choices.email_enabled
    }
    /// Web push about direct messages and mentions to the viewer's registered browsers.
    async fn push_enabled(&self) -> bool {
        self.choices.push_enabled
    }
    /// False when this server sends no email (no `PARLEY_SMTP_URL`) or the viewer has no
    /// email address (`updateProfile(input: {email})`).
    async fn email_available(&self, ctx: &Context<'_>) -> Result<bool> {
        let state = ctx.state()?;
        let user = state.directory.user(&state.store, self.user_id).await?;
        Ok(state.notifier.mailer.is_some() && user.is_some_and(|u| u.email.is_some()))
    }
    async fn email_delay_seconds(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(i64::try_from(ctx.state()?.notifier.email_delay.as_secs()).unwrap_or(i64::MAX))
    }
    /// The `applicationServerKey` for `PushManager.subscribe()` (VAPID, base64url).
    async fn vapid_public_key(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(ctx.state()?.notifier.pusher.public_key.clone())
    }
    /// The viewer's registered browsers, newest first.
    async fn push_subscriptions(&self, ctx: &Context<'_>) -> Result<Vec<PushSubscription>> {
        let rows = settings::subscriptions(&ctx.state()?.store, self.user_id).await?;
        Ok(rows.into_iter().map(PushSubscription).collect())
    }
}

/// A browser that receives the viewer's pushes.
pub struct PushSubscription(pub push_subscriptions::Model);

#[Object]
impl PushSubscription {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn endpoint(&self) -> &str {
        &self.0.endpoint
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject)]
pub struct UpdateNotificationSettingsInput {
    pub email_enabled: Option<bool>,
    pub push_enabled: Option<bool>,
}

/// What `PushManager.subscribe()` returned: `subscription.toJSON()` gives all three.
#[derive(InputObject)]
pub struct RegisterPushSubscriptionInput {
    /// The push service URL (https).
    pub endpoint: String,
    /// `keys.p256dh`: the browser's P-256 public key, base64url.
    #[graphql(name = "p256dh")]
    pub p256dh: String,
    /// `keys.auth`: the browser's 16-byte secret, base64url.
    pub auth: String,
}

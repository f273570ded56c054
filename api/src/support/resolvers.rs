//! Support inboxes in GraphQL: thin resolvers over `inboxes`, `ingest`, `conversations` and
//! `metrics`.

use async_graphql::{Context, ID, MaybeUndefined, Object, Result};

use super::conversations;
use super::inboxes::{self, InboxSettings};
use super::ingest;
use super::metrics;
use super::payload::{Inbound, RawAttachment, RawContact, RawInbound};
use super::types::{
    CreateSupportInboxInput, InboundMessageInput, SupportInbox, SupportInboxWithSecret, SupportMetrics,
    UpdateSupportInboxInput,
};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::enums::ConversationStatus;
use crate::graphql::ids::parse_id;
use crate::messages::types::Message;
use crate::rooms::types::Room;
use crate::state::Ctx;

#[derive(Default)]
pub struct SupportQuery;

#[Object]
impl SupportQuery {
    /// The inboxes the viewer works in (all of the organisation's for admins).
    async fn support_inboxes(&self, ctx: &Context<'_>) -> Result<Vec<SupportInbox>> {
        Ok(inboxes::list(&ctx.service()?).await?.into_iter().map(SupportInbox).collect())
    }

    /// How the inbox and each agent answered the conversations opened in `[since, until)`.
    async fn support_metrics(
        &self,
        ctx: &Context<'_>,
        inbox_id: ID,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<SupportMetrics> {
        Ok(SupportMetrics(metrics::compute(&ctx.service()?, parse_id(&inbox_id)?, since, until).await?))
    }

    /// An inbox of the viewer's (its agents and org admins); NOT_FOUND otherwise.
    async fn support_inbox(&self, ctx: &Context<'_>, id: ID) -> Result<SupportInbox> {
        Ok(SupportInbox(inboxes::readable(&ctx.service()?, parse_id(&id)?).await?))
    }
}

#[derive(Default)]
pub struct SupportMutation;

#[Object]
impl SupportMutation {
    /// Creates an inbox (admins); the answer carries its webhook secret, shown only here.
    async fn create_support_inbox(
        &self,
        ctx: &Context<'_>,
        input: CreateSupportInboxInput,
    ) -> Result<SupportInboxWithSecret> {
        let settings = InboxSettings {
            name: Some(input.name),
            assignment: Some(input.assignment.into()),
            agent_capacity: Some(input.agent_capacity),
            outbound_webhook_url: Some(input.outbound_webhook_url.filter(|u| !u.trim().is_empty())),
        };
        let inbox = inboxes::create(&ctx.service()?, settings).await?;
        Ok(SupportInboxWithSecret {
            webhook_secret: inbox.webhook_secret.clone(),
            inbox: SupportInbox(inbox),
        })
    }

    async fn update_support_inbox(
        &self,
        ctx: &Context<'_>,
        input: UpdateSupportInboxInput,
    ) -> Result<SupportInbox> {
        let settings = InboxSettings {
            name: input.name,
            assignment: input.assignment.map(Into::into),
            agent_capacity: match input.agent_capacity {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(capacity) => Some(Some(capacity)),
            },
            outbound_webhook_url: input
                .outbound_webhook_url
                .map(|u| Some(u).filter(|u| !u.trim().is_empty())),
        };
        Ok(SupportInbox(inboxes::update(&ctx.service()?, parse_id(&input.inbox_id)?, settings).await?))
    }

    /// A new webhook secret (admins); the old one stops working at once.
    async fn rotate_inbox_secret(&self, ctx: &Context<'_>, inbox_id: ID) -> Result<SupportInboxWithSecret> {
        let inbox = inboxes::rotate_secret(&ctx.service()?, parse_id(&inbox_id)?).await?;
        Ok(SupportInboxWithSecret {
            webhook_secret: inbox.webhook_secret.clone(),
            inbox: SupportInbox(inbox),
        })
    }

    /// Makes a user an agent of the inbox (admins).
    async fn add_inbox_member(&self, ctx: &Context<'_>, inbox_id: ID, user_id: ID) -> Result<SupportInbox> {
        let inbox = inboxes::add_member(&ctx.service()?, parse_id(&inbox_id)?, parse_id(&user_id)?).await?;
        Ok(SupportInbox(inbox))
    }

    /// Pauses an agent (`active: false`: they read and reply, but get no new conversations;
    /// those assigned stay theirs) or resumes one, who may then take waiting conversations.
    /// Admins, and agents for themselves.
    async fn set_inbox_member_active(
        &self,
        ctx: &Context<'_>,
        inbox_id: ID,
        user_id: ID,
        active: bool,
    ) -> Result<SupportInbox> {
        let (inbox_id, user_id) = (parse_id(&inbox_id)?, parse_id(&user_id)?);
        let inbox = inboxes::set_member_active(&ctx.service()?, inbox_id, user_id, active).await?;
        Ok(SupportInbox(inbox))
    }

    /// Removes an agent (admins); their open conversations go back to the queue.
    async fn remove_inbox_member(
        &self,
        ctx: &Context<'_>,
        inbox_id: ID,
        user_id: ID,
    ) -> Result<SupportInbox> {
        let inbox =
            inboxes::remove_member(&ctx.service()?, parse_id(&inbox_id)?, parse_id(&user_id)?).await?;
        Ok(SupportInbox(inbox))
    }

    /// Stores a customer message as the inbound webhook does (integration tokens, and org
    /// admins). The same `externalId` again returns the stored message and changes nothing.
    async fn ingest_inbound_message(
        &self,
        ctx: &Context<'_>,
        inbox_id: ID,
        input: InboundMessageInput,
    ) -> Result<Message> {
        let (app, caller) = (ctx.state()?, ctx.integration()?);
        if !(caller.role == entity::enums::UserRole::Integration || caller.is_admin()) {
            return Err(
                ApiError::forbidden("only integration tokens and admins ingest inbound messages").into()
            );
        }
        let raw = RawInbound {
            external_id: Some(input.external_id),
            source: Some(input.source.name().to_owned()),
            contact: Some(RawContact {
                external_ref: input.contact.external_ref,
                phone: input.contact.phone,
                email: input.contact.email,
                name: input.contact.name,
            }),
            body: Some(input.body),
            attachments: input
                .attachments
                .into_iter()
                .map(|a| RawAttachment {
                    name: a.name,
                    url: a.url,
                    content_type: a.content_type,
                    size: a.size,
                })
                .collect(),
        };
        // The inbox first: an id of another organisation is NOT_FOUND whatever else is wrong.
        let inbox = ingest::inbox(app, parse_id(&inbox_id)?).await?;
        if inbox.org_id != caller.org_id {
            return Err(ApiError::not_found("inbox").into());
        }
        let inbound = Inbound::parse(raw, app.limits.max_message_chars, app.limits.max_attachments)?;
        Ok(Message::from(ingest::ingest_detached(app, &inbox, inbound).await?.message))
    }

    /// Gives a conversation to an agent of its inbox.
    async fn assign_conversation(&self, ctx: &Context<'_>, room_id: ID, user_id: ID) -> Result<Room> {
        let cx: Ctx<'_> = ctx.service()?;
        Ok(Room::from(conversations::assign_to(&cx, parse_id(&room_id)?, parse_id(&user_id)?).await?))
    }

    /// Takes a conversation from its agent, back to the queue.
    async fn unassign_conversation(&self, ctx: &Context<'_>, room_id: ID) -> Result<Room> {
        Ok(Room::from(conversations::unassign(&ctx.service()?, parse_id(&room_id)?).await?))
    }

    /// Opens, sets pending, snoozes (until `snoozedUntil`) or resolves a conversation.
    async fn set_conversation_status(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
        status: ConversationStatus,
        snoozed_until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Room> {
        let cx = ctx.service()?;
        Ok(Room::from(
            conversations::set_status(&cx, parse_id(&room_id)?, status.into(), snoozed_until).await?,
        ))
    }
}

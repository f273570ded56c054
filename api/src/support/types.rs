//! GraphQL types of support inboxes: inboxes and their agents, contacts, a room's
//! conversation side (status, assignee, the assignment decision), and the inputs.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::assign::Candidate;
use super::conversations;
use super::loaders::{ContactKey, DecisionKey, ReadableInboxKey};
use crate::graphql::context::ContextExt;
use crate::graphql::enums::{AssignmentStrategy, ConversationStatus};
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::loaders::UserKey;
use crate::graphql::pages::keyset_connection;
use crate::messages::types::AttachmentInput;
use crate::paging;
use crate::rooms::types::{Room, RoomConnection};
use crate::users::types::User;
use entity::enums::ConversationStatus as StoredStatus;
use entity::{assignment_decisions, contacts, rooms, support_inbox_members, support_inboxes};

/// Where customer messages of one channel (an SMS number, a support address, an app) arrive.
pub struct SupportInbox(pub support_inboxes::Model);

#[Object]
impl SupportInbox {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn assignment(&self) -> AssignmentStrategy {
        self.0.assignment.into()
    }
    /// Open conversations one agent takes at most; null: no limit.
    async fn agent_capacity(&self) -> Option<i32> {
        self.0.agent_capacity
    }
    /// Where agents' replies to sms and email conversations are posted. Org admins only
    /// (null for agents): a gateway's URL may carry its token.
    async fn outbound_webhook_url(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        let admin = ctx.viewer()?.is_admin();
        Ok(self.0.outbound_webhook_url.as_deref().filter(|_| admin))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The inbox's agents, in the order round robin takes them.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<InboxMember>> {
        let rows = super::inboxes::members_of(&ctx.service()?, self.0.id).await?;
        Ok(rows.into_iter().map(InboxMember).collect())
    }
    /// The inbox's conversations, most recent activity first, a page at a time.
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConversationFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<RoomConnection> {
        let filter = filter.unwrap_or_default();
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        let filter = conversations::InboxFilter {
            status: filter.status.map(StoredStatus::from),
            assignee_id: filter.assignee_id.as_ref().map(parse_id).transpose()?,
            unassigned: filter.unassigned == Some(true),
        };
        let (rows, more) = conversations::in_inbox(&ctx.state()?.store, self.0.id, filter, page).await?;
        let items = rows.into_iter().map(|(key, row)| (key, Room::from(row))).collect();
        Ok(keyset_connection(&page, items, more))
    }
}

/// A new inbox, or one whose secret was rotated: the secret is shown only here.
#[derive(SimpleObject)]
pub struct SupportInboxWithSecret {
    pub inbox: SupportInbox,
    /// Signs inbound webhooks: `X-Parley-Signature: sha256=` + hex HMAC-SHA256 of
    /// `"<X-Parley-Timestamp>.<raw body>"`.
    pub webhook_secret: String,
}

pub struct InboxMember(pub support_inbox_members::Model);

#[Object]
impl InboxMember {
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(ctx.loaders()?.load_one(UserKey(self.0.user_id)).await?.map(User))
    }
    /// Paused agents read and reply but get no new conversations.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// Their assigned conversations that are not resolved.
    async fn open_assigned(&self) -> i32 {
        self.0.open_assigned
    }
}

/// A customer who writes to an inbox. Contacts never sign in.
pub struct Contact(pub contacts::Model);

#[Object]
impl Contact {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }
    /// E.164.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn external_ref(&self) -> Option<&str> {
        self.0.external_ref.as_deref()
    }
}

/// The support side of a room of kind SUPPORT.
pub struct Conversation(pub rooms::Model);

#[Object]
impl Conversation {
    /// Null unless the viewer is an agent of it or an org admin.
    async fn inbox(&self, ctx: &Context<'_>) -> Result<Option<SupportInbox>> {
        let Some(id) = self.0.inbox_id else { return Ok(None) };
        Ok(ctx.loaders()?.load_one(ReadableInboxKey(id)).await?.map(SupportInbox))
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        let Some(id) = self.0.contact_id else { return Ok(None) };
        Ok(ctx.loaders()?.load_one(ContactKey(id)).await?.map(Contact))
    }
    async fn status(&self) -> Option<ConversationStatus> {
        self.0.status.map(Into::into)
    }
    async fn assignee(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = self.0.assignee_id else { return Ok(None) };
        Ok(ctx.loaders()?.load_one(UserKey(id)).await?.map(User))
    }
    async fn snoozed_until(&self) -> Option<DateTime<Utc>> {
        self.0.snoozed_until
    }
    async fn first_response_at(&self) -> Option<DateTime<Utc>> {
        self.0.first_response_at
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    /// Why the conversation went to whom (the latest decision, automatic or by hand).
    async fn assignment_decision(&self, ctx: &Context<'_>) -> Result<Option<AssignmentDecision>> {
        Ok(ctx.loaders()?.load_one(DecisionKey(self.0.id)).await?.map(AssignmentDecision))
    }
}

pub struct AssignmentDecision(pub assignment_decisions::Model);

#[Object]
impl AssignmentDecision {
    /// `round_robin`, `least_busy`, or `manual` (an agent's hand).
    async fn strategy(&self) -> &str {
        &self.0.strategy
    }
    /// Every active agent as the decision saw them.
    async fn candidates(&self) -> Vec<AssignmentCandidate> {
        let candidates: Vec<Candidate> = serde_json::from_str(&self.0.candidates).unwrap_or_default();
        candidates.into_iter().map(AssignmentCandidate).collect()
    }
    /// Null: nobody had room, and the conversation waits.
    async fn chosen(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = self.0.chosen_id else { return Ok(None) };
        Ok(ctx.loaders()?.load_one(UserKey(id)).await?.map(User))
    }
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    async fn decided_at(&self) -> DateTime<Utc> {
        self.0.decided_at
    }
}

pub struct AssignmentCandidate(Candidate);

#[Object]
impl AssignmentCandidate {
    async fn agent(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(ctx.loaders()?.load_one(UserKey(self.0.agent)).await?.map(User))
    }
    /// Their open conversations then.
    async fn load(&self) -> i32 {
        self.0.load
    }
    async fn capacity(&self) -> Option<i32> {
        self.0.capacity
    }
    /// Connected on any instance then.
    async fn online(&self) -> bool {
        self.0.online
    }
}

#[derive(InputObject, Default)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub assignee_id: Option<ID>,
    /// Only conversations nobody has (the queue).
    pub unassigned: Option<bool>,
}

#[derive(InputObject)]
pub struct CreateSupportInboxInput {
    pub name: String,
    #[graphql(default_with = "AssignmentStrategy::RoundRobin")]
    pub assignment: AssignmentStrategy,
    pub agent_capacity: Option<i32>,
    pub outbound_webhook_url: Option<String>,
}

/// What is given changes; `agentCapacity: null` and `outboundWebhookUrl: ""` remove them.
#[derive(InputObject)]
pub struct UpdateSupportInboxInput {
    pub inbox_id: ID,
    pub name: Option<String>,
    pub assignment: Option<AssignmentStrategy>,
    pub agent_capacity: async_graphql::MaybeUndefined<i32>,
    pub outbound_webhook_url: Option<String>,
}

/// Where an inbound message came from.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum InboundSource {
    Sms,
    Email,
    Api,
}

impl InboundSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
            Self::Api => "api",
        }
    }
}

#[derive(InputObject)]
pub struct InboundContactInput {
    pub external_ref: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(InputObject)]
pub struct InboundMessageInput {
    /// The sender system's id of the message: the same id again changes nothing.
    pub external_id: String,
    pub source: InboundSource,
    pub contact: InboundContactInput,
    pub body: String,
    #[graphql(default)]
    pub attachments: Vec<AttachmentInput>,
}

/// How an inbox, or one agent, answered the conversations opened in a window.
pub struct ConversationMetrics(pub super::metrics::Figures);

#[Object]
impl ConversationMetrics {
    /// Conversations opened in the window.
    async fn opened(&self) -> i64 {
        self.0.opened
    }
    /// Of those, resolved now.
    async fn resolved(&self) -> i64 {
        self.0.resolved
    }
    /// Of those, the share with an agent reply (0 to 1; null when none were opened).
    async fn response_rate(&self) -> Option<f64> {
        (self.0.opened > 0).then(|| self.0.responded as f64 / self.0.opened as f64)
    }
    /// From opening to the first agent reply, in seconds.
    async fn first_response_seconds(&self) -> Durations {
        Durations {
            average: self.0.first_response_avg,
            median: self.0.first_response_median,
            p90: self.0.first_response_p90,
        }
    }
    /// From opening to resolving, in seconds (p90 is not computed).
    async fn resolution_seconds(&self) -> Durations {
        Durations { average: self.0.resolution_avg, median: self.0.resolution_median, p90: None }
    }
}

/// Seconds; null when nothing was measured. Percentiles are nearest-rank.
#[derive(SimpleObject)]
pub struct Durations {
    pub average: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

pub struct SupportMetrics(pub super::metrics::Metrics);

#[Object]
impl SupportMetrics {
    async fn inbox(&self) -> ConversationMetrics {
        ConversationMetrics(self.0.inbox.clone())
    }
    /// Per current assignee.
    async fn agents(&self) -> Vec<AgentMetrics> {
        self.0.agents.iter().cloned().map(AgentMetrics).collect()
    }
}

pub struct AgentMetrics(super::metrics::Figures);

#[Object]
impl AgentMetrics {
    async fn agent(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = self.0.agent else { return Ok(None) };
        Ok(ctx.loaders()?.load_one(UserKey(id)).await?.map(User))
    }
    async fn metrics(&self) -> ConversationMetrics {
        ConversationMetrics(self.0.clone())
    }
}

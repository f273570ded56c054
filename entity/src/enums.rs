//! Enumerations stored as short strings, so both backends read them the same way and a new
//! variant needs no database type migration.

use sea_orm::entity::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum UserRole {
    #[sea_orm(string_value = "owner")]
    Owner,
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "agent")]
    Agent,
    #[sea_orm(string_value = "member")]
    Member,
    /// A service token of a system that posts inbound support messages
    /// (`ingestInboundMessage`), and can do nothing else.
    #[sea_orm(string_value = "integration")]
    Integration,
}

impl UserRole {
    /// Org owners and admins moderate: they may delete any message and manage users.
    pub fn is_admin(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

/// A presence status set by hand (`setPresence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum PresenceStatus {
    #[sea_orm(string_value = "online")]
    Online,
    #[sea_orm(string_value = "away")]
    Away,
    #[sea_orm(string_value = "dnd")]
    Dnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum UserKind {
    #[sea_orm(string_value = "human")]
    Human,
    #[sea_orm(string_value = "bot")]
    Bot,
    #[sea_orm(string_value = "system")]
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum RoomKind {
    #[sea_orm(string_value = "direct")]
    Direct,
    #[sea_orm(string_value = "channel")]
    Channel,
    #[sea_orm(string_value = "support")]
    Support,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Visibility {
    #[sea_orm(string_value = "public")]
    Public,
    #[sea_orm(string_value = "private")]
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum MemberRole {
    #[sea_orm(string_value = "owner")]
    Owner,
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "member")]
    Member,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum SenderRole {
    #[sea_orm(string_value = "user")]
    User,
    #[sea_orm(string_value = "assistant")]
    Assistant,
    #[sea_orm(string_value = "system")]
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum MessageSource {
    #[sea_orm(string_value = "chat")]
    Chat,
    #[sea_orm(string_value = "sms")]
    Sms,
    #[sea_orm(string_value = "email")]
    Email,
    #[sea_orm(string_value = "api")]
    Api,
}

/// Where a reminder stands: waiting, fired and not yet dealt with, completed, or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum ReminderStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "fired")]
    Fired,
    #[sea_orm(string_value = "done")]
    Done,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// The body an outgoing webhook posts: Parley's signed JSON, or Slack's `{"text": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum WebhookFormat {
    #[sea_orm(string_value = "json")]
    Json,
    #[sea_orm(string_value = "slack")]
    Slack,
}

/// Where a notification in the outbox stands. `delivering` rows are leased to one worker until
/// `next_attempt_at`; a worker that died leaves them to be claimed again after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum DeliveryStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "delivering")]
    Delivering,
    #[sea_orm(string_value = "delivered")]
    Delivered,
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Not sent, and never will be: the reason it was no longer wanted (read meanwhile, the
    /// recipient came online, muted, turned off) is its `last_error`.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// Where a support conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum ConversationStatus {
    #[sea_orm(string_value = "open")]
    Open,
    /// Waiting for the contact.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Set aside until `snoozed_until`, or until the contact writes.
    #[sea_orm(string_value = "snoozed")]
    Snoozed,
    #[sea_orm(string_value = "resolved")]
    Resolved,
}

/// How an inbox assigns new conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum AssignmentStrategy {
    /// Agents assign themselves or each other.
    #[sea_orm(string_value = "manual")]
    Manual,
    /// Active agents in turn, in a stable order.
    #[sea_orm(string_value = "round_robin")]
    RoundRobin,
    /// The active agent with the fewest open conversations (ties: round robin).
    #[sea_orm(string_value = "least_busy")]
    LeastBusy,
}

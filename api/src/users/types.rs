//! GraphQL types of users and the viewer.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, Result};

use super::service;
use crate::favorites::types::saved_message_page;
use crate::graphql::context::ContextExt;
use crate::graphql::enums::{UserKind, UserRole};
use crate::graphql::ids::to_id;
use crate::graphql::pages::{KeyCursor, keyset_connection};
use crate::later::types::{LaterConnection, later_page};
use crate::mentions::types::mention_page;
use crate::messages::types::MessageConnection;
use crate::notifications::outbox::Whose;
use crate::notifications::resolvers::deliveries_page;
use crate::notifications::settings as notification_settings;
use crate::notifications::types::{
    NotificationDeliveryConnection, NotificationDeliveryFilter, NotificationSettings,
};
use crate::paging;
use crate::presence::resolvers::{Presence, presence_of_user};
use crate::read_state::service as read_state;
use crate::reminders::types::{ReminderConnection, ReminderFilter, reminder_page};
use crate::rooms::listing_page::{RoomFilterInput, RoomOrder, room_page};
use crate::rooms::types::{Room, RoomConnection};
use entity::users;

pub struct User(pub users::Model);

#[Object]
impl User {
    pub async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn handle(&self) -> &str {
        &self.0.handle
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn role(&self) -> UserRole {
        self.0.role.into()
    }
    async fn kind(&self) -> UserKind {
        self.0.kind.into()
    }
    /// Online while they hold a connection, unless they set a status by hand.
    async fn presence(&self, ctx: &Context<'_>) -> Result<Presence> {
        presence_of_user(ctx, self.0.id).await
    }
    /// Set once the user was deactivated: their tokens are refused.
    async fn deactivated_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.deactivated_at
    }
}

pub type UserConnection = Connection<String, User>;

/// The authenticated user, with what only they can see.
pub struct Viewer(pub users::Model);

#[Object]
impl Viewer {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn handle(&self) -> &str {
        &self.0.handle
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn role(&self) -> UserRole {
        self.0.role.into()
    }
    /// Where notification emails go; seen by the viewer only.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// Support conversations assigned to the viewer that are not resolved, most recent
    /// activity first, a page at a time.
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    async fn assigned_conversations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<RoomConnection> {
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        let store = &ctx.state()?.store;
        let (rows, more) =
            crate::support::conversations::assigned_to(store, self.0.org_id, self.0.id, page).await?;
        let items = rows.into_iter().map(|(key, row)| (key, Room::from(row))).collect();
        Ok(keyset_connection(&page, items, more))
    }
    /// The viewer's own emails and pushes, newest first: sent, failed, or cancelled and why.
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
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        deliveries_page(ctx, Whose::Recipient(self.0.id), filter, page).await
    }
    /// How the viewer hears of direct messages and mentions while away.
    async fn notification_settings(&self, ctx: &Context<'_>) -> Result<NotificationSettings> {
        let choices = notification_settings::of(&ctx.state()?.store, self.0.id).await?;
        Ok(NotificationSettings { choices, user_id: self.0.id })
    }
    /// The viewer's rooms, most recent activity first (or favorites first).
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    // A GraphQL field's arguments: a filter, an order and the four Relay ones.
    #[allow(clippy::too_many_arguments)]
    async fn rooms(
        &self,
        ctx: &Context<'_>,
        filter: Option<RoomFilterInput>,
        #[graphql(default)] order_by: RoomOrder,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<RoomConnection> {
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        room_page(ctx, filter, order_by, page).await
    }
    /// Messages the viewer saved and may still read, newest saved first.
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    async fn favorite_messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<MessageConnection> {
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        saved_message_page(ctx, page).await
    }
    /// The viewer's reminders: pending and due ones by default, soonest first.
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    async fn reminders(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReminderFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<ReminderConnection> {
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        reminder_page(ctx, filter, page).await
    }
    /// What the viewer set aside: pending and due reminders by due time, then saved messages,
    /// newest saved first.
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    async fn later(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<LaterConnection> {
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        later_page(ctx, page).await
    }
    /// Messages that mention you (`@handle`, `@channel`, `@here`) in rooms you may read,
    /// newest first.
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    async fn mentions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<MessageConnection> {
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        mention_page(ctx, page).await
    }
    /// Whether others see how far you have read (`updateProfile`).
    async fn share_read_receipts(&self) -> bool {
        self.0.share_read_receipts
    }
    /// Unread messages across the viewer's rooms that are not archived.
    async fn unread_total(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(read_state::unread_total(&ctx.state()?.store, ctx.viewer()?).await?)
    }
}

#[derive(InputObject)]
pub struct CreateUserInput {
    /// 1–40 letters, digits, `-`, `_` or `.`, starting with a letter or digit; `channel`,
    /// `everyone` and `here` are reserved for mentions of a room's members.
    pub handle: String,
    /// 1–80 characters on one line, not only spaces or invisible ones.
    pub display_name: Option<String>,
    /// Where notification emails go; only the user sees it (`viewer.email`).
    pub email: Option<String>,
    #[graphql(default_with = "UserRole::Member")]
    pub role: UserRole,
    #[graphql(default_with = "UserKind::Human")]
    pub kind: UserKind,
}

#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// 1–80 characters on one line, not only spaces or invisible ones.
    pub display_name: Option<String>,
    /// False: others see nothing of how far you have read (`Room.readReceipts`,
    /// `RoomMember.lastReadSeq`, `Message.readBy`, `readReceipt`).
    pub share_read_receipts: Option<bool>,
    /// Where notification emails go; `""` removes it.
    pub email: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateUserInput {
    pub user_id: ID,
    /// 1–80 characters on one line, not only spaces or invisible ones.
    pub display_name: Option<String>,
    /// Admins only; only owners grant or take the owner role.
    pub role: Option<UserRole>,
}

/// A user's place in the people list as a cursor: `@<handle>`.
impl KeyCursor for service::HandleKey {
    fn parse(cursor: &str) -> Option<Self> {
        cursor.strip_prefix('@').filter(|handle| !handle.is_empty()).map(|handle| Self(handle.to_owned()))
    }

    fn cursor(&self) -> String {
        format!("@{}", self.0)
    }
}

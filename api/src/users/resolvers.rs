//! Users: `viewer`, `users(search)`, and the admin `createUser`.

use async_graphql::{Context, ID, Object, Result};

use super::input::{DisplayName, EmailAddress, Handle};
use super::service::{self, NewUser, ProfileChanges, UserChanges};
use super::types::{CreateUserInput, UpdateProfileInput, UpdateUserInput, User, UserConnection, Viewer};
use crate::graphql::context::ContextExt;
use crate::graphql::ids::parse_id;
use crate::graphql::pages::keyset_connection;
use crate::paging;

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The authenticated user.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let viewer = ctx.viewer()?;
        Ok(Viewer(service::find(&ctx.state()?.store, viewer.org_id, viewer.id).await?))
    }

    /// People of the viewer's organisation, by handle or display name.
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<UserConnection> {
        let page = ctx.keyset(first, after.as_deref(), last, before.as_deref())?;
        let (users, more) =
            service::search(&ctx.state()?.store, ctx.viewer()?, search.as_deref(), page.clone()).await?;
        let items =
            users.into_iter().map(|user| (service::HandleKey(user.handle.clone()), User(user))).collect();
        Ok(keyset_connection(&page, items, more))
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Adds a user to the viewer's organisation (organisation admins only).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        let new = NewUser {
            handle: Handle::parse(&input.handle)?,
            display_name: input.display_name.as_deref().map(DisplayName::parse).transpose()?,
            email: input.email.as_deref().map(EmailAddress::parse).transpose()?,
            role: input.role.into(),
            kind: input.kind.into(),
        };
        Ok(User(service::create_by_admin(&ctx.state()?.store, ctx.viewer()?, new).await?))
    }

    /// Renames a user or changes their role (admins); anyone may rename themselves.
    async fn update_user(&self, ctx: &Context<'_>, input: UpdateUserInput) -> Result<User> {
        let changes = UserChanges {
            display_name: input.display_name.as_deref().map(DisplayName::parse).transpose()?,
            role: input.role.map(Into::into),
        };
        Ok(User(service::update(&ctx.service()?, parse_id(&input.user_id)?, changes).await?))
    }

    /// Changes the viewer's own display name or read receipt setting.
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<Viewer> {
        let changes = ProfileChanges {
            display_name: input.display_name.as_deref().map(DisplayName::parse).transpose()?,
            share_read_receipts: input.share_read_receipts,
            email: input.email.as_deref().map(EmailAddress::parse_or_empty).transpose()?,
        };
        Ok(Viewer(service::update_profile(&ctx.service()?, changes).await?))
    }

    /// Deactivates a user (admins): their tokens are refused on every instance at once.
    async fn deactivate_user(&self, ctx: &Context<'_>, user_id: ID) -> Result<User> {
        Ok(User(service::deactivate(&ctx.service()?, parse_id(&user_id)?).await?))
    }
}

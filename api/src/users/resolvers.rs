//! Users: `viewer`, `users(search)`, and the admin `createUser`.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, Result};

use super::service::{self, NewUser};
use super::types::{CreateUserInput, User, UserConnection, Viewer};
use crate::graphql::context::ContextExt;
use crate::graphql::pages::{offset_after, page_size};

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
    async fn users(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<UserConnection> {
        let (limit, offset) = (page_size(first)?, offset_after(after.as_deref())?);
        let (users, has_more) =
            service::search(&ctx.state()?.store, ctx.viewer()?, search.as_deref(), offset, limit).await?;
        let mut connection = Connection::new(offset > 0, has_more);
        for (i, user) in users.into_iter().enumerate() {
            connection.edges.push(Edge::new((offset + i as u64).to_string(), User(user)));
        }
        Ok(connection)
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Adds a user to the viewer's organisation (organisation admins only).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        let new = NewUser {
            handle: input.handle,
            display_name: input.display_name,
            role: input.role.into(),
            kind: input.kind.into(),
        };
        Ok(User(service::create_by_admin(&ctx.state()?.store, ctx.viewer()?, new).await?))
    }
}

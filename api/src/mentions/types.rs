//! `viewer.mentions`: the messages that mention the viewer, newest first, with message ids
//! as cursors (stable while new mentions arrive).

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Result};
use uuid::Uuid;

use super::service;
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::to_id;
use crate::messages::types::{Message, MessageConnection};

pub async fn mention_page(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<MessageConnection> {
    let limit = ctx.page_size(first)?;
    let after = match after.as_deref() {
        Some(cursor) => Some(Uuid::parse_str(cursor).map_err(|_| ApiError::bad_input("invalid cursor"))?),
        None => None,
    };
    let (messages, more) = service::list(&ctx.state()?.store, ctx.viewer()?, after, limit).await?;
    let mut connection = Connection::new(after.is_some(), more);
    for message in messages {
        connection.edges.push(Edge::new(to_id(message.id).to_string(), Message::from(message)));
    }
    Ok(connection)
}

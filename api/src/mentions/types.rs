//! `viewer.mentions`: the messages that mention the viewer, newest first, with message ids
//! as cursors (stable while new mentions arrive): `first`/`after` page towards older ones,
//! `last`/`before` towards newer ones (from the oldest, with no `before`).

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Result};
use uuid::Uuid;

use super::service;
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::to_id;
use crate::graphql::pages;
use crate::messages::types::{Message, MessageConnection};
use crate::paging::Window;

/// A page of `viewer.mentions` from the four Relay arguments.
pub async fn mention_page(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> Result<MessageConnection> {
    let backward = pages::backward(first, after.as_deref(), last, before.as_deref())?;
    let (size, cursor) = if backward { (last, before) } else { (first, after) };
    let window = Window { offset: 0, limit: ctx.page_size(size)?, from_end: backward };
    let cursor = match cursor.as_deref() {
        Some(cursor) => Some(Uuid::parse_str(cursor).map_err(|_| ApiError::bad_input("invalid cursor"))?),
        None => None,
    };
    let page = service::Page { cursor, window };
    let (messages, more) = service::list(&ctx.state()?.store, ctx.viewer()?, page).await?;
    // `more` lies beyond the page in the direction it was read; the cursor's side holds at
    // least the message it names.
    let (has_previous, has_next) = if backward { (more, cursor.is_some()) } else { (cursor.is_some(), more) };
    let mut connection = Connection::new(has_previous, has_next);
    for message in messages {
        connection.edges.push(Edge::new(to_id(message.id).to_string(), Message::from(message)));
    }
    Ok(connection)
}

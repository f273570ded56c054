//! `viewer.mentions`: the messages that mention the viewer, newest first, with message ids
//! as cursors (stable while new mentions arrive): `first`/`after` page towards older ones,
//! `last`/`before` towards newer ones (from the oldest, with no `before`).

use async_graphql::{Context, Result};
use uuid::Uuid;

use super::service;
use crate::graphql::context::ContextExt;
use crate::graphql::pages::keyset_connection;
use crate::messages::types::{Message, MessageConnection};
use crate::paging::Keyset;

/// A page of `viewer.mentions`.
pub async fn mention_page(ctx: &Context<'_>, page: Keyset<Uuid>) -> Result<MessageConnection> {
    let (messages, more) = service::list(&ctx.state()?.store, ctx.viewer()?, page).await?;
    let items = messages.into_iter().map(|message| (message.id, Message::from(message))).collect();
    Ok(keyset_connection(&page, items, more))
}

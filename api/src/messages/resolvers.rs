//! Message queries, mutations and the `messageAdded` / `messageUpdated` subscriptions.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::{Stream, StreamExt, TryFutureExt};

use super::input::{ClientId, MessageBody};
use super::send::{self, NewMessage};
use super::service::{self, Page};
use super::types::{EditMessageInput, Message, MessageConnection, SendMessageInput};
use super::{Attachment, changes, feed};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::ids::parse_id;
use crate::graphql::live::live;
use crate::graphql::pages::{self, seq_cursor};
use crate::paging;

#[derive(Default)]
pub struct MessageQuery;

#[Object]
impl MessageQuery {
    /// A room's messages in seq order. `first`/`after` pages forward, `last`/`before`
    /// backward, `aroundSeq` centres on a message; with none of them, the newest page.
    #[graphql(complexity = "paging::complexity(first.or(last), child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        around_seq: Option<i64>,
    ) -> Result<MessageConnection> {
        // With no paging argument, the newest page: backward from the end.
        let forward = !pages::backward(first, after.as_deref(), last, before.as_deref())?
            && (first.is_some() || after.is_some());
        let page = match around_seq {
            Some(seq) if seq < 0 => return Err(ApiError::bad_input("aroundSeq must be ≥ 0").into()),
            // A cursor would be ignored: say so rather than answer another page.
            Some(_) if after.is_some() || before.is_some() => {
                return Err(ApiError::bad_input("aroundSeq takes no after or before cursor").into());
            }
            Some(seq) => Page::Around { seq, limit: ctx.page_size(first.or(last))?.get() },
            None if forward => {
                let after = after.as_deref().map(seq_cursor).transpose()?.unwrap_or(0);
                Page::After { after, limit: ctx.page_size(first)?.get() }
            }
            None => {
                let before = before.as_deref().map(seq_cursor).transpose()?.unwrap_or(i64::MAX);
                Page::Before { before, limit: ctx.page_size(last)?.get() }
            }
        };
        let store = &ctx.state()?.store;
        let page = service::page(store, ctx.viewer()?, parse_id(&room_id)?, page).await?;
        let mut connection = Connection::new(page.has_older, page.has_newer);
        for message in page.messages {
            connection.edges.push(Edge::new(message.seq.to_string(), Message::from(message)));
        }
        Ok(connection)
    }
}

#[derive(Default)]
pub struct MessageMutation;

#[Object]
impl MessageMutation {
    /// Sends a message; with a `clientId`, retries are safe.
    async fn send_message(&self, ctx: &Context<'_>, input: SendMessageInput) -> Result<Message> {
        let cx = ctx.service()?;
        let max_chars = cx.app.limits.max_message_chars;
        let new = NewMessage {
            room_id: parse_id(&input.room_id)?,
            body: MessageBody::parse(&input.body, max_chars)?,
            client_id: input.client_id.map(ClientId::parse).transpose()?,
            reply_to_id: input.reply_to_id.as_ref().map(parse_id).transpose()?,
            attachments: input.attachments.into_iter().map(Attachment::from).collect(),
        };
        new.check_attachments(cx.app.limits.max_attachments)?;
        // After parsing and checking: bad input spends nothing of the sender's budget.
        cx.app.check_send_rate(cx.viewer).await?;
        Ok(Message::from(send::send_detached(&cx, new).await?))
    }

    /// Edits one's own message within the edit window; edits share the sender's rate limit.
    async fn edit_message(&self, ctx: &Context<'_>, input: EditMessageInput) -> Result<Message> {
        let cx = ctx.service()?;
        let body = MessageBody::parse(&input.body, cx.app.limits.max_message_chars)?;
        let message_id = parse_id(&input.message_id)?;
        // An edit reaches every subscriber as a message does, so it spends the same budget.
        // Deletions do not: there are at most as many as messages sent.
        cx.app.check_send_rate(cx.viewer).await?;
        Ok(Message::from(service::edit(&cx, message_id, body).await?))
    }

    /// Deletes a message (soft): its author, or an organisation admin.
    async fn delete_message(&self, ctx: &Context<'_>, message_id: ID) -> Result<Message> {
        Ok(Message::from(service::delete(&ctx.service()?, parse_id(&message_id)?).await?))
    }
}

#[derive(Default)]
pub struct MessageSubscription;

#[Subscription]
impl MessageSubscription {
    /// New messages in one room, or in all the viewer's rooms (including rooms joined later).
    /// With `after` (and `roomId`), first replays the messages with a greater seq, then goes
    /// on live, with no gap and no duplicate.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        room_id: Option<ID>,
        after: Option<i64>,
    ) -> Result<impl Stream<Item = Message>> {
        let room_id = room_id.as_ref().map(parse_id).transpose()?;
        let feed = feed::message_added(ctx.state()?.clone(), ctx.viewer()?.clone(), room_id, after);
        live(ctx, feed.map_ok(|messages| messages.map(|live| Message::shared(live, "added")))).await
    }

    /// Edits and deletions in one room, or in all the viewer's rooms.
    async fn message_updated(
        &self,
        ctx: &Context<'_>,
        room_id: Option<ID>,
    ) -> Result<impl Stream<Item = Message>> {
        let room_id = room_id.as_ref().map(parse_id).transpose()?;
        let feed = changes::message_updated(ctx.state()?.clone(), ctx.viewer()?.clone(), room_id);
        live(ctx, feed.map_ok(|messages| messages.map(|message| Message::shared(message.into(), "updated"))))
            .await
    }
}

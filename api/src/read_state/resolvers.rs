//! Read-state queries, mutations and the `unreadCountChanged` subscription.

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::{Stream, StreamExt, TryFutureExt};

use super::types::{ReadReceipt, ReadState, UnreadCount, UnreadCountChange};
use super::{feed, receipts, service};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::graphql::flat::FlatList;
use crate::graphql::ids::{parse_id, parse_ids, to_id};
use crate::graphql::live::live;

/// Most rooms one `unreadCounts` call may ask about.
const MAX_ROOMS_PER_CALL: usize = 1000;

#[derive(Default)]
pub struct ReadStateQuery;

#[Object]
impl ReadStateQuery {
    /// Unread counts of these rooms, one query whatever their number. Only rooms with unread
    /// messages are listed: a missing room means zero.
    async fn unread_counts(&self, ctx: &Context<'_>, room_ids: Vec<ID>) -> Result<FlatList<UnreadCount>> {
        if room_ids.len() > MAX_ROOMS_PER_CALL {
            return Err(ApiError::bad_input("at most 1000 rooms per call").into());
        }
        let room_ids = parse_ids(&room_ids)?;
        let counts = service::unread_counts(&ctx.state()?.store, ctx.viewer()?, &room_ids).await?;
        Ok(FlatList(
            counts
                .into_iter()
                .map(|c| UnreadCount { room_id: to_id(c.room_id), unread_count: c.unread_count, seq: c.seq })
                .collect(),
        ))
    }
}

#[derive(Default)]
pub struct ReadStateMutation;

#[Object]
impl ReadStateMutation {
    /// Marks the room read up to `seq` (default: its newest message). Never moves backwards.
    async fn mark_room_read(&self, ctx: &Context<'_>, room_id: ID, seq: Option<i64>) -> Result<ReadState> {
        let position = service::mark_read(&ctx.service()?, parse_id(&room_id)?, seq).await?;
        Ok(read_state(position))
    }

    /// Marks message `seq` and everything after it unread.
    async fn mark_unread(&self, ctx: &Context<'_>, room_id: ID, seq: i64) -> Result<ReadState> {
        let position = service::mark_unread(&ctx.service()?, parse_id(&room_id)?, seq).await?;
        Ok(read_state(position))
    }
}

fn read_state(position: service::ReadPosition) -> ReadState {
    ReadState {
        room_id: to_id(position.room_id),
        last_read_seq: position.last_read_seq,
        unread_count: position.unread(),
    }
}

#[derive(Default)]
pub struct ReadStateSubscription;

#[Subscription]
impl ReadStateSubscription {
    /// Every change of the viewer's unread counts: new messages from others, reads on any
    /// device, deletions, joins and leaves.
    async fn unread_count_changed(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = UnreadCountChange>> {
        let changes = feed::unread_changes(ctx.state()?.clone(), ctx.viewer()?.clone());
        live(ctx, changes.map_ok(|changes| changes.map(UnreadCountChange::shared))).await
    }

    /// Other members' read receipts in a room as their watermarks move (members who share
    /// them; a sender's own message moves theirs without a receipt).
    async fn read_receipt(&self, ctx: &Context<'_>, room_id: ID) -> Result<impl Stream<Item = ReadReceipt>> {
        let (state, viewer) = (ctx.state()?.clone(), ctx.viewer()?.clone());
        let changes = receipts::receipt_changes(state, viewer, parse_id(&room_id)?);
        live(ctx, changes.map_ok(|changes| changes.map(ReadReceipt))).await
    }
}

//! Room queries, mutations and the `roomUpdated` subscription.

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::Stream;

use super::context::{self, ContextRef};
use super::listing_page::{RoomFilterInput, RoomOrder, room_page};
use super::name::ChannelName;
use super::types::{
    CreateChannelInput, OpenContextRoomInput, Room, RoomConnection, RoomUpdate, UpdateRoomInput,
};
use super::{access, feed, membership, mute, service};
use crate::error::{ApiError, ApiResult};
use crate::graphql::context::ContextExt;
use crate::graphql::ids::{parse_id, parse_ids};
use crate::graphql::live::live;
use crate::paging;
use chrono::{DateTime, Utc};

/// Most users one call adds to a room: a larger list is a script's work, to be split (one
/// insert holds every row of the call).
const MAX_MEMBERS_PER_CALL: usize = 1000;

fn member_ids(ids: &[ID]) -> ApiResult<Vec<uuid::Uuid>> {
    if ids.len() > MAX_MEMBERS_PER_CALL {
        return Err(ApiError::bad_input(format!("at most {MAX_MEMBERS_PER_CALL} users per call")));
    }
    parse_ids(ids)
}

#[derive(Default)]
pub struct RoomQuery;

#[Object]
impl RoomQuery {
    /// A room the viewer may read, by `id` or by the outside record it belongs to
    /// (`contextRef`): exactly one of the two.
    async fn room(&self, ctx: &Context<'_>, id: Option<ID>, context_ref: Option<String>) -> Result<Room> {
        let (store, viewer) = (&ctx.state()?.store, ctx.viewer()?);
        let room = match (id, context_ref) {
            (Some(id), None) => access::readable(store, viewer, parse_id(&id)?).await?.room,
            (None, Some(reference)) => context::find(store, viewer, &ContextRef::parse(&reference)?)
                .await?
                .ok_or_else(|| ApiError::not_found("room"))?,
            _ => return Err(ApiError::bad_input("give either id or contextRef").into()),
        };
        Ok(Room::from(room))
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
}

#[derive(Default)]
pub struct RoomMutation;

#[Object]
impl RoomMutation {
    async fn create_channel(&self, ctx: &Context<'_>, input: CreateChannelInput) -> Result<Room> {
        let new = service::NewChannel {
            name: ChannelName::parse(&input.name)?,
            topic: input.topic,
            visibility: input.visibility.into(),
            member_ids: member_ids(&input.member_ids)?,
        };
        Ok(Room::from(service::create_channel(&ctx.service()?, new).await?))
    }

    async fn update_room(&self, ctx: &Context<'_>, input: UpdateRoomInput) -> Result<Room> {
        let name = input.name.as_deref().map(ChannelName::parse).transpose()?;
        let changes = service::RoomChanges { name, topic: input.topic };
        Ok(Room::from(service::update_room(&ctx.service()?, parse_id(&input.room_id)?, changes).await?))
    }

    /// Archives a channel: read-only from then on. Direct rooms cannot be archived (a direct
    /// room of two is archived when the other member's account is deactivated), and a
    /// support conversation is resolved instead (`setConversationStatus`).
    async fn archive_room(&self, ctx: &Context<'_>, room_id: ID) -> Result<Room> {
        Ok(Room::from(service::archive_room(&ctx.service()?, parse_id(&room_id)?).await?))
    }

    /// Joins a public channel.
    async fn join_room(&self, ctx: &Context<'_>, room_id: ID) -> Result<Room> {
        Ok(Room::from(membership::join(&ctx.service()?, parse_id(&room_id)?).await?))
    }

    /// Leaves a channel; direct rooms cannot be left, and an inbox's agents leave its
    /// conversations by leaving the inbox (an admin who joined one by replying may leave it).
    async fn leave_room(&self, ctx: &Context<'_>, room_id: ID) -> Result<bool> {
        membership::leave(&ctx.service()?, parse_id(&room_id)?).await?;
        Ok(true)
    }

    async fn add_members(&self, ctx: &Context<'_>, room_id: ID, user_ids: Vec<ID>) -> Result<Room> {
        let (room_id, user_ids) = (parse_id(&room_id)?, member_ids(&user_ids)?);
        Ok(Room::from(membership::add_members(&ctx.service()?, room_id, user_ids).await?))
    }

    async fn remove_member(&self, ctx: &Context<'_>, room_id: ID, user_id: ID) -> Result<Room> {
        let (room_id, user_id) = (parse_id(&room_id)?, parse_id(&user_id)?);
        Ok(Room::from(membership::remove_member(&ctx.service()?, room_id, user_id).await?))
    }

    /// The organisation's room for an outside record, created (private, with the viewer and
    /// `userIds`) on first use. Idempotent, also when requests race; NOT_FOUND to someone who
    /// is not a member of the existing room.
    async fn open_context_room(&self, ctx: &Context<'_>, input: OpenContextRoomInput) -> Result<Room> {
        let new = context::NewContextRoom {
            context_ref: ContextRef::parse(&input.context_ref)?,
            name: input.name.as_deref().map(ChannelName::parse).transpose()?,
            member_ids: member_ids(&input.user_ids)?,
        };
        Ok(Room::from(context::open(&ctx.service()?, new).await?))
    }

    /// Mutes a room the viewer is a member of until `until`, or (null) until unmuted: it
    /// still counts unread messages, but `unreadCountChanged` carries `notify: false`.
    async fn mute_room(&self, ctx: &Context<'_>, room_id: ID, until: Option<DateTime<Utc>>) -> Result<Room> {
        Ok(Room::from(mute::mute(&ctx.service()?, parse_id(&room_id)?, until).await?))
    }

    async fn unmute_room(&self, ctx: &Context<'_>, room_id: ID) -> Result<Room> {
        Ok(Room::from(mute::unmute(&ctx.service()?, parse_id(&room_id)?).await?))
    }

    /// Opens (or finds) the direct room of these users and the viewer: 2–9 people in all.
    async fn open_direct_room(&self, ctx: &Context<'_>, user_ids: Vec<ID>) -> Result<Room> {
        Ok(Room::from(service::open_direct_room(&ctx.service()?, parse_ids(&user_ids)?).await?))
    }
}

#[derive(Default)]
pub struct RoomSubscription;

#[Subscription]
impl RoomSubscription {
    /// Changes to the viewer's rooms: created, joined, left, renamed, archived, members
    /// changed, and access revoked.
    async fn room_updated(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = RoomUpdate>> {
        live(ctx, feed::room_updates(ctx.state()?.clone(), ctx.viewer()?.clone())).await
    }
}

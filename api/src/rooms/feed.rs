//! The `roomUpdated` feed: room events of every room the viewer is in, plus the viewer's own
//! membership changes.

use futures_util::stream::{self, BoxStream, StreamExt};

use super::types::{RoomUpdate, RoomUpdateReason};
use crate::auth::Viewer;
use crate::bus::{Event, Scope, Watched, Watcher};
use crate::error::ApiResult;
use crate::graphql::ids::to_id;
use crate::read_state::service as read_state;
use crate::state::AppState;

pub async fn room_updates(state: AppState, viewer: Viewer) -> ApiResult<BoxStream<'static, RoomUpdate>> {
    let rooms = read_state::positions(&state.store, viewer.id, None).await?;
    let watcher =
        Watcher::start(&state.bus, viewer.id, Scope::AllRooms, rooms.iter().map(|p| p.room_id).collect())
            .await;
    Ok(stream::unfold(watcher, |mut watcher| async move {
        loop {
            let update = match watcher.next().await? {
                Watched::Room(room_id, envelope) => match envelope.event {
                    Event::RoomChanged { change, .. } => {
                        RoomUpdate { room_id: to_id(room_id), reason: change.into() }
                    }
                    _ => continue,
                },
                Watched::User(envelope) => match envelope.event {
                    Event::MembershipChanged { room_id, change, .. } => {
                        RoomUpdate { room_id: to_id(room_id), reason: RoomUpdateReason::from(change) }
                    }
                    _ => continue,
                },
                // Room changes are not replayed: clients refetch their room list on reconnect.
                Watched::Resync => continue,
            };
            return Some((update, watcher));
        }
    })
    .boxed())
}

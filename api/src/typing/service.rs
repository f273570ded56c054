//! `setTyping`: checks the viewer may write in the room, then publishes through the
//! instance's throttle and the cluster's gate.

use tokio::time::Instant;
use uuid::Uuid;

use super::cluster::{Gate, clear, gate};
use super::throttle::{Key, Offer};
use crate::bus::{Event, EventBus, Topic};
use crate::error::ApiResult;
use crate::rooms::access;
use crate::state::{AppState, Ctx};

pub async fn set_typing(cx: &Ctx<'_>, room_id: Uuid, typing: bool) -> ApiResult<bool> {
    // Only those who may post are typing; anyone else learns nothing (NOT_FOUND) or is told
    // to join first (FORBIDDEN), exactly as `sendMessage` answers: so an org admin types in
    // a support conversation before the reply that joins them.
    let access = access::readable(&cx.app.store, cx.viewer, room_id).await?;
    access.require_writable()?;
    if !access.joins_on_reply(cx.viewer) {
        access.require_member()?;
    }
    let key = (cx.viewer.id, room_id);
    match cx.app.typing.offer(key, typing, Instant::now()) {
        Offer::Publish => publish(cx.app, key, typing).await,
        Offer::Drop => {}
        Offer::Schedule(delay) => {
            let app = cx.app.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                publish_scheduled(&app, key).await;
            });
        }
    }
    Ok(typing)
}

async fn publish_scheduled(app: &AppState, key: Key) {
    if let Some(typing) = app.typing.take_scheduled(key, Instant::now()) {
        publish(app, key, typing).await;
    }
}

/// Publishes once the cluster's gate agrees. A change another instance's second still holds
/// waits for that second to end, then the latest state asked for anywhere is published (a
/// few tries at most: each moves to the next second).
async fn publish(app: &AppState, key: Key, typing: bool) {
    let link = app.bus.redis_link();
    let delay = match gate(link.as_ref(), key, Some(typing)).await {
        Gate::Publish(typing) => return announce(&app.bus, key, typing).await,
        Gate::Drop => return,
        Gate::Wait(delay) => delay,
    };
    let app = app.clone();
    tokio::spawn(async move {
        let mut delay = delay;
        for _ in 0..3 {
            tokio::time::sleep(delay).await;
            match gate(link.as_ref(), key, None).await {
                Gate::Publish(typing) => return announce(&app.bus, key, typing).await,
                Gate::Drop => return,
                Gate::Wait(next) => delay = next,
            }
        }
    });
}

/// The user sent a message in the room: their typing there is over, so a change this instance
/// scheduled before the send must not publish "typing" after it (the throttle's
/// `message_sent`). True if the cluster's gate may still hold their "typing": then
/// [`typing_ended`] must follow the announcement.
pub fn message_sent(app: &AppState, user_id: Uuid, room_id: Uuid) -> bool {
    app.typing.message_sent((user_id, room_id), Instant::now())
}

/// Clears the cluster's gate after a message of a user who typed here lately: it holds the
/// "typing" it published for up to a second, and would drop a "typing" right after the
/// send as a repeat, though the message ended it for every viewer. After the announcement,
/// so that the message's delivery waits for no Redis call (the mutation's answer does).
pub async fn typing_ended(app: &AppState, user_id: Uuid, room_id: Uuid) {
    clear(app.bus.redis_link().as_ref(), (user_id, room_id)).await;
}

async fn announce(bus: &EventBus, (user_id, room_id): Key, typing: bool) {
    metrics::counter!("parley_typing_published_total").increment(1);
    bus.publish(Topic::Signals(room_id), Event::Typing { room_id, user_id, typing }).await;
}

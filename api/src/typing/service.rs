//! `setTyping`: checks the viewer may write in the room, then publishes through the
//! instance's throttle.

use tokio::time::Instant;
use uuid::Uuid;

use super::throttle::Offer;
use crate::bus::{Event, EventBus, Topic};
use crate::error::ApiResult;
use crate::rooms::access;
use crate::state::{AppState, Ctx};

pub async fn set_typing(cx: &Ctx<'_>, room_id: Uuid, typing: bool) -> ApiResult<bool> {
    // Only those who may post are typing; anyone else learns nothing (NOT_FOUND) or is told
    // to join first (FORBIDDEN), exactly as `sendMessage` answers.
    access::writable(&cx.app.store, cx.viewer, room_id).await?;
    let key = (cx.viewer.id, room_id);
    match cx.app.typing.offer(key, typing, Instant::now()) {
        Offer::Publish => publish(&cx.app.bus, key, typing).await,
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

async fn publish_scheduled(app: &AppState, key: (Uuid, Uuid)) {
    if let Some(typing) = app.typing.take_scheduled(key, Instant::now()) {
        publish(&app.bus, key, typing).await;
    }
}

async fn publish(bus: &EventBus, (user_id, room_id): (Uuid, Uuid), typing: bool) {
    metrics::counter!("parley_typing_published_total").increment(1);
    bus.publish(Topic::Signals(room_id), Event::Typing { room_id, user_id, typing }).await;
}

//! One attempt of an outgoing webhook's delivery: whether its creator may still export what
//! it is about (an active admin, who still reads a private room or a conversation), the body rendered
//! from the rows as they are now, and the post. The worker claims the row and records the
//! outcome.

use sea_orm::EntityTrait;

use super::post::{Target, post};
use super::render;
use super::webhooks::WebhookEvent;
use super::worker::{Failure, Subjects};
use crate::error::ApiResult;
use crate::rooms::access;
use crate::state::AppState;
use entity::{contacts, notification_deliveries, outgoing_webhooks, room_members, rooms, support_inboxes};

pub(super) async fn attempt(
    state: &AppState,
    client: &reqwest::Client,
    subjects: &Subjects,
    delivery: &notification_deliveries::Model,
) -> Result<(), Failure> {
    let gone = |what: &str| Failure::Permanent(format!("the {what} no longer exists"));
    let retry = Failure::reading;
    let webhook = delivery.webhook_id.and_then(|id| subjects.webhooks.get(&id));
    let webhook = webhook.filter(|w| w.deleted_at.is_none()).ok_or_else(|| gone("webhook"))?;
    if delivery.event == WebhookEvent::ConversationAssigned.name() {
        return attempt_assigned(state, client, subjects, webhook, delivery).await;
    }
    let message =
        delivery.message_id.and_then(|id| subjects.messages.get(&id)).ok_or_else(|| gone("message"))?;
    let room = subjects.rooms.get(&message.room_id).ok_or_else(|| gone("room"))?;
    // A public channel, which the whole organisation reads, needs only that its creator is
    // still an active admin (as Slack disables a deactivated member's integrations).
    if access::is_public_channel(room) {
        if !creator_is_admin(state, webhook).await.map_err(retry)? {
            return Err(Failure::Permanent("the webhook's creator is no longer an active admin".into()));
        }
    } else if !creator_still_reads(state, webhook, room).await.map_err(retry)? {
        return Err(Failure::Permanent("the webhook's creator can no longer read the room".into()));
    }
    let author = match message.author_user_id {
        Some(id) => state.directory.user(&state.store, id).await.map_err(retry)?,
        None => None,
    };
    let (contact, inbox) = customer_of(state, room).await.map_err(retry)?;
    let customer = render::Customer { contact: contact.as_ref(), inbox: inbox.as_ref() };
    let event =
        render::MessageAdded { delivery_id: delivery.id, message, room, author: author.as_ref(), customer };
    let body = render::message_added(webhook.format, &event).to_string();
    post(state, client, Target { url: &webhook.url, secret: &webhook.secret }, delivery, body).await
}

/// A conversation's assignment, as it stands when the delivery is made. An org-wide webhook
/// is told of every conversation while its creator is an active admin; a webhook made for
/// one conversation, while its creator still reads it.
async fn attempt_assigned(
    state: &AppState,
    client: &reqwest::Client,
    subjects: &Subjects,
    webhook: &outgoing_webhooks::Model,
    delivery: &notification_deliveries::Model,
) -> Result<(), Failure> {
    let retry = Failure::reading;
    let room = delivery.room_id.and_then(|id| subjects.rooms.get(&id));
    let room = room.ok_or_else(|| Failure::Permanent("the conversation no longer exists".into()))?;
    let allowed = match webhook.room_id {
        Some(_) => creator_still_reads(state, webhook, room).await.map_err(retry)?,
        None => creator_is_admin(state, webhook).await.map_err(retry)?,
    };
    if !allowed {
        return Err(Failure::Permanent("the webhook's creator can no longer read the conversation".into()));
    }
    let assignee = match room.assignee_id {
        Some(id) => state.directory.user(&state.store, id).await.map_err(retry)?,
        None => None,
    };
    let (contact, inbox) = customer_of(state, room).await.map_err(retry)?;
    let event = render::ConversationAssigned {
        delivery_id: delivery.id,
        room,
        assignee: assignee.as_ref(),
        contact: contact.as_ref(),
        inbox: inbox.as_ref(),
    };
    let body = render::conversation_assigned(webhook.format, &event).to_string();
    post(state, client, Target { url: &webhook.url, secret: &webhook.secret }, delivery, body).await
}

/// A support conversation's contact as stored now and its inbox (neither, for other rooms).
async fn customer_of(
    state: &AppState,
    room: &rooms::Model,
) -> ApiResult<(Option<contacts::Model>, Option<support_inboxes::Model>)> {
    let contact = match room.contact_id {
        Some(id) => contacts::Entity::find_by_id(id).one(&state.store.db).await?,
        None => None,
    };
    // The directory's copy: invalidated on every instance when the inbox changes.
    let inbox = match room.inbox_id {
        Some(id) => state.directory.inbox(&state.store, id).await?,
        None => None,
    };
    Ok((contact, inbox))
}

async fn creator_is_admin(state: &AppState, webhook: &outgoing_webhooks::Model) -> ApiResult<bool> {
    let admin = state.directory.user(&state.store, webhook.created_by).await?;
    Ok(admin.is_some_and(|u| u.deactivated_at.is_none() && u.role.is_admin()))
}

/// A room-scoped webhook exports a room only while whoever made it is an active admin who
/// may still read it: by the rule its creation was checked with (`access::readable`), so a
/// support conversation, which every admin reads, needs no membership.
async fn creator_still_reads(
    state: &AppState,
    webhook: &outgoing_webhooks::Model,
    room: &rooms::Model,
) -> ApiResult<bool> {
    if webhook.room_id != Some(room.id) || !creator_is_admin(state, webhook).await? {
        return Ok(false);
    }
    if access::user_may_read(room, false, true) {
        return Ok(true);
    }
    let member = room_members::Entity::find_by_id((room.id, webhook.created_by)).one(&state.store.db).await?;
    Ok(access::user_may_read(room, member.is_some(), true))
}

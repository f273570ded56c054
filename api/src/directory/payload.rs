//! Users and rooms to and from their bus payloads. Enumerations travel as their stored
//! strings; a payload with a value this instance does not know converts to `None`, and the
//! reader falls back to the cache or the database.

use sea_orm::ActiveEnum;

use crate::bus::{ConversationPayload, RoomPayload, UserPayload};
use entity::enums::RoomKind;
use entity::{rooms, users};

impl From<&users::Model> for UserPayload {
    fn from(u: &users::Model) -> Self {
        Self {
            id: u.id,
            org_id: u.org_id,
            handle: u.handle.clone(),
            display_name: u.display_name.clone(),
            role: u.role.to_value(),
            kind: u.kind.to_value(),
        }
    }
}

/// The user as the payload carries them. What it does not carry (email, dates, settings such
/// as `share_read_receipts`) is left blank or default: code that decides on those reads the
/// database, never a model built here.
pub fn user_of(p: &UserPayload) -> Option<users::Model> {
    Some(users::Model {
        id: p.id,
        org_id: p.org_id,
        handle: p.handle.clone(),
        display_name: p.display_name.clone(),
        email: None,
        role: ActiveEnum::try_from_value(&p.role).ok()?,
        kind: ActiveEnum::try_from_value(&p.kind).ok()?,
        created_at: chrono::DateTime::UNIX_EPOCH,
        last_seen_at: None,
        deactivated_at: None,
        role_changed_at: None,
        share_read_receipts: true,
        presence_status: None,
    })
}

impl From<&rooms::Model> for RoomPayload {
    fn from(r: &rooms::Model) -> Self {
        Self {
            id: r.id,
            org_id: r.org_id,
            kind: r.kind.to_value(),
            name: r.name.clone(),
            topic: r.topic.clone(),
            visibility: r.visibility.to_value(),
            last_seq: r.last_seq,
            last_message_at: r.last_message_at,
            created_by: r.created_by,
            created_at: r.created_at,
            archived_at: r.archived_at,
            context_ref: r.context_ref.clone(),
            conversation: (r.kind == RoomKind::Support).then(|| {
                Box::new(ConversationPayload {
                    inbox_id: r.inbox_id,
                    contact_id: r.contact_id,
                    assignee_id: r.assignee_id,
                    status: r.status.map(|s| s.to_value()),
                    snoozed_until: r.snoozed_until,
                    first_response_at: r.first_response_at,
                    resolved_at: r.resolved_at,
                })
            }),
        }
    }
}

pub fn room_of(p: &RoomPayload) -> Option<rooms::Model> {
    let c = p.conversation.as_deref();
    let status = match c.and_then(|c| c.status.as_ref()) {
        Some(status) => Some(ActiveEnum::try_from_value(status).ok()?),
        None => None,
    };
    Some(rooms::Model {
        id: p.id,
        org_id: p.org_id,
        kind: ActiveEnum::try_from_value(&p.kind).ok()?,
        name: p.name.clone(),
        // Not carried: only uniqueness reads it, in the database.
        name_key: None,
        topic: p.topic.clone(),
        visibility: ActiveEnum::try_from_value(&p.visibility).ok()?,
        dm_key: None,
        context_ref: p.context_ref.clone(),
        last_seq: p.last_seq,
        last_message_at: p.last_message_at,
        created_by: p.created_by,
        created_at: p.created_at,
        archived_at: p.archived_at,
        deleted_at: None,
        inbox_id: c.and_then(|c| c.inbox_id),
        contact_id: c.and_then(|c| c.contact_id),
        assignee_id: c.and_then(|c| c.assignee_id),
        status,
        snoozed_until: c.and_then(|c| c.snoozed_until),
        first_response_at: c.and_then(|c| c.first_response_at),
        resolved_at: c.and_then(|c| c.resolved_at),
        // Not carried: only a `roomUpdated` reread reads it, from the database.
        changed_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::enums::{ConversationStatus, RoomKind, UserKind, UserRole, Visibility};
    use uuid::Uuid;

    #[test]
    fn a_user_survives_the_round_trip() {
        let user = users::Model {
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            handle: "dana".into(),
            display_name: "Dana".into(),
            email: None,
            role: UserRole::Agent,
            kind: UserKind::Bot,
            created_at: chrono::DateTime::UNIX_EPOCH,
            last_seen_at: None,
            deactivated_at: None,
            role_changed_at: None,
            share_read_receipts: true,
            presence_status: None,
        };
        assert_eq!(user_of(&UserPayload::from(&user)), Some(user));
    }

    #[test]
    fn an_unknown_enum_value_is_no_user() {
        let mut payload = UserPayload {
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            handle: "x".into(),
            display_name: "x".into(),
            role: "member".into(),
            kind: "human".into(),
        };
        assert!(user_of(&payload).is_some());
        payload.role = "emperor".into();
        assert!(user_of(&payload).is_none());
    }

    #[test]
    fn a_room_survives_the_round_trip() {
        let room = rooms::Model {
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            kind: RoomKind::Channel,
            name: Some("general".into()),
            topic: None,
            visibility: Visibility::Private,
            dm_key: None,
            context_ref: None,
            last_seq: 7,
            last_message_at: Some(chrono::Utc::now()),
            created_by: Uuid::now_v7(),
            created_at: chrono::Utc::now(),
            archived_at: None,
            deleted_at: None,
            inbox_id: None,
            contact_id: None,
            assignee_id: None,
            status: None,
            snoozed_until: None,
            first_response_at: None,
            resolved_at: None,
            name_key: None,
            changed_at: None,
        };
        assert_eq!(room_of(&RoomPayload::from(&room)), Some(room.clone()));
        let json = serde_json::to_string(&RoomPayload::from(&room)).unwrap_or_default();
        assert!(!json.contains("conversation") && !json.contains("context_ref"), "{json}");
    }

    /// A live frame's `room { contextRef conversation { … } }` is read from the payload.
    #[test]
    fn a_conversation_survives_the_round_trip_through_json() {
        let now = chrono::Utc::now();
        let room = rooms::Model {
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            kind: RoomKind::Support,
            name: None,
            topic: None,
            visibility: Visibility::Private,
            dm_key: None,
            context_ref: Some("order-7".into()),
            last_seq: 3,
            last_message_at: Some(now),
            created_by: Uuid::now_v7(),
            created_at: now,
            archived_at: None,
            deleted_at: None,
            inbox_id: Some(Uuid::now_v7()),
            contact_id: Some(Uuid::now_v7()),
            assignee_id: Some(Uuid::now_v7()),
            status: Some(ConversationStatus::Snoozed),
            snoozed_until: Some(now),
            first_response_at: Some(now),
            resolved_at: None,
            name_key: None,
            changed_at: None,
        };
        let json = serde_json::to_string(&RoomPayload::from(&room)).unwrap_or_default();
        let payload: RoomPayload = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(room_of(&payload), Some(room));
    }
}

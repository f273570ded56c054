//! Users and rooms to and from their bus payloads. Enumerations travel as their stored
//! strings; a payload with a value this instance does not know converts to `None`, and the
//! reader falls back to the cache or the database.

use sea_orm::ActiveEnum;

use crate::bus::{RoomPayload, UserPayload};
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
        }
    }
}

pub fn room_of(p: &RoomPayload) -> Option<rooms::Model> {
    Some(rooms::Model {
        id: p.id,
        org_id: p.org_id,
        kind: ActiveEnum::try_from_value(&p.kind).ok()?,
        name: p.name.clone(),
        topic: p.topic.clone(),
        visibility: ActiveEnum::try_from_value(&p.visibility).ok()?,
        dm_key: None,
        context_ref: None,
        last_seq: p.last_seq,
        last_message_at: p.last_message_at,
        created_by: p.created_by,
        created_at: p.created_at,
        archived_at: p.archived_at,
        deleted_at: None,
        inbox_id: None,
        contact_id: None,
        assignee_id: None,
        status: None,
        snoozed_until: None,
        first_response_at: None,
        resolved_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::enums::{RoomKind, UserKind, UserRole, Visibility};
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
        };
        assert_eq!(room_of(&RoomPayload::from(&room)), Some(room));
    }
}

//! Creating and changing rooms: channels, direct rooms, renaming, archiving (listing them is
//! `listing`), and making a deactivated user's direct rooms of two read-only.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult,
    QueryFilter, Set, Value,
};
use uuid::Uuid;

use super::access::{self, RoomAccess};
use super::membership;
use super::name::ChannelName;
use crate::auth::Viewer;
use crate::bus::{Event, MembershipChange, RoomChange, Topic};
use crate::db::{self, Store, columns};
use crate::error::{ApiError, ApiResult, ConflictOnUnique};
use crate::state::Ctx;
use crate::users::service as users;
use entity::enums::{MemberRole, RoomKind, Visibility};
use entity::rooms;

const MAX_TOPIC_CHARS: usize = 250;
const MAX_DIRECT_MEMBERS: usize = 9;
const NAME_TAKEN: &str = "a channel with this name already exists";

pub struct NewChannel {
    pub name: ChannelName,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub member_ids: Vec<Uuid>,
}

pub struct RoomChanges {
    pub name: Option<ChannelName>,
    pub topic: Option<String>,
}

fn topic_text(raw: Option<String>) -> ApiResult<Option<String>> {
    match raw.map(|t| t.trim().to_owned()) {
        Some(t) if t.chars().count() > MAX_TOPIC_CHARS => {
            Err(ApiError::bad_input("a topic has at most 250 characters"))
        }
        Some(t) if t.is_empty() => Ok(None),
        other => Ok(other),
    }
}

#[tracing::instrument(skip(cx, input), fields(viewer = %cx.viewer.id))]
pub async fn create_channel(cx: &Ctx<'_>, input: NewChannel) -> ApiResult<rooms::Model> {
    let viewer = cx.viewer;
    let name_key = Some(input.name.key());
    let name = Some(input.name.into_string());
    let topic = topic_text(input.topic)?;
    let member_ids = other_members(cx, input.member_ids).await?;

    let room = rooms::Model { name, name_key, topic, visibility: input.visibility, ..new_channel(viewer) };
    create_with_members(cx, room, member_ids)
        .await
        .map_err(|err| if err.is_unique_violation() { ApiError::conflict(NAME_TAKEN) } else { err })
}

/// The users to add beside the viewer: each once, all in the viewer's organisation.
pub(super) async fn other_members(cx: &Ctx<'_>, user_ids: Vec<Uuid>) -> ApiResult<Vec<Uuid>> {
    let mut member_ids: Vec<Uuid> = user_ids.into_iter().filter(|id| *id != cx.viewer.id).collect();
    member_ids.sort();
    member_ids.dedup();
    users::require_in_org(&cx.app.store, cx.viewer.org_id, &member_ids).await?;
    Ok(member_ids)
}

/// A channel created by the viewer now, with nothing set yet.
pub(super) fn new_channel(viewer: &Viewer) -> rooms::Model {
    new_room(viewer.org_id, RoomKind::Channel, viewer.id)
}

/// A private room of `kind` created by `created_by` now, with nothing else set yet: what
/// every kind of room starts from.
pub(crate) fn new_room(org_id: Uuid, kind: RoomKind, created_by: Uuid) -> rooms::Model {
    rooms::Model {
        id: Uuid::now_v7(),
        org_id,
        kind,
        name: None,
        name_key: None,
        topic: None,
        visibility: Visibility::Private,
        dm_key: None,
        context_ref: None,
        last_seq: 0,
        last_message_at: None,
        created_by,
        created_at: db::now(),
        archived_at: None,
        deleted_at: None,
        inbox_id: None,
        contact_id: None,
        assignee_id: None,
        status: None,
        snoozed_until: None,
        first_response_at: None,
        resolved_at: None,
        changed_at: None,
    }
}

/// Stores a new channel with the viewer as owner and `member_ids` (in the organisation, not
/// the viewer) as members, and tells each of them. A unique violation comes back as it is, for
/// the caller to name.
pub(super) async fn create_with_members(
    cx: &Ctx<'_>,
    room: rooms::Model,
    member_ids: Vec<Uuid>,
) -> ApiResult<rooms::Model> {
    let (store, bus, viewer) = (&cx.app.store, &cx.app.bus, cx.viewer);
    let tx = store.begin_write().await?;
    rooms::ActiveModel::from(room.clone()).insert(&tx.txn).await?;
    membership::insert(&tx.txn, room.id, viewer.id, MemberRole::Owner, 0).await?;
    for user_id in &member_ids {
        membership::insert(&tx.txn, room.id, *user_id, MemberRole::Member, 0).await?;
    }
    tx.commit().await?;

    for user_id in std::iter::once(viewer.id).chain(member_ids) {
        let event = Event::MembershipChanged { room_id: room.id, change: MembershipChange::Created, seq: 0 };
        bus.publish(Topic::User(user_id), event).await;
    }
    Ok(room)
}

#[tracing::instrument(skip(cx, changes), fields(viewer = %cx.viewer.id))]
pub async fn update_room(cx: &Ctx<'_>, room_id: Uuid, changes: RoomChanges) -> ApiResult<rooms::Model> {
    let (store, bus) = (&cx.app.store, &cx.app.bus);
    let access = manageable_channel(store, cx.viewer, room_id).await?;
    access.require_writable()?;
    // Named after its contact, whom another name would hide from the agents.
    if access.room.kind == RoomKind::Support && changes.name.is_some() {
        return Err(ApiError::bad_input("a support conversation is named after its contact"));
    }
    let renamed = changes.name.is_some();
    let mut room: rooms::ActiveModel = access.room.into();
    if let Some(name) = changes.name {
        room.name_key = Set(Some(name.key()));
        room.name = Set(Some(name.into_string()));
    }
    if changes.topic.is_some() {
        room.topic = Set(topic_text(changes.topic)?);
    }
    let tx = store.begin_write().await?;
    // Stamped once the write may go ahead (see `roomUpdated`'s reread, `feed.rs`).
    room.changed_at = Set(Some(db::now()));
    let updated = room.update(&tx.txn).await.conflict_on_unique(NAME_TAKEN)?;
    tx.commit().await?;
    cx.app.directory.room_changed(bus, room_id).await;
    let change = if renamed { RoomChange::Renamed } else { RoomChange::Updated };
    let event = Event::RoomChanged { room_id, change };
    bus.publish(Topic::Room(room_id), event).await;
    Ok(updated)
}

#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn archive_room(cx: &Ctx<'_>, room_id: Uuid) -> ApiResult<rooms::Model> {
    let store = &cx.app.store;
    let access = manageable_channel(store, cx.viewer, room_id).await?;
    // A contact's every later message lands in their one conversation of the inbox, which
    // archiving would leave read-only for the agents: a conversation is resolved instead.
    if access.room.kind == RoomKind::Support {
        return Err(ApiError::bad_input(
            "a support conversation is resolved (setConversationStatus), not archived",
        ));
    }
    if access.room.archived_at.is_some() {
        return Ok(access.room);
    }
    let tx = store.begin_write().await?;
    let updated = archive_in(&tx.txn, access.room).await?;
    tx.commit().await?;
    announce_archived(cx, room_id).await;
    Ok(updated)
}

/// Stamps `room` archived as of now, in the caller's transaction; [`announce_archived`]
/// follows its commit.
pub(crate) async fn archive_in(txn: &DatabaseTransaction, room: rooms::Model) -> ApiResult<rooms::Model> {
    let now = db::now();
    let mut archived: rooms::ActiveModel = room.into();
    archived.archived_at = Set(Some(now));
    archived.changed_at = Set(Some(now));
    Ok(archived.update(txn).await?)
}

/// Tells every instance that a room was archived: its cached row is dropped, and its
/// subscribers hear `ARCHIVED`.
pub(crate) async fn announce_archived(cx: &Ctx<'_>, room_id: Uuid) {
    cx.app.directory.room_changed(&cx.app.bus, room_id).await;
    cx.app
        .bus
        .publish(Topic::Room(room_id), Event::RoomChanged { room_id, change: RoomChange::Archived })
        .await;
}

/// Archives the direct rooms of two that `user_id` is in, once their account is deactivated:
/// the other member still reads the history, but no longer writes to someone who will never
/// read it (Mattermost makes such rooms read-only too). Direct rooms of three or more stay
/// live for the others.
pub async fn archive_direct_rooms_of(cx: &Ctx<'_>, user_id: Uuid) -> ApiResult<()> {
    let store = &cx.app.store;
    let sql = "UPDATE rooms SET archived_at = $2, changed_at = $2 \
         WHERE kind = 'direct' AND archived_at IS NULL AND deleted_at IS NULL \
           AND id IN (SELECT room_id FROM room_members WHERE user_id = $1) \
           AND (SELECT COUNT(*) FROM room_members m WHERE m.room_id = rooms.id) = 2 \
         RETURNING id";
    let tx = store.begin_write().await?;
    let rows = tx.txn.query_all_raw(store.stmt(sql, vec![user_id.into(), db::now().into()])).await?;
    // Read before the commit: a room archived must be announced, and a repeat would not
    // find it again.
    let archived = rows.iter().map(|row| row.try_get_by_index::<Uuid>(0)).collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    for room_id in archived {
        announce_archived(cx, room_id).await;
    }
    Ok(())
}

/// Those of `room_ids` whose own state changed after `since` (`rooms.changed_at`): a
/// `roomUpdated` feed's reread after a resync. The ids are rooms the feed follows.
pub async fn changed_since(
    store: &Store,
    room_ids: &[Uuid],
    since: DateTime<Utc>,
) -> ApiResult<Vec<rooms::Model>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    let (rooms_in, ids) = store.in_ids("id", room_ids, 2);
    let sql =
        format!("SELECT {} FROM rooms WHERE changed_at > $1 AND {rooms_in}", columns::<rooms::Entity>(None));
    let mut values: Vec<Value> = vec![since.into()];
    values.extend(ids);
    Ok(rooms::Model::find_by_statement(store.stmt(&sql, values)).all(&store.db).await?)
}

/// A channel the viewer may manage; direct rooms have nothing to manage.
async fn manageable_channel(store: &Store, viewer: &Viewer, room_id: Uuid) -> ApiResult<RoomAccess> {
    let access = access::readable(store, viewer, room_id).await?;
    if access.room.kind == RoomKind::Direct {
        return Err(ApiError::bad_input("direct rooms cannot be renamed or archived"));
    }
    if !access.can_manage(viewer) {
        return Err(ApiError::forbidden("only the room's owners and admins may change it"));
    }
    Ok(access)
}

/// Opens the direct room of a member set (the viewer is always in it); the same set always
/// yields the same room, also once one of them was deactivated.
#[tracing::instrument(skip(cx, user_ids), fields(viewer = %cx.viewer.id))]
pub async fn open_direct_room(cx: &Ctx<'_>, user_ids: Vec<Uuid>) -> ApiResult<rooms::Model> {
    let (store, bus, viewer) = (&cx.app.store, &cx.app.bus, cx.viewer);
    let mut members = user_ids;
    members.push(viewer.id);
    members.sort();
    members.dedup();
    if !(2..=MAX_DIRECT_MEMBERS).contains(&members.len()) {
        return Err(ApiError::bad_input("a direct room has 2 to 9 members, including you"));
    }
    // An existing room first: a deactivated member keeps the room (archived, read-only, its
    // history still the viewer's to reread); only a new one needs every member active. The
    // key holds the viewer's id, and rooms are looked for in their organisation only.
    let dm_key = members.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
    if let Some(room) = find_direct(store, viewer.org_id, &dm_key).await? {
        return Ok(room);
    }
    users::require_in_org(store, viewer.org_id, &members).await?;
    let room =
        rooms::Model { dm_key: Some(dm_key.clone()), ..new_room(viewer.org_id, RoomKind::Direct, viewer.id) };
    let tx = store.begin_write().await?;
    if let Err(err) = rooms::ActiveModel::from(room.clone()).insert(&tx.txn).await {
        drop(tx);
        let err = ApiError::from(err);
        // Someone opened the same room at the same moment: theirs is ours.
        if err.is_unique_violation() {
            return find_direct(store, viewer.org_id, &dm_key).await?.ok_or(err);
        }
        return Err(err);
    }
    for user_id in &members {
        membership::insert(&tx.txn, room.id, *user_id, MemberRole::Member, 0).await?;
    }
    tx.commit().await?;
    for user_id in members {
        let event = Event::MembershipChanged { room_id: room.id, change: MembershipChange::Created, seq: 0 };
        bus.publish(Topic::User(user_id), event).await;
    }
    Ok(room)
}

async fn find_direct(store: &Store, org_id: Uuid, dm_key: &str) -> ApiResult<Option<rooms::Model>> {
    Ok(rooms::Entity::find()
        .filter(rooms::Column::OrgId.eq(org_id))
        .filter(rooms::Column::DmKey.eq(dm_key))
        .one(&store.db)
        .await?)
}

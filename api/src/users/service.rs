//! Users and organisations in the database. Used by the GraphQL API, the CLI and the demo seed.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::db::{self, Store, contains_ci, search_text};
use crate::error::{ApiError, ApiResult, ConflictOnUnique};
use crate::paging::Keyset;
use crate::presence::service as presence;
use crate::rooms::membership;
use crate::rooms::service as rooms;
use crate::state::Ctx;
use crate::support::departures;
use sea_orm::Set;

use super::input::{DisplayName, EmailAddress, Handle};
use entity::enums::{UserKind, UserRole};
use entity::{organizations, users};

pub struct NewUser {
    pub handle: Handle,
    pub display_name: Option<DisplayName>,
    /// Where notification emails go.
    pub email: Option<EmailAddress>,
    pub role: UserRole,
    pub kind: UserKind,
}

/// What an admin (or, for the display name, the user themselves) may change.
#[derive(Default)]
pub struct UserChanges {
    pub display_name: Option<DisplayName>,
    pub role: Option<UserRole>,
}

/// What anyone may change about themselves.
pub struct ProfileChanges {
    pub display_name: Option<DisplayName>,
    pub share_read_receipts: Option<bool>,
    /// `Some(None)` removes the address.
    pub email: Option<Option<EmailAddress>>,
}

/// NOT_FOUND unless every id is an active user of the organisation.
pub async fn require_in_org(store: &Store, org_id: Uuid, ids: &[Uuid]) -> ApiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let found = users::Entity::find()
        .filter(users::Column::OrgId.eq(org_id))
        .filter(users::Column::Id.is_in(ids.iter().copied()))
        .filter(users::Column::DeactivatedAt.is_null())
        .count(&store.db)
        .await?;
    let mut unique = ids.to_vec();
    unique.sort();
    unique.dedup();
    if found as usize == unique.len() { Ok(()) } else { Err(ApiError::not_found("user")) }
}

pub async fn find(store: &Store, org_id: Uuid, id: Uuid) -> ApiResult<users::Model> {
    users::Entity::find_by_id(id)
        .filter(users::Column::OrgId.eq(org_id))
        .one(&store.db)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

/// An active user of the organisation: NOT_FOUND for a deactivated one too, as
/// [`require_in_org`] says of several.
pub async fn find_active(store: &Store, org_id: Uuid, id: Uuid) -> ApiResult<users::Model> {
    let user = find(store, org_id, id).await?;
    if user.deactivated_at.is_some() {
        return Err(ApiError::not_found("user"));
    }
    Ok(user)
}

/// A user's place in the people list: their handle, unique in an organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleKey(pub String);

/// Active users of the viewer's organisation matching `search` in handle or display name, by
/// handle: one page beyond a handle (users added or deactivated meanwhile move no page), and
/// whether more lie beyond it.
pub async fn search(
    store: &Store,
    viewer: &Viewer,
    search: Option<&str>,
    page: Keyset<HandleKey>,
) -> ApiResult<(Vec<users::Model>, bool)> {
    let mut query = users::Entity::find()
        .filter(users::Column::OrgId.eq(viewer.org_id))
        .filter(users::Column::DeactivatedAt.is_null());
    if let Some(search) = search_text(search, "search")? {
        query = query.filter(
            Condition::any()
                .add(contains_ci(store.backend(), users::Column::Handle, search))
                .add(contains_ci(store.backend(), users::Column::DisplayName, search)),
        );
    }
    let order = page.window.order(Order::Asc);
    if let Some(HandleKey(handle)) = page.cursor {
        query = query.filter(match order {
            Order::Desc => users::Column::Handle.lt(handle),
            _ => users::Column::Handle.gt(handle),
        });
    }
    let rows =
        query.order_by(users::Column::Handle, order).limit(page.window.fetch_limit()).all(&store.db).await?;
    Ok(page.window.split(rows))
}

/// Creates a user in the viewer's organisation; org owners and admins only.
pub async fn create_by_admin(store: &Store, viewer: &Viewer, new: NewUser) -> ApiResult<users::Model> {
    if !viewer.is_admin() {
        return Err(ApiError::forbidden("only organisation admins may create users"));
    }
    if new.role == UserRole::Owner && viewer.role != UserRole::Owner {
        return Err(ApiError::forbidden("only owners may create owners"));
    }
    create(store, viewer.org_id, new).await
}

pub async fn create(store: &Store, org_id: Uuid, new: NewUser) -> ApiResult<users::Model> {
    let handle = new.handle.as_str().to_owned();
    let model = users::Model {
        id: Uuid::now_v7(),
        org_id,
        display_name: new.display_name.map_or_else(|| handle.clone(), DisplayName::into_string),
        handle,
        email: new.email.map(EmailAddress::into_string),
        role: new.role,
        kind: new.kind,
        created_at: db::now(),
        last_seen_at: None,
        deactivated_at: None,
        role_changed_at: None,
        share_read_receipts: true,
        presence_status: None,
    };
    let tx = store.begin_write().await?;
    let user =
        users::ActiveModel::from(model).insert(&tx.txn).await.conflict_on_unique("this handle is taken")?;
    tx.commit().await?;
    Ok(user)
}

/// Renames a user or changes their role. Admins change anyone (only owners touch owners);
/// users may change their own display name. Every instance forgets its cached copy. A role
/// without admin rights takes them out of the support conversations they joined as an admin.
#[tracing::instrument(skip(cx, changes), fields(viewer = %cx.viewer.id))]
pub async fn update(cx: &Ctx<'_>, user_id: Uuid, changes: UserChanges) -> ApiResult<users::Model> {
    // After the lookup: another organisation's user is NOT_FOUND whatever the input.
    let user = find(&cx.app.store, cx.viewer.org_id, user_id).await?;
    if changes.display_name.is_none() && changes.role.is_none() {
        return Err(ApiError::bad_input("give displayName or role"));
    }
    let own_name_only = user.id == cx.viewer.id && changes.role.is_none();
    if !own_name_only {
        require_admin_over(cx.viewer, &user, changes.role)?;
    }
    let ends_ownership = user.role == UserRole::Owner && changes.role.is_some_and(|r| r != UserRole::Owner);
    let mut active: users::ActiveModel = user.into();
    if let Some(name) = changes.display_name {
        active.display_name = Set(name.into_string());
    }
    // Stamped even when the role given is the one read: another admin may have changed it
    // since, and a needless reread after an outage only rechecks a socket that stays.
    if let Some(role) = changes.role {
        active.role = Set(role);
        active.role_changed_at = Set(Some(db::now()));
    }
    let user = save(cx, active, ends_ownership.then_some(user_id)).await?;
    // On a repeat too, as for a deactivation: it finishes what a first call left halfway.
    if changes.role.is_some_and(|role| !role.is_admin()) {
        departures::release_demoted(cx, user.id).await?;
    }
    // An integration account answers no customer: its open conversations go back to the
    // queue, as a deactivated agent's do (`assign::decide` passes it over from now on).
    if changes.role == Some(UserRole::Integration) {
        departures::release_deactivated(cx, user.id).await?;
    }
    Ok(user)
}

/// The viewer's own profile. Every instance forgets its cached copy, so a read receipt
/// setting holds everywhere from the next read on.
#[tracing::instrument(skip(cx, changes), fields(viewer = %cx.viewer.id))]
pub async fn update_profile(cx: &Ctx<'_>, changes: ProfileChanges) -> ApiResult<users::Model> {
    if changes.display_name.is_none() && changes.share_read_receipts.is_none() && changes.email.is_none() {
        return Err(ApiError::bad_input("give displayName, shareReadReceipts or email"));
    }
    let user = find(&cx.app.store, cx.viewer.org_id, cx.viewer.id).await?;
    let mut active: users::ActiveModel = user.into();
    if let Some(name) = changes.display_name {
        active.display_name = Set(name.into_string());
    }
    if let Some(share) = changes.share_read_receipts {
        active.share_read_receipts = Set(share);
    }
    if let Some(email) = changes.email {
        active.email = Set(email.map(EmailAddress::into_string));
    }
    save(cx, active, None).await
}

/// Deactivates a user: their tokens are refused from now on, on every instance, the support
/// conversations assigned to them go back to their inboxes' queues, their direct rooms of
/// two become read-only, their private channels keep an active owner (or are archived when
/// no active member is left), and others see them offline (also when they had set a status
/// by hand).
#[tracing::instrument(skip(cx), fields(viewer = %cx.viewer.id))]
pub async fn deactivate(cx: &Ctx<'_>, user_id: Uuid) -> ApiResult<users::Model> {
    let user = find(&cx.app.store, cx.viewer.org_id, user_id).await?;
    if user.id == cx.viewer.id {
        return Err(ApiError::bad_input("you cannot deactivate yourself"));
    }
    require_admin_over(cx.viewer, &user, None)?;
    let user = if user.deactivated_at.is_some() {
        user
    } else {
        let owner = (user.role == UserRole::Owner).then_some(user.id);
        let mut active: users::ActiveModel = user.into();
        active.deactivated_at = Set(Some(Utc::now()));
        let user = save(cx, active, owner).await?;
        presence::announce_deactivated(cx.app, &user).await;
        user
    };
    // On a repeat too: it finishes what a first call that failed halfway did not.
    departures::release_deactivated(cx, user.id).await?;
    rooms::archive_direct_rooms_of(cx, user.id).await?;
    membership::hand_over_private_channels(cx, user.id).await?;
    Ok(user)
}

/// BAD_USER_INPUT unless the organisation has an active owner besides `owner`. Holds the
/// organisation's row until the caller's transaction ends (on PostgreSQL; SQLite has one
/// writer), so two owners demoting each other at once cannot both succeed.
async fn keep_another_owner(
    store: &Store,
    txn: &DatabaseTransaction,
    org_id: Uuid,
    owner: Uuid,
) -> ApiResult<()> {
    store.hold_row(txn, "organizations", org_id).await?;
    let others = users::Entity::find()
        .filter(users::Column::OrgId.eq(org_id))
        .filter(users::Column::Role.eq(UserRole::Owner))
        .filter(users::Column::DeactivatedAt.is_null())
        .filter(users::Column::Id.ne(owner))
        .count(txn)
        .await?;
    if others == 0 {
        return Err(ApiError::bad_input(
            "the organisation's last owner stays an owner: make someone else an owner first",
        ));
    }
    Ok(())
}

/// Admins manage users; only owners manage owners or make someone an owner.
fn require_admin_over(viewer: &Viewer, user: &users::Model, new_role: Option<UserRole>) -> ApiResult<()> {
    if !viewer.is_admin() {
        return Err(ApiError::forbidden("only organisation admins may manage users"));
    }
    let touches_owner = user.role == UserRole::Owner || new_role == Some(UserRole::Owner);
    if touches_owner && viewer.role != UserRole::Owner {
        return Err(ApiError::forbidden("only owners may manage owners"));
    }
    Ok(())
}

/// Writes a change to a user. `ending_ownership_of`: the owner the change demotes or
/// deactivates, refused when no other active owner would remain (nobody could manage owners
/// again).
async fn save(
    cx: &Ctx<'_>,
    change: users::ActiveModel,
    ending_ownership_of: Option<Uuid>,
) -> ApiResult<users::Model> {
    let tx = cx.app.store.begin_write().await?;
    if let Some(owner) = ending_ownership_of {
        keep_another_owner(&cx.app.store, &tx.txn, cx.viewer.org_id, owner).await?;
    }
    let user = change.update(&tx.txn).await?;
    tx.commit().await?;
    cx.app.directory.user_changed(&cx.app.bus, user.id).await;
    Ok(user)
}

pub async fn create_org(store: &Store, slug: &str, name: &str) -> ApiResult<organizations::Model> {
    let slug = slug.trim().to_lowercase();
    if slug.is_empty() || !slug.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::bad_input("a slug has letters, digits and '-'"));
    }
    let org =
        organizations::Model { id: Uuid::now_v7(), name: name.to_owned(), slug, created_at: Utc::now() };
    let tx = store.begin_write().await?;
    let org = organizations::ActiveModel::from(org)
        .insert(&tx.txn)
        .await
        .conflict_on_unique("this slug is taken")?;
    tx.commit().await?;
    Ok(org)
}

pub async fn find_org_by_slug(store: &Store, slug: &str) -> ApiResult<organizations::Model> {
    organizations::Entity::find()
        .filter(organizations::Column::Slug.eq(slug))
        .one(&store.db)
        .await?
        .ok_or_else(|| ApiError::not_found("organisation"))
}

pub async fn find_by_handle(store: &Store, org_id: Uuid, handle: &Handle) -> ApiResult<users::Model> {
    users::Entity::find()
        .filter(users::Column::OrgId.eq(org_id))
        .filter(users::Column::Handle.eq(handle.as_str()))
        .one(&store.db)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

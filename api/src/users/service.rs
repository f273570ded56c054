//! Users and organisations in the database. Used by the GraphQL API, the CLI and the demo seed.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::db::{Store, contains_ci};
use crate::error::{ApiError, ApiResult, ConflictOnUnique};
use entity::enums::{UserKind, UserRole};
use entity::{organizations, users};

const MAX_HANDLE_CHARS: usize = 40;

pub struct NewUser {
    pub handle: String,
    pub display_name: Option<String>,
    pub role: UserRole,
    pub kind: UserKind,
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

/// Active users of the viewer's organisation matching `search` in handle or display name.
pub async fn search(
    store: &Store,
    viewer: &Viewer,
    search: Option<&str>,
    offset: u64,
    limit: u64,
) -> ApiResult<(Vec<users::Model>, bool)> {
    let mut query = users::Entity::find()
        .filter(users::Column::OrgId.eq(viewer.org_id))
        .filter(users::Column::DeactivatedAt.is_null());
    if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
        query = query.filter(
            Condition::any()
                .add(contains_ci(users::Column::Handle, search))
                .add(contains_ci(users::Column::DisplayName, search)),
        );
    }
    let rows =
        query.order_by_asc(users::Column::Handle).offset(offset).limit(limit + 1).all(&store.db).await?;
    let has_more = rows.len() as u64 > limit;
    Ok((rows.into_iter().take(limit as usize).collect(), has_more))
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
    let handle = new.handle.trim().trim_start_matches('@').to_lowercase();
    let valid = !handle.is_empty()
        && handle.chars().count() <= MAX_HANDLE_CHARS
        && handle.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(ApiError::bad_input("a handle has 1–40 characters: letters, digits, '-', '_' or '.'"));
    }
    let display_name = new.display_name.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
    let model = users::Model {
        id: Uuid::now_v7(),
        org_id,
        display_name: display_name.unwrap_or_else(|| handle.clone()),
        handle,
        email: None,
        role: new.role,
        kind: new.kind,
        created_at: Utc::now(),
        last_seen_at: None,
        deactivated_at: None,
    };
    let tx = store.begin_write().await?;
    let user =
        users::ActiveModel::from(model).insert(&tx.txn).await.conflict_on_unique("this handle is taken")?;
    tx.commit().await?;
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

pub async fn find_by_handle(store: &Store, org_id: Uuid, handle: &str) -> ApiResult<users::Model> {
    users::Entity::find()
        .filter(users::Column::OrgId.eq(org_id))
        .filter(users::Column::Handle.eq(handle.trim_start_matches('@').to_lowercase()))
        .one(&store.db)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

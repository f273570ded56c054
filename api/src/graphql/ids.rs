//! GraphQL `ID`s are UUIDs; a malformed one is BAD_USER_INPUT.

use async_graphql::ID;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

pub fn parse_id(id: &ID) -> ApiResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| ApiError::bad_input(format!("`{}` is not a valid id", id.as_str())))
}

pub fn parse_ids(ids: &[ID]) -> ApiResult<Vec<Uuid>> {
    ids.iter().map(parse_id).collect()
}

pub fn to_id(id: Uuid) -> ID {
    ID(id.to_string())
}

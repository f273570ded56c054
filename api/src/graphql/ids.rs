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

/// The id's usual text (hyphenated, lower case), encoded without the formatting machinery:
/// long lists (`unreadCounts`) make one per item.
pub fn to_id(id: Uuid) -> ID {
    ID(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).to_owned())
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::{parse_id, to_id};

    #[test]
    fn an_id_is_the_uuid_as_text_and_parses_back() {
        let id = Uuid::now_v7();
        assert_eq!(to_id(id).as_str(), id.to_string());
        assert_eq!(parse_id(&to_id(id)).ok(), Some(id));
    }
}

//! Validated inputs of messages: parse, don't validate. A service takes these types, so an
//! unchecked string cannot reach it.

use crate::error::{ApiError, ApiResult};

/// A message body: trimmed, 1 to `max_chars` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(raw: &str, max_chars: usize) -> ApiResult<Self> {
        let body = raw.trim();
        match body.chars().count() {
            0 => Err(ApiError::bad_input("a message cannot be empty")),
            n if n > max_chars => {
                Err(ApiError::bad_input(format!("a message has at most {max_chars} characters")))
            }
            _ => Ok(Self(body.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A sender's idempotency key: 1–200 characters, kept as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    const MAX_CHARS: usize = 200;

    pub fn parse(raw: String) -> ApiResult<Self> {
        if raw.is_empty() || raw.chars().count() > Self::MAX_CHARS {
            return Err(ApiError::bad_input("a clientId has 1–200 characters"));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn a_body_is_trimmed() {
        assert_eq!(MessageBody::parse("  hi \n", 10).map(|b| b.into_string()).ok(), Some("hi".into()));
    }

    #[test]
    fn an_empty_or_blank_body_is_refused() {
        for raw in ["", "   ", "\n\t"] {
            assert_eq!(MessageBody::parse(raw, 10).err().map(|e| e.code()), Some(ErrorCode::BadUserInput));
        }
    }

    #[test]
    fn a_body_counts_characters_not_bytes() {
        assert!(MessageBody::parse("ééééé", 5).is_ok());
        assert!(MessageBody::parse("éééééé", 5).is_err());
    }

    #[test]
    fn a_client_id_has_1_to_200_characters() {
        assert!(ClientId::parse(String::new()).is_err());
        assert!(ClientId::parse("x".repeat(200)).is_ok());
        assert!(ClientId::parse("x".repeat(201)).is_err());
        assert_eq!(ClientId::parse(" a ".into()).map(|c| c.as_str().to_owned()).ok(), Some(" a ".into()));
    }
}

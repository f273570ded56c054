//! `ApiError`, the one error type of Parley, and its stable client-facing codes.
//!
//! `ApiError` is a `std::error::Error` (thiserror), so start-up and CLI code use `?` on it.
//! async-graphql's blanket `From<T: Display>` would then drop our `extensions.code` on a bare
//! `?` in a resolver; the workspace enables async-graphql's `custom-error-conversion`, which
//! removes that blanket impl, so our own `From<ApiError> for async_graphql::Error` is the only
//! conversion. Internal errors are logged there, with their cause, and masked for the client.

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// The codes a client can rely on, sent as `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    RateLimited,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::RateLimited => "RATE_LIMITED",
            Self::Internal => "INTERNAL",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client-facing error: the message is safe to show.
    #[error("{}: {message}", code.as_str())]
    Client { code: ErrorCode, message: String },
    /// Anything else: logged with its cause, shown to the client as "internal error".
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::client(ErrorCode::Unauthenticated, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::client(ErrorCode::Forbidden, message)
    }
    /// Not found, or not visible to the viewer: the two are indistinguishable on purpose.
    pub fn not_found(what: &str) -> Self {
        Self::client(ErrorCode::NotFound, format!("{what} not found"))
    }
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::client(ErrorCode::BadUserInput, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::client(ErrorCode::Conflict, message)
    }
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::client(ErrorCode::RateLimited, message)
    }
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    fn client(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Client { code, message: message.into() }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Client { code, .. } => *code,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The message a client may see.
    pub fn public_message(&self) -> &str {
        match self {
            Self::Client { message, .. } => message,
            Self::Internal(_) => "internal error",
        }
    }

    /// True when the database refused a row because a unique key already holds it.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Internal(err) => err
                .downcast_ref::<DbErr>()
                .is_some_and(|e| matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))),
            Self::Client { .. } => false,
        }
    }
}

/// NOT_FOUND becomes `None`; any other error stays an error (a database failure must not
/// read as "absent").
pub fn found<T>(result: ApiResult<T>) -> ApiResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.code() == ErrorCode::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Turns a unique-key violation into CONFLICT with a message for the client, at the call
/// site that knows which key it was.
pub trait ConflictOnUnique<T> {
    fn conflict_on_unique(self, message: &str) -> ApiResult<T>;
}

impl<T> ConflictOnUnique<T> for Result<T, DbErr> {
    fn conflict_on_unique(self, message: &str) -> ApiResult<T> {
        self.map_err(|err| {
            let err = ApiError::from(err);
            if err.is_unique_violation() { ApiError::conflict(message) } else { err }
        })
    }
}

/// What a client is told when its text holds U+0000, which PostgreSQL's `text` cannot store.
pub const NUL_REFUSED: &str = "text may not contain the NUL character (U+0000)";

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        // GraphQL requests are refused before this (`graphql::nul`); anything else that
        // carries a client's text to PostgreSQL is caught here, with nothing written.
        if database_error(&err).and_then(|db| db.code()).as_deref() == Some(CHARACTER_NOT_IN_REPERTOIRE) {
            return Self::bad_input(NUL_REFUSED);
        }
        Self::Internal(err.into())
    }
}

/// PostgreSQL's refusal of a character its encoding lacks: for Rust's UTF-8 strings, only NUL.
const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";

/// The database's own answer inside `err` (it carries a SQLSTATE): the connection worked and
/// the statement or its data was refused. `None` for a broken connection, a pool timeout …
pub fn database_error(err: &DbErr) -> Option<&(dyn sqlx::error::DatabaseError + 'static)> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => match &**e {
            sqlx::Error::Database(db) => Some(&**db),
            _ => None,
        },
        _ => None,
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        if let ApiError::Internal(cause) = &err {
            // The request span carries the request id, so this line can be matched to the
            // client's report.
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let code = err.code().as_str();
        async_graphql::Error::new(err.public_message()).extend_with(|_, ext| ext.set("code", code))
    }
}

/// Builds a client-facing GraphQL error from a code, for places with no `ApiError` at hand
/// (limits enforced by the transport).
pub fn graphql_error(code: ErrorCode, message: impl Into<String>) -> async_graphql::ServerError {
    let mut err = async_graphql::ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code.as_str());
    err.extensions = Some(ext);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_question_mark() -> async_graphql::Result<()> {
        Err(ApiError::not_found("room"))?;
        Ok(())
    }

    #[test]
    fn a_bare_question_mark_keeps_the_code() {
        let err = through_question_mark().err().map(|e| e.into_server_error(Default::default()));
        let code = err.and_then(|e| e.extensions).and_then(|ext| ext.get("code").cloned());
        assert_eq!(code, Some(async_graphql::Value::from("NOT_FOUND")));
    }

    #[test]
    fn internal_errors_are_masked_but_displayed_with_their_cause() {
        let err = ApiError::internal(anyhow::anyhow!("disk on fire"));
        assert_eq!(err.public_message(), "internal error");
        assert!(err.to_string().contains("disk on fire"));
        let std_error: &dyn std::error::Error = &err;
        assert!(std_error.to_string().starts_with("internal error"));
    }

    /// A database's refusal carrying `code`, as sqlx reports one.
    #[derive(Debug)]
    struct Refusal(&'static str);

    impl std::fmt::Display for Refusal {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "refused with {}", self.0)
        }
    }

    impl std::error::Error for Refusal {}

    impl sqlx::error::DatabaseError for Refusal {
        fn message(&self) -> &str {
            "refused"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn refused(code: &'static str) -> DbErr {
        DbErr::Exec(RuntimeErr::SqlxError(sqlx::Error::Database(Box::new(Refusal(code))).into()))
    }

    #[test]
    fn postgres_refusing_nul_is_bad_input_and_other_refusals_stay_internal() {
        let nul = ApiError::from(refused("22021"));
        assert_eq!((nul.code(), nul.public_message()), (ErrorCode::BadUserInput, NUL_REFUSED));
        assert_eq!(ApiError::from(refused("22P05")).code(), ErrorCode::Internal, "jsonb's NUL: not mapped");
        assert!(database_error(&refused("23505")).is_some(), "a refusal, whatever its code");
        let broken = DbErr::Conn(RuntimeErr::Internal("connection reset".into()));
        assert!(database_error(&broken).is_none());
        assert_eq!(ApiError::from(broken).code(), ErrorCode::Internal);
    }
}

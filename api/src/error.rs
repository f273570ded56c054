//! `ApiError`, the one error type of Parley, and its stable client-facing codes.
//!
//! `ApiError` deliberately does not implement `Display`: async-graphql has a blanket
//! `From<T: Display>` that would silently drop our `extensions.code`. Without `Display`, our
//! own `From<ApiError> for async_graphql::Error` applies, so a bare `?` in a resolver keeps the
//! code. Internal errors are logged here, with their cause, and masked for the client.

use std::fmt;

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, SqlErr};

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

pub enum ApiError {
    /// A client-facing error: the message is safe to show.
    Client { code: ErrorCode, message: String },
    /// Anything else: logged with its cause, shown to the client as "internal error".
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

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client { code, message } => write!(f, "{}: {message}", code.as_str()),
            Self::Internal(err) => write!(f, "INTERNAL: {err:#}"),
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        Self::Internal(err.into())
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

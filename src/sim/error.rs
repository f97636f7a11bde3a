//! The simulator's API errors: a status, Qumulo's `error_class` and a description, sent as
//! Qumulo's JSON error body.
//!
//! Statuses marked inferred in the reference are choices written down here, in one table
//! ([`ErrorClass::status`]), so a later correction happens in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The error classes the simulator sends, with Qumulo's own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A path component or id that does not exist.
    NoSuchEntry,
    /// Creating or renaming onto a name that is taken (without clobber).
    EntryExists,
    /// Mode bits or ownership forbid the operation.
    AccessDenied,
    /// Changing mode, times or owner of an object one does not own.
    NotOwner,
    /// Removing a directory that still has entries.
    DirectoryNotEmpty,
    /// A directory operation on something that is not a directory.
    NotADirectory,
    /// A data operation on something that is not a regular file.
    NotAFile,
    /// Empty, `.`, `..`, or a name with `/` or NUL.
    InvalidName,
    /// A name longer than 255 bytes.
    NameSize,
    /// The backing store is full.
    NoSpace,
    /// No bearer token, an unknown one, or an expired one.
    Unauthorized,
    /// Wrong user name or password on login.
    LoginFailed,
    /// An authenticated user without the privilege the endpoint needs.
    Forbidden,
    /// A body that is not the JSON the endpoint expects, or a bad query value.
    Decode,
    /// A well-formed request the simulator refuses (e.g. renaming a directory into itself).
    InvalidArgument,
    /// A route the API does not have.
    NotFound,
    /// A route that exists, with another method.
    MethodNotAllowed,
    /// A user, group or identity id that does not exist.
    NoSuchIdentity,
    /// An injected fault.
    ServiceUnavailable,
    /// An unexpected local I/O failure.
    Internal,
}

impl ErrorClass {
    /// Qumulo's `error_class` string.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoSuchEntry => "fs_no_such_entry_error",
            Self::EntryExists => "fs_entry_exists_error",
            Self::AccessDenied => "fs_access_denied_error",
            Self::NotOwner => "fs_access_perm_not_owner_error",
            Self::DirectoryNotEmpty => "fs_directory_not_empty_error",
            Self::NotADirectory => "fs_not_a_directory_error",
            Self::NotAFile => "fs_not_a_file_error",
            Self::InvalidName => "fs_invalid_name_error",
            Self::NameSize => "fs_name_size_error",
            Self::NoSpace => "fs_no_space_error",
            Self::Unauthorized => "http_unauthorized_error",
            Self::LoginFailed => "api_invalid_credentials_error",
            Self::Forbidden => "http_forbidden_error",
            Self::Decode => "decode_error",
            Self::InvalidArgument => "fs_invalid_argument_error",
            Self::NotFound => "http_not_found_error",
            Self::MethodNotAllowed => "http_method_not_allowed_error",
            Self::NoSuchIdentity => "identity_not_found_error",
            Self::ServiceUnavailable => "http_service_unavailable_error",
            Self::Internal => "fs_internal_error",
        }
    }

    /// The HTTP status. Verified in the reference: 404 no such entry, 409 exists, 401 token,
    /// 403 access. Inferred and chosen here: 409 for a non-empty directory (a conflict with the
    /// object's state), 400 for a wrong file type or a bad name (the request is wrong for that
    /// object), 507 for no space, 401 for a failed login.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NoSuchEntry | Self::NotFound | Self::NoSuchIdentity => StatusCode::NOT_FOUND,
            Self::EntryExists | Self::DirectoryNotEmpty => StatusCode::CONFLICT,
            Self::AccessDenied | Self::NotOwner | Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotADirectory
            | Self::NotAFile
            | Self::InvalidName
            | Self::NameSize
            | Self::Decode
            | Self::InvalidArgument => StatusCode::BAD_REQUEST,
            Self::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized | Self::LoginFailed => StatusCode::UNAUTHORIZED,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One API error: what the client sees as status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Which error, hence which status.
    pub class: ErrorClass,
    /// Human-readable text, as Qumulo's `description`.
    pub description: String,
}

/// Result type of the simulator's operations.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error of `class` with `description`.
    pub fn new(class: ErrorClass, description: impl Into<String>) -> Self {
        Self {
            class,
            description: description.into(),
        }
    }

    /// Maps a local I/O error met while working on `what` (an API path) to the error class a
    /// cluster would answer with.
    pub fn io(err: &std::io::Error, what: &str) -> Self {
        use std::io::ErrorKind as K;
        let class = match err.kind() {
            K::NotFound => ErrorClass::NoSuchEntry,
            K::AlreadyExists => ErrorClass::EntryExists,
            K::PermissionDenied => ErrorClass::AccessDenied,
            K::DirectoryNotEmpty => ErrorClass::DirectoryNotEmpty,
            K::NotADirectory => ErrorClass::NotADirectory,
            K::IsADirectory => ErrorClass::NotAFile,
            K::StorageFull | K::QuotaExceeded => ErrorClass::NoSpace,
            K::InvalidFilename => ErrorClass::NameSize,
            K::InvalidInput => ErrorClass::InvalidArgument,
            _ => ErrorClass::Internal,
        };
        Self::new(class, format!("{what}: {err}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class.name(), self.description)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "module": "qfsd.rest",
            "error_class": self.class.name(),
            "description": self.description,
            "stack": [],
            "user_visible": true,
        });
        (self.class.status(), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_cluster_classes() {
        let cases = [
            (std::io::ErrorKind::NotFound, "fs_no_such_entry_error", 404),
            (
                std::io::ErrorKind::AlreadyExists,
                "fs_entry_exists_error",
                409,
            ),
            (
                std::io::ErrorKind::DirectoryNotEmpty,
                "fs_directory_not_empty_error",
                409,
            ),
            (
                std::io::ErrorKind::NotADirectory,
                "fs_not_a_directory_error",
                400,
            ),
            (std::io::ErrorKind::StorageFull, "fs_no_space_error", 507),
            (
                std::io::ErrorKind::PermissionDenied,
                "fs_access_denied_error",
                403,
            ),
        ];
        for (kind, class, status) in cases {
            let err = ApiError::io(&std::io::Error::from(kind), "/x");
            assert_eq!(err.class.name(), class);
            assert_eq!(err.class.status().as_u16(), status);
            assert!(err.description.starts_with("/x: "));
        }
    }
}

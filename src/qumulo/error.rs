//! Errors of the Qumulo client. [`Error::kind`] is the one place that classifies an HTTP
//! status and Qumulo `error_class` into what went wrong.

/// What went wrong, independent of how the cluster said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such file, directory or path (404 `fs_no_such_entry_error`, `fs_no_such_path_error`).
    NotFound,
    /// The name is taken (409 `fs_entry_exists_error`).
    Exists,
    /// Permissions forbid it (403, `fs_access_denied_error`, `fs_access_perm_not_owner_error`).
    Denied,
    /// A directory that is not empty (`fs_directory_not_empty_error`).
    NotEmpty,
    /// A directory operation on a non-directory (`fs_not_a_directory_error`).
    NotADirectory,
    /// A file operation on a non-file (`fs_not_a_file_error`).
    NotAFile,
    /// A name the cluster refuses (`fs_invalid_name_error`, `fs_name_size_error`).
    InvalidName,
    /// The cluster is full or a quota is reached (`fs_no_space_error`, 507).
    NoSpace,
    /// Wrong user name or password at login (401 on `session/login`).
    BadCredentials,
    /// The token is missing, unknown or expired (401 elsewhere).
    Unauthorized,
    /// The cluster could not be reached, timed out, or answered 5xx.
    Unavailable,
    /// Anything else: unexpected statuses, bodies that are not the expected JSON.
    Other,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::NotFound,
        ErrorKind::Exists,
        ErrorKind::Denied,
        ErrorKind::NotEmpty,
        ErrorKind::NotADirectory,
        ErrorKind::NotAFile,
        ErrorKind::InvalidName,
        ErrorKind::NoSpace,
        ErrorKind::BadCredentials,
        ErrorKind::Unauthorized,
        ErrorKind::Unavailable,
        ErrorKind::Other,
    ];

    /// Its name in snake case, e.g. `not_found` (the `class` label of the metrics).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Exists => "exists",
            ErrorKind::Denied => "denied",
            ErrorKind::NotEmpty => "not_empty",
            ErrorKind::NotADirectory => "not_a_directory",
            ErrorKind::NotAFile => "not_a_file",
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::BadCredentials => "bad_credentials",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Other => "other",
        }
    }
}

/// A failure of a Qumulo API call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster answered with an error status.
    #[error("{description} ({class}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Qumulo's `error_class` (empty when the body was not Qumulo's error JSON).
        class: String,
        /// Qumulo's `description`, or the body text.
        description: String,
        /// Whether this answered a login request (a 401 then means bad credentials).
        login: bool,
    },
    /// The request could not be sent or the answer not received (connect, TLS, timeout, reset),
    /// on any node. The text shows the causes (e.g. both fingerprints of a refused pin).
    #[error("cluster unreachable: {}", super::http::chain(.0))]
    Transport(#[source] reqwest::Error),
    /// An upload stopped because its data could not be read (e.g. the FTP client went away);
    /// the cluster is not at fault.
    #[error("the data to upload could not be read: {0}")]
    Aborted(#[source] reqwest::Error),
    /// An upload the cluster stopped taking data for, and did not answer, for this long.
    #[error("the cluster stopped taking the upload's data for {0:?}")]
    Stalled(std::time::Duration),
    /// The answer was not the JSON expected.
    #[error("unexpected answer from the cluster: {0}")]
    Decode(String),
    /// The client configuration is unusable (e.g. an unreadable CA file).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// Classifies the failure. Statuses decide first where they are unambiguous (401, 403,
    /// 404, 5xx); the `error_class` decides the rest.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Api {
                status,
                class,
                login,
                ..
            } => classify(*status, class, *login),
            Error::Transport(_) | Error::Stalled(_) => ErrorKind::Unavailable,
            Error::Decode(_) | Error::Config(_) | Error::Aborted(_) => ErrorKind::Other,
        }
    }
}

fn classify(status: u16, class: &str, login: bool) -> ErrorKind {
    match (status, class) {
        (401, _) if login => ErrorKind::BadCredentials,
        (401, _) => ErrorKind::Unauthorized,
        (_, "fs_no_such_entry_error" | "fs_no_such_path_error") | (404, _) => ErrorKind::NotFound,
        (_, "fs_entry_exists_error") => ErrorKind::Exists,
        (_, "fs_directory_not_empty_error") => ErrorKind::NotEmpty,
        (_, "fs_not_a_directory_error") => ErrorKind::NotADirectory,
        (_, "fs_not_a_file_error") => ErrorKind::NotAFile,
        (_, "fs_invalid_name_error" | "fs_name_size_error") => ErrorKind::InvalidName,
        (_, "fs_no_space_error" | "fs_quota_exceeded_error") | (507, _) => ErrorKind::NoSpace,
        (_, "fs_access_denied_error" | "fs_access_perm_not_owner_error") | (403, _) => {
            ErrorKind::Denied
        }
        (500..=599, _) => ErrorKind::Unavailable,
        (409, _) => ErrorKind::Exists,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_classes_classify() {
        let cases = [
            (404, "fs_no_such_entry_error", false, ErrorKind::NotFound),
            (409, "fs_entry_exists_error", false, ErrorKind::Exists),
            (403, "fs_access_denied_error", false, ErrorKind::Denied),
            (
                403,
                "fs_access_perm_not_owner_error",
                false,
                ErrorKind::Denied,
            ),
            (
                409,
                "fs_directory_not_empty_error",
                false,
                ErrorKind::NotEmpty,
            ),
            (
                400,
                "fs_not_a_directory_error",
                false,
                ErrorKind::NotADirectory,
            ),
            (400, "fs_not_a_file_error", false, ErrorKind::NotAFile),
            (400, "fs_invalid_name_error", false, ErrorKind::InvalidName),
            (400, "fs_name_size_error", false, ErrorKind::InvalidName),
            (507, "fs_no_space_error", false, ErrorKind::NoSpace),
            (
                401,
                "api_invalid_credentials_error",
                true,
                ErrorKind::BadCredentials,
            ),
            (
                401,
                "http_unauthorized_error",
                false,
                ErrorKind::Unauthorized,
            ),
            (
                503,
                "http_service_unavailable_error",
                false,
                ErrorKind::Unavailable,
            ),
            (500, "", false, ErrorKind::Unavailable),
            (404, "http_not_found_error", false, ErrorKind::NotFound),
            (400, "decode_error", false, ErrorKind::Other),
        ];
        for (status, class, login, kind) in cases {
            assert_eq!(classify(status, class, login), kind, "{status} {class}");
        }
    }
}

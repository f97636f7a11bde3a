//! Qumulo failures to FTP replies: one table ([`reply_kind`]), and the error value libunftp
//! turns into the reply, whose text carries the path and the cluster's own description.

use std::path::Path;

use unftp_core::storage::{Error as FtpError, ErrorKind as Ftp};

use crate::qumulo::{Error, ErrorKind as Q};

use super::path::PathError;

/// The FTP reply for each kind of cluster failure (the reply code is in the comment).
pub fn reply_kind(kind: Q) -> Ftp {
    match kind {
        Q::NotFound => Ftp::PermanentFileNotAvailable,  // 550
        Q::Exists => Ftp::PermanentFileNotAvailable,    // 550
        Q::Denied => Ftp::PermissionDenied,             // 550
        Q::NotEmpty => Ftp::PermanentDirectoryNotEmpty, // 550
        Q::NotADirectory => Ftp::PermanentDirectoryNotAvailable, // 550
        Q::NotAFile => Ftp::PermanentFileNotAvailable,  // 550
        Q::InvalidName => Ftp::FileNameNotAllowedError, // 553
        Q::NoSpace => Ftp::InsufficientStorageSpaceError, // 452
        Q::BadCredentials | Q::Unauthorized => Ftp::LocalError, // 451
        Q::Unavailable | Q::Other => Ftp::LocalError,   // 451
    }
}

/// The text of a failed operation: the FTP path and what the cluster said.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Failure {
    path: String,
    message: String,
}

impl Failure {
    /// What went wrong, without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A cluster failure on `path` as libunftp's storage error.
pub fn cluster(path: &Path, err: &Error) -> FtpError {
    let message = match err {
        Error::Api {
            class, description, ..
        } if !description.is_empty() => format!("{description} ({class})"),
        Error::Api { class, status, .. } => format!("{class} (HTTP {status})"),
        Error::Transport(_) => "the Qumulo cluster cannot be reached; try again later".to_string(),
        other => other.to_string(),
    };
    failure(reply_kind(err.kind()), path, message)
}

/// A failure decided by the gateway itself.
pub fn failure(kind: Ftp, path: &Path, message: impl Into<String>) -> FtpError {
    FtpError::new(
        kind,
        Failure {
            path: path.display().to_string(),
            message: message.into(),
        },
    )
}

/// A path that cannot be mapped to the cluster (553).
pub fn bad_path(path: &Path, err: PathError) -> FtpError {
    failure(Ftp::FileNameNotAllowedError, path, err.to_string())
}

/// Why a transfer ended early on the client's side (the cluster did nothing wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// The client closed its control connection before the transfer was over: it was killed
    /// or gave up, and the end of its data may be missing.
    ControlClosed,
    /// The data connection failed (reset, TLS failure).
    DataFailed,
    /// No byte moved on the data connection for `secs` seconds (the data timeout).
    DataStalled {
        /// The data timeout.
        secs: u64,
    },
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abort::ControlClosed => f.write_str("connection closed; transfer aborted"),
            Abort::DataFailed => f.write_str("data connection failed; transfer aborted"),
            Abort::DataStalled { secs } => {
                write!(f, "no data moved for {secs} s; transfer aborted")
            }
        }
    }
}

/// The FTP reply for each way a client's transfer can end early (the reply code is in the
/// comment).
pub fn abort_kind(why: Abort) -> Ftp {
    match why {
        Abort::ControlClosed => Ftp::ConnectionClosed, // 426
        Abort::DataFailed => Ftp::ConnectionClosed,    // 426
        Abort::DataStalled { .. } => Ftp::ConnectionClosed, // 426
    }
}

/// A transfer of `path` that ended early because of the client, as libunftp's storage error.
pub fn aborted(path: &Path, why: Abort) -> FtpError {
    failure(abort_kind(why), path, why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_documented_reply() {
        let table = [
            (Q::NotFound, "550"),
            (Q::Exists, "550"),
            (Q::Denied, "550"),
            (Q::NotEmpty, "550"),
            (Q::NotADirectory, "550"),
            (Q::NotAFile, "550"),
            (Q::InvalidName, "553"),
            (Q::NoSpace, "452"),
            (Q::Unauthorized, "451"),
            (Q::Unavailable, "451"),
            (Q::Other, "451"),
        ];
        for (kind, code) in table {
            assert!(reply_kind(kind).to_string().starts_with(code), "{kind:?}");
        }
    }

    #[test]
    fn every_abort_has_the_documented_reply_and_text() {
        let table = [
            (
                Abort::ControlClosed,
                "426",
                "connection closed; transfer aborted",
            ),
            (
                Abort::DataFailed,
                "426",
                "data connection failed; transfer aborted",
            ),
            (
                Abort::DataStalled { secs: 120 },
                "426",
                "no data moved for 120 s; transfer aborted",
            ),
        ];
        for (why, code, text) in table {
            assert!(abort_kind(why).to_string().starts_with(code), "{why:?}");
            let e = aborted(Path::new("/up/f.bin"), why);
            assert_eq!(e.kind(), abort_kind(why));
            let source = std::error::Error::source(&e).unwrap().to_string();
            assert_eq!(source, format!("/up/f.bin: {text}"));
        }
    }

    #[test]
    fn text_names_the_path_and_the_cluster_description() {
        let err = Error::Api {
            status: 403,
            class: "fs_access_denied_error".into(),
            description: "alice may not access /x".into(),
            login: false,
        };
        let e = cluster(Path::new("/x"), &err);
        assert_eq!(e.kind(), Ftp::PermissionDenied);
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(
            source,
            "/x: alice may not access /x (fs_access_denied_error)"
        );
    }
}

//! Qumulo failures to FTP replies: one table ([`reply`]), and the error value libunftp turns
//! into the reply, whose text is the path as the user sees it and the gateway's words for the
//! kind of failure (never the cluster's description, which names the real cluster path).

use std::path::Path;

use unftp_core::storage::{Error as FtpError, ErrorKind as Ftp};

use crate::qumulo::{Error, ErrorKind as Q};

use super::path::{PathError, to_cluster};

/// The FTP reply and the text for each kind of cluster failure (the reply code is in the
/// comment). The text is the gateway's own: the cluster's description names the cluster path
/// (the real one, above a user's chroot) and, on the simulator, the OS error.
pub fn reply(kind: Q) -> (Ftp, &'static str) {
    match kind {
        Q::NotFound => (Ftp::PermanentFileNotAvailable, "no such file or directory"), // 550
        Q::Exists => (Ftp::PermanentFileNotAvailable, "file exists"),                 // 550
        Q::Denied => (Ftp::PermissionDenied, "permission denied"),                    // 550
        Q::NotEmpty => (Ftp::PermanentDirectoryNotEmpty, "directory not empty"),      // 550
        Q::NotADirectory => (Ftp::PermanentDirectoryNotAvailable, "not a directory"), // 550
        Q::NotAFile => (Ftp::PermanentFileNotAvailable, "not a regular file"),        // 550
        Q::InvalidName => (Ftp::FileNameNotAllowedError, "file name not allowed"),    // 553
        Q::NoSpace => (Ftp::InsufficientStorageSpaceError, "no space left"),          // 452
        Q::BadCredentials | Q::Unauthorized => {
            (Ftp::LocalError, "the cluster refused the session's login")
        } // 451
        Q::Unavailable => (
            Ftp::LocalError,
            "the Qumulo cluster cannot be reached; try again later",
        ), // 451
        Q::Other => (Ftp::LocalError, "the cluster failed"),                          // 451
    }
}

/// Refusals the gateway decides itself, each after the path (see [`failure`]); the reply
/// code is in the comment.
pub(super) mod refusal {
    /// A directory operation (CWD, RMD, or STOR's directory) on something else (550).
    pub const NOT_A_DIRECTORY: &str = "not a directory";
    /// STOR, APPE or REST+STOR on a directory (550).
    pub const IS_A_DIRECTORY: &str = "is a directory";
    /// DELE on a directory (550).
    pub const DELETE_A_DIRECTORY: &str = "is a directory (use RMD)";
    /// RMD, RNFR or RNTO of the user's root (550).
    pub const ROOT_UNCHANGEABLE: &str = "the root directory cannot be changed";
    /// MLSD of a file (501).
    pub const MLSD_OF_A_FILE: &str =
        "not a directory (MLSD lists directories; MLST describes a file)";
    /// NLST of a pattern that matches nothing (550).
    pub const NO_MATCH: &str = "no such file or directory";
    /// A confined user's path that leads out of the home through a symlink (550).
    pub const OUTSIDE_THE_HOME: &str =
        "permission denied: a symbolic link leads outside the home directory";

    /// REST past the end of the file, then RETR (554).
    pub fn restart_past_end(offset: u64, size: u64) -> String {
        format!("the restart offset {offset} is past the end of the file ({size} bytes)")
    }

    /// The data connection of an upload failed with `cause` (426).
    pub fn data_failed(cause: &str) -> String {
        format!("{} ({cause})", super::Abort::DataFailed)
    }

    /// A listing of `path` whose cluster failed after its first page, as `what` says (451,
    /// the whole line: the data connection's read error).
    pub fn listing_failed_midway(path: &str, what: &str) -> String {
        format!("{path}: listing failed midway: {what}")
    }
}

/// The texts of the SITE commands' replies.
pub(super) mod site {
    use chrono::{DateTime, Utc};

    /// A SITE command before login (530).
    pub const NOT_LOGGED_IN: &str = "Please log in first";
    /// SITE CHMOD without its arguments (501).
    pub const CHMOD_USAGE: &str = "Usage: SITE CHMOD <octal mode> <path>";
    /// SITE UTIME without its arguments (501).
    pub const UTIME_USAGE: &str = "Usage: SITE UTIME YYYYMMDDhhmm[ss] <path>, \
                                   SITE UTIME <path> YYYYMMDDhhmm[ss] or \
                                   SITE UTIME ATIME MTIME CTIME <path> UTC";

    /// SITE CHMOD with a `mode` that is not one (501).
    pub fn not_an_octal_mode(mode: &str) -> String {
        format!("{mode:?} is not an octal mode")
    }

    /// SITE CHMOD or UTIME of a `target` path that cannot be mapped to the cluster (553).
    pub fn bad_path(target: &str, err: &super::PathError) -> String {
        format!("{target}: {err}")
    }

    /// SITE CHMOD done (200).
    pub fn chmod_done(mode: u32, target: &str) -> String {
        format!("SITE CHMOD {mode:04o} {target}: done")
    }

    /// SITE UTIME with a `time` that is not one (501).
    pub fn not_a_valid_time(time: &str) -> String {
        format!("{time:?} is not a valid time (YYYYMMDDhhmm[ss], UTC)")
    }

    /// SITE UTIME done (200).
    pub fn utime_done(target: &str, mtime: DateTime<Utc>) -> String {
        format!(
            "SITE UTIME {target}: modification time set to {}",
            mtime.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// The reply text of a failed operation: the FTP path and what the cluster said.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ReplyText {
    path: String,
    message: String,
}

impl ReplyText {
    /// What went wrong, without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The text of a failure, for the log: the back-end's description when it gave one.
pub(super) fn reason(e: &FtpError) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string)
}

/// A cluster failure on `path` as libunftp's storage error: the FTP path and the text of
/// [`reply`]; for a failure of an unexpected kind, the cluster's error class (never its
/// description), so that the reply still says something an administrator can look up.
pub fn cluster(path: &Path, err: &Error) -> FtpError {
    let (kind, text) = reply(err.kind());
    let message = match err {
        Error::Api { class, status, .. } if err.kind() == Q::Other && !class.is_empty() => {
            format!("{text} ({class}, HTTP {status})")
        }
        Error::Api { status, .. } if err.kind() == Q::Other => format!("{text} (HTTP {status})"),
        Error::Stalled(_) => err.to_string(),
        // Not the cause: its text may hold the request's URL, which names the cluster path.
        Error::Aborted(_) => "the data to upload could not be read".to_string(),
        _ => text.to_string(),
    };
    failure(kind, path, message)
}

/// A failure decided by the gateway itself.
pub fn failure(kind: Ftp, path: &Path, message: impl Into<String>) -> FtpError {
    FtpError::new(
        kind,
        ReplyText {
            path: shown(path),
            message: message.into(),
        },
    )
}

/// An FTP path as a reply shows it: resolved lexically (`/a/../b` is `/b`), as the user sees
/// it (never the cluster path above a chroot).
fn shown(path: &Path) -> String {
    to_cluster("/", path).unwrap_or_else(|_| path.display().to_string())
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

// Logins: the texts of the replies to USER and PASS that the gateway writes itself.

/// The 421 text of a login refused without asking the cluster (the client may try later).
pub fn login_refused(why: super::logins::LoginRefusal) -> &'static str {
    use super::logins::LoginRefusal as Why;
    match why {
        Why::Banned => "Too many failed logins from your address; try again later",
        Why::AddressBusy => "Too many logins at once from your address; try again later",
        Why::UserBusy => "Too many login attempts for this user name; try again later",
    }
}

/// The 421 text of a login the cluster could not check.
pub const LOGIN_NOT_CHECKED: &str =
    "Login failed: the Qumulo cluster cannot be reached; try again later";

/// The 421 text of a login the cluster accepted without saying who the user is.
pub const LOGIN_WHO_UNKNOWN: &str =
    "Login failed: the Qumulo cluster did not say who the user is; try again later";

/// The 530 text of a login refused because `chroot-users` has no home to confine `user` to.
pub fn login_no_home(user: &str) -> String {
    format!("Login refused: {user} has no home directory on the cluster (ftp.chroot-users is on)")
}

/// The 230 text: names the cluster and its version when they are known.
pub fn welcome(cluster: Option<&str>, version: Option<&str>) -> String {
    match (cluster, version) {
        (Some(cluster), Some(version)) => format!("Welcome to qftpd on {cluster} ({version})"),
        (None, Some(version)) => format!("Welcome to qftpd ({version})"),
        (_, None) => "Welcome to qftpd".to_string(),
    }
}

#[cfg(test)]
mod tests;

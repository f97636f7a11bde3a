//! The hidden temporary file an atomic upload is written to, its name, and the log line of an
//! upload given up.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use unftp_core::storage::{Error as FtpError, ErrorKind as Ftp};

use super::Upload;
use crate::ftp::errors::{ReplyText, reason};
use crate::ftp::stall::Tally;
use crate::qumulo::{ErrorKind, FileAttr, Session};

/// Start of the hidden name an atomic upload is written to, next to its target.
const TEMP_PREFIX: &str = ".qftpd-upload.";
/// The cluster's longest name, in bytes.
const NAME_MAX: usize = 255;

/// The hidden file an atomic upload is written to. It is deleted unless [`TempFile::keep`]
/// says it was renamed over the target: by [`TempFile::discard`] when the upload fails, or by
/// a task spawned from `drop` when the upload is dropped midway (the session was aborted, the
/// service stops). A process killed outright leaves it behind, under its telling name.
pub(super) struct TempFile {
    session: Arc<Session>,
    /// Its cluster path.
    pub(super) path: String,
    /// Whether it may exist and has to be deleted.
    armed: bool,
    /// The log line of an upload given up.
    report: AbortReport,
}

impl TempFile {
    /// Creates a new hidden file for `name` in `dir`, never an existing one: a name taken by
    /// chance is tried again with new random digits.
    pub(super) async fn create(
        up: &Upload<'_>,
        dir: &str,
        name: &str,
    ) -> std::result::Result<(Self, FileAttr), crate::qumulo::Error> {
        let mut tries = 0;
        loop {
            let temp = temp_name(name);
            let path = if dir == "/" {
                format!("/{temp}")
            } else {
                format!("{dir}/{temp}")
            };
            // The request runs in its own task: if the upload is dropped while it runs, the
            // task still learns whether the cluster created the file, and deletes it.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (session, d, p) = (up.user.session.clone(), dir.to_string(), path.clone());
            tokio::spawn(async move {
                let result = session.create_file(&d, &temp).await;
                if let Err(Ok(_)) = tx.send(result) {
                    cleaned(&p, session.delete(&p).await);
                }
            });
            let created = rx.await.unwrap_or_else(|_| {
                Err(crate::qumulo::Error::Decode(
                    "creating the temporary file failed".to_string(),
                ))
            });
            match created {
                Ok(attr) => {
                    let file = TempFile {
                        session: up.user.session.clone(),
                        path,
                        armed: true,
                        report: AbortReport {
                            user: up.user.name.clone(),
                            client: up.user.client,
                            path: up.path.display().to_string(),
                            tally: up.tally.clone(),
                            replacing: false,
                            logged: false,
                        },
                    };
                    return Ok((file, attr));
                }
                Err(e) => {
                    if e.kind() != ErrorKind::Exists || tries == 2 {
                        return Err(e);
                    }
                    tries += 1;
                }
            }
        }
    }

    /// The upload replaces an existing file (which its log line says when it is given up).
    pub(super) fn replacing(&mut self) {
        self.report.replacing = true;
    }

    /// The file was renamed over the target: nothing to delete.
    pub(super) fn keep(&mut self) {
        self.armed = false;
    }

    /// Deletes the file before any data went into it (the upload goes on another way).
    pub(super) async fn remove(&mut self) {
        let result = self.session.delete(&self.path).await;
        self.armed = false;
        cleaned(&self.path, result);
    }

    /// Logs why the upload was given up and deletes the file (a failure to is logged).
    pub(super) async fn discard(&mut self, err: &FtpError) {
        self.report
            .log(&why(err), err.kind() == Ftp::ConnectionClosed);
        let result = self.session.delete(&self.path).await;
        self.armed = false;
        cleaned(&self.path, result);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.report.log("the transfer was cancelled", true);
        let (session, path) = (self.session.clone(), std::mem::take(&mut self.path));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { cleaned(&path, session.delete(&path).await) });
            }
            Err(_) => {
                tracing::warn!(temp = %path, "cannot delete the temporary file of a cancelled upload")
            }
        }
    }
}

/// The log line of an upload given up: who, what, how much had arrived, why, and that the
/// target did not change.
struct AbortReport {
    user: String,
    client: std::net::IpAddr,
    /// The FTP path.
    path: String,
    tally: Arc<Tally>,
    /// Whether the upload was to replace an existing file.
    replacing: bool,
    /// Logged already (a failed upload may also be dropped while it cleans up).
    logged: bool,
}

impl AbortReport {
    /// Logs the line once: at info level when the client caused it, at warning level else.
    fn log(&mut self, why: &str, client_side: bool) {
        if std::mem::replace(&mut self.logged, true) {
            return;
        }
        let (user, client, path) = (&self.user, self.client, &self.path);
        let bytes = self.tally.bytes.load(Ordering::Relaxed);
        let kept = if self.replacing {
            "previous file kept"
        } else {
            "no file created"
        };
        if client_side {
            tracing::info!(
                user, %client, path, bytes, reason = why, "upload {path} aborted after {bytes} \
                bytes received: {why}; {kept}"
            );
        } else {
            tracing::warn!(
                user, %client, path, bytes, reason = why, "upload {path} aborted after {bytes} \
                bytes received: {why}; {kept}"
            );
        }
    }
}

/// Logs a failure to delete a temporary file (one already gone is fine).
fn cleaned(temp: &str, result: std::result::Result<(), crate::qumulo::Error>) {
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            temp, error = %e, "cannot delete the temporary file of an aborted upload; it stays behind"
        ),
    }
}

/// Whether `name` is that of an upload's temporary file (see [`temp_name`]).
pub(in crate::ftp) fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// A hidden name for an upload to `name`: the prefix, 16 random hex digits, a dot and as much
/// of `name` as fits in the cluster's limit (cut at a character boundary).
fn temp_name(name: &str) -> String {
    let mut temp = format!("{TEMP_PREFIX}{:016x}.", fastrand::u64(..));
    let mut end = name.len().min(NAME_MAX - temp.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    temp.push_str(&name[..end]);
    temp
}

/// Why an upload failed, without the path the log line names already.
fn why(e: &FtpError) -> String {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<ReplyText>())
        .map_or_else(|| reason(e), |f| f.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_hidden_unique_and_within_the_name_limit() {
        let a = temp_name("report.pdf");
        assert!(
            a.starts_with(TEMP_PREFIX) && a.ends_with(".report.pdf"),
            "{a}"
        );
        assert_eq!(a.len(), TEMP_PREFIX.len() + 16 + 1 + "report.pdf".len());
        assert_ne!(a, temp_name("report.pdf"));
        // 254 bytes of two-byte characters: cut at a character boundary, within 255 bytes.
        let long = "é".repeat(127);
        let t = temp_name(&long);
        assert!(
            t.len() <= NAME_MAX && t.len() >= NAME_MAX - 1,
            "{}",
            t.len()
        );
        assert!(long.starts_with(&t[TEMP_PREFIX.len() + 17..]));
        let t = temp_name(&"x".repeat(255));
        assert_eq!(t.len(), NAME_MAX);
    }
}

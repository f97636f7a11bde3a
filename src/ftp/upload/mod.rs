//! Uploads that lose nothing.
//!
//! STOR (with `atomic_uploads`) writes to a hidden temporary file in the target's directory and
//! renames it over the target only once all the data arrived and the client is still there;
//! whatever goes wrong before (the upload fails, or is dropped: ABOR, the session ends), the
//! temporary file is deleted and the previous file stays as it was. REST+STOR and APPE extend
//! the file in place, as do uploads without `atomic_uploads`. A data connection on which no
//! byte moves for `data_timeout` fails (see [`super::stall`]).
//!
//! Writing into an existing file needs the right to write that file, asked of the cluster
//! before any data is read: a temporary file renamed over it would need only the right to
//! change its directory. The owner's atomic STOR gives the new file the group and ACL of the
//! one it replaces; another user's file is overwritten in place, keeping its owner.
//!
//! Used by [`super::storage`] only; knows nothing of libunftp but its storage error type.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio_io_timeout::TimeoutReader;
use unftp_core::storage::{Error as FtpError, ErrorKind as Ftp, Result};

use super::errors::{Abort, abort_kind, aborted, cluster, failure, refusal, reply};
use super::stall::{DataConnection, Tally};
use super::storage::{QumuloStorage, dir_and_name};
use super::user::User;
use super::xferlog::Transfer;
use crate::qumulo::{AttrPatch, ErrorKind, FileAttr};

mod temp;

use temp::TempFile;
pub(super) use temp::is_temp_name;

/// How long after the end of a STOR's data the control connection may still close and show a
/// killed client, before the target is replaced: the gap between the kernel closing a killed
/// client's data and control connections. Measured with `benches/killed-client-gap.py` (2
/// cores, a client SIGKILLed while sending, 300 runs): on an idle machine the control
/// connection ends first, or at most 43 µs after the data (p99 35 µs); this is twenty times
/// that. On a loaded machine the gap follows the scheduler (p99 0.5 to 37 ms with other
/// builds or six busy loops on the two cores), which no wait short enough to pay on every
/// upload covers; at 250 µs `uploads::client_killed_mid_stor_leaves_the_previous_file_intact`
/// failed 3 runs of 8 at a load average of 14, at 1 ms none of 18. The wait is exact (see
/// [`super::ControlLink::closed_within`]) and counts from the end of the data, so the time the
/// cluster takes to finish the write counts towards it: at a real cluster's latency a live
/// client waiting for its 226 pays nothing.
const KILLED_CLIENT_GRACE: Duration = Duration::from_millis(1);

/// Where an upload writes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Start {
    /// From an offset: STOR and STOU from 0, REST+STOR from the restart offset.
    At(u64),
    /// At the end of the file (APPE): the check of the write tells its size.
    End,
}

/// An upload: REST+STOR (`Start::At` an offset) and APPE (`Start::End`) extend the file in
/// place; STOR replaces the file through a temporary file, or in place without
/// `atomic_uploads`. STOU arrives here as a STOR of a new name; APPE to a file that does not
/// exist, as a STOR. `transfer` learns the offset.
///
/// Writing into an existing file needs the right to write it, however the data gets there:
/// the cluster is asked first, with the user's own token ([`Session::check_write`]), before a
/// byte of the data is read, so that a refusal is the reply (550, no 150). A temporary file
/// renamed over the target would need only the right to change its directory.
pub(super) async fn upload<R: AsyncRead + Send + Sync + Unpin + 'static>(
    storage: &QumuloStorage,
    user: &User,
    input: R,
    path: &Path,
    start: Start,
    transfer: &mut Transfer<'_>,
) -> Result<u64> {
    // Under chroot, the target's directory as the cluster names it, checked to be in the home.
    let cp = super::confine::target(user, path).await?;
    let (input, tally) = DataConnection::reader(input, storage.shared.data_timeout);
    let upload = Upload {
        storage,
        user,
        path,
        cp: &cp,
        tally,
    };
    match start {
        Start::At(0) => {}
        Start::At(offset) => {
            return match upload.target().await? {
                Target::File(_) => upload.in_place(Some(offset), input).await,
                Target::None => {
                    let (kind, text) = reply(ErrorKind::NotFound);
                    Err(failure(kind, path, text))
                }
                Target::Other => Err(not_a_file(path)),
            };
        }
        Start::End => match upload.target().await? {
            Target::File(attr) => {
                transfer.set_offset(attr.size);
                return upload.in_place(Some(attr.size), input).await;
            }
            Target::None => {}
            Target::Other => return Err(not_a_file(path)),
        },
    }
    let Ok((dir, name)) = dir_and_name(user, &cp, path) else {
        // The user's root, a directory.
        return Err(failure(
            Ftp::PermanentFileNotAvailable,
            path,
            refusal::IS_A_DIRECTORY,
        ));
    };
    if storage.shared.atomic_uploads {
        return upload.atomic(dir, name, input).await;
    }
    match upload.target().await? {
        Target::File(_) => upload.in_place(None, input).await,
        Target::None => {
            // The file must exist before its data is written: it is created empty first.
            match user.session.create_file(dir, name).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Exists => {}
                Err(e) => return Err(cluster(path, &e)),
            }
            upload.in_place(None, input).await
        }
        Target::Other => Err(not_a_file(path)),
    }
}

/// What an upload finds where it is to write.
enum Target {
    /// Nothing: the upload creates the file.
    None,
    /// A file the user may write, with its attributes.
    File(Box<FileAttr>),
    /// Neither a file nor a directory (a symlink, a device).
    Other,
}

/// The refusal to write into something that is not a regular file.
fn not_a_file(path: &Path) -> FtpError {
    let (kind, text) = reply(ErrorKind::NotAFile);
    failure(kind, path, text)
}

/// An upload's data connection as the cluster reads it.
type Input<R> = DataConnection<TimeoutReader<R>>;

/// One upload in progress.
struct Upload<'a> {
    storage: &'a QumuloStorage,
    user: &'a User,
    /// The FTP path, for replies and the log.
    path: &'a Path,
    /// The target's cluster path.
    cp: &'a str,
    /// What the data connection delivered so far, and how it failed.
    tally: Arc<Tally>,
}

impl Upload<'_> {
    /// Writes the data into the target itself: replacing its content (`offset = None`) or from
    /// `offset`. A client that went away meanwhile is only logged: nothing can be undone.
    async fn in_place<R>(&self, offset: Option<u64>, input: Input<R>) -> Result<u64>
    where
        R: AsyncRead + Send + Sync + Unpin + 'static,
    {
        let written = (self.user.session)
            .write(self.cp, offset, input)
            .await
            .map_err(|e| self.write_failure(&e))?;
        if self.storage.client_gone(Duration::ZERO).await {
            tracing::info!(
                user = %self.user.name, client = %self.user.client, path = %self.path.display(),
                bytes = written,
                "the client closed its control connection during the upload; the data \
                 received stays in the file (written in place)"
            );
        }
        Ok(written)
    }

    /// What is at the target, asked as a write ([`Session::check_write`]): a file the user
    /// may write, nothing, or something else; a directory, or a file the user may not write,
    /// is refused.
    async fn target(&self) -> Result<Target> {
        match self.user.session.check_write(self.cp).await {
            Ok(attr) => Ok(Target::File(Box::new(attr))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Target::None),
            Err(e) if e.kind() == ErrorKind::NotAFile => {
                let attr = (self.user.session.get_attr(self.cp).await)
                    .map_err(|e| cluster(self.path, &e))?;
                if attr.is_dir() {
                    Err(failure(
                        Ftp::PermanentFileNotAvailable,
                        self.path,
                        refusal::IS_A_DIRECTORY,
                    ))
                } else {
                    Ok(Target::Other)
                }
            }
            Err(e) => {
                if e.kind() == ErrorKind::Denied {
                    tracing::info!(
                        user = %self.user.name, client = %self.user.client,
                        path = %self.path.display(),
                        "upload refused: the cluster does not let the user write the file"
                    );
                }
                Err(cluster(self.path, &e))
            }
        }
    }

    /// STOR through a hidden temporary file in the target's directory (so that the rename is
    /// atomic, and quota and permissions are those of the target's directory), renamed over
    /// the target once all the data arrived and the client is still there. The target is asked
    /// about while the temporary file is created (one round trip for both); a refused upload
    /// deletes it again.
    ///
    /// The new file gets the group and the ACL (hence the mode) of the file it replaces before
    /// any data goes into it; its owner is the uploader. Another user's file, or one the user
    /// may write but not replace (no right to add names to its directory, or to give the new
    /// file the target's group and ACL), is overwritten in place.
    async fn atomic<R>(&self, dir: &str, name: &str, input: Input<R>) -> Result<u64>
    where
        R: AsyncRead + Send + Sync + Unpin + 'static,
    {
        let (target, created) = tokio::join!(self.target(), TempFile::create(self, dir, name));
        // The user's own file it replaces, if any.
        let replaced = match target {
            Ok(Target::File(attr)) if attr.owner != self.user.uid => {
                // A new file would be the uploader's: only the owner's own replacement keeps
                // the owner (giving a file away takes an administrator, who may write in place
                // too).
                tracing::info!(
                    user = %self.user.name, client = %self.user.client,
                    path = %self.path.display(), owner = %attr.owner_details.id_value,
                    "the file belongs to another user; overwriting it in place"
                );
                if let Ok((mut temp, _)) = created {
                    temp.remove().await;
                }
                return self.in_place(None, input).await;
            }
            Ok(Target::File(attr)) => Some(attr),
            // A link (or a device) is replaced like a name that is taken, never written through.
            Ok(Target::Other | Target::None) => None,
            Err(e) => {
                if let Ok((mut temp, _)) = created {
                    temp.remove().await;
                }
                return Err(e);
            }
        };
        let (mut temp, created) = match created {
            Ok(temp) => temp,
            Err(e) if e.kind() == ErrorKind::Denied && replaced.is_some() => {
                tracing::info!(
                    user = %self.user.name, client = %self.user.client, path = %self.path.display(),
                    "no permission to create a temporary file next to the target; overwriting \
                     it in place"
                );
                return self.in_place(None, input).await;
            }
            Err(e) => return Err(cluster(self.path, &e)),
        };
        if let Some(target) = replaced {
            temp.replacing();
            match self.like_target(&temp.path, &created, &target).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Denied => {
                    temp.remove().await;
                    tracing::info!(
                        user = %self.user.name, client = %self.user.client,
                        path = %self.path.display(), group = %target.group_details.id_value,
                        "the user cannot give a new file the group and permissions of the file \
                         it replaces; overwriting it in place"
                    );
                    return self.in_place(None, input).await;
                }
                Err(e) => {
                    let err = cluster(self.path, &e);
                    temp.discard(&err).await;
                    return Err(err);
                }
            }
        }
        let result = self.fill_and_rename(&temp.path, (dir, name), input).await;
        match &result {
            Ok(_) => temp.keep(),
            Err(e) => temp.discard(e).await,
        }
        result
    }

    /// Gives the empty temporary file `temp` (`created`) the group of `target`, then the
    /// target's ACL (as `qq fs_copy` keeps a file's attributes). Special permissions (setuid,
    /// setgid, sticky) are not copied: new content does not inherit them.
    async fn like_target(
        &self,
        temp: &str,
        created: &FileAttr,
        target: &FileAttr,
    ) -> std::result::Result<(), crate::qumulo::Error> {
        let mut acl = self.user.session.get_acl(self.cp).await?;
        if created.group != target.group {
            let patch = AttrPatch {
                group: Some(target.group),
                ..AttrPatch::default()
            };
            self.user.session.set_attr(temp, &patch).await?;
        }
        acl.posix_special_permissions.clear();
        self.user.session.set_acl(temp, &acl).await
    }

    /// Streams the data into the temporary file `temp` and renames it to `name` in `dir`, over
    /// the target if there is one.
    async fn fill_and_rename<R>(
        &self,
        temp: &str,
        (dir, name): (&str, &str),
        input: Input<R>,
    ) -> Result<u64>
    where
        R: AsyncRead + Send + Sync + Unpin + 'static,
    {
        let session = &self.user.session;
        let written = session
            .write(temp, None, input)
            .await
            .map_err(|e| self.write_failure(&e))?;
        // In stream mode a client killed mid-transfer ends the data like one that finished;
        // it shows as a closed control connection (given a moment from the end of the data:
        // see ControlLink).
        let since_end = self
            .tally
            .ended
            .get()
            .map_or(Duration::ZERO, |at| at.elapsed());
        if self
            .storage
            .client_gone(KILLED_CLIENT_GRACE.saturating_sub(since_end))
            .await
        {
            return Err(aborted(self.path, Abort::ControlClosed));
        }
        session
            .rename(temp, dir, name, true)
            .await
            .map_err(|e| cluster(self.path, &e))?;
        Ok(written)
    }

    /// The reply to a failed write of the data: the client's side when its data connection
    /// failed or stalled (426), the cluster's otherwise.
    fn write_failure(&self, err: &crate::qumulo::Error) -> FtpError {
        let secs = self.storage.shared.data_timeout.as_secs();
        match self.tally.failure.get() {
            Some((io::ErrorKind::TimedOut, _)) => aborted(self.path, Abort::DataStalled { secs }),
            // The reply and the log say what failed: a reset, a TLS error.
            Some((_, cause)) => failure(
                abort_kind(Abort::DataFailed),
                self.path,
                refusal::data_failed(cause),
            ),
            None if matches!(err, crate::qumulo::Error::Aborted(_)) => {
                aborted(self.path, Abort::DataFailed)
            }
            None => cluster(self.path, err),
        }
    }
}

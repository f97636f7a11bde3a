//! The libunftp storage back-end: every FTP file operation as a call on the user's cluster
//! session. A thin adapter: paths go through [`super::path`], failures through
//! [`super::errors`], listings through [`super::listing`], uploads through [`super::upload`].
//!
//! Uploads lose nothing (see [`super::upload`]). Data connections on which no byte moves for
//! `data_timeout` fail.

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use chrono_tz::Tz;
use tokio::io::{AsyncRead, AsyncWrite};
use unftp_core::storage::{
    Error as FtpError, ErrorKind as Ftp, FEATURE_RESTART, Fileinfo, Listing, ListingFormat, Result,
    StorageBackend,
};

use super::confine;
use super::errors::{Abort, aborted, bad_path, cluster, failure, refusal};
use super::listing::{Entry, FACT_NAMES, FactSelection, Facts, NameCache, display_name, entry};
use super::path::{split, to_cluster};
use super::stall::DataConnection;
use super::upload::{Start, upload};
use super::user::User;
use super::xferlog::Transfer;
use crate::qumulo::{Download, ErrorKind, FileAttr};

/// What all sessions' back-ends share.
#[derive(Debug)]
pub struct Shared {
    /// Time zone of LIST lines.
    pub timezone: Tz,
    /// Owner and group names.
    pub names: NameCache,
    /// Transfers in progress are counted here.
    pub stats: Arc<crate::state::Stats>,
    /// STOR writes to a hidden temporary file and renames it over the target once complete,
    /// so a failed upload leaves the previous file intact (`ftp.atomic-uploads`).
    pub atomic_uploads: bool,
    /// How long a data connection may stall, no byte moving, before its transfer fails
    /// (`ftp.data-timeout`).
    pub data_timeout: Duration,
}

/// The storage back-end of one FTP session.
#[derive(Debug, Clone)]
pub struct QumuloStorage {
    pub(super) shared: Arc<Shared>,
    /// The session's control connection, to tell a finished upload from a dead client.
    control: Option<super::ControlLink>,
    /// The MLST facts the session shows (`OPTS MLST`).
    pub(super) facts: Arc<FactSelection>,
}

impl QumuloStorage {
    /// A back-end using `shared` settings and caches, for the session on `control`.
    pub fn new(shared: Arc<Shared>, control: Option<super::ControlLink>) -> Self {
        Self {
            shared,
            control,
            facts: Arc::default(),
        }
    }

    /// The listing entry of `attr` as `user` sees it, with the facts the session shows.
    pub(super) async fn entry(&self, user: &User, attr: FileAttr) -> Entry {
        let shown = self.facts.get();
        entry(&self.shared, &user.session, user.uid, attr, shown).await
    }

    /// The attributes of the entry at FTP `path` (see [`attr_of`]).
    pub(super) async fn attr(&self, user: &User, path: &Path) -> Result<FileAttr> {
        Ok(attr_of(user, path).await?.0)
    }

    /// An upload (STOR, APPE), counted and logged as one transfer.
    async fn logged_upload<R: AsyncRead + Send + Sync + Unpin + 'static>(
        &self,
        user: &User,
        input: R,
        path: &Path,
        start: Start,
    ) -> Result<u64> {
        // APPE's offset is known once the cluster has said the file's size (`upload` sets it).
        let offset = match start {
            Start::At(offset) => offset,
            Start::End => 0,
        };
        let mut transfer = Transfer::start(&self.shared, user, path, "upload", offset);
        let result = upload(self, user, input, path, start, &mut transfer).await;
        transfer.finish(&result);
        result
    }

    /// Whether the client closes its control connection within `limit` (see
    /// [`super::ControlLink`]).
    pub(super) async fn client_gone(&self, limit: std::time::Duration) -> bool {
        match &self.control {
            Some(control) => control.closed_within(limit).await,
            None => false,
        }
    }
}

/// A file's data from `offset` on, as the cluster streams it. An offset past the end of the
/// file (REST, then RETR) is refused with 554 (RFC 1123, 4.1.3.4) before anything is sent.
async fn open(user: &User, path: &Path, offset: u64) -> Result<Download> {
    let mut reference = cluster_path(user, path)?;
    if offset > 0 || confine::confined(user) {
        let attr;
        (attr, reference) = attr_of(user, path).await?;
        if !attr.is_dir() && offset > attr.size {
            return Err(failure(
                Ftp::InvalidRestParameter,
                path,
                refusal::restart_past_end(offset, attr.size),
            ));
        }
    }
    user.session
        .read(&reference, offset)
        .await
        .map_err(|e| cluster(path, &e))
}

/// The attributes of the entry at FTP `path`, checked to be in a confined user's home, and the
/// reference to name it by from then on (see [`confine::reference`]).
async fn attr_of(user: &User, path: &Path) -> Result<(FileAttr, String)> {
    let cp = cluster_path(user, path)?;
    let attr = (user.session.get_attr(&cp).await).map_err(|e| cluster(path, &e))?;
    confine::check(user, path, &cp, &attr).await?;
    let reference = confine::reference(user, &cp, &attr);
    Ok((attr, reference))
}

/// The cluster path of an FTP path for `user`.
pub(super) fn cluster_path(user: &User, path: &Path) -> Result<String> {
    to_cluster(&user.root, path).map_err(|e| bad_path(path, e))
}

/// The directory and name of `cp`, which must not be the user's root (it has no name the
/// user may change).
pub(super) fn dir_and_name<'a>(
    user: &User,
    cp: &'a str,
    path: &Path,
) -> Result<(&'a str, &'a str)> {
    match split(cp) {
        Some(parts) if cp != user.root => Ok(parts),
        _ => Err(failure(
            Ftp::PermissionDenied,
            path,
            refusal::ROOT_UNCHANGEABLE,
        )),
    }
}

#[async_trait]
impl StorageBackend<User> for QumuloStorage {
    type Metadata = Entry;

    fn name(&self) -> &str {
        "qumulo"
    }

    fn supported_features(&self) -> u32 {
        FEATURE_RESTART
    }

    fn mlst_fact_names(&self) -> Option<Vec<(&'static str, bool)>> {
        let shown = self.facts.get();
        Some(FACT_NAMES.iter().map(|f| (*f, shown.has(f))).collect())
    }

    fn select_mlst_facts(&self, facts: &[&str]) -> Option<Vec<&'static str>> {
        let shown = Facts::named(facts);
        self.facts.set(shown);
        Some(shown.names())
    }

    async fn metadata<P: AsRef<Path> + Send + Debug>(&self, user: &User, path: P) -> Result<Entry> {
        let attr = self.attr(user, path.as_ref()).await?;
        Ok(self.entry(user, attr).await)
    }

    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &User,
        path: P,
    ) -> Result<Vec<Fileinfo<PathBuf, Entry>>> {
        let path = path.as_ref();
        let entries = self.entries(user, path).await?;
        Ok(entries
            .into_iter()
            .map(|e| Fileinfo {
                path: path.join(display_name(&e.attr.name)),
                metadata: e,
            })
            .collect())
    }

    async fn listing<P>(
        &self,
        user: &User,
        path: P,
        format: ListingFormat,
        argument: Option<&str>,
    ) -> Option<std::result::Result<Listing, FtpError>>
    where
        P: AsRef<Path> + Send + Debug,
    {
        Some(
            self.stream_listing(user, path.as_ref(), format, argument)
                .await,
        )
    }

    async fn list_vec<P>(&self, user: &User, path: P) -> std::result::Result<Vec<String>, FtpError>
    where
        P: AsRef<Path> + Send + Debug,
    {
        self.list_lines(user, path.as_ref()).await
    }

    async fn get_into<'a, P, W: ?Sized>(
        &self,
        user: &User,
        path: P,
        start_pos: u64,
        output: &'a mut W,
    ) -> Result<u64>
    where
        W: AsyncWrite + Unpin + Sync + Send,
        P: AsRef<Path> + Send + Debug,
    {
        let path = path.as_ref();
        let transfer = Transfer::start(&self.shared, user, path, "download", start_pos);
        let result = async {
            // The body's chunks go to the data connection as they arrive, without a copy.
            let mut reader = open(user, path, start_pos).await?;
            let timeout = self.shared.data_timeout;
            let (mut output, tally) = DataConnection::writer(output, timeout);
            match tokio::io::copy_buf(&mut reader, &mut output).await {
                Ok(bytes) => Ok(bytes),
                Err(_) if tally.failure.get().map(|f| f.0) == Some(io::ErrorKind::TimedOut) => {
                    let secs = timeout.as_secs();
                    Err(aborted(path, Abort::DataStalled { secs }))
                }
                Err(e) => Err(e.into()),
            }
        }
        .await;
        transfer.finish(&result);
        result
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &User,
        path: P,
        start_pos: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Sync + Unpin>> {
        Ok(open(user, path.as_ref(), start_pos).await?)
    }

    async fn put<P: AsRef<Path> + Send + Debug, R: AsyncRead + Send + Sync + Unpin + 'static>(
        &self,
        user: &User,
        input: R,
        path: P,
        start_pos: u64,
    ) -> Result<u64> {
        self.logged_upload(user, input, path.as_ref(), Start::At(start_pos))
            .await
    }

    /// APPE: the check of the write answers with the file's size, the data goes on from there
    /// (two calls); a file that does not exist is stored like a STOR.
    async fn append<
        P: AsRef<Path> + Send + Sync + Debug,
        R: AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        user: &User,
        input: R,
        path: P,
    ) -> Result<u64> {
        self.logged_upload(user, input, path.as_ref(), Start::End)
            .await
    }

    async fn del<P: AsRef<Path> + Send + Debug>(&self, user: &User, path: P) -> Result<()> {
        let path = path.as_ref();
        let (attr, reference) = attr_of(user, path).await?;
        if attr.is_dir() {
            return Err(failure(
                Ftp::PermanentFileNotAvailable,
                path,
                refusal::DELETE_A_DIRECTORY,
            ));
        }
        user.session
            .delete(&reference)
            .await
            .map_err(|e| cluster(path, &e))?;
        tracing::info!(user = %user.name, client = %user.client, path = %path.display(), "delete");
        Ok(())
    }

    async fn mkd<P: AsRef<Path> + Send + Debug>(&self, user: &User, path: P) -> Result<()> {
        let path = path.as_ref();
        let (dir, name) = confine::parent(user, path).await?;
        user.session
            .create_dir(&dir, &name)
            .await
            .map_err(|e| cluster(path, &e))?;
        tracing::info!(user = %user.name, client = %user.client, path = %path.display(), "mkdir");
        Ok(())
    }

    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &User,
        from: P,
        to: P,
    ) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        let (from_cp, to_cp) = (cluster_path(user, from)?, cluster_path(user, to)?);
        dir_and_name(user, &to_cp, to)?;
        dir_and_name(user, &from_cp, from)?;
        let from_cp = confine::canonical(user, from).await?;
        let (dir, name) = confine::parent(user, to).await?;
        // Like rename(2), an existing destination file is replaced.
        user.session
            .rename(&from_cp, &dir, &name, true)
            .await
            .map_err(|e| cluster(to, &e))?;
        tracing::info!(user = %user.name, client = %user.client, from = %from.display(), to = %to.display(), "rename");
        Ok(())
    }

    async fn rmd<P: AsRef<Path> + Send + Debug>(&self, user: &User, path: P) -> Result<()> {
        let path = path.as_ref();
        let cp = cluster_path(user, path)?;
        dir_and_name(user, &cp, path)?;
        let (attr, reference) = attr_of(user, path).await?;
        if !attr.is_dir() {
            return Err(failure(
                Ftp::PermanentDirectoryNotAvailable,
                path,
                refusal::NOT_A_DIRECTORY,
            ));
        }
        user.session
            .delete(&reference)
            .await
            .map_err(|e| cluster(path, &e))?;
        tracing::info!(user = %user.name, client = %user.client, path = %path.display(), "rmdir");
        Ok(())
    }

    /// A working directory must be a directory the user may list: its first entry is read
    /// (the cluster refuses a listing without read permission, and a non-directory).
    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, user: &User, path: P) -> Result<()> {
        let path = path.as_ref();
        let cp = cluster_path(user, path)?;
        match user.session.list_page(&cp, None, 1).await {
            Ok(page) => confine::check_listed(user, path, &cp, page.path.as_deref()).await,
            Err(e) if e.kind() == ErrorKind::NotADirectory => Err(failure(
                Ftp::PermanentDirectoryNotAvailable,
                path,
                refusal::NOT_A_DIRECTORY,
            )),
            Err(e) => Err(cluster(path, &e)),
        }
    }

    async fn set_modified<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &User,
        path: P,
        time: chrono::DateTime<Utc>,
    ) -> Result<()> {
        let path = path.as_ref();
        let reference = confine::existing(user, path).await?;
        let patch = crate::qumulo::AttrPatch {
            modification_time: Some(time),
            ..Default::default()
        };
        user.session
            .set_attr(&reference, &patch)
            .await
            .map_err(|e| cluster(path, &e))?;
        tracing::info!(user = %user.name, client = %user.client, path = %path.display(), modified = %time.to_rfc3339(), "set modification time");
        Ok(())
    }
}

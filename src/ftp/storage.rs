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
use bytes::Bytes;
use chrono::Utc;
use chrono_tz::Tz;
use glob::{MatchOptions, Pattern};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::StreamReader;
use unftp_core::storage::{
    Error as FtpError, ErrorKind as Ftp, FEATURE_RESTART, Fileinfo, Listing, ListingFormat, Result,
    StorageBackend,
};

use super::confine;
use super::errors::{Abort, aborted, bad_path, cluster, failure};
use super::listing::{
    Entry, FACT_NAMES, FactSelection, Facts, NameCache, facts, list_line, perm_fact,
};
use super::path::{split, to_cluster};
use super::upload::{Watched, is_temp_name, upload};
use super::user::User;
use crate::qumulo::{Download, ErrorKind, FileAttr, Pages, Session};

/// Entries asked for per listing page.
const PAGE_SIZE: usize = 1000;
/// Formatted listing pages read ahead of the data connection: the next page is asked for
/// while one is being sent.
const PAGES_AHEAD: usize = 2;

/// What all sessions' back-ends share.
#[derive(Debug)]
pub struct Shared {
    /// Time zone of LIST lines.
    pub timezone: Tz,
    /// Owner and group names.
    pub names: NameCache,
    /// Transfers in progress are counted here.
    pub activity: Arc<crate::state::Stats>,
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
    facts: Arc<FactSelection>,
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

    async fn entry(&self, user: &User, attr: FileAttr) -> Entry {
        let shown = self.facts.get();
        entry(&self.shared, &user.session, user.uid, attr, shown).await
    }

    async fn attr(&self, user: &User, path: &Path) -> Result<FileAttr> {
        Ok(attr_of(user, path).await?.0)
    }

    /// The start of a listing: the first page of a directory and the pages after it, or the
    /// entry itself and no pages when `path` is not a directory (`LIST file` shows that file,
    /// as `ls -l file` does). Uploads' temporary files are left out of directories (another
    /// session's upload in progress is not shown, see [`without_temp`]), not when named.
    ///
    /// With `wildcards`, a last name that does not exist but holds `*`, `?` or `[...]` is a
    /// pattern: the listing is the directory's entries it matches (a name that exists is taken
    /// as it is, even with those characters). The first page is then the first that has a
    /// match (empty when none has).
    async fn start_listing(&self, user: &User, path: &Path, wildcards: bool) -> Result<Start> {
        let cp = cluster_path(user, path)?;
        let mut pages = Pages::new(&cp, PAGE_SIZE);
        match pages.next(&user.session).await {
            Ok(first) => {
                confine::check_listed(user, path, &cp, pages.path()).await?;
                Ok(Start::Dir {
                    first: without_temp(first.unwrap_or_default()),
                    pages,
                })
            }
            Err(e) if e.kind() == ErrorKind::NotADirectory => {
                Ok(Start::One(self.attr(user, path).await?))
            }
            Err(e) if wildcards && e.kind() == ErrorKind::NotFound => {
                let Some(pattern) = pattern(path) else {
                    return Err(cluster(path, &e));
                };
                let dir = path.parent().unwrap_or(Path::new("/"));
                let dir_cp = cluster_path(user, dir)?;
                let mut pages = Pages::new(&dir_cp, PAGE_SIZE);
                let failed = |e: crate::qumulo::Error| cluster(path, &e);
                let mut first = true;
                loop {
                    let page = pages.next(&user.session).await.map_err(failed)?;
                    if std::mem::take(&mut first) {
                        confine::check_listed(user, dir, &dir_cp, pages.path()).await?;
                    }
                    let Some(page) = page else {
                        return Ok(Start::Matches {
                            first: Vec::new(),
                            pages: None,
                            pattern,
                        });
                    };
                    let first = matching(&pattern, page);
                    if !first.is_empty() {
                        return Ok(Start::Matches {
                            first,
                            pages: Some(pages),
                            pattern,
                        });
                    }
                }
            }
            Err(e) => Err(cluster(path, &e)),
        }
    }

    /// The whole listing (see [`Self::start_listing`], with wildcards) as entries.
    async fn entries(&self, user: &User, path: &Path) -> Result<Vec<Entry>> {
        let (mut attrs, pages, pattern) = self.start_listing(user, path, true).await?.parts();
        if let Some(mut pages) = pages {
            let failed = |e: crate::qumulo::Error| cluster(path, &e);
            while let Some(page) = pages.next(&user.session).await.map_err(failed)? {
                attrs.extend(listed(pattern.as_ref(), page));
            }
        }
        let mut entries = Vec::with_capacity(attrs.len());
        for attr in attrs {
            entries.push(self.entry(user, attr).await);
        }
        Ok(entries)
    }

    async fn list_lines(&self, user: &User, path: &Path) -> Result<Vec<String>> {
        let now = Utc::now();
        let entries = self.entries(user, path).await?;
        Ok(entries
            .iter()
            .map(|e| list_line(e, &display_name(&e.attr.name), now, self.shared.timezone))
            .collect())
    }
}

impl QumuloStorage {
    /// A listing streamed page by page (see [`StorageBackend::listing`] and
    /// [`Self::start_listing`]). The first page is read before anything is sent, so a missing
    /// directory gets its error reply. Later pages are read ahead while earlier ones are sent;
    /// a failure midway ends the stream with a read error (the transfer fails with 451).
    async fn stream_listing(
        &self,
        user: &User,
        path: &Path,
        format: ListingFormat,
        argument: Option<&str>,
    ) -> Result<Listing> {
        // MLSD lists a directory (RFC 3659 7.2.1); LIST and NLST expand wildcards.
        let mlsd = format == ListingFormat::Mlsd;
        let start = self.start_listing(user, path, !mlsd).await?;
        // NLST names are given as the client can pass them back: `NLST dir` lists `dir/name`,
        // `NLST dir/*.txt` and `NLST dir/f` `dir/f`, an NLST without an argument bare names.
        let given = argument.filter(|arg| format == ListingFormat::Nlst && *arg != ".");
        let prefix = match (&start, given) {
            (_, None) => String::new(),
            (Start::Dir { .. }, Some(arg)) if arg.ends_with('/') => arg.to_string(),
            (Start::Dir { .. }, Some(arg)) => format!("{arg}/"),
            (_, Some(arg)) => arg.rfind('/').map_or("", |i| &arg[..=i]).to_string(),
        };
        match &start {
            Start::One(_) if mlsd => {
                return Err(failure(
                    Ftp::ArgumentNotAllowed,
                    path,
                    "not a directory (MLSD lists directories; MLST describes a file)",
                ));
            }
            Start::Matches { first, .. } if first.is_empty() && format == ListingFormat::Nlst => {
                return Err(failure(
                    Ftp::PermanentFileNotAvailable,
                    path,
                    "no such file or directory",
                ));
            }
            _ => {}
        }
        let (first, mut pages, pattern) = start.parts();
        let lines = Lines {
            shared: self.shared.clone(),
            session: user.session.clone(),
            uid: user.uid,
            format,
            now: Utc::now(),
            facts: self.facts.get(),
            prefix,
        };
        let (tx, rx) = mpsc::channel(PAGES_AHEAD);
        let shown = path.display().to_string();
        tokio::spawn(async move {
            let mut page = Some(first);
            while let Some(attrs) = page.take() {
                if tx.send(Ok(lines.page(attrs).await)).await.is_err() {
                    return; // the transfer ended (client gone, ABOR)
                }
                let Some(pages) = pages.as_mut() else {
                    return; // a file, listed as itself, or no match
                };
                match pages.next(&lines.session).await {
                    Ok(next) => page = next.map(|attrs| listed(pattern.as_ref(), attrs)),
                    Err(e) => {
                        // The reply says what failed in the gateway's words: the cluster's
                        // description names the real cluster path.
                        let what = super::errors::reply(e.kind()).1;
                        let msg = format!("{shown}: listing failed midway: {what}");
                        tracing::warn!(path = shown, error = %e, "listing failed midway");
                        let _ = tx.send(Err(io::Error::other(msg))).await;
                    }
                }
            }
        });
        Ok(Box::new(StreamReader::new(ReceiverStream::new(rx))))
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

/// How a listing starts (see [`QumuloStorage::start_listing`]).
enum Start {
    /// A directory: its first page and the pages after it.
    Dir { first: Vec<FileAttr>, pages: Pages },
    /// A file (or anything but a directory), listed as itself.
    One(FileAttr),
    /// The entries of a directory a pattern matches: the first page with a match (empty when
    /// there is none) and the pages after it, if any.
    Matches {
        first: Vec<FileAttr>,
        pages: Option<Pages>,
        pattern: Pattern,
    },
}

impl Start {
    /// The first entries, the pages after them, and the pattern they are filtered by.
    fn parts(self) -> (Vec<FileAttr>, Option<Pages>, Option<Pattern>) {
        match self {
            Start::Dir { first, pages } => (first, Some(pages), None),
            Start::One(attr) => (vec![attr], None, None),
            Start::Matches {
                first,
                pages,
                pattern,
            } => (first, pages, Some(pattern)),
        }
    }
}

/// The last name of `path` as a pattern, when it holds a wildcard (`*`, `?`, `[`) and is a
/// valid pattern.
fn pattern(path: &Path) -> Option<Pattern> {
    let name = path.file_name()?.to_str()?;
    if !name.contains(['*', '?', '[']) {
        return None;
    }
    Pattern::new(name).ok()
}

/// The entries of a later page of a listing that are shown: those `pattern` matches, or,
/// without one, all but uploads' temporary files.
fn listed(pattern: Option<&Pattern>, attrs: Vec<FileAttr>) -> Vec<FileAttr> {
    match pattern {
        Some(pattern) => matching(pattern, attrs),
        None => without_temp(attrs),
    }
}

/// The entries of a page whose names `pattern` matches, as a shell matches them: `*` and `?`
/// match no leading dot, and never an upload's temporary file.
fn matching(pattern: &Pattern, mut attrs: Vec<FileAttr>) -> Vec<FileAttr> {
    const SHELL: MatchOptions = MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    attrs.retain(|a| !is_temp_name(&a.name) && pattern.matches_with(&a.name, SHELL));
    attrs
}

/// A listing entry: the attributes with owner and group names, the `perm` fact, and the
/// facts MLST shows.
async fn entry(
    shared: &Shared,
    session: &Session,
    uid: u64,
    attr: FileAttr,
    shown: Facts,
) -> Entry {
    let owner = shared.names.name(session, &attr.owner_details).await;
    let group = shared.names.name(session, &attr.group_details).await;
    let perm = perm_fact(&attr, uid);
    Entry {
        attr,
        owner,
        group,
        perm,
        shown,
    }
}

/// A page of a directory without the temporary files of uploads in progress.
fn without_temp(mut attrs: Vec<FileAttr>) -> Vec<FileAttr> {
    attrs.retain(|a| !is_temp_name(&a.name));
    attrs
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
                format!(
                    "the restart offset {offset} is past the end of the file ({} bytes)",
                    attr.size
                ),
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

/// Formats the pages of a streamed listing.
struct Lines {
    shared: Arc<Shared>,
    session: Arc<Session>,
    uid: u64,
    format: ListingFormat,
    /// The time LIST dates are shown against (the six-month rule).
    now: chrono::DateTime<Utc>,
    /// The facts MLSD shows.
    facts: Facts,
    /// What NLST shows before each name (the directory as the client named it).
    prefix: String,
}

impl Lines {
    async fn entry(&self, attr: FileAttr) -> Entry {
        entry(&self.shared, &self.session, self.uid, attr, self.facts).await
    }

    /// The lines of one page, each ending in CRLF.
    async fn page(&self, attrs: Vec<FileAttr>) -> Bytes {
        let mut out = String::with_capacity(attrs.len() * 96);
        for attr in attrs {
            let name = display_name(&attr.name);
            match self.format {
                ListingFormat::Nlst => {
                    out.push_str(&display_name(&self.prefix));
                    out.push_str(&name);
                }
                ListingFormat::List => {
                    let e = self.entry(attr).await;
                    out.push_str(&list_line(&e, &name, self.now, self.shared.timezone));
                }
                ListingFormat::Mlsd => {
                    let e = self.entry(attr).await;
                    out.push_str(&facts(&e, self.facts));
                    out.push(' ');
                    out.push_str(&name);
                }
            }
            out.push_str("\r\n");
        }
        Bytes::from(out)
    }
}

/// The cluster path of an FTP path for `user`.
pub(super) fn cluster_path(user: &User, path: &Path) -> Result<String> {
    to_cluster(&user.root, path).map_err(|e| bad_path(path, e))
}

/// The text of a failure, for the log: the back-end's description when it gave one.
pub(super) fn reason(e: &FtpError) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string)
}

/// One data transfer: counted while it runs, logged as one event when it ends (like an
/// xferlog line: user, path, direction, offset, bytes, duration, result).
struct Transfer<'a> {
    activity: &'a crate::state::Stats,
    user: &'a str,
    client: std::net::IpAddr,
    path: &'a Path,
    direction: &'static str,
    offset: u64,
    started: std::time::Instant,
    /// Logged by [`Transfer::finish`]; a transfer dropped before (ABOR, the session ended) is
    /// logged when dropped.
    logged: bool,
}

impl<'a> Transfer<'a> {
    fn start(
        shared: &'a Shared,
        user: &'a User,
        path: &'a Path,
        direction: &'static str,
        offset: u64,
    ) -> Self {
        shared
            .activity
            .transfers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            activity: &shared.activity,
            user: &user.name,
            client: user.client,
            path,
            direction,
            offset,
            started: std::time::Instant::now(),
            logged: false,
        }
    }

    fn duration_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Logs the transfer: at notice level when it worked, the user asked for something the
    /// cluster refused, or the client broke the transfer off; at warning level when the
    /// cluster failed.
    fn finish(mut self, result: &Result<u64>) {
        self.logged = true;
        let duration_ms = self.duration_ms();
        let (user, client, direction, offset) =
            (self.user, self.client, self.direction, self.offset);
        let path = self.path.display();
        match result {
            Ok(bytes) => tracing::info!(
                user, %client, %path, direction, offset, bytes, duration_ms, result = "ok",
                "transfer {direction} {path} {bytes} bytes"
            ),
            Err(e) if e.kind() == Ftp::ConnectionClosed => {
                let reason = reason(e);
                tracing::info!(
                    user, %client, %path, direction, offset, duration_ms, result = "aborted",
                    error = %reason, "transfer {direction} {path} aborted"
                );
            }
            Err(e) => {
                let reason = reason(e);
                if e.kind() == Ftp::LocalError {
                    tracing::warn!(
                        user, %client, %path, direction, offset, duration_ms, result = "failed",
                        error = %reason, "transfer {direction} {path} failed"
                    );
                } else {
                    tracing::info!(
                        user, %client, %path, direction, offset, duration_ms, result = "refused",
                        error = %reason, "transfer {direction} {path} refused"
                    );
                }
            }
        }
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        self.activity
            .transfers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if !self.logged {
            let duration_ms = self.duration_ms();
            let (user, client, direction, offset) =
                (self.user, self.client, self.direction, self.offset);
            let path = self.path.display();
            tracing::info!(
                user, %client, %path, direction, offset, duration_ms, result = "aborted",
                error = "the transfer was cancelled", "transfer {direction} {path} aborted"
            );
        }
    }
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
            "the root directory cannot be changed",
        )),
    }
}

/// A name as listed: CR and LF could inject lines into a listing, so they show as `?`.
pub(crate) fn display_name(name: &str) -> String {
    name.replace(['\r', '\n'], "?")
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
            let (mut output, tally) = Watched::writer(output, timeout);
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
        let path = path.as_ref();
        let transfer = Transfer::start(&self.shared, user, path, "upload", start_pos);
        let result = upload(self, user, input, path, start_pos).await;
        transfer.finish(&result);
        result
    }

    async fn del<P: AsRef<Path> + Send + Debug>(&self, user: &User, path: P) -> Result<()> {
        let path = path.as_ref();
        let (attr, reference) = attr_of(user, path).await?;
        if attr.is_dir() {
            return Err(failure(
                Ftp::PermanentFileNotAvailable,
                path,
                "is a directory (use RMD)",
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
                "not a directory",
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
                "not a directory",
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

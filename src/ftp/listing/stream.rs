//! The streamed listing: LIST, NLST and MLSD read from the cluster page by page and sent as
//! they come, wildcards in LIST and NLST arguments, and the whole listing at once for STAT.
//! The lines themselves are formatted by [`super`].
//!
//! Used by [`crate::ftp::storage`] (and the fuzzing entry points, for the lines).

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use glob::{MatchOptions, Pattern};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::StreamReader;
use unftp_core::storage::{ErrorKind as Ftp, Listing, ListingFormat, Result};

use super::{Entry, Facts, display_name, facts, list_line, perm_fact};
use crate::ftp::confine;
use crate::ftp::errors::{cluster, failure, refusal};
use crate::ftp::storage::{QumuloStorage, Shared, cluster_path};
use crate::ftp::upload::is_temp_name;
use crate::ftp::user::User;
use crate::qumulo::{ErrorKind, FileAttr, Pages, Session};

/// Entries asked for per listing page.
const PAGE_SIZE: usize = 1000;
/// Formatted listing pages read ahead of the data connection: the next page is asked for
/// while one is being sent.
const PAGES_AHEAD: usize = 2;

impl QumuloStorage {
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
    pub(in crate::ftp) async fn entries(&self, user: &User, path: &Path) -> Result<Vec<Entry>> {
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

    pub(in crate::ftp) async fn list_lines(&self, user: &User, path: &Path) -> Result<Vec<String>> {
        let now = Utc::now();
        let entries = self.entries(user, path).await?;
        Ok(entries
            .iter()
            .map(|e| list_line(e, &display_name(&e.attr.name), now, self.shared.timezone))
            .collect())
    }
}

impl QumuloStorage {
    /// A listing streamed page by page (see [`unftp_core::storage::StorageBackend::listing`] and
    /// [`Self::start_listing`]). The first page is read before anything is sent, so a missing
    /// directory gets its error reply. Later pages are read ahead while earlier ones are sent;
    /// a failure midway ends the stream with a read error (the transfer fails with 451).
    pub(in crate::ftp) async fn stream_listing(
        &self,
        user: &User,
        path: &Path,
        format: ListingFormat,
        argument: Option<&str>,
    ) -> Result<Listing> {
        // MLSD lists a directory (RFC 3659 7.2.1); LIST and NLST expand wildcards.
        let mlsd = format == ListingFormat::Mlsd;
        let start = self.start_listing(user, path, !mlsd).await?;
        let prefix = nlst_prefix(format, matches!(start, Start::Dir { .. }), argument);
        match &start {
            Start::One(_) if mlsd => {
                return Err(failure(
                    Ftp::ArgumentNotAllowed,
                    path,
                    refusal::MLSD_OF_A_FILE,
                ));
            }
            Start::Matches { first, .. } if first.is_empty() && format == ListingFormat::Nlst => {
                return Err(failure(
                    Ftp::PermanentFileNotAvailable,
                    path,
                    refusal::NO_MATCH,
                ));
            }
            _ => {}
        }
        let (first, mut pages, pattern) = start.parts();
        let lines = Lines {
            shared: self.shared.clone(),
            session: user.session.clone(),
            uid: user.uid,
            form: LineFormat {
                format,
                now: Utc::now(),
                timezone: self.shared.timezone,
                facts: self.facts.get(),
                prefix,
            },
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
                        let what = crate::ftp::errors::reply(e.kind()).1;
                        let msg = refusal::listing_failed_midway(&shown, what);
                        tracing::warn!(path = shown, error = %e, "listing failed midway");
                        let _ = tx.send(Err(io::Error::other(msg))).await;
                    }
                }
            }
        });
        Ok(Box::new(StreamReader::new(ReceiverStream::new(rx))))
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
pub(in crate::ftp) async fn entry(
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

/// What NLST shows before each name: names are given as the client can pass them back.
/// `NLST dir` lists `dir/name`, `NLST dir/*.txt` and `NLST dir/f` `dir/f`, an NLST without an
/// argument (or with `.`) bare names. `dir`: whether the listing is a directory's (not a file
/// listed as itself, nor the matches of a pattern). Other formats show bare names.
pub(in crate::ftp) fn nlst_prefix(
    format: ListingFormat,
    dir: bool,
    argument: Option<&str>,
) -> String {
    let given = argument.filter(|arg| format == ListingFormat::Nlst && *arg != ".");
    match (dir, given) {
        (_, None) => String::new(),
        (true, Some(arg)) if arg.ends_with('/') => arg.to_string(),
        (true, Some(arg)) => format!("{arg}/"),
        (false, Some(arg)) => arg.rfind('/').map_or("", |i| &arg[..=i]).to_string(),
    }
}

/// How the lines of one listing look.
#[derive(Debug)]
pub(in crate::ftp) struct LineFormat {
    pub(in crate::ftp) format: ListingFormat,
    /// The time LIST dates are shown against (the six-month rule).
    pub(in crate::ftp) now: DateTime<Utc>,
    /// The time zone of LIST dates.
    pub(in crate::ftp) timezone: Tz,
    /// The facts MLSD shows.
    pub(in crate::ftp) facts: Facts,
    /// What NLST shows before each name (see [`nlst_prefix`]).
    pub(in crate::ftp) prefix: String,
}

impl LineFormat {
    /// Appends the line of the entry called `name`, ending in CRLF, to `out`. LIST and MLSD
    /// show its `entry`; NLST, the name only, needs none (and is given none, so that its
    /// owner and group are not looked up).
    pub(in crate::ftp) fn push(&self, out: &mut String, name: &str, entry: Option<&Entry>) {
        let name = display_name(name);
        match (self.format, entry) {
            (ListingFormat::List, Some(e)) => {
                out.push_str(&list_line(e, &name, self.now, self.timezone));
            }
            (ListingFormat::Mlsd, Some(e)) => {
                out.push_str(&facts(e, self.facts));
                out.push(' ');
                out.push_str(&name);
            }
            _ => {
                out.push_str(&display_name(&self.prefix));
                out.push_str(&name);
            }
        }
        out.push_str("\r\n");
    }
}

/// Formats the pages of a streamed listing.
struct Lines {
    shared: Arc<Shared>,
    session: Arc<Session>,
    uid: u64,
    form: LineFormat,
}

impl Lines {
    async fn entry(&self, attr: FileAttr) -> Entry {
        entry(&self.shared, &self.session, self.uid, attr, self.form.facts).await
    }

    /// The lines of one page, each ending in CRLF.
    async fn page(&self, attrs: Vec<FileAttr>) -> Bytes {
        let mut out = String::with_capacity(attrs.len() * 96);
        for attr in attrs {
            if self.form.format == ListingFormat::Nlst {
                self.form.push(&mut out, &attr.name, None);
            } else {
                let e = self.entry(attr).await;
                self.form.push(&mut out, &e.attr.name, Some(&e));
            }
        }
        Bytes::from(out)
    }
}

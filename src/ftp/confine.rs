//! `chroot-users` on the cluster. [`super::path`] keeps `..` from climbing out of a home, but
//! a symlink in the home (made over NFS, SMB or the REST API) may point anywhere, and a cluster
//! that follows symlinks in the middle of a path would take `/esc/etc/passwd` out of the home.
//! So, for a confined user, what a command acts on is first checked where the cluster says it
//! is: the canonical `path` of the entry's attributes (or of the directory listed, or of the
//! directory a name is made in) must be the home or below it. The command then names the entry
//! by its id, or by that canonical path where the API takes only paths (RENAME's source,
//! uploads), so a symlink cannot be swapped in between the check and the action. Outside the
//! home is refused with 550 and words that name only the FTP path; the log has the real one.
//!
//! A cluster that does not follow such symlinks refuses the path itself; the check then costs
//! nothing more than the call it rides on. Symlinks within the home that stay in it work as
//! the cluster resolves them. Users who are not confined (their root is `/`) skip all of this:
//! every function here answers with the lexical cluster path and makes no call.

use std::path::Path;

use unftp_core::storage::{ErrorKind as Ftp, Result};

use super::errors::{cluster, failure, refusal};
use super::path::{inside, split, trimmed};
use super::storage::{cluster_path, dir_and_name};
use super::user::User;
use crate::qumulo::FileAttr;

/// A confined user's home as the cluster names it (canonical), learnt on first use.
#[derive(Debug, Default)]
pub struct Home(tokio::sync::OnceCell<String>);

/// Whether `user` is confined to a home below the cluster's root.
pub(super) fn confined(user: &User) -> bool {
    user.root != "/"
}

/// The canonical path of the user's home (no trailing `/`): asked of the cluster once per
/// session. While it cannot be read (a home that does not exist yet), the configured path.
async fn home(user: &User) -> String {
    if let Some(home) = user.home.0.get() {
        return home.clone();
    }
    match user.session.get_attr(&user.root).await {
        Ok(attr) => {
            let home = trimmed(&attr.path).to_string();
            let _ = user.home.0.set(home.clone());
            home
        }
        Err(_) => user.root.clone(),
    }
}

/// The refusal of a path that leads out of the home through a symlink, logged with the
/// cluster path it led to.
fn outside(user: &User, path: &Path, reached: &str) -> unftp_core::storage::Error {
    tracing::warn!(
        user = %user.name, client = %user.client, path = %path.display(), cluster_path = reached,
        "refused: the path leads outside the home directory through a symbolic link"
    );
    failure(Ftp::PermissionDenied, path, refusal::OUTSIDE_THE_HOME)
}

/// Checks that `attr`, read from the cluster path `cp` (the FTP `path`), is in the user's home;
/// returns its canonical cluster path. A file with several hard links may be reported under
/// another of its names, so for one reported outside, the directory it was named in decides.
pub(super) async fn check(user: &User, path: &Path, cp: &str, attr: &FileAttr) -> Result<String> {
    if !confined(user) {
        return Ok(cp.to_string());
    }
    let home = home(user).await;
    if inside(&home, &attr.path) {
        return Ok(trimmed(&attr.path).to_string());
    }
    if !attr.is_dir()
        && attr.num_links > 1
        && let Some((dir, name)) = split(cp)
    {
        let parent = (user.session.get_attr(dir).await).map_err(|e| cluster(path, &e))?;
        if inside(&home, &parent.path) {
            return Ok(format!("{}/{name}", trimmed(&parent.path)));
        }
    }
    Err(outside(user, path, &attr.path))
}

/// Checks the canonical path of a directory listed at cluster path `cp` (the FTP `path`), as
/// its first page gave it; when the cluster did not give it, its attributes are read.
pub(super) async fn check_listed(
    user: &User,
    path: &Path,
    cp: &str,
    listed: Option<&str>,
) -> Result<()> {
    if !confined(user) {
        return Ok(());
    }
    match listed {
        Some(listed) if inside(&home(user).await, listed) => Ok(()),
        Some(listed) => Err(outside(user, path, listed)),
        None => {
            let attr = (user.session.get_attr(cp).await).map_err(|e| cluster(path, &e))?;
            check(user, path, cp, &attr).await.map(drop)
        }
    }
}

/// The reference of an entry whose attributes `attr` were read at `cp` and checked: its id for
/// a confined user, `cp` otherwise.
pub(super) fn reference(user: &User, cp: &str, attr: &FileAttr) -> String {
    if confined(user) {
        attr.id.to_string()
    } else {
        cp.to_string()
    }
}

/// The reference of the existing entry at FTP `path`: the cluster path, or for a confined
/// user, the id of an entry checked to be in the home (one attribute call).
pub(super) async fn existing(user: &User, path: &Path) -> Result<String> {
    let cp = cluster_path(user, path)?;
    if !confined(user) {
        return Ok(cp);
    }
    let attr = (user.session.get_attr(&cp).await).map_err(|e| cluster(path, &e))?;
    check(user, path, &cp, &attr).await?;
    Ok(attr.id.to_string())
}

/// The canonical cluster path of the existing entry at FTP `path` (the lexical one for a user
/// who is not confined), for calls that take a path (RENAME's source).
pub(super) async fn canonical(user: &User, path: &Path) -> Result<String> {
    let cp = cluster_path(user, path)?;
    if !confined(user) {
        return Ok(cp);
    }
    let attr = (user.session.get_attr(&cp).await).map_err(|e| cluster(path, &e))?;
    check(user, path, &cp, &attr).await
}

/// The directory an entry at FTP `path` is to be made in (or renamed into), checked to be in
/// the home, and the entry's name: the directory as its id for a confined user (one attribute
/// call), as its cluster path otherwise. The root cannot be made or renamed.
pub(super) async fn parent(user: &User, path: &Path) -> Result<(String, String)> {
    let (dir, attr, name) = parent_attr(user, path).await?;
    Ok(match attr {
        Some(attr) => (attr.id.to_string(), name),
        None => (dir, name),
    })
}

/// The cluster path an entry at FTP `path` is made or written at: for a confined user, its
/// name in the canonical path of its directory, checked to be in the home (one attribute call).
pub(super) async fn target(user: &User, path: &Path) -> Result<String> {
    match parent_attr(user, path).await? {
        (_, Some(attr), name) => Ok(format!(
            "{}/{name}",
            trimmed(&attr.path).trim_end_matches('/')
        )),
        (dir, None, name) => Ok(format!("{}/{name}", dir.trim_end_matches('/'))),
    }
}

/// The cluster path of the directory of the entry at FTP `path`, the entry's name, and for a
/// confined user the directory's attributes, checked.
async fn parent_attr(user: &User, path: &Path) -> Result<(String, Option<FileAttr>, String)> {
    let cp = cluster_path(user, path)?;
    let (dir, name) = dir_and_name(user, &cp, path)?;
    let (dir, name) = (dir.to_string(), name.to_string());
    if !confined(user) {
        return Ok((dir, None, name));
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let attr = (user.session.get_attr(&dir).await).map_err(|e| cluster(parent, &e))?;
    check(user, parent, &dir, &attr).await?;
    if !attr.is_dir() {
        return Err(failure(
            Ftp::PermanentDirectoryNotAvailable,
            parent,
            refusal::NOT_A_DIRECTORY,
        ));
    }
    Ok((dir, Some(attr), name))
}

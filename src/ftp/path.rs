//! FTP paths to cluster paths. libunftp hands the storage a path made of the session's working
//! directory and the client's argument; here it is resolved lexically (`.`, `..` never above the
//! user's root) and placed under the user's root on the cluster; [`inside`] tells whether a
//! canonical cluster path is in a home. Pure, no I/O.

use std::path::{Component, Path};

/// A path that cannot name anything on the cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not valid UTF-8 (the cluster's names are Unicode).
    #[error("the name is not valid UTF-8")]
    NotUtf8,
    /// A name containing NUL, CR or LF.
    #[error("names may not contain NUL, CR or LF")]
    BadCharacter,
}

/// The cluster path for `ftp` (absolute or relative to `/`) under the user's `root`
/// (`/` or a home directory such as `/home/alice`).
pub fn to_cluster(root: &str, ftp: &Path) -> Result<String, PathError> {
    let mut parts: Vec<&str> = Vec::new();
    for component in ftp.components() {
        match component {
            Component::Normal(name) => {
                let name = name.to_str().ok_or(PathError::NotUtf8)?;
                if name.contains(['\0', '\r', '\n']) {
                    return Err(PathError::BadCharacter);
                }
                parts.push(name);
            }
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let root = root.trim_end_matches('/');
    if parts.is_empty() {
        return Ok(if root.is_empty() {
            "/".to_string()
        } else {
            root.to_string()
        });
    }
    Ok(format!("{root}/{}", parts.join("/")))
}

/// Splits a cluster path into its directory and last name; `None` for the root.
pub fn split(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.trim_end_matches('/');
    let (dir, name) = trimmed.rsplit_once('/')?;
    if name.is_empty() {
        return None;
    }
    Some((if dir.is_empty() { "/" } else { dir }, name))
}

/// A cluster path without its trailing `/` (directories' paths end in one), `/` for the root.
pub fn trimmed(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    }
}

/// Whether the cluster path `path` is `home` or below it (both canonical; a trailing `/` on
/// either is ignored). `/home/alice2` is not below `/home/alice`.
pub fn inside(home: &str, path: &str) -> bool {
    let (home, path) = (trimmed(home), trimmed(path));
    home == "/"
        || path == home
        || path
            .strip_prefix(home)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_under_the_root() {
        let cases = [
            ("/", "/", "/"),
            ("/", "/a/b", "/a/b"),
            ("/", "/a/../b", "/b"),
            ("/", "/../../etc/passwd", "/etc/passwd"),
            ("/", "a/./b/", "/a/b"),
            ("/home/alice", "/", "/home/alice"),
            ("/home/alice/", "/../../..", "/home/alice"),
            ("/home/alice", "/x/../../y", "/home/alice/y"),
            ("/", "/sp ace/%#?&/é 中", "/sp ace/%#?&/é 中"),
        ];
        for (root, ftp, want) in cases {
            assert_eq!(
                to_cluster(root, Path::new(ftp)).unwrap(),
                want,
                "{root} {ftp}"
            );
        }
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            to_cluster("/", Path::new("/a\nb")),
            Err(PathError::BadCharacter)
        );
        assert_eq!(
            to_cluster("/", Path::new("/a\rb")),
            Err(PathError::BadCharacter)
        );
    }

    #[test]
    fn inside_compares_whole_names() {
        assert!(inside("/home/alice", "/home/alice/"));
        assert!(inside("/home/alice/", "/home/alice"));
        assert!(inside("/home/alice", "/home/alice/docs/f.txt"));
        assert!(inside("/", "/etc/passwd"));
        assert!(!inside("/home/alice", "/home/alice2/f"));
        assert!(!inside("/home/alice", "/home/"));
        assert!(!inside("/home/alice", "/"));
        assert!(!inside("/home/alice", "/etc/passwd"));
        assert_eq!(trimmed("/a/b/"), "/a/b");
        assert_eq!(trimmed("/"), "/");
    }

    #[test]
    fn split_finds_parent_and_name() {
        assert_eq!(split("/a/b"), Some(("/a", "b")));
        assert_eq!(split("/a"), Some(("/", "a")));
        assert_eq!(split("/a/b/"), Some(("/a", "b")));
        assert_eq!(split("/"), None);
    }
}

//! The simulated file system, backed by a real directory so gigabytes stream through without
//! being held in memory.
//!
//! Ids are the backing file system's inode numbers, so they are stable across renames and
//! restarts; the root answers as `"2"` as on Qumulo (an object that really has inode 2 takes the
//! root's inode number in exchange). An index from inode to (parent inode, name) answers id
//! references; it is filled as objects are met and rebuilt by a walk when it misses. Mount points
//! below the data directory are not supported: inode numbers are only unique on one device.
//!
//! Path references are resolved component by component, without the OS following links:
//! `.` and `..` are resolved logically (never above the root). A symlink met before the last
//! component is handled as [`PathSymlinks`] says: by default it is followed within the
//! cluster's namespace (an absolute target starts again at the cluster root), so nothing
//! outside the data directory can be reached; or the reference is refused with
//! `fs_not_a_directory_error`, as a cluster that leaves symlink targets to its NFS and SMB
//! clients would. A symlink that is the last component is never followed (reading it returns
//! its target). Either way the `path` of what a reference reaches is its canonical path: the
//! names from the root to it, without symlinks.
//!
//! Permissions are the objects' mode bits; ACLs are kept beside them (see `acl`).

mod acl;
mod attrs;
mod index;
mod ops;
mod patch;

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use acl::{Ace, Acl};
pub use attrs::Obj;
pub use ops::{CreateRequest, Listing, ReadPlan};
pub use patch::AttrPatch;

use super::error::{ApiError, ApiResult, ErrorClass};
use super::users::{Directory, FIRST_USER_ID, USERS_GROUP, User};

/// The id the root directory answers to.
pub const ROOT_ID: u64 = 2;
/// Mode of the root of a new data directory.
const ROOT_MODE: u32 = 0o777;
/// How many directories' sorted names are kept.
const LISTINGS_CACHED: usize = 8;
/// A directory's sorted names: (inode, modification time, names).
type CachedListing = (u64, std::time::SystemTime, Arc<Vec<String>>);

/// How old a directory's modification time must be before its listing is cached.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(1);
/// How many symlinks one path resolution may follow before giving up (as Linux's ELOOP).
const MAX_LINKS: usize = 40;

/// What a path reference does with a symlink met before its last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PathSymlinks {
    /// Followed within the cluster's namespace, as a POSIX file system does.
    #[default]
    Follow,
    /// Not followed: the reference fails with `fs_not_a_directory_error` (the symlink is not a
    /// directory). The SDK's `fs_create_symlink` help says symlink targets are interpreted by
    /// clients, not by Qumulo's file system.
    Refuse,
}

/// Permission bits asked of an object.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Read data or list entries.
    Read = 4,
    /// Write data, or create and remove entries.
    Write = 2,
    /// Search a directory.
    Search = 1,
    /// Add or remove entries of a directory: write and search.
    Modify = 3,
}

/// The file system: the data directory plus the id index.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    root_ino: u64,
    /// The users, to name owners in attributes.
    users: Arc<Directory>,
    /// inode → (parent inode, name). A std mutex: never held across an await.
    index: Mutex<HashMap<u64, (u64, String)>>,
    /// Owners of symlinks (`user.` extended attributes cannot be set on links): inode → ids.
    link_owners: Mutex<HashMap<u64, (u64, u64)>>,
    /// The sorted names of the directories listed last, so the pages of a large directory
    /// do not each read and sort it again: (inode, modification time, names), newest first.
    listings: Mutex<Vec<CachedListing>>,
    /// One lock per file being written: data writes to a file happen one after the other,
    /// and a write abandoned by its client finishes before the next one starts.
    write_locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    /// What path references do with symlinks before their last component.
    path_symlinks: PathSymlinks,
}

impl Store {
    /// Opens the data directory `root` (created if missing).
    pub fn open(root: &Path, users: Arc<Directory>) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let meta = std::fs::metadata(&root)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        if attrs::read_xattr(&root, attrs::XATTR_OWNER).is_none() {
            // A data directory the simulator has not used yet becomes a fresh cluster's root:
            // owned by the first user (admin), group Users, mode 0777 so every user can create
            // entries in it (inferred: the mode of a new Qumulo cluster's root).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(ROOT_MODE))?;
            attrs::write_xattr(&root, attrs::XATTR_OWNER, FIRST_USER_ID)?;
            attrs::write_xattr(&root, attrs::XATTR_GROUP, USERS_GROUP)?;
        }
        Ok(Self {
            root,
            root_ino: meta.ino(),
            users,
            index: Mutex::new(HashMap::new()),
            link_owners: Mutex::new(HashMap::new()),
            write_locks: Mutex::new(HashMap::new()),
            listings: Mutex::new(Vec::new()),
            path_symlinks: PathSymlinks::default(),
        })
    }

    /// The store with path references treating symlinks before their last component as
    /// `mode` says.
    pub fn with_path_symlinks(mut self, mode: PathSymlinks) -> Self {
        self.path_symlinks = mode;
        self
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The users known to the cluster.
    pub fn users(&self) -> &Directory {
        &self.users
    }

    /// The API id of an inode (an involution: also maps ids back to inodes).
    pub fn id_of(&self, ino: u64) -> u64 {
        if ino == self.root_ino {
            ROOT_ID
        } else if ino == ROOT_ID {
            self.root_ino
        } else {
            ino
        }
    }

    /// Whether `user` has `access` on `obj`: owner bits for the owner, group bits for members
    /// of the object's group, other bits for the rest; administrators pass every check.
    pub fn allowed(&self, user: &User, obj: &Obj, access: Access) -> bool {
        if user.admin {
            return true;
        }
        let mode = obj.meta.mode();
        let bits = if obj.owner == user.id {
            mode >> 6
        } else if user.groups().contains(&obj.group) {
            mode >> 3
        } else {
            mode
        };
        let want = access as u32;
        bits & want == want
    }

    /// Fails with `fs_access_denied_error` unless `user` has `access` on `obj`.
    pub fn check(&self, user: &User, obj: &Obj, access: Access) -> ApiResult<()> {
        if self.allowed(user, obj, access) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorClass::AccessDenied,
                format!("{} may not access {}", user.name, obj.path),
            ))
        }
    }

    /// Resolves a reference: a decimal id, or an absolute path (a trailing `/` is allowed).
    /// Path references need search permission on every directory passed through.
    pub fn resolve(&self, reference: &str, user: &User) -> ApiResult<Obj> {
        if reference.starts_with('/') {
            self.resolve_path(reference, user)
        } else if !reference.is_empty() && reference.bytes().all(|b| b.is_ascii_digit()) {
            let id: u64 = reference.parse().map_err(|_| {
                ApiError::new(ErrorClass::NoSuchEntry, format!("No id {reference}"))
            })?;
            self.resolve_id(id)
        } else {
            Err(ApiError::new(
                ErrorClass::Decode,
                format!("Reference {reference:?} is neither an id nor an absolute path"),
            ))
        }
    }

    /// Resolves an absolute API path as described in the module docs.
    pub fn resolve_path(&self, path: &str, user: &User) -> ApiResult<Obj> {
        let mut pending: VecDeque<String> = components(path).map(String::from).collect();
        let mut dirs: Vec<Obj> = vec![self.load_root()?];
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            match name.as_str() {
                "." => continue,
                ".." => {
                    if dirs.len() > 1 {
                        dirs.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let parent = dirs.last().expect("the root is never popped");
            if !parent.meta.is_dir() {
                return Err(ApiError::new(
                    ErrorClass::NotADirectory,
                    format!("{} is not a directory", parent.path),
                ));
            }
            self.check(user, parent, Access::Search)?;
            let obj = self.load_child(parent, &name)?;
            if obj.meta.file_type().is_symlink() && !pending.is_empty() {
                if self.path_symlinks == PathSymlinks::Refuse {
                    return Err(ApiError::new(
                        ErrorClass::NotADirectory,
                        format!("{} is a symlink, not a directory", obj.path),
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(ApiError::new(
                        ErrorClass::InvalidArgument,
                        format!("Too many levels of symbolic links in {path}"),
                    ));
                }
                let target = std::fs::read_link(&obj.fs)
                    .map_err(|e| ApiError::io(&e, &obj.path))?
                    .to_string_lossy()
                    .into_owned();
                if target.starts_with('/') {
                    dirs.truncate(1);
                }
                for c in components(&target).rev() {
                    pending.push_front(c.to_string());
                }
                continue;
            }
            dirs.push(obj);
        }
        Ok(dirs.pop().expect("at least the root"))
    }

    /// The names in directory `dir`, sorted, from the cache while the directory is unchanged
    /// (its modification time moves with every entry added, removed or renamed). A listing is
    /// only cached once the directory's modification time is a second old: file systems
    /// stamp times from a coarse clock, so two changes within one tick can share a time.
    pub fn sorted_names(&self, dir: &Obj) -> ApiResult<Arc<Vec<String>>> {
        let (ino, mtime) = (
            dir.meta.ino(),
            dir.meta
                .modified()
                .map_err(|e| ApiError::io(&e, &dir.path))?,
        );
        let mut cache = self.listings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.iter().find(|(i, m, _)| *i == ino && *m == mtime) {
            return Ok(hit.2.clone());
        }
        drop(cache);
        let mut names: Vec<String> = std::fs::read_dir(&dir.fs)
            .map_err(|e| ApiError::io(&e, &dir.path))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort_unstable();
        let names = Arc::new(names);
        let settled = std::time::SystemTime::now()
            .duration_since(mtime)
            .is_ok_and(|age| age > SETTLED);
        if !settled {
            return Ok(names);
        }
        cache = self.listings.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(i, _, _)| *i != ino);
        cache.insert(0, (ino, mtime, names.clone()));
        cache.truncate(LISTINGS_CACHED);
        Ok(names)
    }

    /// The write lock of the file with inode `ino`.
    pub fn write_lock(&self, ino: u64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.write_locks.lock().unwrap_or_else(|p| p.into_inner());
        // Drop the locks nobody holds any more, so the map stays as small as the writes
        // in progress.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(ino).or_default().clone()
    }

    /// The backing path of an API path.
    pub fn fs_path(&self, api_path: &str) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(components(api_path));
        p
    }

    /// Loads the root directory.
    pub fn load_root(&self) -> ApiResult<Obj> {
        self.load(&self.root, "/")
    }

    /// Loads the entry `name` of directory `dir` (no link following) and indexes it.
    pub fn load_child(&self, dir: &Obj, name: &str) -> ApiResult<Obj> {
        let path = child_path(&dir.path, name);
        let obj = self.load(&dir.fs.join(name), &path)?;
        self.remember(obj.meta.ino(), dir.meta.ino(), name);
        Ok(obj)
    }
}

/// The non-empty components of an API path.
pub fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// The API path of `name` inside the directory at `dir`.
pub fn child_path(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
    }
}

/// Checks a new entry name as the cluster does.
pub fn validate_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ApiError::new(
            ErrorClass::InvalidName,
            format!("Invalid name {name:?}"),
        ));
    }
    if name.len() > 255 {
        return Err(ApiError::new(
            ErrorClass::NameSize,
            format!("Name of {} bytes is longer than 255", name.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

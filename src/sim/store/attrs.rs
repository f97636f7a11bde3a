//! One loaded object and its Qumulo attributes.
//!
//! Modes, sizes and times are the backing file's own. Owners and groups are the simulator's
//! local ids, kept in the extended attributes `user.qumulo.owner` and `user.qumulo.group` (and
//! for symlinks, which cannot carry `user.` attributes, in memory); an object with none belongs
//! to the first user (500) and the group `Users` (513), as files put into the data directory by
//! hand. A creation time set through the API is kept in `user.qumulo.creation_time`.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::super::error::{ApiError, ApiResult};
use super::super::users::{FIRST_USER_ID, USERS_GROUP, group_name};
use super::Store;

/// Extended attribute holding the owner's auth id.
pub(super) const XATTR_OWNER: &str = "user.qumulo.owner";
/// Extended attribute holding the group's auth id.
pub(super) const XATTR_GROUP: &str = "user.qumulo.group";
/// Extended attribute holding a creation time set through the API (nanoseconds since 1970).
pub(super) const XATTR_BTIME: &str = "user.qumulo.creation_time";
/// Qumulo's block size, for the `blocks` fields.
const BLOCK: u64 = 4096;

/// An object of the file system, as loaded for one request.
#[derive(Debug, Clone)]
pub struct Obj {
    /// The backing path.
    pub fs: PathBuf,
    /// The API path, `/` for the root, without a trailing slash otherwise.
    pub path: String,
    /// `lstat` of the backing path.
    pub meta: Metadata,
    /// Owner's auth id.
    pub owner: u64,
    /// Group's auth id.
    pub group: u64,
}

impl Obj {
    /// The entry name (empty for the root).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

/// Reads a decimal number stored in an extended attribute.
pub(super) fn read_xattr(path: &Path, name: &str) -> Option<u64> {
    let mut buf = [0u8; 32];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.parse().ok()
}

/// Stores a decimal number in an extended attribute.
pub(super) fn write_xattr(path: &Path, name: &str, value: u64) -> std::io::Result<()> {
    rustix::fs::lsetxattr(
        path,
        name,
        value.to_string().as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(std::io::Error::from)
}

/// Formats a time as Qumulo does: RFC 3339 in UTC with nine fraction digits.
pub fn format_time(secs: i64, nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Qumulo's name for a file type.
fn type_name(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "FS_FILE_TYPE_DIRECTORY"
    } else if t.is_symlink() {
        "FS_FILE_TYPE_SYMLINK"
    } else if t.is_fifo() {
        "FS_FILE_TYPE_UNIX_PIPE"
    } else if t.is_char_device() {
        "FS_FILE_TYPE_UNIX_CHARACTER_DEVICE"
    } else if t.is_block_device() {
        "FS_FILE_TYPE_UNIX_BLOCK_DEVICE"
    } else if t.is_socket() {
        "FS_FILE_TYPE_UNIX_SOCKET"
    } else {
        "FS_FILE_TYPE_FILE"
    }
}

impl Store {
    /// Loads the object at backing path `fs`, known to the API as `path`.
    pub fn load(&self, fs: &Path, path: &str) -> ApiResult<Obj> {
        let meta = std::fs::symlink_metadata(fs).map_err(|e| ApiError::io(&e, path))?;
        let (owner, group) = if meta.file_type().is_symlink() {
            let links = self.link_owners.lock().unwrap_or_else(|p| p.into_inner());
            links
                .get(&meta.ino())
                .copied()
                .unwrap_or((FIRST_USER_ID, USERS_GROUP))
        } else {
            (
                read_xattr(fs, XATTR_OWNER).unwrap_or(FIRST_USER_ID),
                read_xattr(fs, XATTR_GROUP).unwrap_or(USERS_GROUP),
            )
        };
        Ok(Obj {
            fs: fs.to_path_buf(),
            path: path.to_string(),
            meta,
            owner,
            group,
        })
    }

    /// Records the owner and group of a new or changed object.
    pub fn set_owner(&self, obj: &Obj, owner: u64, group: u64) -> ApiResult<()> {
        if obj.meta.file_type().is_symlink() {
            let mut links = self.link_owners.lock().unwrap_or_else(|p| p.into_inner());
            links.insert(obj.meta.ino(), (owner, group));
            return Ok(());
        }
        write_xattr(&obj.fs, XATTR_OWNER, owner)
            .and_then(|()| write_xattr(&obj.fs, XATTR_GROUP, group))
            .map_err(|e| ApiError::io(&e, &format!("{} (owner attributes)", obj.path)))
    }

    /// Qumulo's `api_files_attributes` object of `obj`, as JSON.
    pub fn attributes(&self, obj: &Obj) -> Value {
        serde_json::to_value(self.attrs(obj)).unwrap_or(Value::Null)
    }

    /// Qumulo's `api_files_attributes` object of `obj` (a listing serializes a page of them
    /// straight to its answer).
    pub fn attrs(&self, obj: &Obj) -> Attributes {
        let m = &obj.meta;
        let is_dir = m.is_dir();
        let id = self.id_of(m.ino()).to_string();
        let path = if is_dir && obj.path != "/" {
            format!("{}/", obj.path)
        } else {
            obj.path.clone()
        };
        let size = m.size();
        let datablocks = size.div_ceil(BLOCK);
        let owner_name = self
            .users
            .by_id(obj.owner)
            .map_or_else(|| obj.owner.to_string(), |u| u.name.clone());
        let group_name = group_name(obj.group).map_or_else(|| obj.group.to_string(), String::from);
        let btime = read_xattr(&obj.fs, XATTR_BTIME)
            .map(|ns| format_time((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64))
            .or_else(|| {
                m.created().ok().map(|t| {
                    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                    format_time(d.as_secs() as i64, i64::from(d.subsec_nanos()))
                })
            })
            .unwrap_or_else(|| format_time(m.ctime(), m.ctime_nsec()));
        let child_count = if is_dir {
            std::fs::read_dir(&obj.fs).map_or(0, |d| d.count())
        } else {
            0
        };
        let rdev = m.rdev();
        Attributes {
            path,
            name: obj.name().to_string(),
            num_links: m.nlink(),
            file_type: type_name(m),
            major_minor_numbers: MajorMinor {
                major: rustix::fs::major(rdev),
                minor: rustix::fs::minor(rdev),
            },
            symlink_target_type: "FS_FILE_TYPE_UNKNOWN",
            file_number: id.clone(),
            id,
            mode: format!("{:04o}", m.mode() & 0o7777),
            owner: obj.owner.to_string(),
            owner_details: IdDetails {
                id_type: "LOCAL_USER",
                id_value: owner_name,
            },
            group: obj.group.to_string(),
            group_details: IdDetails {
                id_type: "LOCAL_GROUP",
                id_value: group_name,
            },
            blocks: (datablocks + 1).to_string(),
            datablocks: datablocks.to_string(),
            metablocks: "1",
            size: size.to_string(),
            access_time: format_time(m.atime(), m.atime_nsec()),
            modification_time: format_time(m.mtime(), m.mtime_nsec()),
            change_time: format_time(m.ctime(), m.ctime_nsec()),
            creation_time: btime,
            child_count,
            extended_attributes: ExtendedAttributes::default(),
            directory_entry_hash_policy: "FS_DIRECTORY_HASH_VERSION_FOLDED",
            data_revision: (!is_dir).then(|| data_revision(m)),
            user_metadata_revision: "0",
        }
    }
}

/// Qumulo's `api_files_attributes`.
#[derive(Debug, Serialize)]
pub struct Attributes {
    path: String,
    name: String,
    num_links: u64,
    #[serde(rename = "type")]
    file_type: &'static str,
    major_minor_numbers: MajorMinor,
    symlink_target_type: &'static str,
    file_number: String,
    id: String,
    mode: String,
    owner: String,
    owner_details: IdDetails,
    group: String,
    group_details: IdDetails,
    blocks: String,
    datablocks: String,
    metablocks: &'static str,
    size: String,
    access_time: String,
    modification_time: String,
    change_time: String,
    creation_time: String,
    child_count: usize,
    extended_attributes: ExtendedAttributes,
    directory_entry_hash_policy: &'static str,
    /// `null` for a directory.
    data_revision: Option<String>,
    user_metadata_revision: &'static str,
}

#[derive(Debug, Serialize)]
struct MajorMinor {
    major: u32,
    minor: u32,
}

#[derive(Debug, Serialize)]
struct IdDetails {
    id_type: &'static str,
    id_value: String,
}

/// The SMB attributes, none of which the simulator sets.
#[derive(Debug, Default, Serialize)]
struct ExtendedAttributes {
    read_only: bool,
    hidden: bool,
    system: bool,
    archive: bool,
    temporary: bool,
    compressed: bool,
    not_content_indexed: bool,
    sparse_file: bool,
    offline: bool,
}

/// A revision that changes whenever the data does (size and modification time), also used as
/// the ETag of the file's data.
pub fn data_revision(m: &Metadata) -> String {
    format!("{}.{}.{}", m.size(), m.mtime(), m.mtime_nsec())
}

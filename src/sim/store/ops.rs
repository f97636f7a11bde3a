//! The operations of the file-system endpoints, each checking the caller's permissions.
//! All of them block on local I/O: the routes run them on tokio's blocking pool.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rustix::fs::{CWD, RenameFlags};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult, ErrorClass};
use super::super::users::{USERS_GROUP, User};
use super::attrs::{Attributes, data_revision, write_xattr};
use super::{Access, Obj, Store, child_path, components, validate_name};

/// Mode of a file created through the API (Qumulo's default for POSIX-style creation).
const NEW_FILE_MODE: u32 = 0o644;
/// Mode of a directory created through the API.
const NEW_DIR_MODE: u32 = 0o755;
/// Page size of a listing when the client gives no `limit`. The reference leaves the cluster's
/// default open; 1000 is what the SDK's own bulk readers ask for.
pub const DEFAULT_PAGE: usize = 1000;
/// The largest page the simulator returns ("the system may choose a smaller limit").
pub const MAX_PAGE: usize = 10_000;

/// Body of `POST /v1/files/{ref}/entries/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Name of the new entry in the directory.
    pub name: String,
    /// `CREATE_FILE`, `CREATE_DIRECTORY`, `CREATE_SYMLINK`, `CREATE_LINK` or `RENAME`.
    pub action: String,
    /// Symlink target, link source or rename source.
    pub old_path: Option<String>,
    /// RENAME onto an existing name replaces it.
    #[serde(default)]
    pub clobber: bool,
    /// Accepted for symlinks; the simulator reports the target type as unknown.
    pub symlink_target_type: Option<String>,
}

/// What a data read streams.
#[derive(Debug)]
pub enum ReadPlan {
    /// A regular file, positioned at the offset, with the number of bytes to send.
    File(File, u64),
    /// A symlink's target text.
    Bytes(Vec<u8>),
}

impl Store {
    /// Attributes of a reference.
    pub fn get_attributes(&self, user: &User, reference: &str) -> ApiResult<Value> {
        Ok(self.attributes(&self.resolve(reference, user)?))
    }

    /// One page of a directory listing, in name order, continuing after `after`.
    pub fn list(
        &self,
        user: &User,
        reference: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> ApiResult<Listing> {
        let dir = self.resolve(reference, user)?;
        if !dir.meta.is_dir() {
            return Err(ApiError::new(
                ErrorClass::NotADirectory,
                format!("{} is not a directory", dir.path),
            ));
        }
        self.check(user, &dir, Access::Read)?;
        let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let all = self.sorted_names(&dir)?;
        let total = all.len();
        let start = after.map_or(0, |a| all.partition_point(|n| n.as_str() <= a));
        let names = &all[start..(start + limit).min(total)];
        let more = start + limit < total;
        let files: Vec<Attributes> = names
            .iter()
            .filter_map(|n| self.load_child(&dir, n).ok())
            .map(|o| self.attrs(&o))
            .collect();
        let id = self.id_of(dir.meta.ino());
        let next = match names.last() {
            Some(last) if more => format!(
                "/v1/files/{id}/entries/?after={}&limit={limit}",
                utf8_percent_encode(last, NON_ALPHANUMERIC)
            ),
            _ => String::new(),
        };
        let path = if dir.path == "/" {
            "/".to_string()
        } else {
            format!("{}/", dir.path)
        };
        Ok(Listing {
            path,
            id: id.to_string(),
            child_count: total,
            files,
            paging: Paging { next },
        })
    }

    /// The directory at `reference` and the caller's right to add or remove entries in it.
    fn writable_dir(&self, user: &User, reference: &str) -> ApiResult<Obj> {
        let dir = self.resolve(reference, user)?;
        if !dir.meta.is_dir() {
            return Err(ApiError::new(
                ErrorClass::NotADirectory,
                format!("{} is not a directory", dir.path),
            ));
        }
        self.check(user, &dir, Access::Modify)?;
        Ok(dir)
    }

    /// `POST …/entries/`: creates a file, directory or link, or renames into the directory.
    pub fn create(&self, user: &User, reference: &str, req: &CreateRequest) -> ApiResult<Value> {
        let name = req.name.trim_end_matches('/');
        validate_name(name)?;
        let dir = self.writable_dir(user, reference)?;
        let fs = dir.fs.join(name);
        let path = child_path(&dir.path, name);
        let old_path = || {
            req.old_path.as_deref().ok_or_else(|| {
                ApiError::new(ErrorClass::Decode, format!("{} needs old_path", req.action))
            })
        };
        let created = match req.action.as_str() {
            "CREATE_FILE" => OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&fs)
                .and_then(|f| f.set_permissions(PermissionsExt::from_mode(NEW_FILE_MODE))),
            "CREATE_DIRECTORY" => std::fs::create_dir(&fs).and_then(|()| {
                std::fs::set_permissions(&fs, PermissionsExt::from_mode(NEW_DIR_MODE))
            }),
            "CREATE_SYMLINK" => std::os::unix::fs::symlink(old_path()?, &fs),
            "CREATE_LINK" => {
                let source = self.resolve(old_path()?, user)?;
                if !source.meta.is_file() {
                    return Err(ApiError::new(
                        ErrorClass::NotAFile,
                        format!("{} is not a file", source.path),
                    ));
                }
                std::fs::hard_link(&source.fs, &fs)
            }
            "RENAME" => return self.rename(user, &dir, name, old_path()?, req.clobber),
            other => {
                return Err(ApiError::new(
                    ErrorClass::Decode,
                    format!("Unknown action {other:?}"),
                ));
            }
        };
        created.map_err(|e| ApiError::io(&e, &path))?;
        let obj = self.load_child(&dir, name)?;
        if req.action != "CREATE_LINK" {
            self.set_owner(&obj, user.id, USERS_GROUP)?;
        }
        Ok(self.attributes(&self.load(&obj.fs, &obj.path)?))
    }

    /// The parent directory of an absolute path and the last component's name.
    fn parent_of(&self, user: &User, path: &str) -> ApiResult<(Obj, String)> {
        let parts: Vec<&str> = components(path).collect();
        let Some((name, parents)) = parts.split_last() else {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                "The root cannot be moved or removed",
            ));
        };
        let parent = self.resolve_path(&format!("/{}", parents.join("/")), user)?;
        Ok((parent, (*name).to_string()))
    }

    /// RENAME of `old_path` to `name` in `dir`; without clobber an existing name is kept.
    fn rename(
        &self,
        user: &User,
        dir: &Obj,
        name: &str,
        old_path: &str,
        clobber: bool,
    ) -> ApiResult<Value> {
        if !old_path.starts_with('/') {
            return Err(ApiError::new(
                ErrorClass::Decode,
                format!("old_path {old_path:?} is not absolute"),
            ));
        }
        let (src_dir, src_name) = self.parent_of(user, old_path)?;
        if !src_dir.meta.is_dir() {
            return Err(ApiError::new(
                ErrorClass::NotADirectory,
                format!("{} is not a directory", src_dir.path),
            ));
        }
        self.check(user, &src_dir, Access::Modify)?;
        let src = self.load_child(&src_dir, &src_name)?;
        let dest = dir.fs.join(name);
        let flags = if clobber {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        rustix::fs::renameat_with(CWD, &src.fs, CWD, &dest, flags).map_err(|e| {
            let path = child_path(&dir.path, name);
            if e == rustix::io::Errno::EXIST && !clobber {
                ApiError::new(ErrorClass::EntryExists, format!("{path} already exists"))
            } else if e == rustix::io::Errno::INVAL {
                ApiError::new(
                    ErrorClass::InvalidArgument,
                    format!("Cannot move {} into itself", src.path),
                )
            } else {
                ApiError::io(&std::io::Error::from(e), &path)
            }
        })?;
        if let Ok(moved) = self.load_child(dir, name) {
            return Ok(self.attributes(&moved));
        }
        Err(ApiError::new(
            ErrorClass::NoSuchEntry,
            format!("{} vanished after rename", src.path),
        ))
    }

    /// `DELETE /v1/files/{ref}`: removes a file, link or empty directory.
    pub fn delete(&self, user: &User, reference: &str) -> ApiResult<()> {
        let obj = self.resolve(reference, user)?;
        if obj.path == "/" {
            return Err(ApiError::new(
                ErrorClass::AccessDenied,
                "The root cannot be removed",
            ));
        }
        let (dir, name) = self.parent_of(user, &obj.path)?;
        self.remove(user, &dir, &name)
    }

    /// `DELETE /v1/files/{dir}/entries/{name}`: removes the entry `name` of a directory.
    pub fn unlink(&self, user: &User, dir_ref: &str, name: &str) -> ApiResult<()> {
        let dir = self.resolve(dir_ref, user)?;
        self.remove(user, &dir, name)
    }

    fn remove(&self, user: &User, dir: &Obj, name: &str) -> ApiResult<()> {
        if !dir.meta.is_dir() {
            return Err(ApiError::new(
                ErrorClass::NotADirectory,
                format!("{} is not a directory", dir.path),
            ));
        }
        self.check(user, dir, Access::Modify)?;
        let obj = self.load_child(dir, name)?;
        let result = if obj.meta.is_dir() {
            std::fs::remove_dir(&obj.fs)
        } else {
            std::fs::remove_file(&obj.fs)
        };
        result.map_err(|e| ApiError::io(&e, &obj.path))?;
        self.forget(obj.meta.ino());
        Ok(())
    }

    /// Opens a data read at `offset` for at most `length` bytes, with the file's ETag.
    pub fn open_read(
        &self,
        user: &User,
        reference: &str,
        offset: u64,
        length: Option<u64>,
    ) -> ApiResult<(ReadPlan, String)> {
        use std::io::{Seek, SeekFrom};
        let obj = self.resolve(reference, user)?;
        self.check(user, &obj, Access::Read)?;
        let etag = data_revision(&obj.meta);
        if obj.meta.file_type().is_symlink() {
            let target = std::fs::read_link(&obj.fs).map_err(|e| ApiError::io(&e, &obj.path))?;
            let bytes = target.into_os_string().into_encoded_bytes();
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = length.map_or(bytes.len(), |l| {
                start
                    .saturating_add(usize::try_from(l).unwrap_or(usize::MAX))
                    .min(bytes.len())
            });
            return Ok((ReadPlan::Bytes(bytes[start..end].to_vec()), etag));
        }
        if !obj.meta.is_file() {
            return Err(ApiError::new(
                ErrorClass::NotAFile,
                format!("{} is not a file", obj.path),
            ));
        }
        let mut file = File::open(&obj.fs).map_err(|e| ApiError::io(&e, &obj.path))?;
        let size = file
            .metadata()
            .map_err(|e| ApiError::io(&e, &obj.path))?
            .size();
        let start = offset.min(size);
        let len = length.map_or(size - start, |l| l.min(size - start));
        file.seek(SeekFrom::Start(start))
            .map_err(|e| ApiError::io(&e, &obj.path))?;
        Ok((ReadPlan::File(file, len), etag))
    }

    /// Opens a regular file for a data write, checking the caller may write it. Positioning
    /// and truncation happen under the file's write lock ([`Store::write_lock`]).
    pub fn open_write(&self, user: &User, reference: &str) -> ApiResult<(File, Obj)> {
        let obj = self.resolve(reference, user)?;
        if !obj.meta.is_file() {
            return Err(ApiError::new(
                ErrorClass::NotAFile,
                format!("{} is not a file", obj.path),
            ));
        }
        self.check(user, &obj, Access::Write)?;
        let file = OpenOptions::new()
            .write(true)
            .open(&obj.fs)
            .map_err(|e| ApiError::io(&e, &obj.path))?;
        Ok((file, obj))
    }

    /// Creates `user`'s home directory (and missing parents) when it does not exist yet; a new
    /// home belongs to the user, with mode 0755.
    pub fn ensure_home(&self, user: &User, home: &str) -> std::io::Result<()> {
        if !home.starts_with('/') || components(home).any(|c| c == "." || c == "..") {
            return Err(std::io::Error::other(format!(
                "{home:?} is not an absolute, normalized path"
            )));
        }
        let fs = self.fs_path(home);
        if fs.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&fs)?;
        std::fs::set_permissions(&fs, PermissionsExt::from_mode(NEW_DIR_MODE))?;
        write_xattr(&fs, super::attrs::XATTR_OWNER, user.id)?;
        write_xattr(&fs, super::attrs::XATTR_GROUP, USERS_GROUP)
    }

    /// `GET /v1/file-system`: capacity of the backing file system, as Qumulo's strings.
    pub fn fs_stats(&self) -> ApiResult<Value> {
        let s = rustix::fs::statvfs(self.root()).map_err(|e| ApiError::io(&e.into(), "/"))?;
        Ok(json!({
            "block_size_bytes": s.f_frsize,
            "total_size_bytes": (s.f_blocks * s.f_frsize).to_string(),
            "free_size_bytes": (s.f_bavail * s.f_frsize).to_string(),
            "snapshot_size_bytes": "0",
        }))
    }
}

/// A page of a directory listing (`GET /v1/files/{ref}/entries/`).
#[derive(Debug, Serialize)]
pub struct Listing {
    path: String,
    id: String,
    child_count: usize,
    files: Vec<Attributes>,
    paging: Paging,
}

/// Where the next page is (empty after the last).
#[derive(Debug, Serialize)]
struct Paging {
    next: String,
}

//! `PATCH …/info/attributes`: mode, owner, group, size and times, all validated before
//! anything changes.

use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;

use chrono::DateTime;
use rustix::fs::{CWD, Timespec, Timestamps, UTIME_OMIT};
use serde::Deserialize;
use serde_json::Value;

use super::super::error::{ApiError, ApiResult, ErrorClass};
use super::super::users::{User, group_name};
use super::attrs::{XATTR_BTIME, write_xattr};
use super::{Access, Store};

/// Body of `PATCH /v1/files/{ref}/info/attributes`: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttrPatch {
    /// Octal mode, e.g. `"0755"`.
    pub mode: Option<String>,
    /// Owner auth id.
    pub owner: Option<String>,
    /// Group auth id.
    pub group: Option<String>,
    /// Owner as `{id_type, id_value}`.
    pub owner_details: Option<Identity>,
    /// Group as `{id_type, id_value}`.
    pub group_details: Option<Identity>,
    /// New size in bytes (truncates or zero-extends).
    pub size: Option<String>,
    /// RFC 3339 times.
    pub access_time: Option<String>,
    /// RFC 3339 times.
    pub modification_time: Option<String>,
    /// RFC 3339 times.
    pub creation_time: Option<String>,
    /// Accepted and ignored: the change time moves by itself on every change.
    pub change_time: Option<String>,
    /// Accepted and ignored: the simulator keeps no SMB attribute bits.
    pub extended_attributes: Option<Value>,
}

/// Qumulo's `FSIdentity`.
#[derive(Debug, Deserialize)]
pub struct Identity {
    /// `LOCAL_USER`, `LOCAL_GROUP`, …
    pub id_type: String,
    /// The name (for local ids) or number.
    pub id_value: String,
}

fn parse_time(field: &str, text: &str) -> ApiResult<(i64, u32)> {
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|e| ApiError::new(ErrorClass::Decode, format!("{field}: {text:?}: {e}")))?;
    Ok((t.timestamp(), t.timestamp_subsec_nanos()))
}

fn timespec(t: Option<(i64, u32)>) -> Timespec {
    match t {
        Some((s, n)) => Timespec {
            tv_sec: s,
            tv_nsec: i64::from(n),
        },
        None => Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
    }
}

impl Store {
    /// `PATCH …/info/attributes`. Everything is validated before anything changes.
    pub fn set_attributes(
        &self,
        user: &User,
        reference: &str,
        patch: &AttrPatch,
    ) -> ApiResult<Value> {
        let obj = self.resolve(reference, user)?;
        let mode = match &patch.mode {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorClass::Decode,
                            format!("mode: {m:?} is not an octal mode"),
                        )
                    })?,
            ),
            None => None,
        };
        let size = match &patch.size {
            Some(s) => Some(s.parse::<u64>().map_err(|_| {
                ApiError::new(ErrorClass::Decode, format!("size: {s:?} is not a size"))
            })?),
            None => None,
        };
        let owner = self.patch_owner(patch)?;
        let group = self.patch_group(patch)?;
        let atime = patch
            .access_time
            .as_deref()
            .map(|t| parse_time("access_time", t))
            .transpose()?;
        let mtime = patch
            .modification_time
            .as_deref()
            .map(|t| parse_time("modification_time", t))
            .transpose()?;
        let btime = patch
            .creation_time
            .as_deref()
            .map(|t| parse_time("creation_time", t))
            .transpose()?;

        let is_owner = user.admin || obj.owner == user.id;
        let not_owner = || {
            ApiError::new(
                ErrorClass::NotOwner,
                format!("{} does not own {}", user.name, obj.path),
            )
        };
        if (mode.is_some() || atime.is_some() || mtime.is_some() || btime.is_some()) && !is_owner {
            return Err(not_owner());
        }
        if owner.is_some_and(|o| o != obj.owner) && !user.admin {
            return Err(not_owner());
        }
        if let Some(g) = group.filter(|g| *g != obj.group)
            && !(user.admin || (is_owner && user.groups().contains(&g)))
        {
            return Err(not_owner());
        }
        if size.is_some() {
            if !obj.meta.is_file() {
                return Err(ApiError::new(
                    ErrorClass::NotAFile,
                    format!("{} is not a file", obj.path),
                ));
            }
            self.check(user, &obj, Access::Write)?;
        }

        let io = |e: std::io::Error| ApiError::io(&e, &obj.path);
        if let Some(size) = size {
            OpenOptions::new()
                .write(true)
                .open(&obj.fs)
                .and_then(|f| f.set_len(size))
                .map_err(io)?;
        }
        if let Some(mode) = mode
            && !obj.meta.file_type().is_symlink()
        {
            std::fs::set_permissions(&obj.fs, PermissionsExt::from_mode(mode)).map_err(io)?;
            self.drop_acl(&obj)?;
        }
        if owner.is_some() || group.is_some() {
            self.set_owner(&obj, owner.unwrap_or(obj.owner), group.unwrap_or(obj.group))?;
        }
        if atime.is_some() || mtime.is_some() {
            let times = Timestamps {
                last_access: timespec(atime),
                last_modification: timespec(mtime),
            };
            rustix::fs::utimensat(CWD, &obj.fs, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io(e.into()))?;
        }
        if let Some((s, n)) = btime {
            let ns = u64::try_from(s).unwrap_or(0) * 1_000_000_000 + u64::from(n);
            write_xattr(&obj.fs, XATTR_BTIME, ns).map_err(io)?;
        }
        Ok(self.attributes(&self.load(&obj.fs, &obj.path)?))
    }

    fn patch_owner(&self, patch: &AttrPatch) -> ApiResult<Option<u64>> {
        let by_id = patch.owner.as_deref().map(|o| {
            o.parse::<u64>()
                .ok()
                .filter(|id| self.users().by_id(*id).is_some())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorClass::NoSuchIdentity,
                        format!("owner: no local user {o:?}"),
                    )
                })
        });
        let by_name = patch
            .owner_details
            .as_ref()
            .map(|d| match d.id_type.as_str() {
                "LOCAL_USER" => self
                    .users()
                    .by_name(&d.id_value)
                    .map(|u| u.id)
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorClass::NoSuchIdentity,
                            format!("owner: no local user {:?}", d.id_value),
                        )
                    }),
                other => Err(ApiError::new(
                    ErrorClass::Decode,
                    format!("owner_details: unsupported id_type {other}"),
                )),
            });
        by_id.or(by_name).transpose()
    }

    fn patch_group(&self, patch: &AttrPatch) -> ApiResult<Option<u64>> {
        let by_id = patch.group.as_deref().map(|g| {
            g.parse::<u64>()
                .ok()
                .filter(|id| group_name(*id).is_some())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorClass::NoSuchIdentity,
                        format!("group: no local group {g:?}"),
                    )
                })
        });
        let by_name = patch
            .group_details
            .as_ref()
            .map(|d| match d.id_type.as_str() {
                "LOCAL_GROUP" => super::super::users::GROUPS
                    .iter()
                    .find(|(_, n)| *n == d.id_value)
                    .map(|(id, _)| *id)
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorClass::NoSuchIdentity,
                            format!("group: no local group {:?}", d.id_value),
                        )
                    }),
                other => Err(ApiError::new(
                    ErrorClass::Decode,
                    format!("group_details: unsupported id_type {other}"),
                )),
            });
        by_id.or(by_name).transpose()
    }
}

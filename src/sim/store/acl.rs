//! Access control lists (`GET` and `PUT /v2/files/{ref}/info/acl`), as far as the simulator
//! models them.
//!
//! Qumulo keeps an ACL on every object and shows the POSIX mode derived from it. The simulator
//! keeps the mode, which is what its permission checks use, and an ACL beside it:
//! - an object whose ACL was never set through the API has one generated from its mode: an
//!   allowing entry each for the owner, the group and Everyone, with the rights of their bits;
//! - an ACL set through the API (by the owner or an administrator) is kept as it was given, in
//!   the extended attribute `user.qumulo.acl`, and gives the object its mode: the read, write
//!   and execute rights the allowing entries give the owner (owner bits), the group (group
//!   bits) and Everyone (other bits), and the special bits it names. Denying entries,
//!   inheritance and other trustees are kept and reported, not enforced;
//! - a mode set afterwards (chmod) replaces a kept ACL with one generated from the new mode
//!   (inferred: Qumulo rewrites the entries of the owner, the group and Everyone).
//!
//! Symlinks have a generated ACL only.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult, ErrorClass};
use super::super::users::{User, group_identity, group_name};
use super::{Obj, Store};

/// Extended attribute holding an ACL set through the API, as JSON.
const XATTR_ACL: &str = "user.qumulo.acl";
/// The largest ACL kept, in bytes of JSON (an extended attribute holds a few KiB on most file
/// systems).
const MAX_ACL_BYTES: usize = 3072;
/// Everyone's auth id (the world domain's, `2 << 32`).
const EVERYONE_AUTH_ID: &str = "8589934592";

/// The rights an ACE may name (Qumulo's API values).
const RIGHTS: [&str; 17] = [
    "READ",
    "READ_EA",
    "READ_ATTR",
    "READ_ACL",
    "WRITE_EA",
    "WRITE_ATTR",
    "WRITE_ACL",
    "CHANGE_OWNER",
    "WRITE_GROUP",
    "DELETE",
    "EXECUTE",
    "MODIFY",
    "EXTEND",
    "ADD_FILE",
    "ADD_SUBDIR",
    "DELETE_CHILD",
    "SYNCHRONIZE",
];
/// The flags an ACE may carry.
const FLAGS: [&str; 5] = [
    "OBJECT_INHERIT",
    "CONTAINER_INHERIT",
    "NO_PROPAGATE_INHERIT",
    "INHERIT_ONLY",
    "INHERITED",
];
/// The control flags of an ACL.
const CONTROLS: [&str; 5] = [
    "PRESENT",
    "DEFAULTED",
    "TRUSTED",
    "AUTO_INHERIT",
    "PROTECTED",
];
/// The special permissions and their mode bits.
const SPECIAL: [(&str, u32); 3] = [
    ("SET_UID", 0o4000),
    ("SET_GID", 0o2000),
    ("STICKY_BIT", 0o1000),
];
/// The rights of a read bit, of a write bit (files; directories also add and remove entries)
/// and of an execute bit.
const READ_RIGHTS: [&str; 4] = ["READ", "READ_EA", "READ_ATTR", "READ_ACL"];
const WRITE_RIGHTS: [&str; 4] = ["WRITE_ATTR", "WRITE_EA", "EXTEND", "MODIFY"];
const WRITE_DIR_RIGHTS: [&str; 3] = ["ADD_FILE", "ADD_SUBDIR", "DELETE_CHILD"];

/// An ACL in the API's version 2 shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// Control flags.
    pub control: Vec<String>,
    /// `SET_UID`, `SET_GID`, `STICKY_BIT`.
    pub posix_special_permissions: Vec<String>,
    /// The entries, in order.
    pub aces: Vec<Ace>,
}

/// One access control entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ace {
    /// `ALLOWED` or `DENIED`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Inheritance flags.
    pub flags: Vec<String>,
    /// Whom it applies to: an `api_identity` object.
    pub trustee: Value,
    /// The rights it allows or denies.
    pub rights: Vec<String>,
}

impl Acl {
    /// Refuses names the API does not know, and a trustee that is not an identity object.
    fn validate(&self) -> ApiResult<()> {
        let unknown = |what: &str, v: &str| {
            Err(ApiError::new(
                ErrorClass::Decode,
                format!("Unknown {what} {v:?} in the ACL"),
            ))
        };
        for c in &self.control {
            if !CONTROLS.contains(&c.as_str()) {
                return unknown("control flag", c);
            }
        }
        for p in &self.posix_special_permissions {
            if !SPECIAL.iter().any(|(name, _)| name == p) {
                return unknown("special permission", p);
            }
        }
        for ace in &self.aces {
            if ace.kind != "ALLOWED" && ace.kind != "DENIED" {
                return unknown("entry type", &ace.kind);
            }
            if let Some(f) = ace.flags.iter().find(|f| !FLAGS.contains(&f.as_str())) {
                return unknown("flag", f);
            }
            if let Some(r) = ace.rights.iter().find(|r| !RIGHTS.contains(&r.as_str())) {
                return unknown("right", r);
            }
            if !ace.trustee.is_object() {
                return Err(ApiError::new(
                    ErrorClass::Decode,
                    "An ACL entry's trustee must be an identity object",
                ));
            }
        }
        Ok(())
    }

    /// The mode this ACL gives an object owned by `owner` and group `group` (see the module
    /// docs).
    fn mode(&self, owner: u64, group: u64) -> u32 {
        let mut mode = 0;
        for (name, bit) in SPECIAL {
            if self.posix_special_permissions.iter().any(|p| p == name) {
                mode |= bit;
            }
        }
        let (owner, group) = (owner.to_string(), group.to_string());
        for ace in &self.aces {
            if ace.kind != "ALLOWED" || ace.flags.iter().any(|f| f == "INHERIT_ONLY") {
                continue;
            }
            let bits = bits_of(&ace.rights);
            match ace.trustee.get("auth_id").and_then(Value::as_str) {
                Some(id) if id == owner => mode |= bits << 6,
                Some(id) if id == group => mode |= bits << 3,
                Some(EVERYONE_AUTH_ID) => mode |= bits,
                _ => {}
            }
        }
        mode
    }
}

/// The read (4), write (2) and execute (1) bits of a set of rights.
fn bits_of(rights: &[String]) -> u32 {
    let has = |r: &str| rights.iter().any(|x| x == r);
    u32::from(has("READ")) * 4
        + u32::from(has("MODIFY") || has("ADD_FILE")) * 2
        + u32::from(has("EXECUTE"))
}

/// The rights of `bits` (read, write, execute) on a file or a directory.
fn rights_of(bits: u32, dir: bool) -> Vec<String> {
    let mut rights: Vec<&str> = Vec::new();
    if bits & 4 != 0 {
        rights.extend(READ_RIGHTS);
    }
    if bits & 2 != 0 {
        rights.extend(WRITE_RIGHTS);
        if dir {
            rights.extend(WRITE_DIR_RIGHTS);
        }
    }
    if bits & 1 != 0 {
        rights.push("EXECUTE");
    }
    if !rights.is_empty() {
        rights.push("SYNCHRONIZE");
    }
    rights.sort_unstable();
    rights.into_iter().map(String::from).collect()
}

impl Store {
    /// The ACL of `obj`: the one set through the API, or one generated from its mode.
    fn acl_of(&self, obj: &Obj) -> Acl {
        if let Some(kept) = read_acl(obj) {
            return kept;
        }
        let mode = obj.meta.mode();
        let dir = obj.meta.is_dir();
        let owner = self
            .users()
            .by_id(obj.owner)
            .map_or_else(|| json!({"auth_id": obj.owner.to_string()}), User::identity);
        let group = group_name(obj.group).map_or_else(
            || json!({"auth_id": obj.group.to_string()}),
            |name| group_identity(obj.group, name),
        );
        let everyone = json!({"domain": "WORLD", "auth_id": EVERYONE_AUTH_ID, "sid": "S-1-1-0", "name": "Everyone"});
        let aces = [(owner, mode >> 6), (group, mode >> 3), (everyone, mode)]
            .into_iter()
            .map(|(trustee, bits)| Ace {
                kind: "ALLOWED".into(),
                flags: Vec::new(),
                trustee,
                rights: rights_of(bits & 7, dir),
            })
            .collect();
        Acl {
            control: vec!["PRESENT".into()],
            posix_special_permissions: SPECIAL
                .iter()
                .filter(|(_, bit)| mode & bit != 0)
                .map(|(name, _)| (*name).into())
                .collect(),
            aces,
        }
    }

    /// `GET /v2/files/{ref}/info/acl`.
    pub fn get_acl(&self, user: &User, reference: &str) -> ApiResult<Value> {
        let obj = self.resolve(reference, user)?;
        Ok(json!(self.acl_of(&obj)))
    }

    /// `PUT /v2/files/{ref}/info/acl`: the owner or an administrator replaces the ACL, and
    /// with it the mode.
    pub fn set_acl(&self, user: &User, reference: &str, acl: &Acl) -> ApiResult<Value> {
        let obj = self.resolve(reference, user)?;
        if !(user.admin || obj.owner == user.id) {
            return Err(ApiError::new(
                ErrorClass::NotOwner,
                format!("{} does not own {}", user.name, obj.path),
            ));
        }
        if obj.meta.file_type().is_symlink() {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                format!("{}: the simulator keeps no ACL on a symlink", obj.path),
            ));
        }
        acl.validate()?;
        let text = serde_json::to_vec(acl)
            .map_err(|e| ApiError::new(ErrorClass::Internal, format!("ACL: {e}")))?;
        if text.len() > MAX_ACL_BYTES {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                format!(
                    "An ACL of {} bytes is more than the simulator keeps ({MAX_ACL_BYTES})",
                    text.len()
                ),
            ));
        }
        let io = |e: std::io::Error| ApiError::io(&e, &obj.path);
        let mode = acl.mode(obj.owner, obj.group);
        std::fs::set_permissions(&obj.fs, PermissionsExt::from_mode(mode)).map_err(io)?;
        rustix::fs::lsetxattr(&obj.fs, XATTR_ACL, &text, rustix::fs::XattrFlags::empty())
            .map_err(|e| io(e.into()))?;
        Ok(json!(acl))
    }

    /// Forgets the ACL set through the API: the mode was set (chmod).
    pub(super) fn drop_acl(&self, obj: &Obj) -> ApiResult<()> {
        match rustix::fs::lremovexattr(&obj.fs, XATTR_ACL) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::NODATA => Ok(()),
            Err(e) => Err(ApiError::io(&e.into(), &obj.path)),
        }
    }
}

/// The ACL kept for `obj`, if one was set through the API.
fn read_acl(obj: &Obj) -> Option<Acl> {
    if obj.meta.file_type().is_symlink() {
        return None;
    }
    let mut buf = vec![0u8; MAX_ACL_BYTES];
    let n = rustix::fs::lgetxattr(&obj.fs, XATTR_ACL, &mut buf[..]).ok()?;
    serde_json::from_slice(&buf[..n]).ok()
}

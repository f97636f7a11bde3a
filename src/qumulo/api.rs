//! The JSON shapes of the Qumulo endpoints the gateway uses, with Qumulo's string-encoded
//! numbers and RFC 3339 nanosecond times parsed into typed values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Parses a decimal number that Qumulo sends as a JSON string (also accepts a JSON number).
fn num_str<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        N(u64),
    }
    match N::deserialize(d)? {
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
        N::N(n) => Ok(n),
    }
}

/// Parses Qumulo's 4-digit octal mode string, e.g. `"0755"`.
fn mode_str<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let s = String::deserialize(d)?;
    u32::from_str_radix(&s, 8)
        .map_err(|_| serde::de::Error::custom(format!("mode {s:?} is not octal")))
}

/// Qumulo's file types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum FileType {
    /// A regular file.
    #[serde(rename = "FS_FILE_TYPE_FILE")]
    File,
    /// A directory.
    #[serde(rename = "FS_FILE_TYPE_DIRECTORY")]
    Directory,
    /// A symbolic link.
    #[serde(rename = "FS_FILE_TYPE_SYMLINK")]
    Symlink,
    /// Pipes, sockets and devices.
    #[serde(other)]
    Other,
}

/// An owner or group as `{id_type, id_value}` (`LOCAL_USER`/`admin`, `NFS_UID`/`1000`,
/// `SMB_SID`/`S-1-5-…`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct IdDetails {
    /// `LOCAL_USER`, `LOCAL_GROUP`, `NFS_UID`, `NFS_GID`, `SMB_SID`, …
    pub id_type: String,
    /// A name, a number or a SID, depending on `id_type`.
    pub id_value: String,
}

/// `api_files_attributes`: the fields the gateway uses (others are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileAttr {
    /// Absolute path; a directory's ends in `/`.
    pub path: String,
    /// Entry name (empty for the root).
    pub name: String,
    /// File id.
    #[serde(deserialize_with = "num_str")]
    pub id: u64,
    /// File type.
    #[serde(rename = "type")]
    pub file_type: FileType,
    /// Permission bits (and set-id/sticky bits).
    #[serde(deserialize_with = "mode_str")]
    pub mode: u32,
    /// Size in bytes.
    #[serde(deserialize_with = "num_str")]
    pub size: u64,
    /// Hard link count.
    pub num_links: u64,
    /// Owner's auth id.
    #[serde(deserialize_with = "num_str")]
    pub owner: u64,
    /// Owner, named.
    pub owner_details: IdDetails,
    /// Group's auth id.
    #[serde(deserialize_with = "num_str")]
    pub group: u64,
    /// Group, named.
    pub group_details: IdDetails,
    /// Last data modification.
    pub modification_time: DateTime<Utc>,
    /// Creation.
    pub creation_time: DateTime<Utc>,
    /// Last attribute change.
    pub change_time: DateTime<Utc>,
}

impl FileAttr {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Directory
    }
}

/// One page of `GET /v1/files/{ref}/entries/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RawPage")]
pub struct Page {
    /// The canonical path of the directory listed (ends in `/`), when the cluster gave it.
    pub path: Option<String>,
    /// The entries of this page.
    pub files: Vec<FileAttr>,
    /// The server-relative URI of the next page; `None` at the end (Qumulo sends `""`).
    pub next: Option<String>,
}

/// The wire shape of a page: `{"files": […], "paging": {"next": "…"}}`.
#[derive(Deserialize)]
struct RawPage {
    #[serde(default)]
    path: Option<String>,
    files: Vec<FileAttr>,
    paging: Paging,
}

/// `paging` of a listing; `next` is `""` on the last page.
#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

impl From<RawPage> for Page {
    fn from(raw: RawPage) -> Self {
        Page {
            path: raw.path,
            files: raw.files,
            next: raw.paging.next.filter(|n| !n.is_empty()),
        }
    }
}

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Version {
    /// E.g. `Qumulo Core 7.2.0`.
    pub revision_id: String,
}

/// `GET /v1/cluster/settings` (administrators only on real clusters).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterSettings {
    /// The cluster's name.
    pub cluster_name: String,
}

/// `api_user` from who-am-i.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiUser {
    /// Auth id.
    #[serde(deserialize_with = "num_str")]
    pub id: u64,
    /// Login name.
    pub name: String,
    /// Home directory, if the user has one.
    #[serde(default)]
    pub home_directory: Option<String>,
}

/// `api_identity` from identity find.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Identity {
    /// The identity's name, when it has one.
    #[serde(default)]
    pub name: Option<String>,
    /// SID.
    #[serde(default)]
    pub sid: Option<String>,
    /// Auth id.
    #[serde(default)]
    pub auth_id: Option<String>,
}

/// An ACL (`GET`/`PUT /v2/files/{ref}/info/acl`). The gateway only copies ACLs, so the
/// entries are kept as the cluster sent them, as are fields it does not know.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Acl {
    /// Control flags (`PRESENT`, `PROTECTED`, …).
    pub control: Vec<String>,
    /// `SET_UID`, `SET_GID`, `STICKY_BIT`.
    pub posix_special_permissions: Vec<String>,
    /// The entries, in order, untouched.
    pub aces: Vec<serde_json::Value>,
    /// Any other field, untouched.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// A change of attributes (`PATCH …/info/attributes`); `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrPatch {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New group, as an auth id.
    pub group: Option<u64>,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New modification time.
    pub modification_time: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_reads_paging_next_and_empty_means_end() {
        let body = include_str!("../../tests/fixtures/qumulo/listing.json");
        let page: Page = serde_json::from_str(body).unwrap();
        assert_eq!(page.path.as_deref(), Some("/"));
        assert_eq!(page.files.len(), 1);
        assert_eq!(
            (page.files[0].name.as_str(), page.files[0].is_dir()),
            ("dir", true)
        );
        let next = "/v1/files/2/entries/?after=dir&limit=1";
        assert_eq!(page.next.as_deref(), Some(next));
        let last = body.replace(next, "");
        let last: Page = serde_json::from_str(&last).unwrap();
        assert_eq!(last.next, None);
    }
}

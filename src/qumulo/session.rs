//! One logged-in user: the bearer token, and every file-system call made as that user.
//! On a 401 the session logs in again with the password it holds in memory (never logged,
//! redacted from `Debug`) and repeats the call once; streamed writes cannot be repeated, so a
//! 401 there is returned (the calls before a write refresh the token).

use tokio::io::AsyncRead;

use super::api::{ApiUser, AttrPatch, ClusterSettings, FileAttr, Identity, Page, Version};
use super::error::Error;

/// A logged-in user's session with the cluster.
pub struct Session {}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// The user name this session logged in with.
    pub fn username(&self) -> &str {
        todo!()
    }

    /// `GET /v1/session/who-am-i`.
    pub async fn who_am_i(&self) -> Result<ApiUser, Error> {
        todo!()
    }

    /// `GET /v1/cluster/settings` (403 for users who may not read it).
    pub async fn cluster_settings(&self) -> Result<ClusterSettings, Error> {
        todo!()
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<Version, Error> {
        todo!()
    }

    /// `GET /v1/files/{path}/info/attributes`; `path` is absolute.
    pub async fn get_attr(&self, _path: &str) -> Result<FileAttr, Error> {
        todo!()
    }

    /// One page of a directory: the first (`next = None`, asking for `limit` entries) or the
    /// one at a `paging.next` URI from the previous page.
    pub async fn list_page(
        &self,
        _dir: &str,
        _next: Option<&str>,
        _limit: usize,
    ) -> Result<Page, Error> {
        todo!()
    }

    /// Every entry of a directory, following `paging.next` to the end.
    pub async fn list_all(&self, _dir: &str, _page_size: usize) -> Result<Vec<FileAttr>, Error> {
        todo!()
    }

    /// Creates an empty file `name` in directory `dir` (`CREATE_FILE`).
    pub async fn create_file(&self, _dir: &str, _name: &str) -> Result<FileAttr, Error> {
        todo!()
    }

    /// Creates a directory `name` in directory `dir` (`CREATE_DIRECTORY`).
    pub async fn create_dir(&self, _dir: &str, _name: &str) -> Result<FileAttr, Error> {
        todo!()
    }

    /// Renames or moves `from` (absolute) to `to_name` in directory `to_dir` (`RENAME`);
    /// `clobber` replaces an existing destination.
    pub async fn rename(
        &self,
        _from: &str,
        _to_dir: &str,
        _to_name: &str,
        _clobber: bool,
    ) -> Result<FileAttr, Error> {
        todo!()
    }

    /// Deletes a file, link or empty directory (`DELETE /v1/files/{path}`).
    pub async fn delete(&self, _path: &str) -> Result<(), Error> {
        todo!()
    }

    /// Changes attributes (`PATCH …/info/attributes`).
    pub async fn set_attr(&self, _path: &str, _patch: &AttrPatch) -> Result<FileAttr, Error> {
        todo!()
    }

    /// Streams a file's data from `offset` (`GET …/data?offset=`).
    pub async fn read(
        &self,
        _path: &str,
        _offset: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Sync + Unpin>, Error> {
        todo!()
    }

    /// Streams `data` into an existing file: replacing its content (`offset = None`, `PUT`) or
    /// writing at an offset (`PATCH ?offset=`). Returns the number of bytes sent.
    pub async fn write<R>(&self, _path: &str, _offset: Option<u64>, _data: R) -> Result<u64, Error>
    where
        R: AsyncRead + Send + Sync + Unpin + 'static,
    {
        todo!()
    }

    /// Looks an identity up by SID (`POST /v1/identity/find`), to name SMB owners.
    pub async fn find_identity_by_sid(&self, _sid: &str) -> Result<Identity, Error> {
        todo!()
    }
}

//! One logged-in user: the bearer token, and every file-system call made as that user.
//! On a 401 the session logs in again with the password it holds in memory (never logged,
//! redacted from `Debug`) and repeats the call once; streamed writes cannot be repeated, so a
//! 401 there is returned (the calls before a write refresh the token). Which failures are
//! tried again, and on which node, is decided in `retry`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use chrono::SecondsFormat;
use futures_util::FutureExt;
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::io::AsyncRead;

use super::api::{Acl, ApiUser, AttrPatch, ClusterSettings, FileAttr, Identity, Page, Version};
use super::client::Client;
use super::error::Error;
use super::http;
use super::pages::Pages;
use super::retry::{self, Call};
use super::transfer::{self, Download};

/// A logged-in user's session with the cluster.
pub struct Session {
    /// Shared with the downloads in progress, which may have to ask for the rest of a file.
    auth: Arc<Auth>,
}

/// What every call of a session needs: the client, the credentials and the token.
struct Auth {
    /// The shared client (connection pool and nodes).
    client: Client,
    /// The user name, to log in again.
    username: String,
    /// The password, to log in again when the token is refused; `None` for a session of a
    /// long-lived access token, which cannot log in again. Never logged.
    password: Option<String>,
    /// The bearer token of every call (valid on every node). A std lock: only held to copy or
    /// replace the string.
    token: RwLock<String>,
    /// Held while logging in again, so that calls refused together log in once.
    relogin: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cluster: Vec<&str> = self.auth.client.urls().iter().map(|u| u.as_str()).collect();
        f.debug_struct("Session")
            .field("username", &self.auth.username)
            .field("cluster", &cluster)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session of `username` holding the token of a login that just succeeded.
    pub(super) fn new(client: Client, username: String, password: String, token: String) -> Self {
        Self {
            auth: Arc::new(Auth {
                client,
                username,
                password: Some(password),
                token: RwLock::new(token),
                relogin: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A session of a long-lived access token (`/v1/auth/access-tokens/`): every call carries
    /// it; a refused token is an error of kind `Unauthorized` (there is nothing to log in with).
    /// `name` stands for the user in logs; the token itself is never logged.
    pub(super) fn with_access_token(client: Client, name: String, token: String) -> Self {
        Self {
            auth: Arc::new(Auth {
                client,
                username: name,
                password: None,
                token: RwLock::new(token),
                relogin: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The user name this session logged in with.
    pub fn username(&self) -> &str {
        &self.auth.username
    }

    /// `GET /v1/session/who-am-i`.
    pub async fn who_am_i(&self) -> Result<ApiUser, Error> {
        self.get_json("/v1/session/who-am-i", "who-am-i").await
    }

    /// `GET /v1/cluster/settings` (403 for users who may not read it).
    pub async fn cluster_settings(&self) -> Result<ClusterSettings, Error> {
        self.get_json("/v1/cluster/settings", "cluster settings")
            .await
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<Version, Error> {
        self.auth.client.version().await
    }

    /// `GET /v1/files/{path}/info/attributes`; `path` is absolute.
    pub async fn get_attr(&self, path: &str) -> Result<FileAttr, Error> {
        self.get_json(&http::files(path, "/info/attributes"), "attributes")
            .await
    }

    /// One page of a directory: the first (`next = None`, asking for `limit` entries) or the
    /// one at a `paging.next` URI from the previous page (server-relative: any node serves it).
    pub async fn list_page(
        &self,
        dir: &str,
        next: Option<&str>,
        limit: usize,
    ) -> Result<Page, Error> {
        let uri = match next {
            None => http::files(dir, &format!("/entries/?limit={}", limit.max(1))),
            Some(next) => next.to_string(),
        };
        self.get_json(&uri, "directory listing").await
    }

    /// Every entry of a directory, following `paging.next` to the end.
    pub async fn list_all(&self, dir: &str, page_size: usize) -> Result<Vec<FileAttr>, Error> {
        let mut entries = Vec::new();
        let mut pages = Pages::new(dir, page_size);
        while let Some(page) = pages.next(self).await? {
            entries.extend(page);
        }
        Ok(entries)
    }

    /// Creates an empty file `name` in directory `dir` (`CREATE_FILE`).
    pub async fn create_file(&self, dir: &str, name: &str) -> Result<FileAttr, Error> {
        let body = json!({"name": name, "action": "CREATE_FILE"});
        self.post_entries(dir, &body).await
    }

    /// Creates a directory `name` in directory `dir` (`CREATE_DIRECTORY`).
    pub async fn create_dir(&self, dir: &str, name: &str) -> Result<FileAttr, Error> {
        let body = json!({"name": name, "action": "CREATE_DIRECTORY"});
        self.post_entries(dir, &body).await
    }

    /// Renames or moves `from` (absolute) to `to_name` in directory `to_dir` (`RENAME`);
    /// `clobber` replaces an existing destination.
    pub async fn rename(
        &self,
        from: &str,
        to_dir: &str,
        to_name: &str,
        clobber: bool,
    ) -> Result<FileAttr, Error> {
        let body =
            json!({"name": to_name, "old_path": from, "action": "RENAME", "clobber": clobber});
        self.post_entries(to_dir, &body).await
    }

    /// Deletes a file, link or empty directory (`DELETE /v1/files/{path}`).
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        let uri = http::files(path, "");
        let resp = self.auth.call(&mut Call::new(Method::DELETE, &uri)).await?;
        http::discard(resp).await;
        Ok(())
    }

    /// Changes attributes (`PATCH …/info/attributes`; idempotent, so retried).
    pub async fn set_attr(&self, path: &str, patch: &AttrPatch) -> Result<FileAttr, Error> {
        let uri = http::files(path, "/info/attributes");
        let body = patch_body(patch);
        let call = Call::new(Method::PATCH, &uri).json(Some(&body));
        self.json_call(call.idempotent(), "attributes").await
    }

    /// Whether this user may write the file at `path`, as the cluster decides for any write
    /// (mode bits, ACL, locks): an empty write at offset 0 (`PATCH …/data?offset=0` without
    /// data), which changes nothing and answers the file's attributes. Fails `Denied` when the
    /// user may not write the file, `NotFound` when there is none, `NotAFile` for a directory
    /// or a link. Writing nothing can be repeated, so it is retried like a GET.
    pub async fn check_write(&self, path: &str) -> Result<FileAttr, Error> {
        let uri = http::files(path, "/data?offset=0");
        let call = Call::new(Method::PATCH, &uri);
        self.json_call(call.idempotent(), "attributes").await
    }

    /// `GET /v2/files/{path}/info/acl`.
    pub async fn get_acl(&self, path: &str) -> Result<Acl, Error> {
        self.get_json(&http::acl(path), "ACL").await
    }

    /// Replaces the ACL of `path` (`PUT /v2/files/{path}/info/acl`; the mode follows from
    /// it). Setting the same ACL twice is harmless, so retried.
    pub async fn set_acl(&self, path: &str, acl: &Acl) -> Result<(), Error> {
        let body = serde_json::to_value(acl).map_err(|e| Error::Decode(format!("ACL: {e}")))?;
        let uri = http::acl(path);
        let call = Call::new(Method::PUT, &uri).json(Some(&body));
        let _: Value = self.json_call(call.idempotent(), "ACL").await?;
        Ok(())
    }

    /// Streams a file's data from `offset` (`GET …/data?offset=`). When the transfer breaks
    /// midway, the rest is asked for again from where it broke (see `transfer::download`), so
    /// the reader sees the file's bytes once each, in order, or a read error.
    pub async fn read(&self, path: &str, offset: u64) -> Result<Download, Error> {
        let first = self.auth.open(path, offset).await?;
        let (auth, path) = (self.auth.clone(), path.to_string());
        let reopen = move |at: u64| {
            let (auth, path) = (auth.clone(), path.clone());
            async move { auth.open(&path, at).await }.boxed()
        };
        let retries = self.auth.client.retries();
        Ok(transfer::download(first, offset, retries, reopen))
    }

    /// Streams `data` into an existing file: replacing its content (`offset = None`, `PUT`) or
    /// writing at an offset (`PATCH ?offset=`). Returns the number of bytes sent.
    pub async fn write<R>(&self, path: &str, offset: Option<u64>, data: R) -> Result<u64, Error>
    where
        R: AsyncRead + Send + Sync + Unpin + 'static,
    {
        let (method, uri) = match offset {
            None => (Method::PUT, http::files(path, "/data")),
            Some(o) => (
                Method::PATCH,
                http::files(path, &format!("/data?offset={o}")),
            ),
        };
        let (body, sent, progress) = transfer::upload(data);
        let token = self.auth.token();
        let mut call = Call::new(method, &uri).bearer(token.clone()).stream(body);
        let resp = self.auth.client.send_upload(&mut call, &progress).await?;
        match self.auth.client.check(resp, false).await {
            Ok(resp) => {
                http::discard(resp).await;
                Ok(sent.load(Ordering::Relaxed))
            }
            Err(e) => {
                if matches!(e, Error::Api { status: 401, .. }) {
                    // The data is spent and cannot be sent again; refresh the token for the
                    // calls that follow, and report the refusal.
                    let _ = self.auth.refresh(&token).await;
                }
                Err(e)
            }
        }
    }

    /// Looks an identity up by SID (`POST /v1/identity/find`), to name SMB owners. A lookup
    /// that changes nothing, so retried like a GET.
    pub async fn find_identity_by_sid(&self, sid: &str) -> Result<Identity, Error> {
        let body = json!({"sid": sid});
        let call = Call::new(Method::POST, "/v1/identity/find").json(Some(&body));
        self.json_call(call.idempotent(), "identity").await
    }

    /// `POST /v1/files/{dir}/entries/` with `body`: create or rename (never repeated once it
    /// may have reached the cluster).
    async fn post_entries(&self, dir: &str, body: &Value) -> Result<FileAttr, Error> {
        let uri = http::files(dir, "/entries/");
        let call = Call::new(Method::POST, &uri).json(Some(body));
        self.json_call(call, "attributes").await
    }

    /// An authenticated GET answered with JSON; `what` names the answer in errors.
    async fn get_json<T: DeserializeOwned>(&self, uri: &str, what: &str) -> Result<T, Error> {
        self.json_call(Call::new(Method::GET, uri), what).await
    }

    /// A call answered with JSON; `what` names the answer in errors. An idempotent call whose
    /// answer broke off midway is made again.
    async fn json_call<T: DeserializeOwned>(
        &self,
        mut call: Call<'_>,
        what: &str,
    ) -> Result<T, Error> {
        let mut broke = 0;
        loop {
            let resp = self.auth.call(&mut call).await?;
            match http::json(resp, what).await {
                Err(Error::Transport(e))
                    if call.is_idempotent() && broke < self.auth.client.retries() =>
                {
                    retry::broke_off(broke, &e).await;
                    broke += 1;
                }
                done => return done,
            }
        }
    }
}

impl Auth {
    /// The current bearer token.
    fn token(&self) -> String {
        self.token
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// `GET …/data?offset=` of `path`: the answer whose body is the file from `offset`.
    async fn open(&self, path: &str, offset: u64) -> Result<Response, Error> {
        let uri = http::files(path, &format!("/data?offset={offset}"));
        // Nothing is sent but the request line, so a 401 can be repeated like any other call.
        self.call(&mut Call::new(Method::GET, &uri)).await
    }

    /// Sends `call` with the token and returns its 2xx answer. A 401 logs in again (unless
    /// another call already did) and repeats the call once.
    async fn call(&self, call: &mut Call<'_>) -> Result<Response, Error> {
        let token = self.token();
        call.set_bearer(token.clone());
        let resp = self.client.send(call).await?;
        if resp.status() != StatusCode::UNAUTHORIZED || self.password.is_none() {
            return self.client.check(resp, false).await;
        }
        http::discard(resp).await;
        self.refresh(&token).await?;
        call.set_bearer(self.token());
        self.client
            .check(self.client.send(call).await?, false)
            .await
    }

    /// Logs in again after `failed` was refused, unless the token was replaced meanwhile (by
    /// a call refused at the same time): one login serves every call waiting here.
    async fn refresh(&self, failed: &str) -> Result<(), Error> {
        let _one_at_a_time = self.relogin.lock().await;
        if self.token() != failed {
            return Ok(());
        }
        let Some(password) = &self.password else {
            // An access token: nothing to log in with; the refusal stands.
            return Ok(());
        };
        tracing::debug!(user = %self.username, "bearer token refused; logging in again");
        let fresh = self.client.login_token(&self.username, password).await?;
        *self
            .token
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }
}

/// The body of `PATCH …/info/attributes`: only the fields that are set, in Qumulo's string
/// forms (mode as 4-digit octal, group auth id and size in decimal, times in RFC 3339 UTC with nanoseconds).
fn patch_body(patch: &AttrPatch) -> Value {
    let mut body = Map::new();
    if let Some(mode) = patch.mode {
        body.insert("mode".into(), format!("{mode:04o}").into());
    }
    if let Some(group) = patch.group {
        body.insert("group".into(), group.to_string().into());
    }
    if let Some(size) = patch.size {
        body.insert("size".into(), size.to_string().into());
    }
    if let Some(t) = patch.modification_time {
        let text = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
        body.insert("modification_time".into(), text.into());
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests;

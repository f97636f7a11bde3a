//! The process-wide client: the cluster's base URL and one pooled HTTPS client, reused by
//! every session (connections are kept alive and shared).

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::api::Version;
use super::error::Error;
use super::session::Session;

/// How to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://qumulo.example.com:8000`.
    pub url: Url,
    /// PEM file of certificates to trust (e.g. the cluster's self-signed certificate), in
    /// addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification entirely (logged as a warning by the caller).
    pub accept_invalid_certs: bool,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on waiting for any read (headers or the next body bytes).
    pub read_timeout: Duration,
}

/// The Qumulo API client. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    #[allow(dead_code)]
    http: reqwest::Client,
    #[allow(dead_code)]
    base: Url,
}

impl Client {
    /// Builds the client (installs the ring TLS provider as the process default if none is).
    pub fn new(_cfg: &ClientConfig) -> Result<Self, Error> {
        todo!()
    }

    /// The cluster's base URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// `GET /v1/version` (needs no login).
    pub async fn version(&self) -> Result<Version, Error> {
        todo!()
    }

    /// Logs in (`POST /v1/session/login`) and returns the user's session. A wrong user name or
    /// password is an error of kind `BadCredentials`.
    pub async fn login(&self, _username: &str, _password: &str) -> Result<Session, Error> {
        todo!()
    }
}

#[allow(dead_code)]
fn _unused(_: PathBuf, _: Duration) {}

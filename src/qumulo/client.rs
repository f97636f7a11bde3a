//! The process-wide client: the cluster's base URL and one pooled HTTPS client, reused by
//! every session (connections are kept alive and shared).

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Certificate, Method, RequestBuilder, Response};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::api::Version;
use super::error::Error;
use super::http;
use super::session::Session;

/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("qftpd/", env!("CARGO_PKG_VERSION"));

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
    /// Built once: every session's requests share its pool of keep-alive connections.
    http: reqwest::Client,
    /// The cluster; every request URL is this text followed by a server-relative URI.
    base: Url,
}

/// The answer of `POST /v1/session/login`.
#[derive(Deserialize)]
struct LoginReply {
    bearer_token: String,
}

impl Client {
    /// Builds the client (installs the ring TLS provider as the process default if none is).
    ///
    /// Certificates are checked against the system roots plus those of `ca_file`. When the
    /// system has no usable roots and there is no `ca_file`, the client is still built (with a
    /// warning) but trusts no certificate, so every HTTPS call fails until `ca_file` or
    /// `accept_invalid_certs` is set.
    pub fn new(cfg: &ClientConfig) -> Result<Self, Error> {
        if !matches!(cfg.url.scheme(), "http" | "https") || !cfg.url.has_host() {
            return Err(Error::Config(format!(
                "cluster URL {} is not an http(s) URL with a host",
                cfg.url
            )));
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Another thread may have installed one in between: that is fine too.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let extra = match &cfg.ca_file {
            Some(path) => Some(load_ca(path)?),
            None => None,
        };
        let http = match builder(cfg, extra.clone()).build() {
            Ok(http) => http,
            Err(e) if extra.is_none() && !cfg.accept_invalid_certs => {
                tracing::warn!(
                    error = %http::chain(&e),
                    "no system CA certificates could be loaded and no CA file is set: the \
                     cluster's certificate cannot be trusted (set ca_file or accept_invalid_certs)"
                );
                builder(cfg, None)
                    .tls_certs_only(Vec::new())
                    .build()
                    .map_err(|e| Error::Config(format!("HTTPS client: {}", http::chain(&e))))?
            }
            Err(e) => {
                let what = match &cfg.ca_file {
                    Some(p) => format!("HTTPS client with CA file {}", p.display()),
                    None => "HTTPS client".to_string(),
                };
                return Err(Error::Config(format!("{what}: {}", http::chain(&e))));
            }
        };
        Ok(Self {
            http,
            base: cfg.url.clone(),
        })
    }

    /// The cluster's base URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// `GET /v1/version` (needs no login).
    pub async fn version(&self) -> Result<Version, Error> {
        let req = self.request(Method::GET, self.endpoint("/v1/version")?);
        let resp = http::check(self.send(req).await?, false).await?;
        http::json(resp, "version").await
    }

    /// Logs in (`POST /v1/session/login`) and returns the user's session. A wrong user name or
    /// password is an error of kind `BadCredentials`.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session, Error> {
        let token = self.login_token(username, password).await?;
        Ok(Session::new(
            self.clone(),
            username.to_string(),
            password.to_string(),
            token,
        ))
    }

    /// Logs in and returns the bearer token (also used by a session logging in again).
    pub(super) async fn login_token(
        &self,
        username: &str,
        password: &str,
    ) -> Result<String, Error> {
        let body = json!({"username": username, "password": password});
        let req = self
            .request(Method::POST, self.endpoint("/v1/session/login")?)
            .json(&body);
        let resp = http::check(self.send(req).await?, true).await?;
        let reply: LoginReply = http::json(resp, "login").await?;
        tracing::debug!(user = username, "logged in to the cluster");
        Ok(reply.bearer_token)
    }

    /// The URL of a server-relative URI (already encoded, used verbatim).
    pub(super) fn endpoint(&self, rel: &str) -> Result<Url, Error> {
        http::join(&self.base, rel)
    }

    /// The URL of `/v1/files/{path}{rest}`, the path encoded as one segment.
    pub(super) fn files(&self, path: &str, rest: &str) -> Result<Url, Error> {
        self.endpoint(&format!("/v1/files/{}{rest}", http::encode_ref(path)))
    }

    /// A request on the shared connection pool.
    pub(super) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends a request, logging it (see [`http::send`]).
    pub(super) async fn send(&self, req: RequestBuilder) -> Result<Response, Error> {
        http::send(&self.base, req).await
    }
}

/// The client builder for `cfg`, trusting `extra` certificates besides the system roots.
fn builder(cfg: &ClientConfig, extra: Option<Vec<Certificate>>) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .read_timeout(cfg.read_timeout)
        .tcp_nodelay(true)
        .user_agent(USER_AGENT);
    if let Some(certs) = extra {
        b = b.tls_certs_merge(certs);
    }
    if cfg.accept_invalid_certs {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b
}

/// Reads the PEM certificates of a CA file; an unreadable file or one without any certificate
/// is a configuration error naming the file.
fn load_ca(path: &Path) -> Result<Vec<Certificate>, Error> {
    let bad = |why: String| Error::Config(format!("CA file {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = Certificate::from_pem_bundle(&pem).map_err(|e| bad(http::chain(&e)))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".to_string()));
    }
    Ok(certs)
}

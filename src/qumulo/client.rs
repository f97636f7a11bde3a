//! The process-wide client: the cluster's nodes and one pooled HTTPS client, reused by every
//! session (connections are kept alive and shared).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Response};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::api::Version;
use super::error::Error;
use super::nodes::Nodes;
use super::observe::{NodeHealth, Observer, Watch};
use super::retry::{self, Call};
use super::session::Session;
use super::{http, tls};

/// How to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URLs of one or more nodes of the cluster (at least one), e.g.
    /// `https://qumulo-1.example.com:8000`. Calls are spread over them and move away from a
    /// node that cannot be reached.
    pub urls: Vec<Url>,
    /// SHA-256 fingerprint of the cluster's own certificate (DER). When set, exactly that
    /// certificate is trusted, whoever signed it and whatever names it holds (a cluster's
    /// self-signed certificate), and `ca_file` and `accept_invalid_certs` are ignored.
    pub pin_sha256: Option<[u8; 32]>,
    /// PEM file of certificates to trust (e.g. the cluster's self-signed certificate), in
    /// addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification entirely (logged as a warning by the caller).
    pub accept_invalid_certs: bool,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on waiting for any read (headers or the next body bytes).
    pub read_timeout: Duration,
    /// Extra attempts of a call that failed in a way that may be retried (see the rule in
    /// `retry`); also the number of times in a row a broken download is resumed.
    pub retries: u32,
}

/// The Qumulo API client. Cheap to clone; clones share the connection pool and the view of
/// which nodes are up.
#[derive(Debug, Clone)]
pub struct Client {
    /// Built once: every session's requests share its pool of keep-alive connections.
    http: reqwest::Client,
    /// The same without a read timeout, for streamed uploads (whose answer comes only after
    /// the whole upload); their stalls are caught by [`super::transfer::Progress`].
    uploads: reqwest::Client,
    /// How long the cluster may keep a request waiting.
    read_timeout: std::time::Duration,
    /// The nodes; every request URL is a node's URL followed by a server-relative URI.
    nodes: Arc<Nodes>,
    /// Extra attempts of a retryable call.
    retries: u32,
    /// Who is told of requests and failures.
    watch: Arc<Watch>,
}

/// The answer of `POST /v1/session/login`.
#[derive(Deserialize)]
struct LoginReply {
    bearer_token: String,
}

impl Client {
    /// Builds the client (installs the ring TLS provider as the process default if none is);
    /// see [`ClientConfig`] for how certificates are trusted.
    pub fn new(cfg: &ClientConfig) -> Result<Self, Error> {
        if cfg.urls.is_empty() {
            return Err(Error::Config("no cluster URL is given".to_string()));
        }
        for url in &cfg.urls {
            if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
                return Err(Error::Config(format!(
                    "cluster URL {url} is not an http(s) URL with a host"
                )));
            }
        }
        Ok(Self {
            http: tls::http_client(cfg, Some(cfg.read_timeout))?,
            uploads: tls::http_client(cfg, None)?,
            read_timeout: cfg.read_timeout,
            nodes: Arc::new(Nodes::new(cfg.urls.clone())),
            retries: cfg.retries,
            watch: Arc::default(),
        })
    }

    /// Reports every request attempt and failed call of this client and its clones to
    /// `observer` from now on; `false` when an observer was set already.
    pub fn observe(&self, observer: Arc<dyn Observer>) -> bool {
        self.watch.set(observer)
    }

    /// Each node as last seen by a request or probe.
    pub fn node_health(&self) -> Vec<NodeHealth> {
        self.nodes.health_all()
    }

    /// Asks each node in turn for `GET /v1/version` (no login), at most `timeout` each, at
    /// once: a node that answers (whatever its status) is up, one that cannot be reached is
    /// down, as for any request.
    pub async fn probe(&self, timeout: Duration) {
        let probes = (0..self.nodes.urls().len()).map(|i| async move {
            let url = http::join(self.nodes.url(i), "/v1/version")?;
            let started = std::time::Instant::now();
            let sent = http::send(self.http.get(url).timeout(timeout)).await;
            let status = sent.as_ref().ok().map(|r| r.status().as_u16());
            self.watch.attempt(started.elapsed(), status);
            match sent {
                Ok(resp) => {
                    self.nodes.up(i);
                    http::discard(resp).await;
                }
                Err(e) => self.nodes.down(i, &e.to_string()),
            }
            Ok::<(), Error>(())
        });
        futures_util::future::join_all(probes).await;
    }

    /// The base URLs of the cluster's nodes, in configuration order.
    pub fn urls(&self) -> &[Url] {
        self.nodes.urls()
    }

    /// The base URL of the first node.
    pub fn url(&self) -> &Url {
        &self.nodes.urls()[0]
    }

    /// `GET /v1/version` (needs no login).
    pub async fn version(&self) -> Result<Version, Error> {
        let mut call = Call::new(Method::GET, "/v1/version");
        let mut broke = 0;
        loop {
            let resp = self.check(self.send(&mut call).await?, false).await?;
            match http::json(resp, "version").await {
                Err(Error::Transport(e)) if broke < self.retries => {
                    retry::broke_off(broke, &e).await;
                    broke += 1;
                }
                done => return done,
            }
        }
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

    /// A session that calls with a long-lived access token instead of a login (see
    /// `Session::with_access_token`); `name` stands for it in logs.
    pub fn access_token_session(&self, name: &str, token: String) -> Session {
        Session::with_access_token(self.clone(), name.to_string(), token)
    }

    /// Logs in and returns the bearer token (also used by a session logging in again).
    pub(super) async fn login_token(
        &self,
        username: &str,
        password: &str,
    ) -> Result<String, Error> {
        let body = json!({"username": username, "password": password});
        let mut call = Call::new(Method::POST, "/v1/session/login").json(Some(&body));
        let resp = self.check(self.send(&mut call).await?, true).await?;
        let reply: LoginReply = http::json(resp, "login").await?;
        tracing::debug!(user = username, "logged in to the cluster");
        Ok(reply.bearer_token)
    }

    /// Extra attempts of a retryable call.
    pub(super) fn retries(&self) -> u32 {
        self.retries
    }

    /// Sends a call to a node, trying again as `retry` allows; returns the answer, whatever
    /// its status.
    pub(super) async fn send(&self, call: &mut Call<'_>) -> Result<Response, Error> {
        let sent = retry::send(&self.http, &self.nodes, &self.watch, self.retries, call).await;
        self.failed(sent)
    }

    /// The answer when it is a 2xx, else its error ([`http::check`]), reported as failed.
    pub(super) async fn check(&self, resp: Response, login: bool) -> Result<Response, Error> {
        self.failed(http::check(resp, login).await)
    }

    /// Reports the failure of a call, if it failed.
    fn failed<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            self.watch.failed(e.kind());
        }
        result
    }

    /// Sends a streamed upload whose body reports its `progress`; fails with
    /// [`Error::Stalled`] when the cluster neither takes data nor answers for the read
    /// timeout (time spent waiting for the data source does not count).
    pub(super) async fn send_upload(
        &self,
        call: &mut Call<'_>,
        progress: &super::transfer::Progress,
    ) -> Result<Response, Error> {
        let sent = tokio::select! {
            resp = retry::send(&self.uploads, &self.nodes, &self.watch, self.retries, call) => resp,
            () = progress.stalled(self.read_timeout) => Err(Error::Stalled(self.read_timeout)),
        };
        self.failed(sent)
    }
}

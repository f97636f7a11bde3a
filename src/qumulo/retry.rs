//! Sending a call to the cluster: which node, and when to try again. This is the one place
//! that decides what is retried.
//!
//! # The rule
//!
//! A call makes at most `1 + retries` attempts (`retries` from [`super::ClientConfig`]), each
//! on the next node in turn, preferring nodes that are up and that this call has not tried:
//!
//! - **Nothing was sent** (the connection or the TLS handshake failed, or timed out): every
//!   call whose body can be sent again moves on to another node. Moving to a node this call has
//!   not tried is immediate and free, so every node is tried once before the call fails; after
//!   that, such attempts count against `retries` and wait a backoff (except a refused
//!   certificate, which no wait repairs). A streamed upload is the exception: its body is spent
//!   by the first attempt, so it fails.
//! - **The request may have reached the cluster** (a reset, a timeout waiting for the answer,
//!   a connection closed without an answer, an answer of 500, 502, 503 or 504): only
//!   idempotent calls are tried again: GET, HEAD, the `PATCH` of attributes and the identity
//!   lookup (a POST that changes nothing). Logins, creations, renames, deletions and data
//!   writes are not: repeating them could apply them twice or report a done change as failed.
//! - Every other answer (2xx, 4xx, other 5xx) is final here; a 401 is handled by the session
//!   (log in again, then the call once more, see [`super::Session`]).
//!
//! Waits grow exponentially with jitter: 100 ms, 200 ms, 400 ms … up to 2 s, each taken at
//! random in its upper half. A node that cannot be connected to or resets the connection is
//! marked down (see `nodes`). A download that breaks midway is resumed from where it broke
//! under the same budget (see `transfer`), as is an idempotent JSON answer cut off midway.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use super::error::Error;
use super::http;
use super::nodes::{Nodes, Tried};
use super::observe::Watch;

/// The first wait before a new attempt.
const FIRST_WAIT: Duration = Duration::from_millis(100);
/// The longest wait before a new attempt.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// One call: what to send, and whether it may be sent again.
pub(super) struct Call<'a> {
    method: Method,
    /// Server-relative URI, already encoded; joined to the node each attempt goes to.
    uri: &'a str,
    token: Option<String>,
    body: Payload<'a>,
    idempotent: bool,
}

/// The body of a call.
enum Payload<'a> {
    None,
    Json(&'a Value),
    /// A streamed upload; `None` once an attempt has taken it.
    Stream(Option<reqwest::Body>),
}

impl<'a> Call<'a> {
    /// A call without body; GET and HEAD are idempotent, other methods are not unless marked.
    pub(super) fn new(method: Method, uri: &'a str) -> Self {
        let idempotent = matches!(method, Method::GET | Method::HEAD);
        Self {
            method,
            uri,
            token: None,
            body: Payload::None,
            idempotent,
        }
    }

    /// Marks a call that may be repeated safely.
    pub(super) fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Sends the bearer token.
    pub(super) fn bearer(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    /// Replaces the bearer token (after logging in again).
    pub(super) fn set_bearer(&mut self, token: String) {
        self.token = Some(token);
    }

    /// Whether the call may be repeated safely.
    pub(super) fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Sends a JSON body (when there is one).
    pub(super) fn json(mut self, body: Option<&'a Value>) -> Self {
        self.body = body.map_or(Payload::None, Payload::Json);
        self
    }

    /// Streams an upload body (`application/octet-stream`); the call is then never repeated.
    pub(super) fn stream(mut self, body: reqwest::Body) -> Self {
        self.body = Payload::Stream(Some(body));
        self.idempotent = false;
        self
    }

    /// Whether the body can be sent by another attempt.
    fn resendable(&self) -> bool {
        !matches!(self.body, Payload::Stream(_))
    }

    /// The request of one attempt on `node`; `None` when the streamed body is already spent.
    fn build(
        &mut self,
        client: &reqwest::Client,
        node: &url::Url,
    ) -> Result<Option<reqwest::RequestBuilder>, Error> {
        let mut req = client.request(self.method.clone(), http::join(node, self.uri)?);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        Ok(Some(match &mut self.body {
            Payload::None => req,
            Payload::Json(body) => req.json(body),
            Payload::Stream(body) => match body.take() {
                Some(body) => req
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body),
                None => return Ok(None),
            },
        }))
    }
}

/// What a failed attempt tells about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptFailure {
    /// No connection was made: nothing was sent.
    Connect,
    /// The node's certificate was refused: nothing was sent, and trying that node again is
    /// pointless until the configuration or the certificate changes.
    Untrusted,
    /// The connection was reset: the node may be going away.
    Reset,
    /// The request may have reached the cluster (timeout, connection closed early).
    Other,
}

impl AttemptFailure {
    fn of(e: &reqwest::Error) -> Self {
        if e.is_connect() && http::tls_error(e).is_some() {
            AttemptFailure::Untrusted
        } else if e.is_connect() {
            AttemptFailure::Connect
        } else if reset(e) {
            AttemptFailure::Reset
        } else {
            AttemptFailure::Other
        }
    }
}

/// Whether a connection reset or abort is among the causes of `e`.
fn reset(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            )
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Whether an answer with this status is worth another attempt (of an idempotent call).
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// The wait before attempt `retry + 1` of a call (`retry` from 0): exponential, capped, taken
/// at random in its upper half so that calls that failed together do not retry together.
pub(super) fn backoff(retry: u32) -> Duration {
    let full = FIRST_WAIT
        .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .min(MAX_WAIT);
    full / 2 + full.mul_f64(fastrand::f64() / 2.0)
}

/// Sends `call` under the rule above and returns the cluster's answer (any status; a
/// retryable 5xx once the attempts are spent). Each attempt is reported to `watch`.
pub(super) async fn send(
    client: &reqwest::Client,
    nodes: &Nodes,
    watch: &Watch,
    retries: u32,
    call: &mut Call<'_>,
) -> Result<Response, Error> {
    let mut tried = nodes.untried();
    let mut retried = 0;
    loop {
        let node = nodes.pick(&mut tried);
        let base = nodes.url(node);
        let Some(req) = call.build(client, base)? else {
            unreachable!("a streamed call is never attempted twice")
        };
        let started = std::time::Instant::now();
        let sent = http::send(req).await;
        let status = sent.as_ref().ok().map(|r| r.status().as_u16());
        watch.attempt(started.elapsed(), status);
        let e = match sent {
            Ok(resp) if call.idempotent && retryable(resp.status()) && retried < retries => {
                nodes.up(node);
                let status = resp.status().as_u16();
                let node = base.as_str();
                tracing::debug!(node, status, "qumulo node failed the request; trying again");
                http::discard(resp).await;
                tokio::time::sleep(backoff(retried)).await;
                retried += 1;
                continue;
            }
            Ok(resp) => {
                nodes.up(node);
                return Ok(resp);
            }
            Err(Error::Transport(e)) => e,
            Err(other) => return Err(other),
        };
        let failure = AttemptFailure::of(&e);
        let error = http::chain(&e);
        if failure != AttemptFailure::Other {
            nodes.down(node, &error);
        }
        let (method, path, node) = (&call.method, call.uri, base.as_str());
        match next(failure, call, &tried, retried < retries) {
            Next::Now => {
                tracing::debug!(node, %method, path, error, "qumulo request failed; next node");
            }
            Next::AfterWait => {
                tracing::debug!(node, %method, path, error, "qumulo request failed; trying again");
                tokio::time::sleep(backoff(retried)).await;
                retried += 1;
            }
            // A node going down was reported already: the failure itself is then a detail.
            Next::GiveUp if failure != AttemptFailure::Other && nodes.all_down() => {
                tracing::debug!(node, %method, path, error, "qumulo request failed");
                return Err(Error::Transport(e));
            }
            Next::GiveUp => {
                tracing::warn!(node, %method, path, error, "qumulo request failed");
                return Err(Error::Transport(e));
            }
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Another node this call has not tried, at once and without counting as a retry.
    Now,
    /// Another attempt after a backoff, counted as a retry.
    AfterWait,
    /// The call fails.
    GiveUp,
}

/// The rule above, for an attempt of `call` that failed with `failure`; `budget` tells whether
/// retries are left.
fn next(failure: AttemptFailure, call: &Call<'_>, tried: &Tried, budget: bool) -> Next {
    let unsent = matches!(failure, AttemptFailure::Connect | AttemptFailure::Untrusted);
    let again = match failure {
        _ if unsent && !call.resendable() => false,
        _ if unsent && tried.any_left() => return Next::Now,
        AttemptFailure::Connect => budget,
        AttemptFailure::Untrusted => false,
        AttemptFailure::Reset | AttemptFailure::Other => call.idempotent && budget,
    };
    if again { Next::AfterWait } else { Next::GiveUp }
}

/// Waits before asking again for an idempotent answer that broke off midway (an
/// [`Error::Transport`] while reading it); `retry` counts such breaks from 0.
pub(super) async fn broke_off(retry: u32, e: &reqwest::Error) {
    tracing::debug!(
        error = http::chain(e),
        "qumulo answer broke off; asking again"
    );
    tokio::time::sleep(backoff(retry)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_100_ms_up_to_2_s_in_their_upper_half() {
        for (retry, full_ms) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (4, 1600),
            (5, 2000),
            (40, 2000),
        ] {
            for _ in 0..50 {
                let wait = backoff(retry).as_millis() as u64;
                assert!(
                    (full_ms / 2..=full_ms).contains(&wait),
                    "retry {retry}: {wait} ms"
                );
            }
        }
    }

    #[test]
    fn what_follows_a_failure_is_the_rule() {
        let nodes = Nodes::new(vec![
            url::Url::parse("https://a.example").unwrap(),
            url::Url::parse("https://b.example").unwrap(),
        ]);
        let mut one_left = nodes.untried();
        nodes.pick(&mut one_left);
        let mut none_left = one_left.clone();
        nodes.pick(&mut none_left);
        let body = Value::Null;
        let get = Call::new(Method::GET, "/v1/x");
        let post = Call::new(Method::POST, "/v1/x").json(Some(&body));
        let upload = Call::new(Method::PUT, "/v1/x").stream(reqwest::Body::from("data"));
        use AttemptFailure::*;
        use Next::*;
        let cases = [
            (Connect, &post, &one_left, false, Now),
            (Connect, &post, &none_left, true, AfterWait),
            (Connect, &post, &none_left, false, GiveUp),
            (Connect, &upload, &one_left, true, GiveUp),
            (Untrusted, &get, &one_left, false, Now),
            (Untrusted, &get, &none_left, true, GiveUp),
            (Reset, &get, &one_left, true, AfterWait),
            (Other, &get, &none_left, true, AfterWait),
            (Other, &get, &one_left, false, GiveUp),
            (Reset, &post, &one_left, true, GiveUp),
            (Other, &post, &one_left, true, GiveUp),
            (Other, &upload, &one_left, true, GiveUp),
        ];
        for (failure, call, tried, budget, expected) in cases {
            let got = next(failure, call, tried, budget);
            assert_eq!(
                got, expected,
                "{failure:?} {} {tried:?} {budget}",
                call.method
            );
        }
    }

    #[test]
    fn only_gets_and_heads_are_idempotent_unless_marked() {
        assert!(Call::new(Method::GET, "/v1/version").idempotent);
        assert!(Call::new(Method::HEAD, "/v1/version").idempotent);
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!Call::new(m.clone(), "/v1/x").idempotent, "{m}");
            assert!(Call::new(m, "/v1/x").idempotent().idempotent);
        }
        let upload = Call::new(Method::PATCH, "/v1/x")
            .idempotent()
            .stream(reqwest::Body::from("data"));
        assert!(!upload.idempotent && !upload.resendable());
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE) && retryable(StatusCode::BAD_GATEWAY));
        assert!(!retryable(StatusCode::NOT_IMPLEMENTED) && !retryable(StatusCode::NOT_FOUND));
    }
}

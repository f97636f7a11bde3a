//! The HTTP plumbing of the client: building URLs by concatenation onto the base URL, sending
//! a request with its debug log line, and turning answers into typed values or [`Error`]s (the
//! one place that maps a non-2xx answer to [`Error::Api`]). Knows no endpoint by name.

use std::time::Instant;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::error::Error;

/// What a path ref escapes: everything but `A-Za-z0-9_.-~`, as Python's
/// `urllib.parse.quote(path, safe='')` (so `/` becomes `%2F` and the path is one segment).
const REF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Longest description taken from a body that is not Qumulo's error JSON.
const TEXT_DESCRIPTION: usize = 200;
/// Longest description taken from Qumulo's error JSON.
const JSON_DESCRIPTION: usize = 1000;
/// How much of an error body is read.
const ERROR_BODY: usize = 64 * 1024;

/// Encodes an absolute Qumulo path as one URL path segment.
pub(super) fn encode_ref(path: &str) -> String {
    utf8_percent_encode(path, REF).to_string()
}

/// The server-relative URI `/v1/files/{path}{rest}`, the path encoded as one segment.
pub(super) fn files(path: &str, rest: &str) -> String {
    format!("/v1/files/{}{rest}", encode_ref(path))
}

/// The server-relative URI `/v2/files/{path}/info/acl`: ACLs are read and written in the
/// API's version 2 shape, as `qq` does.
pub(super) fn acl(path: &str) -> String {
    format!("/v2/files/{}/info/acl", encode_ref(path))
}

/// `base` + `rel` (a server-relative URI, already encoded) as a URL, by concatenation: the
/// text of `rel` is kept as it is, never decoded and re-encoded. `rel` must start with `/`, and
/// the result must stay on the base URL's origin (a `next` URI cannot send the token away).
pub(super) fn join(base: &Url, rel: &str) -> Result<Url, Error> {
    if !rel.starts_with('/') || rel.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(Error::Decode(format!(
            "{rel:?} is not a server-relative URI"
        )));
    }
    let text = format!("{}{rel}", base.as_str().trim_end_matches('/'));
    let url = Url::parse(&text).map_err(|e| Error::Decode(format!("URI {rel:?}: {e}")))?;
    if url.origin() != base.origin() {
        return Err(Error::Decode(format!("URI {rel:?} leaves the cluster")));
    }
    Ok(url)
}

/// Path and query of a URL, for log lines (never the host, user info or token).
fn target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Sends one attempt of a request and logs it: method, path, status and duration at debug.
/// A transport failure is returned for the caller to decide on (see `retry`); a failure of an
/// upload's own data source is [`Error::Aborted`].
pub(super) async fn send(req: RequestBuilder) -> Result<Response, Error> {
    let (client, request) = req.build_split();
    let request = request.map_err(Error::Transport)?;
    let method = request.method().clone();
    let path = target(request.url());
    let started = Instant::now();
    let elapsed_ms = || started.elapsed().as_millis() as u64;
    match client.execute(request).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            tracing::debug!(%method, path, status, elapsed_ms = elapsed_ms(), "qumulo request");
            Ok(resp)
        }
        Err(e) if super::transfer::source_failed(&e) => {
            tracing::debug!(%method, path, error = %e, "upload aborted: its data source failed");
            Err(Error::Aborted(e))
        }
        Err(e) => {
            let error = chain(&e);
            tracing::debug!(%method, path, error, elapsed_ms = elapsed_ms(), "qumulo request failed");
            Err(Error::Transport(e))
        }
    }
}

/// The answer when it is a 2xx, else its [`Error::Api`]; `login` marks a login request.
pub(super) async fn check(resp: Response, login: bool) -> Result<Response, Error> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let url = resp.url().clone();
    let body = read_capped(resp, ERROR_BODY).await;
    let err = api_error(status, &body, login);
    // Refusals (4xx) are the users' business and reach them as FTP replies; a failing
    // cluster (5xx) is the operator's.
    if status.is_server_error()
        && let Error::Api {
            class, description, ..
        } = &err
    {
        tracing::warn!(
            cluster = %url.origin().ascii_serialization(),
            path = target(&url),
            status = status.as_u16(),
            class,
            description,
            "qumulo API failure"
        );
    }
    Err(err)
}

/// Parses a 2xx JSON answer; `what` names it in the error.
pub(super) async fn json<T: DeserializeOwned>(resp: Response, what: &str) -> Result<T, Error> {
    let url = resp.url().clone();
    let bytes = resp.bytes().await.map_err(|e| {
        tracing::warn!(
            cluster = %url.origin().ascii_serialization(),
            path = target(&url),
            error = %chain(&e),
            "qumulo answer failed midway"
        );
        Error::Transport(e)
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let start = clean(&String::from_utf8_lossy(&bytes[..bytes.len().min(80)]), 80);
        Error::Decode(format!("{what}: {e} (answer starts {start:?})"))
    })
}

/// Reads and drops the rest of an answer whose content is not needed, so that the connection
/// goes back to the pool. A failure here does not matter: the call already succeeded.
pub(super) async fn discard(resp: Response) {
    let _ = resp.bytes().await;
}

/// Up to `cap` bytes of a body; a body that fails midway gives what arrived.
async fn read_capped(mut resp: Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= cap {
            body.truncate(cap);
            break;
        }
    }
    body
}

/// Qumulo's error body (other fields: `module`, `stack`, `user_visible`, `inner`).
#[derive(Deserialize)]
struct ErrorBody {
    error_class: String,
    #[serde(default)]
    description: String,
}

/// Maps a non-2xx answer to [`Error::Api`]: class and description from Qumulo's error JSON,
/// or an empty class and the body text (shortened, on one line) when it is not that JSON.
pub(super) fn api_error(status: StatusCode, body: &[u8], login: bool) -> Error {
    let (class, description) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => (e.error_class, clean(&e.description, JSON_DESCRIPTION)),
        Err(_) => (
            String::new(),
            clean(&String::from_utf8_lossy(body), TEXT_DESCRIPTION),
        ),
    };
    let description = if description.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no description")
            .to_string()
    } else {
        description
    };
    Error::Api {
        status: status.as_u16(),
        class,
        description,
        login,
    }
}

/// `text` on one line (control characters, CR and LF included, become spaces), trimmed and
/// cut to `max` characters with `…` marking the cut.
fn clean(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    match trimmed.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", trimmed[..cut].trim_end()),
        None => trimmed.to_string(),
    }
}

/// An error and its sources on one line (reqwest's own text hides the cause).
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = match tls_cause(s) {
            Some(tls) => describe_tls(tls),
            None => s.to_string(),
        };
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The TLS failure among the causes of `e`, if any (a refused certificate, for instance).
pub(super) fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(tls) = tls_cause(s) {
            return Some(tls);
        }
        source = s.source();
    }
    None
}

/// `e` itself as a TLS failure, also when I/O errors carry it (as the TLS stream's do, at
/// times wrapped twice).
fn tls_cause<'a>(mut e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// A TLS failure's text; a certificate refused by the client's own check shows that check's
/// message (rustls would show it in `Debug` form).
fn describe_tls(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            format!("invalid peer certificate: {other}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qumulo::ErrorKind;

    #[test]
    fn refs_are_encoded_as_python_quote_with_nothing_safe() {
        assert_eq!(
            encode_ref("/dir/file name&x é.txt"),
            "%2Fdir%2Ffile%20name%26x%20%C3%A9.txt"
        );
        assert_eq!(encode_ref("/"), "%2F");
        assert_eq!(encode_ref("/a-b_c.d~e"), "%2Fa-b_c.d~e");
        assert_eq!(encode_ref("/%#?+;中"), "%2F%25%23%3F%2B%3B%E4%B8%AD");
    }

    #[test]
    fn join_concatenates_verbatim_and_stays_on_the_cluster() {
        let base = Url::parse("https://q.example:8000").unwrap();
        let u = join(&base, "/v1/files/%2Fa%20b/entries/?after=x%26y&limit=7").unwrap();
        assert_eq!(
            u.as_str(),
            "https://q.example:8000/v1/files/%2Fa%20b/entries/?after=x%26y&limit=7"
        );
        let prefixed = Url::parse("https://q.example:8000/api/").unwrap();
        assert_eq!(
            join(&prefixed, "/v1/version").unwrap().as_str(),
            "https://q.example:8000/api/v1/version"
        );
        for bad in ["v1/x", "@evil.example/v1", "/v1/a b", "/v1/\r\nx", ""] {
            assert!(matches!(join(&base, bad), Err(Error::Decode(_))), "{bad:?}");
        }
    }

    #[test]
    fn error_json_gives_class_and_description() {
        let body = br#"{"module":"qfsd","error_class":"fs_no_such_entry_error","description":"user_export { ino=2 }","stack":[]}"#;
        let e = api_error(StatusCode::NOT_FOUND, body, false);
        assert!(
            matches!(&e, Error::Api { status: 404, class, description, login: false }
            if class == "fs_no_such_entry_error" && description == "user_export { ino=2 }")
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let login = api_error(StatusCode::UNAUTHORIZED, b"{\"error_class\":\"x\"}", true);
        assert_eq!(login.kind(), ErrorKind::BadCredentials);
        assert!(matches!(login, Error::Api { description, .. } if description == "Unauthorized"));
    }

    #[test]
    fn other_bodies_give_their_text_on_one_short_line() {
        let html = format!("<html>\r\nBad gateway\n{}</html>", "x".repeat(500));
        let e = api_error(StatusCode::BAD_GATEWAY, html.as_bytes(), false);
        let Error::Api {
            class, description, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(class, "");
        assert!(
            description.starts_with("<html>  Bad gateway xxx"),
            "{description}"
        );
        assert!(!description.contains(['\r', '\n']));
        assert_eq!(description.chars().count(), TEXT_DESCRIPTION + 1);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let empty = api_error(StatusCode::SERVICE_UNAVAILABLE, b"", false);
        assert!(
            matches!(empty, Error::Api { description, .. } if description == "Service Unavailable")
        );
        let text = api_error(StatusCode::FORBIDDEN, "é\n中".as_bytes(), false);
        assert!(matches!(text, Error::Api { description, .. } if description == "é 中"));
    }
}

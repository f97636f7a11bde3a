//! Streamed data transfers: the reader over a download's body as it arrives (resumed from
//! where it broke when the transfer fails midway), and the chunked body of an upload read from
//! the caller's data as it is sent. Neither holds a whole file.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream};
use reqwest::header::{ETAG, HeaderValue};
use tokio::io::{AsyncBufRead, AsyncRead};
use tokio_util::io::{ReaderStream, StreamReader};

use super::error::Error;
use super::{http, retry};

/// Read size of an upload's data source, so the largest chunk sent.
const UPLOAD_CHUNK: usize = 256 * 1024;

/// A download, as [`super::Session::read`] hands it out: buffered reads hand out the body's
/// chunks as they arrived, without copying them.
pub type Download = Box<dyn AsyncBufRead + Send + Sync + Unpin>;

/// A reader over a download: the body of `first` (the file from `offset`), then, each time the
/// transfer breaks midway (reset, node gone, read timeout, a body shorter than announced), the
/// body of `reopen(position)`: the file again from the first byte not yet delivered, asked for
/// through the retrying client (so on another node when one is up). A part asked for again
/// must come from the same version of the file (the same `ETag`): a file changed meanwhile
/// fails the download rather than splice two versions. It gives up after `retries` breaks in a
/// row without a byte of progress; the failure is then a read error.
pub(super) fn download<F>(
    first: reqwest::Response,
    offset: u64,
    retries: u32,
    reopen: F,
) -> Download
where
    F: Fn(u64) -> BoxFuture<'static, Result<reqwest::Response, Error>> + Send + 'static,
{
    let state = Resume {
        version: first.headers().get(ETAG).cloned(),
        body: Some(first.bytes_stream().boxed()),
        position: offset,
        breaks: 0,
        retries,
        reopen: Box::new(reopen),
        done: false,
    };
    let chunks = futures_util::stream::unfold(state, Resume::next).boxed();
    Box::new(StreamReader::new(Exclusive(Mutex::new(chunks))))
}

/// Asks for a file again from a position.
type Reopen = Box<dyn Fn(u64) -> BoxFuture<'static, Result<reqwest::Response, Error>> + Send>;

/// The state of a download between chunks.
struct Resume {
    /// The `ETag` of the first answer: the version of the file being read.
    version: Option<HeaderValue>,
    /// The body being read; `None` after a break, until the rest is asked for.
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    /// The file offset of the next byte to deliver.
    position: u64,
    /// Breaks in a row without progress.
    breaks: u32,
    /// Breaks in a row allowed.
    retries: u32,
    /// Asks for the rest of the file.
    reopen: Reopen,
    /// Set after a failure was delivered: the reader then sees the end.
    done: bool,
}

impl Resume {
    /// The next chunk of the file, resuming after breaks.
    async fn next(mut self) -> Option<(io::Result<Bytes>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let body = match &mut self.body {
                Some(body) => body,
                None => match (self.reopen)(self.position).await {
                    Ok(resp) if self.same_version(&resp) => {
                        self.body.insert(resp.bytes_stream().boxed())
                    }
                    Ok(_) => {
                        let changed = io::Error::other("the file changed while it was being read");
                        return Some((Err(self.fail(changed)), self));
                    }
                    Err(e) => return Some((Err(self.fail(io::Error::other(e))), self)),
                },
            };
            match body.next().await {
                None => return None,
                Some(Ok(chunk)) => {
                    if !chunk.is_empty() {
                        self.position += chunk.len() as u64;
                        self.breaks = 0;
                    }
                    return Some((Ok(chunk), self));
                }
                Some(Err(e)) if self.breaks < self.retries => {
                    tracing::info!(
                        offset = self.position,
                        error = http::chain(&e),
                        "qumulo download broke off; asking for the rest"
                    );
                    self.body = None;
                    tokio::time::sleep(retry::backoff(self.breaks)).await;
                    self.breaks += 1;
                }
                Some(Err(e)) => return Some((Err(self.fail(read_error(e))), self)),
            }
        }
    }

    /// Whether an answer asked for again holds the version of the file first read.
    fn same_version(&self, resp: &reqwest::Response) -> bool {
        self.version
            .as_ref()
            .is_none_or(|v| resp.headers().get(ETAG) == Some(v))
    }

    /// Ends the download with `e`.
    fn fail(&mut self, e: io::Error) -> io::Error {
        self.done = true;
        self.body = None;
        e
    }
}

/// A transport failure midway as a read error (a timeout keeps its kind).
fn read_error(e: reqwest::Error) -> io::Error {
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

/// A stream made `Sync`, as [`Download`] must be: it is only ever reached through `&mut`, so
/// the lock is never contended (nor even taken).
struct Exclusive<S>(Mutex<S>);

impl<S: Stream + Unpin> Stream for Exclusive<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        inner.poll_next_unpin(cx)
    }
}

/// The data source of an upload failed (e.g. the FTP client went away).
#[derive(Debug, thiserror::Error)]
#[error("reading the data to upload failed: {0}")]
pub(super) struct SourceFailed(#[source] io::Error);

/// An upload body streaming `data` in chunks of up to 256 KiB, without a length (so sent with
/// chunked transfer encoding), and the count of bytes read from `data` so far. A read failure
/// of `data` fails the body, hence the request.
pub(super) fn upload<R>(data: R) -> (reqwest::Body, Arc<AtomicU64>, Progress)
where
    R: AsyncRead + Send + Sync + Unpin + 'static,
{
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let progress = Progress::default();
    let chunks = ReaderStream::with_capacity(data, UPLOAD_CHUNK).map(move |chunk| match chunk {
        Ok(bytes) => {
            counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Ok(bytes)
        }
        Err(e) => Err(SourceFailed(e)),
    });
    let body = ProgressBody {
        inner: chunks,
        progress: progress.clone(),
    };
    (reqwest::Body::wrap_stream(body), sent, progress)
}

/// When an upload's body last moved, and whether it is waiting for its data source: the
/// cluster is stalling when the body is not waiting for its source and has not moved (nor
/// the answer come) for the read timeout.
#[derive(Debug, Clone)]
pub(super) struct Progress(Arc<Mutex<(tokio::time::Instant, bool)>>);

impl Default for Progress {
    fn default() -> Self {
        Self(Arc::new(Mutex::new((tokio::time::Instant::now(), false))))
    }
}

impl Progress {
    fn set(&self, waiting_for_source: bool) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            (tokio::time::Instant::now(), waiting_for_source);
    }

    /// Completes once the body has neither moved nor waited for its source for `limit`.
    pub(super) async fn stalled(&self, limit: std::time::Duration) {
        loop {
            let (since, waiting) = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if waiting {
                tokio::time::sleep(limit).await;
            } else if since.elapsed() >= limit {
                return;
            } else {
                tokio::time::sleep_until(since + limit).await;
            }
        }
    }
}

/// An upload body that reports its [`Progress`].
struct ProgressBody<S> {
    inner: S,
    progress: Progress,
}

impl<S: Stream + Unpin> Stream for ProgressBody<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let poll = Pin::new(&mut self.inner).poll_next(cx);
        self.progress.set(poll.is_pending());
        poll
    }
}

/// Whether a request failed because its upload's data source failed (not the cluster).
pub(super) fn source_failed(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<SourceFailed>() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_the_cluster_stops_taking_is_a_stall_but_a_slow_source_is_not() {
        let limit = Duration::from_secs(60);
        // The body is waiting for its source (a slow FTP client): never a stall.
        let progress = Progress::default();
        progress.set(true);
        let waited = tokio::time::timeout(3 * limit, progress.stalled(limit)).await;
        assert!(
            waited.is_err(),
            "waiting for the source is not the cluster's stall"
        );
        // It moved, then nobody polled it (the cluster takes no more data): a stall after
        // the limit, counted from the last movement.
        progress.set(false);
        let started = tokio::time::Instant::now();
        tokio::time::advance(Duration::from_secs(30)).await;
        progress.set(false);
        progress.stalled(limit).await;
        assert_eq!(started.elapsed(), Duration::from_secs(90));
    }
}

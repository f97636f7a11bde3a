//! Streamed data transfers: the reader over a download's body as it arrives, and the chunked
//! body of an upload read from the caller's data as it is sent. Neither holds a whole file.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

/// Read size of an upload's data source, so the largest chunk sent.
const UPLOAD_CHUNK: usize = 256 * 1024;

/// A download, as [`super::Session::read`] hands it out.
pub(super) type Download = Box<dyn AsyncRead + Send + Sync + Unpin>;

/// A reader over a download's body. Transport failures midway (reset, timeout, a body shorter
/// than its `Content-Length`) are read errors. reqwest's body stream is already `Send + Sync +
/// Unpin` (the return type checks it), so it needs no wrapper.
pub(super) fn reader(resp: reqwest::Response) -> Download {
    let stream = resp.bytes_stream().map_err(|e| {
        let kind = if e.is_timeout() {
            io::ErrorKind::TimedOut
        } else {
            io::ErrorKind::Other
        };
        io::Error::new(kind, e)
    });
    Box::new(StreamReader::new(stream))
}

/// The data source of an upload failed (e.g. the FTP client went away).
#[derive(Debug, thiserror::Error)]
#[error("reading the data to upload failed: {0}")]
pub(super) struct SourceFailed(#[source] io::Error);

/// An upload body streaming `data` in chunks of up to 256 KiB, without a length (so sent with
/// chunked transfer encoding), and the count of bytes read from `data` so far. A read failure
/// of `data` fails the body, hence the request.
pub(super) fn upload<R>(data: R) -> (reqwest::Body, Arc<AtomicU64>)
where
    R: AsyncRead + Send + Sync + Unpin + 'static,
{
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let stream = ReaderStream::with_capacity(data, UPLOAD_CHUNK).map(move |chunk| match chunk {
        Ok(bytes) => {
            counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Ok(bytes)
        }
        Err(e) => Err(SourceFailed(e)),
    });
    (reqwest::Body::wrap_stream(stream), sent)
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

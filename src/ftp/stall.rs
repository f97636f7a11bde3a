//! Data connections that cannot stall forever: a transfer's data connection on which no byte
//! moves for `data_timeout` fails with `TimedOut` ([`DataConnection`], for uploads and
//! downloads), and what it moved is counted ([`Tally`]).
//!
//! Used by [`super::upload`] and [`super::storage`]; knows nothing of libunftp or the cluster.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_io_timeout::{TimeoutReader, TimeoutWriter};

/// What a data connection did during one transfer: the bytes it moved and its first failure.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Bytes moved so far.
    pub(super) bytes: AtomicU64,
    /// The first failure: its kind, and its text for the reply and the log.
    pub(super) failure: OnceLock<(io::ErrorKind, String)>,
    /// When an upload's data connection reached its end.
    pub(super) ended: OnceLock<std::time::Instant>,
}

impl Tally {
    fn count<T>(&self, result: &Poll<io::Result<T>>, bytes: usize) {
        match result {
            Poll::Ready(Ok(_)) => {
                self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            Poll::Ready(Err(e)) => {
                let _ = self.failure.set((e.kind(), e.to_string()));
            }
            Poll::Pending => {}
        }
    }
}

/// A data connection as a transfer uses it: when no byte moves for the data timeout it fails
/// with `TimedOut`, and what it does is counted in a [`Tally`].
pub(super) struct DataConnection<T> {
    io: Pin<Box<T>>,
    tally: Arc<Tally>,
}

impl<T> DataConnection<T> {
    fn new(io: T) -> (Self, Arc<Tally>) {
        let tally = Arc::new(Tally::default());
        let io = Box::pin(io);
        let watched = Self {
            io,
            tally: tally.clone(),
        };
        (watched, tally)
    }
}

impl<R: AsyncRead> DataConnection<TimeoutReader<R>> {
    /// An upload's data connection, failing after `timeout` without a byte.
    pub(super) fn reader(reader: R, timeout: Duration) -> (Self, Arc<Tally>) {
        let mut io = TimeoutReader::new(reader);
        io.set_timeout(Some(timeout));
        Self::new(io)
    }
}

impl<W: AsyncWrite> DataConnection<TimeoutWriter<W>> {
    /// A download's data connection, failing after `timeout` without a byte taken.
    pub(super) fn writer(writer: W, timeout: Duration) -> (Self, Arc<Tally>) {
        let mut io = TimeoutWriter::new(writer);
        io.set_timeout(Some(timeout));
        Self::new(io)
    }
}

impl<R: AsyncRead> AsyncRead for DataConnection<TimeoutReader<R>> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (before, room) = (buf.filled().len(), buf.remaining());
        let result = self.io.as_mut().poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.tally.count(&result, read);
        if matches!(result, Poll::Ready(Ok(()))) && read == 0 && room > 0 {
            self.tally.ended.get_or_init(std::time::Instant::now);
        }
        result
    }
}

impl<W: AsyncWrite> AsyncWrite for DataConnection<TimeoutWriter<W>> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = self.io.as_mut().poll_write(cx, buf);
        let n = match result {
            Poll::Ready(Ok(n)) => n,
            _ => 0,
        };
        self.tally.count(&result, n);
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = self.io.as_mut().poll_flush(cx);
        self.tally.count(&result, 0);
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = self.io.as_mut().poll_shutdown(cx);
        self.tally.count(&result, 0);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_data_connection_times_out_and_bytes_are_counted() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut input, tally) = DataConnection::reader(server, Duration::from_millis(50));
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(input.read(&mut buf).await.unwrap(), 5);
        let err = input.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(tally.bytes.load(Ordering::Relaxed), 5);
        assert_eq!(
            tally.failure.get().map(|f| f.0),
            Some(io::ErrorKind::TimedOut)
        );
        drop(client);
    }

    #[tokio::test]
    async fn a_client_that_reads_nothing_times_the_download_out() {
        let (client, mut server) = tokio::io::duplex(64);
        let (mut output, tally) = DataConnection::writer(&mut server, Duration::from_millis(50));
        let err = output.write_all(&[0u8; 1000]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(tally.bytes.load(Ordering::Relaxed), 64);
        assert_eq!(
            tally.failure.get().map(|f| f.0),
            Some(io::ErrorKind::TimedOut)
        );
        drop(client);
    }
}

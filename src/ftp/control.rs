//! A second handle on a session's control connection, so that the end of an upload can be
//! told apart from the client going away.
//!
//! In stream mode an FTP upload ends when the client closes the data connection, so a client
//! that is killed mid-transfer looks exactly like one that finished: the kernel closes its
//! sockets, the data connection reaches end-of-file. The difference shows on the control
//! connection: a live client keeps it open to read the 226, a dead one has closed it too. The
//! kernel closes a dead process's sockets one after the other, and on a busy machine the
//! process may be preempted in between, so an upload waits a moment for the control
//! connection to close ([`ControlLink::closed_within`]) before it replaces the target file.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

/// A duplicate of the control connection's socket (never read from, only peeked at).
#[derive(Debug, Clone)]
pub struct ControlLink(Arc<tokio::net::TcpStream>);

impl ControlLink {
    /// Duplicates the socket of `stream` (inside the runtime: the duplicate is registered with
    /// it to be waited on).
    pub fn new(stream: &tokio::net::TcpStream) -> std::io::Result<Self> {
        let fd = stream.as_fd().try_clone_to_owned()?;
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true)?;
        Ok(Self(Arc::new(tokio::net::TcpStream::from_std(std)?)))
    }

    /// Whether the client closes (or resets) the control connection within `limit`. Bytes
    /// waiting to be read (a command) mean it is still there, at once; silence for `limit`
    /// too. The kernel is asked once more at the end (a zero `limit` asks it only): what it
    /// knows may not have reached the runtime's reactor yet, and a timer would round up.
    pub async fn closed_within(&self, limit: Duration) -> bool {
        let mut byte = [0u8; 1];
        if !limit.is_zero()
            && let Ok(peeked) = tokio::time::timeout(limit, self.0.peek(&mut byte)).await
        {
            return matches!(peeked, Ok(0) | Err(_));
        }
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        match rustix::net::recv(&*self.0, &mut byte, flags) {
            Ok((0, _)) => true,
            Ok(_) => false,
            Err(e) => e != rustix::io::Errno::AGAIN && e != rustix::io::Errno::INTR,
        }
    }

    /// Shuts the connection down, for when the session is over: the duplicate would otherwise
    /// keep it open as long as any clone of this link lives.
    pub fn close(&self) {
        let _ = rustix::net::shutdown(&*self.0, rustix::net::Shutdown::Both);
    }
}

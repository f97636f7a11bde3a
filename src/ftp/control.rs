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
    /// too. The wait is the kernel's own (`ppoll`, on a blocking thread): the runtime's timers
    /// round a sub-millisecond wait up to one or two milliseconds, which every upload would
    /// pay.
    pub async fn closed_within(&self, limit: Duration) -> bool {
        let link = self.0.clone();
        let wait = move || {
            let timeout =
                rustix::event::Timespec::try_from(limit.min(Duration::from_secs(60))).ok();
            let mut fds = [rustix::event::PollFd::new(
                &*link,
                rustix::event::PollFlags::IN | rustix::event::PollFlags::RDHUP,
            )];
            loop {
                match rustix::event::poll(&mut fds, timeout.as_ref()) {
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return true,
                    Ok(0) => return false,
                    Ok(_) => break,
                }
            }
            let mut byte = [0u8; 1];
            let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
            match rustix::net::recv(&*link, &mut byte, flags) {
                Ok((0, _)) => true,
                Ok(_) => false,
                Err(e) => e != rustix::io::Errno::AGAIN,
            }
        };
        if limit.is_zero() {
            return wait();
        }
        tokio::task::spawn_blocking(wait).await.unwrap_or(false)
    }

    /// Shuts the connection down, for when the session is over: the duplicate would otherwise
    /// keep it open as long as any clone of this link lives.
    pub fn close(&self) {
        let _ = rustix::net::shutdown(&*self.0, rustix::net::Shutdown::Both);
    }
}

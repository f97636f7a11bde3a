//! A handle on a session's control connection, so that the end of an upload can be
//! told apart from the client going away.
//!
//! In stream mode an FTP upload ends when the client closes the data connection, so a client
//! that is killed mid-transfer looks exactly like one that finished: the kernel closes its
//! sockets, the data connection reaches end-of-file. The difference shows on the control
//! connection: a live client keeps it open to read the 226, a dead one has closed it too. The
//! kernel closes a dead process's sockets one after the other, and on a busy machine the
//! process may be preempted in between, so an upload waits a moment for the control
//! connection to close ([`ControlLink::closed_within`]) before it replaces the target file.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

/// The session's control socket, shared with libunftp's control loop (`Server::service` takes
/// it as an `Arc`): never read from here, only peeked at, so an idle session holds one
/// descriptor. Holding it keeps the socket open after the control loop has ended, so a
/// transfer still running can look at it: [`ControlLink::close`] shuts it down when the
/// session is over.
#[derive(Debug, Clone)]
pub struct ControlLink(Arc<TcpStream>);

impl ControlLink {
    /// Shares `stream`, the accepted control connection.
    pub fn new(stream: TcpStream) -> Self {
        Self(Arc::new(stream))
    }

    /// The socket, for libunftp to serve the session on.
    pub fn socket(&self) -> Arc<TcpStream> {
        self.0.clone()
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

    /// Shuts the connection down, for when the session is over (or is stuck writing to a
    /// client that does not read): a clone of this link would otherwise keep it open as long
    /// as it lives.
    pub fn close(&self) {
        let _ = rustix::net::shutdown(&*self.0, rustix::net::Shutdown::Both);
    }
}

//! The control socket: the one systemd passes under the name `ftp` (matched by
//! `LISTEN_FDNAMES`, never by position), or one bound from `ftp.listen`.

use std::net::{SocketAddr, TcpListener};

/// Where the control socket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Passed by systemd (socket activation).
    Systemd,
    /// Bound by qftpd from `ftp.listen`.
    Bound,
}

/// Errors taking or binding the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// systemd passed sockets, none of them named `ftp`.
    #[error(
        "systemd passed {count} socket(s) named {names:?}, none named \"ftp\" (set FileDescriptorName=ftp in the .socket unit)"
    )]
    NoFtpSocket {
        /// How many were passed.
        count: usize,
        /// Their names.
        names: Vec<String>,
    },
    /// The socket named `ftp` is not a listening TCP socket.
    #[error("the socket systemd passed as \"ftp\" is not a listening TCP socket: {0}")]
    NotTcp(std::io::Error),
    /// Binding `ftp.listen` failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Takes the socket systemd passed as `ftp`, if systemd passed any. Call it before any other
/// thread starts: it reads and clears `LISTEN_FDS`/`LISTEN_PID` from the environment.
pub fn from_systemd() -> Result<Option<TcpListener>, ListenError> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(String::from).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let Some(index) = names.iter().position(|n| n == "ftp") else {
        return Err(ListenError::NoFtpSocket {
            count: fds.len(),
            names,
        });
    };
    let listener = fds
        .take_tcp_listener(index)
        .map_err(ListenError::NotTcp)?
        .ok_or_else(|| ListenError::NotTcp(std::io::Error::other("no socket at that position")))?;
    listener
        .set_nonblocking(true)
        .map_err(ListenError::NotTcp)?;
    Ok(Some(listener))
}

/// Binds `addr` (non-blocking, ready for tokio).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    let listener = TcpListener::bind(addr).map_err(|source| ListenError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ListenError::Bind { addr, source })?;
    Ok(listener)
}

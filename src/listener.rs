//! The control sockets: every one systemd passes under the name `ftp` (matched by
//! `LISTEN_FDNAMES`, never by position; e.g. an IPv4 and an IPv6 socket of `qftpd.socket`), or
//! one bound from `ftp.listen`. Likewise the health and metrics listener: a socket systemd
//! passes as `metrics` (`qftpd-metrics.socket`), or one bound from `metrics.listen`.

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
    /// A socket named `ftp` or `metrics` is not a listening TCP socket.
    #[error("a socket systemd passed as \"ftp\" or \"metrics\" is not a listening TCP socket: {0}")]
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

/// The sockets systemd passed.
#[derive(Debug, Default)]
pub struct Passed {
    /// Those named `ftp` (none when systemd passed no socket).
    pub ftp: Vec<TcpListener>,
    /// The first one named `metrics`, if any.
    pub metrics: Option<TcpListener>,
}

/// Takes the sockets systemd passed as `ftp` and `metrics`. Call it before any other thread
/// starts: it reads and clears `LISTEN_FDS`/`LISTEN_PID` from the environment.
pub fn from_systemd() -> Result<Passed, ListenError> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(String::from).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(Passed::default());
    }
    let positions: Vec<usize> = (0..fds.len())
        .filter(|&i| names.get(i).is_some_and(|n| n == "ftp"))
        .collect();
    if positions.is_empty() {
        return Err(ListenError::NoFtpSocket {
            count: fds.len(),
            names,
        });
    }
    let mut take = |index: usize| {
        let listener = fds
            .take_tcp_listener(index)
            .map_err(ListenError::NotTcp)?
            .ok_or_else(|| {
                ListenError::NotTcp(std::io::Error::other("no socket at that position"))
            })?;
        listener
            .set_nonblocking(true)
            .map_err(ListenError::NotTcp)?;
        Ok::<_, ListenError>(listener)
    };
    let ftp = positions
        .into_iter()
        .map(&mut take)
        .collect::<Result<Vec<_>, _>>()?;
    let metrics = names
        .iter()
        .position(|n| n == "metrics")
        .map(take)
        .transpose()?;
    Ok(Passed { ftp, metrics })
}

/// The metrics listener: the socket systemd passed as `metrics`, else one bound on `listen`
/// when set, else none (non-blocking, ready for tokio).
pub fn metrics(
    passed: Option<TcpListener>,
    listen: Option<SocketAddr>,
) -> Result<Option<(tokio::net::TcpListener, Origin)>, ListenError> {
    let (std, origin) = match (passed, listen) {
        (Some(l), _) => (l, Origin::Systemd),
        (None, Some(addr)) => (bind(addr)?, Origin::Bound),
        (None, None) => return Ok(None),
    };
    let listener = tokio::net::TcpListener::from_std(std).map_err(ListenError::NotTcp)?;
    Ok(Some((listener, origin)))
}

/// Connections the kernel queues for the accept loop (as systemd's `Backlog=` default,
/// capped by `net.core.somaxconn`). The standard library's 128 overflows when hundreds of
/// clients connect at once: the kernel then drops their handshake's last packet, and a
/// client that waits for the greeting waits in vain.
const BACKLOG: i32 = 4096;

/// Binds `addr` (non-blocking, ready for tokio).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    use socket2::{Domain, Socket, Type};
    let failed = |source| ListenError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(failed)?;
    socket.set_reuse_address(true).map_err(failed)?;
    if addr.is_ipv6() {
        // `[::]` serves IPv4 clients too, whatever the system's default.
        socket.set_only_v6(false).map_err(failed)?;
    }
    socket.bind(&addr.into()).map_err(failed)?;
    socket.listen(BACKLOG).map_err(failed)?;
    socket.set_nonblocking(true).map_err(failed)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listen queue of a bound socket, as `ss` shows it (`Send-Q` of a listening socket).
    #[test]
    fn a_bound_socket_queues_a_burst_of_connections() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        let out = std::process::Command::new("ss")
            .args(["-Hltn", &format!("sport = :{port}")])
            .output()
            .expect("run ss");
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let queue: i32 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        let somaxconn: i32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(queue, BACKLOG.min(somaxconn), "{line}");
    }
}

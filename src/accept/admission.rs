//! Which connections the accept loop takes: at most `max-connections` in all and
//! `max-connections-per-ip` from one address, none from a banned address and none while the
//! service has no valid configuration. Every text the accept loop sends a client is in
//! [`Refusal::reply`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::ftp::address_key;
use crate::state::Stats;

/// The connections the accept loop has taken.
#[derive(Debug)]
pub struct Admission {
    /// Counts the open sessions.
    stats: Arc<Stats>,
    /// Open control connections per client address (IPv6: per /64, as failed logins).
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

impl Admission {
    /// Counts connections in `stats`.
    pub fn new(stats: Arc<Stats>) -> Self {
        Self {
            stats,
            per_address: Mutex::default(),
        }
    }

    /// Counts a new connection from `ip` unless that would pass `max` in all or `per_ip`
    /// from the address (an IPv6 client's /64: one client usually owns it whole, and picks any
    /// address in it); the count is given back by dropping the returned permit.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max: usize,
        per_ip: usize,
    ) -> Result<Permit, Refusal> {
        let ip = address_key(ip);
        let mut map = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        if self.stats.sessions.load(Ordering::Relaxed) >= max {
            return Err(Refusal::Full);
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= per_ip {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            admission: self.clone(),
            ip,
        })
    }
}

/// A counted connection; dropping it gives the count back.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    /// The key it is counted by.
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self
            .admission
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.admission
            .stats
            .sessions
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection is turned away.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// `max-connections` are open.
    Full,
    /// `max-connections-per-ip` are open from the address.
    PerAddress,
    /// The address is banned after too many failed logins.
    Banned,
    /// The service has no valid configuration.
    Unconfigured,
    /// From a load balancer (`ftp.proxy-protocol-from`), without a valid PROXY protocol header.
    NoProxyHeader,
}

impl Refusal {
    /// The reply the client gets before the connection is closed.
    pub fn reply(self) -> &'static [u8] {
        match self {
            Refusal::Full => b"421 Too many connections; try again later\r\n",
            Refusal::PerAddress => {
                b"421 Too many connections from your address; try again later\r\n"
            }
            Refusal::Banned => b"421 Too many failed logins from your address; try again later\r\n",
            Refusal::NoProxyHeader => {
                b"421 Connection refused: the load balancer sent no valid PROXY protocol header (see the journal)\r\n"
            }
            Refusal::Unconfigured => {
                b"421 qftpd is not configured: the administrator must fix its configuration (see the journal)\r\n"
            }
        }
    }
}

/// Sends `refusal`'s reply and closes the connection (in the background: a client that does
/// not read cannot hold the accept loop).
pub fn turn_away(sessions: &mut JoinSet<()>, stream: tokio::net::TcpStream, refusal: Refusal) {
    sessions.spawn(refuse(stream, refusal));
}

/// Sends `refusal`'s reply and closes the connection, in 5 s at most.
pub async fn refuse(mut stream: tokio::net::TcpStream, refusal: Refusal) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(refusal.reply()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_ipv4_address_and_per_ipv6_network() {
        let stats = Arc::new(Stats::default());
        let admission = Arc::new(Admission::new(stats.clone()));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let admit = |s: &str| admission.admit(ip(s), 100, 2);
        let a = admit("2001:db8:1:2::1").unwrap();
        let _b = admit("2001:db8:1:2:ffff:ffff:ffff:fffe").unwrap();
        assert!(
            matches!(admit("2001:db8:1:2::3"), Err(Refusal::PerAddress)),
            "a third connection from the same /64"
        );
        let _c = admit("2001:db8:1:3::1").expect("another /64");
        drop(a);
        let _d = admit("2001:db8:1:2::4").expect("a slot came back to the /64");

        let _e = admit("192.0.2.1").unwrap();
        let _f = admit("::ffff:192.0.2.1").unwrap();
        assert!(
            matches!(admit("192.0.2.1"), Err(Refusal::PerAddress)),
            "IPv4-mapped connections count as their IPv4 address"
        );
        let _g = admit("192.0.2.2").expect("IPv4 addresses count one by one");
        assert_eq!(stats.sessions.load(Ordering::Relaxed), 6);
        assert_eq!(admission.per_address.lock().unwrap().len(), 4);
    }
}

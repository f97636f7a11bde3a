//! The accept loop: every accepted control connection is served by its own libunftp server,
//! built from the gateway in force when it was accepted (a reload swaps the gateway; open
//! sessions keep theirs). The caller injects the listener and the stop signal, so tests use
//! port 0 and production a socket from systemd.
//!
//! On stop the loop stops accepting and tells every session to end: idle ones get 421 at
//! once, ones with a transfer in progress when it completes. Sessions still open after the
//! grace period are closed.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ftp::{ClusterNames, Gateway, LoginGuard, address_key};

/// What the service is doing, for `STATUS=` and the watchdog.
#[derive(Debug)]
pub struct Activity {
    /// Open FTP sessions.
    pub sessions: AtomicUsize,
    /// Data transfers in progress.
    pub transfers: AtomicUsize,
    /// Failed logins of every connection, kept across reloads.
    pub logins: LoginGuard,
    /// The cluster's name once learnt, kept across reloads that keep the cluster.
    pub cluster_names: ClusterNames,
    /// Open control connections per client address (IPv6: per /64, as failed logins).
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// When the accept loop last showed it runs, in milliseconds since `started`.
    heartbeat_ms: AtomicU64,
    started: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            sessions: AtomicUsize::new(0),
            transfers: AtomicUsize::new(0),
            logins: LoginGuard::default(),
            cluster_names: ClusterNames::default(),
            per_address: Mutex::default(),
            heartbeat_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl Activity {
    fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    /// Counts a new connection from `ip` unless that would pass `max` in all or `per_ip`
    /// from the address (an IPv6 client's /64: one client usually owns it whole, and picks any
    /// address in it); the count is given back by dropping the returned slot.
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize, per_ip: usize) -> Result<Slot, Refusal> {
        let ip = address_key(ip);
        let mut map = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        if self.sessions.load(Ordering::Relaxed) >= max {
            return Err(Refusal::Full);
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= per_ip {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        self.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            activity: self.clone(),
            ip,
        })
    }

    /// How long ago the accept loop last ran.
    pub fn since_heartbeat(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// A counted connection; dropping it gives the count back.
struct Slot {
    activity: Arc<Activity>,
    /// The key it is counted by.
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .activity
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.activity.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection is turned away.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Full,
    PerAddress,
    Banned,
}

impl Refusal {
    fn reply(self) -> &'static [u8] {
        match self {
            Refusal::Full => b"421 Too many connections; try again later\r\n",
            Refusal::PerAddress => {
                b"421 Too many connections from your address; try again later\r\n"
            }
            Refusal::Banned => b"421 Too many failed logins from your address; try again later\r\n",
        }
    }
}

/// Sends `reply` and closes the connection (in the background: a client that does not read
/// cannot hold the accept loop).
fn turn_away(sessions: &mut JoinSet<()>, stream: tokio::net::TcpStream, reply: &'static [u8]) {
    sessions.spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = stream.write_all(reply).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
}

/// How often the accept loop shows it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// The gateway new sessions get; replaced on reload. Empty while the service has no valid
/// configuration (it was started by its socket with a broken one): clients then get 421.
#[derive(Debug)]
pub struct Current(RwLock<Option<Arc<Gateway>>>);

impl Current {
    /// Starts with `gateway`.
    pub fn new(gateway: Gateway) -> Self {
        Self(RwLock::new(Some(Arc::new(gateway))))
    }

    /// Starts without a valid configuration.
    pub fn unconfigured() -> Self {
        Self(RwLock::new(None))
    }

    /// The gateway in force, if there is one.
    pub fn get(&self) -> Option<Arc<Gateway>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `gateway` in force for the sessions that start from now on.
    pub fn replace(&self, gateway: Gateway) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(gateway));
    }
}

/// The reply of a service without a valid configuration.
/// When the accept loop shuts down a connection that has not logged in: a little after the
/// session's own login deadline (`login`), which a session answers itself unless it is stuck.
fn login_backstop(login: Duration) -> Duration {
    login + login.min(Duration::from_secs(10))
}

const UNCONFIGURED: &[u8] =
    b"421 qftpd is not configured: the administrator must fix its configuration (see the journal)\r\n";

/// Serves FTP on `listener` until `shutdown` completes, then drains the sessions for at most
/// the `shutdown-grace` of the configuration in force then (a reload may have changed it).
pub async fn run(
    listener: TcpListener,
    current: Arc<Current>,
    activity: Arc<Activity>,
    shutdown: impl Future<Output = ()>,
) {
    let mut sessions = JoinSet::new();
    let stop = CancellationToken::new();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut accept_failed: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            _ = heartbeat.tick() => {
                activity.beat();
                continue;
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning, and
                    // say so once per burst, not ten times a second.
                    let now = Instant::now();
                    if accept_failed.is_none_or(|last| now - last > Duration::from_secs(10)) {
                        tracing::error!(
                            error = %e,
                            sessions = activity.sessions.load(Ordering::Relaxed),
                            "accept failed; new connections wait in the listen queue"
                        );
                    }
                    accept_failed = Some(now);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(gateway) = current.get() else {
            tracing::debug!(%peer, "connection refused: no valid configuration");
            turn_away(&mut sessions, stream, UNCONFIGURED);
            continue;
        };
        let ip = peer.ip().to_canonical();
        let (max, per_ip) = gateway.connection_limits();
        let slot = if activity.logins.address_banned(ip) {
            Err(Refusal::Banned)
        } else {
            activity.admit(ip, max, per_ip)
        };
        let slot = match slot {
            Ok(slot) => slot,
            Err(refusal) => {
                // The ban itself was logged when it began: a banned client's every new
                // connection is not worth a line each.
                if matches!(refusal, Refusal::Banned) {
                    tracing::debug!(%peer, ?refusal, "connection refused");
                } else {
                    tracing::warn!(%peer, ?refusal, "connection refused");
                }
                turn_away(&mut sessions, stream, refusal.reply());
                continue;
            }
        };
        let control = crate::ftp::ControlLink::new(&stream)
            .inspect_err(
                |e| tracing::warn!(%peer, error = %e, "cannot watch the control connection"),
            )
            .ok();
        let (server, logged_in) =
            match gateway.server(stop.clone().cancelled_owned(), control.clone()) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(error = %e, %peer, "cannot serve the connection");
                    continue;
                }
            };
        tracing::debug!(%peer, "connection");
        let backstop = login_backstop(gateway.login_timeout());
        sessions.spawn(async move {
            let serve = server.service(stream);
            tokio::pin!(serve);
            let served = tokio::select! {
                served = &mut serve => served,
                () = tokio::time::sleep(backstop) => {
                    // The session enforces the login deadline itself (421, then close), unless
                    // it is stuck writing replies its client does not read: shut the connection
                    // down under it.
                    if !logged_in.get() && let Some(control) = &control {
                        tracing::info!(%peer, "closing a connection that did not log in in time and does not read its replies");
                        control.close();
                    }
                    serve.await
                }
            };
            if let Err(e) = served {
                tracing::warn!(%peer, error = %e, "session ended with an error");
            }
            if let Some(control) = control {
                control.close();
            }
            drop(slot);
        });
    }
    drop(listener);
    stop.cancel();
    let grace = current.get().map_or_else(
        || Duration::from_secs(crate::config::FtpConfig::default().shutdown_grace),
        |gateway| gateway.shutdown_grace(),
    );
    let open = sessions.len();
    if open > 0 {
        tracing::info!(
            sessions = open,
            grace_secs = grace.as_secs(),
            "stopping: waiting for sessions to end"
        );
    }
    // The loop still runs while it drains: the watchdog keeps being pinged (systemd's
    // TimeoutStopSec= bounds the stop, not the watchdog).
    let drained = tokio::time::timeout(grace, async {
        loop {
            tokio::select! {
                joined = sessions.join_next() => if joined.is_none() { break },
                _ = heartbeat.tick() => activity.beat(),
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            sessions = sessions.len(),
            "stopping: grace period over, closing the sessions still open"
        );
        sessions.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_ipv4_address_and_per_ipv6_network() {
        let activity = Arc::new(Activity::default());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let admit = |s: &str| activity.admit(ip(s), 100, 2);
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
        assert_eq!(activity.sessions.load(Ordering::Relaxed), 6);
        assert_eq!(activity.per_address.lock().unwrap().len(), 4);
    }
}

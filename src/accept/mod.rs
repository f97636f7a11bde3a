//! The accept loop: every accepted control connection is served by its own libunftp server,
//! built from the gateway in force when it was accepted (a reload swaps the gateway; open
//! sessions keep theirs). The caller injects the listeners and the stop signal, so tests use
//! port 0 and production the sockets from systemd (IPv4 and IPv6).
//!
//! On stop the loop stops accepting and tells every session to end: idle ones get 421 at
//! once, ones with a transfer in progress when it completes. Sessions still open after the
//! grace period are closed.
//!
//! It uses `ftp` (the gateway) and `state`; only the service's lifecycle (`daemon`, `demo`)
//! uses it, never `ftp`.

mod admission;
mod proxy;

/// Entry points for the fuzz target `proxy_header` (not a stable interface).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    pub use super::proxy::{HeaderError, Origin, parse, read_header};
}

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ftp::Gateway;
use crate::state::{AcceptFailures, HEARTBEAT, InForce, Stats};
use admission::{Admission, Permit, Refusal, refuse, turn_away};
use proxy::{HeaderError, Origin};

/// When the accept loop shuts down a connection that has not logged in: a little after the
/// session's own login deadline (`login`), which a session answers itself unless it is stuck.
fn login_backstop(login: Duration) -> Duration {
    login + login.min(Duration::from_secs(10))
}

/// The next connection on any of `listeners`, taking them in turn from `next` so that a busy
/// one cannot keep the others waiting. Cancel-safe, like `TcpListener::accept`.
async fn accept_any(
    listeners: &[TcpListener],
    next: &mut usize,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| {
        for i in 0..listeners.len() {
            let index = (*next + i) % listeners.len();
            if let std::task::Poll::Ready(accepted) = listeners[index].poll_accept(cx) {
                *next = index + 1;
                return std::task::Poll::Ready(accepted);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Serves FTP on `listeners` until `shutdown` completes, then drains the sessions for at most
/// the `shutdown-grace` of the configuration in force then (a reload may have changed it).
pub async fn run(
    listeners: Vec<TcpListener>,
    live: Arc<InForce<Gateway>>,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) {
    let admission = Arc::new(Admission::new(stats.clone()));
    let mut sessions = JoinSet::new();
    let stop = CancellationToken::new();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut accept_failures = AcceptFailures::default();
    let mut next = 0;
    // Set when the stop came with a `stop-delay`: new sessions are taken until it is over.
    let mut delayed_stop: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown, if delayed_stop.is_none() => {
                stats.draining.store(true, Ordering::Relaxed);
                let delay = live.get().map_or(Duration::ZERO, |gateway| gateway.stop_delay());
                if delay.is_zero() {
                    break;
                }
                tracing::info!(
                    delay_secs = delay.as_secs(),
                    "stopping: /ready answers 503; new sessions are still taken for {} s",
                    delay.as_secs()
                );
                delayed_stop = Some(Box::pin(tokio::time::sleep(delay)));
                continue;
            }
            () = async { delayed_stop.as_mut().expect("guarded").await }, if delayed_stop.is_some() => break,
            _ = heartbeat.tick() => {
                stats.beat();
                continue;
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            accepted = accept_any(&listeners, &mut next) => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning, and
                    // say so once per burst, not ten times a second.
                    if accept_failures.failed() {
                        tracing::error!(
                            error = %e,
                            sessions = stats.sessions.load(Ordering::Relaxed),
                            "accept failed; new connections wait in the listen queue"
                        );
                    }
                    tokio::time::sleep(AcceptFailures::PAUSE).await;
                    continue;
                }
            },
        };
        // Replies are short lines, and a transfer's 150 and 226 go out back to back: without
        // TCP_NODELAY the 226 waits for the client's delayed ACK of the 150 (40 ms on Linux).
        // Set here whatever the listener (qftpd.socket asks for NoDelay= too).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let Some(gateway) = live.get() else {
            tracing::debug!(%peer, "connection refused: no valid configuration");
            turn_away(&mut sessions, stream, Refusal::Unconfigured);
            continue;
        };
        if gateway.relays(peer.ip()) {
            // The balancer's header names the client; it is read in the session's own task, so
            // that a slow one holds up no other connection.
            let (admission, stop) = (admission.clone(), stop.clone());
            sessions.spawn(async move {
                let mut stream = stream;
                let client = match proxy::read_header(&mut stream).await {
                    Ok(Origin::Client(client)) => client,
                    Ok(Origin::Balancer) => peer,
                    Err(HeaderError::Closed) => {
                        tracing::debug!(balancer = %peer, "connection closed before its PROXY protocol header (a health check)");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(balancer = %peer, error = %e, "connection refused");
                        refuse(stream, Refusal::NoProxyHeader).await;
                        return;
                    }
                };
                let connection = Connection { stream, client, balancer: Some(peer) };
                match admit(&admission, &gateway, &connection) {
                    Ok(permit) => serve(connection, gateway, permit, stop).await,
                    Err(refusal) => refuse(connection.stream, refusal).await,
                }
            });
            continue;
        }
        let connection = Connection {
            stream,
            client: peer,
            balancer: None,
        };
        match admit(&admission, &gateway, &connection) {
            Ok(permit) => {
                sessions.spawn(serve(connection, gateway, permit, stop.clone()));
            }
            Err(refusal) => turn_away(&mut sessions, connection.stream, refusal),
        }
    }
    drop(listeners);
    tracing::info!(
        sessions = stats.sessions.load(Ordering::Relaxed),
        "stopping: no new sessions; running transfers may finish"
    );
    stop.cancel();
    let grace = live.get().map_or_else(
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
                _ = heartbeat.tick() => stats.beat(),
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

/// An accepted control connection, and who it is from.
struct Connection {
    stream: TcpStream,
    /// The client's address: the socket's peer, or the one a load balancer's PROXY protocol
    /// header named.
    client: SocketAddr,
    /// The load balancer that relayed the connection, if one did.
    balancer: Option<SocketAddr>,
}

/// Admits a connection from its client's address (or says why not): not banned, and within the
/// caps of the gateway in force.
fn admit(
    admission: &Arc<Admission>,
    gateway: &Gateway,
    connection: &Connection,
) -> Result<Permit, Refusal> {
    let (client, balancer) = (connection.client, connection.balancer);
    let ip = client.ip().to_canonical();
    let (max, per_ip) = gateway.connection_limits();
    let admitted = if gateway.address_banned(ip) {
        Err(Refusal::Banned)
    } else {
        admission.admit(ip, max, per_ip)
    };
    match admitted {
        // The ban itself was logged when it began: a banned client's every new connection is
        // not worth a line each.
        Err(refusal @ Refusal::Banned) => {
            tracing::debug!(peer = %client, ?balancer, ?refusal, "connection refused");
        }
        Err(refusal) => tracing::warn!(peer = %client, ?balancer, ?refusal, "connection refused"),
        Ok(_) => {}
    }
    admitted
}

/// Serves an admitted connection until its session ends.
async fn serve(
    connection: Connection,
    gateway: Arc<Gateway>,
    permit: Permit,
    stop: CancellationToken,
) {
    let Connection {
        stream,
        client: peer,
        balancer,
    } = connection;
    let control = crate::ftp::ControlLink::new(stream);
    let (server, logged_in) =
        match gateway.session_server(stop.cancelled_owned(), Some(control.clone())) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!(error = %e, %peer, "cannot serve the connection");
                return;
            }
        };
    tracing::debug!(%peer, ?balancer, "connection");
    let backstop = login_backstop(gateway.login_timeout());
    let serve = gateway.serve(server, control.socket(), balancer.map(|_| peer));
    tokio::pin!(serve);
    let served = tokio::select! {
        served = &mut serve => served,
        () = tokio::time::sleep(backstop) => {
            // The session enforces the login deadline itself (421, then close), unless it is
            // stuck writing replies its client does not read: shut the connection down under it.
            if !logged_in.get() {
                tracing::info!(%peer, "closing a connection that did not log in in time and does not read its replies");
                control.close();
            }
            serve.await
        }
    };
    if let Err(e) = served {
        tracing::warn!(%peer, error = %e, "session ended with an error");
    }
    control.close();
    drop(permit);
}

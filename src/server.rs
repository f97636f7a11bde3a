//! The accept loop: every accepted control connection is served by its own libunftp server,
//! built from the gateway in force when it was accepted (a reload swaps the gateway; open
//! sessions keep theirs). The caller injects the listener and the stop signal, so tests use
//! port 0 and production a socket from systemd.
//!
//! On stop the loop stops accepting and tells every session to end: idle ones get 421 at
//! once, ones with a transfer in progress when it completes. Sessions still open after the
//! grace period are closed.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ftp::Gateway;

/// What the service is doing, for `STATUS=` and the watchdog.
#[derive(Debug)]
pub struct Activity {
    /// Open FTP sessions.
    pub sessions: AtomicUsize,
    /// Data transfers in progress.
    pub transfers: AtomicUsize,
    /// When the accept loop last showed it runs, in milliseconds since `started`.
    heartbeat_ms: AtomicU64,
    started: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            sessions: AtomicUsize::new(0),
            transfers: AtomicUsize::new(0),
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

    /// How long ago the accept loop last ran.
    pub fn since_heartbeat(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
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
const UNCONFIGURED: &[u8] =
    b"421 qftpd is not configured: the administrator must fix its configuration (see the journal)\r\n";

/// Serves FTP on `listener` until `shutdown` completes, then drains the sessions for at most
/// `grace`.
pub async fn run(
    listener: TcpListener,
    current: Arc<Current>,
    activity: Arc<Activity>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let mut sessions = JoinSet::new();
    let stop = CancellationToken::new();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
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
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(gateway) = current.get() else {
            tracing::debug!(%peer, "connection refused: no valid configuration");
            sessions.spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let _ = stream.write_all(UNCONFIGURED).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let server = match gateway.server(stop.clone().cancelled_owned()) {
            Ok(server) => server,
            Err(e) => {
                tracing::error!(error = %e, %peer, "cannot serve the connection");
                continue;
            }
        };
        tracing::debug!(%peer, "connection");
        let activity = activity.clone();
        activity.sessions.fetch_add(1, Ordering::Relaxed);
        sessions.spawn(async move {
            if let Err(e) = server.service(stream).await {
                tracing::warn!(%peer, error = %e, "session ended with an error");
            }
            activity.sessions.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    stop.cancel();
    let open = sessions.len();
    if open > 0 {
        tracing::info!(
            sessions = open,
            grace_secs = grace.as_secs(),
            "stopping: waiting for sessions to end"
        );
    }
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
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

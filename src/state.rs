//! Run-time state shared by the accept loop, the FTP sessions and the service's lifecycle:
//! what the service is doing (for `STATUS=` and the watchdog), and the gateway in force.
//!
//! It imports nothing else from the crate: `ftp` and `accept` both use it, and it must not
//! use them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often the accept loop shows it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// What the service is doing, for `STATUS=` and the watchdog.
#[derive(Debug)]
pub struct Stats {
    /// Open FTP sessions.
    pub sessions: AtomicUsize,
    /// Data transfers in progress.
    pub transfers: AtomicUsize,
    /// When the accept loop last showed it runs, in milliseconds since `started`.
    heartbeat_ms: AtomicU64,
    started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            sessions: AtomicUsize::new(0),
            transfers: AtomicUsize::new(0),
            heartbeat_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl Stats {
    /// The accept loop shows it runs.
    pub fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    /// How long ago the accept loop last ran.
    pub fn since_heartbeat(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// The value new sessions get (the gateway); replaced on reload. Empty while the service has
/// no valid configuration (it was started by its socket with a broken one): clients then get
/// 421.
#[derive(Debug)]
pub struct InForce<T>(RwLock<Option<Arc<T>>>);

impl<T> InForce<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Some(Arc::new(value))))
    }

    /// Starts without a valid configuration.
    pub fn unconfigured() -> Self {
        Self(RwLock::new(None))
    }

    /// The value in force, if there is one.
    pub fn get(&self) -> Option<Arc<T>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `value` in force for the sessions that start from now on.
    pub fn replace(&self, value: T) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(value));
    }
}

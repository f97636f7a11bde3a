//! Run-time state shared by the accept loop, the FTP sessions and the service's lifecycle:
//! what the service is doing (for `STATUS=` and the watchdog), and the gateway in force.
//!
//! It imports nothing else from the crate: `ftp` and `accept` both use it, and it must not
//! use them. The counters of [`Tally`] are Prometheus metrics that `metrics` registers and
//! serves; the FTP side only adds to them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// How often the accept loop shows it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// What the service is doing, for `STATUS=` and the watchdog.
#[derive(Debug)]
pub struct Stats {
    /// Open FTP sessions.
    pub sessions: AtomicUsize,
    /// Data transfers in progress.
    pub transfers: AtomicUsize,
    /// Set when the service begins to stop: no new sessions, running transfers finish.
    pub draining: AtomicBool,
    /// What happened since the start (logins, bytes, transfer durations).
    pub tally: Tally,
    /// When the accept loop last showed it runs, in milliseconds since `started`.
    heartbeat_ms: AtomicU64,
    started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            sessions: AtomicUsize::new(0),
            transfers: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            tally: Tally::default(),
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

/// One label, e.g. `[("result", "success")]`.
pub type Label = [(&'static str, &'static str); 1];

/// A histogram of seconds per label.
pub type Seconds = Family<Label, Histogram, fn() -> Histogram>;

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// The cluster took the user name and password.
    Success,
    /// The cluster refused them.
    Failure,
    /// The cluster could not check it (down, failing).
    Unavailable,
    /// Refused by the gateway: the address is banned or has too many logins at once, the user
    /// name is under attack, or the user has no home directory to be confined to.
    Refused,
}

/// The direction of a data transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// RETR.
    Download,
    /// STOR, APPE.
    Upload,
}

impl Direction {
    /// Its label value.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Download => "download",
            Direction::Upload => "upload",
        }
    }
}

/// The bounds of the transfer-duration histogram, in seconds: 10 ms to about 3 hours.
fn transfer_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 10))
}

/// Counters of what happened since the start; they only grow. Shared by every gateway of the
/// process (a reload keeps them).
#[derive(Debug)]
pub struct Tally {
    /// Logins by `result`: `success`, `failure`, `unavailable`, `refused`.
    pub logins: Family<Label, Counter>,
    /// Bytes of the data transfers that completed, by `direction`.
    pub bytes: Family<Label, Counter>,
    /// How long data transfers took (whatever their outcome), by `direction`.
    pub transfer_seconds: Seconds,
}

impl Default for Tally {
    /// Every series at zero, so that each one exists from the start.
    fn default() -> Self {
        let tally = Self {
            logins: Family::default(),
            bytes: Family::default(),
            transfer_seconds: Family::new_with_constructor(transfer_buckets),
        };
        for result in ["success", "failure", "unavailable", "refused"] {
            drop(tally.logins.get_or_create(&[("result", result)]));
        }
        for direction in [Direction::Download, Direction::Upload] {
            let label = [("direction", direction.label())];
            drop(tally.bytes.get_or_create(&label));
            drop(tally.transfer_seconds.get_or_create(&label));
        }
        tally
    }
}

impl Tally {
    /// Counts a login.
    pub fn login(&self, result: LoginResult) {
        let label = match result {
            LoginResult::Success => "success",
            LoginResult::Failure => "failure",
            LoginResult::Unavailable => "unavailable",
            LoginResult::Refused => "refused",
        };
        self.logins.get_or_create(&[("result", label)]).inc();
    }

    /// Counts a transfer that ended after `elapsed`, having moved `bytes` when it completed.
    pub fn transfer(&self, direction: Direction, elapsed: Duration, bytes: Option<u64>) {
        let label = [("direction", direction.label())];
        self.transfer_seconds
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
        if let Some(bytes) = bytes {
            self.bytes.get_or_create(&label).inc_by(bytes);
        }
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

/// The failed accepts of a listening socket (out of file descriptors and the like): the loop
/// pauses after each instead of spinning, and says so once per burst, not ten times a second.
#[derive(Debug, Default)]
pub struct AcceptFailures {
    /// The last failure.
    last: Option<Instant>,
}

impl AcceptFailures {
    /// How long a loop waits after a failed accept.
    pub const PAUSE: Duration = Duration::from_millis(100);

    /// Notes a failure; whether it begins a burst (nothing failed in the last 10 s), which is
    /// worth a log line.
    pub fn failed(&mut self) -> bool {
        let now = Instant::now();
        let first = self
            .last
            .is_none_or(|last| now - last > Duration::from_secs(10));
        self.last = Some(now);
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_failed_accepts_is_said_once() {
        let mut failures = AcceptFailures::default();
        assert!(failures.failed(), "the first failure begins a burst");
        assert!(
            !failures.failed() && !failures.failed(),
            "the next ones belong to it"
        );
        failures.last = Some(Instant::now() - Duration::from_secs(11));
        assert!(
            failures.failed(),
            "after 10 quiet seconds a new burst begins"
        );
    }
}

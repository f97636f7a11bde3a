//! One address's and one user name's failed logins, as of a given instant, and the delay
//! they earn.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::FailedLoginsConfig;

/// The longest delay of a failed login's reply, and of a login for a user name under attack.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(8);

/// Failed logins, and logins being checked, of one address.
#[derive(Debug, Clone, Copy)]
pub(super) struct AddressRecord {
    pub(super) failures: u32,
    pub(super) in_flight: u32,
    pub(super) last: Instant,
    pub(super) banned_until: Option<Instant>,
}

/// Failed logins of one user name.
#[derive(Debug, Clone, Copy)]
pub(super) struct UserRecord {
    pub(super) failures: u32,
    pub(super) last: Instant,
    /// When the last login from a failing address that took a turn asks the cluster.
    pub(super) next_turn: Instant,
}

/// The key an address is counted by: itself for IPv4, its /64 for IPv6 (IPv4-mapped ones as
/// IPv4).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl AddressRecord {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            in_flight: 0,
            last: now,
            banned_until: None,
        }
    }

    /// The record as of `now`: its failures forgotten when the last one and any ban are over.
    pub(super) fn current(mut self, now: Instant, window: Duration) -> Self {
        if !self.banned(now) && now.duration_since(self.last) >= window {
            self.failures = 0;
            self.banned_until = None;
        }
        self
    }

    /// Whether it says nothing any more (and can be dropped).
    pub(super) fn idle(&self, now: Instant, window: Duration) -> bool {
        let r = self.current(now, window);
        r.failures == 0 && r.in_flight == 0
    }

    pub(super) fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| until > now)
    }
}

impl UserRecord {
    /// The record as of `now`: forgotten when its last failure is older than `window`.
    pub(super) fn current(self, now: Instant, window: Duration) -> Option<Self> {
        (now.duration_since(self.last) < window).then_some(self)
    }
}

/// `delay-ms` doubled `doublings` times, at most [`MAX_DELAY`].
pub(super) fn doubled(limits: &FailedLoginsConfig, doublings: u32) -> Duration {
    Duration::from_millis(limits.delay_ms)
        .saturating_mul(1 << doublings.min(16))
        .min(MAX_DELAY)
}

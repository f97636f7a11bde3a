//! Brute-force protection shared by every connection (and kept across reloads): failed logins
//! are counted per client address and per user name. Each failure delays its reply a little
//! longer; too many within `ban-time` ban the address (or the user name) for `ban-time`.
//!
//! IPv6 clients are counted by their /64 network, which one client usually owns whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::FailedLoginsConfig;

/// The longest delay of a failed login's reply.
const MAX_DELAY: Duration = Duration::from_secs(8);
/// Records kept per map before old ones are swept; past twice this, new user names are no
/// longer tracked (addresses always are).
const SWEEP_AT: usize = 16 * 1024;

/// Why a login is refused without asking the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ban {
    /// Too many failures from the client's address.
    Address,
    /// Too many failures for the user name.
    User,
}

/// Failed logins of one address or user.
#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    banned_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    addresses: HashMap<IpAddr, Record>,
    users: HashMap<String, Record>,
}

/// The process-wide failed-login counters.
#[derive(Debug, Default)]
pub struct LoginGuard(Mutex<State>);

/// The key of an address: itself for IPv4, its /64 for IPv6 (IPv4-mapped ones as IPv4).
fn address_key(ip: IpAddr) -> IpAddr {
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

impl Record {
    /// The record as of `now`: forgotten when its last failure and any ban are over.
    fn current(self, now: Instant, window: Duration) -> Option<Self> {
        let banned = self.banned_until.is_some_and(|until| until > now);
        (banned || now.duration_since(self.last) < window).then_some(self)
    }

    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| until > now)
    }
}

impl LoginGuard {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether connections from `ip` are refused outright.
    pub fn address_banned(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.state()
            .addresses
            .get(&address_key(ip))
            .is_some_and(|r| r.banned(now))
    }

    /// Whether a login of `user` from `ip` may be tried.
    pub fn check(&self, ip: IpAddr, user: &str) -> Result<(), Ban> {
        let now = Instant::now();
        let state = self.state();
        if state
            .addresses
            .get(&address_key(ip))
            .is_some_and(|r| r.banned(now))
        {
            return Err(Ban::Address);
        }
        if state.users.get(user).is_some_and(|r| r.banned(now)) {
            return Err(Ban::User);
        }
        Ok(())
    }

    /// Counts a failed login; returns how long to delay the reply, and the ban it caused.
    pub fn failed(
        &self,
        ip: IpAddr,
        user: &str,
        limits: &FailedLoginsConfig,
    ) -> (Duration, Option<Ban>) {
        let now = Instant::now();
        let window = Duration::from_secs(limits.ban_time);
        let mut state = self.state();
        if state.addresses.len() >= SWEEP_AT || state.users.len() >= SWEEP_AT {
            state
                .addresses
                .retain(|_, r| r.current(now, window).is_some());
            state.users.retain(|_, r| r.current(now, window).is_some());
        }
        let mut ban = None;
        let count = |map_record: Option<Record>, max: u32, what: Ban, ban: &mut Option<Ban>| {
            let mut r = map_record
                .and_then(|r| r.current(now, window))
                .unwrap_or(Record {
                    failures: 0,
                    last: now,
                    banned_until: None,
                });
            r.failures = r.failures.saturating_add(1);
            r.last = now;
            if max > 0 && r.failures >= max && !r.banned(now) {
                r.banned_until = Some(now + window);
                ban.get_or_insert(what);
            }
            r
        };
        let key = address_key(ip);
        let by_address = count(
            state.addresses.get(&key).copied(),
            limits.max_per_address,
            Ban::Address,
            &mut ban,
        );
        state.addresses.insert(key, by_address);
        let mut failures = by_address.failures;
        if state.users.contains_key(user) || state.users.len() < 2 * SWEEP_AT {
            let by_user = count(
                state.users.get(user).copied(),
                limits.max_per_user,
                Ban::User,
                &mut ban,
            );
            state.users.insert(user.to_string(), by_user);
            failures = failures.max(by_user.failures);
        }
        let delay = Duration::from_millis(limits.delay_ms)
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(MAX_DELAY);
        (delay, ban)
    }

    /// A successful login forgives the user name's failures (not the address's).
    pub fn succeeded(&self, user: &str) {
        let now = Instant::now();
        let mut state = self.state();
        if state.users.get(user).is_some_and(|r| !r.banned(now)) {
            state.users.remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FailedLoginsConfig {
        FailedLoginsConfig {
            max_per_address: 3,
            max_per_user: 5,
            ban_time: 60,
            delay_ms: 100,
        }
    }

    #[test]
    fn delays_grow_then_the_address_is_banned() {
        let guard = LoginGuard::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let (d1, b1) = guard.failed(ip, "alice", &limits());
        let (d2, b2) = guard.failed(ip, "alice", &limits());
        assert_eq!((d1, b1), (Duration::from_millis(100), None));
        assert_eq!((d2, b2), (Duration::from_millis(200), None));
        assert!(guard.check(ip, "bob").is_ok());
        let (_, b3) = guard.failed(ip, "bob", &limits());
        assert_eq!(b3, Some(Ban::Address));
        assert_eq!(guard.check(ip, "carol"), Err(Ban::Address));
        assert!(guard.address_banned(ip));
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(
            guard.check(other, "alice").is_ok(),
            "another address still logs in"
        );
    }

    #[test]
    fn a_user_attacked_from_many_addresses_is_banned() {
        let guard = LoginGuard::default();
        for i in 0..5u8 {
            let ip = IpAddr::from([198, 51, 100, i]);
            guard.failed(ip, "alice", &limits());
        }
        assert_eq!(
            guard.check("203.0.113.1".parse().unwrap(), "alice"),
            Err(Ban::User)
        );
        assert!(guard.check("203.0.113.1".parse().unwrap(), "bob").is_ok());
    }

    #[test]
    fn ipv6_counts_by_network_and_success_forgives_the_user() {
        let guard = LoginGuard::default();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        guard.failed(a, "alice", &limits());
        guard.failed(b, "alice", &limits());
        guard.succeeded("alice");
        let (_, ban) = guard.failed(b, "bob", &limits());
        assert_eq!(ban, Some(Ban::Address));
        assert!(
            guard
                .check("2001:db8:1:3::1".parse().unwrap(), "alice")
                .is_ok()
        );
    }

    #[test]
    fn zero_means_no_limit() {
        let guard = LoginGuard::default();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let unlimited = FailedLoginsConfig {
            max_per_address: 0,
            max_per_user: 0,
            ..limits()
        };
        for _ in 0..50 {
            assert_eq!(guard.failed(ip, "x", &unlimited).1, None);
        }
        assert!(guard.check(ip, "x").is_ok());
    }
}

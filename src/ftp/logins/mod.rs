//! Brute-force protection shared by every connection (and kept across reloads): failed logins
//! are counted per client address and per user name.
//!
//! - **An address.** Each failure delays its reply a little longer; `max-per-address` failures
//!   within `ban-time` ban the address for `ban-time`. A login being checked counts against its
//!   address before the cluster answers: at most `max-per-address` logins of an address (less
//!   its failures) are checked at once, and the others wait for them (a success gives its place
//!   back), so a burst of guesses sent at the same moment reaches the cluster no more often than
//!   guesses sent one by one.
//! - **A user name** is never banned: that would lock its owner out for anyone who knows the
//!   name. Past `max-per-user` failures from any address, every login for the name waits before
//!   the cluster is asked, `delay-ms` doubling with every further failure (at most 8 s), and the
//!   logins from addresses that have been failing take turns, one per delay. A login from an
//!   address without failures (or logins in progress) waits the delay alone, never for those
//!   turns: the owner gets in within 8 s while guesses from many addresses are spread out.
//!
//! IPv6 clients are counted by their /64 network, which one client usually owns whole; the
//! connection cap per address counts them the same way ([`address_key`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::FailedLoginsConfig;

mod records;

pub use records::address_key;
use records::{AddressRecord, UserRecord, doubled};

/// The longest a login waits for its address's logins in progress or for its turn; past it
/// the login is refused for now.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Records kept per map before old ones are swept; past twice this, new user names are no
/// longer tracked (addresses always are).
const SWEEP_AT: usize = 16 * 1024;

/// Why a login is refused without asking the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// The client's address is banned after too many failures.
    Banned,
    /// The address's logins in progress did not end within [`MAX_WAIT`].
    AddressBusy,
    /// The user name's turns are taken for longer than [`MAX_WAIT`] by addresses that have
    /// been failing, this one among them.
    UserBusy,
}

/// What a failed login leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Penalty {
    /// How long to delay the reply.
    pub delay: Duration,
    /// This failure banned the address.
    pub banned: bool,
    /// This failure brought the user name to `max-per-user`: its logins are slowed from now on.
    pub user_slowed: bool,
}

#[derive(Debug, Default)]
struct State {
    addresses: HashMap<IpAddr, AddressRecord>,
    users: HashMap<String, UserRecord>,
}

/// The process-wide failed-login counters.
#[derive(Debug, Default)]
pub struct FailedLogins {
    state: Mutex<State>,
    /// Woken when a login in progress ends, for the logins of its address that wait.
    ended: Notify,
}

impl FailedLogins {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether connections from `ip` are refused outright.
    pub fn address_banned(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.state()
            .addresses
            .get(&address_key(ip))
            .is_some_and(|r| r.banned(now))
    }

    /// How many addresses are banned now.
    pub fn bans_active(&self) -> usize {
        let now = Instant::now();
        let state = self.state();
        state.addresses.values().filter(|r| r.banned(now)).count()
    }

    /// Starts a login of `user` from `ip`: waits until the address may have one more login
    /// checked and, when the user name is under attack, for the login's delay or turn. The
    /// login counts against the address until the returned attempt is settled or dropped.
    pub async fn begin<'a>(
        &'a self,
        ip: IpAddr,
        user: &str,
        limits: &FailedLoginsConfig,
    ) -> Result<Attempt<'a>, LoginRefusal> {
        let key = address_key(ip);
        let deadline = Instant::now() + MAX_WAIT;
        let clean = loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before looking, so that an end in between is not missed.
            ended.as_mut().enable();
            if let Some(clean) = self.enter(key, limits, Instant::now())? {
                break clean;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return Err(LoginRefusal::AddressBusy);
            }
        };
        let attempt = Attempt {
            logins: self,
            key,
            user: user.to_string(),
            limits: limits.clone(),
            settled: false,
        };
        // Dropping `attempt` on refusal gives the address's place back.
        let turn = self.turn(user, clean, limits, Instant::now())?;
        tokio::time::sleep_until(turn).await;
        Ok(attempt)
    }

    /// Counts a login of the address `key` in progress, unless it is banned (`Err`) or has as
    /// many in progress as its failures leave it (`None`: wait for one to end). `Some(clean)`
    /// says whether the address had neither failures nor logins in progress.
    fn enter(
        &self,
        key: IpAddr,
        limits: &FailedLoginsConfig,
        now: Instant,
    ) -> Result<Option<bool>, LoginRefusal> {
        let window = Duration::from_secs(limits.ban_time);
        let mut state = self.state();
        let record = state
            .addresses
            .get(&key)
            .map_or(AddressRecord::new(now), |r| r.current(now, window));
        if record.banned(now) {
            return Err(LoginRefusal::Banned);
        }
        let max = limits.max_per_address;
        if max > 0 && record.failures.saturating_add(record.in_flight) >= max {
            return Ok(None);
        }
        let clean = record.failures == 0 && record.in_flight == 0;
        state.addresses.insert(
            key,
            AddressRecord {
                in_flight: record.in_flight + 1,
                ..record
            },
        );
        Ok(Some(clean))
    }

    /// When a login of `user` may ask the cluster: now, unless the user name has had
    /// `max-per-user` failures; then after its delay, and for an address that has been
    /// failing (not `clean`) after the turns taken before it, one per delay.
    fn turn(
        &self,
        user: &str,
        clean: bool,
        limits: &FailedLoginsConfig,
        now: Instant,
    ) -> Result<Instant, LoginRefusal> {
        let window = Duration::from_secs(limits.ban_time);
        let mut state = self.state();
        let Some(record) = state
            .users
            .get_mut(user)
            .filter(|r| r.current(now, window).is_some())
        else {
            return Ok(now);
        };
        let max = limits.max_per_user;
        if max == 0 || record.failures < max {
            return Ok(now);
        }
        let delay = doubled(limits, record.failures - max);
        if clean {
            return Ok(now + delay);
        }
        let turn = record.next_turn.max(now) + delay;
        if turn.duration_since(now) > MAX_WAIT {
            return Err(LoginRefusal::UserBusy);
        }
        record.next_turn = turn;
        Ok(turn)
    }

    /// Ends a login of the address `key` in progress: a failure when `failed_user` names the
    /// user name, else a success or a login the cluster could not check.
    fn settle(
        &self,
        key: IpAddr,
        failed_user: Option<&str>,
        limits: &FailedLoginsConfig,
    ) -> Penalty {
        let now = Instant::now();
        let window = Duration::from_secs(limits.ban_time);
        let mut penalty = Penalty {
            delay: Duration::ZERO,
            banned: false,
            user_slowed: false,
        };
        {
            let mut state = self.state();
            if state.addresses.len() >= SWEEP_AT || state.users.len() >= SWEEP_AT {
                state.addresses.retain(|_, r| !r.idle(now, window));
                state.users.retain(|_, r| r.current(now, window).is_some());
            }
            let mut record = state
                .addresses
                .get(&key)
                .map_or(AddressRecord::new(now), |r| r.current(now, window));
            record.in_flight = record.in_flight.saturating_sub(1);
            if let Some(user) = failed_user {
                record.failures = record.failures.saturating_add(1);
                record.last = now;
                let max = limits.max_per_address;
                if max > 0 && record.failures >= max && !record.banned(now) {
                    record.banned_until = Some(now + window);
                    penalty.banned = true;
                }
                penalty.delay = doubled(limits, record.failures - 1);
                if state.users.contains_key(user) || state.users.len() < 2 * SWEEP_AT {
                    let mut by_user = state
                        .users
                        .get(user)
                        .and_then(|r| r.current(now, window))
                        .unwrap_or(UserRecord {
                            failures: 0,
                            last: now,
                            next_turn: now,
                        });
                    by_user.failures = by_user.failures.saturating_add(1);
                    by_user.last = now;
                    penalty.user_slowed =
                        limits.max_per_user > 0 && by_user.failures == limits.max_per_user;
                    state.users.insert(user.to_string(), by_user);
                }
            }
            if record.idle(now, window) {
                state.addresses.remove(&key);
            } else {
                state.addresses.insert(key, record);
            }
        }
        self.ended.notify_waiters();
        penalty
    }

    /// A successful login of `user` forgives its failures while they are below
    /// `max-per-user` (a typo of its owner), not once it is under attack: the owner's logins
    /// must not reset the slowing of the guesses. The address's failures stay.
    fn forgive(&self, user: &str, limits: &FailedLoginsConfig) {
        let mut state = self.state();
        if state
            .users
            .get(user)
            .is_some_and(|r| limits.max_per_user == 0 || r.failures < limits.max_per_user)
        {
            state.users.remove(user);
        }
    }
}

/// A login being checked; it counts against its address until it is settled. Dropped
/// unsettled (the cluster could not check it), it is not counted as a failure.
#[derive(Debug)]
pub struct Attempt<'a> {
    logins: &'a FailedLogins,
    key: IpAddr,
    user: String,
    limits: FailedLoginsConfig,
    settled: bool,
}

impl Attempt<'_> {
    /// The cluster accepted the password.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.logins.settle(self.key, None, &self.limits);
        self.logins.forgive(&self.user, &self.limits);
    }

    /// The cluster refused the password.
    pub fn failed(mut self) -> Penalty {
        self.settled = true;
        self.logins.settle(self.key, Some(&self.user), &self.limits)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.logins.settle(self.key, None, &self.limits);
        }
    }
}

#[cfg(test)]
mod tests;

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

/// The longest delay of a failed login's reply, and of a login for a user name under attack.
const MAX_DELAY: Duration = Duration::from_secs(8);
/// The longest a login waits for its address's logins in progress or for its turn; past it
/// the login is refused for now.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Records kept per map before old ones are swept; past twice this, new user names are no
/// longer tracked (addresses always are).
const SWEEP_AT: usize = 16 * 1024;

/// Why a login is refused without asking the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
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
pub struct Failure {
    /// How long to delay the reply.
    pub delay: Duration,
    /// This failure banned the address.
    pub banned: bool,
    /// This failure brought the user name to `max-per-user`: its logins are slowed from now on.
    pub user_slowed: bool,
}

/// Failed logins, and logins being checked, of one address.
#[derive(Debug, Clone, Copy)]
struct AddressRecord {
    failures: u32,
    in_flight: u32,
    last: Instant,
    banned_until: Option<Instant>,
}

/// Failed logins of one user name.
#[derive(Debug, Clone, Copy)]
struct UserRecord {
    failures: u32,
    last: Instant,
    /// When the last login from a failing address that took a turn asks the cluster.
    next_turn: Instant,
}

#[derive(Debug, Default)]
struct State {
    addresses: HashMap<IpAddr, AddressRecord>,
    users: HashMap<String, UserRecord>,
}

/// The process-wide failed-login counters.
#[derive(Debug, Default)]
pub struct LoginGuard {
    state: Mutex<State>,
    /// Woken when a login in progress ends, for the logins of its address that wait.
    ended: Notify,
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
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            in_flight: 0,
            last: now,
            banned_until: None,
        }
    }

    /// The record as of `now`: its failures forgotten when the last one and any ban are over.
    fn current(mut self, now: Instant, window: Duration) -> Self {
        if !self.banned(now) && now.duration_since(self.last) >= window {
            self.failures = 0;
            self.banned_until = None;
        }
        self
    }

    /// Whether it says nothing any more (and can be dropped).
    fn idle(&self, now: Instant, window: Duration) -> bool {
        let r = self.current(now, window);
        r.failures == 0 && r.in_flight == 0
    }

    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| until > now)
    }
}

impl UserRecord {
    /// The record as of `now`: forgotten when its last failure is older than `window`.
    fn current(self, now: Instant, window: Duration) -> Option<Self> {
        (now.duration_since(self.last) < window).then_some(self)
    }
}

/// `delay-ms` doubled `doublings` times, at most [`MAX_DELAY`].
fn doubled(limits: &FailedLoginsConfig, doublings: u32) -> Duration {
    Duration::from_millis(limits.delay_ms)
        .saturating_mul(1 << doublings.min(16))
        .min(MAX_DELAY)
}

impl LoginGuard {
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

    /// Starts a login of `user` from `ip`: waits until the address may have one more login
    /// checked and, when the user name is under attack, for the login's delay or turn. The
    /// login counts against the address until the returned attempt is settled or dropped.
    pub async fn begin<'a>(
        &'a self,
        ip: IpAddr,
        user: &str,
        limits: &FailedLoginsConfig,
    ) -> Result<Attempt<'a>, Refusal> {
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
                return Err(Refusal::AddressBusy);
            }
        };
        let attempt = Attempt {
            guard: self,
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
    ) -> Result<Option<bool>, Refusal> {
        let window = Duration::from_secs(limits.ban_time);
        let mut state = self.state();
        let record = state
            .addresses
            .get(&key)
            .map_or(AddressRecord::new(now), |r| r.current(now, window));
        if record.banned(now) {
            return Err(Refusal::Banned);
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
    ) -> Result<Instant, Refusal> {
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
            return Err(Refusal::UserBusy);
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
    ) -> Failure {
        let now = Instant::now();
        let window = Duration::from_secs(limits.ban_time);
        let mut failure = Failure {
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
                    failure.banned = true;
                }
                failure.delay = doubled(limits, record.failures - 1);
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
                    failure.user_slowed =
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
        failure
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
    guard: &'a LoginGuard,
    key: IpAddr,
    user: String,
    limits: FailedLoginsConfig,
    settled: bool,
}

impl Attempt<'_> {
    /// The cluster accepted the password.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.guard.settle(self.key, None, &self.limits);
        self.guard.forgive(&self.user, &self.limits);
    }

    /// The cluster refused the password.
    pub fn failed(mut self) -> Failure {
        self.settled = true;
        self.guard.settle(self.key, Some(&self.user), &self.limits)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.guard.settle(self.key, None, &self.limits);
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A failed login of `user` from `from`, through the whole sequence.
    async fn fail(guard: &LoginGuard, from: &str, user: &str, limits: &FailedLoginsConfig) {
        let attempt = guard.begin(ip(from), user, limits).await.unwrap();
        attempt.failed();
    }

    #[tokio::test(start_paused = true)]
    async fn delays_grow_then_the_address_is_banned() {
        let guard = LoginGuard::default();
        let a = ip("192.0.2.7");
        let f1 = guard.begin(a, "alice", &limits()).await.unwrap();
        assert_eq!(f1.failed().delay, Duration::from_millis(100));
        let f2 = guard.begin(a, "alice", &limits()).await.unwrap();
        assert_eq!(f2.failed().delay, Duration::from_millis(200));
        let f3 = guard.begin(a, "bob", &limits()).await.unwrap();
        let third = f3.failed();
        assert!(third.banned && !third.user_slowed, "{third:?}");
        assert_eq!(
            guard.begin(a, "carol", &limits()).await.unwrap_err(),
            Refusal::Banned
        );
        assert!(guard.address_banned(a));
        assert!(
            guard
                .begin(ip("192.0.2.8"), "alice", &limits())
                .await
                .is_ok(),
            "another address still logs in"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!guard.address_banned(a), "the ban ends after ban-time");
        assert!(guard.begin(a, "alice", &limits()).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_attacked_from_many_addresses_is_slowed_not_banned() {
        let guard = LoginGuard::default();
        let limits = FailedLoginsConfig {
            max_per_address: 5,
            max_per_user: 10,
            ban_time: 900,
            delay_ms: 500,
        };
        // Ten wrong passwords for admin from two addresses: both are banned.
        for from in ["198.51.100.2", "198.51.100.3"] {
            for _ in 0..5 {
                fail(&guard, from, "admin", &limits).await;
            }
            assert!(guard.address_banned(ip(from)));
        }
        // The owner, from a third address, is let through after the first delay.
        let started = Instant::now();
        let owner = guard
            .begin(ip("198.51.100.4"), "admin", &limits)
            .await
            .expect("the owner is never refused for others' failures");
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        owner.succeeded();
        // The owner's login does not reset the slowing: the guessing goes on, the delay
        // grows to its bound, and the owner still gets in within it.
        for i in 0..10u8 {
            fail(&guard, &format!("203.0.113.{i}"), "admin", &limits).await;
        }
        let started = Instant::now();
        let owner = guard.begin(ip("198.51.100.4"), "admin", &limits).await;
        assert!(owner.is_ok());
        assert_eq!(started.elapsed(), MAX_DELAY);
        // Other user names are not slowed.
        let started = Instant::now();
        assert!(
            guard
                .begin(ip("198.51.100.5"), "bob", &limits)
                .await
                .is_ok()
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_addresses_take_turns_for_a_user_under_attack() {
        let guard = std::sync::Arc::new(LoginGuard::default());
        let limits = FailedLoginsConfig {
            max_per_address: 4,
            max_per_user: 5,
            ban_time: 900,
            delay_ms: 1000,
        };
        // Five addresses fail once each: alice is under attack, each address is failing.
        let attackers: Vec<String> = (1..=5).map(|i| format!("192.0.2.{i}")).collect();
        for from in &attackers {
            fail(&guard, from, "alice", &limits).await;
        }
        // Their next guesses, sent at once, ask the cluster one per second (the delay at the
        // threshold), in the order they came.
        let started = Instant::now();
        let mut guesses = tokio::task::JoinSet::new();
        for from in attackers.clone() {
            let (guard, limits) = (guard.clone(), limits.clone());
            guesses.spawn(async move {
                let attempt = guard.begin(ip(&from), "alice", &limits).await.unwrap();
                let at = started.elapsed();
                drop(attempt);
                at
            });
        }
        // Meanwhile the owner, from a clean address, waits only the delay.
        tokio::task::yield_now().await;
        let owner = guard.begin(ip("192.0.2.99"), "alice", &limits).await;
        assert!(owner.is_ok());
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        drop(owner);
        let mut at: Vec<Duration> = guesses.join_all().await;
        at.sort();
        let expected: Vec<Duration> = (1..=5).map(Duration::from_secs).collect();
        assert_eq!(at, expected, "one guess per delay");
    }

    #[tokio::test(start_paused = true)]
    async fn turns_further_than_the_longest_wait_are_refused() {
        let guard = LoginGuard::default();
        let limits = FailedLoginsConfig {
            max_per_address: 100,
            max_per_user: 1,
            ban_time: 900,
            delay_ms: 8000,
        };
        fail(&guard, "192.0.2.1", "alice", &limits).await;
        // Past the threshold each turn is 8 s; a failing address may not queue past 60 s.
        let now = Instant::now();
        for i in 1..=7u32 {
            assert_eq!(
                guard.turn("alice", false, &limits, now),
                Ok(now + MAX_DELAY * i)
            );
        }
        assert_eq!(
            guard.turn("alice", false, &limits, now),
            Err(Refusal::UserBusy)
        );
        assert_eq!(
            guard.turn("alice", true, &limits, now),
            Ok(now + MAX_DELAY),
            "a clean address does not queue"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn guesses_in_flight_count_against_the_address() {
        let guard = std::sync::Arc::new(LoginGuard::default());
        let limits = FailedLoginsConfig {
            max_per_address: 5,
            max_per_user: 10,
            ban_time: 900,
            delay_ms: 500,
        };
        // Thirty guesses sent at the same moment from one address, each taking the cluster
        // 200 ms to refuse: five are checked, the rest find the address banned.
        let checked = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut guesses = tokio::task::JoinSet::new();
        for _ in 0..30 {
            let (guard, limits, checked) = (guard.clone(), limits.clone(), checked.clone());
            guesses.spawn(async move {
                let attempt = guard.begin(ip("192.0.2.1"), "admin", &limits).await?;
                checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                attempt.failed();
                Ok::<(), Refusal>(())
            });
        }
        let results = guesses.join_all().await;
        assert_eq!(checked.load(std::sync::atomic::Ordering::Relaxed), 5);
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == Err(Refusal::Banned))
                .count(),
            25
        );
        assert!(guard.address_banned(ip("192.0.2.1")));
    }

    #[tokio::test(start_paused = true)]
    async fn successes_and_unchecked_logins_give_their_place_back() {
        let guard = std::sync::Arc::new(LoginGuard::default());
        let limits = limits();
        let a = ip("192.0.2.1");
        // Three logins in progress fill the address's places; a fourth waits.
        let first = guard.begin(a, "alice", &limits).await.unwrap();
        let second = guard.begin(a, "alice", &limits).await.unwrap();
        let third = guard.begin(a, "alice", &limits).await.unwrap();
        let waiting = {
            let (guard, limits) = (guard.clone(), limits.clone());
            tokio::spawn(async move {
                guard
                    .begin(a, "alice", &limits)
                    .await
                    .map(|attempt| attempt.succeeded())
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "a fourth login at once waits");
        // A failure keeps its place (1 failure + 2 in progress); a success frees one.
        let _ = first.failed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        second.succeeded();
        assert_eq!(waiting.await.unwrap(), Ok(()));
        // A login the cluster could not check is not a failure: only the first one counts.
        drop(third);
        for _ in 0..10 {
            drop(guard.begin(a, "alice", &limits).await.unwrap());
        }
        let last = guard.begin(a, "bob", &limits).await.unwrap();
        let failure = last.failed();
        assert_eq!(
            failure.delay,
            Duration::from_millis(200),
            "the second failure"
        );
        assert!(!failure.banned);
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_waits_at_most_the_longest_wait_for_its_address() {
        let guard = LoginGuard::default();
        let limits = FailedLoginsConfig {
            max_per_address: 1,
            ..limits()
        };
        let a = ip("192.0.2.1");
        let _hung = guard.begin(a, "alice", &limits).await.unwrap();
        let started = Instant::now();
        assert_eq!(
            guard.begin(a, "alice", &limits).await.unwrap_err(),
            Refusal::AddressBusy
        );
        assert_eq!(started.elapsed(), MAX_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn success_forgives_the_users_typos_but_not_an_attack() {
        let guard = LoginGuard::default();
        let limits = limits();
        fail(&guard, "192.0.2.1", "alice", &limits).await;
        fail(&guard, "192.0.2.2", "alice", &limits).await;
        guard.forgive("alice", &limits);
        assert!(!guard.state().users.contains_key("alice"));
        for i in 0..5 {
            fail(&guard, &format!("192.0.2.{}", 10 + i), "alice", &limits).await;
        }
        guard.forgive("alice", &limits);
        assert_eq!(guard.state().users["alice"].failures, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_counts_by_network() {
        let guard = LoginGuard::default();
        fail(&guard, "2001:db8:1:2::1", "alice", &limits()).await;
        fail(&guard, "2001:db8:1:2::ffff", "alice", &limits()).await;
        fail(&guard, "2001:db8:1:2:ffff::1", "bob", &limits()).await;
        assert!(guard.address_banned(ip("2001:db8:1:2::42")));
        assert!(!guard.address_banned(ip("2001:db8:1:3::1")));
        assert_eq!(
            address_key(ip("::ffff:192.0.2.1")),
            ip("192.0.2.1"),
            "IPv4-mapped addresses count as IPv4"
        );
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_no_limit() {
        let guard = LoginGuard::default();
        let unlimited = FailedLoginsConfig {
            max_per_address: 0,
            max_per_user: 0,
            ..limits()
        };
        let mut held = Vec::new();
        for _ in 0..50 {
            held.push(guard.begin(ip("192.0.2.9"), "x", &unlimited).await.unwrap());
        }
        for attempt in held {
            assert!(!attempt.failed().banned);
        }
        let started = Instant::now();
        assert!(guard.begin(ip("192.0.2.9"), "x", &unlimited).await.is_ok());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}

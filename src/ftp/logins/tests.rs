//! Unit tests of the failed-login counters.

use super::records::MAX_DELAY;
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
async fn fail(guard: &FailedLogins, from: &str, user: &str, limits: &FailedLoginsConfig) {
    let attempt = guard.begin(ip(from), user, limits).await.unwrap();
    attempt.failed();
}

#[tokio::test(start_paused = true)]
async fn delays_grow_then_the_address_is_banned() {
    let guard = FailedLogins::default();
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
        LoginRefusal::Banned
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
    let guard = FailedLogins::default();
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
    let guard = std::sync::Arc::new(FailedLogins::default());
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
    let guard = FailedLogins::default();
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
        Err(LoginRefusal::UserBusy)
    );
    assert_eq!(
        guard.turn("alice", true, &limits, now),
        Ok(now + MAX_DELAY),
        "a clean address does not queue"
    );
}

#[tokio::test(start_paused = true)]
async fn guesses_in_flight_count_against_the_address() {
    let guard = std::sync::Arc::new(FailedLogins::default());
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
            Ok::<(), LoginRefusal>(())
        });
    }
    let results = guesses.join_all().await;
    assert_eq!(checked.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Err(LoginRefusal::Banned))
            .count(),
        25
    );
    assert!(guard.address_banned(ip("192.0.2.1")));
}

#[tokio::test(start_paused = true)]
async fn successes_and_unchecked_logins_give_their_place_back() {
    let guard = std::sync::Arc::new(FailedLogins::default());
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
    let guard = FailedLogins::default();
    let limits = FailedLoginsConfig {
        max_per_address: 1,
        ..limits()
    };
    let a = ip("192.0.2.1");
    let _hung = guard.begin(a, "alice", &limits).await.unwrap();
    let started = Instant::now();
    assert_eq!(
        guard.begin(a, "alice", &limits).await.unwrap_err(),
        LoginRefusal::AddressBusy
    );
    assert_eq!(started.elapsed(), MAX_WAIT);
}

#[tokio::test(start_paused = true)]
async fn success_forgives_the_users_typos_but_not_an_attack() {
    let guard = FailedLogins::default();
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
    let guard = FailedLogins::default();
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
    let guard = FailedLogins::default();
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

//! The cluster's nodes as the client sees them: their base URLs and whether each one takes
//! connections. Requests are spread round-robin over the nodes that are up; a node that cannot
//! be connected to is down for a backoff that grows from 1 s to 30 s, after which one request
//! tries it again. When every node is down, the one to come back soonest is still tried: the
//! client never refuses a call without trying. State changes are logged once each.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use url::Url;

/// The first wait before a node that went down is tried again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a down node is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The nodes of one cluster (any node serves any request; a token is valid on every node).
#[derive(Debug)]
pub(super) struct Nodes {
    /// Base URLs, in configuration order.
    urls: Vec<Url>,
    /// The health of each node, by index. A std lock: only held to read or update the state.
    health: Vec<Mutex<Health>>,
    /// Where the next round-robin scan starts.
    next: AtomicUsize,
}

/// One node's health.
#[derive(Debug, Default, Clone, Copy)]
struct Health {
    /// Set while the node is down.
    down: Option<Down>,
    /// When the node was last found up or down.
    seen: Option<Instant>,
}

/// A node that failed to take a connection.
#[derive(Debug, Clone, Copy)]
struct Down {
    /// When the node may be tried again.
    retry_at: Instant,
    /// The wait that `retry_at` applied; doubled at each new failure.
    backoff: Duration,
}

/// The nodes already tried by one call, so that its next attempt goes elsewhere when it can.
#[derive(Debug, Clone)]
pub(super) struct Tried(Vec<bool>);

impl Tried {
    /// Whether some node has not been tried yet.
    pub(super) fn any_left(&self) -> bool {
        self.0.contains(&false)
    }
}

impl Nodes {
    /// The nodes at `urls` (at least one), all taken to be up.
    pub(super) fn new(urls: Vec<Url>) -> Self {
        let health = urls.iter().map(|_| Mutex::default()).collect();
        Self {
            urls,
            health,
            next: AtomicUsize::new(0),
        }
    }

    /// Base URLs, in configuration order.
    pub(super) fn urls(&self) -> &[Url] {
        &self.urls
    }

    /// The base URL of node `i`.
    pub(super) fn url(&self, i: usize) -> &Url {
        &self.urls[i]
    }

    /// Nothing tried yet.
    pub(super) fn untried(&self) -> Tried {
        Tried(vec![false; self.urls.len()])
    }

    /// The node for the next attempt of a call (and marks it tried): the next in turn that is
    /// up (or whose backoff is over) and not yet tried by the call; else one that is up; else
    /// one not yet tried; else the one whose backoff ends first.
    pub(super) fn pick(&self, tried: &mut Tried) -> usize {
        let n = self.urls.len();
        let now = Instant::now();
        let ready: Vec<bool> = (0..n).map(|i| self.ready(i, now)).collect();
        let choose = |start: usize| {
            let order = || (0..n).map(move |k| (start + k) % n);
            order()
                .find(|&i| ready[i] && !tried.0[i])
                .or_else(|| order().find(|&i| ready[i]))
                .or_else(|| order().find(|&i| !tried.0[i]))
                .unwrap_or_else(|| self.soonest())
        };
        // The turn passes to the node after the chosen one, so a down node's share of the
        // calls is spread over all the others.
        let start = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((choose(s % n) + 1) % n)
            })
            .unwrap_or_else(|s| s);
        let chosen = choose(start % n);
        tried.0[chosen] = true;
        chosen
    }

    /// Whether node `i` is up or may be tried again.
    fn ready(&self, i: usize, now: Instant) -> bool {
        self.health(i).down.is_none_or(|d| d.retry_at <= now)
    }

    /// The node whose backoff ends first.
    fn soonest(&self) -> usize {
        (0..self.urls.len())
            .min_by_key(|&i| self.health(i).down.map(|d| d.retry_at))
            .unwrap_or(0)
    }

    /// Whether every node is down.
    pub(super) fn all_down(&self) -> bool {
        (0..self.urls.len()).all(|i| self.health(i).down.is_some())
    }

    /// Node `i` could not be connected to (or reset the connection): down for a backoff that
    /// doubles at each failure in a row. Logged when the node goes down, not at every failure.
    pub(super) fn down(&self, i: usize, error: &str) {
        let mut health = self.lock(i);
        let backoff = match health.down {
            Some(d) => (d.backoff * 2).min(MAX_BACKOFF),
            None => FIRST_BACKOFF,
        };
        let was_up = health.down.is_none();
        health.seen = Some(Instant::now());
        health.down = Some(Down {
            retry_at: Instant::now() + backoff,
            backoff,
        });
        drop(health);
        let node = self.urls[i].as_str();
        let retry_in_s = backoff.as_secs();
        if was_up {
            tracing::warn!(node, error, retry_in_s, "qumulo node down");
        } else {
            tracing::debug!(node, error, retry_in_s, "qumulo node still down");
        }
    }

    /// Node `i` answered: up again if it was down (logged once).
    pub(super) fn up(&self, i: usize) {
        let mut health = self.lock(i);
        health.seen = Some(Instant::now());
        if health.down.take().is_some() {
            drop(health);
            tracing::info!(node = self.urls[i].as_str(), "qumulo node back up");
        }
    }

    /// Each node as last seen, in configuration order.
    pub(super) fn health_all(&self) -> Vec<super::NodeHealth> {
        (0..self.urls.len())
            .map(|i| {
                let health = self.health(i);
                super::NodeHealth {
                    url: self.urls[i].clone(),
                    up: health.down.is_none(),
                    seen: health.seen.map(|at| at.elapsed()),
                }
            })
            .collect()
    }

    /// A copy of node `i`'s health.
    fn health(&self, i: usize) -> Health {
        *self.lock(i)
    }

    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, Health> {
        self.health[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Nodes {
        let urls = (0..n)
            .map(|i| Url::parse(&format!("https://node{i}.example:8000")).unwrap())
            .collect();
        Nodes::new(urls)
    }

    fn picks(nodes: &Nodes, calls: usize) -> Vec<usize> {
        (0..calls)
            .map(|_| nodes.pick(&mut nodes.untried()))
            .collect()
    }

    #[test]
    fn calls_go_round_robin_over_the_nodes_that_are_up() {
        let n = nodes(3);
        assert_eq!(picks(&n, 6), [0, 1, 2, 0, 1, 2]);
        n.down(1, "refused");
        assert!(!n.all_down());
        assert_eq!(picks(&n, 4), [0, 2, 0, 2]);
        n.up(1);
        assert_eq!(picks(&n, 3), [0, 1, 2]);
    }

    #[test]
    fn a_call_moves_to_nodes_it_has_not_tried() {
        let n = nodes(3);
        let mut tried = n.untried();
        let first = n.pick(&mut tried);
        let second = n.pick(&mut tried);
        let third = n.pick(&mut tried);
        let mut all = vec![first, second, third];
        all.sort();
        assert_eq!(all, [0, 1, 2]);
        assert!(!tried.any_left());
        // Everything tried: any node that is up serves again.
        n.pick(&mut tried);
    }

    #[test]
    fn down_nodes_are_still_tried_when_all_are_down() {
        let n = nodes(2);
        n.down(0, "refused");
        n.down(1, "refused");
        n.down(1, "refused");
        assert!(n.all_down());
        // Each node once, then the one whose backoff ends first (node 0: 1 s, node 1: 2 s).
        let mut tried = n.untried();
        assert_eq!(n.pick(&mut tried), 0);
        assert_eq!(n.pick(&mut tried), 1);
        assert_eq!(n.pick(&mut tried), 0);
        assert_eq!(n.pick(&mut n.untried()), 1);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let n = nodes(1);
        let mut waits = Vec::new();
        for _ in 0..8 {
            n.down(0, "refused");
            waits.push(n.health(0).down.unwrap().backoff.as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        n.up(0);
        n.down(0, "refused");
        assert_eq!(n.health(0).down.unwrap().backoff, FIRST_BACKOFF);
    }
}

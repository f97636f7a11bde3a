//! Health and metrics over HTTP, opt-in (`[metrics] listen`, or a socket systemd passes as
//! `metrics`): `/health` (the process serves), `/ready` (it takes new sessions: not draining,
//! a configuration in force, a cluster node answering) for load balancers, and `/metrics` in
//! the Prometheus text format, encoded by `prometheus-client`.
//!
//! It reads what the others keep: the counters of [`crate::state::Tally`], the sessions and
//! transfers of [`Stats`], the bans of [`LoginMemory`], the cluster client's nodes; and it is
//! the cluster client's [`Observer`]. Only the service's lifecycle (`daemon`) uses it; `ftp`,
//! `accept` and `qumulo` know nothing of it. `http` serves it.

mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::config::Config;
use crate::ftp::{Gateway, LoginMemory};
use crate::qumulo::{ErrorKind, Observer};
use crate::state::{InForce, Label, Stats};

pub use http::serve;

/// How old the knowledge of the cluster's nodes may be before `/ready` or `/metrics` probes
/// them: a balancer asking every second causes one probe per node every few seconds.
const FRESH: Duration = Duration::from_secs(2);
/// How long a probe of a node may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The metrics as the service runs them, and what a reload must know of their listener.
#[derive(Debug)]
pub struct Running {
    metrics: Arc<Metrics>,
    /// `metrics.listen` at start.
    listen: Option<SocketAddr>,
    /// Whether the listener is a socket systemd passed (then `metrics.listen` does not apply).
    from_systemd: bool,
}

impl Running {
    /// Serves `listener` (passed by systemd when its flag is set), if there is one; the gateway
    /// in force reports to the metrics. `listen` is `metrics.listen` at start.
    pub fn start(
        metrics: Metrics,
        listener: Option<(tokio::net::TcpListener, bool)>,
        listen: Option<SocketAddr>,
    ) -> Self {
        let metrics = Arc::new(metrics);
        if let Some(gateway) = metrics.live.get() {
            gateway.client().observe(metrics.observer());
        }
        let from_systemd = listener.as_ref().is_some_and(|(_, systemd)| *systemd);
        if let Some((listener, systemd)) = listener {
            tokio::spawn(serve(listener, systemd, metrics.clone()));
        }
        Self {
            metrics,
            listen,
            from_systemd,
        }
    }

    /// A reload built `gateway` from `config`: its cluster client reports to the metrics; a
    /// changed `metrics.listen` is said to wait for a restart.
    pub fn reloaded(&self, config: &Config, gateway: &Gateway) {
        gateway.client().observe(self.metrics.observer());
        if !self.from_systemd && config.metrics.listen != self.listen {
            let listen = config.metrics.listen.map(|a| a.to_string());
            tracing::warn!(
                listen,
                "metrics.listen changed: it takes effect at the next restart"
            );
        }
    }
}

/// The metrics of the process and where their values come from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    stats: Arc<Stats>,
    memory: Arc<LoginMemory>,
    live: Arc<InForce<Gateway>>,
    sessions: Gauge,
    transfers: Gauge,
    bans: Gauge,
    node_up: Family<[(&'static str, String); 1], Gauge>,
    cluster: Arc<Cluster>,
    /// Held while the nodes are probed: one probe at a time, the others wait for its result.
    probing: tokio::sync::Mutex<()>,
}

/// What the cluster client reports: request durations and failed calls.
#[derive(Debug)]
struct Cluster {
    request_seconds: Histogram,
    errors: Family<Label, Counter>,
}

impl Observer for Cluster {
    fn attempt(&self, elapsed: Duration, _status: Option<u16>) {
        self.request_seconds.observe(elapsed.as_secs_f64());
    }

    fn failed(&self, kind: ErrorKind) {
        self.errors.get_or_create(&[("class", kind.name())]).inc();
    }
}

/// Why the service does not take new sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// It is stopping: running transfers finish, new sessions should go elsewhere.
    Draining,
    /// It has no valid configuration (clients get 421).
    Unconfigured,
    /// No node of the cluster answers.
    ClusterDown,
}

impl NotReady {
    /// What `/ready` answers.
    pub fn text(self) -> &'static str {
        match self {
            NotReady::Draining => "draining",
            NotReady::Unconfigured => "no valid configuration",
            NotReady::ClusterDown => "no cluster node answers",
        }
    }
}

impl Metrics {
    /// The metrics of a service whose counters are in `stats`, failed logins in `memory`, and
    /// gateway in `live`.
    pub fn new(stats: Arc<Stats>, memory: Arc<LoginMemory>, live: Arc<InForce<Gateway>>) -> Self {
        let mut registry = Registry::with_prefix("qftpd");
        let sessions = Gauge::default();
        registry.register("sessions", "Open FTP sessions", sessions.clone());
        let transfers = Gauge::default();
        registry.register("transfers", "Data transfers in progress", transfers.clone());
        let tally = &stats.tally;
        registry.register(
            "logins",
            "FTP logins by result: success, failure (wrong user name or password), unavailable \
             (the cluster could not check it), refused (by the gateway: banned address, too many at \
             once, no home directory)",
            tally.logins.clone(),
        );
        let bans = Gauge::default();
        registry.register(
            "bans",
            "Client addresses banned now after failed logins",
            bans.clone(),
        );
        registry.register_with_unit(
            "transfer",
            "Bytes of the data transfers that completed, by direction",
            Unit::Bytes,
            tally.bytes.clone(),
        );
        registry.register_with_unit(
            "transfer_duration",
            "Duration of data transfers, whatever their outcome, by direction",
            Unit::Seconds,
            tally.transfer_seconds.clone(),
        );
        let cluster = Arc::new(Cluster {
            // 1 ms to about 16 s.
            request_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            errors: Family::default(),
        });
        // Every class at zero from the start.
        for kind in ErrorKind::ALL {
            drop(cluster.errors.get_or_create(&[("class", kind.name())]));
        }
        registry.register_with_unit(
            "cluster_request_duration",
            "Time of each request to the cluster until its answer's head (or its failure)",
            Unit::Seconds,
            cluster.request_seconds.clone(),
        );
        registry.register(
            "cluster_errors",
            "Calls to the cluster that failed, by class: unavailable (unreachable, 5xx) is the \
             cluster failing; not_found, denied, exists and the like answer what users asked",
            cluster.errors.clone(),
        );
        let node_up = Family::default();
        registry.register(
            "cluster_node_up",
            "Whether each cluster node answered its last request or probe (1) or not (0)",
            node_up.clone(),
        );
        Self {
            registry,
            stats,
            memory,
            live,
            sessions,
            transfers,
            bans,
            node_up,
            cluster,
            probing: tokio::sync::Mutex::new(()),
        }
    }

    /// What the cluster client reports to (see `Client::observe`).
    pub fn observer(&self) -> Arc<dyn Observer> {
        self.cluster.clone()
    }

    /// Whether the service takes new sessions.
    pub async fn ready(&self) -> Result<(), NotReady> {
        if self.stats.draining.load(Ordering::Relaxed) {
            return Err(NotReady::Draining);
        }
        let gateway = self.live.get().ok_or(NotReady::Unconfigured)?;
        self.refresh(&gateway).await;
        if gateway.client().node_health().iter().any(|n| n.up) {
            Ok(())
        } else {
            Err(NotReady::ClusterDown)
        }
    }

    /// The metrics in the text format.
    pub async fn render(&self) -> Result<String, std::fmt::Error> {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.sessions
            .set(gauge(self.stats.sessions.load(Ordering::Relaxed)));
        self.transfers
            .set(gauge(self.stats.transfers.load(Ordering::Relaxed)));
        self.bans.set(gauge(self.memory.failed.bans_active()));
        self.node_up.clear();
        if let Some(gateway) = self.live.get() {
            self.refresh(&gateway).await;
            for node in gateway.client().node_health() {
                let label = [("node", node.url.as_str().trim_end_matches('/').to_string())];
                self.node_up.get_or_create(&label).set(i64::from(node.up));
            }
        }
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Probes the cluster's nodes when what is known of one is older than [`FRESH`].
    async fn refresh(&self, gateway: &Gateway) {
        let stale = || {
            gateway
                .client()
                .node_health()
                .iter()
                .any(|n| n.seen.is_none_or(|age| age > FRESH))
        };
        if !stale() {
            return;
        }
        let _one = self.probing.lock().await;
        // Another request may have probed while this one waited.
        if stale() {
            gateway.client().probe(PROBE_TIMEOUT).await;
        }
    }
}

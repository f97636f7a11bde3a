//! A Qumulo REST API simulator, faithful enough that Qumulo's own `qq` works against it.
//!
//! It serves `/v1` over HTTPS (or plain HTTP) from a real directory, with Qumulo's ids, attribute
//! and listing shapes, paging, errors and permission checks, plus switchable faults. It is used
//! by the tests, the benchmarks and `qftpd demo`. It must never import the production client's
//! types: both are checked separately against golden bodies from the reference, so a wrong
//! field name cannot hide on both sides at once.
//!
//! - [`store`]: the directory-backed file system (ids, attributes, permissions, operations).
//!   A symlink in the middle of a path reference is followed by default; `path_symlinks`
//!   (`qftpd sim --path-symlinks refuse`) models a cluster that does not follow it. The `path`
//!   of every answer is canonical (no symlinks), as Qumulo's is.
//! - [`users`]: local users, groups and bearer tokens.
//! - [`faults`]: latency, 5xx, dropped connections, outage.
//! - `nodes`: the cluster's nodes, each on its own address over the same state, which tests
//!   can take down (listener closed, connections reset) and bring back up on the same port.
//! - `routes`: the HTTP endpoints; `node_http`: a node's HTTP(S) accept loop; [`tls`]:
//!   certificates.

pub mod error;
pub mod faults;
mod node_http;
mod nodes;
mod routes;
pub mod store;
pub mod tls;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use faults::{FaultSettings, Faults};
pub use nodes::{NodeError, NodeState, NodeStatus};
use users::{Directory, FIRST_USER_ID, User};

/// Token lifetime of a Qumulo login: 10 hours.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 3600);

/// A user to create in the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// Login name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// Home directory (created at start when missing, owned by the user).
    pub home: Option<String>,
}

/// How the simulator speaks HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with a self-signed certificate generated at start.
    GeneratedTls,
    /// HTTPS with a certificate and key from PEM files.
    TlsFiles {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Plain HTTP (for measurements without TLS).
    Plain,
}

/// Everything the simulator is started with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The directory that holds the cluster's files.
    pub data_dir: PathBuf,
    /// Users, given ids from 500 in this order.
    pub users: Vec<UserSpec>,
    /// HTTPS or HTTP.
    pub transport: Transport,
    /// How long a bearer token is valid.
    pub token_lifetime: Duration,
    /// Faults in force from the start.
    pub faults: FaultSettings,
    /// The cluster name in `cluster/settings`.
    pub cluster_name: String,
    /// What path references do with a symlink before their last component: followed (the
    /// default), or refused with `fs_not_a_directory_error` (see [`store`]).
    pub path_symlinks: store::PathSymlinks,
}

impl SimConfig {
    /// A simulator for `users` on 127.0.0.1, port 0, over HTTPS with a generated certificate,
    /// its files in `data_dir`: no faults, the default token lifetime, symlinks followed. Tests
    /// start from this and change the fields they care about.
    pub fn loopback(data_dir: impl Into<PathBuf>, users: Vec<UserSpec>) -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            users,
            transport: Transport::GeneratedTls,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            faults: FaultSettings::default(),
            cluster_name: "test-cluster".into(),
            path_symlinks: Default::default(),
        }
    }
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory could not be opened or prepared.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The configuration contradicts itself.
    #[error("{0}")]
    Config(String),
    /// A node could not be controlled.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// A running simulator. Dropping it stops every node without waiting; prefer
/// [`SimHandle::shutdown`].
#[derive(Debug)]
pub struct SimHandle {
    nodes: Arc<nodes::Nodes>,
    urls: Vec<String>,
    addrs: Vec<SocketAddr>,
    cert_pem: Option<String>,
    faults: Arc<Faults>,
}

impl SimHandle {
    /// The base URL of node 0, `https://HOST:PORT` (or `http://` in plain mode).
    pub fn url(&self) -> &str {
        &self.urls[0]
    }

    /// The base URL of every node, node 0 first.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The address node 0 actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The address of every node, node 0 first.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The certificate in PEM (HTTPS only), for a client to trust exactly it. Every node
    /// serves it.
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The state and request count of every node.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.nodes.status()
    }

    /// Takes node `index` down like a dead machine: on return its port refuses connections
    /// and every connection it had is reset. Idempotent.
    pub async fn node_down(&self, index: usize) -> Result<NodeStatus, SimError> {
        Ok(self.nodes.down(index, None).await?)
    }

    /// Brings node `index` back up on the same port. Idempotent.
    pub async fn node_up(&self, index: usize) -> Result<NodeStatus, SimError> {
        Ok(self.nodes.up(index).await?)
    }

    /// Stops every node (listeners closed, open connections reset) and waits for their
    /// HTTP tasks.
    pub async fn shutdown(self) {
        self.nodes.shutdown().await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.nodes.stop();
    }
}

/// Starts a one-node simulator; it accepts connections when this returns.
pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
    start_nodes(cfg, 1).await
}

/// Starts a simulator of `nodes` nodes over one shared state; it accepts connections on every
/// node when this returns. Node 0 listens on `cfg.listen`, the others on free ports of the
/// same host.
pub async fn start_nodes(cfg: SimConfig, nodes: usize) -> Result<SimHandle, SimError> {
    if nodes == 0 {
        return Err(SimError::Config("a cluster needs at least one node".into()));
    }
    let directory = Arc::new(Directory::new(assign_ids(&cfg.users)?, cfg.token_lifetime));
    let data_err = |source| SimError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    };
    let store = store::Store::open(&cfg.data_dir, directory.clone())
        .map_err(data_err)?
        .with_path_symlinks(cfg.path_symlinks);
    for user in directory.users() {
        if let Some(home) = &user.home {
            store
                .ensure_home(user, home)
                .map_err(|e| SimError::Config(format!("home of {}: {e}", user.name)))?;
        }
    }
    cfg.faults.validate().map_err(SimError::Config)?;
    let faults = Arc::new(Faults::new(cfg.faults.clone()));
    let listeners = bind_nodes(cfg.listen, nodes).await?;
    let identity = identity(&cfg.transport, listeners[0].1)?;
    let scheme = if identity.is_some() { "https" } else { "http" };
    let tls = identity
        .as_ref()
        .map(|i| tokio_rustls::TlsAcceptor::from(i.config.clone()));
    let nodes = Arc::new_cyclic(|weak| {
        let cluster = Arc::new(routes::Cluster {
            store,
            users: directory,
            faults: faults.clone(),
            cluster_name: cfg.cluster_name.clone(),
            nodes: weak.clone(),
        });
        let serving = Arc::new(node_http::Serving {
            app: routes::router(cluster),
            tls,
            faults: faults.clone(),
        });
        nodes::Nodes::start(serving, listeners, scheme)
    });
    Ok(SimHandle {
        urls: nodes.urls().map(String::from).collect(),
        addrs: nodes.addrs().collect(),
        nodes,
        cert_pem: identity.map(|i| i.cert_pem),
        faults,
    })
}

/// The TLS identity every node serves, if any; a generated certificate names `addr`'s IP.
fn identity(transport: &Transport, addr: SocketAddr) -> Result<Option<tls::Identity>, SimError> {
    Ok(match transport {
        Transport::Plain => None,
        Transport::GeneratedTls => {
            let extra = if addr.ip().is_unspecified() {
                vec![]
            } else {
                vec![addr.ip().to_string()]
            };
            Some(tls::generate(&extra)?)
        }
        Transport::TlsFiles { cert, key } => Some(tls::load(cert, key)?),
    })
}

/// Binds node 0 to `listen` and every other node to a free port of the same host.
async fn bind_nodes(
    listen: SocketAddr,
    nodes: usize,
) -> Result<Vec<(TcpListener, SocketAddr)>, SimError> {
    let mut bound = Vec::with_capacity(nodes);
    for index in 0..nodes {
        let addr = if index == 0 {
            listen
        } else {
            SocketAddr::new(listen.ip(), 0)
        };
        let bind_err = |source| SimError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        bound.push((listener, local));
    }
    Ok(bound)
}

/// Gives the users their auth ids, from 500 in order, refusing duplicate names.
fn assign_ids(specs: &[UserSpec]) -> Result<Vec<User>, SimError> {
    let mut users: Vec<User> = Vec::with_capacity(specs.len());
    for (spec, id) in specs.iter().zip(FIRST_USER_ID..) {
        if users.iter().any(|u| u.name == spec.name) {
            return Err(SimError::Config(format!(
                "user {} is given twice",
                spec.name
            )));
        }
        users.push(User {
            id,
            name: spec.name.clone(),
            password: spec.password.clone(),
            admin: spec.admin,
            home: spec.home.clone(),
        });
    }
    Ok(users)
}

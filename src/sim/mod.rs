//! A Qumulo REST API simulator, faithful enough that Qumulo's own `qq` works against it.
//!
//! It serves `/v1` over HTTPS (or plain HTTP) from a real directory, with Qumulo's ids, attribute
//! and listing shapes, paging, errors and permission checks, plus switchable faults. It is used
//! by the tests, the benchmarks and `qftpd demo`. It must never import the production client's
//! types: both are checked separately against golden bodies from the reference, so a wrong
//! field name cannot hide on both sides at once.
//!
//! - [`store`]: the directory-backed file system (ids, attributes, permissions, operations).
//! - [`users`]: local users, groups and bearer tokens.
//! - [`faults`]: latency, 5xx, dropped connections, outage.
//! - `routes`: the HTTP endpoints; `server`: the accept loop; [`tls`]: certificates.

pub mod error;
pub mod faults;
mod routes;
mod server;
pub mod store;
pub mod tls;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use faults::{FaultSettings, Faults};
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
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    url: String,
    cert_pem: Option<String>,
    faults: Arc<Faults>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SimHandle {
    /// The base URL, `https://HOST:PORT` (or `http://` in plain mode).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate in PEM (HTTPS only), for a client to trust exactly it.
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts the simulator; it accepts connections when this returns.
pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
    let directory = Arc::new(Directory::new(assign_ids(&cfg.users)?, cfg.token_lifetime));
    let data_err = |source| SimError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    };
    let store = store::Store::open(&cfg.data_dir, directory.clone()).map_err(data_err)?;
    for user in directory.users() {
        if let Some(home) = &user.home {
            store
                .ensure_home(user, home)
                .map_err(|e| SimError::Config(format!("home of {}: {e}", user.name)))?;
        }
    }
    cfg.faults.validate().map_err(SimError::Config)?;
    let faults = Arc::new(Faults::new(cfg.faults.clone()));
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let identity = match &cfg.transport {
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
    };
    let scheme = if identity.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    let cluster = Arc::new(routes::Cluster {
        store,
        users: directory,
        faults: faults.clone(),
        cluster_name: cfg.cluster_name.clone(),
    });
    let acceptor = identity
        .as_ref()
        .map(|i| tokio_rustls::TlsAcceptor::from(i.config.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(
        listener,
        acceptor,
        routes::router(cluster),
        faults.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    Ok(SimHandle {
        addr,
        url,
        cert_pem: identity.map(|i| i.cert_pem),
        faults,
        stop: Some(stop),
        task,
    })
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

//! The FTP side: thin libunftp adapters over the Qumulo client.
//!
//! - [`Gateway`]: built once from the configuration; makes one libunftp `Server` per
//!   accepted connection (libunftp cannot take a listening socket, so the accept loop in
//!   [`crate::accept`] is ours).
//! - [`LoginMemory`]: what logins leave behind for every gateway of the process.
//! - `auth`: FTP login as a Qumulo login; `logins`: failed-login bans and slowing; `welcome`:
//!   the 230 text; `user`: the logged-in user.
//! - `storage`: the storage back-end; `listing`: LIST lines and MLSx facts, and the listing
//!   streamed page by page; `upload`: uploads; `stall`: the data timeout; `xferlog`: the
//!   transfer log; `path`: FTP to cluster paths; `confine`: `chroot-users` against symlinks
//!   that lead out of the home; `errors`: cluster failures to FTP replies and every text a
//!   client reads; `site`: SITE CHMOD and SITE UTIME.
//!
//! Run-time state it shares with the accept loop is in [`crate::state`]; it never uses the
//! accept loop itself.

mod auth;
mod confine;
mod control;
mod errors;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod listing;
mod logins;
mod path;
mod site;
mod stall;
mod storage;
pub mod tls;
mod upload;
mod user;
mod welcome;
mod xferlog;

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use std::time::Duration;

use libunftp::options::{ActivePassiveMode, ControlPeer, FtpsRequired, PassiveHost, SessionPolicy};
use libunftp::{Server, ServerBuilder, ServerError};

pub use auth::LoggedIn;
pub use control::ControlLink;
pub use logins::{FailedLogins, address_key};
pub use storage::QumuloStorage;
pub use user::User;
pub use welcome::ClusterNames;

use crate::config::{Config, FtpConfig};
use crate::qumulo::{Client, ClientConfig};
use crate::state::Stats;

/// What logins leave behind for every gateway of the process, kept across reloads.
#[derive(Debug, Default)]
pub struct LoginMemory {
    /// Failed logins of every connection.
    pub failed: FailedLogins,
    /// The cluster's name once learnt, kept across reloads that keep the cluster.
    pub cluster_names: ClusterNames,
}

/// A configuration the gateway cannot be built from.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The cluster client.
    #[error(transparent)]
    Cluster(#[from] crate::qumulo::Error),
    /// The FTPS certificate or key.
    #[error("ftp.tls: {0}")]
    Tls(String),
}

/// What the files a configuration names give a gateway: the FTPS server configuration and
/// the cluster access token. Read once per start or reload; each error names its key.
#[derive(Clone, Default)]
pub struct Files {
    /// FTPS, from `[ftp.tls]` certificate and key.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The bearer string of `[qumulo] access-token`.
    pub token: Option<String>,
}

impl Files {
    /// Reads and builds them.
    pub fn read(config: &Config) -> Result<Self, GatewayError> {
        let tls = tls::from_config(&config.ftp.tls)?;
        let token = config
            .qumulo
            .read_access_token()
            .map_err(|e| crate::qumulo::Error::Config(e.to_string()))?;
        Ok(Self { tls, token })
    }
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Everything needed to serve FTP sessions, built once per configuration.
#[derive(Debug)]
pub struct Gateway {
    client: Client,
    shared: Arc<storage::Shared>,
    greeting: &'static str,
    passive_ports: RangeInclusive<u16>,
    passive_host: PassiveHost,
    chroot: bool,
    ftp: FtpConfig,
    /// The load balancers of `ftp.proxy-protocol-from`, shared with the sessions they relay.
    balancers: Balancers,
    /// FTPS, when configured: one rustls configuration for every connection.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The 230 text, naming the cluster.
    welcome: Arc<welcome::Welcome>,
    /// Failed logins and the cluster's name, shared with the gateways before and after.
    memory: Arc<LoginMemory>,
}

/// Load balancer addresses (`ftp.proxy-protocol-from`).
#[derive(Debug, Clone)]
struct Balancers(Arc<[ipnet::IpNet]>);

impl Balancers {
    /// Whether `ip` (IPv4-mapped IPv6 as IPv4) is one of them.
    fn contain(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl Gateway {
    /// Builds the gateway (and its one cluster client) from a configuration; transfers are
    /// counted in `stats`, failed logins and the cluster's name kept in `memory`.
    pub fn new(
        config: &Config,
        stats: Arc<Stats>,
        memory: Arc<LoginMemory>,
    ) -> Result<Self, GatewayError> {
        Self::with_files(config, Files::read(config)?, stats, memory)
    }

    /// [`Gateway::new`] with the configuration's files already read by [`Files::read`] (the
    /// service does so while it checks a configuration, before it takes it).
    pub fn with_files(
        config: &Config,
        files: Files,
        stats: Arc<Stats>,
        memory: Arc<LoginMemory>,
    ) -> Result<Self, GatewayError> {
        let q = &config.qumulo;
        let client = Client::new(&ClientConfig {
            urls: q.url.0.clone(),
            pin_sha256: q.fingerprint_sha256.map(|f| f.0),
            retries: q.retries,
            ca_file: q.ca_file.clone(),
            accept_invalid_certs: q.accept_invalid_certs,
            connect_timeout: Duration::from_secs(q.connect_timeout),
            read_timeout: Duration::from_secs(q.request_timeout),
        })?;
        let name = memory.cluster_names.of(client.urls());
        let welcome = Arc::new(welcome::Welcome::new(name, client.clone(), files.token));
        // The name is read at start and at every reload; a cluster that does not answer yet
        // delays nothing (the first login tries again).
        if welcome.has_token()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let welcome = welcome.clone();
            runtime.spawn(async move { welcome.refresh().await });
        }
        let passive_host = match config.ftp.passive_host.as_deref() {
            None => PassiveHost::FromConnection,
            Some(h) => h
                .parse::<Ipv4Addr>()
                .map_or_else(|_| PassiveHost::Dns(h.to_string()), PassiveHost::Ip),
        };
        Ok(Self {
            client,
            shared: Arc::new(storage::Shared {
                timezone: config.ftp.timezone,
                names: listing::NameCache::default(),
                stats,
                atomic_uploads: config.ftp.atomic_uploads,
                data_timeout: Duration::from_secs(config.ftp.data_timeout),
            }),
            ftp: config.ftp.clone(),
            balancers: Balancers(config.ftp.proxy_protocol_from.as_slice().into()),
            tls: files.tls,
            welcome,
            memory,
            // libunftp wants a 'static greeting; one small string per loaded configuration.
            greeting: Box::leak(config.ftp.greeting.clone().into_boxed_str()),
            passive_ports: config.ftp.passive_ports.clone(),
            passive_host,
            chroot: config.ftp.chroot_users,
        })
    }

    /// The cluster client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Control connections at most: in all, and from one address.
    pub fn connection_limits(&self) -> (usize, usize) {
        (self.ftp.max_connections, self.ftp.max_connections_per_ip)
    }

    /// Whether connections from `ip` are refused outright (banned after failed logins).
    pub fn address_banned(&self, ip: std::net::IpAddr) -> bool {
        self.memory.failed.address_banned(ip)
    }

    /// Whether connections from `ip` come from a load balancer that begins them with a PROXY
    /// protocol header (`ftp.proxy-protocol-from`).
    pub fn relays(&self, ip: std::net::IpAddr) -> bool {
        self.balancers.contain(ip)
    }

    /// Serves the control connection `stream` with `server` (from [`Self::session_server`])
    /// until the session ends. `relayed_client` is the client's address when a load balancer
    /// relays the connection (its PROXY header named the client): the session then takes it for
    /// the client's address (logins, bans, STAT, the log), and accepts passive data connections
    /// from the balancers as the client's, since they forward the passive ports too.
    pub async fn serve(
        &self,
        server: Server<QumuloStorage, User>,
        stream: Arc<tokio::net::TcpStream>,
        relayed_client: Option<std::net::SocketAddr>,
    ) -> Result<(), String> {
        let served = match relayed_client {
            None => server.service(stream).await,
            Some(client) => {
                let balancers = self.balancers.clone();
                let data_from = move |ip: std::net::IpAddr| balancers.contain(ip);
                let peer = ControlPeer {
                    client,
                    data_from: Some(Arc::new(data_from)),
                };
                server.service_for(stream, peer).await
            }
        };
        served.map_err(|e| e.to_string())
    }

    /// How long the service goes on taking new sessions after it is told to stop.
    pub fn stop_delay(&self) -> Duration {
        Duration::from_secs(self.ftp.stop_delay)
    }

    /// How long running transfers may take to finish when the service stops.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.ftp.shutdown_grace)
    }

    /// How long a connection may take to log in.
    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.ftp.login_timeout)
    }

    /// Whether FTPS is offered.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A libunftp server for one connection (`control` is a second handle on it, see
    /// [`ControlLink`]); the session ends (after a transfer in progress) when `stop` completes.
    pub fn session_server(
        &self,
        stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
        control: Option<ControlLink>,
    ) -> Result<(Server<QumuloStorage, User>, LoggedIn), ServerError> {
        let handoff = auth::Handoff::default();
        let logged_in = LoggedIn::default();
        let shared = self.shared.clone();
        let authenticator = auth::QumuloAuthenticator {
            client: self.client.clone(),
            chroot: self.chroot,
            handoff: handoff.clone(),
            memory: self.memory.clone(),
            limits: self.ftp.failed_logins.clone(),
            welcome: self.welcome.clone(),
            logged_in: logged_in.clone(),
            stats: self.shared.stats.clone(),
        };
        let provider = Arc::new(auth::SessionProvider { handoff });
        let mut builder = ServerBuilder::with_user_detail_provider(
            Box::new(move || QumuloStorage::new(shared.clone(), control.clone())),
            provider,
        )
        .authenticator(Arc::new(authenticator))
        .site_command("CHMOD", site::Chmod)
        .site_command("UTIME", site::Utime)
        .greeting(self.greeting)
        // One listener per waiting session, on a port of the range (sized for max-connections).
        // libunftp's pooled mode, which listens on every port for good and tells sessions apart
        // by the client's address, is not used: it needs libunftp's own accept loop (qftpd takes
        // its socket from systemd), answers EPSV 502, and serves only one session of an address
        // per port, which does not help the many sessions behind one NAT address.
        .passive_ports(self.passive_ports.clone())
        .passive_host(self.passive_host.clone())
        .idle_session_timeout(self.ftp.idle_timeout)
        .data_connection_timeout(Duration::from_secs(self.ftp.data_timeout))
        .session_policy(SessionPolicy {
            tls_handshake_timeout: Some(Duration::from_secs(self.ftp.tls.handshake_timeout)),
            login_timeout: Some(Duration::from_secs(self.ftp.login_timeout)),
            require_tls_session_reuse: self.ftp.tls.require_session_reuse,
        })
        .active_passive_mode(if self.ftp.active_mode {
            ActivePassiveMode::ActiveAndPassive
        } else {
            ActivePassiveMode::PassiveOnly
        })
        .shutdown_indicator(async move {
            stop.await;
            libunftp::options::Shutdown::new()
        });
        if let Some(tls) = &self.tls {
            builder = builder.ftps_manual::<std::path::PathBuf>(tls.clone());
            if self.ftp.tls.required {
                builder = builder.ftps_required(FtpsRequired::All, FtpsRequired::All);
            }
        }
        Ok((builder.build()?, logged_in))
    }
}

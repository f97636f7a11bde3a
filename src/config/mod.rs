//! Configuration: built-in defaults, then a TOML file, then `QFTPD_<SECTION>__<KEY>`
//! environment variables (`QFTPD_FTP__PASSIVE_PORTS=50000-50100`), parsed once into typed
//! structs. Unknown keys and bad values are refused with the key's name.

//!
//! `mod.rs` is the schema (every key, its doc and its default); `types` the value types of
//! its own, `load` the layering and the checks, `report` errors that say where. A leaf: it
//! imports nothing else of the crate (what only the FTP side or logging can check, such as
//! the FTPS certificate or the log filter, they check).

mod load;
mod report;
#[cfg(test)]
mod tests;
mod types;

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use report::describe_source;
pub use types::{Fingerprint, NodeUrls, TlsVersion};

/// The configuration file read when none is given.
pub const DEFAULT_PATH: &str = "/etc/qftpd/qftpd.toml";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// The FTP side.
    #[serde(default)]
    pub ftp: FtpConfig,
    /// The cluster side.
    pub qumulo: QumuloConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The health and metrics listener.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[metrics]`: an HTTP listener for `/health`, `/ready` (for load balancers) and `/metrics`
/// (Prometheus text). Off unless `listen` is set or systemd passes a socket named `metrics`
/// (`qftpd-metrics.socket`), which then wins over `listen`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address the listener binds, e.g. `127.0.0.1:9121`; unset: no listener. It tells
    /// anyone who reaches it how many sessions and logins there are: keep it on loopback or a
    /// management network.
    pub listen: Option<SocketAddr>,
}

/// Where log events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogTarget {
    /// The journal when stderr is connected to it (`JOURNAL_STREAM`), else stderr.
    #[default]
    Auto,
    /// Always the journal.
    Journald,
    /// Always readable lines on stderr.
    Stderr,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct LogConfig {
    /// Filter in `RUST_LOG` syntax, e.g. `info` or `debug,libunftp=info`; `RUST_LOG` wins.
    pub level: String,
    /// Where events go.
    pub target: LogTarget,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            target: LogTarget::Auto,
        }
    }
}

/// `[ftp]`: what FTP clients see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct FtpConfig {
    /// Address the control connection listens on when systemd passes no socket.
    pub listen: SocketAddr,
    /// Ports for passive data connections, `"LOW-HIGH"`. A session holds one at most while it
    /// waits for its data connection, so the range should have at least `max-connections`
    /// ports; beyond that, PASV and EPSV get 425 until a port is free.
    #[serde(with = "types::port_range")]
    pub passive_ports: RangeInclusive<u16>,
    /// Address announced in PASV replies (IPv4 or a DNS name); by default the address the
    /// client connected to.
    pub passive_host: Option<String>,
    /// Text of the 220 greeting.
    pub greeting: String,
    /// IANA time zone of LIST times (MLSD, MLST and MDTM are UTC, as RFC 3659 says).
    #[serde(serialize_with = "types::tz_ser", deserialize_with = "types::tz_de")]
    pub timezone: chrono_tz::Tz,
    /// Confine each user to its Qumulo home directory.
    pub chroot_users: bool,
    /// Seconds running transfers may take to finish when the service stops.
    pub shutdown_grace: u64,
    /// Seconds the service goes on taking new sessions after it is told to stop, with `/ready`
    /// answering 503 meanwhile: time for a load balancer that checks `/ready` to send new
    /// sessions elsewhere before this gateway's port closes (its check interval times its fall
    /// count). Then running transfers have `shutdown-grace` to finish. 0: the port closes at
    /// once.
    pub stop_delay: u64,
    /// Seconds a session may stay idle (no command, no transfer) before it is closed.
    pub idle_timeout: u64,
    /// Seconds a data connection may stall (not connected yet, or no byte moving) before the
    /// transfer fails.
    pub data_timeout: u64,
    /// Seconds a connection may stay without a user logged in, whatever it sends meanwhile;
    /// it is then closed with `421 Login timeout`.
    pub login_timeout: u64,
    /// STOR writes to a hidden temporary name and replaces the target only when complete.
    pub atomic_uploads: bool,
    /// Allow active mode (PORT, EPRT), only towards the client's own address.
    pub active_mode: bool,
    /// Open control connections at most, over all clients.
    pub max_connections: usize,
    /// Open control connections at most from one client address.
    pub max_connections_per_ip: usize,
    /// Load balancers (addresses or CIDRs, e.g. `["10.0.0.0/24", "192.0.2.7"]`) whose
    /// connections begin with a PROXY protocol header (v1 or v2) naming the client. From these
    /// addresses the header is required, and passive data connections are accepted as coming
    /// from the client (the balancer forwards the passive ports too); from any other address
    /// none is expected, and a client cannot pass one. Empty: the PROXY protocol is off.
    #[serde(with = "types::networks")]
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// FTPS.
    pub tls: TlsConfig,
    /// Limits on failed logins.
    pub failed_logins: FailedLoginsConfig,
}

/// `[ftp.tls]`: explicit FTPS (AUTH TLS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; FTPS is offered when it and `key` are set.
    pub certificate: Option<PathBuf>,
    /// PEM private key of the certificate.
    pub key: Option<PathBuf>,
    /// Refuse logins on control connections that are not protected by TLS, and data
    /// connections without PROT P.
    pub required: bool,
    /// Oldest TLS version accepted: `"1.2"` or `"1.3"`.
    pub min_version: TlsVersion,
    /// Seconds a TLS handshake may take, on the control connection (`AUTH TLS`, which is then
    /// closed) and on data connections (the transfer gets `425`).
    pub handshake_timeout: u64,
    /// Data connections must resume the TLS session of their own control connection, or the
    /// transfer is refused with `425` (vsftpd's `require_ssl_reuse`).
    pub require_session_reuse: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            certificate: None,
            key: None,
            required: false,
            min_version: TlsVersion::V1_2,
            handshake_timeout: 10,
            require_session_reuse: false,
        }
    }
}

/// `[ftp.failed-logins]`: brute-force protection, shared by all connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct FailedLoginsConfig {
    /// Failed logins from one client address before it is banned (0: no limit). Logins being
    /// checked count against the address until the cluster answers: at most this many (less
    /// the failures) are checked at once, the others wait for them.
    pub max_per_address: u32,
    /// Failed logins for one user name, from any address, after which its logins are slowed
    /// (0: never): each waits before the cluster is asked (`delay-ms`, doubling with every
    /// further failure, at most 8 s), and those from addresses that have been failing take
    /// turns, one per delay. The user name is never banned.
    pub max_per_user: u32,
    /// Seconds a ban lasts; failures older than this are forgotten.
    pub ban_time: u64,
    /// Milliseconds the reply to the first failure is delayed; it doubles with every further
    /// failure (at most 8 s). Also the first delay of the logins of a slowed user name.
    pub delay_ms: u64,
}

impl Default for FailedLoginsConfig {
    fn default() -> Self {
        Self {
            max_per_address: 5,
            max_per_user: 10,
            ban_time: 900,
            delay_ms: 500,
        }
    }
}

impl Default for FtpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 21)),
            passive_ports: 50000..=50999,
            passive_host: None,
            proxy_protocol_from: Vec::new(),
            greeting: "qftpd ready".to_string(),
            timezone: chrono_tz::UTC,
            chroot_users: false,
            shutdown_grace: 20,
            stop_delay: 0,
            idle_timeout: 600,
            data_timeout: 120,
            login_timeout: 60,
            atomic_uploads: true,
            active_mode: true,
            max_connections: 500,
            max_connections_per_ip: 50,
            tls: TlsConfig::default(),
            failed_logins: FailedLoginsConfig::default(),
        }
    }
}

/// `[qumulo]`: how to reach the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QumuloConfig {
    /// The cluster's REST API, e.g. `https://qumulo.example.com:8000`, or a list of its
    /// nodes' URLs (requests are spread across them and fail over).
    pub url: NodeUrls,
    /// PEM certificates to trust besides the system roots (e.g. the cluster's self-signed one).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the cluster's certificate (64 hex digits, colons allowed): that
    /// certificate alone is trusted, whoever signed it.
    #[serde(default)]
    pub fingerprint_sha256: Option<Fingerprint>,
    /// Do not verify the cluster's certificate at all.
    #[serde(default)]
    pub accept_invalid_certs: bool,
    /// Seconds to establish a connection to a node.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
    /// Seconds the cluster may stay silent during a request.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: u64,
    /// Extra attempts of a failed idempotent request (reads, attribute changes).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// File holding a Qumulo access token for the gateway's own calls (reading the cluster's
    /// name): the bearer string alone, or the credentials file `qq auth_create_access_token
    /// --file` writes. The path is configuration; the token itself is never printed or logged.
    #[serde(default)]
    pub access_token: Option<PathBuf>,
}

impl QumuloConfig {
    /// The cluster at `url`, with the defaults of every other key.
    pub fn new(url: NodeUrls) -> Self {
        Self {
            url,
            ca_file: None,
            fingerprint_sha256: None,
            accept_invalid_certs: false,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            retries: default_retries(),
            access_token: None,
        }
    }
}

fn default_connect_timeout() -> u64 {
    10
}

fn default_request_timeout() -> u64 {
    60
}

fn default_retries() -> u32 {
    3
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

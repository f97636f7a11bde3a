//! Configuration: built-in defaults, then a TOML file, then `QFTPD_<SECTION>__<KEY>`
//! environment variables (`QFTPD_FTP__PASSIVE_PORTS=50000-50100`), parsed once into typed
//! structs. Unknown keys and bad values are refused with the key's name.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

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
    #[serde(with = "port_range")]
    pub passive_ports: RangeInclusive<u16>,
    /// Address announced in PASV replies (IPv4 or a DNS name); by default the address the
    /// client connected to.
    pub passive_host: Option<String>,
    /// Text of the 220 greeting.
    pub greeting: String,
    /// IANA time zone of LIST times (MLSD, MLST and MDTM are UTC, as RFC 3659 says).
    #[serde(serialize_with = "tz_ser", deserialize_with = "tz_de")]
    pub timezone: chrono_tz::Tz,
    /// Confine each user to its Qumulo home directory.
    pub chroot_users: bool,
    /// Seconds running transfers may take to finish when the service stops.
    pub shutdown_grace: u64,
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

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    V1_3,
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
            greeting: "qftpd ready".to_string(),
            timezone: chrono_tz::UTC,
            chroot_users: false,
            shutdown_grace: 20,
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

    /// The access token in the `access-token` file, if one is configured. The error names the
    /// key and the file, never the file's content.
    pub fn read_access_token(&self) -> Result<Option<String>, ConfigError> {
        self.access_token
            .as_deref()
            .map(|path| {
                read_access_token(path).map_err(|e| {
                    ConfigError(format!("qumulo.access-token: {}: {e}", path.display()))
                })
            })
            .transpose()
    }
}

/// Reads an access token file: the bearer string alone (surrounding white space ignored), or
/// a `qq` credentials file (`{"bearer_token": "...", ...}`).
fn read_access_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => "is not a text file".to_string(),
        _ => format!("cannot be read ({e})"),
    })?;
    let text = text.trim();
    let token = if text.starts_with('{') {
        #[derive(Deserialize)]
        struct Credentials {
            bearer_token: String,
        }
        serde_json::from_str::<Credentials>(text)
            .map_err(|_| {
                "is JSON but not a qq credentials file (no string \"bearer_token\")".to_string()
            })?
            .bearer_token
            .trim()
            .to_string()
    } else {
        text.to_string()
    };
    if token.is_empty() {
        return Err("holds no token".to_string());
    }
    // Sent as an HTTP header value: one word of visible ASCII.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("holds more than one token (a token is one word of visible ASCII)".to_string());
    }
    Ok(token)
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

/// One or more node URLs: `url = "https://a:8000"` or `url = ["https://a:8000", "https://b:8000"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUrls(pub Vec<Url>);

impl NodeUrls {
    /// One node.
    pub fn one(url: Url) -> Self {
        Self(vec![url])
    }
}

impl std::fmt::Display for NodeUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text: Vec<&str> = self.0.iter().map(Url::as_str).collect();
        f.write_str(&text.join(", "))
    }
}

impl Serialize for NodeUrls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for NodeUrls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a URL or a list of URLs")]
        enum OneOrMany {
            One(Url),
            Many(Vec<Url>),
        }
        let urls = match OneOrMany::deserialize(d)? {
            OneOrMany::One(u) => vec![u],
            OneOrMany::Many(v) if v.is_empty() => {
                return Err(serde::de::Error::custom("the list of node URLs is empty"));
            }
            OneOrMany::Many(v) => v,
        };
        Ok(Self(urls))
    }
}

/// A SHA-256 certificate fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Parses 64 hex digits, optionally separated by colons (as `openssl x509 -fingerprint
    /// -sha256` prints them) and optionally prefixed by `sha256:`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("{text:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)");
        let t = text.trim();
        let t = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&hex.join(":"))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `file` (when given it must exist; otherwise [`DEFAULT_PATH`] is
    /// read if present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(DefaultsOnly::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file(DEFAULT_PATH)),
        }
        figment = figment.merge(env_provider());
        let config: Config = figment.extract().map_err(|e| {
            // toml names the line and column of a bad key or value in the file itself.
            let file = file
                .map(Path::to_path_buf)
                .or_else(|| Some(PathBuf::from(DEFAULT_PATH)));
            ConfigError(
                file.and_then(|f| positioned(&f))
                    .unwrap_or_else(|| describe(e)),
            )
        })?;
        let mut config = config;
        let base = file
            .unwrap_or(Path::new(DEFAULT_PATH))
            .parent()
            .map(Path::to_path_buf);
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let resolve = |f: &mut Option<PathBuf>| {
            if let Some(p) = f.take() {
                *f = Some(resolve_file(&p, credentials.as_deref(), base.as_deref()));
            }
        };
        resolve(&mut config.qumulo.ca_file);
        resolve(&mut config.qumulo.access_token);
        resolve(&mut config.ftp.tls.certificate);
        resolve(&mut config.ftp.tls.key);
        config.validate()?;
        Ok(config)
    }

    /// What is valid but probably not meant: each a sentence for the journal (at every start
    /// and reload) and for `qftpd check-config`. Problems of the machine rather than of the
    /// file (the open-file limit) are not the configuration's to say.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for url in self.qumulo.url.0.iter().filter(|u| u.scheme() == "http") {
            warnings.push(format!(
                "qumulo.url: {url} is plain HTTP: FTP users' passwords, bearer tokens and files                  cross the network to the cluster unencrypted; use https:// (the cluster's REST                  API listens for HTTPS on port 8000)"
            ));
        }
        if let Some(warning) = self.ftp.passive_ports_warning() {
            warnings.push(warning);
        }
        if self.qumulo.accept_invalid_certs {
            warnings.push(format!(
                "qumulo.accept-invalid-certs is on: the certificate of {} is not verified",
                self.qumulo.url
            ));
        }
        warnings
    }

    /// Refuses values that are wrong alone or together, and files named that are missing or
    /// unreadable. What only their users can tell (is the FTPS certificate usable, is
    /// `log.level` a filter) is checked by them: see `daemon::load`.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.qumulo.accept_invalid_certs && self.qumulo.ca_file.is_some() {
            return Err(ConfigError(
                "qumulo.accept-invalid-certs = true contradicts qumulo.ca-file: either trust the \
                 certificates in ca-file, or verify nothing"
                    .to_string(),
            ));
        }
        if let Some(ca) = &self.qumulo.ca_file
            && !ca.is_file()
        {
            return Err(ConfigError(format!(
                "qumulo.ca-file: {} is not a readable file",
                ca.display()
            )));
        }
        self.qumulo.read_access_token()?;
        for url in &self.qumulo.url.0 {
            if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
                return Err(ConfigError(format!(
                    "qumulo.url: {url} is not an http(s) URL with a host"
                )));
            }
        }
        let q = &self.qumulo;
        if q.fingerprint_sha256.is_some() && (q.accept_invalid_certs || q.ca_file.is_some()) {
            return Err(ConfigError(
                "qumulo.fingerprint-sha256 pins the cluster's certificate: it contradicts \
                 qumulo.ca-file and qumulo.accept-invalid-certs (keep only one of them)"
                    .to_string(),
            ));
        }
        if q.connect_timeout == 0 || q.request_timeout == 0 {
            return Err(ConfigError(
                "qumulo.connect-timeout and qumulo.request-timeout must be at least 1 second"
                    .to_string(),
            ));
        }
        let ftp = &self.ftp;
        if ftp.idle_timeout == 0 || ftp.data_timeout == 0 {
            return Err(ConfigError(
                "ftp.idle-timeout and ftp.data-timeout must be at least 1 second".to_string(),
            ));
        }
        if ftp.login_timeout == 0 {
            return Err(ConfigError(
                "ftp.login-timeout must be at least 1 second".to_string(),
            ));
        }
        if ftp.tls.handshake_timeout == 0 {
            return Err(ConfigError(
                "ftp.tls.handshake-timeout must be at least 1 second".to_string(),
            ));
        }
        if ftp.max_connections == 0 || ftp.max_connections_per_ip == 0 {
            return Err(ConfigError(
                "ftp.max-connections and ftp.max-connections-per-ip must be at least 1".to_string(),
            ));
        }
        let tls = &ftp.tls;
        match (&tls.certificate, &tls.key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError(
                    "ftp.tls.certificate and ftp.tls.key go together: set both, or neither"
                        .to_string(),
                ));
            }
            (None, None) if tls.required => {
                return Err(ConfigError(
                    "ftp.tls.required = true needs ftp.tls.certificate and ftp.tls.key".to_string(),
                ));
            }
            (None, None) if tls.require_session_reuse => {
                return Err(ConfigError(
                    "ftp.tls.require-session-reuse = true needs ftp.tls.certificate and ftp.tls.key"
                        .to_string(),
                ));
            }
            (Some(cert), Some(key)) => {
                for (name, file) in [("ftp.tls.certificate", cert), ("ftp.tls.key", key)] {
                    if !file.is_file() {
                        return Err(ConfigError(format!(
                            "{name}: {} is not a readable file",
                            file.display()
                        )));
                    }
                }
            }
            (None, None) => {}
        }
        Ok(())
    }
}

impl FtpConfig {
    /// Whether `passive-ports` has fewer ports than `max-connections` allows sessions (each
    /// holds one while it waits for its data connection): a sentence naming both keys.
    pub fn passive_ports_warning(&self) -> Option<String> {
        let ports = self.passive_ports.clone().count();
        (ports < self.max_connections).then(|| {
            format!(
                "ftp.passive-ports has {ports} ports, fewer than ftp.max-connections = {}: when \
                 more sessions than that wait for a passive data connection at once, PASV and \
                 EPSV get 425 until a port is free",
                self.max_connections
            )
        })
    }
}

/// Where the configuration comes from, for messages: the file (given, or the default one
/// when it exists) and the environment.
pub fn describe_source(file: Option<&Path>) -> String {
    match file {
        Some(f) => format!("{} and QFTPD_* variables", f.display()),
        None if Path::new(DEFAULT_PATH).exists() => format!("{DEFAULT_PATH} and QFTPD_* variables"),
        None => format!("no {DEFAULT_PATH}; QFTPD_* variables only"),
    }
}

/// Where a file named in the configuration is. An absolute path is used as it is. A relative
/// one is first looked up among the credentials systemd passes (`LoadCredential=NAME:…` puts
/// them in `$CREDENTIALS_DIRECTORY`, readable by the service's user even when the original is
/// root-only), then next to the configuration file.
fn resolve_file(path: &Path, credentials: Option<&Path>, config_dir: Option<&Path>) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    if let Some(candidate) = credentials
        .map(|dir| dir.join(path))
        .filter(|p| p.is_file())
    {
        return candidate;
    }
    config_dir.map_or_else(|| path.to_path_buf(), |dir| dir.join(path))
}

/// The error toml reports for the file alone, as `FILE, line L, column C: KEY: MESSAGE` with
/// the offending line quoted, unless the file is fine on its own (a missing key may come from
/// the environment).
fn positioned(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let err = match toml::from_str::<Config>(&text) {
        Err(e) if !e.message().starts_with("missing field") => e,
        _ => return None,
    };
    let message = err.message().trim_end();
    let Some(span) = err.span().filter(|s| s.start <= text.len()) else {
        return Some(format!("{}: {message}", file.display()));
    };
    let key = key_at(&text, span.start)
        .map(|k| format!("{k}: "))
        .unwrap_or_default();
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let line = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..span.start].chars().count() + 1;
    let marked = text.get(span.clone()).map_or(1, |s| {
        s.lines().next().map_or(1, |l| l.chars().count().max(1))
    });
    Some(format!(
        "{file}, line {line}, column {column}: {key}{message}\n{line:>5} | {line_text}\n      | {pad}{carets}",
        file = file.display(),
        pad = " ".repeat(column - 1),
        carets = "^".repeat(marked),
    ))
}

/// The dotted key at byte `offset` of a TOML document: the table header above it and the key
/// its line starts with (`[ftp]` … `timezone = "x"` → `ftp.timezone`; on a header line, the
/// header's own key). Exact for tables of `key = value` lines, which is the shape of qftpd's
/// configuration; inside an inline table or a value spanning lines, the outer key is named.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let mut key: Option<String> = None;
    for raw in text[..line_end].lines().rev() {
        let line = raw.trim();
        if line.starts_with('[') {
            let header = line.trim_start_matches('[');
            let header = header.split(']').next().unwrap_or("");
            let header = normalize_key(header);
            return Some(match key {
                Some(k) if header.is_empty() => k,
                Some(k) => format!("{header}.{k}"),
                None => header,
            });
        }
        if key.is_none()
            && !line.starts_with('#')
            && let Some((k, _)) = line.split_once('=')
        {
            key = Some(normalize_key(k));
        }
    }
    key
}

/// `ftp . "time-zone"` → `ftp.time-zone`.
fn normalize_key(key: &str) -> String {
    key.split('.')
        .map(|part| part.trim().trim_matches(|c| c == '"' || c == '\''))
        .collect::<Vec<_>>()
        .join(".")
}

/// The defaults of every key that has one (`qumulo.url` has none).
#[derive(Serialize, Default)]
struct DefaultsOnly {
    ftp: FtpConfig,
    log: LogConfig,
}

/// `QFTPD_FTP__PASSIVE_PORTS` → `ftp.passive-ports`.
fn env_provider() -> Env {
    Env::prefixed("QFTPD_")
        .split("__")
        .map(|key| key.as_str().replace('_', "-").into())
}

/// One line per error, each naming the full key and where the value came from: the file, or
/// the `QFTPD_*` variable.
fn describe(err: figment::Error) -> String {
    use figment::Provider as _;
    use figment::error::Kind;
    let env_name = env_provider().metadata().name;
    err.into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            let what = match &e.kind {
                Kind::MissingField(field) if path.is_empty() && field == "qumulo" => {
                    path = vec!["qumulo".into(), "url".into()];
                    "missing: set the cluster's REST API, e.g. [qumulo] url = \"https://qumulo.example.com:8000\"".to_string()
                }
                Kind::MissingField(field) => {
                    path.push(field.to_string());
                    "missing".to_string()
                }
                Kind::UnknownField(field, expected) => {
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    format!("unknown key; expected one of {}", expected.join(", "))
                }
                kind => kind.to_string(),
            };
            let key = if path.is_empty() {
                String::new()
            } else {
                format!("{}: ", path.join("."))
            };
            let origin = match e.metadata.as_ref() {
                Some(m) if m.name == env_name => format!(
                    " (from the environment variable QFTPD_{})",
                    path.join("__").replace('-', "_").to_ascii_uppercase()
                ),
                Some(m) => m
                    .source
                    .as_ref()
                    .map(|s| format!(" (in {s})"))
                    .unwrap_or_default(),
                None => String::new(),
            };
            format!("{key}{what}{origin}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn tz_ser<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

fn tz_de<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{name:?} is not an IANA time zone (e.g. Europe/Berlin)"
        ))
    })
}

mod port_range {
    use std::ops::RangeInclusive;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &RangeInclusive<u16>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}-{}", r.start(), r.end()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RangeInclusive<u16>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<RangeInclusive<u16>, String> {
        let bad =
            || format!("{text:?} is not a port range LOW-HIGH with 1024 <= LOW <= HIGH <= 65535");
        let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
        let (lo, hi): (u16, u16) = (
            lo.trim().parse().map_err(|_| bad())?,
            hi.trim().parse().map_err(|_| bad())?,
        );
        if lo < 1024 || lo > hi {
            return Err(bad());
        }
        Ok(lo..=hi)
    }
}

#[cfg(test)]
#[allow(
    clippy::result_large_err,
    reason = "figment's Jail returns its own error type"
)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn file_then_environment() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "q.toml",
                r#"
                [ftp]
                listen = "127.0.0.1:2121"
                passive-ports = "50000-50010"
                timezone = "Europe/Berlin"
                [qumulo]
                url = "https://cluster:8000"
                "#,
            )?;
            jail.set_env("QFTPD_FTP__PASSIVE_PORTS", "60000-60005");
            jail.set_env("QFTPD_FTP__CHROOT_USERS", "true");
            let c = Config::load(Some(Path::new("q.toml"))).unwrap();
            assert_eq!(c.ftp.listen.port(), 2121);
            assert_eq!(c.ftp.passive_ports, 60000..=60005);
            assert!(c.ftp.chroot_users);
            assert_eq!(c.ftp.timezone, chrono_tz::Europe::Berlin);
            assert_eq!(c.ftp.greeting, "qftpd ready");
            assert_eq!(c.qumulo.url.0[0].as_str(), "https://cluster:8000/");
            Ok(())
        });
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        Jail::expect_with(|jail| {
            let cases = [
                (
                    "[ftp]\nlisen = \"x\"\n[qumulo]\nurl = \"https://c\"\n",
                    "unknown field",
                ),
                (
                    "[ftp]\ntimezone = \"Mars/Olympus\"\n[qumulo]\nurl = \"https://c\"\n",
                    "ftp.timezone",
                ),
                (
                    "[ftp]\npassive-ports = \"900-100\"\n[qumulo]\nurl = \"https://c\"\n",
                    "ftp.passive-ports",
                ),
                ("[ftp]\n", "qumulo.url: missing"),
                (
                    "[qumulo]\naccept-invalid-certs = true\n",
                    "qumulo.url: missing",
                ),
                ("[qumulo]\nurl = \"ftp://c\"\n", "qumulo.url"),
            ];
            for (text, needle) in cases {
                jail.create_file("bad.toml", text)?;
                let err = Config::load(Some(Path::new("bad.toml")))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(needle), "{text:?}: {err}");
            }
            assert!(
                Config::load(Some(Path::new("missing.toml")))
                    .unwrap_err()
                    .to_string()
                    .contains("does not exist")
            );
            Ok(())
        });
    }

    #[test]
    fn security_keys() {
        Jail::expect_with(|jail| {
            let valid = r#"
                [ftp]
                max-connections-per-ip = 4
                failed-logins.max-per-address = 2
                [qumulo]
                url = ["https://a:8000", "https://b:8000"]
                fingerprint-sha256 = "sha256:0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
                "#;
            // The same with an FTPS certificate that does not exist.
            let tls = "[ftp.tls]\ncertificate = \"missing.pem\"\nkey = \"missing.key\"\n";
            jail.create_file(
                "q.toml",
                &valid.replacen("[qumulo]", &format!("{tls}[qumulo]"), 1),
            )?;
            let err = Config::load(Some(Path::new("q.toml")))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("ftp.tls") && err.contains("missing.pem"),
                "{err}"
            );
            jail.create_file("q.toml", valid)?;
            let c = Config::load(Some(Path::new("q.toml"))).unwrap();
            assert_eq!(c.qumulo.url.0.len(), 2);
            assert_eq!(c.qumulo.url.to_string(), "https://a:8000/, https://b:8000/");
            let pin = c.qumulo.fingerprint_sha256.unwrap();
            assert_eq!(pin.0[0], 1);
            assert_eq!(pin.0[31], 0x20);
            assert!(pin.to_string().starts_with("01:02:03"));
            assert_eq!(Fingerprint::parse(&pin.to_string()), Ok(pin));
            assert_eq!(c.ftp.max_connections_per_ip, 4);
            assert_eq!(c.ftp.failed_logins.max_per_address, 2);
            assert_eq!(c.ftp.failed_logins.max_per_user, 10);
            assert!(c.ftp.atomic_uploads);
            let url = "[qumulo]\nurl = \"https://c\"\n";
            let pin = format!("\"{}\"", ["AA"; 32].join(":"));
            let cases = [
                (
                    format!("[ftp]\ntls.required = true\n{url}"),
                    "needs ftp.tls.certificate",
                ),
                (format!("[ftp]\ntls.key = \"k.pem\"\n{url}"), "go together"),
                (
                    format!("[ftp]\ntls.min-version = \"1.1\"\n{url}"),
                    "ftp.tls.min-version",
                ),
                (format!("[ftp]\nmax-connections = 0\n{url}"), "at least 1"),
                (
                    format!("[ftp]\ndata-timeout = 0\n{url}"),
                    "at least 1 second",
                ),
                (
                    format!("{url}fingerprint-sha256 = \"abc\"\n"),
                    "not a SHA-256 fingerprint",
                ),
                (
                    format!("{url}fingerprint-sha256 = {pin}\naccept-invalid-certs = true\n"),
                    "contradicts",
                ),
                ("[qumulo]\nurl = []\n".to_string(), "empty"),
            ];
            for (body, needle) in cases {
                jail.create_file("bad.toml", &body)?;
                let err = Config::load(Some(Path::new("bad.toml")))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(needle), "{body:?}: {err}");
            }
            Ok(())
        });
    }

    #[test]
    fn login_and_tls_handshake_limits() {
        Jail::expect_with(|jail| {
            let url = "[qumulo]\nurl = \"https://c\"\n";
            jail.create_file("q.toml", url)?;
            let c = Config::load(Some(Path::new("q.toml"))).unwrap();
            assert_eq!(c.ftp.login_timeout, 60);
            assert_eq!(c.ftp.tls.handshake_timeout, 10);
            assert!(!c.ftp.tls.require_session_reuse);
            let cases = [
                (
                    "login-timeout = 0",
                    "ftp.login-timeout must be at least 1 second",
                ),
                (
                    "tls.handshake-timeout = 0",
                    "ftp.tls.handshake-timeout must be at least 1 second",
                ),
                (
                    "tls.require-session-reuse = true",
                    "ftp.tls.require-session-reuse = true needs ftp.tls.certificate",
                ),
                ("login-timeout = \"soon\"", "ftp.login-timeout"),
            ];
            for (line, needle) in cases {
                jail.create_file("bad.toml", &format!("[ftp]\n{line}\n{url}"))?;
                let err = Config::load(Some(Path::new("bad.toml")))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(needle), "{line:?}: {err}");
            }
            Ok(())
        });
    }

    #[test]
    fn key_at_names_the_dotted_key() {
        let text = "top = 1\n[ftp]\n# x = 1\ntimezone = \"x\"\nlist = [\n  1,\n  2,\n]\n\
                    [ \"log\" ]\n'level' = 3\nsub.inner = 4\n[[extra]]\n";
        let at = |needle: &str| key_at(text, text.find(needle).unwrap());
        assert_eq!(at("1\n[ftp]").as_deref(), Some("top"));
        assert_eq!(at("\"x\"").as_deref(), Some("ftp.timezone"));
        assert_eq!(at("timezone").as_deref(), Some("ftp.timezone"));
        assert_eq!(at("2,").as_deref(), Some("ftp.list"));
        assert_eq!(at("3").as_deref(), Some("log.level"));
        assert_eq!(at("4").as_deref(), Some("log.sub.inner"));
        assert_eq!(at("extra").as_deref(), Some("extra"));
    }

    #[test]
    fn file_errors_quote_the_line_and_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "q.toml",
                "[qumulo]\nurl = \"https://c\"\n[ftp]\nshutdown-grace = \"soon\"\n",
            )?;
            let err = positioned(Path::new("q.toml")).unwrap();
            assert_eq!(
                err,
                "q.toml, line 4, column 18: ftp.shutdown-grace: invalid type: string \"soon\", \
                 expected u64\n    4 | shutdown-grace = \"soon\"\n      |                  ^^^^^^"
            );
            // A file that is fine on its own (the URL may come from the environment).
            jail.create_file("ok.toml", "[ftp]\n")?;
            assert_eq!(positioned(Path::new("ok.toml")), None);
            Ok(())
        });
    }

    #[test]
    fn environment_errors_name_the_variable() {
        Jail::expect_with(|jail| {
            jail.create_file("q.toml", "[qumulo]\nurl = \"https://c\"\n")?;
            jail.set_env("QFTPD_FTP__SHUTDOWN_GRACE", "soon");
            let err = Config::load(Some(Path::new("q.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("ftp.shutdown-grace: "), "{err}");
            assert!(
                err.ends_with("(from the environment variable QFTPD_FTP__SHUTDOWN_GRACE)"),
                "{err}"
            );
            Ok(())
        });
    }
}

//! Loading: defaults, then the file, then the environment; file names resolved; the values
//! checked, alone and together.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use super::report::{describe, positioned};
use super::{Config, ConfigError, DEFAULT_PATH, FtpConfig, LogConfig, QumuloConfig};

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
                "qumulo.url: {url} is plain HTTP: FTP users' passwords, bearer tokens and files \
                 cross the network to the cluster unencrypted; use https:// (the cluster's REST \
                 API listens for HTTPS on port 8000)"
            ));
        }
        if let Some(warning) = self.ftp.passive_ports_warning() {
            warnings.push(warning);
        }
        if !self.ftp.proxy_protocol_from.is_empty() && self.ftp.passive_host.is_none() {
            warnings.push(
                "ftp.proxy-protocol-from is set but ftp.passive-host is not: PASV replies name \
                 the gateway's own address, which clients behind the load balancer cannot reach \
                 (curl, Python's ftplib and every EPSV client connect to the balancer's address \
                 anyway); set passive-host to the address clients connect to, and have the \
                 balancer forward this gateway's passive ports"
                    .to_string(),
            );
        }
        if let Some(listen) = self.metrics.listen
            && !listen.ip().is_loopback()
        {
            warnings.push(format!(
                "metrics.listen = {listen} is not a loopback address: whoever reaches it reads \
                 the gateway's sessions, logins and cluster nodes (keep it on a management network)"
            ));
        }
        if self.ftp.stop_delay + self.ftp.shutdown_grace >= 30 {
            warnings.push(format!(
                "ftp.stop-delay ({}) + ftp.shutdown-grace ({}) is 30 s or more: qftpd.service \
                 kills the service 30 s after it is told to stop (TimeoutStopSec=); raise that \
                 too (systemctl edit qftpd.service)",
                self.ftp.stop_delay, self.ftp.shutdown_grace
            ));
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
    /// unreadable. What only their users can tell (is the FTPS certificate usable, does the
    /// access-token file hold a token, is `log.level` a filter) is checked by them: see
    /// `daemon::load`.
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
        if let Some(listen) = self.metrics.listen {
            if listen.port() == 0 {
                return Err(ConfigError(format!(
                    "metrics.listen: {listen} has no port (the usual one is 9121)"
                )));
            }
            if listen == self.ftp.listen {
                return Err(ConfigError(format!(
                    "metrics.listen: {listen} is ftp.listen too; give the HTTP listener a port of its own"
                )));
            }
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

impl QumuloConfig {
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

/// The defaults of every key that has one (`qumulo.url` has none).
#[derive(Serialize, Default)]
struct DefaultsOnly {
    ftp: FtpConfig,
    log: LogConfig,
}

/// `QFTPD_FTP__PASSIVE_PORTS` → `ftp.passive-ports`.
pub(super) fn env_provider() -> Env {
    Env::prefixed("QFTPD_")
        .split("__")
        .map(|key| key.as_str().replace('_', "-").into())
}

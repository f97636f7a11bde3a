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
    /// Ports for passive data connections, `"LOW-HIGH"`.
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
}

impl Default for FtpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 21)),
            passive_ports: 50000..=50100,
            passive_host: None,
            greeting: "qftpd ready".to_string(),
            timezone: chrono_tz::UTC,
            chroot_users: false,
            shutdown_grace: 20,
        }
    }
}

/// `[qumulo]`: how to reach the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QumuloConfig {
    /// The cluster's REST API, e.g. `https://qumulo.example.com:8000`.
    pub url: Url,
    /// PEM certificates to trust besides the system roots (e.g. the cluster's self-signed one).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Do not verify the cluster's certificate at all.
    #[serde(default)]
    pub accept_invalid_certs: bool,
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
        if let Some(ca) = config.qumulo.ca_file.take() {
            config.qumulo.ca_file =
                Some(resolve_file(&ca, credentials.as_deref(), base.as_deref()));
        }
        config.validate()?;
        Ok(config)
    }

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
        crate::logging::check_filter(&self.log.level)
            .map_err(|e| ConfigError(format!("log.level: {e}")))?;
        let url = &self.qumulo.url;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(ConfigError(format!(
                "qumulo.url: {url} is not an http(s) URL with a host"
            )));
        }
        Ok(())
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

/// `qftpd check-config`: prints the effective configuration and exits 0, or names each
/// problem and exits 78.
pub fn check_command(file: Option<&Path>) -> std::process::ExitCode {
    let config = match Config::load(file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!(
                "qftpd: invalid configuration ({}): {e}",
                describe_source(file)
            );
            return std::process::ExitCode::from(crate::cli::EXIT_CONFIG);
        }
    };
    match toml::to_string_pretty(&config) {
        Ok(text) => {
            println!("# effective qftpd configuration (defaults, file, QFTPD_* environment)");
            print!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qftpd: cannot print the configuration: {e}");
            std::process::ExitCode::from(crate::cli::EXIT_CONFIG)
        }
    }
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
            assert_eq!(c.qumulo.url.as_str(), "https://cluster:8000/");
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

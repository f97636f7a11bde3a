//! Logging set-up: the journal (native protocol, one field per event field) or readable lines
//! on stderr, filtered by `RUST_LOG` or `[log] level`, with libunftp kept to errors.
//!
//! libunftp logs through `log`; the subscriber's `try_init` installs the `log` → tracing bridge,
//! so its records pass the same filter and reach the same sink.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogTarget;

/// The journal's `SYSLOG_IDENTIFIER` (what `journalctl -t qftpd` selects).
pub const SYSLOG_IDENTIFIER: &str = "qftpd";

/// What is appended to a filter that does not name libunftp: its session spans and per-command
/// logs are noise (and kilobytes each) at the default level. Its data channel's warnings stay:
/// why a data connection failed to open (a TLS error) or broke during a listing; and so do the
/// session limits' closings (login and TLS handshake timeouts).
const LIBUNFTP_DEFAULT: &str =
    "libunftp=error,libunftp::server::datachan=warn,libunftp::limits=info";

/// What is appended to a filter that does not name rustls: its handshake parser warns about
/// every SNI name that is not a DNS name, and lftp sends an IP address on each FTPS data
/// connection. rustls ignores the name; so does qftpd, which serves one certificate.
const RUSTLS_DEFAULT: &str = "rustls::msgs::handshake=error";

/// Installs the global tracing subscriber with readable lines on stderr (ANSI colours only on a
/// terminal), filtered by `RUST_LOG`, else `default_level`. For the `sim` and `demo`
/// subcommands. Calling it again (or after [`init`]) is a harmless no-op.
pub fn init_stderr(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Installs the service's subscriber from `[log]`: the filter is `RUST_LOG`, else `level`,
/// plus `libunftp=error` (its data channel: `warn`) unless it names libunftp; the sink is chosen by `target` (`auto`:
/// the journal when stderr is connected to it). When the journal is wanted but cannot be
/// reached, events go to stderr and one warning says so; a filter that is not valid (see
/// [`check_filter`]) is replaced by `info`, with a warning. Calling it twice is harmless: the
/// first subscriber stays.
pub fn init(level: &str, target: LogTarget) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let directives = filter_directives(rust_log.as_deref(), level);
    let (filter, bad_filter) = match EnvFilter::try_new(&directives) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new(filter_directives(None, "info")), Some(e)),
    };
    let wanted = match target {
        LogTarget::Journald => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => journald_wanted(),
    };
    let (journald, unavailable) = if wanted {
        match tracing_journald::layer() {
            Ok(layer) => (
                Some(
                    layer
                        .with_syslog_identifier(SYSLOG_IDENTIFIER.to_string())
                        .with_field_prefix(None),
                ),
                None,
            ),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .try_init()
        .is_ok();
    if !installed {
        return;
    }
    if let Some(e) = unavailable {
        tracing::warn!(error = %e, "journald is not reachable (/run/systemd/journal/socket): logging to stderr instead");
    }
    if let Some(e) = bad_filter {
        tracing::warn!(error = %e, filter = %directives, "invalid log filter: using `info` instead");
    }
}

/// Whether `level` is a valid filter (`RUST_LOG` syntax); the error says what is wrong.
pub fn check_filter(level: &str) -> Result<(), String> {
    EnvFilter::try_new(level).map(drop).map_err(|e| {
        format!("{level:?} is not a valid filter (e.g. `info` or `debug,libunftp=info`): {e}")
    })
}

/// The filter in force: `RUST_LOG` when set and not empty, else `level`; `libunftp=error` (its data channel: `warn`) is
/// appended unless a directive already names libunftp, and `rustls::msgs::handshake=error`
/// unless one names rustls.
fn filter_directives(rust_log: Option<&str>, level: &str) -> String {
    let base = rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(level.trim());
    let names = |krate: &str| {
        base.split(',').any(|directive| {
            let target = directive.trim().split(['=', '[']).next().unwrap_or("");
            target == krate
                || target
                    .strip_prefix(krate)
                    .is_some_and(|t| t.starts_with("::"))
        })
    };
    [("libunftp", LIBUNFTP_DEFAULT), ("rustls", RUSTLS_DEFAULT)]
        .into_iter()
        .filter(|(krate, _)| !names(krate))
        .fold(base.to_string(), |filter, (_, default)| {
            match filter.is_empty() {
                true => default.to_string(),
                false => format!("{filter},{default}"),
            }
        })
}

/// Whether stderr is connected to the journal: systemd sets `JOURNAL_STREAM=DEV:INODE` of the
/// stream it gives the service as stderr. Children inherit the variable, so it counts only when
/// fd 2 still is that stream.
fn journald_wanted() -> bool {
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    journal_stream_matches(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stat.st_dev,
        stat.st_ino,
    )
}

/// Whether `journal_stream` (the value of `JOURNAL_STREAM`, if set) names the file with
/// device `dev` and inode `ino`.
fn journal_stream_matches(journal_stream: Option<&str>, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.and_then(|v| v.trim().split_once(':')) else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn journal_stream_absent_or_malformed_means_stderr() {
        for value in [
            None,
            Some(""),
            Some("12"),
            Some("a:b"),
            Some("1:2:3"),
            Some(":"),
        ] {
            assert!(!journal_stream_matches(value, 1, 2), "{value:?}");
        }
    }

    #[test]
    fn journal_stream_must_name_the_very_file() {
        let file = tempfile::tempfile().unwrap();
        let meta = file.metadata().unwrap();
        let (dev, ino) = (meta.dev(), meta.ino());
        let exact = format!("{dev}:{ino}");
        assert!(journal_stream_matches(Some(&exact), dev, ino));
        assert!(journal_stream_matches(
            Some(&format!("{exact}\n")),
            dev,
            ino
        ));
        assert!(!journal_stream_matches(
            Some(&format!("{dev}:{}", ino + 1)),
            dev,
            ino
        ));
        assert!(!journal_stream_matches(
            Some(&format!("{}:{ino}", dev + 1)),
            dev,
            ino
        ));
        assert!(!journal_stream_matches(
            Some(&format!("{ino}:{dev}")),
            dev,
            ino
        ));
    }

    #[test]
    fn journal_stream_of_the_real_stderr() {
        let stat = rustix::fs::fstat(std::io::stderr()).unwrap();
        let value = format!("{}:{}", stat.st_dev, stat.st_ino);
        assert!(journal_stream_matches(
            Some(&value),
            stat.st_dev,
            stat.st_ino
        ));
        // Another open file is not stderr.
        let other = tempfile::tempfile().unwrap().metadata().unwrap();
        let value = format!("{}:{}", other.dev(), other.ino());
        assert!(!journal_stream_matches(
            Some(&value),
            stat.st_dev,
            stat.st_ino
        ));
    }

    #[test]
    fn filter_is_rust_log_else_level_with_libunftp_quiet() {
        let cases = [
            (
                None,
                "info",
                "info,libunftp=error,libunftp::server::datachan=warn,libunftp::limits=info,rustls::msgs::handshake=error",
            ),
            (
                None,
                "debug",
                "debug,libunftp=error,libunftp::server::datachan=warn,libunftp::limits=info,rustls::msgs::handshake=error",
            ),
            (
                Some("trace"),
                "info",
                "trace,libunftp=error,libunftp::server::datachan=warn,libunftp::limits=info,rustls::msgs::handshake=error",
            ),
            (
                Some(""),
                "debug",
                "debug,libunftp=error,libunftp::server::datachan=warn,libunftp::limits=info,rustls::msgs::handshake=error",
            ),
            (
                Some("  "),
                "warn",
                "warn,libunftp=error,libunftp::server::datachan=warn,libunftp::limits=info,rustls::msgs::handshake=error",
            ),
            (
                None,
                "",
                "libunftp=error,libunftp::server::datachan=warn,libunftp::limits=info,rustls::msgs::handshake=error",
            ),
            (
                None,
                "debug,libunftp=info",
                "debug,libunftp=info,rustls::msgs::handshake=error",
            ),
            (
                Some("libunftp=trace,rustls=debug"),
                "info",
                "libunftp=trace,rustls=debug",
            ),
            (
                None,
                "info,libunftp::server=debug",
                "info,libunftp::server=debug,rustls::msgs::handshake=error",
            ),
            (
                None,
                "info,libunftp[session]=debug",
                "info,libunftp[session]=debug,rustls::msgs::handshake=error",
            ),
            (
                None,
                "info,libunftpx=debug",
                "info,libunftpx=debug,libunftp=error,libunftp::server::datachan=warn,libunftp::limits=info,rustls::msgs::handshake=error",
            ),
            (
                None,
                "qftpd::ftp=debug",
                "qftpd::ftp=debug,libunftp=error,libunftp::server::datachan=warn,libunftp::limits=info,rustls::msgs::handshake=error",
            ),
        ];
        for (rust_log, level, want) in cases {
            assert_eq!(
                filter_directives(rust_log, level),
                want,
                "{rust_log:?} {level:?}"
            );
            check_filter(want).unwrap();
        }
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(check_filter("info,qftpd=loud").is_err());
        assert!(check_filter("debug,libunftp=info").is_ok());
    }

    #[test]
    fn init_twice_does_not_panic() {
        // `off`: this subscriber stays for the whole test binary; keep it quiet.
        init("off", LogTarget::Stderr);
        init("off", LogTarget::Stderr);
        init_stderr("debug");
    }
}

//! Logging set-up: readable lines on stderr, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. Calling it twice is harmless (the second call is a
/// no-op), so tests and subcommands can all call it.
pub fn init_stderr(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Installs the service's subscriber from `[log]`: `RUST_LOG`, else `log.level`, with
/// libunftp kept at warnings unless the filter names it.
pub fn init(config: &crate::config::LogConfig) {
    let level = if config.level.contains("libunftp") {
        config.level.clone()
    } else {
        format!("{},libunftp=warn", config.level)
    };
    init_stderr(&level);
}

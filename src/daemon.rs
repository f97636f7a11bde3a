//! The service's lifecycle: take the listening socket (from systemd or by binding), load the
//! configuration, report readiness, serve, reload on SIGHUP, drain on SIGTERM/SIGINT.
//!
//! Order matters: the socket is taken before any thread starts (systemd's variables are read
//! and cleared), `READY=1` is sent only once the socket is held and the configuration is
//! valid, and `STOPPING=1` as soon as a stop is asked for.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::exit;
use crate::ftp::{Files, Gateway, LoginMemory};
use crate::listener::{self, Origin, Passed};
use crate::metrics::{Metrics, Running};
use crate::state::{InForce, Stats};
use crate::systemd;

/// How often `STATUS=` is refreshed and the cluster probed.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How long the cluster probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `qftpd serve`: runs the service with the configuration file `config_path` (by default
/// [`crate::config::DEFAULT_PATH`]) until stopped; the exit code follows sysexits.
///
/// An invalid configuration ends it with 78, except when systemd started it through its
/// socket: it then stays up, says once in the journal what is wrong and where, answers FTP
/// clients 421, and takes the fixed configuration at the next reload. (Exiting would make
/// the socket start it again at once, over and over, until systemd gives up on the socket.)
pub fn serve(config_path: Option<&Path>) -> ExitCode {
    let inherited = match listener::from_systemd() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("qftpd: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let loaded = load(config_path).map_err(|e| {
        format!(
            "invalid configuration ({}): {e}",
            crate::config::describe_source(config_path)
        )
    });
    let config = match (loaded, !inherited.ftp.is_empty()) {
        (Ok(c), _) => Ok(c),
        (Err(e), false) => {
            eprintln!("qftpd: {e}");
            return ExitCode::from(exit::CONFIG);
        }
        (Err(e), true) => Err(e),
    };
    let log = config
        .as_ref()
        .map(|c| c.config.log.clone())
        .unwrap_or_default();
    crate::logging::init(&log.level, log.target);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(exit::OSERR);
        }
    };
    runtime.block_on(run(config, inherited, config_path.map(Path::to_path_buf)))
}

/// A configuration checked for serving.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// FTPS and the access token, read once (the gateway takes them).
    pub files: Files,
}

/// The configuration of `path` ([`Config::load`]), checked beyond its shape: the log filter
/// parsed, the FTPS certificate and key read and built, the access token read. What `serve` starts or reloads
/// with, and what `check-config` checks; the error names the key.
pub fn load(path: Option<&Path>) -> Result<Loaded, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    crate::logging::check_filter(&config.log.level).map_err(|e| format!("log.level: {e}"))?;
    let files = Files::read(&config).map_err(|e| e.to_string())?;
    Ok(Loaded { config, files })
}

/// What a reload needs to know.
struct Service {
    config_path: Option<PathBuf>,
    current: Arc<InForce<Gateway>>,
    stats: Arc<Stats>,
    /// Failed logins and the cluster's name, for every gateway built on reload.
    memory: Arc<LoginMemory>,
    listen: std::net::SocketAddr,
    origin: Origin,
    /// The logging set up at start (it cannot change while running).
    log: crate::config::LogConfig,
    /// The metrics and their listener.
    metrics: Running,
}

/// Runs the service with `config`, or without one (an error to report) when systemd passed
/// the sockets.
async fn run(
    config: Result<Loaded, String>,
    inherited: Passed,
    config_path: Option<PathBuf>,
) -> ExitCode {
    let Passed {
        ftp: inherited,
        metrics: inherited_metrics,
    } = inherited;
    let defaults = crate::config::FtpConfig::default();
    let ftp = config.as_ref().map_or(&defaults, |c| &c.config.ftp);
    let (std_listeners, origin) = if inherited.is_empty() {
        match listener::bind(ftp.listen) {
            Ok(l) => (vec![l], Origin::Bound),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen");
                return ExitCode::from(exit::OSERR);
            }
        }
    } else {
        (inherited, Origin::Systemd)
    };
    let listeners = match std_listeners
        .into_iter()
        .map(TcpListener::from_std)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the listening socket");
            return ExitCode::from(exit::OSERR);
        }
    };
    let metrics_listen = config.as_ref().ok().and_then(|c| c.config.metrics.listen);
    let metrics_listener = match listener::metrics(inherited_metrics, metrics_listen) {
        Ok(l) => l,
        Err(e) if origin == Origin::Bound => {
            tracing::error!(error = %e, "cannot listen for metrics");
            return ExitCode::from(exit::OSERR);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for metrics; serving FTP without them");
            None
        }
    };
    let handlers = Signals::install();
    let addr = listeners
        .iter()
        .map(|l| l.local_addr().unwrap_or(ftp.listen).to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    let stats = Arc::new(Stats::default());
    let memory = Arc::new(LoginMemory::default());
    let current = match config.as_ref().map(|c| gateway(c, &stats, &memory)) {
        Ok(Ok(g)) => InForce::new(g),
        Ok(Err(e)) if origin == Origin::Bound => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(exit::CONFIG);
        }
        Ok(Err(e)) => {
            unconfigured(&format!("invalid configuration: {e}"));
            InForce::unconfigured()
        }
        Err(e) => {
            unconfigured(e);
            InForce::unconfigured()
        }
    };
    let socket = if origin == Origin::Systemd {
        "socket from systemd"
    } else {
        "bound"
    };
    match &config {
        Ok(c) => tracing::info!(
            cluster = %c.config.qumulo.url,
            ftps = ftps_mode(&c.config),
            "listening on {addr} ({socket})"
        ),
        Err(_) => tracing::info!("listening on {addr} ({socket}), not configured"),
    }
    let current = Arc::new(current);
    let metrics = Metrics::new(stats.clone(), memory.clone(), current.clone());
    let metrics_listener = metrics_listener.map(|(l, origin)| (l, origin == Origin::Systemd));
    let metrics = Running::start(metrics, metrics_listener, metrics_listen);
    let service = Arc::new(Service {
        config_path,
        current,
        stats: stats.clone(),
        memory,
        listen: ftp.listen,
        origin,
        log: config
            .as_ref()
            .map(|c| c.config.log.clone())
            .unwrap_or_default(),
        metrics,
    });
    if service.current.get().is_some() {
        systemd::ready(&format!("accepting on {addr}"));
    } else {
        systemd::ready("NOT CONFIGURED: fix the configuration, then systemctl reload qftpd");
    }
    let status = tokio::spawn(report_status(service.clone()));
    let watchdog =
        systemd::watchdog_interval().map(|every| tokio::spawn(watchdog(every, stats.clone())));
    let stop = tokio::spawn(signals(service.clone(), handlers));
    crate::accept::run(listeners, service.current.clone(), stats, async move {
        let _ = stop.await;
    })
    .await;
    status.abort();
    if let Some(w) = watchdog {
        w.abort();
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Says once what is wrong with the configuration the service was started with.
fn unconfigured(error: &str) {
    tracing::error!(
        "qftpd: {error}; FTP clients get 421 until it is fixed and the service reloaded (systemctl reload qftpd)"
    );
}

/// How FTPS is configured, for the start line.
fn ftps_mode(config: &Config) -> &'static str {
    match (&config.ftp.tls.certificate, config.ftp.tls.required) {
        (None, _) => "off",
        (Some(_), false) => "offered",
        (Some(_), true) => "required",
    }
}

/// The gateway of a configuration, with the warnings it deserves.
fn gateway(
    loaded: &Loaded,
    stats: &Arc<Stats>,
    memory: &Arc<LoginMemory>,
) -> Result<Gateway, crate::ftp::GatewayError> {
    let config = &loaded.config;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let max = config.ftp.max_connections;
    let limits = crate::descriptors::raise_to(crate::descriptors::needed(max));
    if let Some(from) = limits.raised_from {
        tracing::info!(
            from,
            to = limits.soft,
            "raised the open-file limit for ftp.max-connections = {max}"
        );
    }
    if let Some(short) = crate::descriptors::shortfall(limits, max) {
        tracing::warn!("{short}");
    }
    if let Some(exposed) = crate::ephemeral::warning(&config.ftp.passive_ports) {
        tracing::warn!("{exposed}");
    }
    Gateway::with_files(config, loaded.files.clone(), stats.clone(), memory.clone())
}

/// The signals the service handles, installed before it says it is ready: a SIGHUP that came
/// earlier would end the process (its default action).
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; `None` (said in the log) when the system refuses them.
    fn install() -> Option<Self> {
        match (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(hup), Ok(term), Ok(int)) => Some(Self { hup, term, int }),
            _ => {
                tracing::error!("cannot install signal handlers; stop the service with SIGKILL");
                None
            }
        }
    }
}

/// Waits for signals: SIGHUP reloads, SIGTERM or SIGINT ends the wait (and so the service).
async fn signals(service: Arc<Service>, handlers: Option<Signals>) {
    let Some(Signals {
        mut hup,
        mut term,
        mut int,
    }) = handlers
    else {
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&service),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let sessions = service.stats.sessions.load(Ordering::Relaxed);
    systemd::stopping(&format!("stopping: draining {sessions} session(s)"));
}

/// Re-reads the configuration; new sessions get it, open ones keep theirs. An invalid
/// configuration is refused and the one in force stays.
fn reload(service: &Service) {
    systemd::reloading();
    let result = load(service.config_path.as_deref()).and_then(|l| {
        gateway(&l, &service.stats, &service.memory)
            .map(|g| (l.config, g))
            .map_err(|e| e.to_string())
    });
    match result {
        Ok((config, gateway)) => {
            if service.origin == Origin::Bound && config.ftp.listen != service.listen {
                tracing::warn!(listen = %config.ftp.listen, "ftp.listen changed: it takes effect at the next restart");
            }
            service.metrics.reloaded(&config, &gateway);
            if config.log != service.log {
                tracing::warn!("[log] changed: it takes effect at the next restart");
            }
            service.current.replace(gateway);
            tracing::info!(
                "configuration reloaded: new sessions use it, open sessions keep theirs"
            );
        }
        Err(e) => tracing::error!(error = %e, "reload refused: the configuration in force stays"),
    }
    if service.current.get().is_some() {
        systemd::ready("accepting (configuration reloaded)");
    } else {
        systemd::ready("NOT CONFIGURED: fix the configuration, then systemctl reload qftpd");
    }
}

/// Refreshes `STATUS=` with the sessions, transfers and whether the cluster answers. A
/// change of the cluster's state is logged once, not at every probe.
async fn report_status(service: Arc<Service>) {
    let mut every = tokio::time::interval(STATUS_EVERY);
    let mut answered: Option<bool> = None;
    loop {
        every.tick().await;
        let Some(gateway) = service.current.get() else {
            systemd::status("NOT CONFIGURED: fix the configuration, then systemctl reload qftpd");
            continue;
        };
        let probe = match tokio::time::timeout(PROBE_TIMEOUT, gateway.client().version()).await {
            Ok(Ok(v)) => Ok(v.revision_id),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        };
        let cluster = match &probe {
            Ok(revision) => format!("cluster answers ({revision})"),
            Err(_) => "cluster NOT answering".to_string(),
        };
        match (&probe, answered) {
            (Err(e), Some(true) | None) => {
                tracing::warn!(error = %e, "the cluster does not answer")
            }
            (Ok(_), Some(false)) => tracing::info!("the cluster answers again"),
            _ => {}
        }
        answered = Some(probe.is_ok());
        let (sessions, transfers) = (
            service.stats.sessions.load(Ordering::Relaxed),
            service.stats.transfers.load(Ordering::Relaxed),
        );
        systemd::status(&format!(
            "{sessions} session(s), {transfers} transfer(s); {cluster}"
        ));
    }
}

/// Pings the watchdog while the accept loop keeps running: a stalled loop or runtime stops
/// the pings and systemd restarts the service.
async fn watchdog(every: Duration, stats: Arc<Stats>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let quiet = stats.since_heartbeat();
        if quiet <= crate::state::HEARTBEAT * 4 {
            systemd::watchdog();
        } else {
            tracing::error!(
                quiet_ms = quiet.as_millis() as u64,
                "the accept loop has stalled; not pinging the watchdog"
            );
        }
    }
}

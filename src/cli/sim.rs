//! The `demo` and `sim` subcommands (feature `sim`): their options, and running them on a
//! runtime of their own with logging on stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::exit;
use crate::sim::{self, SimConfig, Transport, UserSpec, faults::FaultSettings};

/// Options of `qftpd demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address the FTP server listens on.
    #[arg(long, default_value = "127.0.0.1:2121")]
    pub ftp_listen: SocketAddr,
    /// Directory of the simulated cluster's files (sample files are added when it is new).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("qftpd-demo"))]
    pub data_dir: PathBuf,
}

/// The most nodes `qftpd sim --nodes` runs.
const MAX_SIM_NODES: i64 = 64;

/// Options of `qftpd sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address node 0 listens on; port 0 picks a free port. Other nodes listen on free ports
    /// of the same host.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Number of nodes: each serves the same cluster (files, users, tokens, faults) on its own
    /// port, and can be taken down and up through `/sim/nodes/INDEX/down` and `.../up`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=MAX_SIM_NODES)
    )]
    pub nodes: u16,
    /// Directory holding the simulated cluster's files (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// A local user, NAME:PASSWORD; users get ids from 500 in the order given.
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user, required = true)]
    pub users: Vec<(String, String)>,
    /// Make NAME (one of --user) an administrator.
    #[arg(long = "admin", value_name = "NAME")]
    pub admins: Vec<String>,
    /// Give user NAME the home directory PATH (created when missing).
    #[arg(long = "home", value_name = "NAME:PATH", value_parser = parse_user)]
    pub homes: Vec<(String, String)>,
    /// Certificate chain (PEM) to serve instead of a generated self-signed one.
    #[arg(long, requires = "tls_key", conflicts_with = "plain_http")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Write the served certificate in PEM to FILE, for clients to trust exactly it.
    #[arg(long, value_name = "FILE", conflicts_with = "plain_http")]
    pub cert_out: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (for measurements without TLS).
    #[arg(long)]
    pub plain_http: bool,
    /// Lifetime of bearer tokens, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = sim::DEFAULT_TOKEN_LIFETIME.as_secs())]
    pub token_lifetime: u64,
    /// Cluster name reported by /v1/cluster/settings.
    #[arg(long, default_value = "qftpd-sim")]
    pub cluster_name: String,
    /// Fault: milliseconds added to every API request.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Fault: share (0 to 1) of API requests answered 503.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fault: share (0 to 1) of API requests whose connection is dropped without an answer.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Fault: start in a full outage (every API request dropped) until switched off.
    #[arg(long)]
    pub outage: bool,
    /// What a path reference does with a symlink before its last component (`/a/link/f`):
    /// `follow` it within the cluster's namespace, or `refuse` the reference with
    /// fs_not_a_directory_error, as a cluster that leaves symlink targets to its NFS and SMB
    /// clients does. A symlink as the last component is never followed.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = sim::store::PathSymlinks::Follow)]
    pub path_symlinks: sim::store::PathSymlinks,
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((name, rest)) if !name.is_empty() && !rest.is_empty() => {
            Ok((name.to_string(), rest.to_string()))
        }
        _ => Err(format!("{s:?} is not NAME:VALUE with both parts non-empty")),
    }
}

impl SimArgs {
    /// The simulator configuration these options describe.
    pub fn to_config(&self) -> Result<SimConfig, String> {
        for admin in &self.admins {
            if !self.users.iter().any(|(n, _)| n == admin) {
                return Err(format!("--admin {admin}: no --user of that name"));
            }
        }
        for (name, _) in &self.homes {
            if !self.users.iter().any(|(n, _)| n == name) {
                return Err(format!("--home {name}: no --user of that name"));
            }
        }
        let transport = match (&self.tls_cert, &self.tls_key, self.plain_http) {
            (_, _, true) => Transport::Plain,
            (Some(cert), Some(key), false) => Transport::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => Transport::GeneratedTls,
        };
        Ok(SimConfig {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            users: self
                .users
                .iter()
                .map(|(name, password)| UserSpec {
                    name: name.clone(),
                    password: password.clone(),
                    admin: self.admins.contains(name),
                    home: self
                        .homes
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, h)| h.clone()),
                })
                .collect(),
            transport,
            token_lifetime: Duration::from_secs(self.token_lifetime),
            faults: FaultSettings {
                latency_ms: self.latency_ms,
                error_rate: self.error_rate,
                drop_rate: self.drop_rate,
                outage: self.outage,
            },
            cluster_name: self.cluster_name.clone(),
            path_symlinks: self.path_symlinks,
        })
    }
}

/// Runs a subcommand's future on a new runtime, with logging on stderr.
pub(super) fn with_runtime<F: std::future::Future<Output = ExitCode>>(
    f: impl FnOnce() -> F,
) -> ExitCode {
    crate::logging::init_stderr("info,libunftp=error");
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(f()),
        Err(e) => {
            eprintln!("qftpd: cannot start the async runtime: {e}");
            ExitCode::from(exit::OSERR)
        }
    }
}

pub(super) async fn run_demo(args: DemoArgs) -> ExitCode {
    let opts = crate::demo::DemoOptions {
        ftp_listen: args.ftp_listen,
        data_dir: args.data_dir,
    };
    match crate::demo::run(opts, wait_for_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qftpd demo: {e}");
            ExitCode::from(exit::OSERR)
        }
    }
}

pub(super) async fn run_sim(args: SimArgs) -> ExitCode {
    let cfg = match args.to_config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("qftpd sim: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let handle = match sim::start_nodes(cfg, usize::from(args.nodes)).await {
        Ok(h) => h,
        Err(e @ sim::SimError::Bind { .. }) => {
            eprintln!("qftpd sim: {e}");
            return ExitCode::from(exit::OSERR);
        }
        Err(e) => {
            eprintln!("qftpd sim: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    if let (Some(path), Some(pem)) = (&args.cert_out, handle.cert_pem())
        && let Err(e) = std::fs::write(path, pem)
    {
        eprintln!("qftpd sim: --cert-out {}: {e}", path.display());
        return ExitCode::from(exit::OSERR);
    }
    for url in handle.urls() {
        println!("qftpd sim listening on {url}");
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    wait_for_signal().await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

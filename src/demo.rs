//! `qftpd demo`: a simulated cluster and the gateway together on loopback, with a few sample
//! files, so a newcomer can connect with any FTP client at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, FtpConfig, NodeUrls, QumuloConfig};
use crate::ftp::Gateway;
use crate::sim::{self, SimConfig, UserSpec};

/// The demo's users: `(name, password, administrator)`.
pub const USERS: [(&str, &str, bool); 2] = [("demo", "demo", true), ("alice", "alice", false)];

/// Options of `qftpd demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the FTP server listens.
    pub ftp_listen: SocketAddr,
    /// The simulated cluster's files.
    pub data_dir: PathBuf,
}

/// Errors starting the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulator did not start.
    #[error("simulator: {0}")]
    Sim(#[from] sim::SimError),
    /// The gateway did not start.
    #[error("gateway: {0}")]
    Gateway(String),
    /// Local I/O (data directory, certificate file, FTP port).
    #[error("{0}")]
    Io(String),
}

/// Starts both, prints the FTP URL, and serves until `shutdown` completes.
pub async fn run(
    opts: DemoOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DemoError> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        DemoError::Io(format!("{what} {}: {e}", p.display()))
    };
    let fresh = std::fs::read_dir(&opts.data_dir).map_or(true, |mut d| d.next().is_none());
    let users = USERS
        .iter()
        .map(|(n, p, admin)| UserSpec {
            name: n.to_string(),
            password: p.to_string(),
            admin: *admin,
            home: Some(format!("/home/{n}")),
        })
        .collect();
    let sim = sim::start(SimConfig {
        cluster_name: "demo-cluster".to_string(),
        ..SimConfig::loopback(opts.data_dir.clone(), users)
    })
    .await?;
    if fresh {
        seed(&opts.data_dir).map_err(|e| io("seeding", &opts.data_dir, e))?;
    }
    let cert = std::env::temp_dir().join(format!("qftpd-demo-{}.pem", std::process::id()));
    std::fs::write(&cert, sim.cert_pem().unwrap_or_default())
        .map_err(|e| io("writing", &cert, e))?;
    let config = Config {
        ftp: FtpConfig {
            listen: opts.ftp_listen,
            greeting: "qftpd demo ready".to_string(),
            // Ctrl-C should not wait long for transfers.
            shutdown_grace: 5,
            ..FtpConfig::default()
        },
        log: crate::config::LogConfig::default(),
        metrics: Default::default(),
        qumulo: QumuloConfig {
            ca_file: Some(cert.clone()),
            ..QumuloConfig::new(NodeUrls::one(
                sim.url()
                    .parse()
                    .map_err(|e| DemoError::Gateway(format!("simulator URL: {e}")))?,
            ))
        },
    };
    let stats = Arc::new(crate::state::Stats::default());
    let gateway = Gateway::new(&config, stats.clone(), Arc::default())
        .map_err(|e| DemoError::Gateway(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(opts.ftp_listen)
        .await
        .map_err(|e| DemoError::Io(format!("cannot listen on {}: {e}", opts.ftp_listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DemoError::Io(e.to_string()))?;
    let (user, password, _) = USERS[0];
    println!("qftpd demo: ftp://{user}:{password}@{addr}/ (also alice:alice)");
    println!(
        "  simulated cluster {} with its files in {}",
        sim.url(),
        opts.data_dir.display()
    );
    println!(
        "  try: curl ftp://{user}:{password}@{addr}/  or  curl -T file ftp://{user}:{password}@{addr}/home/{user}/"
    );
    let live = Arc::new(crate::state::InForce::new(gateway));
    crate::accept::run(vec![listener], live, stats, shutdown).await;
    sim.shutdown().await;
    let _ = std::fs::remove_file(&cert);
    Ok(())
}

/// A few sample files for a new data directory.
fn seed(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("docs"))?;
    std::fs::create_dir_all(dir.join("shared"))?;
    std::fs::write(
        dir.join("README.txt"),
        "This is a simulated Qumulo cluster served by qftpd demo.\n\
         Log in as demo/demo (administrator) or alice/alice; each has a home under /home.\n",
    )?;
    std::fs::write(dir.join("docs/welcome.txt"), "Hello from the cluster.\n")?;
    let numbers: String = (1..=10_000).map(|i| format!("{i}\n")).collect();
    std::fs::write(dir.join("docs/numbers.txt"), numbers)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("shared"), std::fs::Permissions::from_mode(0o777))
}

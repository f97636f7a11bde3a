//! The gateway under test: a `qftpd serve` child process (a [`Process`]) in front of a
//! [`Sim`] or another cluster, configured by a [`GatewayBuilder`].
//!
//! The gateway listens on port 0 and announces its address on stderr (`listening on ADDR`); the
//! harness waits for that line, so there are no sleeps and no fixed control ports. Passive data
//! ports come from [`PassivePorts`], so gateways of tests running at the same time never share
//! one. Everything the gateway logs is kept, so tests can assert on the log (e.g. that no
//! password ever appears in it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::Sim;
use super::ports::PassivePorts;
use super::process::{Process, Stream, listening_addr, qftpd_command};
use super::{toml_str, url_encode};

/// A running `qftpd serve` child process. Killed when dropped.
pub struct Gateway {
    /// The control connection's address.
    pub addr: SocketAddr,
    /// The passive data port range handed to the gateway.
    pub passive_ports: (u16, u16),
    /// The configuration file the gateway was started with.
    pub config_path: PathBuf,
    /// Holds the configuration file.
    _dir: TempDir,
    /// Holds the passive port range.
    _ports: PassivePorts,
    process: Process,
}

/// The configuration of a gateway to start: its `[qumulo]` table, extra `[ftp]` lines, the
/// listen address and the passive ports.
#[must_use]
pub struct GatewayBuilder {
    listen: String,
    qumulo: String,
    ftp: String,
    ports: Option<PassivePorts>,
    tables: String,
}

impl GatewayBuilder {
    /// Adds `lines` to the `[ftp]` table, e.g. `timezone = "America/New_York"`.
    pub fn ftp(mut self, lines: &str) -> Self {
        self.ftp.push_str(lines);
        self.ftp.push('\n');
        self
    }

    /// Listens on `listen` (e.g. `[::]:0` for IPv6 and IPv4 clients) instead of `127.0.0.1:0`.
    pub fn listen(mut self, listen: &str) -> Self {
        self.listen = listen.to_owned();
        self
    }

    /// Adds `text` after the `[qumulo]` table: whole tables, e.g. `[metrics]\nlisten = "…"`.
    pub fn tables(mut self, text: &str) -> Self {
        self.tables.push_str(text);
        self.tables.push('\n');
        self
    }

    /// Uses `ports` for passive data connections instead of a block of [`PassivePorts`].
    pub fn ports(mut self, ports: PassivePorts) -> Self {
        self.ports = Some(ports);
        self
    }

    /// Writes the configuration, starts `qftpd serve` and returns once it accepts connections.
    pub fn start(self) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("qftpd-gw-")
            .tempdir()
            .expect("create gateway dir");
        let ports = self.ports.unwrap_or_else(PassivePorts::block);
        let (low, high) = ports.range();
        let config = format!(
            "[ftp]\nlisten = \"{}\"\npassive-ports = \"{low}-{high}\"\n{}\n[qumulo]\n{}\n{}",
            self.listen, self.ftp, self.qumulo, self.tables
        );
        let config_path = dir.path().join("qftpd.toml");
        std::fs::write(&config_path, &config).expect("write gateway config");

        let mut cmd = qftpd_command();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        let mut process = Process::spawn(&mut cmd, "qftpd serve", Stream::Stderr, listening_addr);
        let addr = process.wait_ready(1, &format!("config:\n{config}"))[0]
            .parse()
            .expect("a socket address");
        Gateway {
            addr,
            passive_ports: (low, high),
            config_path,
            _dir: dir,
            _ports: ports,
            process,
        }
    }
}

impl Gateway {
    /// Starts `qftpd serve` in front of `sim`. `extra_ftp` holds extra lines of the `[ftp]`
    /// table, e.g. `timezone = "America/New_York"`.
    pub fn start(sim: &Sim, extra_ftp: &str) -> Gateway {
        Gateway::builder(sim).ftp(extra_ftp).start()
    }

    /// A gateway in front of `sim`, trusting its certificate.
    pub fn builder(sim: &Sim) -> GatewayBuilder {
        Gateway::for_cluster(&sim.url, Some(&sim.cert_pem_path))
    }

    /// A gateway for the cluster at `url`, trusting `ca_file` when given.
    pub fn for_cluster(url: &str, ca_file: Option<&Path>) -> GatewayBuilder {
        Gateway::with_qumulo(&qumulo_table(url, ca_file))
    }

    /// A gateway with `qumulo` as the lines of its `[qumulo]` table.
    pub fn with_qumulo(qumulo: &str) -> GatewayBuilder {
        GatewayBuilder {
            listen: "127.0.0.1:0".to_owned(),
            qumulo: qumulo.to_owned(),
            ftp: String::new(),
            ports: None,
            tables: String::new(),
        }
    }

    /// The control port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ftp://USER:PASSWORD@127.0.0.1:PORT` (user and password are percent-encoded).
    pub fn ftp_url(&self, user: &str, password: &str) -> String {
        format!(
            "ftp://{}:{}@{}",
            url_encode(user),
            url_encode(password),
            self.addr
        )
    }

    /// What the gateway logged so far.
    pub fn stderr_log(&self) -> String {
        self.process.stderr_log()
    }

    /// The gateway's log once `wanted` holds for it (it reaches the harness through a pipe, a
    /// little after the replies); panics after 10 s with the log and `what`.
    pub fn log_where(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = self.stderr_log();
            if wanted(&log) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what} not in the log:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The warnings and errors logged so far, but the one every harness gateway logs at start
    /// (its 50-port passive range is smaller than the default `max-connections`).
    pub fn loud_lines(&self) -> Vec<String> {
        self.stderr_log()
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .filter(|l| !l.contains("ftp.passive-ports has"))
            .map(str::to_string)
            .collect()
    }

    /// Stops the gateway and returns everything it logged (complete: the pipe is drained to
    /// its end).
    pub fn stop(&mut self) -> String {
        self.process.stop()
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the gateway with kill(1).
    pub fn signal(&self, name: &str) {
        self.process.signal(name);
    }

    /// Waits for the gateway to exit by itself (at most `deadline`) and returns its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        self.process.wait_exit(deadline)
    }

    /// Peak resident set size of the gateway (`VmHWM` of `/proc/<pid>/status`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.process.peak_rss_kib()
    }
}

/// The lines of a `[qumulo]` table for the cluster at `url`, trusting `ca_file` when given.
pub fn qumulo_table(url: &str, ca_file: Option<&Path>) -> String {
    let mut qumulo = format!("url = {}\n", toml_str(url));
    if let Some(ca) = ca_file {
        qumulo.push_str(&format!(
            "ca-file = {}\n",
            toml_str(ca.to_str().expect("UTF-8 certificate path"))
        ));
    }
    qumulo
}

/// A self-signed certificate and key for 127.0.0.1 and localhost, written as `ftps.pem` and
/// `ftps.key` in `dir`; returns the `[ftp]` lines that enable explicit FTPS with them (TLS
/// required when `required`) and the certificate's path (a CA file for clients that check).
pub fn ftps_config(dir: &Path, required: bool) -> (String, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("generate certificate");
    let cert = dir.join("ftps.pem");
    let key = dir.join("ftps.key");
    std::fs::write(&cert, certified.cert.pem()).expect("write certificate");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let lines = format!(
        "tls.certificate = {}\ntls.key = {}\ntls.required = {required}\n",
        toml_str(cert.to_str().expect("UTF-8 path")),
        toml_str(key.to_str().expect("UTF-8 path"))
    );
    (lines, cert)
}

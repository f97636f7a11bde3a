//! Several gateways behind HAProxy, as the README's "Several gateways" describes them, built
//! in network namespaces of the test's own (tests/common/netns.rs): one bridge, and on it
//!
//! ```text
//! client  10.77.0.11 (A), 10.77.0.12 (B): curl, ftplib, raw connections
//! lb      10.77.0.2, VIP 10.77.0.100: haproxy -db; VIP:21 → gw1/gw2 port 21 with
//!         send-proxy-v2 and an HTTP check of /ready on 9121; VIP:50000-50099 → gw1,
//!         VIP:50100-50199 → gw2 (the passive slices, same port)
//! gw1     10.77.0.21: qftpd serve, passive-host = VIP, passive 50000-50099, metrics on :9121
//! gw2     10.77.0.22: the same with passive 50100-50199
//! cluster 10.77.0.30: qftpd sim --nodes 2, both nodes in each gateway's [qumulo] url
//! ```
//!
//! Each test builds its own topology, so they run in parallel; fixed ports are safe inside
//! namespaces nobody else uses. Which gateway a session landed on is read from HAProxy's
//! counters (`show stat` on its stats socket) and from the gateways' logs, never guessed.
//! Every process is killed by its pid and every namespace deleted when a test ends, passing
//! or not; each test prints what its phases took.
//!
//! Needs root (namespaces, veths, port 21): without it each test says `skipped: …` and passes.
//! Needs `ip`, `haproxy`, `curl` and `python3`: without one a test fails, naming its package.

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::clients::run_ftplib_in;
use common::netns::{Net, command_in, is_root};
use common::process::{Process, Stream, listening_addr, qftpd_path, without_qftpd_env};
use common::{Sim, op, pattern, require_tool};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The shared address clients connect to.
const VIP: &str = "10.77.0.100";
/// The balancer's own address: where its connections to the gateways come from.
const LB: &str = "10.77.0.2";
/// The two client addresses.
const CLIENT_A: &str = "10.77.0.11";
const CLIENT_B: &str = "10.77.0.12";
/// The simulated cluster's address (both nodes, on two ports).
const CLUSTER: &str = "10.77.0.30";
/// Each gateway: its name (HAProxy's server name too), address and passive slice.
const GATEWAYS: [(&str, &str, (u16, u16)); 2] = [
    ("gw1", "10.77.0.21", (50000, 50099)),
    ("gw2", "10.77.0.22", (50100, 50199)),
];
/// The gateways' metrics port (`[metrics] listen`), which HAProxy checks.
const METRICS_PORT: u16 = 9121;
const USER: &str = "alice";
const PASSWORD: &str = "alicepw";
/// How long a condition polled for may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// What each phase of a test took, printed when the next one starts and at the end.
struct Phases {
    test: &'static str,
    name: String,
    started: Instant,
}

impl Phases {
    fn new(test: &'static str) -> Phases {
        Phases {
            test,
            name: "topology (namespaces, cluster, gateways, HAProxy)".into(),
            started: Instant::now(),
        }
    }

    fn next(&mut self, name: &str) {
        self.report();
        self.name = name.to_owned();
        self.started = Instant::now();
    }

    fn report(&self) {
        println!(
            "== {}: {}: {} ms",
            self.test,
            self.name,
            self.started.elapsed().as_millis()
        );
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        self.report();
    }
}

/// One server of HAProxy's `gateways` backend, from `show stat`.
#[derive(Debug, Clone, PartialEq)]
struct Server {
    /// `UP`, `DOWN`, `UP 1/2`, …
    status: String,
    /// Sessions open now.
    scur: u64,
    /// Sessions so far.
    stot: u64,
}

/// The whole topology. Fields drop in order: processes first (killed by pid), namespaces last.
struct Topology {
    haproxy: Option<Process>,
    gateways: Vec<Option<Process>>,
    sim: Sim,
    dir: TempDir,
    /// The FTPS certificate (names the VIP), a CA file for the clients.
    cert: PathBuf,
    client: String,
    lb: String,
    gw_ns: Vec<String>,
    /// Deletes the namespaces when dropped.
    _net: Net,
}

impl Topology {
    /// Builds everything and returns once HAProxy has both gateways up; `None` (said on
    /// stdout) when this machine cannot run the test (not root).
    fn start(tag: &str) -> Option<Topology> {
        if !is_root() {
            println!("skipped: scaleout test {tag}: not root (network namespaces need root)");
            return None;
        }
        for (tool, package) in [
            ("ip", "iproute2"),
            ("haproxy", "haproxy"),
            ("curl", "curl"),
            ("python3", "python3"),
        ] {
            require_tool(tool, package);
        }
        let mut net = Net::new(tag);
        let client = net.add("client", &[&cidr(CLIENT_A), &cidr(CLIENT_B)]);
        let lb = net.add("lb", &[&cidr(LB), &cidr(VIP)]);
        let gw_ns: Vec<String> = GATEWAYS
            .iter()
            .map(|(name, addr, _)| net.add(name, &[&cidr(addr)]))
            .collect();
        let cluster = net.add("cluster", &[&cidr(CLUSTER)]);
        let sim = Sim::builder()
            .nodes(2)
            .listen(&format!("{CLUSTER}:0"))
            .namespace(&cluster)
            .start();
        let dir = tempfile::Builder::new()
            .prefix("qftpd-scaleout-")
            .tempdir()
            .expect("create scratch dir");
        let cert = write_certificate(dir.path());
        let mut topology = Topology {
            haproxy: None,
            gateways: vec![None, None],
            sim,
            dir,
            cert,
            client,
            lb,
            gw_ns,
            _net: net,
        };
        for i in 0..GATEWAYS.len() {
            topology.start_gateway(i);
        }
        topology.start_haproxy();
        Some(topology)
    }

    /// Writes gateway `i`'s configuration and starts it in its namespace.
    fn start_gateway(&mut self, i: usize) {
        let (name, addr, (low, high)) = GATEWAYS[i];
        let dir = self.dir.path();
        let urls: Vec<String> = self.sim.urls.iter().map(|u| format!("\"{u}\"")).collect();
        let config = format!(
            "[ftp]\n\
             listen = \"{addr}:21\"\n\
             passive-ports = \"{low}-{high}\"\n\
             passive-host = \"{VIP}\"\n\
             active-mode = false\n\
             proxy-protocol-from = [\"{LB}\"]\n\
             max-connections = 100\n\
             shutdown-grace = 60\n\
             stop-delay = 2\n\
             tls.certificate = \"{cert}\"\n\
             tls.key = \"{key}\"\n\
             [ftp.failed-logins]\n\
             delay-ms = 50\n\
             [metrics]\n\
             listen = \"{addr}:{METRICS_PORT}\"\n\
             [qumulo]\n\
             url = [{urls}]\n\
             ca-file = \"{ca}\"\n\
             [log]\n\
             target = \"stderr\"\n",
            cert = dir.join("ftps.pem").display(),
            key = dir.join("ftps.key").display(),
            urls = urls.join(", "),
            ca = self.sim.cert_pem_path.display(),
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, &config).expect("write gateway config");
        let mut cmd = command_in(&self.gw_ns[i], qftpd_path());
        without_qftpd_env(&mut cmd);
        for var in [
            "LISTEN_FDS",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "NOTIFY_SOCKET",
        ] {
            cmd.env_remove(var);
        }
        cmd.args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("JOURNAL_STREAM");
        let what = format!("qftpd serve ({name})");
        let mut process = Process::spawn(&mut cmd, &what, Stream::Stderr, listening_addr);
        process.wait_ready(1, &format!("config:\n{config}"));
        self.gateways[i] = Some(process);
    }

    /// Starts HAProxy in the balancer's namespace and waits until it has both gateways up.
    fn start_haproxy(&mut self) {
        let path = self.dir.path().join("haproxy.cfg");
        let config = haproxy_config(&self.stats_socket());
        std::fs::write(&path, &config).expect("write haproxy.cfg");
        let mut cmd = command_in(&self.lb, "haproxy");
        cmd.arg("-f").arg(&path).arg("-db");
        self.haproxy = Some(Process::spawn_plain(&mut cmd, "haproxy"));
        self.wait_for("HAProxy to have both gateways up", |t| {
            t.stats().is_some_and(|s| t.all_up(&s))
        });
    }

    fn stats_socket(&self) -> PathBuf {
        self.dir.path().join("haproxy.sock")
    }

    /// The servers of the `gateways` backend by name, or `None` while HAProxy does not answer
    /// on its stats socket.
    fn stats(&self) -> Option<BTreeMap<String, Server>> {
        let mut socket = UnixStream::connect(self.stats_socket()).ok()?;
        socket.write_all(b"show stat\n").ok()?;
        let mut csv = String::new();
        socket.read_to_string(&mut csv).ok()?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (px, sv, scur, stot, status) = (
            col("pxname")?,
            col("svname")?,
            col("scur")?,
            col("stot")?,
            col("status")?,
        );
        let mut servers = BTreeMap::new();
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() > status && f[px] == "gateways" && f[sv].starts_with("gw") {
                servers.insert(
                    f[sv].to_owned(),
                    Server {
                        status: f[status].to_owned(),
                        scur: f[scur].parse().unwrap_or(0),
                        stot: f[stot].parse().unwrap_or(0),
                    },
                );
            }
        }
        Some(servers)
    }

    /// HAProxy's view, failing when it does not answer.
    fn servers(&self) -> BTreeMap<String, Server> {
        self.stats().expect("HAProxy answers on its stats socket")
    }

    fn all_up(&self, servers: &BTreeMap<String, Server>) -> bool {
        GATEWAYS
            .iter()
            .all(|(name, _, _)| servers.get(*name).is_some_and(|s| s.status == "UP"))
    }

    /// Polls `done` until it holds; fails after [`DEADLINE`] with everything the processes
    /// said.
    fn wait_for(&self, what: &str, mut done: impl FnMut(&Topology) -> bool) {
        let until = Instant::now() + DEADLINE;
        while !done(self) {
            assert!(
                Instant::now() < until,
                "{what}: not within {DEADLINE:?}\n{}",
                self.context()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// HAProxy's view and output, and the gateways' logs, for failure messages.
    fn context(&self) -> String {
        let mut text = format!("HAProxy servers: {:?}\n", self.stats());
        if let Some(haproxy) = &self.haproxy {
            text.push_str(&format!(
                "HAProxy output:\n{}{}\n",
                haproxy.stdout_log(),
                haproxy.stderr_log()
            ));
        }
        for (i, (name, _, _)) in GATEWAYS.iter().enumerate() {
            text.push_str(&format!("{name} log:\n{}\n", self.log(i)));
        }
        text
    }

    fn gateway(&mut self, i: usize) -> &mut Process {
        self.gateways[i].as_mut().expect("gateway started")
    }

    /// What gateway `i` logged so far.
    fn log(&self, i: usize) -> String {
        self.gateways[i]
            .as_ref()
            .map(Process::stderr_log)
            .unwrap_or_default()
    }

    /// `curl -sS -v --max-time SECS --interface SOURCE ARGS` in the client namespace; the
    /// output whatever the exit status.
    fn curl(&self, source: &str, args: &[&str], max_secs: u64) -> Output {
        let mut cmd = command_in(&self.client, "curl");
        cmd.args(["-sS", "-v", "--max-time", &max_secs.to_string()])
            .args(["--interface", source])
            .args(args);
        common::run_with_input(
            &mut cmd,
            None,
            Duration::from_secs(max_secs + 30),
            "curl in the client namespace",
        )
    }

    /// [`Topology::curl`] as `alice`, asserting success.
    fn curl_ok(&self, source: &str, args: &[&str]) -> Output {
        let login = format!("{USER}:{PASSWORD}");
        let out = self.curl(source, &[&["--user", &login][..], args].concat(), 120);
        assert!(
            out.status.success(),
            "curl {args:?} from {source} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.context()
        );
        out
    }

    /// ftplib on the VIP from `source`, with `options` such as `{"tls": …}`.
    fn ftplib(&self, source: &str, options: Value, ops: &[Value]) -> Vec<common::OpResult> {
        let mut options = options;
        options["source"] = json!(source);
        let vip: SocketAddr = format!("{VIP}:21").parse().unwrap();
        run_ftplib_in(Some(&self.client), vip, options, ops)
    }

    /// `raw_sessions.py header`: sends `line` first on a connection from `source` to `addr`
    /// (port 21), then logs in; the script's JSON.
    fn raw_header(&self, source: &str, addr: &str, line: &str) -> Value {
        let mut cmd = command_in(&self.client, require_tool("python3", "python3"));
        cmd.arg(raw_sessions())
            .args(["header", addr, "21", source, line, USER, PASSWORD]);
        let out = common::run_with_input(&mut cmd, None, DEADLINE, "raw_sessions.py header");
        assert!(
            out.status.success(),
            "raw_sessions.py header failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON from raw_sessions.py")
    }

    /// `raw_sessions.py hold`: `n` sessions from `source` through the VIP, logged in and kept
    /// open until the returned process is dropped; fails unless every one logged in.
    fn hold_sessions(&self, source: &str, n: usize) -> Process {
        let mut cmd = command_in(&self.client, require_tool("python3", "python3"));
        cmd.arg(raw_sessions())
            .args(["hold", VIP, "21", source, &n.to_string(), USER, PASSWORD]);
        let mut process = Process::spawn(&mut cmd, "raw_sessions.py hold", Stream::Stdout, |l| {
            l.starts_with("ready").then(|| l.to_owned())
        });
        process.wait_ready(1, &self.context());
        let said = process.stdout_log();
        let logged_in = said.lines().filter(|l| l.contains(" | 230")).count();
        assert_eq!(logged_in, n, "every held session logs in:\n{said}");
        process
    }

    /// The HTTP status of `GET /ready` on gateway `i`, asked from the balancer's namespace
    /// (`000` when nothing answers).
    fn ready_status(&self, i: usize) -> String {
        let mut cmd = command_in(&self.lb, "curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "2",
        ])
        .arg(format!("http://{}:{METRICS_PORT}/ready", GATEWAYS[i].1));
        let out = common::run_with_input(&mut cmd, None, DEADLINE, "curl /ready");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a download of `path` from client A at `rate` bytes/s into `target`, and returns
    /// it with the index of the gateway it landed on (HAProxy's one open session), once bytes
    /// flow.
    fn throttled_download(&self, path: &str, target: &Path, rate: u32) -> (Process, usize) {
        let mut cmd = command_in(&self.client, require_tool("python3", "python3"));
        cmd.arg(raw_sessions())
            .args(["download", VIP, CLIENT_A, USER, PASSWORD, path])
            .arg(target)
            .arg(rate.to_string());
        let download = Process::spawn_plain(&mut cmd, "throttled ftplib download");
        self.wait_for("the download to start", |_| {
            std::fs::metadata(target).is_ok_and(|m| m.len() > 0)
        });
        let servers = self.servers();
        let busy: Vec<usize> = (0..GATEWAYS.len())
            .filter(|i| servers[GATEWAYS[*i].0].scur == 1)
            .collect();
        assert_eq!(busy.len(), 1, "one gateway has the download: {servers:?}");
        (download, busy[0])
    }
}

/// `ADDR/24`.
fn cidr(addr: &str) -> String {
    format!("{addr}/24")
}

fn raw_sessions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/raw_sessions.py")
}

/// A self-signed certificate naming the VIP, as `ftps.pem` and `ftps.key` in `dir`; returns
/// the certificate's path.
fn write_certificate(dir: &Path) -> PathBuf {
    let certified =
        rcgen::generate_simple_self_signed(vec![VIP.to_string()]).expect("generate certificate");
    let cert = dir.join("ftps.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write certificate");
    std::fs::write(dir.join("ftps.key"), certified.signing_key.serialize_pem()).expect("write key");
    cert
}

/// The README's HAProxy configuration with the test's addresses, a stats socket, and quick
/// checks.
fn haproxy_config(stats_socket: &Path) -> String {
    let mut config = format!(
        "global
    stats socket {socket} mode 600 level admin
    log stdout format raw local0 info

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout check 1s
    retries 2
    option redispatch

frontend ftp
    bind {VIP}:21
    default_backend gateways

backend gateways
    balance leastconn
    option httpchk GET /ready
    default-server check port {METRICS_PORT} inter 200ms fall 2 rise 2 send-proxy-v2
",
        socket = stats_socket.display()
    );
    for (name, addr, _) in GATEWAYS {
        config.push_str(&format!("    server {name} {addr}:21\n"));
    }
    for (name, addr, (low, high)) in GATEWAYS {
        config.push_str(&format!(
            "
frontend ftp_data_{name}
    bind {VIP}:{low}-{high}
    default_backend {name}_data

backend {name}_data
    server {name} {addr}
"
        ));
    }
    config
}

/// The `client=` value of a log line.
fn client_of(line: &str) -> Option<&str> {
    let rest = &line[line.find("client=")? + "client=".len()..];
    rest.split_whitespace().next()
}

/// The successful-login events of a gateway's log.
fn logins(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" login user=")).collect()
}

/// The code of the last reply curl (`-v`) received.
fn last_reply_code(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("< "))
        .rfind(|l| l.len() >= 3 && l[..3].chars().all(|c| c.is_ascii_digit()))
        .map(|l| l[..3].to_owned())
        .unwrap_or_default()
}

#[test]
fn transfers_through_the_balancer_carry_the_clients_own_address() {
    let mut phases = Phases::new("transfers");
    let Some(t) = Topology::start("xfer") else {
        return;
    };
    let dir = t.dir.path();
    let data = pattern(6 << 20, 15);
    let upload = dir.join("upload.bin");
    std::fs::write(&upload, &data).expect("write upload");
    let up = upload.to_str().unwrap();

    phases.next("curl from A: 6 MiB up and down with EPSV, then with PASV");
    for (mode, flags) in [("epsv", &[][..]), ("pasv", &["--disable-epsv"][..])] {
        let url = format!("ftp://{VIP}/curl-{mode}.bin");
        t.curl_ok(CLIENT_A, &[flags, &["-T", up, &url]].concat());
        assert_eq!(
            common::read(t.sim.disk_path(&format!("/curl-{mode}.bin"))),
            data,
            "{mode} upload"
        );
        let back = dir.join(format!("curl-{mode}.out"));
        t.curl_ok(
            CLIENT_A,
            &[flags, &["-o", back.to_str().unwrap(), &url]].concat(),
        );
        assert_eq!(common::read(&back), data, "{mode} download");
    }

    phases.next("ftplib from B: 6 MiB up and down with PASV");
    let back = dir.join("ftplib.out");
    let results = t.ftplib(
        CLIENT_B,
        json!({}),
        &[
            op::connect(),
            op::login(USER, PASSWORD),
            op::stor_file("STOR ftplib.bin", &upload, None),
            op::retr_file("RETR ftplib.bin", &back),
            op::quit(),
        ],
    );
    for r in &results {
        assert!(r.ok, "ftplib {}: {:#}\n{}", r.op, r.raw, t.context());
    }
    assert_eq!(common::read(&back), data, "ftplib download");
    assert_eq!(common::read(t.sim.disk_path("/ftplib.bin")), data);

    phases.next("FTPS with PROT P through the balancer: ftplib TLS 1.2 and 1.3, curl");
    let cafile = t.cert.to_str().unwrap();
    for (version, tls) in [
        ("TLSv1.2", json!({"cafile": cafile, "max": "1.2"})),
        ("TLSv1.3", json!({"cafile": cafile, "min": "1.3"})),
    ] {
        let back = dir.join(format!("ftps-{version}.out"));
        let name = format!("ftps-{version}.bin");
        let results = t.ftplib(
            CLIENT_B,
            json!({ "tls": tls }),
            &[
                op::connect(),
                op::auth(),
                op::login(USER, PASSWORD),
                op::prot_p(),
                op::stor_file(&format!("STOR {name}"), &upload, None),
                op::retr_file(&format!("RETR {name}"), &back),
                op::quit(),
            ],
        );
        for r in &results {
            assert!(
                r.ok,
                "ftplib {version} {}: {:#}\n{}",
                r.op,
                r.raw,
                t.context()
            );
        }
        assert_eq!(results[1].value()["version"], version);
        assert_eq!(common::read(&back), data, "{version} download");
    }
    let back = dir.join("curl-ftps.out");
    let url = format!("ftp://{VIP}/ftps-TLSv1.3.bin");
    t.curl_ok(
        CLIENT_A,
        &[
            "--ssl-reqd",
            "--cacert",
            cafile,
            "-o",
            back.to_str().unwrap(),
            &url,
        ],
    );
    assert_eq!(common::read(&back), data, "curl FTPS download");

    phases.next("both gateways served, and logged the clients' own addresses");
    let servers = t.servers();
    for (name, _, _) in GATEWAYS {
        assert!(
            servers[name].stot > 0,
            "HAProxy sent no session to {name}: {servers:?}"
        );
    }
    let mut seen = Vec::new();
    for (i, (name, _, _)) in GATEWAYS.iter().enumerate() {
        let log = t.log(i);
        for line in logins(&log) {
            let client = client_of(line).unwrap_or_default().to_owned();
            assert!(
                client == CLIENT_A || client == CLIENT_B,
                "{} logged a login from {client}, not from a client (balancer {LB}):\n{line}",
                name
            );
            seen.push(client);
        }
        assert!(
            !log.contains(&format!("client={LB}")),
            "{} logged the balancer's address:\n{log}",
            name
        );
    }
    for client in [CLIENT_A, CLIENT_B] {
        assert!(seen.iter().any(|c| c == client), "no login from {client}");
    }
    // curl: 2 × 2 + 1 sessions, ftplib: 3.
    assert_eq!(seen.len(), 8, "one login event per session");
}

#[test]
fn a_forged_proxy_header_is_refused_directly_and_through_the_balancer() {
    let mut phases = Phases::new("forged header");
    let Some(t) = Topology::start("forge") else {
        return;
    };
    for (how, addr, forged) in [
        ("straight to gw1", GATEWAYS[0].1, "192.0.2.99"),
        ("through the balancer", VIP, "192.0.2.98"),
    ] {
        phases.next(&format!("a client sends its own PROXY header {how}"));
        let line = format!("PROXY TCP4 {forged} {addr} 40000 21");
        let out = t.raw_header(CLIENT_A, addr, &line);
        println!("{how}: {out}");
        assert!(out["error"].is_null(), "{how}: {out}\n{}", t.context());
        let replies: Vec<&str> = out["replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        // The reply to the header, after the greeting: refused, or the connection closed.
        let to_header = replies.iter().find(|r| !r.starts_with("220"));
        assert!(
            to_header.is_some_and(|r| r.starts_with('4') || r.starts_with('5'))
                || (to_header.is_none() && out["closed"] == true),
            "{how}: the header was not refused: {out}"
        );
        for (i, (name, _, _)) in GATEWAYS.iter().enumerate() {
            let log = t.log(i);
            assert!(
                !log.contains(forged),
                "{how}: {} took the forged address:\n{log}",
                name
            );
        }
        // A login that went on regardless is the client's own.
        for i in 0..GATEWAYS.len() {
            for line in logins(&t.log(i)) {
                assert_eq!(client_of(line), Some(CLIENT_A), "{how}: a login's address");
            }
        }
    }
}

#[test]
fn failed_logins_ban_the_client_not_the_balancer() {
    let mut phases = Phases::new("bans");
    let Some(t) = Topology::start("ban") else {
        return;
    };
    phases.next("client A fails to log in until both gateways ban it");
    let wrong = format!("{USER}:wrong-password");
    let root = format!("ftp://{VIP}/");
    let banned_by_all =
        |t: &Topology| (0..GATEWAYS.len()).all(|i| t.log(i).contains("address banned"));
    let mut codes = Vec::new();
    // 5 failures ban an address on one gateway; the balancer spreads them over both.
    while !banned_by_all(&t) {
        assert!(codes.len() < 14, "no ban on both gateways after {codes:?}");
        let out = t.curl(CLIENT_A, &["--user", &wrong, &root], 30);
        assert!(!out.status.success(), "a wrong password logged in");
        codes.push(last_reply_code(&out));
    }
    println!("client A's replies: {codes:?}");
    assert!(codes.iter().all(|c| c == "530" || c == "421"), "{codes:?}");
    for (i, (name, _, _)) in GATEWAYS.iter().enumerate() {
        let log = t.log(i);
        let events: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("address banned") || l.contains("login failed"))
            .collect();
        for line in &events {
            assert_eq!(
                client_of(line),
                Some(CLIENT_A),
                "{} banned or blamed another address than A's:\n{line}",
                name
            );
        }
    }

    phases.next("A is refused with 421 on both gateways, B logs in on both");
    for _ in 0..GATEWAYS.len() {
        let out = t.curl(
            CLIENT_A,
            &["--user", &format!("{USER}:{PASSWORD}"), &root],
            30,
        );
        assert_eq!(last_reply_code(&out), "421", "A after its ban");
    }
    let before = t.servers();
    let mut sessions = 0;
    // The balancer takes turns between equally loaded gateways: B lands on both.
    while GATEWAYS
        .iter()
        .any(|(name, _, _)| t.servers()[*name].stot == before[*name].stot)
    {
        assert!(
            sessions < 6,
            "B never landed on both gateways: {:?}",
            t.servers()
        );
        t.curl_ok(CLIENT_B, &[&root]);
        sessions += 1;
    }
    let after = t.servers();
    assert!(t.all_up(&after), "HAProxy took a gateway down: {after:?}");
}

#[test]
fn a_draining_gateway_turns_unready_and_finishes_its_download() {
    let mut phases = Phases::new("drain");
    let Some(mut t) = Topology::start("drain") else {
        return;
    };
    // More than the socket buffers on the way hold, so the gateway is still sending when it
    // is told to stop.
    let data = pattern(24 << 20, 16);
    std::fs::write(t.sim.disk_path("/drain.bin"), &data).expect("write file");
    let target = t.dir.path().join("drain.out");

    phases.next("a download at 2 MB/s starts");
    let (mut download, x) = t.throttled_download("/drain.bin", &target, 2_000_000);
    let y = 1 - x;
    let (xname, yname) = (GATEWAYS[x].0, GATEWAYS[y].0);
    let download_started = Instant::now();

    phases.next(&format!("SIGTERM to {xname}: its /ready turns 503"));
    assert_eq!(t.ready_status(x), "200", "{xname} ready before");
    t.gateway(x).signal("TERM");
    t.wait_for(&format!("{xname}'s /ready to say 503"), |t| {
        t.ready_status(x) == "503"
    });

    phases.next(&format!("HAProxy marks {xname} down"));
    t.wait_for(&format!("HAProxy to mark {xname} down"), |t| {
        t.servers()[xname].status.starts_with("DOWN")
    });

    phases.next(&format!("three sessions at once all land on {yname}"));
    let before = t.servers();
    let held = t.hold_sessions(CLIENT_B, 3);
    let after = t.servers();
    drop(held);
    assert_eq!(
        after[xname].stot, before[xname].stot,
        "{before:?} → {after:?}"
    );
    assert_eq!(
        after[yname].stot,
        before[yname].stot + 3,
        "{before:?} → {after:?}"
    );

    phases.next(&format!(
        "the download on {xname} finishes, then {xname} exits"
    ));
    let status = download.wait_exit(Duration::from_secs(120));
    assert!(
        status.success(),
        "the download during the drain failed ({status}): {}\n{}",
        download.stdout_log(),
        t.context()
    );
    assert_eq!(common::read(&target), data, "the drained download");
    println!(
        "the download took {} ms in all",
        download_started.elapsed().as_millis()
    );
    let exit = t.gateway(x).wait_exit(Duration::from_secs(60));
    assert!(exit.success(), "{xname} ended with {exit}");
}

#[test]
fn sessions_go_to_the_other_gateway_when_one_is_killed() {
    let mut phases = Phases::new("kill");
    let Some(mut t) = Topology::start("kill") else {
        return;
    };
    let data = pattern(8 << 20, 17);
    std::fs::write(t.sim.disk_path("/kill.bin"), &data).expect("write file");
    let target = t.dir.path().join("kill.out");

    phases.next("a download at 1 MB/s starts");
    let (mut download, x) = t.throttled_download("/kill.bin", &target, 1_000_000);
    let y = 1 - x;
    let (xname, yname) = (GATEWAYS[x].0, GATEWAYS[y].0);

    phases.next(&format!(
        "SIGKILL to {xname}; three sessions at once land on {yname}"
    ));
    let killed = Instant::now();
    t.gateway(x).signal("KILL");
    let before = t.servers();
    let logins_before = logins(&t.log(y)).len();
    let held = t.hold_sessions(CLIENT_B, 3);
    let after = t.servers();
    drop(held);
    assert_eq!(
        logins(&t.log(y)).len(),
        logins_before + 3,
        "{yname} took the three sessions:\n{}",
        t.context()
    );
    assert!(
        after[yname].stot >= before[yname].stot + 3,
        "{before:?} → {after:?}"
    );
    println!(
        "three sessions logged in on {yname} {} ms after the kill",
        killed.elapsed().as_millis()
    );

    phases.next("what the client of the cut download saw");
    let status = download.wait_exit(Duration::from_secs(60));
    let got = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
    println!(
        "cut download: ftplib {status}, {got} of {} bytes; it said: {}",
        data.len(),
        download.stdout_log().trim()
    );
    assert!(
        !status.success(),
        "a download from a killed gateway completed"
    );
    assert!(got < data.len() as u64);
    assert_eq!(
        common::read(&target),
        data[..got as usize],
        "what arrived is the file's start"
    );

    phases.next(&format!("HAProxy marks {xname} down"));
    t.wait_for(&format!("HAProxy to mark {xname} down"), |t| {
        t.servers()[xname].status.starts_with("DOWN")
    });
    println!(
        "HAProxy marked {xname} down {} ms after the kill",
        killed.elapsed().as_millis()
    );
}

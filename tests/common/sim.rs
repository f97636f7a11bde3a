//! The simulated cluster: a `qftpd sim` child process (a [`Process`]) on port 0 backed by a
//! temporary data directory, configured by a [`SimBuilder`].
//!
//! Readiness is the simulator's "listening on URL" line on stdout (one per node): no sleeps, no
//! fixed ports.

use std::path::PathBuf;
use std::process::{Command, Output};

use tempfile::TempDir;

use super::process::{Process, Stream, qftpd_command, qftpd_path, require_tool, without_qftpd_env};
use super::qq::Qq;

/// The standard cast: `admin` (500, administrator), `alice` (501) and `bob` (502).
pub const CAST: [(&str, &str); 3] = [("admin", "adminpw"), ("alice", "alicepw"), ("bob", "bobpw")];

/// A running `qftpd sim` child process. Killed when dropped.
pub struct Sim {
    /// Base URL of node 0, e.g. `https://127.0.0.1:41234`.
    pub url: String,
    /// Host part of `url` (every node listens on it).
    pub host: String,
    /// Port part of `url`.
    pub port: u16,
    /// Base URL of every node, node 0 first (just `url` for a one-node simulator).
    pub urls: Vec<String>,
    /// The real directory behind the simulated file system (`/` of the API).
    pub data_dir: TempDir,
    /// Where the simulator wrote its self-signed certificate (`--cert-out`).
    pub cert_pem_path: PathBuf,
    /// Keeps the certificate directory alive.
    _cert_dir: TempDir,
    process: Process,
}

/// The options of a simulator to start; by default the standard cast ([`CAST`], `admin` the
/// administrator) on one node.
#[must_use]
pub struct SimBuilder {
    users: Vec<(String, String)>,
    admin: Option<String>,
    args: Vec<String>,
    nodes: usize,
    listen: String,
    namespace: Option<String>,
}

impl SimBuilder {
    /// These users (ids from 500 in this order) instead of the standard cast, and no
    /// administrator.
    pub fn users(mut self, users: &[(&str, &str)]) -> Self {
        self.users = users
            .iter()
            .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
            .collect();
        self.admin = None;
        self
    }

    /// `user` is the administrator.
    pub fn admin(mut self, user: &str) -> Self {
        self.admin = Some(user.to_owned());
        self
    }

    /// `user`'s home directory is `/home/USER` (`--home USER:/home/USER`).
    pub fn home(self, user: &str) -> Self {
        self.args(&["--home", &format!("{user}:/home/{user}")])
    }

    /// Extra command-line arguments of `qftpd sim` (e.g. `--outage`).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// A cluster of `nodes` nodes.
    pub fn nodes(mut self, nodes: usize) -> Self {
        assert!(nodes >= 1, "a simulator has at least one node");
        self.nodes = nodes;
        self
    }

    /// Node 0 listens on `listen` (e.g. `10.0.0.3:0`) instead of `127.0.0.1:0`; its
    /// certificate names that address.
    pub fn listen(mut self, listen: &str) -> Self {
        self.listen = listen.to_owned();
        self
    }

    /// Runs the simulator inside the network namespace `ns` (see [`super::netns`]).
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_owned());
        self
    }

    /// Starts `qftpd sim`; returns once every node accepts connections.
    pub fn start(self) -> Sim {
        let data_dir = tempfile::Builder::new()
            .prefix("qftpd-sim-data-")
            .tempdir()
            .expect("create data dir");
        let cert_dir = tempfile::Builder::new()
            .prefix("qftpd-sim-cert-")
            .tempdir()
            .expect("create cert dir");
        let cert_pem_path = cert_dir.path().join("cert.pem");

        let mut cmd = match &self.namespace {
            Some(ns) => super::netns::command_in(ns, qftpd_path()),
            None => qftpd_command(),
        };
        without_qftpd_env(&mut cmd);
        cmd.arg("sim")
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--cert-out")
            .arg(&cert_pem_path);
        for (name, password) in &self.users {
            cmd.arg("--user").arg(format!("{name}:{password}"));
        }
        if let Some(admin) = &self.admin {
            cmd.arg("--admin").arg(admin);
        }
        if self.nodes > 1 {
            cmd.arg("--nodes").arg(self.nodes.to_string());
        }
        cmd.args(&self.args);
        let mut process = Process::spawn(&mut cmd, "qftpd sim", Stream::Stdout, find_url);
        let urls = process.wait_ready(self.nodes, &format!("arguments: {:?}", self.args));
        let url = urls[0].clone();
        let (host, port) = split_host_port(&url);
        Sim {
            url,
            host,
            port,
            urls,
            data_dir,
            cert_pem_path,
            _cert_dir: cert_dir,
            process,
        }
    }
}

impl Sim {
    /// A simulator to configure, from the standard cast on one node.
    pub fn builder() -> SimBuilder {
        SimBuilder {
            users: Vec::new(),
            admin: None,
            args: Vec::new(),
            nodes: 1,
            listen: "127.0.0.1:0".to_owned(),
            namespace: None,
        }
        .users(&CAST)
        .admin("admin")
    }

    /// Starts `qftpd sim` with the given users (ids from 500 in this order), an optional
    /// administrator, and extra command-line arguments; returns once it accepts connections.
    pub fn start(users: &[(&str, &str)], admin: Option<&str>, extra_args: &[&str]) -> Sim {
        Sim::start_with_nodes(users, admin, extra_args, 1)
    }

    /// The standard cast (see [`Sim::start_default`]) on a cluster of `nodes` nodes.
    pub fn start_nodes(nodes: usize) -> Sim {
        Sim::builder().nodes(nodes).start()
    }

    /// Like [`Sim::start`], with `--nodes NODES` when more than one; returns once every node
    /// accepts connections.
    pub fn start_with_nodes(
        users: &[(&str, &str)],
        admin: Option<&str>,
        extra_args: &[&str],
        nodes: usize,
    ) -> Sim {
        let mut builder = Sim::builder().users(users).args(extra_args).nodes(nodes);
        if let Some(admin) = admin {
            builder = builder.admin(admin);
        }
        builder.start()
    }

    /// The standard cast: `admin` (500, administrator), `alice` (501) and `bob` (502).
    pub fn start_default() -> Sim {
        Sim::builder().start()
    }

    /// The on-disk path of an API path such as `/dir/f.txt`.
    pub fn disk_path(&self, api_path: &str) -> PathBuf {
        self.data_dir.path().join(api_path.trim_start_matches('/'))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Peak resident set size of the simulator (`VmHWM` from `/proc/<pid>/status`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.process.peak_rss_kib()
    }

    /// What the simulator wrote on stderr so far.
    pub fn stderr_log(&self) -> String {
        self.process.stderr_log()
    }

    /// Sends a request to a control endpoint (`/sim/...`) with curl; returns the response body.
    pub fn control(&self, method: &str, path: &str, json_body: Option<&str>) -> String {
        self.control_on(0, method, path, json_body)
    }

    /// [`Sim::control`] through node `node`.
    pub fn control_on(
        &self,
        node: usize,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> String {
        let out = curl(&self.urls[node], method, path, json_body);
        assert!(
            out.status.success(),
            "curl -X {method} {path} (node {node}) failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`Sim::control`] through the first node that accepts the connection, trying `last`
    /// after every other node (so a node is not asked about itself while others are up).
    pub fn control_any(
        &self,
        last: usize,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> String {
        let order = (0..self.urls.len()).filter(|&i| i != last).chain([last]);
        let mut refused = Vec::new();
        for node in order {
            let out = curl(&self.urls[node], method, path, json_body);
            if out.status.code() == Some(CURL_COULDNT_CONNECT) {
                refused.push(node);
                continue;
            }
            assert!(
                out.status.success(),
                "curl -X {method} {path} (node {node}) failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        panic!("curl -X {method} {path}: every node refused the connection ({refused:?})");
    }

    /// `POST /sim/nodes/INDEX/down` through a live node: on return node `index` refuses
    /// connections and its open ones are reset. Returns the node's JSON status.
    pub fn node_down(&self, index: usize) -> serde_json::Value {
        let path = format!("/sim/nodes/{index}/down");
        parse_json(&self.control_any(index, "POST", &path, None))
    }

    /// `POST /sim/nodes/INDEX/up` through a live node: node `index` serves again on its port.
    /// Returns the node's JSON status.
    pub fn node_up(&self, index: usize) -> serde_json::Value {
        let path = format!("/sim/nodes/{index}/up");
        parse_json(&self.control_any(index, "POST", &path, None))
    }

    /// `GET /sim/nodes` through a live node: `{"nodes": [{"index", "url", "state",
    /// "requests"}, …]}`.
    pub fn nodes(&self) -> serde_json::Value {
        parse_json(&self.control_any(0, "GET", "/sim/nodes", None))
    }

    /// The port of node `node`.
    pub fn node_port(&self, node: usize) -> u16 {
        split_host_port(&self.urls[node]).1
    }

    /// A `qq` wrapper pointed at node `node`, with its own credentials file.
    pub fn qq_on(&self, node: usize) -> Qq {
        Qq::new(&self.host, self.node_port(node))
    }

    /// `POST /sim/expire-tokens`: every bearer token issued so far becomes invalid.
    pub fn expire_tokens(&self) {
        self.control("POST", "/sim/expire-tokens", None);
    }

    /// `GET /sim/logins`: the logins the simulator accepted and refused so far.
    pub fn logins(&self) -> (u64, u64) {
        let counts = parse_json(&self.control("GET", "/sim/logins", None));
        let count = |key: &str| {
            counts[key]
                .as_u64()
                .unwrap_or_else(|| panic!("no {key} in /sim/logins: {counts}"))
        };
        (count("accepted"), count("refused"))
    }

    /// `PUT /sim/faults` with the given JSON body.
    pub fn set_faults(&self, json_body: &str) {
        self.control("PUT", "/sim/faults", Some(json_body));
    }

    /// A `qq` wrapper pointed at this simulator, with its own credentials file.
    pub fn qq(&self) -> Qq {
        Qq::new(&self.host, self.port)
    }

    /// A `qq` wrapper already logged in as `user`.
    pub fn qq_as(&self, user: &str, password: &str) -> Qq {
        let qq = self.qq();
        qq.login(user, password);
        qq
    }
}

/// curl's exit code for a connection that could not be made (e.g. refused).
const CURL_COULDNT_CONNECT: i32 = 7;

/// `curl -X METHOD BASE_URL+PATH` with an optional JSON body, failing on HTTP errors.
fn curl(base_url: &str, method: &str, path: &str, json_body: Option<&str>) -> Output {
    let mut cmd = Command::new(require_tool("curl", "curl"));
    cmd.args(["-sS", "-k", "--fail-with-body", "-X", method]);
    if let Some(body) = json_body {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    cmd.arg(format!("{base_url}{path}"))
        .output()
        .expect("run curl")
}

fn parse_json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The first `https://…` or `http://…` token of a line, without a trailing slash.
fn find_url(line: &str) -> Option<String> {
    let start = ["https://", "http://"]
        .iter()
        .filter_map(|scheme| line.find(scheme))
        .min()?;
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    Some(url.trim_end_matches('/').to_owned())
}

/// Splits `https://HOST:PORT` into host and port.
fn split_host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in simulator URL {url:?}"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port
        .parse()
        .unwrap_or_else(|e| panic!("bad port in simulator URL {url:?}: {e}"));
    (host.to_owned(), port)
}

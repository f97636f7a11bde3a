//! Shared harness for the end-to-end tests: a `qftpd sim` child process on port 0 backed by a
//! temporary data directory, and a wrapper around the real `qq` CLI (PyPI `qumulo-api`).
//!
//! Every test starts its own simulator, so tests run in parallel without sharing state. Readiness
//! is the simulator's "listening on URL" line on stdout (one per node): no sleeps, no fixed ports.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tempfile::TempDir;

pub mod control;
pub mod ftp;
/// How long the simulator may take to print its URL line (a cold debug build can be slow).
const START_DEADLINE: Duration = Duration::from_secs(30);

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
    /// Everything the simulator wrote on stderr so far, for failure messages.
    stderr_log: Arc<Mutex<Vec<u8>>>,
    child: Child,
    drains: Vec<JoinHandle<()>>,
}

impl Sim {
    /// Starts `qftpd sim` with the given users (ids from 500 in this order), an optional
    /// administrator, and extra command-line arguments; returns once it accepts connections.
    pub fn start(users: &[(&str, &str)], admin: Option<&str>, extra_args: &[&str]) -> Sim {
        Sim::start_with_nodes(users, admin, extra_args, 1)
    }

    /// The standard cast (see [`Sim::start_default`]) on a cluster of `nodes` nodes.
    pub fn start_nodes(nodes: usize) -> Sim {
        Sim::start_with_nodes(
            &[("admin", "adminpw"), ("alice", "alicepw"), ("bob", "bobpw")],
            Some("admin"),
            &[],
            nodes,
        )
    }

    /// Like [`Sim::start`], with `--nodes NODES` when more than one; returns once every node
    /// accepts connections.
    pub fn start_with_nodes(
        users: &[(&str, &str)],
        admin: Option<&str>,
        extra_args: &[&str],
        nodes: usize,
    ) -> Sim {
        assert!(nodes >= 1, "a simulator has at least one node");
        let data_dir = tempfile::Builder::new()
            .prefix("qftpd-sim-data-")
            .tempdir()
            .expect("create data dir");
        let cert_dir = tempfile::Builder::new()
            .prefix("qftpd-sim-cert-")
            .tempdir()
            .expect("create cert dir");
        let cert_pem_path = cert_dir.path().join("cert.pem");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qftpd"));
        cmd.arg("sim")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--cert-out")
            .arg(&cert_pem_path);
        for (name, password) in users {
            cmd.arg("--user").arg(format!("{name}:{password}"));
        }
        if let Some(admin) = admin {
            cmd.arg("--admin").arg(admin);
        }
        if nodes > 1 {
            cmd.arg("--nodes").arg(nodes.to_string());
        }
        cmd.args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn qftpd sim");

        let stderr_log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("child stderr");
        let log = Arc::clone(&stderr_log);
        let stderr_drain = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });

        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("child stdout");
        let stdout_drain = std::thread::spawn(move || drain_stdout(stdout, tx));

        let deadline = std::time::Instant::now() + START_DEADLINE;
        let mut urls = Vec::with_capacity(nodes);
        while urls.len() < nodes {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(url) => urls.push(url),
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait();
                    let _ = stderr_drain.join();
                    let err = String::from_utf8_lossy(&stderr_log.lock().unwrap()).into_owned();
                    panic!(
                        "qftpd sim printed {} of {nodes} URL(s) ({e}); exit status {status:?}; \
                         stderr:\n{err}",
                        urls.len()
                    );
                }
            }
        }
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
            stderr_log,
            child,
            drains: vec![stderr_drain, stdout_drain],
        }
    }

    /// The standard cast: `admin` (500, administrator), `alice` (501) and `bob` (502).
    pub fn start_default() -> Sim {
        Sim::start(
            &[("admin", "adminpw"), ("alice", "alicepw"), ("bob", "bobpw")],
            Some("admin"),
            &[],
        )
    }

    /// The on-disk path of an API path such as `/dir/f.txt`.
    pub fn disk_path(&self, api_path: &str) -> PathBuf {
        self.data_dir.path().join(api_path.trim_start_matches('/'))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size of the simulator (`VmHWM` from `/proc/<pid>/status`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status of the simulator");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmHWM line in /proc/<pid>/status")
    }

    /// What the simulator wrote on stderr so far.
    pub fn stderr_log(&self) -> String {
        String::from_utf8_lossy(&self.stderr_log.lock().unwrap()).into_owned()
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

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for handle in self.drains.drain(..) {
            let _ = handle.join();
        }
    }
}

/// curl's exit code for a connection that could not be made (e.g. refused).
const CURL_COULDNT_CONNECT: i32 = 7;

/// `curl -X METHOD BASE_URL+PATH` with an optional JSON body, failing on HTTP errors.
fn curl(base_url: &str, method: &str, path: &str, json_body: Option<&str>) -> Output {
    let mut cmd = Command::new("curl");
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

/// Reads the simulator's stdout: sends each base URL found (one line per node, node 0 first),
/// and keeps draining so the pipe never fills.
fn drain_stdout(stdout: ChildStdout, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut open = true;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if !open {
            continue;
        }
        if let Some(url) = find_url(&String::from_utf8_lossy(&line)) {
            open = tx.send(url).is_ok();
        }
    }
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

/// The `qq` executable: `$QQ_BIN`, else the venv that `./run-tests` installs.
pub fn qq_path() -> PathBuf {
    let path = match std::env::var_os("QQ_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-env/venv/bin/qq"),
    };
    assert!(
        path.exists(),
        "qq not found: run ./run-tests (it installs the qumulo-api venv) or set QQ_BIN \
         (looked for {})",
        path.display()
    );
    path
}

/// The real `qq` CLI aimed at one simulator, with a private credentials file.
pub struct Qq {
    /// Simulator host.
    pub host: String,
    /// Simulator port.
    pub port: u16,
    /// The `--credentials-store` file.
    pub cred_file: PathBuf,
    /// Holds `cred_file` and scratch files.
    pub dir: TempDir,
    exe: PathBuf,
}

impl Qq {
    /// A `qq` wrapper for `host:port`; not logged in yet.
    pub fn new(host: &str, port: u16) -> Qq {
        let dir = tempfile::Builder::new()
            .prefix("qftpd-qq-")
            .tempdir()
            .expect("create qq dir");
        Qq {
            host: host.to_owned(),
            port,
            cred_file: dir.path().join("credentials"),
            dir,
            exe: qq_path(),
        }
    }

    /// A `qq` command with the target and credentials options filled in.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--host")
            .arg(&self.host)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--credentials-store")
            .arg(&self.cred_file)
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"));
        cmd
    }

    /// A wrapper for `host:port` (e.g. another node of the same cluster) that uses this one's
    /// credentials file, hence its bearer token; `self` must outlive it.
    pub fn sharing_credentials(&self, host: &str, port: u16) -> Qq {
        let mut other = Qq::new(host, port);
        other.cred_file = self.cred_file.clone();
        other
    }

    /// Runs `qq <args>` with stdin closed.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run qq {args:?}: {e}"))
    }

    /// Runs `qq <args>` with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn qq {args:?}: {e}"));
        let mut stdin = child.stdin.take().expect("qq stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for qq");
        let _ = writer.join();
        out
    }

    /// Runs `qq <args>`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(args, &out);
        String::from_utf8(out.stdout).expect("qq stdout is UTF-8")
    }

    /// Runs `qq <args>`, asserts success, returns raw stdout bytes.
    pub fn ok_bytes(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert_success(args, &out);
        out.stdout
    }

    /// Runs `qq <args>`, asserts success, returns the first JSON value printed.
    pub fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let stdout = self.ok(args);
        json_values(&stdout)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("qq {args:?} printed no JSON:\n{stdout}"))
    }

    /// Runs `qq <args>`, asserts success, returns every JSON value printed (e.g. one per page).
    pub fn ok_json_all(&self, args: &[&str]) -> Vec<serde_json::Value> {
        json_values(&self.ok(args))
    }

    /// Runs `qq <args>`, asserts failure, returns stderr.
    pub fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "qq {args:?} unexpectedly succeeded; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `qq login -u USER -p PASSWORD`, asserting success.
    pub fn login(&self, user: &str, password: &str) {
        self.ok(&["login", "-u", user, "-p", password]);
    }

    /// Writes `data` to a scratch file and returns its path (for `fs_write --file`).
    pub fn scratch_file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).expect("write scratch file");
        path
    }

    /// `fs_write --path PATH --file <data> [extra]`, asserting success; returns the JSON printed.
    pub fn write(&self, path: &str, data: &[u8], extra: &[&str]) -> serde_json::Value {
        let src = self.scratch_file("upload.bin", data);
        let src = src.to_str().expect("UTF-8 temp path");
        let mut args = vec!["fs_write", "--path", path, "--file", src];
        args.extend_from_slice(extra);
        self.ok_json(&args)
    }

    /// `fs_read --path PATH --stdout [extra]`, asserting success; returns the bytes.
    pub fn read(&self, path: &str, extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["fs_read", "--path", path, "--stdout"];
        args.extend_from_slice(extra);
        self.ok_bytes(&args)
    }
}

fn assert_success(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "qq {args:?} failed ({}); stderr:\n{}\nstdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// All JSON values at the start of `text`, in order; stops at the first non-JSON text (e.g. the
/// prose that `who_am_i` prints after its JSON).
pub fn json_values(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .collect()
}

/// Every file and directory under `root` (hidden ones too), by path relative to `root`: its
/// full path and whether it is a directory.
pub fn walk_tree(root: &Path) -> BTreeMap<String, (PathBuf, bool)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (PathBuf, bool)>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read directory {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let is_dir = entry.file_type().expect("file type").is_dir();
            if is_dir {
                walk(root, &path, out);
            }
            out.insert(rel, (path, is_dir));
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

//! Harness for driving the FTP gateway with real FTP clients: a `qftpd serve` child process in
//! front of a [`Sim`], and wrappers around Python's ftplib (`tests/clients/ftp_ops.py`), curl and
//! lftp.
//!
//! The gateway listens on port 0 and announces its address on stderr (`listening on ADDR`); the
//! harness waits for that line, so there are no sleeps and no fixed control ports. Passive data
//! ports come from a 50-port range per gateway, chosen from the process id and a counter so that
//! gateways of parallel tests do not share a range. Everything the gateway logs is kept, so
//! tests can assert on the log (e.g. that no password ever appears in it).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::Sim;

/// How long the gateway may take to announce its address (a cold debug build can be slow).
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Ports per gateway for passive data connections.
const PASSIVE_PORTS: u32 = 50;
/// First port of the passive ranges: below the kernel's ephemeral ports (32768 and up by
/// default), which outgoing connections of the tests would otherwise take from a small range.
const PASSIVE_BASE: u32 = 30000;
/// Number of passive ranges in 30000..32750.
const PASSIVE_SLOTS: u32 = 55;

/// Gateways started by this process so far (each gets its own passive range).
static GATEWAYS: AtomicU32 = AtomicU32::new(0);

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
    /// Everything the gateway wrote on stderr so far.
    stderr_log: Arc<Mutex<Vec<u8>>>,
    child: Child,
    drain: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Starts `qftpd serve` in front of `sim`. `extra_ftp` holds extra lines of the `[ftp]`
    /// table, e.g. `timezone = "America/New_York"`.
    pub fn start(sim: &Sim, extra_ftp: &str) -> Gateway {
        Gateway::start_with(&sim.url, Some(&sim.cert_pem_path), extra_ftp)
    }

    /// Starts `qftpd serve` for the cluster at `url`, trusting `ca_file` when given.
    pub fn start_with(url: &str, ca_file: Option<&Path>, extra_ftp: &str) -> Gateway {
        Gateway::start_config(&qumulo_table(url, ca_file), extra_ftp)
    }

    /// Like [`Gateway::start`], with the passive data ports `LOW-HIGH` given by `ports`
    /// instead of a 50-port range of the harness (e.g. for hundreds of concurrent transfers).
    pub fn start_with_ports(sim: &Sim, ports: (u16, u16), extra_ftp: &str) -> Gateway {
        let qumulo = qumulo_table(&sim.url, Some(&sim.cert_pem_path));
        Gateway::start_config_with_ports(&qumulo, ports, extra_ftp)
    }

    /// Starts `qftpd serve` with `qumulo` as the lines of its `[qumulo]` table and
    /// `extra_ftp` as extra lines of its `[ftp]` table.
    pub fn start_config(qumulo: &str, extra_ftp: &str) -> Gateway {
        Gateway::start_config_with_ports(qumulo, passive_range(), extra_ftp)
    }

    /// [`Gateway::start_config`] with the passive data ports `LOW-HIGH` given by `ports`.
    pub fn start_config_with_ports(qumulo: &str, ports: (u16, u16), extra_ftp: &str) -> Gateway {
        Gateway::start_full("127.0.0.1:0", qumulo, ports, extra_ftp)
    }

    /// Like [`Gateway::start`], listening on `listen` (e.g. `[::]:0` for IPv6 and IPv4
    /// clients) instead of `127.0.0.1:0`.
    pub fn start_listening(sim: &Sim, listen: &str, extra_ftp: &str) -> Gateway {
        let qumulo = qumulo_table(&sim.url, Some(&sim.cert_pem_path));
        Gateway::start_full(listen, &qumulo, passive_range(), extra_ftp)
    }

    fn start_full(listen: &str, qumulo: &str, ports: (u16, u16), extra_ftp: &str) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("qftpd-gw-")
            .tempdir()
            .expect("create gateway dir");
        let (low, high) = ports;
        let config = format!(
            "[ftp]\nlisten = \"{listen}\"\npassive-ports = \"{low}-{high}\"\n{extra_ftp}\n\
             [qumulo]\n{qumulo}\n"
        );
        let config_path = dir.path().join("qftpd.toml");
        std::fs::write(&config_path, &config).expect("write gateway config");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qftpd"));
        cmd.arg("serve").arg("--config").arg(&config_path);
        // The configuration is exactly the file: QFTPD_* variables of the test environment
        // (from a developer's shell) would be read as configuration keys.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("QFTPD_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn qftpd serve");

        let stderr_log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("child stderr");
        let log = Arc::clone(&stderr_log);
        let drain = std::thread::spawn(move || drain_stderr(stderr, log, tx));

        let addr = match rx.recv_timeout(START_DEADLINE) {
            Ok(addr) => addr,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                let _ = drain.join();
                let err = String::from_utf8_lossy(&stderr_log.lock().unwrap()).into_owned();
                panic!(
                    "qftpd serve did not log `listening on ADDR` ({e}); exit status {status:?}; \
                     config:\n{config}\nstderr:\n{err}"
                );
            }
        };
        Gateway {
            addr,
            passive_ports: (low, high),
            config_path,
            _dir: dir,
            stderr_log,
            child,
            drain: Some(drain),
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
        String::from_utf8_lossy(&self.stderr_log.lock().unwrap()).into_owned()
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
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        self.stderr_log()
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the gateway with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits for the gateway to exit by itself (at most `deadline`) and returns its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let until = std::time::Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the gateway") {
                if let Some(drain) = self.drain.take() {
                    let _ = drain.join();
                }
                return status;
            }
            assert!(
                std::time::Instant::now() < until,
                "the gateway did not exit within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident set size of the gateway (`VmHWM` of `/proc/<pid>/status`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status of the gateway");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmHWM line in /proc/<pid>/status")
    }

    /// Runs `ops` with ftplib on one control connection (the list usually starts with
    /// [`op::connect`] and [`op::login`]); returns one result per operation.
    pub fn ftplib(&self, ops: &[Value]) -> Vec<OpResult> {
        run_ftplib(self.addr, ops)
    }

    /// Connects and logs in as `user` with ftplib (asserting both succeed), runs `ops`, quits;
    /// returns the results of `ops` only.
    pub fn ftplib_as(&self, user: &str, password: &str, ops: &[Value]) -> Vec<OpResult> {
        let mut all = vec![op::connect(), op::login(user, password)];
        all.extend_from_slice(ops);
        all.push(op::quit());
        let mut results = self.ftplib(&all);
        let n = results.len();
        assert!(
            results[0].ok && results[1].ok,
            "ftplib could not log in as {user}: {:?} / {:?}",
            results[0],
            results[1]
        );
        results.truncate(n - 1);
        results.drain(..2);
        results
    }

    /// Runs `lftp -c` with `commands` after logging in as `user` (fail-exit on, no TLS).
    pub fn lftp(&self, user: &str, password: &str, commands: &str) -> Output {
        let out = self.lftp_with("set ftp:ssl-allow no;", user, password, commands);
        assert_eq!(
            out.status.code(),
            Some(0),
            "lftp failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `lftp -c` with `settings` (e.g. TLS ones) and `commands` after logging in as
    /// `user`; returns the output whatever the exit status.
    pub fn lftp_with(&self, settings: &str, user: &str, password: &str, commands: &str) -> Output {
        let mut child = self
            .lftp_command(settings, user, password, commands)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run lftp (apt-get install lftp)");
        wait_with_deadline(&mut child, Duration::from_secs(300), "lftp")
    }

    /// `lftp -c`: `settings`, the test settings (few retries, a timeout, fail-exit, clobber),
    /// a login as `user`, then `commands`; no standard input.
    fn lftp_command(&self, settings: &str, user: &str, password: &str, commands: &str) -> Command {
        let script = format!(
            "{settings} set net:max-retries 2; set net:reconnect-interval-base 1; \
             set net:timeout 30; set cmd:fail-exit yes; set xfer:clobber on; \
             open -u {user},{password} -p {port} 127.0.0.1; {commands}",
            port = self.port()
        );
        let mut command = Command::new("lftp");
        command.arg("-c").arg(script).stdin(Stdio::null());
        command
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
    }
}

/// The lines of a `[qumulo]` table for the cluster at `url`, trusting `ca_file` when given.
fn qumulo_table(url: &str, ca_file: Option<&Path>) -> String {
    let mut qumulo = format!("url = {}\n", toml_str(url));
    if let Some(ca) = ca_file {
        qumulo.push_str(&format!(
            "ca-file = {}\n",
            toml_str(ca.to_str().expect("UTF-8 certificate path"))
        ));
    }
    qumulo
}

/// A fresh passive range in 30000..32750: 50 ports, by process id and gateway counter.
fn passive_range() -> (u16, u16) {
    let n = GATEWAYS.fetch_add(1, Ordering::Relaxed);
    let slot = (std::process::id().wrapping_mul(7).wrapping_add(n)) % PASSIVE_SLOTS;
    let low = PASSIVE_BASE + slot * PASSIVE_PORTS;
    (low as u16, (low + PASSIVE_PORTS - 1) as u16)
}

/// The first `len` ports (at most 50) of a passive range of the harness, for tests that need
/// a small range of their own (e.g. to exhaust it).
pub fn small_passive_range(len: u16) -> (u16, u16) {
    assert!(
        (1..=PASSIVE_PORTS as u16).contains(&len),
        "1 to {PASSIVE_PORTS} ports"
    );
    let (low, _) = passive_range();
    (low, low + len - 1)
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Percent-encodes everything but unreserved characters (for URL user info and path
/// segments).
pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Reads the gateway's stderr into `log`; sends the address of the first `listening on ADDR`
/// line, then keeps draining so the pipe never fills.
fn drain_stderr(stderr: ChildStderr, log: Arc<Mutex<Vec<u8>>>, tx: mpsc::Sender<SocketAddr>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut sent = false;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        log.lock().unwrap().extend_from_slice(&line);
        if sent {
            continue;
        }
        let text = strip_ansi(&String::from_utf8_lossy(&line));
        if let Some(addr) = listening_addr(&text) {
            sent = tx.send(addr).is_ok();
        }
    }
}

/// The address after `listening on ` in a log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',')
        .collect();
    token.parse().ok()
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits for `child`, killing it after `deadline`; collects its output.
pub fn wait_with_deadline(child: &mut Child, deadline: Duration, what: &str) -> Output {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let status = child.wait().expect("wait for killed child");
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{what} did not finish within {deadline:?} (killed: {status}); stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// Constructors of ftplib operations (see `tests/clients/ftp_ops.py`).
pub mod op {
    use serde_json::{Value, json};

    /// Opens the control connection; value: the greeting.
    pub fn connect() -> Value {
        json!(["connect"])
    }
    /// `USER` + `PASS`; reply: the final reply.
    pub fn login(user: &str, password: &str) -> Value {
        json!(["login", user, password])
    }
    /// Any command without a data connection; reply: the whole reply.
    pub fn cmd(line: &str) -> Value {
        json!(["cmd", line])
    }
    /// `STOR`/`APPE` (`cmd` is the whole command) of `data`, after `REST rest` when given.
    pub fn stor(cmd: &str, data: &[u8], rest: Option<u64>) -> Value {
        json!(["stor", cmd, format!("hex:{}", super::hex(data)), rest])
    }
    /// `STOR`/`APPE` of a local file.
    pub fn stor_file(cmd: &str, path: &std::path::Path, rest: Option<u64>) -> Value {
        json!(["stor", cmd, format!("file:{}", path.display()), rest])
    }
    /// `RETR` (`cmd` is the whole command) after `REST rest` when given; value: the data as hex.
    pub fn retr(cmd: &str, rest: Option<u64>) -> Value {
        json!(["retr", cmd, Value::Null, rest])
    }
    /// `RETR` into a local file.
    pub fn retr_file(cmd: &str, path: &std::path::Path) -> Value {
        json!(["retr", cmd, format!("file:{}", path.display()), Value::Null])
    }
    /// A listing command (`LIST x`, `NLST x`, `MLSD x`); value: the lines.
    pub fn lines(cmd: &str) -> Value {
        json!(["lines", cmd])
    }
    /// ftplib `nlst(path)`; value: the names.
    pub fn nlst(path: &str) -> Value {
        json!(["nlst", path])
    }
    /// ftplib `mlsd(path)`; value: `[[name, {fact: value}], ...]`.
    pub fn mlsd(path: &str) -> Value {
        json!(["mlsd", path])
    }
    /// ftplib `pwd()`; value: the directory.
    pub fn pwd() -> Value {
        json!(["pwd"])
    }
    /// POST to a URL between FTP operations (e.g. the simulator's `/sim/expire-tokens`).
    pub fn post(url: &str) -> Value {
        json!(["post", url])
    }
    /// `QUIT`.
    pub fn auth() -> Value {
        json!(["auth"])
    }
    pub fn prot_p() -> Value {
        json!(["prot_p"])
    }
    pub fn quit() -> Value {
        json!(["quit"])
    }
}

/// The outcome of one ftplib operation.
#[derive(Debug, Clone)]
pub struct OpResult {
    /// Whether ftplib raised nothing.
    pub ok: bool,
    /// The operation's name.
    pub op: String,
    /// The whole JSON result, for failure messages.
    pub raw: Value,
}

impl OpResult {
    /// The reply of a successful operation (panics with the error otherwise).
    pub fn reply(&self) -> &str {
        assert!(self.ok, "ftplib {} failed: {:#}", self.op, self.raw);
        self.raw["reply"].as_str().unwrap_or("")
    }

    /// The error (ftplib's exception text, i.e. the reply line) of a failed operation (panics
    /// if it succeeded).
    pub fn error(&self) -> &str {
        assert!(
            !self.ok,
            "ftplib {} unexpectedly succeeded: {:#}",
            self.op, self.raw
        );
        self.raw["error"].as_str().unwrap_or("")
    }

    /// The value of a successful operation.
    pub fn value(&self) -> &Value {
        assert!(self.ok, "ftplib {} failed: {:#}", self.op, self.raw);
        &self.raw["value"]
    }

    /// The value as a list of strings (listing lines, names).
    pub fn strings(&self) -> Vec<String> {
        self.value()
            .as_array()
            .unwrap_or_else(|| panic!("ftplib {} value is not a list: {:#}", self.op, self.raw))
            .iter()
            .map(|v| v.as_str().expect("string").to_owned())
            .collect()
    }

    /// The data of a `retr` without a target file.
    pub fn data(&self) -> Vec<u8> {
        unhex(self.value().as_str().expect("hex data"))
    }

    /// Seconds the operation took.
    pub fn secs(&self) -> f64 {
        self.raw["secs"].as_f64().unwrap_or(f64::NAN)
    }
}

/// The ftplib driver script.
pub fn ftp_ops_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ftp_ops.py")
}

/// Runs `ops` with ftplib against `addr`.
pub fn run_ftplib(addr: SocketAddr, ops: &[Value]) -> Vec<OpResult> {
    run_ftplib_with(addr, json!({}), ops)
}

/// Runs `ops` with ftplib against `addr`, with `options` such as `{"source": "127.0.0.2"}` or
/// `{"tls": {"cafile": PATH, "max": "1.2"}}` (see tests/clients/ftp_ops.py).
pub fn run_ftplib_with(addr: SocketAddr, options: Value, ops: &[Value]) -> Vec<OpResult> {
    let mut spec = json!({
        "host": addr.ip().to_string(),
        "port": addr.port(),
        "timeout": 60,
        "ops": ops,
    });
    if let (Some(spec), Some(options)) = (spec.as_object_mut(), options.as_object()) {
        spec.extend(options.clone());
    }
    let mut child = Command::new("python3")
        .arg(ftp_ops_script())
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let input = serde_json::to_vec(&spec).unwrap();
    let mut stdin = child.stdin.take().expect("python stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        let _ = stdin.write_all(&input);
    });
    let out = wait_with_deadline(&mut child, Duration::from_secs(600), "ftp_ops.py");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "ftp_ops.py failed ({}):\nstderr:\n{}\nstdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ftp_ops.py printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| OpResult {
            ok: r["ok"].as_bool().unwrap_or(false),
            op: r["op"].as_str().unwrap_or("?").to_owned(),
            raw: r.clone(),
        })
        .collect()
}

/// Runs `curl -sS -v --max-time SECS <args>`; returns the output whatever the exit status.
pub fn curl(args: &[&str], max_secs: u64) -> Output {
    let mut child = Command::new("curl")
        .args(["-sS", "-v", "--max-time", &max_secs.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run curl");
    wait_with_deadline(&mut child, Duration::from_secs(max_secs + 30), "curl")
}

/// Runs curl like [`curl`] and asserts it succeeded; returns stdout.
pub fn curl_ok(args: &[&str]) -> Vec<u8> {
    let out = curl(args, 120);
    assert!(
        out.status.success(),
        "curl {args:?} failed ({}); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Lower-case hex of `data`.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// `len` deterministic pseudo-random bytes (xorshift), different for each `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Block size of [`BigPattern`].
pub const BIG_BLOCK: usize = 1 << 20;

/// A long deterministic stream: 1 MiB blocks, each a distinct rotation of one pseudo-random
/// block stamped with its index, so a lost, repeated or reordered block shows. Never held in
/// memory beyond one block.
pub struct BigPattern {
    base: Vec<u8>,
    block: Vec<u8>,
    current: Option<u64>,
}

impl Default for BigPattern {
    fn default() -> Self {
        BigPattern {
            base: pattern(BIG_BLOCK, 42),
            block: vec![0u8; BIG_BLOCK],
            current: None,
        }
    }
}

impl BigPattern {
    /// Block `i` of the stream.
    pub fn block(&mut self, i: u64) -> &[u8] {
        if self.current != Some(i) {
            self.current = Some(i);
            let rot = (i as usize).wrapping_mul(4099) % BIG_BLOCK;
            self.block[..BIG_BLOCK - rot].copy_from_slice(&self.base[rot..]);
            self.block[BIG_BLOCK - rot..].copy_from_slice(&self.base[..rot]);
            self.block[..8].copy_from_slice(&i.to_le_bytes());
        }
        &self.block
    }

    /// Writes the first `len` bytes of the stream to `path`.
    pub fn write_file(path: &Path, len: u64) {
        use std::io::Write as _;
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
        let mut stream = BigPattern::default();
        let mut left = len;
        let mut i = 0;
        while left > 0 {
            let n = left.min(BIG_BLOCK as u64) as usize;
            file.write_all(&stream.block(i)[..n]).expect("write");
            left -= n as u64;
            i += 1;
        }
        file.flush().expect("flush");
    }
}

/// Compares a byte stream, piece by piece, with the first `len` bytes of [`BigPattern`].
pub struct PatternVerifier {
    stream: BigPattern,
    len: u64,
    /// Bytes fed so far.
    pub pos: u64,
    /// The first offset whose byte differs (or lies beyond `len`).
    pub first_mismatch: Option<u64>,
}

impl PatternVerifier {
    /// A verifier of the first `len` bytes.
    pub fn new(len: u64) -> Self {
        PatternVerifier {
            stream: BigPattern::default(),
            len,
            pos: 0,
            first_mismatch: None,
        }
    }

    /// Checks the next piece of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let idx = self.pos / BIG_BLOCK as u64;
            let off = (self.pos % BIG_BLOCK as u64) as usize;
            let n = data.len().min(BIG_BLOCK - off);
            if self.first_mismatch.is_none() {
                let avail = self.len.saturating_sub(self.pos).min(n as u64) as usize;
                let expected = &self.stream.block(idx)[off..off + avail];
                if expected != &data[..avail] || avail < n {
                    let at = expected
                        .iter()
                        .zip(&data[..avail])
                        .position(|(a, b)| a != b)
                        .unwrap_or(avail);
                    self.first_mismatch = Some(self.pos + at as u64);
                }
            }
            self.pos += n as u64;
            data = &data[n..];
        }
    }

    /// Feeds everything `reader` yields.
    pub fn feed_reader(&mut self, reader: &mut impl Read) {
        let mut buf = vec![0u8; BIG_BLOCK];
        loop {
            let n = reader.read(&mut buf).expect("read stream");
            if n == 0 {
                break;
            }
            self.feed(&buf[..n]);
        }
    }

    /// Asserts the stream was exactly the first `len` bytes.
    pub fn assert_complete(&self, what: &str) {
        assert_eq!(
            self.first_mismatch, None,
            "{what}: first offset where the data differs from the source"
        );
        assert_eq!(self.pos, self.len, "{what}: bytes");
    }
}

/// A temporary directory for a test's own files (removed when dropped).
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("qftpd-test-")
        .tempdir()
        .expect("create scratch dir")
}

/// The contents of `path`; a failure names the file.
pub fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The path of the client program `program` on `PATH`; fails, naming the Debian package
/// `./run-tests` installs it from, when it is missing (an interoperability test never skips).
pub fn require_client(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not on PATH: ./run-tests installs it (Debian package {package}; \
                 or apt-get install {package})"
            )
        })
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

/// Runs `cmd` with `input` on its stdin (closed when `None`), killing it after `deadline`;
/// returns its output whatever the exit status. `what` names it in failure messages.
pub fn run_with_input(
    cmd: &mut Command,
    input: Option<&[u8]>,
    deadline: Duration,
    what: &str,
) -> Output {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("run {what}: {e}"));
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().expect("child stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = stdin.write_all(&input);
        })
    });
    let out = wait_with_deadline(&mut child, deadline, what);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    out
}

/// Lower-case hex SHA-256 of the file at `path`, read in pieces.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    let mut file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex(&hasher.finalize())
}

impl Gateway {
    /// Starts `lftp -c` like [`Gateway::lftp_with`] without waiting for it (for a transfer
    /// to be interrupted); stdout and stderr are discarded.
    pub fn lftp_spawn(&self, settings: &str, user: &str, password: &str, commands: &str) -> Child {
        self.lftp_command(settings, user, password, commands)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run lftp (apt-get install lftp)")
    }
}

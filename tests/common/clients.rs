//! FTP clients the tests drive the gateway with: Python's ftplib through
//! `tests/clients/ftp_ops.py` (a list of operations in, one result per operation out), lftp and
//! curl.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::Gateway;
use super::data::unhex;
use super::process::{require_tool, wait_with_deadline};

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
        json!([
            "stor",
            cmd,
            format!("hex:{}", crate::common::data::hex(data)),
            rest
        ])
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

/// Asserts the reply of `r` starts with `code` (e.g. "250").
pub fn assert_code(r: &OpResult, code: &str) {
    assert!(
        r.reply().starts_with(code),
        "ftplib {}: expected a {code} reply, got {:#}",
        r.op,
        r.raw
    );
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
    run_ftplib_in(None, addr, options, ops)
}

/// [`run_ftplib_with`] inside the network namespace `ns` when given (see [`super::netns`]).
pub fn run_ftplib_in(
    ns: Option<&str>,
    addr: SocketAddr,
    options: Value,
    ops: &[Value],
) -> Vec<OpResult> {
    let mut spec = json!({
        "host": addr.ip().to_string(),
        "port": addr.port(),
        "timeout": 60,
        "ops": ops,
    });
    if let (Some(spec), Some(options)) = (spec.as_object_mut(), options.as_object()) {
        spec.extend(options.clone());
    }
    let python = require_tool("python3", "python3");
    let mut cmd = match ns {
        Some(ns) => super::netns::command_in(ns, python),
        None => Command::new(python),
    };
    let mut child = cmd
        .arg(ftp_ops_script())
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 tests/clients/ftp_ops.py");
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
    let mut child = Command::new(require_tool("curl", "curl"))
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

/// ftplib and lftp sessions on a gateway.
impl Gateway {
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
            .expect("run lftp");
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
        let mut command = Command::new(require_tool("lftp", "lftp"));
        command.arg("-c").arg(script).stdin(Stdio::null());
        command
    }
}

impl Gateway {
    /// Starts `lftp -c` like [`Gateway::lftp_with`] without waiting for it (for a transfer
    /// to be interrupted); stdout and stderr are discarded.
    pub fn lftp_spawn(&self, settings: &str, user: &str, password: &str, commands: &str) -> Child {
        self.lftp_command(settings, user, password, commands)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run lftp")
    }
}

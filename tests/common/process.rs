//! One wrapper for every long-running child of the tests (`qftpd sim`, `qftpd serve`, and any
//! other program a test keeps running): spawn it with both outputs drained in the background
//! and kept for assertions, wait for readiness from a line it prints (never a sleep), read its
//! peak RSS, signal it, and kill it when dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a child may take to say it is ready (a cold debug build can be slow).
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// The `qftpd` binary under test.
pub fn qftpd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qftpd"))
}

/// `qftpd` with the `QFTPD_*` variables of the test environment removed: a developer's shell
/// must not add configuration keys to what a test gives.
pub fn qftpd_command() -> Command {
    let mut cmd = Command::new(qftpd_path());
    without_qftpd_env(&mut cmd);
    cmd
}

/// Removes the `QFTPD_*` variables of the test environment from `cmd`.
pub fn without_qftpd_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("QFTPD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Which output of the child announces readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Picks the readiness token (e.g. an address) out of one output line, if the line has one.
pub type ReadyFn = fn(&str) -> Option<String>;

/// A running child process with its output drained and kept. Killed when dropped.
pub struct Process {
    what: String,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    drains: Vec<JoinHandle<()>>,
    ready: mpsc::Receiver<String>,
}

impl Process {
    /// Spawns `cmd` (stdin closed, both outputs piped and drained); lines of `ready_on` that
    /// `ready` finds a token in are handed to [`Process::wait_ready`]. `what` names the child
    /// in failure messages.
    pub fn spawn(cmd: &mut Command, what: &str, ready_on: Stream, ready: ReadyFn) -> Process {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let (tx, rx) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("child stdout");
        let err = child.stderr.take().expect("child stderr");
        let (out_tx, err_tx) = match ready_on {
            Stream::Stdout => (Some(tx), None),
            Stream::Stderr => (None, Some(tx)),
        };
        let drains = vec![
            drain(out, Arc::clone(&stdout), out_tx, ready),
            drain(err, Arc::clone(&stderr), err_tx, ready),
        ];
        Process {
            what: what.to_owned(),
            child,
            stdout,
            stderr,
            drains,
            ready: rx,
        }
    }

    /// Spawns `cmd` like [`Process::spawn`], for a child whose readiness the test sees in
    /// another way (or does not need).
    pub fn spawn_plain(cmd: &mut Command, what: &str) -> Process {
        Process::spawn(cmd, what, Stream::Stderr, |_| None)
    }

    /// Waits (at most [`START_DEADLINE`]) for `count` readiness tokens, in the order printed.
    /// On failure kills the child and panics with its status, `context` and what it wrote.
    pub fn wait_ready(&mut self, count: usize, context: &str) -> Vec<String> {
        let deadline = Instant::now() + START_DEADLINE;
        let mut tokens = Vec::with_capacity(count);
        while tokens.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.ready.recv_timeout(left) {
                Ok(token) => tokens.push(token),
                Err(e) => {
                    let _ = self.child.kill();
                    let status = self.child.wait();
                    self.join_drains();
                    panic!(
                        "{} said it was ready {} of {count} time(s) ({e}); exit status \
                         {status:?}; {context}\nstderr:\n{}",
                        self.what,
                        tokens.len(),
                        self.stderr_log()
                    );
                }
            }
        }
        tokens
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote on stdout so far.
    pub fn stdout_log(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// What the child wrote on stderr so far.
    pub fn stderr_log(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Peak resident set size (`VmHWM` of `/proc/<pid>/status`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_else(|e| panic!("read /proc/<pid>/status of {}: {e}", self.what));
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmHWM line in /proc/<pid>/status")
    }

    /// Sends a signal (`HUP`, `TERM`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} {} failed", self.what);
    }

    /// The exit status if the child has ended (its output is then complete).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self
            .child
            .try_wait()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.what))?;
        self.join_drains();
        Some(status)
    }

    /// Waits for the child to exit by itself, however long it takes; returns its status (its
    /// output is then complete).
    pub fn wait(&mut self) -> ExitStatus {
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.what));
        self.join_drains();
        status
    }

    /// Waits for the child to exit by itself (at most `deadline`) and returns its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "{} did not exit within {deadline:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the child and returns everything it wrote on stderr (complete: the pipe is
    /// drained to its end).
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_drains();
        self.stderr_log()
    }

    fn join_drains(&mut self) {
        for handle in self.drains.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_drains();
    }
}

/// Reads `from` line by line into `log`; sends each readiness token found while someone
/// listens, and keeps draining so the pipe never fills.
fn drain(
    from: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<u8>>>,
    tx: Option<mpsc::Sender<String>>,
    ready: ReadyFn,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut tx = tx;
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            log.lock().unwrap().extend_from_slice(&line);
            if let Some(sender) = &tx {
                let text = strip_ansi(&String::from_utf8_lossy(&line));
                if let Some(token) = ready(&text)
                    && sender.send(token).is_err()
                {
                    tx = None;
                }
            }
        }
    })
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
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

/// The address after `listening on ` in a log line (a readiness token for `qftpd serve`).
pub fn listening_addr(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',')
        .collect();
    token
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.to_string())
}

/// Waits for `child`, killing it after `deadline`; collects its output. `what` names it in
/// failure messages.
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
    let started = Instant::now();
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

/// The path of the program `program` on `PATH`. A test that needs an external tool never
/// skips: when it is missing this fails, naming the package (`package`, Debian unless it says
/// otherwise) that `./run-tests` installs.
pub fn require_tool(program: &str, package: &str) -> PathBuf {
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

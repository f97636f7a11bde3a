//! The service's events in a real journal: `systemd-journald` runs in a private mount namespace
//! (tmpfs on /run/systemd/journal and /run/log, so the host is untouched), `qftpd serve` with
//! `[log] target = "journald"` runs in the same namespace in front of a `qftpd sim`, curl logs
//! in (once with a wrong password), uploads and downloads, and `journalctl -o json` shows one
//! event per login and per transfer with its fields, and neither password. Also: `target =
//! "auto"` follows `JOURNAL_STREAM` only when it names the gateway's own stderr, and `target =
//! "journald"` without a journal falls back to stderr with one warning.
//!
//! Needs `unshare`, `nsenter`, `journalctl`, `/lib/systemd/systemd-journald` and curl: without
//! one of them a test fails, naming its package. Needs root (mounts) and mount namespaces too:
//! without them each test says `skipped: …` and passes.
//! Readiness is polled with a deadline (socket file, TCP connect, log lines), never slept for.
mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Sim;
use common::{curl, free_port, require_tool, url_encode};
use serde_json::Value;

const JOURNALD: &str = "/lib/systemd/systemd-journald";
const USER: &str = "alice";
const PASSWORD: &str = "Good-Pass-7f3a9c";
const WRONG_PASSWORD: &str = "Wrong-Pass-b81e44";
/// How long journald, the gateway and the journal entries may take to appear.
const DEADLINE: Duration = Duration::from_secs(30);

/// Children killed (in reverse order of start) and reaped when the test ends, passing or not.
#[derive(Default)]
struct Children(Vec<Child>);

impl Children {
    fn push(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.0.push(child);
        pid
    }

    /// The exit status of the child with `pid`, if it has ended.
    fn exited(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        let child = self.0.iter_mut().find(|c| c.id() == pid)?;
        child.try_wait().ok().flatten()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Why this machine cannot run the test, if it cannot (it is not root). A missing program
/// fails the test instead, naming its package.
fn missing_prerequisite() -> Option<String> {
    for (tool, package) in [
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("journalctl", "systemd"),
        ("curl", "curl"),
    ] {
        require_tool(tool, package);
    }
    assert!(
        Path::new(JOURNALD).exists(),
        "{JOURNALD} is missing: ./run-tests installs it (Debian package systemd; or apt-get \
         install systemd)"
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("not root (mount namespaces and tmpfs mounts need root)".into());
    }
    None
}

/// Polls `probe` until it gives a value; panics with `what` and `context()` after [`DEADLINE`].
fn wait_for<T>(
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < until,
            "{what}: not within {DEADLINE:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Every entry of the namespace's journal (`journalctl -o json`, one object per line).
fn journal(ns_pid: u32) -> Vec<BTreeMap<String, Value>> {
    let out = Command::new(common::require_tool("nsenter", "util-linux"))
        .args(["-t", &ns_pid.to_string(), "-m", "--"])
        .args([
            "journalctl",
            "-D",
            "/run/log/journal",
            "--no-pager",
            "-o",
            "json",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run journalctl");
    assert!(
        out.status.success(),
        "journalctl failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}")))
        .collect()
}

/// A field as text; journalctl shows non-UTF-8 or binary values as arrays of bytes.
fn field(entry: &BTreeMap<String, Value>, name: &str) -> Option<String> {
    match entry.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(bytes) => Some(
            String::from_utf8_lossy(
                &bytes
                    .iter()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Vec<u8>>(),
            )
            .into_owned(),
        ),
        other => Some(other.to_string()),
    }
}

fn show(entries: &[&BTreeMap<String, Value>]) -> String {
    entries
        .iter()
        .map(|e| {
            e.iter()
                .filter(|(k, _)| !k.starts_with("__") && !k.starts_with('_'))
                .map(|(k, _)| format!("{k}={}", field(e, k).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one entry `pick` selects, asserting there is exactly one.
fn only<'a>(
    entries: &[&'a BTreeMap<String, Value>],
    what: &str,
    pick: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> &'a BTreeMap<String, Value> {
    let found: Vec<_> = entries.iter().copied().filter(|e| pick(e)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {what} event; qftpd's entries:\n{}",
        show(entries)
    );
    found[0]
}

fn assert_fields(entry: &BTreeMap<String, Value>, what: &str, want: &[(&str, &str)]) {
    for (name, value) in want {
        assert_eq!(
            field(entry, name).as_deref(),
            Some(*value),
            "{what}: field {name}; entry:\n{}",
            show(&[entry])
        );
    }
}

/// A temporary directory named by `prefix` and a journald in a namespace of its own (see
/// [`start_journald`]): the directory, the children to end first, the namespace's pid; `None`,
/// said as `skipped: WHAT: why`, when journald cannot run here.
fn journald_in_temp_dir(what: &str, prefix: &str) -> Option<(tempfile::TempDir, Children, u32)> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    let mut children = Children::default();
    match start_journald(&mut children, dir.path()) {
        Ok(ns_pid) => Some((dir, children, ns_pid)),
        Err(why) => {
            println!("skipped: {what}: {why}");
            None
        }
    }
}

/// Starts `systemd-journald` in a new private mount namespace (tmpfs on /run/systemd/journal,
/// /run/log and /var/log/journal, so nothing reaches the host's journal) and waits for its
/// socket; returns the pid that holds the namespace, or why no namespace can be made here.
fn start_journald(children: &mut Children, dir: &Path) -> Result<u32, String> {
    let log = dir.join("journald.log");
    let script = "set -e
        mkdir -p /run/systemd/journal /run/log
        mount -t tmpfs -o mode=0755 tmpfs /run/systemd/journal
        mount -t tmpfs -o mode=0755 tmpfs /run/log
        if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
        exec /lib/systemd/systemd-journald";
    let file = File::create(&log).expect("journald log");
    let ns_pid = children.push(
        Command::new(common::require_tool("unshare", "util-linux"))
            .args(["-m", "--propagation", "private", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("journald log"))
            .stderr(file)
            .spawn()
            .expect("spawn unshare"),
    );
    // Seen from here through the namespace's root.
    let socket = format!("/proc/{ns_pid}/root/run/systemd/journal/socket");
    let ended = wait_for(
        "the journald socket",
        || {
            if children.exited(ns_pid).is_some() {
                return Some(true);
            }
            std::fs::metadata(&socket)
                .ok()
                .filter(|m| m.file_type().is_socket())
                .map(|_| false)
        },
        || read_lossy(&log),
    );
    if !ended {
        return Ok(ns_pid);
    }
    let text = read_lossy(&log);
    assert!(
        text.contains("unshare failed") || text.contains("Operation not permitted"),
        "journald (in unshare -m) exited early:\n{text}"
    );
    Err(format!("no mount namespace here: {}", text.trim()))
}

/// Writes a gateway configuration listening on `listen`, logging to `target`.
fn write_config(dir: &Path, name: &str, listen: &str, qumulo: &str, target: &str) -> PathBuf {
    let passive_low = 49000 + (std::process::id() * 7 % 19) * 50;
    let text = format!(
        "[ftp]\nlisten = \"{listen}\"\npassive-ports = \"{passive_low}-{}\"\n\
         [qumulo]\n{qumulo}\n[log]\nlevel = \"info,libunftp=warn\"\ntarget = \"{target}\"\n",
        passive_low + 49,
    );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// Starts `PREFIX… qftpd serve --config CONFIG` (the prefix enters or makes the namespace and
/// execs, so the pid is the gateway's) with none of the test's logging, systemd or `QFTPD_*`
/// variables, plus `env`; stderr goes to `stderr`.
fn spawn_gateway(
    children: &mut Children,
    prefix: &[&str],
    config: &Path,
    env: &[(&str, &str)],
    stderr: File,
) -> u32 {
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .arg(common::process::qftpd_path())
        .arg("serve")
        .arg("--config")
        .arg(config);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("QFTPD_")
            || k.starts_with("LISTEN_")
            || [
                "RUST_LOG",
                "JOURNAL_STREAM",
                "NOTIFY_SOCKET",
                "WATCHDOG_USEC",
            ]
            .contains(&&*k)
        {
            cmd.env_remove(key);
        }
    }
    children.push(
        cmd.envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn qftpd serve"),
    )
}

/// A gateway logging to a journald of its own (in a mount namespace of the test's) over a
/// simulator, its FTP port answering. Fields drop in order: the processes, then their files.
struct JournaledGateway {
    children: Children,
    dir: tempfile::TempDir,
    _sim: Sim,
    ns_pid: u32,
    pid: u32,
    port: u16,
    stderr_path: PathBuf,
}

impl JournaledGateway {
    /// `None`, said as `skipped: WHAT: why`, when journald cannot run here; `prefix` names the
    /// temporary directory.
    fn start(what: &str, prefix: &str) -> Option<JournaledGateway> {
        let sim = Sim::start(&[(USER, PASSWORD)], None, &[]);
        let (dir, mut children, ns_pid) = journald_in_temp_dir(what, prefix)?;
        // The gateway, in the same namespace, logging to journald only, on a fixed free port.
        let port = free_port();
        let qumulo = format!(
            "url = \"{}\"\nca-file = \"{}\"",
            sim.url,
            sim.cert_pem_path.display()
        );
        let config = write_config(
            dir.path(),
            "qftpd.toml",
            &format!("127.0.0.1:{port}"),
            &qumulo,
            "journald",
        );
        let stderr_path = dir.path().join("qftpd.stderr");
        let ns = ns_pid.to_string();
        let pid = spawn_gateway(
            &mut children,
            &nsenter(&ns),
            &config,
            &[],
            File::create(&stderr_path).expect("gateway stderr"),
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let exited = wait_for(
            "the gateway's FTP port",
            || match children.exited(pid) {
                Some(status) => Some(Some(status)),
                None => TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    .ok()
                    .map(|_| None),
            },
            || read_lossy(&stderr_path),
        );
        assert!(
            exited.is_none(),
            "the gateway exited ({exited:?}); stderr:\n{}",
            read_lossy(&stderr_path)
        );
        Some(JournaledGateway {
            children,
            dir,
            _sim: sim,
            ns_pid,
            pid,
            port,
            stderr_path,
        })
    }
}

/// `nsenter` into the mount namespace of `ns_pid`.
fn nsenter(ns_pid: &str) -> [&str; 5] {
    ["nsenter", "-t", ns_pid, "-m", "--"]
}

/// Entries of the gateway with `pid`.
fn entries_of(all: &[BTreeMap<String, Value>], pid: u32) -> Vec<&BTreeMap<String, Value>> {
    let pid = pid.to_string();
    all.iter()
        .filter(|e| {
            field(e, "SYSLOG_IDENTIFIER").as_deref() == Some("qftpd")
                && field(e, "_PID").as_deref() == Some(pid.as_str())
        })
        .collect()
}

/// Whether `entries` hold the `listening on` event.
fn has_listening(entries: &[&BTreeMap<String, Value>]) -> bool {
    entries
        .iter()
        .any(|e| field(e, "MESSAGE").is_some_and(|m| m.starts_with("listening on ")))
}

/// Runs the FTP traffic: a login with the wrong password, an upload and a download (each a
/// login with the right one). Returns the file's bytes.
fn ftp_traffic(port: u16, dir: &Path, name: &str) -> Vec<u8> {
    let base = format!("ftp://127.0.0.1:{port}");
    let wrong = format!("{USER}:{WRONG_PASSWORD}");
    let right = format!("{USER}:{PASSWORD}");
    let out = curl(&["--user", &wrong, &format!("{base}/")], 60);
    assert!(!out.status.success(), "login with a wrong password worked");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let src = dir.join("upload.bin");
    std::fs::write(&src, &data).expect("write upload");
    let url = format!("{base}/{}", url_encode(name));
    for (what, args) in [
        ("upload", ["-T", src.to_str().unwrap()]),
        (
            "download",
            ["-o", dir.join("download.bin").to_str().unwrap()],
        ),
    ] {
        let out = curl(&[&["--user", &right][..], &args, &[&url]].concat(), 60);
        assert!(
            out.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(std::fs::read(dir.join("download.bin")).unwrap(), data);
    data
}

#[test]
fn events_reach_the_journal_with_their_fields() {
    if let Some(why) = missing_prerequisite() {
        println!("skipped: journald end-to-end test: {why}");
        return;
    }
    let Some(JournaledGateway {
        children: _children,
        _sim,
        dir,
        ns_pid,
        pid,
        port,
        stderr_path,
        ..
    }) = JournaledGateway::start("journald end-to-end test", "qftpd-journald-")
    else {
        return;
    };

    let name = "journald-upload.bin";
    let data = ftp_traffic(port, dir.path(), name);

    // Wait until both transfers are in the journal (journald works asynchronously).
    let all = wait_for(
        "upload and download events in the journal",
        || {
            let all = journal(ns_pid);
            let directions: Vec<String> = entries_of(&all, pid)
                .iter()
                .filter_map(|e| field(e, "DIRECTION"))
                .collect();
            ["upload", "download"]
                .iter()
                .all(|d| directions.iter().any(|x| x == d))
                .then_some(all)
        },
        || {
            format!(
                "qftpd's entries:\n{}\ngateway stderr:\n{}",
                show(&entries_of(&journal(ns_pid), pid)),
                read_lossy(&stderr_path)
            )
        },
    );
    let mine = entries_of(&all, pid);
    println!("qftpd's journal entries:\n{}", show(&mine));
    let stderr = read_lossy(&stderr_path);
    assert!(stderr.is_empty(), "the gateway wrote on stderr:\n{stderr}");
    assert!(
        has_listening(&mine),
        "no `listening on` entry:\n{}",
        show(&mine)
    );
    assert_login_events(&mine);
    assert_transfer_events(&mine, name, data.len());
    assert_libunftp_quiet(&mine);
    assert_no_passwords(&all);
}

fn assert_login_events(mine: &[&BTreeMap<String, Value>]) {
    // The failed login: a warning naming the user and the client.
    let failed = only(mine, "failed login", |e| {
        field(e, "MESSAGE").is_some_and(|m| m.starts_with("login failed"))
    });
    assert_fields(
        failed,
        "failed login",
        &[("PRIORITY", "4"), ("USER", USER), ("CLIENT", "127.0.0.1")],
    );
    // Good logins (curl logs in once per transfer): notice or info, with user and client.
    let logins: Vec<_> = mine
        .iter()
        .filter(|e| field(e, "MESSAGE").as_deref() == Some("login"))
        .collect();
    assert_eq!(logins.len(), 2, "one login per curl run:\n{}", show(mine));
    for login in logins {
        assert_fields(login, "login", &[("USER", USER), ("CLIENT", "127.0.0.1")]);
        let priority = field(login, "PRIORITY").unwrap_or_default();
        assert!(
            priority == "5" || priority == "6",
            "login priority {priority}"
        );
    }
}

/// One transfer event per transfer, with every field of an xferlog line.
fn assert_transfer_events(mine: &[&BTreeMap<String, Value>], name: &str, len: usize) {
    let bytes = len.to_string();
    for direction in ["upload", "download"] {
        let transfer = only(mine, direction, |e| {
            field(e, "DIRECTION").as_deref() == Some(direction)
        });
        assert_fields(
            transfer,
            direction,
            &[
                ("USER", USER),
                ("PATH", &format!("/{name}")),
                ("BYTES", &bytes),
                ("OFFSET", "0"),
                ("RESULT", "ok"),
            ],
        );
        let duration = field(transfer, "DURATION_MS").unwrap_or_default();
        assert!(
            duration.parse::<u64>().is_ok(),
            "{direction} DURATION_MS={duration:?}"
        );
        let priority = field(transfer, "PRIORITY").unwrap_or_default();
        assert!(
            priority == "5" || priority == "6",
            "{direction} priority {priority}"
        );
        let message = field(transfer, "MESSAGE").unwrap_or_default();
        assert!(
            message.contains(direction) && message.contains(name) && message.contains(&bytes),
            "{direction} MESSAGE={message:?}"
        );
    }
}

/// libunftp's records come through the `log` bridge (`TARGET=log`, `LOG_TARGET=libunftp::…`):
/// with `libunftp=warn` named in the level, its failed-login warning shows the bridge works,
/// and nothing of it below warning gets through. (By default it is kept to errors; the filter
/// composition is unit-tested in `logging`.)
fn assert_libunftp_quiet(mine: &[&BTreeMap<String, Value>]) {
    assert!(
        mine.iter()
            .any(|e| field(e, "LOG_TARGET").is_some_and(|t| t.starts_with("libunftp"))),
        "libunftp's failed-login warning is missing:\n{}",
        show(mine)
    );
    for e in mine {
        let target = field(e, "LOG_TARGET")
            .or_else(|| field(e, "TARGET"))
            .unwrap_or_default();
        let priority: u8 = field(e, "PRIORITY")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        assert!(
            !(target.starts_with("libunftp") && priority > 4),
            "a libunftp entry below warning got through:\n{}",
            show(&[e])
        );
    }
}

/// Neither password anywhere in the journal (any identifier, any field).
fn assert_no_passwords(all: &[BTreeMap<String, Value>]) {
    for entry in all {
        for name in entry.keys() {
            let value = field(entry, name).unwrap_or_default();
            for password in [PASSWORD, WRONG_PASSWORD] {
                assert!(
                    !value.contains(password) && !name.contains(password),
                    "a password is in the journal: {name}={value}"
                );
            }
        }
    }
}

#[test]
fn auto_target_follows_journal_stream() {
    if let Some(why) = missing_prerequisite() {
        println!("skipped: journald auto-target test: {why}");
        return;
    }
    let Some((dir, mut children, ns_pid)) =
        journald_in_temp_dir("journald auto-target test", "qftpd-journald-auto-")
    else {
        return;
    };
    // No cluster is needed to start; the gateways listen on port 0.
    let config = write_config(
        dir.path(),
        "auto.toml",
        "127.0.0.1:0",
        "url = \"https://127.0.0.1:9\"",
        "auto",
    );
    let ns = ns_pid.to_string();
    // A: stderr is the stream JOURNAL_STREAM names, as under systemd → the journal.
    let a_path = dir.path().join("a.stderr");
    let a_file = File::create(&a_path).expect("a.stderr");
    let a_meta = a_file.metadata().expect("a.stderr metadata");
    let a_stream = format!("{}:{}", a_meta.dev(), a_meta.ino());
    let a = spawn_gateway(
        &mut children,
        &nsenter(&ns),
        &config,
        &[("JOURNAL_STREAM", &a_stream)],
        a_file,
    );
    // B: inherited JOURNAL_STREAM naming another file (A's stderr) → stderr.
    let b_path = dir.path().join("b.stderr");
    let b = spawn_gateway(
        &mut children,
        &nsenter(&ns),
        &config,
        &[("JOURNAL_STREAM", &a_stream)],
        File::create(&b_path).expect("b.stderr"),
    );
    let context = || {
        format!(
            "A stderr:\n{}\nB stderr:\n{}\njournal:\n{}",
            read_lossy(&a_path),
            read_lossy(&b_path),
            show(&entries_of(&journal(ns_pid), a))
        )
    };
    wait_for(
        "A's `listening on` in the journal",
        || has_listening(&entries_of(&journal(ns_pid), a)).then_some(()),
        context,
    );
    wait_for(
        "B's `listening on` on stderr",
        || read_lossy(&b_path).contains("listening on").then_some(()),
        context,
    );
    assert_eq!(read_lossy(&a_path), "", "A wrote on stderr");
    assert!(
        entries_of(&journal(ns_pid), b).is_empty(),
        "B logged to the journal: {}",
        context()
    );
    assert!(children.exited(a).is_none() && children.exited(b).is_none());
}

#[test]
fn journald_target_without_journald_falls_back_to_stderr() {
    if let Some(why) = missing_prerequisite() {
        println!("skipped: journald fallback test: {why}");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("qftpd-journald-none-")
        .tempdir()
        .expect("temp dir");
    let mut children = Children::default();
    let config = write_config(
        dir.path(),
        "none.toml",
        "127.0.0.1:0",
        "url = \"https://127.0.0.1:9\"",
        "journald",
    );
    // A namespace whose /run/systemd/journal is empty: no journald socket, whatever the host has.
    let script = "set -e
        mkdir -p /run/systemd/journal
        mount -t tmpfs -o mode=0755 tmpfs /run/systemd/journal
        exec \"$0\" \"$@\"";
    let stderr_path = dir.path().join("none.stderr");
    let pid = spawn_gateway(
        &mut children,
        &[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        ],
        &config,
        &[],
        File::create(&stderr_path).expect("none.stderr"),
    );
    let stderr = wait_for(
        "`listening on` on stderr",
        || {
            let text = read_lossy(&stderr_path);
            (text.contains("listening on") || children.exited(pid).is_some()).then_some(text)
        },
        || read_lossy(&stderr_path),
    );
    if !stderr.contains("listening on")
        && (stderr.contains("unshare failed") || stderr.contains("Operation not permitted"))
    {
        println!("skipped: journald fallback test: no mount namespace here: {stderr}");
        return;
    }
    assert!(
        stderr.contains("listening on"),
        "the gateway ended:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("journald is not reachable").count(),
        1,
        "one warning about the missing journal:\n{stderr}"
    );
    let warning = stderr.find("journald is not reachable").unwrap();
    assert!(
        stderr[..warning].contains("WARN") && warning < stderr.find("listening on").unwrap(),
        "the warning comes first, as a warning:\n{stderr}"
    );
}

/// The fail2ban filter shipped in packaging/fail2ban, run by `fail2ban-regex` on the journal of
/// a real gateway (its `systemd` backend, as a jail reads it): it finds the one failed login
/// with the client's address, and neither the good logins nor the other warnings (libunftp's
/// own failed-login warning among them). The entries are matched by `SYSLOG_IDENTIFIER`, as
/// the test's gateway is no systemd unit; the filter's `_SYSTEMD_UNIT` match is checked as text.
#[test]
fn the_fail2ban_filter_finds_failed_logins_and_nothing_else() {
    if let Some(why) = missing_prerequisite() {
        println!("skipped: fail2ban filter test: {why}");
        return;
    }
    require_tool("fail2ban-regex", "fail2ban");
    let python = std::fs::read_to_string(require_tool("fail2ban-regex", "fail2ban"))
        .ok()
        .and_then(|s| s.lines().next()?.strip_prefix("#!").map(str::to_owned))
        .unwrap_or_else(|| "python3".into());
    let has_journal = Command::new(python.trim())
        .args(["-c", "import systemd.journal"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_journal,
        "fail2ban's systemd backend needs python3-systemd: ./run-tests installs it (or apt-get \
         install python3-systemd)"
    );
    let filter =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/fail2ban/filter.d/qftpd.conf");
    let filter_text = std::fs::read_to_string(&filter).expect("read the fail2ban filter");
    assert!(
        filter_text
            .lines()
            .any(|l| l.trim() == "journalmatch = _SYSTEMD_UNIT=qftpd.service"),
        "the filter reads qftpd.service's entries"
    );

    let Some(JournaledGateway {
        children: _children,
        _sim,
        dir,
        ns_pid,
        pid,
        port,
        ..
    }) = JournaledGateway::start("fail2ban filter test", "qftpd-fail2ban-")
    else {
        return;
    };
    let ns = ns_pid.to_string();
    ftp_traffic(port, dir.path(), "fail2ban.bin");
    wait_for(
        "the failed login and the transfers in the journal",
        || {
            let all = journal(ns_pid);
            let mine = entries_of(&all, pid);
            (mine
                .iter()
                .filter(|e| field(e, "DIRECTION").is_some())
                .count()
                == 2)
                .then_some(())
        },
        || show(&entries_of(&journal(ns_pid), pid)),
    );
    let all = journal(ns_pid);
    let mine = entries_of(&all, pid);
    let failed = only(&mine, "failed login", |e| {
        field(e, "MESSAGE").is_some_and(|m| m.starts_with("login failed"))
    });
    assert_eq!(
        field(failed, "MESSAGE").as_deref(),
        Some("login failed: wrong user name or password from 127.0.0.1"),
        "the address is in the message, where fail2ban looks"
    );

    // The filter as installed: filter.d/ with fail2ban's common.conf beside it.
    let conf = dir.path().join("fail2ban");
    std::fs::create_dir_all(conf.join("filter.d")).expect("create fail2ban dir");
    std::fs::write(conf.join("filter.d/qftpd.conf"), &filter_text).expect("copy filter");
    std::fs::copy(
        "/etc/fail2ban/filter.d/common.conf",
        conf.join("filter.d/common.conf"),
    )
    .expect("copy fail2ban's common.conf (Debian package fail2ban)");
    let run = |extra: &[&str]| {
        let out = Command::new("nsenter")
            .args(["-t", &ns, "-m", "--", "fail2ban-regex", "-c"])
            .arg(&conf)
            .args(["-m", &format!("SYSLOG_IDENTIFIER=qftpd _PID={pid}")])
            .args(extra)
            .args(["systemd-journal", "qftpd"])
            .stdin(Stdio::null())
            .output()
            .expect("run fail2ban-regex");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "fail2ban-regex failed ({}): {text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let ips = run(&["-o", "ip"]);
    assert_eq!(
        ips.lines().collect::<Vec<_>>(),
        ["127.0.0.1"],
        "one failure, from the client; qftpd's entries:\n{}",
        show(&mine)
    );
    let summary = run(&[]);
    let lines = summary
        .lines()
        .find(|l| l.starts_with("Lines: "))
        .unwrap_or_else(|| panic!("no summary from fail2ban-regex:\n{summary}"));
    assert!(
        lines.contains(&format!("{} lines, 0 ignored, 1 matched", mine.len())),
        "fail2ban-regex read every entry of the gateway and matched one: {lines}\n{}",
        show(&mine)
    );
}

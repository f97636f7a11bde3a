//! The packaged systemd units, `systemd/qftpd.socket` and `systemd/qftpd.service` (and the
//! opt-in `systemd/qftpd-metrics.socket`), checked with
//! the host's `systemd-analyze` (systemd need not be PID 1):
//!
//! - `security --offline`: the service's overall exposure stays at or below [`MAX_EXPOSURE`];
//! - `verify`: both units load without a single complaint, in a temporary root (`--root=`) that
//!   holds the host's standard units, the two units and stubs for the commands they run (the
//!   stub for `/usr/bin/qftpd` runs the binary built by cargo), so neither a missing binary nor
//!   anything installed on the host (drop-ins, an installed qftpd) can hide or cause a problem;
//! - the units' key settings match what the daemon expects (socket name `ftp`, port 21,
//!   `Type=notify`, the packaged binary and configuration paths, the stop timeout).
//!
//! `systemd-analyze verify` exits 0 even for an unknown key or an unparsable value (it only
//! logs "…, ignoring"), so the tests assert on stderr as well as on the exit status, and two
//! control tests check that a planted typo and a missing binary are indeed reported.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

const SOCKET: &str = "qftpd.socket";
const SERVICE: &str = "qftpd.service";
const METRICS_SOCKET: &str = "qftpd-metrics.socket";
/// Highest acceptable "Overall exposure level" of `systemd-analyze security` (0.0–10.0).
const MAX_EXPOSURE: f64 = 2.0;
/// Where units live in the temporary roots (as installed by the packages).
const UNIT_DIR: &str = "usr/lib/systemd/system";
/// The packaged binary.
const BINARY: &str = "/usr/bin/qftpd";

fn unit_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name)
}

fn unit_text(name: &str) -> String {
    let path = unit_file(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs `systemd-analyze ARGS` with an environment that cannot silence or redirect its
/// messages; fails clearly when it is not installed.
fn analyze<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(common::require_tool("systemd-analyze", "systemd"));
    cmd.args(args)
        .env_remove("SYSTEMD_LOG_LEVEL")
        .env_remove("SYSTEMD_LOG_TARGET")
        .env_remove("SYSTEMD_UNIT_PATH")
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .stdin(Stdio::null());
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run systemd-analyze: {e}"))
}

fn show(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One `Key=value` line of a unit file.
struct Entry {
    section: String,
    key: String,
    value: String,
}

/// Parses a unit file: sections, `Key=value` lines; comments and blank lines are skipped.
fn parse_unit(text: &str) -> Vec<Entry> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a Key=value line: {line:?}"));
        entries.push(Entry {
            section: section.clone(),
            key: key.trim().to_string(),
            value: value.trim().to_string(),
        });
    }
    entries
}

/// Every value of `key` in `section`, in order.
fn values<'a>(entries: &'a [Entry], section: &str, key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|e| e.section == section && e.key == key)
        .map(|e| e.value.as_str())
        .collect()
}

/// The single value of `key` in `section`.
fn value<'a>(entries: &'a [Entry], section: &str, key: &str) -> &'a str {
    match values(entries, section, key).as_slice() {
        [v] => v,
        other => panic!("[{section}] {key}= should be set exactly once, found {other:?}"),
    }
}

/// A value such as `30s`, `2min` or `30` in seconds.
fn seconds(v: &str) -> u64 {
    let parsed = if let Some(n) = v.strip_suffix("min") {
        n.trim().parse::<u64>().map(|m| m * 60)
    } else {
        v.strip_suffix('s').unwrap_or(v).trim().parse::<u64>()
    };
    parsed.unwrap_or_else(|_| panic!("not a plain time span in seconds or minutes: {v:?}"))
}

/// The commands (first words) of the service's `Exec*=` lines, without their `-@:+!` prefixes.
fn exec_commands(service: &str) -> Vec<String> {
    parse_unit(service)
        .iter()
        .filter(|e| e.section == "Service" && e.key.starts_with("Exec"))
        .filter_map(|e| e.value.split_whitespace().next())
        .map(|w| {
            w.trim_start_matches(['-', '@', ':', '+', '!', '|'])
                .to_string()
        })
        .collect()
}

fn write_executable(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Copies a directory tree, keeping symbolic links as they are (masked units point to
/// /dev/null, aliases and `.wants/` entries are relative links).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The host's directory of packaged units.
fn host_unit_dir() -> PathBuf {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(PathBuf::from)
        .find(|d| d.join("sysinit.target").exists())
        .expect("no systemd units on this host (no sysinit.target in /usr/lib/systemd/system or /lib/systemd/system): install systemd")
}

/// What to put into a temporary root.
struct RootSpec<'a> {
    socket: &'a str,
    service: &'a str,
    /// Copy the host's standard units (sysinit.target, sockets.target, …).
    host_units: bool,
    /// Provide the commands of the service's `Exec*=` lines.
    commands: bool,
}

/// A temporary root holding the units in `usr/lib/systemd/system` and, as asked, the host's
/// standard units and executable stubs for the service's commands: `/usr/bin/qftpd` runs the
/// binary cargo built, any other command runs the host's own (and is left out, so that
/// verify reports it, when the host lacks it).
fn make_root(spec: &RootSpec) -> TempDir {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join(UNIT_DIR);
    if spec.host_units {
        copy_tree(&host_unit_dir(), &units);
    }
    fs::create_dir_all(&units).unwrap();
    // Replace, never write through, a host copy of the units (it may be a symbolic link).
    for (name, text) in [(SOCKET, spec.socket), (SERVICE, spec.service)] {
        let _ = fs::remove_file(units.join(name));
        fs::write(units.join(name), text).unwrap();
    }
    let _ = fs::remove_file(units.join(METRICS_SOCKET));
    fs::write(units.join(METRICS_SOCKET), unit_text(METRICS_SOCKET)).unwrap();
    if spec.commands {
        for command in exec_commands(spec.service) {
            let target = if command == BINARY {
                common::process::qftpd_path()
            } else {
                let host = PathBuf::from(&command);
                let runnable = fs::metadata(&host)
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false);
                if !runnable {
                    continue;
                }
                host
            };
            let stub = root.path().join(command.trim_start_matches('/'));
            write_executable(
                &stub,
                &format!("#!/bin/sh\nexec '{}' \"$@\"\n", target.display()),
            );
        }
    }
    root
}

/// `systemd-analyze verify` of both units inside `root`.
fn verify(root: &Path) -> Output {
    let mut arg = std::ffi::OsString::from("--root=");
    arg.push(root);
    analyze([
        arg.as_os_str(),
        OsStr::new("verify"),
        OsStr::new(SOCKET),
        OsStr::new(SERVICE),
        OsStr::new(METRICS_SOCKET),
    ])
}

#[test]
fn security_exposure_is_at_most_2() {
    // The unit alone in a temporary root: drop-ins or a qftpd installed on the host must not
    // change the rating.
    let root = make_root(&RootSpec {
        socket: &unit_text(SOCKET),
        service: &unit_text(SERVICE),
        host_units: false,
        commands: false,
    });
    let mut root_arg = std::ffi::OsString::from("--root=");
    root_arg.push(root.path());
    let out = analyze([
        OsStr::new("security"),
        OsStr::new("--offline=true"),
        // Exit status 1 above 2.0 (the threshold is in tenths).
        OsStr::new("--threshold=20"),
        root_arg.as_os_str(),
        OsStr::new(SERVICE),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let marker = format!("Overall exposure level for {SERVICE}:");
    let line = stdout
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no {marker:?} line\n{}", show(&out)));
    let exposure: f64 = line[line.find(&marker).unwrap() + marker.len()..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"));
    println!("{}", line.trim());
    for minus in stdout.lines().filter(|l| l.starts_with('✗')) {
        println!(
            "  {}",
            minus.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    assert!(
        exposure <= MAX_EXPOSURE,
        "{SERVICE}: exposure {exposure} > {MAX_EXPOSURE}\n{}",
        show(&out)
    );
    assert!(
        out.status.success(),
        "systemd-analyze security failed\n{}",
        show(&out)
    );
    // An unknown or unparsable hardening directive is only a warning here: refuse it too.
    assert!(
        out.stderr.is_empty(),
        "systemd-analyze security complained\n{}",
        show(&out)
    );
}

#[test]
fn verify_is_clean() {
    let root = make_root(&RootSpec {
        socket: &unit_text(SOCKET),
        service: &unit_text(SERVICE),
        host_units: true,
        commands: true,
    });
    let out = verify(root.path());
    println!("systemd-analyze verify {SOCKET} {SERVICE}:\n{}", show(&out));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify is not clean\n{}",
        show(&out)
    );
}

#[test]
fn verify_reports_a_misspelled_directive() {
    let service = unit_text(SERVICE);
    let broken = service.replacen("\nNoNewPrivileges=", "\nNoNewPrivilegs=", 1);
    assert_ne!(broken, service, "{SERVICE} has no NoNewPrivileges= line");
    let root = make_root(&RootSpec {
        socket: &unit_text(SOCKET),
        service: &broken,
        host_units: true,
        commands: true,
    });
    let out = verify(root.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unknown key") && stderr.contains("NoNewPrivilegs"),
        "a misspelled directive went unnoticed\n{}",
        show(&out)
    );
}

#[test]
fn verify_reports_a_missing_binary() {
    let root = make_root(&RootSpec {
        socket: &unit_text(SOCKET),
        service: &unit_text(SERVICE),
        host_units: true,
        commands: true,
    });
    fs::remove_file(root.path().join(BINARY.trim_start_matches('/'))).unwrap();
    let out = verify(root.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(BINARY),
        "a missing {BINARY} went unnoticed\n{}",
        show(&out)
    );
}

#[test]
fn socket_is_named_ftp_on_port_21_over_ipv4_and_ipv6() {
    let text = unit_text(SOCKET);
    assert_no_trailing_comments(SOCKET, &text);
    let socket = parse_unit(&text);
    assert_eq!(value(&socket, "Socket", "FileDescriptorName"), "ftp");
    let listen = values(&socket, "Socket", "ListenStream");
    assert!(
        listen.contains(&"0.0.0.0:21"),
        "ListenStream=0.0.0.0:21 missing: {listen:?}"
    );
    // IPv6 clients on a socket of their own, which IPv4 clients never reach.
    assert!(
        listen.contains(&"[::]:21"),
        "ListenStream=[::]:21 missing: {listen:?}"
    );
    assert_eq!(value(&socket, "Socket", "BindIPv6Only"), "ipv6-only");
    for l in &listen {
        assert!(
            l.ends_with(":21") && l.len() > 3,
            "ListenStream={l}: want an explicit address on port 21 (plain \"21\" is dual-stack)"
        );
    }
    let accept = values(&socket, "Socket", "Accept");
    assert!(
        accept.iter().all(|a| matches!(*a, "no" | "false")),
        "qftpd accepts connections itself: Accept= must stay off, found {accept:?}"
    );
}

#[test]
fn metrics_socket_is_named_metrics_on_loopback_for_the_service() {
    let text = unit_text(METRICS_SOCKET);
    assert_no_trailing_comments(METRICS_SOCKET, &text);
    let socket = parse_unit(&text);
    assert_eq!(value(&socket, "Socket", "FileDescriptorName"), "metrics");
    assert_eq!(value(&socket, "Socket", "Service"), SERVICE);
    assert_eq!(
        values(&socket, "Socket", "ListenStream"),
        ["127.0.0.1:9121"]
    );
    let accept = values(&socket, "Socket", "Accept");
    assert!(
        accept.iter().all(|a| matches!(*a, "no" | "false")),
        "qftpd accepts connections itself: Accept= must stay off, found {accept:?}"
    );
    assert_eq!(value(&socket, "Install", "WantedBy"), "sockets.target");
    // Its own unit: the FTP socket's name stays "ftp" for every socket of qftpd.socket.
    let ftp = parse_unit(&unit_text(SOCKET));
    assert_eq!(values(&ftp, "Socket", "FileDescriptorName"), ["ftp"]);
}

#[test]
fn service_runs_the_packaged_binary_as_notify() {
    let text = unit_text(SERVICE);
    assert_no_trailing_comments(SERVICE, &text);
    let service = parse_unit(&text);
    assert_eq!(value(&service, "Service", "Type"), "notify");
    let exec: Vec<&str> = value(&service, "Service", "ExecStart")
        .split_whitespace()
        .collect();
    assert_eq!(
        exec,
        [BINARY, "serve", "--config", qftpd::config::DEFAULT_PATH]
    );
    for key in ["Requires", "After"] {
        assert!(
            values(&service, "Unit", key)
                .iter()
                .any(|v| v.split_whitespace().any(|u| u == SOCKET)),
            "{key}={SOCKET} missing"
        );
    }
    let grace = qftpd::config::FtpConfig::default().shutdown_grace;
    let stop = seconds(value(&service, "Service", "TimeoutStopSec"));
    assert!(
        stop > grace,
        "TimeoutStopSec={stop}s must exceed the default drain of {grace}s"
    );
    assert!(
        values(&service, "Service", "PrivateNetwork")
            .iter()
            .all(|v| matches!(*v, "no" | "false")),
        "FTP opens passive data sockets: PrivateNetwork= must stay off"
    );
}

/// The packaged command line is one the binary accepts: with a configuration file that does
/// not exist it must stop with EX_CONFIG (78), not with a usage error.
#[test]
fn exec_start_arguments_are_accepted_by_the_binary() {
    let service = parse_unit(&unit_text(SERVICE));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let args: Vec<PathBuf> = value(&service, "Service", "ExecStart")
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == qftpd::config::DEFAULT_PATH {
                missing.clone()
            } else {
                PathBuf::from(a)
            }
        })
        .collect();
    let mut child = common::Process::spawn_plain(
        Command::new(common::process::qftpd_path())
            .args(&args)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET"),
        "qftpd",
    );
    let status = child.wait_exit(Duration::from_secs(30));
    let stderr = child.stderr_log();
    assert_eq!(
        status.code(),
        Some(i32::from(qftpd::exit::CONFIG)),
        "qftpd {args:?}: {stderr}"
    );
    assert!(
        stderr.contains(&*missing.to_string_lossy()),
        "qftpd {args:?}: {stderr}"
    );
}

/// systemd has no trailing comments: `Key=value # why` would make `# why` part of the value.
fn assert_no_trailing_comments(name: &str, text: &str) {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        assert!(
            line.starts_with('#') || !line.contains('#'),
            "{name}:{}: comments must sit on their own lines: {line:?}",
            n + 1
        );
    }
}

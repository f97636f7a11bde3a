//! Soak: 300 concurrent ftplib sessions (`tests/clients/soak.py`) run a random mix of
//! transfers and commands through `qftpd serve` for `SOAK_SECS` seconds (60 by default), while
//! the gateway's open file descriptors and resident memory are sampled from `/proc`.
//!
//! It passes when no operation failed and no byte read back differed, the gateway's descriptor
//! count comes back to its pre-run level once every session has closed, and resident memory
//! levels off: allocators keep freed memory, so the measure is the last third of the run
//! against the first third, not against the idle process. The full soak is
//! `SOAK_SECS=600 cargo test --release --test soak -- --nocapture`; `SOAK_SEED` changes the
//! random mix (1 by default).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Sim;
use common::{Gateway, PassivePorts, op};
use serde_json::Value;

/// Concurrent sessions.
const SESSIONS: usize = 300;
/// Seconds of load when `SOAK_SECS` is not set.
const DEFAULT_SECS: u64 = 60;
/// Seconds over which the sessions start.
const RAMP_SECS: u64 = 5;
/// Passive data ports: below the usual ephemeral range (32768–60999), so no outgoing
/// connection of the machine holds one, and apart from the ranges other tests hand out.
/// Wide, because libunftp picks a random port and gives up after nine that are taken.
const PASSIVE_PORTS: (u16, u16) = (30000, 32767);
/// Descriptors the gateway may hold after the run beyond its pre-run count.
const FD_SLACK: usize = 8;
/// How long the descriptors may take to come back after the run: idle keep-alive
/// connections to the cluster stay pooled until reqwest's 90 s idle timeout has passed and
/// its reaper, which also runs every 90 s, comes round (up to about three minutes).
const FD_SETTLE: Duration = Duration::from_secs(240);
/// Allowed growth of the peak resident memory from the first third of the run to the last.
const RSS_FACTOR: f64 = 1.25;
const RSS_SLACK_KIB: u64 = 8 * 1024;
/// Time the script may take beyond its load phase (ramp, last operations, clean-up).
const SCRIPT_GRACE: Duration = Duration::from_secs(600);

const USERS: [(&str, &str); 3] = [("alice", "alicepw"), ("bob", "bobpw"), ("carol", "carolpw")];

/// One measurement of the gateway process.
#[derive(Debug, Clone)]
struct Sample {
    /// Seconds since the script started.
    t: f64,
    /// `run` while the script runs, `after` while waiting for the descriptors to settle.
    phase: &'static str,
    /// Established control connections (gateway side).
    sessions: usize,
    /// Open descriptors, all kinds.
    fds: usize,
    /// Descriptors that are sockets on the control port.
    ctl: usize,
    /// Descriptors that are sockets on a passive data port (listening or connected).
    data: usize,
    /// Descriptors that are connections to the cluster.
    upstream: usize,
    /// `VmRSS`, KiB.
    rss_kib: u64,
}

/// What the gateway's sockets are, for classifying its descriptors.
struct Ports {
    control: u16,
    passive: (u16, u16),
    upstream: u16,
}

/// Local port, remote port and state of every TCP socket of the machine, by inode.
fn tcp_sockets() -> HashMap<u64, (u16, u16, u8)> {
    let mut sockets = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let port = |addr: &str| {
                addr.rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            let (Some(local), Some(remote), Ok(state), Ok(inode)) = (
                port(f[1]),
                port(f[2]),
                u8::from_str_radix(f[3], 16),
                f[9].parse(),
            ) else {
                continue;
            };
            sockets.insert(inode, (local, remote, state));
        }
    }
    sockets
}

/// TCP state `ESTABLISHED` in `/proc/net/tcp`.
const TCP_ESTABLISHED: u8 = 1;

fn sample(pid: u32, ports: &Ports, t: f64, phase: &'static str) -> Sample {
    let sockets = tcp_sockets();
    let sessions = sockets
        .values()
        .filter(|(local, _, state)| *local == ports.control && *state == TCP_ESTABLISHED)
        .count();
    let (mut fds, mut ctl, mut data, mut upstream) = (0, 0, 0, 0);
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/<pid>/fd");
    for entry in dir.flatten() {
        fds += 1;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        let inode = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok());
        let Some((local, remote, _)) = inode.and_then(|i| sockets.get(&i)) else {
            continue;
        };
        if *local == ports.control {
            ctl += 1;
        } else if (ports.passive.0..=ports.passive.1).contains(local) {
            data += 1;
        } else if *remote == ports.upstream {
            upstream += 1;
        }
    }
    Sample {
        t,
        phase,
        sessions,
        fds,
        ctl,
        data,
        upstream,
        rss_kib: rss_kib(pid),
    }
}

/// `VmRSS` of `/proc/<pid>/status`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc/<pid>/status")
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS line in /proc/<pid>/status")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_samples(samples: &[Sample]) {
    println!("    t(s)  phase  sessions   fds   ctl  data  upstream  rss(MiB)");
    for s in samples {
        println!(
            "{:8.1}  {:<5}  {:>8}  {:>4}  {:>4}  {:>4}  {:>8}  {:>8.1}",
            s.t,
            s.phase,
            s.sessions,
            s.fds,
            s.ctl,
            s.data,
            s.upstream,
            mib(s.rss_kib)
        );
    }
}

/// Echoes each line of `stream` (prefixed) and keeps it all, from a thread.
fn echo_lines(stream: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let keep = Arc::clone(&text);
    let handle = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            println!("  | {line}");
            let mut text = keep.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    (text, handle)
}

fn soak_secs() -> u64 {
    match std::env::var("SOAK_SECS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|e| panic!("SOAK_SECS={v:?} is not a number of seconds: {e}")),
        Err(_) => DEFAULT_SECS,
    }
}

fn spawn_script(gw: &Gateway, secs: u64, report: &Path) -> Child {
    let users: Vec<String> = USERS.iter().map(|(u, p)| format!("{u}:{p}")).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/soak.py");
    Command::new(common::require_tool("python3", "python3"))
        .arg(script)
        .args(["--host", "127.0.0.1", "--port", &gw.port().to_string()])
        .args(["--sessions", &SESSIONS.to_string()])
        .args(["--duration", &secs.to_string()])
        .args(["--ramp", &RAMP_SECS.to_string()])
        .args(["--users", &users.join(",")])
        .args([
            "--seed",
            &std::env::var("SOAK_SEED").unwrap_or_else(|_| "1".into()),
        ])
        .arg("--report")
        .arg(report)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 tests/clients/soak.py")
}

/// Files the gateway's atomic uploads leave behind when an upload never completed.
fn upload_leftovers(dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".qftpd-upload")
        {
            found.push(path.display().to_string());
        }
        if path.is_dir() {
            upload_leftovers(&path, found);
        }
    }
}

/// The largest `rss_kib` of the run's samples with `t` in `[from, to)`.
fn peak_rss(samples: &[Sample], from: f64, to: f64) -> Option<u64> {
    samples
        .iter()
        .filter(|s| s.phase == "run" && s.t >= from && s.t < to)
        .map(|s| s.rss_kib)
        .max()
}

/// Descriptors other than connections to the cluster (which stay pooled a while).
fn own_fds(s: &Sample) -> usize {
    s.fds - s.upstream
}

/// A simulator with alice, bob and carol (each with a home directory) and a gateway that takes
/// a thousand connections from one address.
fn start() -> (Sim, Gateway) {
    let mut sim_args = Vec::new();
    for (user, _) in USERS {
        sim_args.extend(["--home".to_string(), format!("{user}:/home/{user}")]);
    }
    let sim_args: Vec<&str> = sim_args.iter().map(String::as_str).collect();
    let mut users = vec![("admin", "adminpw")];
    users.extend(USERS);
    let sim = Sim::start(&users, Some("admin"), &sim_args);
    let gw = Gateway::builder(&sim)
        .ports(PassivePorts::fixed(PASSIVE_PORTS))
        .ftp("max-connections = 1000\nmax-connections-per-ip = 1000\n")
        .start();
    (sim, gw)
}

/// What the script reported and what was measured while it ran.
struct Run {
    status: ExitStatus,
    report: Value,
    /// Everything the script printed on stdout.
    stdout: String,
    /// When the script was started.
    started: Instant,
    /// Seconds the script ran.
    secs: f64,
}

/// Runs the script for `secs` seconds of load, sampling the gateway every few seconds.
fn run_script(gw: &Gateway, ports: &Ports, secs: u64, samples: &mut Vec<Sample>) -> Run {
    let pid = gw.pid();
    let report_dir = tempfile::Builder::new()
        .prefix("qftpd-soak-")
        .tempdir()
        .expect("create report dir");
    let report_path = report_dir.path().join("report.json");
    println!("soak: {SESSIONS} sessions for {secs} s (+{RAMP_SECS} s ramp), gateway pid {pid}");
    let started = Instant::now();
    let mut child = spawn_script(gw, secs, &report_path);
    let (stdout, out_drain) = echo_lines(child.stdout.take().expect("script stdout"));
    let (stderr, err_drain) = echo_lines(child.stderr.take().expect("script stderr"));

    let interval = Duration::from_secs((secs / 30).clamp(2, 10));
    let deadline = started + Duration::from_secs(secs + RAMP_SECS) + SCRIPT_GRACE;
    let mut next_sample = started;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for soak.py") {
            break status;
        }
        if Instant::now() >= next_sample {
            let t = started.elapsed().as_secs_f64();
            samples.push(sample(pid, ports, t, "run"));
            next_sample += interval;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            print_samples(samples);
            panic!("soak.py did not finish within {:?}", deadline - started);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let run_secs = started.elapsed().as_secs_f64();
    let _ = out_drain.join();
    let _ = err_drain.join();
    let report = std::fs::read(&report_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| {
            panic!(
                "soak.py ({status}) wrote no report; stderr:\n{}",
                stderr.lock().unwrap()
            )
        });
    let stdout = stdout.lock().unwrap().clone();
    Run {
        status,
        report,
        stdout,
        started,
        secs: run_secs,
    }
}

/// Samples the gateway every two seconds until its descriptors are back to `baseline` (or
/// [`FD_SETTLE`] has passed); returns the last sample and the seconds after the run when the
/// descriptors other than pooled connections to the cluster were back.
fn settle(
    pid: u32,
    ports: &Ports,
    baseline: &Sample,
    run: &Run,
    samples: &mut Vec<Sample>,
) -> (Sample, Option<f64>) {
    let deadline = Instant::now() + FD_SETTLE;
    let mut own_settled = None;
    loop {
        let t = run.started.elapsed().as_secs_f64();
        let s = sample(pid, ports, t, "after");
        samples.push(s.clone());
        if own_settled.is_none() && own_fds(&s) <= own_fds(baseline) + FD_SLACK {
            own_settled = Some(t - run.secs);
        }
        if s.fds <= baseline.fds + FD_SLACK || Instant::now() > deadline {
            return (s, own_settled);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The peak resident memory of the first and of the last third of the load phase (after the
/// ramp, before the sessions clean up).
fn rss_thirds(samples: &[Sample], secs: u64) -> (u64, u64) {
    let (from, len) = (RAMP_SECS as f64, secs as f64);
    let first = peak_rss(samples, from, from + len / 3.0);
    let last = peak_rss(samples, from + len * 2.0 / 3.0, from + len);
    match (first, last) {
        (Some(first), Some(last)) => (first, last),
        _ => panic!("too few samples to compare the thirds of the run"),
    }
}

#[test]
fn soak_300_sessions_with_mixed_transfers() {
    let secs = soak_secs();
    let (sim, mut gw) = start();
    let pid = gw.pid();
    let ports = Ports {
        control: gw.port(),
        passive: PASSIVE_PORTS,
        upstream: sim.port,
    };
    // One session first, so that what the first login sets up for good is in the baseline.
    let (user, password) = USERS[0];
    let warm_up = gw.ftplib_as(user, password, &[op::cmd("NOOP")]);
    assert!(warm_up[0].ok, "warm-up NOOP: {:?}", warm_up[0]);
    let baseline = sample(pid, &ports, 0.0, "base");

    let mut samples = vec![baseline.clone()];
    let run = run_script(&gw, &ports, secs, &mut samples);
    let (after, own_settled) = settle(pid, &ports, &baseline, &run, &mut samples);
    let settle_secs = run.started.elapsed().as_secs_f64() - run.secs;
    print_samples(&samples);

    let report = &run.report;
    let fd_peak = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let (first_third, last_third) = rss_thirds(&samples, secs);
    println!(
        "soak: {} ops ({} /s), {} MiB moved, {} failures, {} logins; wall {:.1} s",
        report["ops"],
        report["ops_per_sec"],
        report["mib_moved"],
        report["failures"],
        report["connects"],
        run.secs
    );
    println!(
        "soak: fds baseline {} peak {fd_peak} after {} (settled in {settle_secs:.1} s, \
         {:.1} s without the pooled connections to the cluster); RSS baseline {:.1} MiB, \
         peak first third {:.1} MiB, last third {:.1} MiB, after {:.1} MiB",
        baseline.fds,
        after.fds,
        own_settled.unwrap_or(f64::NAN),
        mib(baseline.rss_kib),
        mib(first_third),
        mib(last_third),
        mib(after.rss_kib)
    );

    assert_eq!(
        report["failures"].as_u64(),
        Some(0),
        "failed operations: {}\nfirst errors: {:#}",
        report["failures_by_kind"],
        report["errors"]
    );
    assert!(run.status.success(), "soak.py exited with {}", run.status);
    let ops = report["ops"].as_u64().unwrap_or(0);
    assert!(
        ops >= (SESSIONS * 10) as u64 && report["bytes_verified"].as_u64().unwrap_or(0) > 0,
        "too little work for a soak: {ops} ops; output:\n{}",
        run.stdout
    );
    assert_eq!(
        after.sessions, 0,
        "control connections still open after the run"
    );
    assert!(
        after.fds <= baseline.fds + FD_SLACK,
        "the gateway holds {} descriptors ({} of them connections to the cluster) \
         {FD_SETTLE:?} after the run, {} before it",
        after.fds,
        after.upstream,
        baseline.fds
    );
    let bound = (first_third as f64 * RSS_FACTOR) as u64 + RSS_SLACK_KIB;
    assert!(
        last_third <= bound,
        "resident memory kept growing: peak {:.1} MiB in the last third of the run, {:.1} MiB \
         in the first (bound {:.1} MiB)",
        mib(last_third),
        mib(first_third),
        mib(bound)
    );
    let mut leftovers = Vec::new();
    upload_leftovers(sim.data_dir.path(), &mut leftovers);
    assert!(
        leftovers.is_empty(),
        "upload temporaries left: {leftovers:?}"
    );
    let log = gw.stop();
    let panics: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("panicked"))
        .take(20)
        .collect();
    assert!(
        panics.is_empty(),
        "the gateway panicked:\n{}",
        panics.join("\n")
    );
}

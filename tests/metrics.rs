//! The health and metrics listener (`[metrics] listen`): `/metrics` counts what really
//! happened (logins, bytes, transfers, cluster errors, bans), `/ready` follows the cluster's
//! nodes and the drain, `/health` answers throughout.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::control::Control;
use common::{Gateway, Sim, free_port, http, op, pattern, toml_str, wait_until};

const ALICE: (&str, &str) = ("alice", "alicepw");
const MIB: usize = 1024 * 1024;

/// A three-node simulator and a gateway that knows nodes 0 and 1 only (node 2 stays up for
/// the simulator's own control requests), with its metrics listener on a free port.
fn start(extra_ftp: &str) -> (Sim, Gateway, SocketAddr) {
    let sim = Sim::builder().nodes(3).home("alice").start();
    std::fs::create_dir_all(sim.disk_path("/home/alice")).unwrap();
    let qumulo = format!(
        "url = [{}, {}]\nca-file = {}\n",
        toml_str(&sim.urls[0]),
        toml_str(&sim.urls[1]),
        toml_str(sim.cert_pem_path.to_str().unwrap())
    );
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::with_qumulo(&qumulo)
        .ftp(extra_ftp)
        .tables(&format!("[metrics]\nlisten = \"{metrics}\"\n"))
        .start();
    (sim, gw, metrics)
}

/// The samples of `/metrics`, by series (`name{labels}`), after checking the content type.
fn scrape(metrics: SocketAddr) -> BTreeMap<String, f64> {
    let reply = http(metrics, "GET", "/metrics");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(reply.body.ends_with("# EOF\n"), "{}", reply.body);
    reply
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

/// The value of `series`, 0 when absent (a label value not seen yet).
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[test]
fn metrics_count_logins_transfers_bytes_errors_and_bans() {
    // One failed login bans the address: done last, on a connection opened before it.
    let (sim, gw, metrics) = start("failed-logins.max-per-address = 1\n");
    let health = http(metrics, "GET", "/health");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = http(metrics, "GET", "/ready");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(http(metrics, "GET", "/nothing").status, 404);
    assert_eq!(http(metrics, "POST", "/metrics").status, 405);
    assert_eq!(http(metrics, "DELETE", "/ready").status, 405);

    // Every series exists from the start, at zero.
    let before = scrape(metrics);
    for series in [
        "qftpd_logins_total{result=\"success\"}",
        "qftpd_logins_total{result=\"refused\"}",
        "qftpd_transfer_bytes_total{direction=\"upload\"}",
        "qftpd_transfer_duration_seconds_count{direction=\"download\"}",
        "qftpd_cluster_errors_total{class=\"unavailable\"}",
        "qftpd_cluster_errors_total{class=\"no_space\"}",
        "qftpd_bans",
    ] {
        assert_eq!(before.get(series), Some(&0.0), "{series}: {before:#?}");
    }
    for node in [&sim.urls[0], &sim.urls[1]] {
        let series = format!("qftpd_cluster_node_up{{node=\"{node}\"}}");
        assert_eq!(before.get(&series), Some(&1.0), "{series}: {before:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    // Uploads: 3 MiB with curl, 1 MiB + 7 bytes with ftplib.
    let up_curl = dir.path().join("up-curl.bin");
    std::fs::write(&up_curl, pattern(3 * MIB, 1)).unwrap();
    let up_ftplib = dir.path().join("up-ftplib.bin");
    std::fs::write(&up_ftplib, pattern(MIB + 7, 2)).unwrap();
    let url = |name: &str| format!("{}/home/alice/{name}", gw.ftp_url(ALICE.0, ALICE.1));
    common::curl_ok(&["-T", up_curl.to_str().unwrap(), &url("a.bin")]);
    // Downloads: the 3 MiB back with curl, 2 MiB put there by the cluster with ftplib.
    std::fs::write(sim.disk_path("/home/alice/b.bin"), pattern(2 * MIB, 3)).unwrap();
    let back = common::curl_ok(&[&url("a.bin")]);
    assert_eq!(back.len(), 3 * MIB);
    let got = dir.path().join("b.bin");
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor_file("STOR /home/alice/c.bin", &up_ftplib, None),
            op::retr_file("RETR /home/alice/b.bin", &got),
        ],
    );
    assert!(r.iter().all(|r| r.ok), "{r:?}");
    assert_eq!(std::fs::metadata(&got).unwrap().len(), 2 * MIB as u64);

    let mut early = Control::connect(gw.addr);
    let mut wrong = Control::connect(gw.addr);
    wrong.cmd("USER alice").assert_code(331);
    wrong.cmd("PASS not-the-password").assert_code(530);
    early.cmd("USER alice").assert_code(331);
    early.cmd("PASS alicepw").assert_code(421);

    // The sessions end shortly after their clients leave.
    drop((early, wrong));
    wait_until(Duration::from_secs(10), "sessions closed", || {
        value(&scrape(metrics), "qftpd_sessions") == 0.0
    });
    let m = scrape(metrics);
    let expect = [
        ("qftpd_logins_total{result=\"success\"}", 3.0),
        ("qftpd_logins_total{result=\"failure\"}", 1.0),
        ("qftpd_logins_total{result=\"refused\"}", 1.0),
        ("qftpd_logins_total{result=\"unavailable\"}", 0.0),
        ("qftpd_bans", 1.0),
        ("qftpd_transfers", 0.0),
        (
            "qftpd_transfer_bytes_total{direction=\"upload\"}",
            (3 * MIB + MIB + 7) as f64,
        ),
        (
            "qftpd_transfer_bytes_total{direction=\"download\"}",
            (3 * MIB + 2 * MIB) as f64,
        ),
        (
            "qftpd_transfer_duration_seconds_count{direction=\"upload\"}",
            2.0,
        ),
        (
            "qftpd_transfer_duration_seconds_count{direction=\"download\"}",
            2.0,
        ),
        ("qftpd_cluster_errors_total{class=\"bad_credentials\"}", 1.0),
        ("qftpd_cluster_errors_total{class=\"unavailable\"}", 0.0),
    ];
    for (series, want) in expect {
        assert_eq!(value(&m, series), want, "{series}\n{m:#?}");
    }
    let requests = value(&m, "qftpd_cluster_request_duration_seconds_count");
    // At least a login, who-am-i and a data request per transfer.
    assert!(requests >= 12.0, "{requests} requests\n{m:#?}");
    let seconds = value(
        &m,
        "qftpd_transfer_duration_seconds_sum{direction=\"download\"}",
    );
    assert!(seconds > 0.0, "{m:#?}");
}

#[test]
fn ready_follows_the_cluster_nodes() {
    let (sim, gw, metrics) = start("");
    assert_eq!(http(metrics, "GET", "/ready").status, 200);
    // Nodes 0 and 1 down (asked through node 2, which the gateway does not use): the idle
    // gateway finds out when asked.
    sim.control_on(2, "POST", "/sim/nodes/0/down", None);
    sim.control_on(2, "POST", "/sim/nodes/1/down", None);
    wait_until(Duration::from_secs(10), "/ready says 503", || {
        http(metrics, "GET", "/ready").status == 503
    });
    let ready = http(metrics, "GET", "/ready");
    assert_eq!(ready.body, "not ready: no cluster node answers\n");
    let m = scrape(metrics);
    for node in [&sim.urls[0], &sim.urls[1]] {
        let series = format!("qftpd_cluster_node_up{{node=\"{node}\"}}");
        assert_eq!(m.get(&series), Some(&0.0), "{series}: {m:#?}");
    }
    assert_eq!(http(metrics, "GET", "/health").status, 200);
    // An FTP login meanwhile cannot be checked.
    let mut control = Control::connect(gw.addr);
    control.cmd("USER alice").assert_code(331);
    control.cmd("PASS alicepw").assert_code(421);
    let m = scrape(metrics);
    assert_eq!(value(&m, "qftpd_logins_total{result=\"unavailable\"}"), 1.0);
    assert!(value(&m, "qftpd_cluster_errors_total{class=\"unavailable\"}") >= 1.0);

    sim.control_on(2, "POST", "/sim/nodes/1/up", None);
    wait_until(Duration::from_secs(10), "/ready says 200", || {
        http(metrics, "GET", "/ready").status == 200
    });
    let m = scrape(metrics);
    let up = |i: usize| m[&format!("qftpd_cluster_node_up{{node=\"{}\"}}", sim.urls[i])];
    assert_eq!((up(0), up(1)), (0.0, 1.0), "{m:#?}");
}

#[test]
fn ready_says_draining_while_a_download_finishes_then_the_process_exits() {
    let (sim, mut gw, metrics) = start("");
    let size = 8 * MIB;
    std::fs::write(sim.disk_path("/home/alice/big.bin"), pattern(size, 9)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.bin");
    let url = format!("{}/home/alice/big.bin", gw.ftp_url(ALICE.0, ALICE.1));
    // 2 MB/s: about four seconds.
    let mut curl = Command::new(common::require_tool("curl", "curl"))
        .args(["-sS", "--limit-rate", "2M", "--max-time", "120", "-o"])
        .arg(&out)
        .arg(&url)
        .stdin(Stdio::null())
        .spawn()
        .expect("run curl");
    wait_until(Duration::from_secs(20), "the download runs", || {
        value(&scrape(metrics), "qftpd_transfers") == 1.0
    });
    assert_eq!(http(metrics, "GET", "/ready").status, 200);
    gw.signal("TERM");
    wait_until(Duration::from_secs(5), "/ready says draining", || {
        http(metrics, "GET", "/ready").status == 503
    });
    let ready = http(metrics, "GET", "/ready");
    assert_eq!(ready.body, "not ready: draining\n");
    assert_eq!(http(metrics, "GET", "/health").status, 200);
    // The download is still running while the service drains.
    assert!(
        curl.try_wait().unwrap().is_none(),
        "the download ended early"
    );
    let status = common::wait_with_deadline(&mut curl, Duration::from_secs(60), "curl").status;
    assert!(status.success(), "curl: {status}");
    assert_eq!(std::fs::read(&out).unwrap(), pattern(size, 9));
    let exit = gw.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "{exit}");
    assert!(
        std::net::TcpStream::connect(metrics).is_err(),
        "the listener outlived the process"
    );
}

/// With `stop-delay`, a stop turns `/ready` 503 at once but the FTP port stays open, and new
/// sessions are served, until the delay is over; then the port closes and the process exits.
#[test]
fn a_stop_delay_keeps_taking_sessions_while_ready_says_503() {
    let (_sim, mut gw, metrics) = start("stop-delay = 3");
    let mut before = Control::login(gw.addr, ALICE);
    let stopped = std::time::Instant::now();
    gw.signal("TERM");
    wait_until(Duration::from_secs(5), "/ready says draining", || {
        http(metrics, "GET", "/ready").status == 503
    });
    let mut during = Control::login(gw.addr, ALICE);
    during.cmd("PWD").assert_code(257);
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "the session during the delay came too late to show anything: {:?}",
        stopped.elapsed()
    );
    // Both sessions are idle: the end of the delay closes them with 421.
    for c in [&mut before, &mut during] {
        c.set_read_timeout(Duration::from_secs(20));
        assert!(c.reply_lenient().starts_with("421"));
    }
    let waited = stopped.elapsed();
    assert!(
        waited >= Duration::from_millis(2900),
        "closed after {waited:?}"
    );
    let exit = gw.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "{exit}");
    assert!(std::net::TcpStream::connect(gw.addr).is_err());
    let log = gw.stderr_log();
    assert!(
        log.contains("new sessions are still taken for 3 s"),
        "{log}"
    );
}

#[test]
fn a_changed_metrics_listen_waits_for_a_restart() {
    let (_sim, mut gw, metrics) = start("");
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let moved = format!("127.0.0.1:{}", free_port());
    std::fs::write(&gw.config_path, text.replace(&metrics.to_string(), &moved)).unwrap();
    gw.signal("HUP");
    wait_until(Duration::from_secs(10), "the reload", || {
        gw.stderr_log().contains("configuration reloaded")
    });
    let log = gw.stderr_log();
    assert!(
        log.contains("metrics.listen changed: it takes effect at the next restart"),
        "{log}"
    );
    assert_eq!(http(metrics, "GET", "/health").status, 200);
    let log = gw.stop();
    assert!(!log.contains(" ERROR "), "{log}");
}

/// Connections that send nothing hold the listener's few places for a few seconds at most,
/// and never the FTP side's.
#[test]
fn idle_connections_cannot_hold_the_listener() {
    let (_sim, gw, metrics) = start("");
    let idle: Vec<std::net::TcpStream> = (0..16)
        .map(|_| std::net::TcpStream::connect(metrics).unwrap())
        .collect();
    // One more is closed at once, without an answer.
    wait_until(Duration::from_secs(10), "a 17th connection closed", || {
        let mut extra = std::net::TcpStream::connect(metrics).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        closed(&mut extra)
    });
    Control::login(gw.addr, ALICE).cmd("QUIT").assert_code(221);
    // The head timeout closes the idle ones; the listener answers again.
    for mut stream in idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        assert!(closed(&mut stream), "an idle connection stayed open");
    }
    assert_eq!(http(metrics, "GET", "/health").status, 200);
}

/// Whether the peer closed `stream` (end of stream or reset) before its read timeout.
fn closed(stream: &mut std::net::TcpStream) -> bool {
    use std::io::{ErrorKind, Read};
    match stream.read(&mut [0; 16]) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

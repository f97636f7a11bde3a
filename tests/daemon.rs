//! The service lifecycle through the real binary and real tools: a socket passed by
//! `systemd-socket-activate`, the sd_notify sequence on a notify socket, a download that
//! outlives SIGTERM, a session that outlives SIGHUP while new sessions see the new
//! configuration, and a bad reload that leaves the service running.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Sim;
use common::control::Control;
use common::process::{Process, Stream, listening_addr, qftpd_command, require_tool};
use common::{BigPattern, Gateway, PassivePorts, free_port, op, run_ftplib};

const ADMIN: (&str, &str) = ("admin", "adminpw");

/// Connects with a 60 s read timeout; returns the connection and the last line of the
/// greeting ("" when the server closed the connection).
fn connect(addr: SocketAddr) -> (Control, String) {
    let mut control = Control::open(addr);
    control.set_read_timeout(Duration::from_secs(60));
    let greeting = control.reply_lenient();
    let last = greeting.lines().last().unwrap_or("").trim_end().to_owned();
    (control, last)
}

/// A configuration for `sim` with `ftp_lines` in `[ftp]`, written into `dir`; returns its
/// path and the passive ports it names (held until dropped).
fn write_config(dir: &Path, sim: &Sim, ftp_lines: &str) -> (std::path::PathBuf, PassivePorts) {
    let ports = PassivePorts::block();
    let text = format!(
        "[ftp]\n{ftp_lines}\npassive-ports = \"{}-{}\"\n[qumulo]\nurl = \"{}\"\nca-file = \"{}\"\n",
        ports.low,
        ports.high,
        sim.url,
        sim.cert_pem_path.display()
    );
    let path = dir.join("qftpd.toml");
    std::fs::write(&path, text).unwrap();
    (path, ports)
}

/// `qftpd serve --config FILE` with a clean environment plus `env`.
fn serve(config: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = qftpd_command();
    cmd.args(["serve", "--config"]).arg(config);
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// `systemd-socket-activate` holding a socket on a free loopback port under the name
/// `fdname`, set to exec `qftpd serve --config CONFIG` at the first connection; returns it
/// with the address and that first connection (made here: it starts qftpd and then waits in
/// the socket's backlog until qftpd accepts it).
fn socket_activated(config: &Path, fdname: &str) -> (Process, SocketAddr, TcpStream) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (activator, first) = socket_activated_on(config, &[(addr, fdname)]);
    (activator, addr, first)
}

/// As [`socket_activated`], with one socket per `(address, name)`; the first connection goes
/// to the first socket.
fn socket_activated_on(config: &Path, sockets: &[(SocketAddr, &str)]) -> (Process, TcpStream) {
    let mut activator = Command::new(require_tool("systemd-socket-activate", "systemd"));
    for (addr, _) in sockets {
        activator.args(["-l", &addr.to_string()]);
    }
    let names: Vec<&str> = sockets.iter().map(|(_, name)| *name).collect();
    activator
        .arg(format!("--fdname={}", names.join(":")))
        .args(["-E", "RUST_LOG=info"])
        .arg(env!("CARGO_BIN_EXE_qftpd"))
        .args(["serve", "--config"])
        .arg(config);
    let activator = Process::spawn_plain(&mut activator, "systemd-socket-activate");
    let addr = sockets[0].0;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(first) = TcpStream::connect(addr) {
            first
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            return (activator, first);
        }
        assert!(
            Instant::now() < until,
            "systemd-socket-activate did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything a socket-activated qftpd wrote on stderr (after it was killed or ended).
fn activated_log(activator: &mut Process) -> String {
    activator.stop()
}

#[test]
fn socket_activation_serves_login_listing_and_transfers() {
    let sim = Sim::start_default();
    std::fs::write(sim.disk_path("/hello.txt"), b"hello over a passed socket").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An address qftpd could never bind: the service works only with the passed socket.
    let (config, _ports) = write_config(dir.path(), &sim, "listen = \"192.0.2.1:21\"");
    let (mut activator, addr, first) = socket_activated(&config, "ftp");
    drop(first);
    let r = run_ftplib(
        addr,
        &[
            op::connect(),
            op::login(ADMIN.0, ADMIN.1),
            op::lines("LIST /"),
            op::stor("STOR /up.txt", b"uploaded through systemd's socket", None),
            op::retr("RETR /hello.txt", None),
            op::quit(),
        ],
    );
    assert!(
        r[1].reply().starts_with("230 Welcome to qftpd"),
        "{}",
        r[1].reply()
    );
    assert!(
        r[2].strings().iter().any(|l| l.ends_with(" hello.txt")),
        "{:?}",
        r[2].strings()
    );
    assert!(r[3].reply().starts_with("226"), "{}", r[3].reply());
    assert_eq!(
        std::fs::read(sim.disk_path("/up.txt")).unwrap(),
        b"uploaded through systemd's socket"
    );
    assert_eq!(r[4].data(), b"hello over a passed socket");
    let log = activated_log(&mut activator);
    assert!(log.contains("socket from systemd"), "{log}");
}

/// qftpd.socket passes an IPv4 and an IPv6 socket, both named `ftp`: both are served, the
/// IPv6 client with EPSV.
#[test]
fn every_socket_named_ftp_is_served_ipv4_and_ipv6() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    };
    let v6 = probe.local_addr().unwrap();
    drop(probe);
    let v4: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let sim = Sim::start_default();
    std::fs::write(sim.disk_path("/both.txt"), b"over either family").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, _ports) = write_config(dir.path(), &sim, "listen = \"192.0.2.1:21\"");
    let (mut activator, first) = socket_activated_on(&config, &[(v4, "ftp"), (v6, "ftp")]);
    drop(first);
    for addr in [v6, v4, v6] {
        let r = run_ftplib(
            addr,
            &[
                op::connect(),
                op::login(ADMIN.0, ADMIN.1),
                op::stor(
                    &format!("STOR /from-{}.txt", addr.port()),
                    addr.to_string().as_bytes(),
                    None,
                ),
                op::retr("RETR /both.txt", None),
                op::quit(),
            ],
        );
        assert!(r[2].reply().starts_with("226"), "{addr}: {:#}", r[2].raw);
        assert_eq!(r[3].data(), b"over either family", "{addr}");
        assert_eq!(
            std::fs::read(sim.disk_path(&format!("/from-{}.txt", addr.port()))).unwrap(),
            addr.to_string().as_bytes()
        );
    }
    let log = activated_log(&mut activator);
    assert!(
        log.contains(&format!("listening on {v4} and {v6} (socket from systemd)")),
        "{log}"
    );
}

#[test]
fn a_socket_named_metrics_serves_health_ready_and_metrics() {
    let sim = Sim::start_default();
    let dir = tempfile::tempdir().unwrap();
    let (config, _ports) = write_config(dir.path(), &sim, "listen = \"192.0.2.1:21\"");
    // An address qftpd could never bind either: the passed socket wins over the file.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[metrics]\nlisten = \"192.0.2.1:9121\"\n");
    std::fs::write(&config, text).unwrap();
    let ftp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (mut activator, first) =
        socket_activated_on(&config, &[(ftp, "ftp"), (metrics, "metrics")]);
    drop(first);
    let health = common::http(metrics, "GET", "/health");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = common::http(metrics, "GET", "/ready");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let r = run_ftplib(
        ftp,
        &[op::connect(), op::login(ADMIN.0, ADMIN.1), op::quit()],
    );
    assert!(r[1].reply().starts_with("230"), "{:#}", r[1].raw);
    let scraped = common::http(metrics, "GET", "/metrics").body;
    assert!(
        scraped.contains("qftpd_logins_total{result=\"success\"} 1\n"),
        "{scraped}"
    );
    let log = activated_log(&mut activator);
    assert!(
        log.contains(&format!("/ready on http://{metrics} (socket from systemd)")),
        "{log}"
    );
}

/// Started by its sockets without a valid configuration, the service is alive but not ready.
#[test]
fn without_a_valid_configuration_ready_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("qftpd.toml");
    std::fs::write(&config, "[ftp]\ngreeting = \"x\"\n").unwrap();
    let ftp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_activator, first) = socket_activated_on(&config, &[(ftp, "ftp"), (metrics, "metrics")]);
    drop(first);
    assert_eq!(common::http(metrics, "GET", "/health").status, 200);
    let ready = common::http(metrics, "GET", "/ready");
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (503, "not ready: no valid configuration\n")
    );
    let scraped = common::http(metrics, "GET", "/metrics").body;
    assert!(!scraped.contains("qftpd_cluster_node_up{"), "{scraped}");
}

#[test]
fn a_socket_not_named_ftp_is_refused() {
    let sim = Sim::start_default();
    let dir = tempfile::tempdir().unwrap();
    let (config, _ports) = write_config(dir.path(), &sim, "listen = \"127.0.0.1:0\"");
    let (mut child, _, _first) = socket_activated(&config, "other");
    let status = child.wait();
    let log = child.stderr_log();
    assert_eq!(status.code(), Some(78), "{log}");
    assert!(log.contains("none named \"ftp\""), "{log}");
}

/// Receives sd_notify datagrams until one contains `want`, returning all received so far.
fn expect_notify(sock: &UnixDatagram, seen: &mut Vec<String>, want: &str) -> String {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {want} from qftpd ({e}); received {seen:?}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        seen.push(msg.clone());
        if msg.lines().any(|l| l == want || l.starts_with(want)) {
            return msg;
        }
    }
}

#[test]
fn notify_socket_receives_ready_status_watchdog_reloading_stopping_in_order() {
    let sim = Sim::start_default();
    let dir = tempfile::tempdir().unwrap();
    let (config, _ports) = write_config(dir.path(), &sim, "listen = \"127.0.0.1:0\"");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let sock_env = sock_path.to_str().unwrap();
    let mut child = Process::spawn_plain(
        &mut serve(
            &config,
            &[("NOTIFY_SOCKET", sock_env), ("WATCHDOG_USEC", "400000")],
        ),
        "qftpd serve",
    );
    let pid = child.pid().to_string();
    let mut seen = Vec::new();

    let ready = expect_notify(&sock, &mut seen, "READY=1");
    assert!(ready.contains("STATUS=accepting on 127.0.0.1:"), "{ready}");
    assert_eq!(seen.len(), 1, "READY=1 comes first: {seen:?}");
    let status = expect_notify(
        &sock,
        &mut seen,
        "STATUS=0 session(s), 0 transfer(s); cluster answers",
    );
    assert!(status.contains("Qumulo Core"), "{status}");
    expect_notify(&sock, &mut seen, "WATCHDOG=1");

    Command::new("kill")
        .args(["-s", "HUP", &pid])
        .status()
        .unwrap();
    let reloading = expect_notify(&sock, &mut seen, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    expect_notify(&sock, &mut seen, "READY=1");

    Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .unwrap();
    expect_notify(&sock, &mut seen, "STOPPING=1");
    let status = child.wait();
    assert!(status.success(), "{status:?}");
}

/// While the sessions drain after SIGTERM the service still runs: the watchdog keeps being
/// pinged and nothing claims the loop has stalled.
#[test]
fn the_watchdog_is_pinged_while_sessions_drain() {
    // Several MiB fit in the sockets' buffers: the session's part ends that much sooner.
    const SIZE: u64 = 48 * 1024 * 1024;
    let sim = Sim::start_default();
    BigPattern::write_file(&sim.disk_path("/drain.bin"), SIZE);
    let dir = tempfile::tempdir().unwrap();
    let (config, _ports) = write_config(dir.path(), &sim, "listen = \"127.0.0.1:0\"");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = Process::spawn_plain(
        &mut serve(
            &config,
            &[
                ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
                ("WATCHDOG_USEC", "400000"),
                ("RUST_LOG", "info"),
                ("NO_COLOR", "1"),
            ],
        ),
        "qftpd serve",
    );
    let mut seen = Vec::new();
    let ready = expect_notify(&sock, &mut seen, "READY=1");
    let addr = ready
        .split("accepting on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the address in STATUS=")
        .to_string();

    // At 8 MB/s the download takes about 6 s: many watchdog periods.
    let out = dir.path().join("drain.bin");
    let url = format!("ftp://{}:{}@{addr}/drain.bin", ADMIN.0, ADMIN.1);
    let mut download = slow_fetch(&url, "8M", &out);
    Command::new("kill")
        .args(["-s", "TERM", &child.pid().to_string()])
        .status()
        .unwrap();
    expect_notify(&sock, &mut seen, "STOPPING=1");
    let stopping = seen.len();
    // Two pings after STOPPING=1, the drain still going on.
    expect_notify(&sock, &mut seen, "WATCHDOG=1");
    expect_notify(&sock, &mut seen, "WATCHDOG=1");
    assert!(
        download.try_wait().is_none(),
        "the download is still running: {seen:?}"
    );
    // Go on reading, as systemd does: a notification socket whose queue is full (10
    // datagrams) makes the sender wait.
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut more = 0;
        while sock.recv(&mut buf).is_ok() {
            more += 1;
        }
        more
    });
    assert!(download.wait().success());
    assert_eq!(std::fs::metadata(&out).unwrap().len(), SIZE);
    assert!(child.wait().success());
    assert!(seen.len() > stopping);
    drop(reader);
    let log = child.stderr_log();
    assert!(log.contains("waiting for sessions to end"), "{log}");
    assert!(!log.contains("stalled"), "{log}");
}

/// curl downloading `path` as admin into `out` at `rate` (curl's `--limit-rate`); returns
/// once the first bytes have arrived.
fn slow_download(gw: &Gateway, path: &str, rate: &str, out: &Path) -> Process {
    slow_fetch(
        &format!("{}{path}", gw.ftp_url(ADMIN.0, ADMIN.1)),
        rate,
        out,
    )
}

/// curl downloading `url` into `out` at `rate`; returns once the first bytes have arrived.
fn slow_fetch(url: &str, rate: &str, out: &Path) -> Process {
    let download = Process::spawn_plain(
        Command::new(require_tool("curl", "curl"))
            .args(["-sS", "--limit-rate", rate, "-o"])
            .arg(out)
            .arg(url),
        "curl",
    );
    let until = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(out).map_or(0, |m| m.len()) == 0 {
        assert!(
            Instant::now() < until,
            "the download of {url} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    download
}

#[test]
fn a_download_outlives_sigterm_and_idle_sessions_get_421() {
    const SIZE: u64 = 96 * 1024 * 1024;
    let sim = Sim::start_default();
    BigPattern::write_file(&sim.disk_path("/big.bin"), SIZE);
    let mut gw = Gateway::start(&sim, "shutdown-grace = 120");
    let mut idle = Control::login(gw.addr, ADMIN);
    idle.set_read_timeout(Duration::from_secs(60));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.bin");
    let mut download = slow_download(&gw, "/big.bin", "24M", &out);

    gw.signal("TERM");
    let reply = idle.reply_lenient();
    assert!(
        reply.starts_with("421"),
        "an idle session is told 421, got {reply:?}"
    );
    assert_eq!(idle.reply_lenient(), "", "then its connection is closed");

    let finished = download.wait();
    assert!(finished.success(), "the download completes: {finished:?}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), SIZE);
    let mut check = common::PatternVerifier::new(SIZE);
    check.feed_reader(&mut std::fs::File::open(&out).unwrap());
    assert_eq!(
        (check.pos, check.first_mismatch),
        (SIZE, None),
        "the downloaded bytes are the file's"
    );
    let status = gw.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "qftpd exits 0 after draining: {status:?}");
    assert!(
        TcpStream::connect(gw.addr).is_err(),
        "no new connections after the stop"
    );
    let log = gw.stderr_log();
    assert!(log.contains("stopping: no new sessions"), "{log}");
}

/// A session whose download a stop waits for gets the download's 226, then its QUIT is
/// answered 221 (Python's ftplib raised on an unsolicited 421 read as QUIT's reply); another
/// command after the transfer gets 421 and the connection is closed.
#[test]
fn after_a_drained_download_quit_gets_221_and_other_commands_421() {
    const SIZE: u64 = 32 * 1024 * 1024;
    let sim = Sim::start_default();
    BigPattern::write_file(&sim.disk_path("/big.bin"), SIZE);
    let mut gw = Gateway::start(&sim, "shutdown-grace = 120");
    let mut sessions: Vec<(Control, TcpStream)> = (0..2)
        .map(|_| {
            let mut c = Control::login(gw.addr, ADMIN);
            let data = common::control::connect_data(c.pasv());
            c.cmd("RETR /big.bin").assert_code(150);
            (c, data)
        })
        .collect();
    // Both transfers are in progress (the files are larger than the socket buffers).
    let mut first = vec![0u8; 1 << 20];
    for (_, data) in &mut sessions {
        data.read_exact(&mut first).unwrap();
    }
    gw.signal("TERM");
    for (i, (c, data)) in sessions.iter_mut().enumerate() {
        let mut rest = Vec::new();
        data.read_to_end(&mut rest).unwrap();
        assert_eq!(
            rest.len() as u64 + (1 << 20),
            SIZE,
            "session {i}: the whole file"
        );
        c.reply().assert_code(226);
    }
    let [(quitting, _), (other, _)] = &mut sessions[..] else {
        unreachable!()
    };
    quitting.cmd("QUIT").assert_code(221);
    other.cmd("NOOP").assert_says(421, "Service shutting down");
    assert!(other.replies_until_closed().is_empty());
    let status = gw.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
}

#[test]
fn sighup_reloads_for_new_sessions_and_keeps_open_ones_and_refuses_bad_configs() {
    let sim = Sim::start_default();
    let gw = Gateway::start(&sim, "greeting = \"first greeting\"");
    let (mut open, greeting) = connect(gw.addr);
    assert_eq!(greeting, "220 first greeting");
    open.user_pass(ADMIN);

    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace("first greeting", "second greeting"),
    )
    .unwrap();
    gw.signal("HUP");
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, greeting) = connect(gw.addr);
        if greeting == "220 second greeting" {
            break;
        }
        assert_eq!(greeting, "220 first greeting");
        assert!(Instant::now() < until, "the reload did not take effect");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        open.cmd_lenient("NOOP").starts_with("200"),
        "the open session goes on"
    );
    assert!(open.cmd_lenient("PWD").starts_with("257"));

    std::fs::write(
        &gw.config_path,
        "[ftp]\ngreeting = \"bad\"\nbogus-key = 1\n",
    )
    .unwrap();
    gw.signal("HUP");
    let until = Instant::now() + Duration::from_secs(20);
    while !gw.stderr_log().contains("reload refused") {
        assert!(
            Instant::now() < until,
            "no log line about the refused reload:\n{}",
            gw.stderr_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        gw.stderr_log().contains("bogus-key"),
        "the log names the bad key"
    );
    let (mut fresh, greeting) = connect(gw.addr);
    assert_eq!(
        greeting, "220 second greeting",
        "the configuration in force stays"
    );
    fresh.user_pass(ADMIN);
    assert!(open.cmd_lenient("NOOP").starts_with("200"));
}

/// Starts `qftpd serve` with `config` and returns it with the address it logged.
fn serve_logged(config: &Path) -> (Process, SocketAddr) {
    let mut child = Process::spawn(
        &mut serve(config, &[("RUST_LOG", "info"), ("NO_COLOR", "1")]),
        "qftpd serve",
        Stream::Stderr,
        listening_addr,
    );
    let addr = child.wait_ready(1, "")[0].parse().unwrap();
    (child, addr)
}

#[test]
fn ipv4_clients_of_a_dual_stack_socket_can_use_pasv() {
    let sim = Sim::start_default();
    std::fs::write(sim.disk_path("/v4.txt"), b"mapped").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, _ports) = write_config(dir.path(), &sim, "listen = \"[::]:0\"");
    let (_gw, addr) = serve_logged(&config);
    assert!(addr.is_ipv6(), "{addr}");
    let v4: SocketAddr = format!("127.0.0.1:{}", addr.port()).parse().unwrap();
    let r = run_ftplib(
        v4,
        &[
            op::connect(),
            op::login(ADMIN.0, ADMIN.1),
            op::cmd("PASV"),
            op::lines("LIST /"),
            op::retr("RETR /v4.txt", None),
        ],
    );
    assert!(
        r[2].reply()
            .starts_with("227 Entering Passive Mode (127,0,0,1,"),
        "{}",
        r[2].reply()
    );
    assert!(r[3].strings().iter().any(|l| l.ends_with(" v4.txt")));
    assert_eq!(r[4].data(), b"mapped");
}

/// An IPv6 client's PASV cannot be answered (its reply holds an IPv4 address): 425, and the
/// session goes on with EPSV.
#[test]
fn pasv_on_an_ipv6_control_connection_is_a_425_and_epsv_works() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let sim = Sim::start_default();
    std::fs::write(sim.disk_path("/v6.txt"), b"over IPv6").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, _ports) = write_config(dir.path(), &sim, "listen = \"[::1]:0\"");
    let (_gw, addr) = serve_logged(&config);
    let r = run_ftplib(
        addr,
        &[
            op::connect(),
            op::login(ADMIN.0, ADMIN.1),
            op::cmd("PASV"),
            op::cmd("NOOP"),
            op::retr("RETR /v6.txt", None),
        ],
    );
    assert_eq!(
        r[2].error(),
        "425 PASV cannot name an IPv6 address: use EPSV",
        "{:#}",
        r[2].raw
    );
    assert!(r[3].reply().starts_with("200"), "{:#}", r[3].raw);
    // ftplib uses EPSV on an IPv6 connection.
    assert_eq!(r[4].data(), b"over IPv6");
}

#[test]
fn sessions_still_open_after_the_grace_period_are_closed_and_qftpd_exits_0() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let sim = Sim::start_default();
    BigPattern::write_file(&sim.disk_path("/slow.bin"), SIZE);
    let mut gw = Gateway::start(&sim, "shutdown-grace = 1");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("slow.bin");
    // At 1 MB/s this download would take a minute: far longer than the grace period.
    let mut download = slow_download(&gw, "/slow.bin", "1M", &out);
    let stopped = Instant::now();
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "took {:?}",
        stopped.elapsed()
    );
    let cut = download.wait();
    assert!(
        !cut.success(),
        "the download was cut at the end of the grace period"
    );
    assert!(std::fs::metadata(&out).unwrap().len() < SIZE);
    assert!(
        gw.stderr_log().contains("grace period over"),
        "{}",
        gw.stderr_log()
    );
}

/// `shutdown-grace` changed by a reload is the one a later stop waits for.
#[test]
fn a_reloaded_shutdown_grace_is_the_one_the_stop_waits_for() {
    const SIZE: u64 = 24 * 1024 * 1024;
    let sim = Sim::start_default();
    BigPattern::write_file(&sim.disk_path("/graced.bin"), SIZE);
    let mut gw = Gateway::start(&sim, "shutdown-grace = 1");
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        config.replace("shutdown-grace = 1", "shutdown-grace = 120"),
    )
    .unwrap();
    gw.signal("HUP");
    let until = Instant::now() + Duration::from_secs(20);
    while !gw.stderr_log().contains("configuration reloaded") {
        assert!(Instant::now() < until, "no reload: {}", gw.stderr_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("graced.bin");
    // At 8 MB/s about 3 s: longer than the first grace, far shorter than the reloaded one.
    let mut download = slow_download(&gw, "/graced.bin", "8M", &out);
    gw.signal("TERM");
    assert!(download.wait().success(), "the download is not cut");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), SIZE);
    assert!(gw.wait_exit(Duration::from_secs(60)).success());
    let log = gw.stderr_log();
    assert!(log.contains("grace_secs=120"), "{log}");
    assert!(!log.contains("grace period over"), "{log}");
}

/// Started by its socket with no cluster configured, qftpd does not exit (the socket would
/// start it again at once, over and over): it says what is missing, answers 421, and takes
/// the fixed configuration at the next reload.
#[test]
fn socket_activated_without_a_cluster_answers_421_until_reloaded_with_one() {
    let sim = Sim::start_default();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("qftpd.toml");
    std::fs::write(&config, "[ftp]\ngreeting = \"configured at last\"\n").unwrap();
    let (mut activator, addr, mut first) = socket_activated(&config, "ftp");
    let mut reply = String::new();
    first.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("421 qftpd is not configured"),
        "{reply:?}"
    );
    let (_, again) = connect(addr);
    assert!(
        again.starts_with("421"),
        "still running, still 421: {again}"
    );

    let (good, _ports) = write_config(dir.path(), &sim, "greeting = \"configured at last\"");
    assert_eq!(good, config);
    let pid = activator.pid().to_string();
    Command::new("kill")
        .args(["-s", "HUP", &pid])
        .status()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let mut control = loop {
        let (control, greeting) = connect(addr);
        if greeting == "220 configured at last" {
            break control;
        }
        assert!(greeting.starts_with("421"), "{greeting}");
        assert!(
            Instant::now() < until,
            "the reload did not configure the service"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    control.user_pass(ADMIN);
    let log = activated_log(&mut activator);
    let missing: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("qumulo.url: missing"))
        .collect();
    assert_eq!(missing.len(), 1, "one clear line: {log}");
    assert!(
        missing[0].contains("systemctl reload qftpd"),
        "{}",
        missing[0]
    );
}

//! Security and reliability with real peers: FTPS with curl, lftp and ftplib (TLS 1.2 and
//! 1.3, PROT P, required TLS, certificate reload), brute-force bans, connection limits, idle
//! sessions, the cluster's certificate (CA file, pinned fingerprint), and a cluster outage the
//! gateway recovers from by itself.

mod common;

use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Sim;
use common::control::{Control, connect_data};
use common::{Gateway, OpResult, curl, hex, op, pattern, run_ftplib_with, scratch, toml_str};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ALICE: (&str, &str) = ("alice", "alicepw");
const BOB: (&str, &str) = ("bob", "bobpw");

/// A simulator with alice and bob, each with a home directory.
fn start_sim() -> Sim {
    Sim::builder()
        .users(&[("admin", "adminpw"), ALICE, BOB])
        .admin("admin")
        .home("alice")
        .home("bob")
        .start()
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as `NAME.pem` and
/// `NAME.key` in `dir`; returns the two paths and the SHA-256 of the certificate.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("generate certificate");
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let sha = hex(&Sha256::digest(certified.cert.der()));
    (cert, key, sha)
}

/// `[ftp]` lines for FTPS with `cert` and `key`.
fn tls_lines(cert: &Path, key: &Path, required: bool) -> String {
    format!(
        "tls.certificate = {}\ntls.key = {}\ntls.required = {required}\n",
        toml_str(cert.to_str().unwrap()),
        toml_str(key.to_str().unwrap())
    )
}

fn tls_options(ca: &Path, min: Option<&str>, max: Option<&str>) -> Value {
    json!({"tls": {"cafile": ca, "min": min, "max": max}})
}

fn assert_ok(results: &[OpResult]) {
    for r in results {
        assert!(r.ok, "ftplib {} failed: {:#}", r.op, r.raw);
    }
}

#[test]
fn ftps_with_curl_lftp_and_ftplib_over_tls_1_2_and_1_3() {
    let sim = start_sim();
    let dir = scratch();
    let (cert, key, sha) = certificate(dir.path(), "ftps");
    let gw = Gateway::start(&sim, &tls_lines(&cert, &key, true));
    let url = gw.ftp_url(ALICE.0, ALICE.1);
    let cacert = cert.to_str().unwrap();

    // curl: AUTH TLS on the control connection, PROT P on every data connection.
    let data = pattern(3 * 1024 * 1024 + 17, 6);
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let up = curl(
        &[
            "--ssl-reqd",
            "--cacert",
            cacert,
            "-T",
            src.to_str().unwrap(),
            &format!("{url}/home/alice/curl.bin"),
        ],
        120,
    );
    let log = String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "curl --ssl-reqd upload: {log}");
    assert!(log.contains("AUTH TLS") && log.contains("PROT P"), "{log}");
    let down = curl(
        &[
            "--ssl-reqd",
            "--cacert",
            cacert,
            &format!("{url}/home/alice/curl.bin"),
        ],
        120,
    );
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        down.stdout == data,
        "curl over FTPS: downloaded bytes differ"
    );

    // lftp forcing TLS on control and data.
    let lftp_settings = format!(
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true; \
         set ssl:verify-certificate true; set ssl:ca-file {cacert};"
    );
    let back = dir.path().join("lftp.bin");
    let out = gw.lftp_with(
        &lftp_settings,
        ALICE.0,
        ALICE.1,
        &format!(
            "put {} -o /home/alice/lftp.bin; get /home/alice/lftp.bin -o {}; cls -1 /home/alice",
            src.display(),
            back.display()
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "lftp over FTPS: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&back).unwrap() == data, "lftp: bytes differ");
    assert!(
        stdout.contains("lftp.bin") && stdout.contains("curl.bin"),
        "{stdout}"
    );

    // ftplib with each TLS version, checking the certificate presented.
    for version in ["1.2", "1.3"] {
        let results = run_ftplib_with(
            gw.addr,
            tls_options(&cert, Some(version), Some(version)),
            &[
                op::connect(),
                op::auth(),
                op::login(ALICE.0, ALICE.1),
                op::prot_p(),
                op::retr("RETR /home/alice/curl.bin", None),
                op::lines("LIST /home/alice"),
                op::quit(),
            ],
        );
        assert_ok(&results);
        let info = &results[1].value();
        assert_eq!(info["version"], format!("TLSv{version}"), "{info}");
        assert_eq!(info["cert_sha256"], sha.as_str());
        assert!(
            results[4].data() == data,
            "ftplib TLS {version}: bytes differ"
        );
    }
}

#[test]
fn required_tls_refuses_plaintext_logins_and_unprotected_data() {
    let sim = start_sim();
    let dir = scratch();
    let (cert, key, _) = certificate(dir.path(), "ftps");
    let gw = Gateway::start(&sim, &tls_lines(&cert, &key, true));

    // Plaintext: USER is refused before any password is sent.
    let mut c = Control::open(gw.addr);
    assert!(c.reply_lenient().starts_with("220"));
    let reply = c.cmd_lenient(&format!("USER {}", ALICE.0));
    assert!(reply.starts_with("534"), "plaintext USER: {reply}");
    let reply = c.cmd_lenient(&format!("PASS {}", ALICE.1));
    assert!(
        reply.starts_with("534") || reply.starts_with("503"),
        "plaintext PASS: {reply}"
    );
    drop(c);

    // curl without TLS fails to log in.
    let plain = curl(
        &[&format!("{}/home/alice/", gw.ftp_url(ALICE.0, ALICE.1))],
        60,
    );
    assert!(!plain.status.success(), "plaintext curl must fail");

    // TLS on the control connection but PROT C on the data: no data connection is opened.
    let results = run_ftplib_with(
        gw.addr,
        tls_options(&cert, None, None),
        &[
            op::connect(),
            op::auth(),
            op::login(ALICE.0, ALICE.1),
            op::cmd("PASV"),
            op::cmd("EPSV"),
            op::quit(),
        ],
    );
    assert!(results[2].ok, "{:#}", results[2].raw);
    for r in &results[3..5] {
        assert!(
            !r.ok && r.error().starts_with("5"),
            "{} without PROT P must be refused: {:#}",
            r.op,
            r.raw
        );
    }

    // Without TLS required, plaintext still works (and TLS is offered).
    let sim2 = start_sim();
    let gw2 = Gateway::start(&sim2, &tls_lines(&cert, &key, false));
    let mut c = Control::open(gw2.addr);
    assert!(c.reply_lenient().starts_with("220"));
    let feat = c.cmd_lenient("FEAT");
    assert!(feat.contains("AUTH TLS"), "{feat}");
    c.user_pass(ALICE);
}

#[test]
fn certificates_are_read_again_on_sighup() {
    let sim = start_sim();
    let dir = scratch();
    let (cert, key, first) = certificate(dir.path(), "live");
    let gw = Gateway::start(&sim, &tls_lines(&cert, &key, false));
    let presented = |ca: &Path| {
        let results = run_ftplib_with(
            gw.addr,
            tls_options(ca, None, None),
            &[op::connect(), op::auth(), op::quit()],
        );
        assert_ok(&results);
        results[1].value()["cert_sha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(presented(&cert), first);

    // A renewed certificate replaces the files; the service reloads.
    let (new_cert, new_key, second) = certificate(dir.path(), "renewed");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while presented(&cert) != second {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not used after SIGHUP:\n{}",
            gw.stderr_log()
        );
        std::thread::yield_now();
    }

    // A broken key is refused at reload; the previous certificate stays in force.
    std::fs::write(&key, "not a key").unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gw.stderr_log().contains("ftp.tls") {
        assert!(Instant::now() < deadline, "{}", gw.stderr_log());
        std::thread::yield_now();
    }
    assert_eq!(presented(&cert), second);
}

#[test]
fn brute_force_from_one_address_is_banned_while_others_log_in() {
    let sim = start_sim();
    let gw = Gateway::start(
        &sim,
        "failed-logins.max-per-address = 3\nfailed-logins.max-per-user = 20\n\
         failed-logins.delay-ms = 200\nfailed-logins.ban-time = 600\n",
    );
    let attacker = json!({"source": "127.0.0.1"});
    let mut ops = vec![op::connect()];
    for i in 0..3 {
        ops.push(op::login(ALICE.0, &format!("guess{i}")));
    }
    let results = run_ftplib_with(gw.addr, attacker.clone(), &ops);
    for r in &results[1..] {
        assert!(r.error().starts_with("530"), "{:#}", r.raw);
    }
    // Each failure waits longer than the one before: 200 ms, 400 ms, 800 ms at least.
    assert!(
        results[2].secs() >= 0.4 && results[3].secs() >= 0.8,
        "{results:?}"
    );

    // The address is banned now: a new connection is turned away, even with the right
    // password, and the log says why.
    let mut c = Control::open(gw.addr);
    let greeting = c.reply_lenient();
    assert!(greeting.starts_with("421"), "banned address: {greeting}");
    assert!(gw.stderr_log().contains("banned"), "{}", gw.stderr_log());

    // Another address still logs in, as alice and as bob.
    for (user, password) in [ALICE, BOB] {
        let results = run_ftplib_with(
            gw.addr,
            json!({"source": "127.0.0.2"}),
            &[
                op::connect(),
                op::login(user, password),
                op::pwd(),
                op::quit(),
            ],
        );
        assert_ok(&results);
    }
    // No password appears in the log.
    let log = gw.stderr_log();
    assert!(!log.contains("guess") && !log.contains(ALICE.1), "{log}");
}

/// The gateway's open descriptors (`/proc/PID/fd`).
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/<pid>/fd")
        .count()
}

/// An idle logged-in session holds one descriptor in the gateway, its control connection (the
/// open-file limit bounds how many sessions one gateway can hold). The first session opens the
/// pooled cluster connection the logins then share; later logins, one after the other, reuse it.
#[test]
fn an_idle_logged_in_session_holds_one_descriptor() {
    const SESSIONS: usize = 40;
    let sim = start_sim();
    let gw = Gateway::start(&sim, "");
    let mut first = Control::login(gw.addr, ALICE);
    first.cmd("NOOP").assert_code(200);
    let before = open_descriptors(gw.pid());
    let mut sessions: Vec<Control> = (0..SESSIONS)
        .map(|_| Control::login(gw.addr, ALICE))
        .collect();
    for session in &mut sessions {
        session.cmd("NOOP").assert_code(200);
    }
    let added = open_descriptors(gw.pid()) - before;
    // A pooled cluster connection may come or go meanwhile: a little slack, far below two
    // per session.
    assert!(
        (SESSIONS..=SESSIONS + 3).contains(&added),
        "{SESSIONS} idle sessions added {added} descriptors"
    );
}

#[test]
fn connections_are_capped_per_address_and_in_all() {
    let sim = start_sim();
    let gw = Gateway::start(&sim, "max-connections-per-ip = 2\nmax-connections = 3\n");
    let mut first = Control::open(gw.addr);
    let mut second = Control::open(gw.addr);
    assert!(first.reply_lenient().starts_with("220") && second.reply_lenient().starts_with("220"));
    let mut third = Control::open(gw.addr);
    let reply = third.reply_lenient();
    assert!(
        reply.starts_with("421") && reply.contains("your address"),
        "{reply}"
    );

    // Another address gets the last slot; then the server is full for everyone.
    let other = bind_from("127.0.0.2", gw.addr);
    let mut other = Control::from_stream(other);
    assert!(other.reply_lenient().starts_with("220"));
    let mut fourth = Control::from_stream(bind_from("127.0.0.3", gw.addr));
    let reply = fourth.reply_lenient();
    assert!(
        reply.starts_with("421") && reply.contains("Too many connections"),
        "{reply}"
    );

    // A slot comes back when a session ends.
    assert!(first.cmd_lenient("QUIT").starts_with("221"));
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = Control::open(gw.addr);
        if c.reply_lenient().starts_with("220") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot of a closed session never came back"
        );
        std::thread::yield_now();
    }
}

fn bind_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{source}:0").parse().unwrap();
    socket
        .bind(&local.into())
        .expect("bind a loopback source address");
    socket.connect(&to.into()).expect("connect");
    socket.into()
}

#[test]
fn idle_sessions_are_closed() {
    let sim = start_sim();
    let gw = Gateway::start(&sim, "idle-timeout = 1\n");
    let mut c = Control::login(gw.addr, ALICE);
    let started = Instant::now();
    // The next reply comes unasked: the server closes the idle session.
    let reply = c.reply_lenient();
    assert!(reply.starts_with("421"), "idle session: {reply:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        c.reply_lenient(),
        "",
        "the connection is closed after the 421"
    );
}

#[test]
fn the_clusters_certificate_is_verified_or_pinned() {
    let sim = start_sim();
    let pem = std::fs::read(&sim.cert_pem_path).unwrap();
    let der = rustls_pemfile_der(&pem);
    let pin = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let login = |gw: &Gateway| {
        run_ftplib_with(
            gw.addr,
            json!({}),
            &[op::connect(), op::login(ALICE.0, ALICE.1), op::quit()],
        )
    };

    // Pinned: trusted without any CA file.
    let pinned = Gateway::with_qumulo(&format!(
        "url = {}\nfingerprint-sha256 = \"{pin}\"\n",
        toml_str(&sim.url)
    ))
    .start();
    assert_ok(&login(&pinned));

    // Not pinned and not in any CA file: refused, and the operator is told why.
    let unknown = Gateway::with_qumulo(&format!("url = {}\n", toml_str(&sim.url))).start();
    let results = login(&unknown);
    assert!(!results[1].ok, "an unknown certificate must not be trusted");
    assert!(
        results[1].error().starts_with("421"),
        "{:#}",
        results[1].raw
    );

    // A wrong pin: refused, the log shows both fingerprints.
    let wrong = "AA:".repeat(31) + "AA";
    let mispinned = Gateway::with_qumulo(&format!(
        "url = {}\nfingerprint-sha256 = \"{wrong}\"\n",
        toml_str(&sim.url)
    ))
    .start();
    let results = login(&mispinned);
    assert!(
        results[1].error().starts_with("421"),
        "{:#}",
        results[1].raw
    );
    let log = mispinned.stderr_log();
    assert!(log.contains(&wrong) && log.contains(&pin), "{log}");

    // Verification off: works, with a warning at start.
    let careless = Gateway::with_qumulo(&format!(
        "url = {}\naccept-invalid-certs = true\n",
        toml_str(&sim.url)
    ))
    .start();
    assert_ok(&login(&careless));
    assert!(
        careless.stderr_log().contains("not verified"),
        "{}",
        careless.stderr_log()
    );
}

/// A cluster certificate made the usual way, `openssl req -x509` (which marks it `CA:TRUE`),
/// named in `ca-file`: trusted as the anchor it is, as curl and OpenSSL trust it; the same
/// kind of certificate for another name, or expired, is still refused with the reason logged.
#[test]
fn a_self_signed_ca_certificate_in_ca_file_is_trusted() {
    let dir = scratch();
    let make = |name: &str, subject: &str, san: &str, days: &str| -> (PathBuf, PathBuf) {
        let cert = dir.path().join(format!("{name}.pem"));
        let key = dir.path().join(format!("{name}.key"));
        let out = std::process::Command::new(common::require_tool("openssl", "openssl"))
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", days, "-subj", subject, "-addext", san])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::process::Command::new(common::require_tool("openssl", "openssl"))
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
            "openssl req -x509 makes a CA certificate"
        );
        (cert, key)
    };
    let login = |gw: &Gateway| {
        run_ftplib_with(
            gw.addr,
            json!({}),
            &[op::connect(), op::login(ALICE.0, ALICE.1), op::quit()],
        )
    };
    let users = [("admin", "adminpw"), ALICE];
    let home = ["--home", "alice:/home/alice"];
    let cluster = |cert: &Path, key: &Path| {
        let args = [
            &home[..],
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        ]
        .concat();
        Sim::start(&users, Some("admin"), &args)
    };

    let (cert, key) = make(
        "good",
        "/CN=qumulo",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "30",
    );
    let sim = cluster(&cert, &key);
    let gw = Gateway::for_cluster(&sim.url, Some(&cert)).start();
    assert_ok(&login(&gw));

    let (cert, key) = make(
        "other",
        "/CN=other",
        "subjectAltName=DNS:other.example",
        "30",
    );
    let sim = cluster(&cert, &key);
    let gw = Gateway::for_cluster(&sim.url, Some(&cert)).start();
    let results = login(&gw);
    assert!(
        results[1].error().starts_with("421"),
        "{:#}",
        results[1].raw
    );
    let log = gw.stderr_log();
    assert!(log.contains("NotValidForName"), "{log}");
}

/// The DER of the first certificate of a PEM text.
fn rustls_pemfile_der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem)
        .expect("a PEM certificate")
        .to_vec()
}

#[test]
fn a_cluster_outage_gives_421_and_451_and_the_gateway_recovers() {
    let sim = start_sim();
    let gw = Gateway::start(&sim, "");
    let data = pattern(100_000, 3);
    let src = scratch();
    let file = src.path().join("f.bin");
    std::fs::write(&file, &data).unwrap();

    // A session logged in before the outage.
    let mut c = Control::login(gw.addr, ALICE);

    sim.set_faults(r#"{"outage": true}"#);
    let reply = c.cmd_lenient("SIZE /home/alice");
    assert!(
        reply.starts_with("451"),
        "file operation during an outage: {reply}"
    );
    let reply = c.cmd_lenient("MKD /home/alice/during");
    assert!(reply.starts_with("451"), "MKD during an outage: {reply}");
    let results = run_ftplib_with(
        gw.addr,
        json!({}),
        &[op::connect(), op::login(BOB.0, BOB.1)],
    );
    assert!(
        results[1].error().starts_with("421"),
        "login during an outage: {:#}",
        results[1].raw
    );

    // The cluster comes back: the same session and new logins work, without a restart.
    sim.set_faults(r#"{"outage": false}"#);
    assert!(c.cmd_lenient("MKD /home/alice/after").starts_with("257"));
    let results = run_ftplib_with(
        gw.addr,
        json!({}),
        &[
            op::connect(),
            op::login(BOB.0, BOB.1),
            op::stor_file("STOR /home/bob/f.bin", &file, None),
            op::retr("RETR /home/bob/f.bin", None),
            op::quit(),
        ],
    );
    assert_ok(&results);
    assert!(results[3].data() == data);
    assert!(c.cmd_lenient("QUIT").starts_with("221"));
}

#[test]
fn slow_clients_outlast_the_clusters_request_timeout() {
    // A request may keep the cluster silent for 2 s; these transfers take several times that
    // because the FTP client is slow, which is not the cluster stalling.
    let sim = start_sim();
    let gw = Gateway::with_qumulo(&format!(
        "url = {}\nca-file = {}\nrequest-timeout = 2\n",
        toml_str(&sim.url),
        toml_str(sim.cert_pem_path.to_str().unwrap())
    ))
    .start();
    let dir = scratch();
    let data = pattern(1536 * 1024, 9);
    let src = dir.path().join("slow.bin");
    std::fs::write(&src, &data).unwrap();
    let url = format!("{}/home/alice/slow.bin", gw.ftp_url(ALICE.0, ALICE.1));
    let started = Instant::now();
    let up = curl(
        &["--limit-rate", "256K", "-T", src.to_str().unwrap(), &url],
        120,
    );
    assert!(
        up.status.success(),
        "slow upload: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        started.elapsed() > Duration::from_secs(4),
        "the upload was not slow"
    );
    assert!(std::fs::read(sim.disk_path("/home/alice/slow.bin")).unwrap() == data);
    let down = curl(&["--limit-rate", "256K", &url], 120);
    assert!(
        down.status.success(),
        "slow download: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(down.stdout == data, "slow download: bytes differ");
}

/// A control connection from `source` (any port) to `to`, greeted: returns it with the
/// greeting.
fn greeted_from(source: &str, to: SocketAddr) -> (Control, String) {
    let local: SocketAddr = SocketAddr::new(source.parse().expect("an address"), 0);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(local),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket
        .bind(&local.into())
        .unwrap_or_else(|e| panic!("bind the source address {source}: {e}"));
    socket.connect(&to.into()).expect("connect");
    let mut c = Control::from_stream(socket.into());
    let greeting = c.reply_lenient();
    (c, greeting)
}

/// One login of `user` from `source`: the reply to PASS and how long it took.
fn login_from(source: &str, to: SocketAddr, (user, password): (&str, &str)) -> (String, Duration) {
    let (mut c, greeting) = greeted_from(source, to);
    assert!(greeting.starts_with("220"), "from {source}: {greeting}");
    let reply = c.cmd_lenient(&format!("USER {user}"));
    assert!(reply.starts_with("331"), "from {source}: {reply}");
    let started = Instant::now();
    let reply = c.cmd_lenient(&format!("PASS {password}"));
    (reply, started.elapsed())
}

#[test]
fn the_owner_logs_in_while_others_guess_the_password_from_several_addresses() {
    let sim = start_sim();
    // The defaults: 5 failures ban an address, 10 for one user name slow its logins.
    let gw = Gateway::start(&sim, "");
    let addr = gw.addr;
    // Ten wrong passwords for admin, five from each of two addresses, all at once.
    let guesses: Vec<_> = ["127.0.0.2", "127.0.0.3"]
        .into_iter()
        .flat_map(|source| (0..5).map(move |i| (source, format!("guess-{source}-{i}"))))
        .map(|(source, guess)| {
            std::thread::spawn(move || login_from(source, addr, ("admin", &guess)).0)
        })
        .collect();
    for guess in guesses {
        let reply = guess.join().unwrap();
        assert!(reply.starts_with("530"), "a wrong password: {reply}");
    }
    assert_eq!(
        sim.logins(),
        (0, 10),
        "every guess was checked by the cluster"
    );
    for banned in ["127.0.0.2", "127.0.0.3"] {
        let (_, greeting) = greeted_from(banned, addr);
        assert!(greeting.starts_with("421"), "{banned}: {greeting}");
    }

    // The owner, from a third address, with the right password: slowed, never refused.
    let (reply, took) = login_from("127.0.0.4", addr, ("admin", "adminpw"));
    println!("the owner's PASS after 10 failures from 2 addresses: {reply:?} in {took:?}");
    assert!(reply.starts_with("230"), "the owner was refused: {reply}");
    assert!(
        took >= Duration::from_millis(500),
        "logins for admin are slowed by delay-ms: {took:?}"
    );
    assert!(
        took < Duration::from_secs(8 + 4),
        "the owner waits at most the bounded delay: {took:?}"
    );
    let log = gw.stderr_log();
    assert!(
        log.contains("logins for this user name are slowed"),
        "{log}"
    );
    assert!(!log.contains("guess-") && !log.contains("adminpw"), "{log}");
}

#[test]
fn simultaneous_guesses_from_one_address_reach_the_cluster_at_most_max_per_address_times() {
    let sim = start_sim();
    let gw = Gateway::start(&sim, "failed-logins.max-per-address = 5\n");
    // A cluster slow to answer, so that every guess is sent before the first is refused.
    sim.set_faults(r#"{"latency_ms": 300}"#);
    let addr = gw.addr;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(30));
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let (mut c, greeting) = greeted_from("127.0.0.5", addr);
                assert!(greeting.starts_with("220"), "{greeting}");
                assert!(c.cmd_lenient("USER alice").starts_with("331"));
                barrier.wait();
                c.cmd_lenient(&format!("PASS guess{i}"))
            })
        })
        .collect();
    let replies: Vec<String> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    let (accepted, refused) = sim.logins();
    println!("30 simultaneous PASS from one address: {refused} reached the cluster");
    assert_eq!(accepted, 0);
    assert_eq!(
        refused, 5,
        "at most max-per-address guesses reach the cluster"
    );
    let wrong = replies.iter().filter(|r| r.starts_with("530")).count();
    let turned_away = replies
        .iter()
        .filter(|r| r.starts_with("421") && r.contains("Too many failed logins from your address"))
        .count();
    assert_eq!((wrong, turned_away), (5, 25), "{replies:#?}");
    let (_, greeting) = greeted_from("127.0.0.5", addr);
    assert!(
        greeting.starts_with("421"),
        "the address is banned: {greeting}"
    );
}

#[test]
fn successful_and_unchecked_logins_are_not_counted_and_the_address_ban_still_works() {
    let sim = start_sim();
    let gw = Gateway::start(
        &sim,
        "failed-logins.max-per-address = 3\nfailed-logins.delay-ms = 100\n",
    );
    let addr = gw.addr;
    // Ten right logins at once from one address, more than max-per-address: the ones past
    // it wait for the ones being checked, and all get in.
    sim.set_faults(r#"{"latency_ms": 200}"#);
    let logins: Vec<_> = (0..10)
        .map(|_| std::thread::spawn(move || login_from("127.0.0.6", addr, ALICE).0))
        .collect();
    for login in logins {
        let reply = login.join().unwrap();
        assert!(reply.starts_with("230"), "{reply}");
    }
    assert_eq!(sim.logins(), (10, 0));

    // Logins the cluster cannot check are not failures either.
    sim.set_faults(r#"{"outage": true}"#);
    for _ in 0..5 {
        let (reply, _) = login_from("127.0.0.6", addr, ALICE);
        assert!(reply.starts_with("421"), "during an outage: {reply}");
    }
    sim.set_faults("{}");

    // Two failures, a success, then the third failure bans the address.
    let mut before_the_ban = greeted_from("127.0.0.6", addr).0;
    for guess in ["guess1", "guess2"] {
        let (reply, _) = login_from("127.0.0.6", addr, (ALICE.0, guess));
        assert!(reply.starts_with("530"), "{reply}");
    }
    let (reply, _) = login_from("127.0.0.6", addr, ALICE);
    assert!(
        reply.starts_with("230"),
        "not banned after 2 failures: {reply}"
    );
    let (reply, _) = login_from("127.0.0.6", addr, (BOB.0, "guess3"));
    assert!(reply.starts_with("530"), "{reply}");
    let (_, greeting) = greeted_from("127.0.0.6", addr);
    assert!(greeting.starts_with("421"), "banned: {greeting}");
    // A connection opened before the ban cannot log in either, even with the password.
    assert!(before_the_ban.cmd_lenient("USER alice").starts_with("331"));
    let reply = before_the_ban.cmd_lenient("PASS alicepw");
    assert!(
        reply.starts_with("421") && reply.contains("failed logins from your address"),
        "{reply}"
    );
    assert_eq!(
        before_the_ban.reply_lenient(),
        "",
        "the connection is closed after 421"
    );
    // Another address logs in.
    let (reply, _) = login_from("127.0.0.7", addr, ALICE);
    assert!(reply.starts_with("230"), "{reply}");
    assert!(
        gw.stderr_log().contains("address banned"),
        "{}",
        gw.stderr_log()
    );
}

/// Set in the copy of this test binary that runs in a network namespace of its own.
const IN_NETNS: &str = "SECURITY_TEST_IN_NETNS";

#[test]
fn ipv6_clients_are_capped_per_64_and_ipv4_mapped_ones_per_address() {
    if std::env::var_os(IN_NETNS).is_none() {
        // Several addresses of one /64 need a network of their own: the same test runs
        // again in a new user and network namespace, where it may add them to lo.
        common::require_tool("unshare", "util-linux");
        common::require_tool("ip", "iproute2");
        let out = std::process::Command::new(common::require_tool("unshare", "util-linux"))
            .args(["--user", "--map-root-user", "--net", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ipv6_clients_are_capped_per_64_and_ipv4_mapped_ones_per_address",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(IN_NETNS, "1")
            .output()
            .expect("run unshare");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() && text.contains("unshare failed") {
            println!(
                "skipped: no user and network namespace here: {}",
                text.trim()
            );
            return;
        }
        assert!(
            out.status.success() && text.contains("1 passed"),
            "in a network namespace:\n{text}"
        );
        return;
    }
    let ip = |args: &str| {
        let status = std::process::Command::new(common::require_tool("ip", "iproute2"))
            .args(args.split_whitespace())
            .status()
            .expect("run ip");
        assert!(status.success(), "ip {args}");
    };
    ip("link set lo up");
    for address in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2::3",
        "2001:db8:1:3::1",
    ] {
        ip(&format!("-6 addr add {address}/64 dev lo nodad"));
    }
    let sim = start_sim();
    let gw = Gateway::builder(&sim)
        .listen("[::]:0")
        .ftp("max-connections-per-ip = 2\n")
        .start();
    let to = |host: &str| SocketAddr::new(host.parse().unwrap(), gw.port());
    let server = to("2001:db8:1:2::1");
    // Two connections from one /64 take its slots, whichever addresses they come from.
    let (_a, greeting) = greeted_from("2001:db8:1:2::1", server);
    assert!(greeting.starts_with("220"), "{greeting}");
    let (_b, greeting) = greeted_from("2001:db8:1:2::2", server);
    assert!(greeting.starts_with("220"), "{greeting}");
    let (_, greeting) = greeted_from("2001:db8:1:2::3", server);
    assert!(
        greeting.starts_with("421") && greeting.contains("your address"),
        "a third connection from the same /64: {greeting}"
    );
    // Another /64 and ::1 have their own.
    let (_c, greeting) = greeted_from("2001:db8:1:3::1", server);
    assert!(greeting.starts_with("220"), "{greeting}");
    let (_d, greeting) = greeted_from("::1", to("::1"));
    assert!(greeting.starts_with("220"), "{greeting}");
    // IPv4 clients on the dual-stack socket (seen as ::ffff:127.0.0.x) count per address.
    let v4 = to("127.0.0.1");
    let (_e, greeting) = greeted_from("127.0.0.1", v4);
    assert!(greeting.starts_with("220"), "{greeting}");
    let (_f, greeting) = greeted_from("127.0.0.1", v4);
    assert!(greeting.starts_with("220"), "{greeting}");
    let (_, greeting) = greeted_from("127.0.0.1", v4);
    assert!(
        greeting.starts_with("421"),
        "a third from 127.0.0.1: {greeting}"
    );
    let (_g, greeting) = greeted_from("127.0.0.2", v4);
    assert!(
        greeting.starts_with("220"),
        "127.0.0.2 is another address: {greeting}"
    );
}

/// A client from `source` that sends `AUTH TLS`, reads the 234 and then says nothing: the TLS
/// handshake never starts.
fn stall_in_auth_tls(source: &str, addr: SocketAddr) -> Control {
    let mut c = Control::from_stream(bind_from(source, addr));
    let greeting = c.reply_lenient();
    assert!(greeting.starts_with("220"), "{source}: {greeting}");
    let reply = c.cmd_lenient("AUTH TLS");
    assert!(reply.starts_with("234"), "{source}: {reply}");
    c
}

#[test]
fn stalled_tls_handshakes_do_not_hold_the_connection_slots() {
    let sim = start_sim();
    let dir = scratch();
    let (cert, key, _) = certificate(dir.path(), "ftps");
    let gw = Gateway::start(
        &sim,
        &format!(
            "{}tls.handshake-timeout = 2\nidle-timeout = 5\nmax-connections = 100\n\
             max-connections-per-ip = 20\n",
            tls_lines(&cert, &key, false)
        ),
    );
    // 100 connections from 5 addresses, each stalled after AUTH TLS, take every slot.
    let started = Instant::now();
    let mut stalled: Vec<Control> = (0..100)
        .map(|i| stall_in_auth_tls(&format!("127.0.0.{}", 2 + i % 5), gw.addr))
        .collect();
    let all_held = started.elapsed();
    let reply = Control::from_stream(bind_from("127.0.0.7", gw.addr)).reply_lenient();
    assert!(
        reply.starts_with("421") && reply.contains("Too many connections"),
        "with every slot held: {reply}"
    );

    // The handshakes time out (2 s): every stalled connection is closed and the slots come
    // back long before the idle timeout would matter.
    let deadline = started + all_held + Duration::from_secs(10);
    let mut fresh = loop {
        let mut c = Control::from_stream(bind_from("127.0.0.7", gw.addr));
        if c.reply_lenient().starts_with("220") {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled handshakes still hold every slot after {:?}",
            started.elapsed()
        );
        std::thread::yield_now();
    };
    let freed = started.elapsed();
    eprintln!(
        "100 stalled AUTH TLS: all slots held after {all_held:?}, a slot free after {freed:?}"
    );
    fresh.user_pass(ALICE);
    for c in &mut stalled {
        assert_eq!(
            c.reply_lenient(),
            "",
            "a stalled connection got a reply instead of being closed"
        );
    }
    let log = gw.stderr_log();
    assert!(
        log.lines()
            .any(|l| l.contains("TLS handshake did not finish within 2s")
                && l.contains("source: 127.0.0.")),
        "the closings are logged with the client's address:\n{log}"
    );
}

/// Sends `line` whenever the server has said nothing for a second, as a client that keeps its
/// connection busy; each reply must start with one of `expect`. Returns the first reply that does not
/// (`""` when the connection was closed), when it came, and whether the connection was closed
/// after it; `None` when `within` passed without one.
fn keep_sending(
    c: &mut Control,
    line: &str,
    expect: &[&str],
    within: Duration,
) -> Option<(String, Duration, bool)> {
    let started = Instant::now();
    while started.elapsed() < within {
        c.set_read_timeout(Duration::from_secs(1));
        let mut unasked = String::new();
        let waited = c.stream.read_line(&mut unasked);
        c.set_read_timeout(Duration::from_secs(30));
        let reply = match waited {
            Ok(0) => return Some((String::new(), started.elapsed(), true)),
            Ok(_) => unasked,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                c.cmd_lenient(line)
            }
            Err(e) => panic!("reading the control connection: {e}"),
        };
        if !expect.iter().any(|code| reply.starts_with(code)) {
            let when = started.elapsed();
            return Some((reply, when, c.reply_lenient().is_empty()));
        }
    }
    None
}

#[test]
fn connections_that_do_not_log_in_are_closed_at_the_login_deadline() {
    let sim = start_sim();
    let dir = scratch();
    let (cert, key, _) = certificate(dir.path(), "ftps");
    let gw = Gateway::start(
        &sim,
        &format!(
            "{}login-timeout = 3\ntls.handshake-timeout = 30\n",
            tls_lines(&cert, &key, false)
        ),
    );
    let addr = gw.addr;
    let talker = |line: &'static str, expect: &'static [&'static str]| {
        std::thread::spawn(move || {
            let mut c = Control::open(addr);
            assert!(c.reply_lenient().starts_with("220"));
            keep_sending(&mut c, line, expect, Duration::from_secs(20))
        })
    };
    let noop = talker("NOOP", &["200"]);
    // The first USER is answered 331, the next ones 503 (a new connection is needed).
    let user = talker("USER alice", &["331", "503"]);
    let silent_tls = std::thread::spawn(move || {
        let mut c = stall_in_auth_tls("127.0.0.1", addr);
        let started = Instant::now();
        (c.reply_lenient(), started.elapsed())
    });
    let logged_in = std::thread::spawn(move || {
        let mut c = Control::login(addr, ALICE);
        keep_sending(&mut c, "NOOP", &["200"], Duration::from_secs(6))
    });

    for (what, thread) in [("NOOP every second", noop), ("USER every second", user)] {
        let (reply, when, closed) = thread
            .join()
            .unwrap()
            .unwrap_or_else(|| panic!("{what}: still not closed after 20 s"));
        assert!(reply.starts_with("421 Login timeout"), "{what}: {reply:?}");
        assert!(closed, "{what}: the connection stays open after the 421");
        assert!(
            when >= Duration::from_millis(2500) && when < Duration::from_secs(10),
            "{what}: closed after {when:?}, the login deadline is 3 s"
        );
        eprintln!("{what}: 421 Login timeout after {when:?}");
    }
    // Mid-handshake no reply can be sent: the connection is closed.
    let (reply, when) = silent_tls.join().unwrap();
    assert_eq!(reply, "", "AUTH TLS and silence");
    assert!(
        when < Duration::from_secs(10),
        "AUTH TLS and silence: closed after {when:?}, the login deadline is 3 s"
    );
    assert_eq!(
        logged_in.join().unwrap(),
        None,
        "a logged-in session is not touched by the login deadline"
    );
    let log = gw.stderr_log();
    assert!(
        log.lines()
            .any(|l| l.contains("no login within 3s") && l.contains("source: 127.0.0.1")),
        "the closings are logged with the client's address:\n{log}"
    );
}

#[test]
fn required_ftps_cannot_be_downgraded_with_prot_c() {
    let sim = start_sim();
    let secret = pattern(512 * 1024, 21);
    let on_disk = sim.disk_path("/home/alice/secret.bin");
    std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
    std::fs::write(&on_disk, &secret).unwrap();
    let dir = scratch();
    let (cert, key, _) = certificate(dir.path(), "ftps");
    let gw = Gateway::start(
        &sim,
        &format!(
            "{}tls.handshake-timeout = 3\n",
            tls_lines(&cert, &key, true)
        ),
    );
    let mut c = Control::connect(gw.addr);
    c.auth_tls();
    c.user_pass(ALICE);
    // Without PROT P a transfer command is refused as such, even without a data connection.
    c.cmd("RETR /home/alice/secret.bin").assert_code(521);
    c.cmd("PBSZ 0").assert_code(200);
    c.cmd("PROT S").assert_code(536);
    c.cmd("PROT E").assert_code(536);
    c.cmd("PROT X").assert_code(504);
    c.cmd("PROT P").assert_code(200);

    // The attack: PROT P, PASV, PROT C, then RETR over a plain TCP data connection.
    let addr = c.pasv();
    c.cmd("PROT C").assert_code(534);
    let mut data = connect_data(addr);
    let started = Instant::now();
    let mut replies = vec![c.cmd("RETR /home/alice/secret.bin")];
    let mut received = Vec::new();
    let _ = data.read_to_end(&mut received);
    if replies[0].code == 150 {
        replies.push(c.reply());
    }
    assert!(
        !received
            .windows(64)
            .any(|w| secret.windows(64).next() == Some(w)),
        "the file came in clear over the data connection ({} bytes)",
        received.len()
    );
    let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
    assert_eq!(codes, [150, 425], "{replies:#?}");
    // The data connection stays silent (no ClientHello): its handshake times out (3 s), long
    // before the data timeout (120 s).
    assert!(
        replies[1].text().contains("TLS handshake timed out")
            && started.elapsed() < Duration::from_secs(30),
        "after {:?}: {replies:#?}",
        started.elapsed()
    );
    c.assert_in_step();

    // The level stayed P: a TLS data connection gets the file.
    let results = run_ftplib_with(
        gw.addr,
        tls_options(&cert, None, None),
        &[
            op::connect(),
            op::auth(),
            op::login(ALICE.0, ALICE.1),
            op::prot_p(),
            op::cmd("PROT C"),
            op::retr("RETR /home/alice/secret.bin", None),
            op::quit(),
        ],
    );
    assert!(
        results[4].error().starts_with("534"),
        "ftplib PROT C: {:#}",
        results[4].raw
    );
    assert!(results[5].ok, "{:#}", results[5].raw);
    assert!(results[5].data() == secret, "RETR over TLS: bytes differ");
}

#[test]
fn data_connections_must_resume_their_own_control_connections_tls_session() {
    let sim = start_sim();
    let secret = pattern(300 * 1024 + 5, 22);
    let on_disk = sim.disk_path("/home/alice/reuse.bin");
    std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
    std::fs::write(&on_disk, &secret).unwrap();
    let dir = scratch();
    let (cert, key, _) = certificate(dir.path(), "ftps");
    let gw = Gateway::start(
        &sim,
        &format!(
            "{}tls.require-session-reuse = true\n",
            tls_lines(&cert, &key, false)
        ),
    );
    let url = format!("{}/home/alice/reuse.bin", gw.ftp_url(ALICE.0, ALICE.1));
    let cacert = cert.to_str().unwrap();
    for (version, tls) in [
        ("1.2", ["--tlsv1.2", "--tls-max", "1.2"]),
        ("1.3", ["--tlsv1.3", "--tls-max", "1.3"]),
    ] {
        // curl resumes the control connection's session on the data connection.
        let down = curl(
            &[
                "--ssl-reqd",
                "--cacert",
                cacert,
                tls[0],
                tls[1],
                tls[2],
                &url,
            ],
            60,
        );
        let log = String::from_utf8_lossy(&down.stderr);
        assert!(down.status.success(), "curl TLS {version}: {log}");
        assert!(down.stdout == secret, "curl TLS {version}: bytes differ");

        // ftplib: a fresh TLS session on the data connection, the control connection's, and
        // another FTP session's.
        let out = Command::new(common::require_tool("python3", "python3"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ftps_reuse.py"))
            .args([
                &gw.addr.ip().to_string(),
                &gw.addr.port().to_string(),
                cacert,
                version,
            ])
            .args([ALICE.0, ALICE.1, "/home/alice/reuse.bin"])
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "ftps_reuse.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let results: Value = serde_json::from_slice(&out.stdout).expect("JSON from ftps_reuse.py");
        let own = &results["own"];
        assert!(
            own["ok"] == true && own["reused"] == true && own["bytes"] == secret.len(),
            "TLS {version}, resuming its own session: {results:#}"
        );
        for case in ["fresh", "other"] {
            let r = &results[case];
            let reply = r["reply"].as_str().or(r["error"].as_str()).unwrap_or("");
            assert!(
                r["ok"] == false
                    && r["reused"] != true
                    && reply.starts_with("425")
                    && reply.contains("TLS session reuse required"),
                "TLS {version}, {case}: {results:#}"
            );
        }
    }
    let log = gw.stderr_log();
    assert!(
        log.lines()
            .any(|l| l.contains(" WARN ") && l.contains("TLS session reuse required")),
        "the refusals are logged:\n{log}"
    );
}

#[test]
fn lftp_over_ftps_resumes_tls_sessions_and_logs_no_warning() {
    let sim = start_sim();
    let dir = scratch();
    let (cert, key, _) = certificate(dir.path(), "ftps");
    let gw = Gateway::start(
        &sim,
        &format!(
            "{}tls.require-session-reuse = true\n",
            tls_lines(&cert, &key, true)
        ),
    );
    let data = pattern(200 * 1024, 23);
    let src = dir.path().join("lftp.bin");
    std::fs::write(&src, &data).unwrap();
    let back = dir.path().join("back.bin");
    // lftp resumes the control connection's TLS session on its data connections, and names
    // the server by its IP address in SNI on each.
    let out = gw.lftp_with(
        &format!(
            "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true; \
             set ssl:verify-certificate true; set ssl:ca-file {};",
            cert.display()
        ),
        ALICE.0,
        ALICE.1,
        &format!(
            "put {} -o /home/alice/lftp.bin; get /home/alice/lftp.bin -o {}; cls -1 /home/alice",
            src.display(),
            back.display()
        ),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "lftp over FTPS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&back).unwrap() == data, "lftp: bytes differ");
    let warnings = gw.loud_lines();
    assert!(
        warnings.is_empty(),
        "warnings for a clean lftp session:\n{}",
        warnings.join("\n")
    );
}

/// A client that sends commands without ever reading the replies fills its own receive
/// buffer, and then the server's writes wait: it is still closed at the login deadline (the
/// connection is shut down under the stuck session), and its slot comes back.
#[test]
fn a_client_that_never_reads_its_replies_is_closed_at_the_login_deadline() {
    let sim = start_sim();
    let gw = Gateway::start(
        &sim,
        "login-timeout = 2\nmax-connections = 1\nmax-connections-per-ip = 1\n",
    );
    let stream = TcpStream::connect(gw.addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let started = Instant::now();
    // 64 MiB of NOOP: far more replies than the socket buffers of both sides hold.
    let flood = std::thread::spawn(move || {
        let chunk = b"NOOP\r\n".repeat(64 * 1024);
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match writer.write_all(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(_) => break,
            }
        }
        sent
    });
    // The one slot is held until the connection is closed; then a new client gets its 220.
    let deadline = started + Duration::from_secs(30);
    loop {
        let mut c = Control::from_stream(TcpStream::connect(gw.addr).unwrap());
        let reply = c.reply_lenient();
        if reply.starts_with("220") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot is still held after 30 s: {reply:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let freed = started.elapsed();
    assert!(freed < Duration::from_secs(15), "freed after {freed:?}");
    drop(stream);
    let sent = flood.join().unwrap();
    println!("slot freed after {freed:?}; the client had sent {sent} bytes");
}

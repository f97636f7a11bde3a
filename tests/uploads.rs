//! Uploads that lose nothing, and data connections that cannot stall forever: `qftpd serve`
//! in front of `qftpd sim`, driven by curl and Python's ftplib.
//!
//! STOR writes to a hidden `.qftpd-upload.*` file next to its target and renames it over the
//! target only when the transfer completed. These tests break uploads in every way a client
//! can (killed mid-transfer, control connection closed, ABOR, data connection stalled) and
//! check on the simulator's data directory that the previous file is intact and nothing is left
//! behind. Also: ABOR of a download, QUIT during an upload, and temporary files kept out of
//! listings.

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::control::{Control, connect_data};
use common::{Gateway, curl, curl_ok, op, pattern, read, scratch, start, wait_with_deadline};
use common::{Sim, assert_code, wait_until};

const ALICE: (&str, &str) = ("alice", "alicepw");

/// How long the gateway may take to notice a broken upload and clean up after it.
const CLEANUP_DEADLINE: Duration = Duration::from_secs(30);

/// Permission bits of a file in the simulator's data directory.
fn mode(sim: &Sim, api_path: &str) -> u32 {
    std::fs::metadata(sim.disk_path(api_path))
        .unwrap_or_else(|e| panic!("stat {api_path}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

/// Inode number of a file in the simulator's data directory (changes when a rename replaces
/// the file, stays when the file is written in place).
fn inode(sim: &Sim, api_path: &str) -> u64 {
    std::fs::metadata(sim.disk_path(api_path))
        .unwrap_or_else(|e| panic!("stat {api_path}: {e}"))
        .ino()
}

/// Temporary upload files in a directory of the simulator, with their sizes.
fn debris(sim: &Sim, api_dir: &str) -> Vec<(String, u64)> {
    std::fs::read_dir(sim.disk_path(api_dir))
        .expect("read the data directory")
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let size = e.metadata().ok()?.len();
            name.starts_with(".qftpd-upload.").then_some((name, size))
        })
        .collect()
}

/// Waits for the gateway to remove every temporary upload file of `/`.
fn assert_no_debris_soon(sim: &Sim, gw: &Gateway) {
    let until = Instant::now() + CLEANUP_DEADLINE;
    loop {
        let left = debris(sim, "/");
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "temporary upload files left behind: {left:?}\ngateway log:\n{}",
            gw.stderr_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts each line of `out` starts with the code at its place in `codes`.
fn assert_replies(out: &[String], codes: &[&str]) {
    assert_eq!(out.len(), codes.len(), "{out:?}");
    for (line, code) in out.iter().zip(codes) {
        assert!(line.starts_with(code), "expected {codes:?}, got {out:?}");
    }
}

/// Stores `data` at `path` as alice, with ftplib.
fn put(gw: &Gateway, path: &str, data: &[u8]) {
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[op::stor(&format!("STOR {path}"), data, None)],
    );
    assert_code(&r[0], "226");
}

/// A Python ftplib client that misbehaves on purpose. Arguments: host, port, user, password,
/// mode, FTP path, bytes to send or read, local file. Prints each reply it reads on one line (`timeout` when none
/// came within 60 s).
const ROGUE_CLIENT: &str = r#"
import ftplib, socket, sys
host, port, user, password, mode, path, size = sys.argv[1:8]
ftp = ftplib.FTP()
ftp.connect(host, int(port), timeout=60)
ftp.login(user, password)
ftp.voidcmd("TYPE I")

def reply():
    try:
        print(ftp.getmultiline().replace("\n", " | "), flush=True)
    except (socket.timeout, TimeoutError):
        print("timeout", flush=True)
    except EOFError:
        print("eof", flush=True)

if mode == "close-control":
    # Part of the data, then the control connection goes away before the data connection
    # ends, as when the client is killed.
    conn = ftp.transfercmd("STOR " + path)
    conn.sendall(b"x" * int(size))
    ftp.sock.shutdown(socket.SHUT_RDWR)
    ftp.close()
    conn.close()
    print("closed", flush=True)
elif mode == "abort-stor":
    # Part of the data, then ftplib's abort() (ABOR sent as TCP urgent data) while the data
    # connection is open; the second reply; the session goes on.
    conn = ftp.transfercmd("STOR " + path)
    conn.sendall(b"x" * int(size))
    print(ftp.abort(), flush=True)
    reply()
    conn.close()
    print(ftp.voidcmd("NOOP"), flush=True)
    print(ftp.sendcmd("ABOR"), flush=True)
elif mode == "telnet-abort-stor":
    # As BSD ftp aborts: Telnet IP and Synch before ABOR, the Synch's IAC as urgent data.
    conn = ftp.transfercmd("STOR " + path)
    conn.sendall(b"x" * int(size))
    ftp.sock.sendall(b"\xff\xf4\xff", socket.MSG_OOB)
    ftp.sock.sendall(b"\xf2ABOR\r\n")
    reply()
    reply()
    conn.close()
    print(ftp.voidcmd("NOOP"), flush=True)
    # The whole sequence in line, with no transfer to abort.
    ftp.sock.sendall(b"\xff\xf4\xff\xf2ABOR\r\n")
    reply()
elif mode == "abort-retr":
    # Reads `size` bytes of a download, then abort(); then whatever is left on the data
    # connection, and the count of bytes received; the session goes on.
    conn = ftp.transfercmd("RETR " + path)
    got = 0
    while got < int(size):
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    print(ftp.abort(), flush=True)
    reply()
    conn.settimeout(60)
    try:
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except OSError:
        pass
    conn.close()
    print("received", got, flush=True)
    print(ftp.voidcmd("NOOP"), flush=True)
    print(ftp.size(path), flush=True)
elif mode == "quit-mid-stor":
    # Half of the data, QUIT, the other half; then every reply until the server closes.
    half = int(size) // 2
    conn = ftp.transfercmd("STOR " + path)
    conn.sendall(b"x" * half)
    ftp.sock.sendall(b"QUIT\r\n")
    conn.sendall(b"y" * (int(size) - half))
    conn.close()
    reply()
    reply()
    reply()
elif mode == "hold-stor":
    # Part of the data, then waits until its standard input closes; then abort().
    conn = ftp.transfercmd("STOR " + path)
    conn.sendall(b"x" * int(size))
    sys.stdin.read()
    print(ftp.abort(), flush=True)
    reply()
    conn.close()
elif mode == "stall-stor":
    # Opens the data connection for STOR and sends nothing.
    conn = ftp.transfercmd("STOR " + path)
    reply()
    conn.close()
elif mode == "cut-retr":
    # Reads the first `size` bytes of the file into the local file argv[8], then closes the
    # data connection.
    conn = ftp.transfercmd("RETR " + path)
    data = b""
    while len(data) < int(size):
        chunk = conn.recv(int(size) - len(data))
        if not chunk:
            break
        data += chunk
    conn.close()
    with open(sys.argv[8], "wb") as f:
        f.write(data)
    reply()
elif mode == "stall-retr":
    # Opens the data connection for RETR and reads nothing.
    conn = ftp.transfercmd("RETR " + path)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reply()
    conn.close()
else:
    raise SystemExit("unknown mode " + mode)
"#;

/// Runs [`ROGUE_CLIENT`] as alice; returns its output lines.
fn rogue(gw: &Gateway, mode: &str, path: &str, size: usize) -> Vec<String> {
    rogue_with(gw, mode, path, size, Path::new("-"))
}

/// Runs [`ROGUE_CLIENT`] as alice with a local file; returns its output lines.
fn rogue_with(gw: &Gateway, mode: &str, path: &str, size: usize, local: &Path) -> Vec<String> {
    let mut child = spawn_rogue(gw, mode, path, size, local, Stdio::null());
    rogue_output(&mut child, mode)
}

/// Starts [`ROGUE_CLIENT`] as alice.
fn spawn_rogue(
    gw: &Gateway,
    mode: &str,
    path: &str,
    size: usize,
    local: &Path,
    stdin: Stdio,
) -> Child {
    Command::new(common::require_tool("python3", "python3"))
        .arg("-c")
        .arg(ROGUE_CLIENT)
        .args([
            &gw.addr.ip().to_string(),
            &gw.port().to_string(),
            ALICE.0,
            ALICE.1,
            mode,
            path,
            &size.to_string(),
            local.to_str().expect("UTF-8 path"),
        ])
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3")
}

/// Waits for a rogue client to end; returns its output lines.
fn rogue_output(child: &mut Child, mode: &str) -> Vec<String> {
    let out: Output = wait_with_deadline(child, Duration::from_secs(180), "rogue client");
    assert!(
        out.status.success(),
        "rogue client ({mode}) failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

// (a) A complete STOR replaces the file and keeps its permissions.

#[test]
fn stor_over_an_existing_file_replaces_it_whole_and_keeps_its_mode() {
    let (sim, gw) = start("");
    let old = pattern(300_000, 1);
    let new = pattern(1_000, 2);
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /private.bin", &old, None),
            op::cmd("SITE CHMOD 600 /private.bin"),
            op::stor("STOR /shared.bin", &old, None),
            op::cmd("SITE CHMOD 664 /shared.bin"),
            op::cmd("MKD /dir"),
        ],
    );
    for x in &r {
        assert!(x.ok, "setup: {:#}", x.raw);
    }
    let before = (inode(&sim, "/private.bin"), inode(&sim, "/shared.bin"));

    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /private.bin", &new, None),
            op::stor("STOR /shared.bin", &new, None),
            op::stor("STOR /fresh.bin", &new, None),
            op::stor("STOR /dir", &new, None),
        ],
    );
    assert_code(&r[0], "226");
    assert_code(&r[1], "226");
    assert_code(&r[2], "226");
    let err = r[3].error();
    assert!(err.starts_with("550"), "STOR onto a directory: {err}");

    assert_eq!(read(sim.disk_path("/private.bin")), new);
    assert_eq!(read(sim.disk_path("/shared.bin")), new);
    assert_eq!(read(sim.disk_path("/fresh.bin")), new);
    assert_eq!(mode(&sim, "/private.bin"), 0o600, "a narrower mode is kept");
    assert_eq!(mode(&sim, "/shared.bin"), 0o664, "a wider mode is kept");
    assert_eq!(
        mode(&sim, "/fresh.bin"),
        0o644,
        "a new file has the default"
    );
    assert_ne!(
        before,
        (inode(&sim, "/private.bin"), inode(&sim, "/shared.bin")),
        "replaced by a rename, not overwritten in place"
    );
    assert!(sim.disk_path("/dir").is_dir());
    assert_eq!(debris(&sim, "/"), vec![]);
    assert_eq!(debris(&sim, "/dir"), vec![]);
}

// (b) A client killed mid-STOR.

#[test]
fn client_killed_mid_stor_leaves_the_previous_file_intact() {
    let (sim, gw) = start("");
    let old = pattern(1 << 20, 3);
    put(&gw, "/victim.bin", &old);
    let dir = scratch();
    let big = dir.path().join("big.bin");
    std::fs::write(&big, pattern(64 << 20, 4)).unwrap();

    let url = format!("{}/victim.bin", gw.ftp_url(ALICE.0, ALICE.1));
    let mut curl = Command::new(common::require_tool("curl", "curl"))
        .args([
            "-sS",
            "--limit-rate",
            "1M",
            "-T",
            big.to_str().unwrap(),
            &url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run curl");
    wait_until(
        Duration::from_secs(30),
        "upload data arriving in a temporary file",
        || debris(&sim, "/").iter().any(|(_, size)| *size > 0),
    );
    curl.kill().expect("SIGKILL curl");
    curl.wait().unwrap();

    assert_no_debris_soon(&sim, &gw);
    assert_eq!(read(sim.disk_path("/victim.bin")), old, "previous content");
    wait_until(Duration::from_secs(10), "the abort logged", || {
        gw.stderr_log().contains("previous file kept")
    });
    let log = gw.stderr_log();
    let line = log
        .lines()
        .find(|l| l.contains("previous file kept"))
        .unwrap();
    assert!(
        line.contains("/victim.bin") && line.contains("alice") && line.contains("transfer aborted"),
        "{line}"
    );
}

// (c) A client that breaks the transfer off on purpose.

#[test]
fn ftplib_client_closing_its_control_connection_mid_stor_changes_nothing() {
    let (sim, gw) = start("");
    let old = pattern(200_000, 5);
    put(&gw, "/c.bin", &old);
    let out = rogue(&gw, "close-control", "/c.bin", 100_000);
    assert_eq!(out, vec!["closed"]);
    assert_no_debris_soon(&sim, &gw);
    assert_eq!(read(sim.disk_path("/c.bin")), old, "previous content");
    // A new file is not created either.
    let out = rogue(&gw, "close-control", "/new.bin", 100_000);
    assert_eq!(out, vec!["closed"]);
    assert_no_debris_soon(&sim, &gw);
    wait_until(Duration::from_secs(10), "the abort logged", || {
        gw.stderr_log().contains("no file created")
    });
    assert!(!sim.disk_path("/new.bin").exists());
}

#[test]
fn abor_mid_stor_changes_nothing() {
    let (sim, gw) = start("");
    let old = pattern(200_000, 6);
    put(&gw, "/ab.bin", &old);
    // ftplib's abort(): 426 for the transfer, then 226 for the ABOR; then NOOP, and an ABOR
    // with no transfer.
    let out = rogue(&gw, "abort-stor", "/ab.bin", 100_000);
    assert_replies(&out, &["426", "226", "200", "226"]);
    assert_no_debris_soon(&sim, &gw);
    assert_eq!(read(sim.disk_path("/ab.bin")), old, "previous content");
    // ABOR after Telnet IP and Synch, whose IAC went as urgent data.
    let out = rogue(&gw, "telnet-abort-stor", "/ab.bin", 100_000);
    assert_replies(&out, &["426", "226", "200", "226"]);
    assert_no_debris_soon(&sim, &gw);
    assert_eq!(read(sim.disk_path("/ab.bin")), old, "previous content");
    // A new file is not created either.
    let out = rogue(&gw, "abort-stor", "/new.bin", 100_000);
    assert_replies(&out, &["426", "226", "200", "226"]);
    assert_no_debris_soon(&sim, &gw);
    assert!(!sim.disk_path("/new.bin").exists());
    // The ABOR may come before the data connection does (then no transfer starts at all),
    // but no upload of /new.bin ever completes.
    assert!(
        !gw.stderr_log()
            .contains("transfer upload /new.bin 100000 bytes"),
        "{}",
        gw.stderr_log()
    );
}

#[test]
fn abor_mid_retr_stops_the_download() {
    let (sim, gw) = start("");
    let size = 64 << 20;
    std::fs::write(sim.disk_path("/big.bin"), pattern(size, 12)).unwrap();
    let out = rogue(&gw, "abort-retr", "/big.bin", 1 << 20);
    assert_eq!(out.len(), 5, "{out:?}");
    assert_replies(&out[..2], &["426", "226"]);
    let received: usize = out[2]
        .strip_prefix("received ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(
        (1 << 20..size).contains(&received),
        "received {received} bytes of {size}"
    );
    assert!(out[3].starts_with("200"), "{out:?}");
    assert_eq!(out[4], size.to_string(), "SIZE after the abort");
    wait_until(Duration::from_secs(10), "the abort logged", || {
        gw.stderr_log()
            .contains("transfer download /big.bin aborted")
    });
}

// (d) Stalled data connections.

#[test]
fn stalled_data_connections_fail_with_4xx_and_leave_no_debris() {
    let (sim, gw) = start("data-timeout = 2");
    let old = pattern(100_000, 7);
    put(&gw, "/s.bin", &old);
    let started = Instant::now();
    let out = rogue(&gw, "stall-stor", "/s.bin", 0);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].starts_with("426"), "stalled STOR: {out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_no_debris_soon(&sim, &gw);
    assert_eq!(read(sim.disk_path("/s.bin")), old, "previous content");

    // A download nobody reads: the socket buffers fill, then nothing moves.
    std::fs::write(sim.disk_path("/big.bin"), pattern(64 << 20, 8)).unwrap();
    let out = rogue(&gw, "stall-retr", "/big.bin", 0);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].starts_with("426"), "stalled RETR: {out:?}");
}

// (e) REST+STOR and APPE extend the file in place.

#[test]
fn rest_stor_and_appe_extend_the_file_in_place() {
    let (sim, gw) = start("");
    let content = pattern(300_000, 9);
    put(&gw, "/e.bin", &content[..100_000]);
    let ino = inode(&sim, "/e.bin");
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /e.bin", &content[100_000..200_000], Some(100_000)),
            op::stor("APPE /e.bin", &content[200_000..], None),
        ],
    );
    assert_code(&r[0], "226");
    assert_code(&r[1], "226");
    assert_eq!(read(sim.disk_path("/e.bin")), content);
    assert_eq!(inode(&sim, "/e.bin"), ino, "written in place");
    assert_eq!(debris(&sim, "/"), vec![]);
}

// (f) Without atomic uploads, STOR overwrites in place.

#[test]
fn without_atomic_uploads_stor_overwrites_in_place() {
    let (sim, gw) = start("atomic-uploads = false");
    put(&gw, "/f.bin", &pattern(100_000, 10));
    let ino = inode(&sim, "/f.bin");
    put(&gw, "/f.bin", b"short");
    assert_eq!(read(sim.disk_path("/f.bin")), b"short");
    assert_eq!(inode(&sim, "/f.bin"), ino, "overwritten in place");
    assert_eq!(debris(&sim, "/"), vec![]);
}

// (g) A download broken off and resumed with REST.

#[test]
fn interrupted_download_resumed_with_rest_yields_the_same_bytes() {
    let (sim, gw) = start("");
    let content = pattern(16 << 20, 11);
    std::fs::write(sim.disk_path("/d.bin"), &content).unwrap();
    let dir = scratch();
    let partial = dir.path().join("d.bin");
    let out = rogue_with(&gw, "cut-retr", "/d.bin", 1 << 20, &partial);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(read(&partial), &content[..1 << 20], "the first MiB");
    let url = format!("{}/d.bin", gw.ftp_url(ALICE.0, ALICE.1));
    curl_ok(&["-C", "-", "-o", partial.to_str().unwrap(), &url]);
    assert_eq!(read(&partial), content, "resumed download");
    // And with ftplib's REST.
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[op::retr("RETR /d.bin", Some(12_345_678))],
    );
    assert_eq!(r[0].data(), &content[12_345_678..], "RETR after REST");
}

// (h) Temporary files are not listed, but can be named.

#[test]
fn uploads_in_progress_are_not_listed() {
    let (sim, gw) = start("");
    put(&gw, "/listed.bin", b"old");
    let mut upload = spawn_rogue(
        &gw,
        "hold-stor",
        "/listed.bin",
        100_000,
        Path::new("-"),
        Stdio::piped(),
    );
    wait_until(Duration::from_secs(30), "an upload in progress", || {
        !debris(&sim, "/").is_empty()
    });
    let temp = debris(&sim, "/").remove(0).0;

    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::lines("LIST -a /"),
            op::nlst("/"),
            op::mlsd("/"),
            op::cmd("STAT /"),
            op::cmd(&format!("MLST /{temp}")),
            op::lines(&format!("LIST /{temp}")),
        ],
    );
    drop(upload.stdin.take());
    let out = rogue_output(&mut upload, "hold-stor");
    assert_replies(&out, &["426", "226"]);
    let mlsd: Vec<String> = (r[2].value().as_array().unwrap().iter())
        .map(|e| e[0].as_str().unwrap().to_owned())
        .collect();
    for (what, names) in [
        ("LIST", r[0].strings().join("\n")),
        ("NLST", r[1].strings().join("\n")),
        ("MLSD", mlsd.join("\n")),
        ("STAT", r[3].reply().to_owned()),
    ] {
        assert!(names.contains("listed.bin"), "{what}: {names}");
        assert!(!names.contains(".qftpd-upload."), "{what}: {names}");
    }
    assert!(
        r[4].reply().contains(&temp),
        "MLST by name: {}",
        r[4].reply()
    );
    assert!(r[5].strings().join("\n").contains(&temp), "LIST by name");
    assert_no_debris_soon(&sim, &gw);
    assert_eq!(read(sim.disk_path("/listed.bin")), b"old");
}

// (i) QUIT during a transfer lets it end: its reply, then 221.

#[test]
fn quit_mid_stor_finishes_the_upload_first() {
    let (sim, gw) = start("");
    put(&gw, "/q.bin", &pattern(1_000, 13));
    let out = rogue(&gw, "quit-mid-stor", "/q.bin", 200_000);
    assert_replies(&out, &["226", "221", "eof"]);
    let mut expected = vec![b'x'; 100_000];
    expected.resize(200_000, b'y');
    assert_eq!(read(sim.disk_path("/q.bin")), expected);
    assert_eq!(debris(&sim, "/"), vec![]);
}

// (j) STOR over an existing file needs the right to write that file: the temporary file
// renamed over it would need only the right to change its directory.

const BOB: (&str, &str) = ("bob", "bobpw");
const ADMIN: (&str, &str) = ("admin", "adminpw");

/// Owner, group and mode of a file as the cluster reports them (`qq fs_file_get_attr`).
fn owner_group_mode(sim: &Sim, api_path: &str) -> (String, String, String) {
    let attr = sim
        .qq_as(ADMIN.0, ADMIN.1)
        .ok_json(&["fs_file_get_attr", "--path", api_path]);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&attr["owner_details"]["id_value"]),
        text(&attr["group_details"]["id_value"]),
        text(&attr["mode"]),
    )
}

/// `/drop`, a directory everyone may add files to (0777), made by alice, with alice's
/// `/drop/NAME` of `data` and mode `mode` in it.
fn alices_file_in_drop(gw: &Gateway, name: &str, data: &[u8], mode: &str) {
    let path = format!("/drop/{name}");
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::cmd("MKD /drop"),
            op::cmd("SITE CHMOD 777 /drop"),
            op::stor(&format!("STOR {path}"), data, None),
            op::cmd(&format!("SITE CHMOD {mode} {path}")),
        ],
    );
    for x in &r[1..] {
        assert!(x.ok, "setup: {:#}", x.raw);
    }
}

#[test]
fn stor_over_another_users_read_only_file_is_refused_before_any_data() {
    let (sim, gw) = start("");
    let old = pattern(256 << 10, 20);
    alices_file_in_drop(&gw, "report.bin", &old, "644");
    let before = (
        owner_group_mode(&sim, "/drop/report.bin"),
        inode(&sim, "/drop/report.bin"),
    );
    assert_eq!(before.0.0, "alice");

    // Bob's STOR, and the in-place writes REST+STOR and APPE, on a raw control connection:
    // 550 at once, no 150, and the data connection is never read.
    let mut bob = Control::login(gw.addr, BOB);
    bob.cmd("TYPE I").assert_code(200);
    for cmd in ["STOR", "APPE"] {
        let addr = bob.pasv();
        let mut data = connect_data(addr);
        let reply = bob.cmd(&format!("{cmd} /drop/report.bin"));
        reply.assert_says(550, "permission denied");
        let _ = data.write_all(&pattern(1 << 20, 21));
    }
    bob.cmd("REST 1000").assert_code(350);
    let _data = connect_data(bob.pasv());
    bob.cmd("STOR /drop/report.bin")
        .assert_says(550, "permission denied");
    bob.assert_in_step();

    // And with curl, a real client.
    let dir = scratch();
    let new = dir.path().join("new.bin");
    std::fs::write(&new, pattern(1 << 20, 22)).unwrap();
    let url = format!("{}/drop/report.bin", gw.ftp_url(BOB.0, BOB.1));
    let out = curl(&["-T", new.to_str().unwrap(), &url], 60);
    assert!(!out.status.success(), "curl's upload succeeded");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("< 550"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(read(sim.disk_path("/drop/report.bin")), old, "content");
    assert_eq!(
        (
            owner_group_mode(&sim, "/drop/report.bin"),
            inode(&sim, "/drop/report.bin")
        ),
        before,
        "owner, group, mode and the file itself"
    );
    assert_eq!(debris(&sim, "/drop"), vec![]);
    assert!(
        gw.stderr_log()
            .contains("upload refused: the cluster does not let the user write the file"),
        "{}",
        gw.stderr_log()
    );

    // Without atomic uploads, the same refusal.
    let gw = Gateway::start(&sim, "atomic-uploads = false");
    let mut bob = Control::login(gw.addr, BOB);
    let _data = connect_data(bob.pasv());
    bob.cmd("STOR /drop/report.bin")
        .assert_says(550, "permission denied");
    assert_eq!(read(sim.disk_path("/drop/report.bin")), old, "content");
}

/// A file's ACL as the cluster reports it (`qq fs_get_acl --json`).
fn acl(sim: &Sim, api_path: &str) -> serde_json::Value {
    sim.qq_as(ADMIN.0, ADMIN.1)
        .ok_json(&["fs_get_acl", "--path", api_path, "--json"])
}

#[test]
fn owners_stor_keeps_group_mode_and_acl_and_stays_atomic() {
    let (sim, gw) = start("");
    alices_file_in_drop(&gw, "own.bin", &pattern(256 << 10, 23), "640");
    // An entry of its own for bob, as an SMB client or `qq` would add.
    sim.qq_as(ALICE.0, ALICE.1).ok(&[
        "fs_modify_acl",
        "--path",
        "/drop/own.bin",
        "add_entry",
        "-t",
        "auth_id:502",
        "-y",
        "Allowed",
        "-r",
        "Read",
    ]);
    let acl_before = acl(&sim, "/drop/own.bin");
    assert_eq!(acl_before["aces"].as_array().map(Vec::len), Some(4));
    let ino = inode(&sim, "/drop/own.bin");
    let new = pattern(300_000, 24);
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[op::stor("STOR /drop/own.bin", &new, None)],
    );
    assert_code(&r[0], "226");
    assert_eq!(read(sim.disk_path("/drop/own.bin")), new);
    assert_ne!(inode(&sim, "/drop/own.bin"), ino, "replaced by a rename");
    let kept = ("alice".to_owned(), "Users".to_owned(), "0640".to_owned());
    assert_eq!(owner_group_mode(&sim, "/drop/own.bin"), kept);
    assert_eq!(acl(&sim, "/drop/own.bin"), acl_before, "the ACL");
    // Still atomic: an aborted upload leaves the previous content, and its time.
    let mtime = || {
        let meta = std::fs::metadata(sim.disk_path("/drop/own.bin")).unwrap();
        meta.modified().unwrap()
    };
    let before = mtime();
    let out = rogue(&gw, "abort-stor", "/drop/own.bin", 100_000);
    assert_replies(&out, &["426", "226", "200", "226"]);
    assert_no_debris_soon(&sim, &gw);
    assert_eq!(
        read(sim.disk_path("/drop/own.bin")),
        new,
        "previous content"
    );
    assert_eq!(owner_group_mode(&sim, "/drop/own.bin"), kept);
    assert_eq!(acl(&sim, "/drop/own.bin"), acl_before, "the ACL");
    assert_eq!(mtime(), before, "modification time");

    // A group the owner is a member of is given to the new file: the administrator's file of
    // group Admins (a new file of theirs would be of group Users).
    let admin = sim.qq_as(ADMIN.0, ADMIN.1);
    admin.write("/drop/adm.bin", &pattern(1000, 25), &["--create"]);
    admin.ok(&[
        "fs_file_set_attr",
        "--path",
        "/drop/adm.bin",
        "--group",
        "512",
    ]);
    admin.ok(&[
        "fs_file_set_attr",
        "--path",
        "/drop/adm.bin",
        "--mode",
        "0604",
    ]);
    let ino = inode(&sim, "/drop/adm.bin");
    let r = gw.ftplib_as(
        ADMIN.0,
        ADMIN.1,
        &[op::stor("STOR /drop/adm.bin", &new, None)],
    );
    assert_code(&r[0], "226");
    assert_eq!(read(sim.disk_path("/drop/adm.bin")), new);
    assert_ne!(inode(&sim, "/drop/adm.bin"), ino, "replaced by a rename");
    assert_eq!(
        owner_group_mode(&sim, "/drop/adm.bin"),
        ("admin".to_owned(), "Admins".to_owned(), "0604".to_owned())
    );

    // A group the owner is not in cannot be given to a new file: alice's file of group Admins
    // is overwritten in place, and keeps its group.
    admin.ok(&[
        "fs_file_set_attr",
        "--path",
        "/drop/own.bin",
        "--group",
        "512",
    ]);
    let ino = inode(&sim, "/drop/own.bin");
    let newer = pattern(200_000, 26);
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[op::stor("STOR /drop/own.bin", &newer, None)],
    );
    assert_code(&r[0], "226");
    assert_eq!(read(sim.disk_path("/drop/own.bin")), newer);
    assert_eq!(inode(&sim, "/drop/own.bin"), ino, "overwritten in place");
    assert_eq!(
        owner_group_mode(&sim, "/drop/own.bin"),
        ("alice".to_owned(), "Admins".to_owned(), "0640".to_owned())
    );

    // The owner needs the right to write too: a file of hers she made read-only is refused.
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::cmd("SITE CHMOD 444 /drop/own.bin"),
            op::stor("STOR /drop/own.bin", &new, None),
        ],
    );
    assert!(r[0].ok, "{:#}", r[0].raw);
    let err = r[1].error();
    assert!(err.starts_with("550"), "STOR over a 0444 file: {err}");
    assert_eq!(read(sim.disk_path("/drop/own.bin")), newer);
    assert_eq!(debris(&sim, "/drop"), vec![]);
}

#[test]
fn stor_over_another_users_writable_file_keeps_its_owner_and_mode() {
    let (sim, gw) = start("");
    alices_file_in_drop(&gw, "shared.bin", &pattern(256 << 10, 27), "666");
    let ino = inode(&sim, "/drop/shared.bin");
    let dir = scratch();
    let new = dir.path().join("new.bin");
    let data = pattern(1 << 20, 28);
    std::fs::write(&new, &data).unwrap();
    let url = format!("{}/drop/shared.bin", gw.ftp_url(BOB.0, BOB.1));
    curl_ok(&["-T", new.to_str().unwrap(), &url]);
    assert_eq!(read(sim.disk_path("/drop/shared.bin")), data);
    assert_eq!(inode(&sim, "/drop/shared.bin"), ino, "written in place");
    assert_eq!(
        owner_group_mode(&sim, "/drop/shared.bin"),
        ("alice".to_owned(), "Users".to_owned(), "0666".to_owned())
    );
    assert_eq!(debris(&sim, "/drop"), vec![]);
    assert!(
        gw.stderr_log()
            .contains("the file belongs to another user; overwriting it in place"),
        "{}",
        gw.stderr_log()
    );
}

// (k) A client breaking an upload off is the client's business: logged at info level.

#[test]
fn uploads_broken_off_by_the_client_log_no_error() {
    let (sim, gw) = start("");
    put(&gw, "/gone.bin", &pattern(200_000, 29));
    for mode in ["close-control", "abort-stor"] {
        rogue(&gw, mode, "/gone.bin", 100_000);
    }
    assert_no_debris_soon(&sim, &gw);
    wait_until(Duration::from_secs(10), "both aborts logged", || {
        let log = gw.stderr_log();
        log.matches("transfer upload /gone.bin aborted").count() == 2
    });
    // The upload tasks end right after they log that; a whole session later, they are over.
    put(&gw, "/gone.bin", b"barrier");
    let log = gw.stderr_log();
    let loud = gw.loud_lines();
    assert!(loud.is_empty(), "{loud:#?}");
    for line in log
        .lines()
        .filter(|l| l.contains("previous file kept") || l.contains("before the reply to STOR"))
    {
        assert!(line.contains(" INFO "), "{line}");
    }
}

//! Transfer commands as RFC 959 orders their replies: a transfer that cannot start (a missing
//! file or directory, a directory to download, a REST offset past the end) is refused with its
//! error alone, never `150` then an error, and nothing of an upload is read; STOU names its file
//! in its `150`. Over FTPS every data connection ends with a TLS close_notify, and uploads over
//! TLS 1.2 and 1.3 by clients that never read their data connection arrive whole.
//!
//! The gateway (`qftpd serve` in front of `qftpd sim`) is driven over raw control connections
//! ([`Control`]) and by Python's ftplib.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::process::Command;
use std::time::Duration;

use common::Sim;
use common::control::{Control, READ_TIMEOUT, Reply, connect_data};
use common::{Gateway, ftps_config, sha256_file, start, wait_with_deadline};

const ADMIN: (&str, &str) = ("admin", "adminpw");

/// `count` bytes of a pattern that differs with `seed`.
fn pattern(count: usize, seed: u8) -> Vec<u8> {
    (0..count)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

/// Sends a transfer command over a fresh passive data connection that is already open;
/// returns the first reply and the data connection.
fn transfer(c: &mut Control, cmd: &str) -> (Reply, std::net::TcpStream) {
    let data = connect_data(c.pasv());
    (c.cmd(cmd), data)
}

/// The transfer command is refused at once: `code` with `text`, no 150, and the data
/// connection is closed without a byte.
fn assert_refused(c: &mut Control, cmd: &str, code: u16, text: &str) {
    let (reply, mut data) = transfer(c, cmd);
    reply.assert_says(code, text);
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{cmd}: data sent after {reply:?}");
    c.assert_in_step();
}

/// The transfer runs: 150, the data until the server closes, 226.
fn download(c: &mut Control, cmd: &str) -> Vec<u8> {
    let (reply, mut data) = transfer(c, cmd);
    reply.assert_code(150);
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes)
        .expect("read the data connection");
    c.reply().assert_code(226);
    bytes
}

#[test]
fn transfers_that_cannot_start_are_refused_without_a_150() {
    let (sim, gw) = start("");
    std::fs::create_dir_all(sim.disk_path("/t/dir")).unwrap();
    let file = pattern(300_000, 1);
    std::fs::write(sim.disk_path("/t/f.bin"), &file).unwrap();
    let mut c = Control::login(gw.addr, ADMIN);
    c.cmd("CWD /t").assert_code(250);
    c.cmd("TYPE I").assert_code(200);

    for (cmd, code, text) in [
        ("RETR nosuch.bin", 550, "nosuch.bin"),
        ("RETR dir", 550, "/t/dir"),
        ("LIST nosuch", 550, "nosuch"),
        ("NLST nosuch", 550, "nosuch"),
        ("MLSD nosuch", 550, "nosuch"),
        ("MLSD f.bin", 501, ""),
        ("STOR nosuch/new.bin", 550, "nosuch"),
        ("APPE dir", 550, "dir"),
    ] {
        assert_refused(&mut c, cmd, code, text);
    }
    // REST past the end of the file: 554 (RFC 1123, 4.1.3.4); the offset is then forgotten.
    c.cmd("REST 300001").assert_code(350);
    assert_refused(&mut c, "RETR f.bin", 554, "past the end");
    assert_eq!(download(&mut c, "RETR f.bin"), file);
    // At the very end: nothing to send, and that is a success.
    c.cmd("REST 300000").assert_code(350);
    assert!(download(&mut c, "RETR f.bin").is_empty());
    // REST, then an upload of a missing file.
    c.cmd("REST 10").assert_code(350);
    assert_refused(&mut c, "STOR gone.bin", 550, "gone.bin");
    // What exists behaves as before: an empty directory still gets 150 and 226.
    assert!(download(&mut c, "LIST dir").is_empty());
    assert!(download(&mut c, "NLST dir").is_empty());
    assert_eq!(download(&mut c, "NLST").len(), "dir\r\nf.bin\r\n".len());

    // Pipelined: the refusal comes in order, before the next command's reply.
    let _data = connect_data(c.pasv());
    c.send(b"RETR nosuch.bin\r\nNOOP\r\nPWD\r\n");
    c.reply().assert_code(550);
    c.reply().assert_code(200);
    c.reply().assert_says(257, "\"/t\"");
    for gone in ["/t/nosuch", "/t/gone.bin"] {
        assert!(!sim.disk_path(gone).exists(), "{gone} exists");
    }
}

/// An upload into a directory that does not exist is refused before any of its data is read:
/// the data the client sent first is still unread when the server closes the connection, so
/// the close is a reset, and nothing arrives on the cluster.
#[test]
fn a_refused_upload_reads_none_of_its_data() {
    let (sim, gw) = start("");
    std::fs::create_dir_all(sim.disk_path("/t")).unwrap();
    let mut c = Control::login(gw.addr, ADMIN);
    c.cmd("TYPE I").assert_code(200);
    let mut data = connect_data(c.pasv());
    data.write_all(&pattern(64 << 10, 2))
        .expect("send the upload");
    c.cmd("STOR /t/no/such/dir/up.bin")
        .assert_says(550, "/t/no/such/dir/up.bin");
    data.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut buf = [0u8; 16];
    match data.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the server read the refused upload's data: {other:?}"),
    }
    c.assert_in_step();
    assert!(!sim.disk_path("/t/no").exists());
}

#[test]
fn stou_names_its_file_in_the_150() {
    let (sim, gw) = start("");
    std::fs::create_dir_all(sim.disk_path("/t")).unwrap();
    let mut c = Control::login(gw.addr, ADMIN);
    c.cmd("CWD /t").assert_code(250);
    c.cmd("TYPE I").assert_code(200);
    let (reply, mut data) = transfer(&mut c, "STOU");
    reply.assert_says(150, "FILE: ");
    let name = reply.text()["150 FILE: ".len()..].to_string();
    data.write_all(b"unique").unwrap();
    drop(data);
    c.reply().assert_code(226);
    assert_eq!(
        std::fs::read(sim.disk_path(&format!("/t/{name}"))).unwrap(),
        b"unique"
    );
}

/// Python's ftplib over FTPS, TLS `version`: uploads that end as curl and Go clients end them
/// (the data connection closed without reading it, so the server's TLS messages after the
/// handshake stay unread) and as ftplib's `storbinary` does (close_notify, then waiting for the
/// server's); downloads and listings, which ftplib ends with `unwrap()` too.
const FTPS_CLIENT: &str = r#"
import ftplib, ssl, sys
host, port, user, password, version, local, count = sys.argv[1:8]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = ctx.maximum_version = v
ftp = ftplib.FTP_TLS(context=ctx, timeout=60)
ftp.connect(host, int(port))
ftp.login(user, password)
ftp.prot_p()
ftp.voidcmd("TYPE I")
data = open(local, "rb").read()
for i in range(int(count)):
    conn = ftp.transfercmd("STOR close-%d.bin" % i)
    print("tls", conn.version(), flush=True)
    conn.sendall(data)
    conn.close()
    print("close", i, ftp.voidresp(), flush=True)
    with open(local, "rb") as f:
        print("storbinary", i, ftp.storbinary("STOR unwrap-%d.bin" % i, f), flush=True)
    got = bytearray()
    print("retrbinary", i, ftp.retrbinary("RETR unwrap-%d.bin" % i, got.extend), len(got) == len(data) and bytes(got) == data, flush=True)
    print("nlst", len(ftp.nlst()), flush=True)
print("quit", ftp.quit(), flush=True)
"#;

#[test]
fn ftps_uploads_arrive_whole_and_every_data_connection_ends_with_close_notify() {
    let sim = Sim::start_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let (tls, _cert) = ftps_config(dir.path(), true);
    let gw = Gateway::start(&sim, &tls);
    let local = dir.path().join("upload.bin");
    let data = pattern(6 << 20, 3);
    std::fs::write(&local, &data).unwrap();
    let count = 6;
    for version in ["1.2", "1.3"] {
        let mut child = Command::new(common::require_tool("python3", "python3"))
            .args(["-c", FTPS_CLIENT, "127.0.0.1"])
            .arg(gw.port().to_string())
            .args([ADMIN.0, ADMIN.1, version])
            .arg(&local)
            .arg(count.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run python3");
        let out = wait_with_deadline(&mut child, Duration::from_secs(240), "ftplib over FTPS");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = format!(
            "TLS {version}:\n{stdout}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            gw.stderr_log()
        );
        assert!(out.status.success(), "{report}");
        let tls = if version == "1.3" {
            "TLSv1.3"
        } else {
            "TLSv1.2"
        };
        assert_eq!(
            stdout.matches(&format!("tls {tls}")).count(),
            count,
            "{report}"
        );
        for i in 0..count {
            for expected in [
                format!("close {i} 226"),
                format!("storbinary {i} 226"),
                format!("retrbinary {i} 226 Successfully sent True"),
            ] {
                assert!(stdout.contains(&expected), "{expected:?} missing: {report}");
            }
            for name in [format!("close-{i}.bin"), format!("unwrap-{i}.bin")] {
                let path = sim.disk_path(&format!("/{name}"));
                assert_eq!(
                    sha256_file(&path),
                    sha256_file(&local),
                    "{name} over TLS {version}"
                );
            }
        }
        assert!(stdout.contains("quit 221"), "{report}");
    }
}

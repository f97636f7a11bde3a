//! Hostile clients and hostile data: over-long command lines, NUL bytes, invalid UTF-8, bare LF,
//! empty lines and unknown commands on the control connection; names with CR and LF that must
//! not inject reply or listing lines; the FTP bounce attack through PORT and EPRT; data
//! connections whose TLS handshake fails or that never come; `chroot-users` escaped through
//! symlinks made in the home.
//!
//! The gateway (`qftpd serve` in front of `qftpd sim`) is driven over raw control connections,
//! every read bounded by [`READ_TIMEOUT`]. What the gateway cannot show (a storage that accepts
//! names with CR, a short data connection timeout, libunftp's own defaults) is checked on an
//! in-process libunftp server built the same way as the gateway's (one `Server` per connection,
//! `Server::service`), over a storage back-end of a few lines ([`Fixed`]).

mod common;

use std::fmt::Debug;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use common::Sim;
use common::control::{Control, READ_TIMEOUT, Reply, connect_data, connect_from, split_crlf_lines};
use common::{Gateway, PassivePorts, start};
use libunftp::ServerBuilder;
use libunftp::options::ActivePassiveMode;
use unftp_core::auth::DefaultUser;
use unftp_core::storage::{Fileinfo, Metadata, StorageBackend};

const ADMIN: (&str, &str) = ("admin", "adminpw");
/// The in-process server lets anyone in.
const ANONYMOUS: (&str, &str) = ("anonymous", "guest");

// ---------------------------------------------------------------------------------------------
// Listing lines.

/// `line` looks like an `ls -l` line: a type letter and nine permission characters, then at
/// least eight more fields.
fn assert_ls_line(line: &str) {
    let mode: Vec<char> = line.chars().take(10).collect();
    assert!(
        mode.len() == 10
            && "-dlp".contains(mode[0])
            && mode[1..].iter().all(|c| "rwxsStT-".contains(*c)),
        "not an ls -l line: {line:?}"
    );
    assert!(
        line.split_whitespace().count() >= 9,
        "not an ls -l line: {line:?}"
    );
}

/// `line` looks like an MLSD line: `fact=value;...; name`.
fn assert_mlsd_line(line: &str) {
    let (facts, name) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("not an MLSD line: {line:?}"));
    assert!(
        facts.ends_with(';') && facts.to_ascii_lowercase().contains("type=") && !name.is_empty(),
        "not an MLSD line: {line:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The gateway.

/// A command line of 16 MiB gets one 500 reply; the gateway skips it without buffering it
/// (its peak RSS does not grow by the line's size) and the session goes on.
#[test]
fn gateway_over_long_command_line_is_refused_without_growing_memory() {
    let (_sim, gw) = start("");
    let mut c = Control::login(gw.addr, ADMIN);
    c.raw(format!("NOOP {}\r\n", "x".repeat(5000)).as_bytes())
        .assert_says(500, "too long");
    c.assert_in_step();

    let before = gw.peak_rss_kib();
    let chunk = vec![b'A'; 64 << 10];
    c.send(b"STOR ");
    for _ in 0..256 {
        c.send(&chunk);
    }
    c.send(b"\r\n");
    c.reply().assert_says(500, "Command line too long");
    c.assert_in_step();
    let grown = gw.peak_rss_kib().saturating_sub(before);
    assert!(
        grown < 8 << 10,
        "the gateway's peak RSS grew by {grown} KiB for a 16 MiB line"
    );

    // A line just within the limit is a command like any other (here an unknown path).
    let long_name = format!("MLST /{}", "n".repeat(4096 - 6));
    assert_eq!(long_name.len(), 4096);
    assert_ne!(c.cmd(&long_name).code, 500);
    c.assert_in_step();
}

/// NUL bytes in a command or its argument are refused with 501; Telnet's CR NUL (a CR) is not
/// mistaken for one.
#[test]
fn gateway_nul_bytes_are_refused() {
    let (sim, gw) = start("");
    std::fs::write(sim.disk_path("/a"), b"short name").unwrap();
    let mut c = Control::login(gw.addr, ADMIN);
    for line in [
        &b"RETR a\0b\r\n"[..],
        b"DELE a\0\r\n",
        b"CWD /\0\r\n",
        b"NO\0OP\r\n",
        b"\0\r\n",
    ] {
        c.raw(line).assert_says(501, "NUL");
        c.assert_in_step();
    }
    assert!(sim.disk_path("/a").exists(), "DELE a<NUL> deleted a");
    // CR NUL is a CR: the path has a CR in it, which the gateway refuses as a name.
    let r = c.raw(b"DELE a\r\0b\r\n");
    assert!(r.code >= 500 && r.code != 501, "{r:#?}");
    c.assert_in_step();
    assert!(sim.disk_path("/a").exists());
}

/// Arguments that are not UTF-8 are refused (never converted lossily into the name of another
/// file); a command verb that is not UTF-8 is an unknown command.
#[test]
fn gateway_invalid_utf8_is_refused_not_converted() {
    let (sim, gw) = start("");
    // What a lossy conversion of b"\xff\xfe.txt" would name.
    let lossy = "\u{fffd}\u{fffd}.txt";
    std::fs::write(sim.disk_path(&format!("/{lossy}")), b"not yours").unwrap();
    let mut c = Control::login(gw.addr, ADMIN);
    for line in [
        &b"DELE \xff\xfe.txt\r\n"[..],
        b"RETR \xff\xfe.txt\r\n",
        b"MLST \xff\xfe.txt\r\n",
        b"CWD \xc3\x28\r\n",
        b"USER \xff\r\n",
    ] {
        c.raw(line).assert_says(501, "UTF-8");
        c.assert_in_step();
    }
    assert!(sim.disk_path(&format!("/{lossy}")).exists());
    c.raw(b"\xffNOOP\r\n").assert_says(500, "UTF-8");
    c.assert_in_step();
    c.cmd("PWD").assert_says(257, "\"/\"");
}

/// Bare LF ends a line like CRLF; empty lines, unknown commands and bad parameters are
/// answered and the session goes on.
#[test]
fn gateway_bare_lf_empty_lines_unknown_commands() {
    let (_sim, gw) = start("");
    let mut c = Control::connect(gw.addr);
    c.raw(format!("USER {}\n", ADMIN.0).as_bytes())
        .assert_code(331);
    c.raw(format!("PASS {}\n", ADMIN.1).as_bytes())
        .assert_code(230);
    c.raw(b"PWD\n").assert_code(257);
    c.raw(b"NOOP\n").assert_code(200);
    for line in [&b"\r\n"[..], b"\n", b" \r\n"] {
        c.raw(line).assert_code(500);
        c.assert_in_step();
    }
    c.cmd("FOOBAR x").assert_code(500);
    c.assert_in_step();
    c.cmd("XYZZY").assert_code(500);
    c.assert_in_step();
    // A bad parameter is a 501; the session survives it.
    c.cmd("NOOP x").assert_code(501);
    c.assert_in_step();
    c.cmd("MODE Z").assert_code(501);
    c.assert_in_step();
    // A CR not followed by LF (nor NUL) is not a line end.
    c.raw(b"NOOP\rNOOP\r\n").assert_code(501);
    c.assert_in_step();
    c.cmd("QUIT").assert_code(221);
}

/// Commands sent together in one packet (RFC 959 lets a client send several before the
/// replies) are each answered once and in order, also those the storage answers later (MKD,
/// SIZE, CWD, RNFR, RNTO, RMD) and those right after PASS; QUIT is answered last.
#[test]
fn gateway_pipelined_commands_are_answered_in_order() {
    let (sim, gw) = start("");
    let batches: [(&str, &[(u16, &str)]); 3] = [
        (
            "MKD x\r\nMKD y\r\nMKD z\r\nQUIT\r\n",
            &[(257, "\"/x\""), (257, "\"/y\""), (257, "\"/z\""), (221, "")],
        ),
        (
            "SIZE nosuch\r\nNOOP\r\nCWD /x\r\nPWD\r\nQUIT\r\n",
            &[(550, ""), (200, ""), (250, ""), (257, "\"/x\""), (221, "")],
        ),
        (
            "RNFR x\r\nRNTO w\r\nRMD w\r\nRMD y\r\nQUIT\r\n",
            &[(350, ""), (250, "Renamed"), (250, ""), (250, ""), (221, "")],
        ),
    ];
    let check = |batch: &str, replies: Vec<Reply>, expected: &[(u16, &str)]| {
        let got: Vec<u16> = replies.iter().map(|r| r.code).collect();
        let want: Vec<u16> = expected.iter().map(|(code, _)| *code).collect();
        assert_eq!(got, want, "replies to {batch:?}: {replies:#?}");
        for (reply, (code, text)) in replies.iter().zip(expected) {
            reply.assert_says(*code, text);
        }
    };
    for (batch, expected) in batches {
        let mut c = Control::login(gw.addr, ADMIN);
        c.send(batch.as_bytes());
        check(batch, c.replies_until_closed(), expected);
    }
    assert!(sim.disk_path("/z").is_dir());
    for gone in ["/x", "/y", "/w"] {
        assert!(!sim.disk_path(gone).exists(), "{gone} exists");
    }

    let batch = format!("USER {}\r\nPASS {}\r\nPWD\r\nQUIT\r\n", ADMIN.0, ADMIN.1);
    let mut c = Control::connect(gw.addr);
    c.send(batch.as_bytes());
    check(
        &batch,
        c.replies_until_closed(),
        &[(331, ""), (230, ""), (257, "\"/\""), (221, "")],
    );
}

/// Names with CR and LF, made directly on the cluster's disk, never inject a line into a
/// listing (LIST, NLST, MLSD, STAT) or a reply (MLST, CWD, and PWD after it).
#[test]
fn gateway_names_with_cr_and_lf_inject_no_lines() {
    let (sim, gw) = start("");
    let dir = sim.disk_path("/evil");
    std::fs::create_dir(&dir).unwrap();
    let names = [
        "a\r\n226 Transfer complete",
        "b\n-rw-r--r--   1 root     root            0 Jan  1 00:00 fake",
        "c\r250 fake",
        "d\n\n",
    ];
    for name in names {
        std::fs::write(dir.join(name), b"x").unwrap();
    }
    std::fs::create_dir(dir.join("e\r\n257 \"fake\"")).unwrap();
    let entries = names.len() + 1;

    let mut c = Control::login(gw.addr, ADMIN);
    let list = c.listing("LIST /evil");
    assert_eq!(list.len(), entries, "{list:#?}");
    list.iter().for_each(|l| assert_ls_line(l));
    let nlst = c.listing("NLST /evil");
    assert_eq!(nlst.len(), entries, "{nlst:#?}");
    assert!(nlst.iter().all(|n| !n.is_empty()), "{nlst:#?}");
    let mlsd = c.listing("MLSD /evil");
    assert_eq!(mlsd.len(), entries, "{mlsd:#?}");
    mlsd.iter().for_each(|l| assert_mlsd_line(l));
    c.assert_in_step();

    // STAT lists over the control connection.
    let stat = c.cmd("STAT /evil");
    assert_eq!(stat.code, 213, "{stat:#?}");
    // The lines, between "Status of /evil:" and "End of status".
    assert_eq!(stat.lines.len(), entries + 2, "{stat:#?}");
    c.assert_in_step();

    // The names can be sent with Telnet's CR NUL for CR (LF cannot be sent at all); whatever
    // the gateway answers is one reply, in step.
    c.raw(b"MLST /evil/c\r\x00250 fake\r\n");
    c.assert_in_step();
    c.raw(b"CWD /evil/e\r\x00257 \"fake\"\r\n");
    c.assert_in_step();
    let pwd = c.cmd("PWD");
    pwd.assert_code(257);
    assert_eq!(pwd.lines.len(), 1, "{pwd:#?}");
    c.assert_in_step();
    c.cmd("CWD /evil").assert_code(250);
    c.cmd("PWD").assert_says(257, "\"/evil\"");
    c.raw(b"RETR c\r\x00250 fake\r\n");
    c.assert_in_step();
    let mlst = c.cmd("MLST /evil");
    mlst.assert_code(250);
    assert_eq!(mlst.lines.len(), 3, "{mlst:#?}");
    c.assert_in_step();
}

/// A large listing is streamed page by page: its first lines arrive while the cluster is still
/// being read, so a cluster failure midway reaches the client as part of a listing and a 451
/// (never a 226 over an incomplete listing); a client that closes the data connection midway
/// gets 426; the session goes on, and complete LIST, NLST and MLSD listings follow.
#[test]
fn gateway_listing_is_streamed_and_a_failure_midway_is_a_451() {
    let (sim, gw) = start("");
    let entries = 6000; // six pages
    let dir = sim.disk_path("/many");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..entries {
        std::fs::write(dir.join(format!("f{i:05}")), b"").unwrap();
    }
    let mut c = Control::login(gw.addr, ADMIN);
    // Each cluster request now takes 300 ms: six pages take well over a second.
    sim.set_faults(r#"{"latency_ms": 300}"#);

    // The cluster goes away once the first lines arrived.
    let addr = c.pasv();
    let mut data = connect_data(addr);
    c.cmd("LIST /many").assert_code(150);
    let mut bytes = vec![0u8; 4096];
    let n = data.read(&mut bytes).expect("read the listing");
    assert!(n > 0, "the listing ended before its first line");
    bytes.truncate(n);
    sim.set_faults(r#"{"latency_ms": 0, "outage": true}"#);
    data.read_to_end(&mut bytes)
        .expect("read the rest of the listing");
    let end = c.reply();
    end.assert_code(451);
    let got = String::from_utf8(bytes).unwrap().lines().count();
    assert!(got > 0 && got < entries, "{got} lines of {entries}");
    sim.set_faults(r#"{"outage": false, "latency_ms": 300}"#);
    c.assert_in_step();

    // A client that stops reading and closes the data connection midway.
    let addr = c.pasv();
    let mut data = connect_data(addr);
    c.cmd("NLST /many").assert_code(150);
    let mut first = [0u8; 16];
    assert!(data.read(&mut first).expect("read the listing") > 0);
    drop(data);
    c.reply().assert_code(426);
    sim.set_faults(r#"{"latency_ms": 0}"#);
    c.assert_in_step();

    // Complete listings, temporary upload files left out.
    std::fs::write(dir.join(".qftpd-upload.x1y2z3.f00001"), b"partial").unwrap();
    let list = c.listing("LIST /many");
    assert_eq!(list.len(), entries);
    list.iter().for_each(|l| assert_ls_line(l));
    assert!(
        list[entries - 1].ends_with(&format!(" f{:05}", entries - 1)),
        "{:?}",
        list.last()
    );
    // NLST names keep the directory as the argument gave it.
    let nlst = c.listing("NLST /many");
    let expected: Vec<String> = (0..entries).map(|i| format!("/many/f{i:05}")).collect();
    assert_eq!(nlst, expected);
    let mlsd = c.listing("MLSD /many");
    assert_eq!(mlsd.len(), entries);
    mlsd.iter().for_each(|l| assert_mlsd_line(l));
    // A file is listed as itself; a missing directory is a 550 before any data.
    assert_eq!(
        c.listing("NLST /many/f00042"),
        vec!["/many/f00042".to_string()]
    );
    let addr = c.pasv();
    let _data = connect_data(addr);
    c.cmd("LIST /missing").assert_code(550);
    c.assert_in_step();
}

/// With active mode off, PORT and EPRT get a clean 502, connect nowhere, and the session goes
/// on.
#[test]
fn gateway_port_and_eprt_refused_while_active_mode_is_off() {
    let sim = Sim::start_default();
    let gw = Gateway::start(&sim, "active-mode = false");
    let third_party = Listener::bind("127.0.0.2");
    let own = Listener::bind("127.0.0.1");
    let mut c = Control::login(gw.addr, ADMIN);
    for target in [&third_party, &own] {
        c.cmd(&format!("PORT {}", target.port_arg()))
            .assert_says(502, "Active mode not enabled");
        c.cmd(&format!("EPRT {}", target.eprt_arg()))
            .assert_says(502, "Active mode not enabled");
        target.assert_no_connection();
        c.assert_in_step();
    }
}

/// The bounce checks on the gateway, with active mode on.
#[test]
fn gateway_port_and_eprt_refuse_third_parties_and_privileged_ports() {
    let sim = Sim::start_default();
    let gw = Gateway::start(&sim, "active-mode = true");
    check_active_mode(gw.addr, ADMIN);
}

/// FTPS: a data connection whose TLS handshake fails (the client speaks plain text after
/// PROT P) fails the transfer with 425 after its 150; the session goes on, and it is idle again
/// (its idle timeout fires, which it never does while a data transfer is running).
#[test]
fn gateway_failed_data_tls_handshake_is_a_425() {
    let sim = Sim::start_default();
    let dir = tempfile::Builder::new()
        .prefix("qftpd-hostile-tls-")
        .tempdir()
        .expect("create a certificate dir");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("generate a certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let gw = Gateway::start(
        &sim,
        &format!(
            "idle-timeout = 3\n[ftp.tls]\ncertificate = \"{}\"\nkey = \"{}\"",
            cert.display(),
            key.display()
        ),
    );
    check_failed_data_tls_handshake(gw.addr, ADMIN);
}

/// AUTH TLS, PROT P, then plain text on the data connection: 150 and 425; then the idle
/// timeout (at most a few seconds) closes the session.
fn check_failed_data_tls_handshake(addr: SocketAddr, user: (&str, &str)) {
    let mut c = Control::connect(addr);
    c.auth_tls();
    c.user_pass(user);
    c.cmd("PBSZ 0").assert_code(200);
    c.cmd("PROT P").assert_code(200);
    let mut data = connect_data(c.pasv());
    data.write_all(b"not a TLS client hello\r\n").unwrap();
    c.cmd("LIST").assert_code(150);
    c.reply().assert_says(425, "TLS handshake failed");
    c.assert_in_step();
    c.reply().assert_says(421, "timed out");
}

// ---------------------------------------------------------------------------------------------
// chroot-users and symlinks that lead out of the home.

const ALICE: (&str, &str) = ("alice", "alicepw");

/// A simulator (with `sim_args`) where alice's home is `/home/alice`, and a gateway that
/// confines users to their homes. Outside the home, `/etc` holds a file and an empty directory
/// that anyone may read, write, rename and delete: only confinement stands in the way.
fn start_chroot(sim_args: &[&str]) -> (Sim, Gateway) {
    use std::os::unix::fs::PermissionsExt;
    let mut args = vec!["--home", "alice:/home/alice"];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(&[ADMIN, ALICE, ("bob", "bobpw")], Some("admin"), &args);
    let gw = Gateway::start(&sim, "chroot-users = true");
    let etc = sim.disk_path("/etc");
    std::fs::create_dir_all(etc.join("empty")).unwrap();
    std::fs::write(etc.join("secret.txt"), b"the secret of etc").unwrap();
    for (path, mode) in [("", 0o777), ("empty", 0o777), ("secret.txt", 0o666)] {
        let p = etc.join(path);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    (sim, gw)
}

/// A transfer command on a new passive data connection, with `upload` sent as its data: its
/// replies (a 150 and the final reply, or the refusal alone) and the data received.
fn transfer(c: &mut Control, cmd: &str, upload: Option<&[u8]>) -> (Vec<Reply>, Vec<u8>) {
    let addr = c.pasv();
    let mut data = connect_data(addr);
    let first = c.cmd(cmd);
    if first.code != 150 {
        return (vec![first], Vec::new());
    }
    let mut bytes = Vec::new();
    match upload {
        Some(body) => {
            data.write_all(body).expect("send the upload");
            drop(data);
        }
        None => {
            data.read_to_end(&mut bytes).expect("read the data");
        }
    }
    let end = c.reply();
    (vec![first, end], bytes)
}

/// The state of `/etc` on the simulator's disk: every name with its content (files), mode
/// and modification time.
fn outside_state(sim: &Sim) -> Vec<(String, Vec<u8>, u32, SystemTime)> {
    use std::os::unix::fs::PermissionsExt;
    let mut state = Vec::new();
    for entry in std::fs::read_dir(sim.disk_path("/etc")).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        let data = if meta.is_file() {
            std::fs::read(entry.path()).unwrap()
        } else {
            Vec::new()
        };
        let name = entry.file_name().into_string().unwrap();
        state.push((
            name,
            data,
            meta.permissions().mode(),
            meta.modified().unwrap(),
        ));
    }
    state.sort();
    state
}

/// Makes the symlink `name -> target` in alice's home through the REST API, as alice.
fn link_in_alices_home(qq: &common::Qq, name: &str, target: &str) {
    qq.ok(&[
        "fs_create_symlink",
        "--path",
        "/home/alice",
        "--target",
        target,
        "--name",
        name,
    ]);
}

/// The attack: alice makes symlinks to the cluster's root in her home through the REST API
/// (`esc -> /`, `up -> ../..`), then every kind of command through them, by absolute and by
/// relative paths, is refused with a 5xx and leaves `/etc` as it was; no reply names her
/// home's real path or shows the outside file. Under both ways a cluster may treat a symlink
/// in the middle of a path.
#[test]
fn gateway_chroot_symlinks_out_of_the_home_lead_nowhere() {
    for mode in ["follow", "refuse"] {
        let (sim, gw) = start_chroot(&["--path-symlinks", mode]);
        let qq = sim.qq_as(ALICE.0, ALICE.1);
        for (name, target) in [("esc", "/"), ("up", "../..")] {
            link_in_alices_home(&qq, name, target);
        }
        qq.ok(&["fs_create_dir", "--path", "/home/alice", "--name", "sub"]);
        std::fs::write(sim.disk_path("/home/alice/sub/f.txt"), b"mine").unwrap();
        let before = outside_state(&sim);
        // Without the symlinks, the cluster would let alice do all of it.
        assert_eq!(
            qq.ok(&["fs_read", "--path", "/etc/secret.txt", "--stdout"]),
            "the secret of etc"
        );

        let mut c = Control::login(gw.addr, ALICE);
        let mut replies: Vec<(String, Reply)> = Vec::new();
        let mut refused = |what: String, reply: Reply| {
            assert!(
                (500..600).contains(&reply.code),
                "{mode}: {what} was not refused: {reply:#?}"
            );
            replies.push((what, reply));
        };
        for p in [
            "/esc/etc",
            "/up/etc",
            "esc/etc",
            "/sub/../esc/etc",
            "/esc/home/../etc",
        ] {
            for cmd in [
                format!("RETR {p}/secret.txt"),
                format!("LIST {p}"),
                format!("NLST {p}"),
                format!("MLSD {p}"),
                format!("LIST {p}/secret.txt"),
                format!("LIST {p}/*.txt"),
                format!("NLST {p}/*.txt"),
            ] {
                let (r, data) = transfer(&mut c, &cmd, None);
                assert!(data.is_empty(), "{mode}: {cmd} sent {data:?}");
                refused(cmd, r.into_iter().last().unwrap());
            }
            for cmd in [
                format!("STOR {p}/secret.txt"),
                format!("STOR {p}/new.txt"),
                format!("APPE {p}/secret.txt"),
            ] {
                let (r, _) = transfer(&mut c, &cmd, Some(b"overwritten through a symlink"));
                refused(cmd, r.into_iter().last().unwrap());
            }
            for cmd in [
                format!("DELE {p}/secret.txt"),
                format!("RMD {p}/empty"),
                format!("MKD {p}/newdir"),
                format!("SIZE {p}/secret.txt"),
                format!("MDTM {p}/secret.txt"),
                format!("MLST {p}/secret.txt"),
                format!("MLST {p}"),
                format!("STAT {p}"),
                format!("CWD {p}"),
                format!("CWD {p}/empty"),
                format!("SITE CHMOD 600 {p}/secret.txt"),
                format!("SITE UTIME 20200102030405 {p}/secret.txt"),
                format!("MFMT 20200102030405 {p}/secret.txt"),
                format!("MDTM 20200102030405 {p}/secret.txt"),
                format!("RNFR {p}/secret.txt"),
            ] {
                let r = c.cmd(&cmd);
                refused(cmd, r);
            }
            c.cmd("RNFR /sub/f.txt").assert_code(350);
            let cmd = format!("RNTO {p}/stolen.txt");
            let r = c.cmd(&cmd);
            refused(cmd, r);
        }
        // Relative paths from a working directory inside the home.
        c.cmd("CWD /sub").assert_code(250);
        for cmd in ["RETR ../esc/etc/secret.txt", "LIST ../up/etc"] {
            let (r, data) = transfer(&mut c, cmd, None);
            assert!(data.is_empty(), "{mode}: {cmd} sent {data:?}");
            refused(cmd.to_string(), r.into_iter().last().unwrap());
        }
        c.cmd("PWD").assert_says(257, "\"/sub\"");
        c.assert_in_step();

        assert_eq!(outside_state(&sim), before, "{mode}: /etc changed");
        assert_eq!(
            std::fs::read(sim.disk_path("/home/alice/sub/f.txt")).unwrap(),
            b"mine"
        );
        for (what, reply) in &replies {
            let text = reply.text();
            assert!(
                !text.contains("/home/alice") && !text.contains("the secret"),
                "{mode}: {what}: the reply shows what is outside the home: {text}"
            );
        }
        if mode == "follow" {
            let (what, reply) = &replies[0];
            assert!(
                reply.text().contains("outside the home directory"),
                "{what}: {reply:#?}"
            );
            assert!(
                gw.stderr_log().contains("leads outside the home directory"),
                "the refusal is not logged"
            );
        }
    }
}

/// Symlinks in the home that point into the home (by a relative and by an absolute cluster
/// path) work on a cluster that follows them: read, list, change into a directory below, upload
/// through them.
/// On a cluster that does not, they are a clean 550.
#[test]
fn gateway_chroot_symlinks_within_the_home_work_where_the_cluster_follows_them() {
    for mode in ["follow", "refuse"] {
        let (sim, gw) = start_chroot(&["--path-symlinks", mode]);
        let qq = sim.qq_as(ALICE.0, ALICE.1);
        qq.ok(&["fs_create_dir", "--path", "/home/alice", "--name", "sub"]);
        qq.ok(&[
            "fs_create_dir",
            "--path",
            "/home/alice/sub",
            "--name",
            "deeper",
        ]);
        for (name, target) in [("in", "sub"), ("abs", "/home/alice/sub")] {
            link_in_alices_home(&qq, name, target);
        }
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(sim.disk_path("/home/alice/sub/f.bin"), &data).unwrap();

        let mut c = Control::login(gw.addr, ALICE);
        for link in ["in", "abs"] {
            let (r, got) = transfer(&mut c, &format!("RETR /{link}/f.bin"), None);
            // The last name is never followed (the cluster's own rule), the ones before it are.
            let cwd = c.cmd(&format!("CWD /{link}/deeper"));
            let up = format!("STOR /{link}/deeper/up-{link}.txt");
            let (stor, _) = transfer(&mut c, &up, Some(b"through a link"));
            let (list, names) = transfer(&mut c, &format!("NLST /{link}/deeper"), None);
            if mode == "follow" {
                r.last().unwrap().assert_code(226);
                assert!(got == data, "RETR /{link}/f.bin: {} bytes", got.len());
                list.last().unwrap().assert_code(226);
                let names = String::from_utf8(names).unwrap();
                assert!(names.contains(&format!("up-{link}.txt")), "{names}");
                cwd.assert_code(250);
                stor.last().unwrap().assert_code(226);
                let up = sim.disk_path(&format!("/home/alice/sub/deeper/up-{link}.txt"));
                assert_eq!(std::fs::read(up).unwrap(), b"through a link");
            } else {
                for reply in [
                    r.last().unwrap(),
                    list.last().unwrap(),
                    &cwd,
                    stor.last().unwrap(),
                ] {
                    reply.assert_code(550);
                    assert!(!reply.text().contains("/home/alice"), "{reply:#?}");
                }
            }
            c.cmd("CWD /").assert_code(250);
        }
        c.assert_in_step();
    }
}

// ---------------------------------------------------------------------------------------------
// Active mode (on the gateway and on the in-process server).

/// A listener standing for a data port of the client or of a third party.
struct Listener(TcpListener);

impl Listener {
    fn bind(ip: &str) -> Listener {
        let listener = TcpListener::bind((ip, 0)).expect("bind a test listener");
        listener.set_nonblocking(true).unwrap();
        Listener(listener)
    }

    fn addr(&self) -> SocketAddr {
        self.0.local_addr().unwrap()
    }

    /// `h1,h2,h3,h4,p1,p2` for PORT.
    fn port_arg(&self) -> String {
        port_arg(self.addr())
    }

    /// `|1|a.b.c.d|port|` for EPRT.
    fn eprt_arg(&self) -> String {
        format!("|1|{}|{}|", self.addr().ip(), self.addr().port())
    }

    /// Nobody connected. The server connects before it answers PORT/EPRT, so once the reply
    /// is read a connection would already be waiting.
    fn assert_no_connection(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("the server connected to {} from {peer}", self.addr()),
            Err(e) => panic!("accept: {e}"),
        }
    }

    /// The server's connection, which is already there.
    fn accept(&self) -> TcpStream {
        let (stream, _) = self.0.accept().expect("the server's data connection");
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream
    }
}

fn port_arg(addr: SocketAddr) -> String {
    let IpAddr::V4(ip) = addr.ip() else {
        panic!("PORT takes IPv4 addresses")
    };
    let [a, b, c, d] = ip.octets();
    format!(
        "{a},{b},{c},{d},{},{}",
        addr.port() >> 8,
        addr.port() & 0xff
    )
}

/// PORT and EPRT refuse third-party addresses and privileged ports with 504 and connect
/// nowhere; EPRT refuses unknown network protocols with 522 and bad syntax with 501; to the
/// client's own address both work (a LIST goes through).
fn check_active_mode(addr: SocketAddr, user: (&str, &str)) {
    let third_party = Listener::bind("127.0.0.2");
    let mut c = Control::login(addr, user);

    c.cmd(&format!("PORT {}", third_party.port_arg()))
        .assert_says(504, "PORT to a third-party address refused");
    c.cmd(&format!("EPRT {}", third_party.eprt_arg()))
        .assert_says(504, "EPRT to a third-party address refused");
    let v6 = format!("EPRT |2|::1|{}|", third_party.addr().port());
    c.cmd(&v6).assert_says(504, "third-party");
    third_party.assert_no_connection();
    // Without a data connection a transfer command is refused, not started.
    c.cmd("LIST").assert_code(425);
    c.assert_in_step();

    c.cmd("PORT 127,0,0,1,0,21")
        .assert_says(504, "PORT to a privileged port refused");
    c.cmd("EPRT |1|127.0.0.1|1023|")
        .assert_says(504, "EPRT to a privileged port refused");
    c.cmd("EPRT |3|127.0.0.1|2000|")
        .assert_says(522, "Network protocol not supported");
    for bad in [
        "PORT 127,0,0,1,4",
        "PORT 127,0,0,x,4,1",
        "PORT 127,0,0,1,4,256",
        "EPRT 127.0.0.1:2000",
        "EPRT |1|127.0.0.1|2000",
        "EPRT |1|localhost|2000|",
        "EPRT |1|127.0.0.1|65536|",
    ] {
        c.cmd(bad).assert_code(501);
    }
    c.assert_in_step();

    let own = Listener::bind("127.0.0.1");
    c.cmd(&format!("PORT {}", own.port_arg()))
        .assert_says(200, "PORT command successful");
    let mut data = own.accept();
    c.cmd("LIST").assert_code(150);
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).expect("read the listing");
    c.reply().assert_code(226);
    split_crlf_lines(&bytes, "LIST")
        .iter()
        .for_each(|l| assert_ls_line(l));

    let own = Listener::bind("127.0.0.1");
    c.cmd(&format!("EPRT {}", own.eprt_arg()))
        .assert_says(200, "EPRT command successful");
    let mut data = own.accept();
    c.cmd("NLST").assert_code(150);
    data.read_to_end(&mut Vec::new()).expect("read the listing");
    c.reply().assert_code(226);
    c.assert_in_step();
}

#[test]
fn in_process_port_and_eprt_refuse_third_parties_and_privileged_ports() {
    let server = InProcess::start(|b| b.active_passive_mode(ActivePassiveMode::ActiveAndPassive));
    check_active_mode(server.addr, ANONYMOUS);
}

/// libunftp's default mode is passive only: PORT and EPRT get 502.
#[test]
fn in_process_passive_only_refuses_port_and_eprt() {
    let server = InProcess::start(|b| b);
    let own = Listener::bind("127.0.0.1");
    let mut c = Control::login(server.addr, ANONYMOUS);
    c.cmd(&format!("PORT {}", own.port_arg()))
        .assert_says(502, "Active mode not enabled");
    c.cmd(&format!("EPRT {}", own.eprt_arg()))
        .assert_says(502, "Active mode not enabled");
    own.assert_no_connection();
    c.assert_in_step();
}

// ---------------------------------------------------------------------------------------------
// Replies and listings of names with CR and LF, where the storage accepts anything.

/// Paths echoed in replies (PWD after CWD, MLST) and names in listings never start a line.
#[test]
fn in_process_cr_and_lf_inject_no_lines() {
    let server = InProcess::start(|b| b);
    let mut c = Control::login(server.addr, ANONYMOUS);

    c.raw(b"CWD /d\r\x00257 \"/fake\"\r\n").assert_code(250);
    let pwd = c.cmd("PWD");
    pwd.assert_code(257);
    assert_eq!(pwd.lines, ["257 \"/d?257 \"\"/fake\"\"\""]);
    c.assert_in_step();

    let mlst = c.raw(b"MLST x\r\x00250 fake\r\n");
    mlst.assert_code(250);
    assert_eq!(mlst.lines.len(), 3, "{mlst:#?}");
    // The name is resolved in the working directory.
    assert!(mlst.lines[1].ends_with("/x?250 fake"), "{mlst:#?}");
    c.assert_in_step();

    let entries = Fixed::NAMES.len();
    let list = c.listing("LIST");
    assert_eq!(list.len(), entries, "{list:#?}");
    list.iter().for_each(|l| assert_ls_line(l));
    let nlst = c.listing("NLST");
    assert_eq!(nlst.len(), entries, "{nlst:#?}");
    let mlsd = c.listing("MLSD");
    assert_eq!(mlsd.len(), entries, "{mlsd:#?}");
    mlsd.iter().for_each(|l| assert_mlsd_line(l));
    let stat = c.cmd("STAT /");
    assert_eq!(stat.lines.len(), entries + 2, "{stat:#?}");
    c.assert_in_step();
}

// ---------------------------------------------------------------------------------------------
// Data connections that fail or never come.

/// As [`gateway_failed_data_tls_handshake_is_a_425`], on libunftp alone.
#[test]
fn in_process_failed_data_tls_handshake_is_a_425() {
    let tls = tls_config();
    let server = InProcess::start(move |b| {
        b.ftps_manual::<PathBuf>(tls.clone())
            .idle_session_timeout(3)
    });
    check_failed_data_tls_handshake(server.addr, ANONYMOUS);
}

/// With `data_connection_timeout`, a data connection that gets no command is closed in time
/// (instead of after 5 minutes).
#[test]
fn in_process_data_connection_without_command_is_closed() {
    let server = InProcess::start(|b| b.data_connection_timeout(Duration::from_secs(1)));
    let mut c = Control::login(server.addr, ANONYMOUS);
    let mut data = connect_data(c.pasv());
    let n = data
        .read(&mut [0u8; 16])
        .expect("the server closes the idle data connection before the read times out");
    assert_eq!(n, 0);
    c.assert_in_step();
}

/// A transfer command for a passive connection the client never opens gets 425 when the wait
/// ends, instead of a 150 that is never followed up; after it (and once the passive port is
/// given up without a transfer) a transfer command gets 425 at once.
#[test]
fn in_process_passive_connection_that_never_comes_is_a_425() {
    let server = InProcess::start(|b| b.data_connection_timeout(Duration::from_secs(1)));
    let mut c = Control::login(server.addr, ANONYMOUS);
    c.pasv();
    // No 150: the data task answers it only once the transfer can start.
    c.cmd("LIST")
        .assert_says(425, "Data connection not opened in time");
    c.cmd("LIST").assert_code(425);
    c.assert_in_step();

    let addr = c.pasv();
    // Lets the configured one-second wait for the connection expire.
    std::thread::sleep(Duration::from_secs(3));
    c.cmd("LIST").assert_code(425);
    assert!(
        TcpStream::connect_timeout(&addr, READ_TIMEOUT).is_err(),
        "the passive port still accepts connections"
    );
    c.assert_in_step();
}

// ---------------------------------------------------------------------------------------------
// The in-process libunftp server.

/// A libunftp server on 127.0.0.1 (port 0) with [`Fixed`] storage and anonymous login; each
/// connection gets a `Server` from `configure(ServerBuilder::new(..))`. Stops when dropped.
struct InProcess {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

type Builder = ServerBuilder<Fixed, DefaultUser>;

impl InProcess {
    fn start(configure: impl Fn(Builder) -> Builder + Send + Sync + 'static) -> InProcess {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the in-process server");
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = configure(ServerBuilder::new(Box::new(|| Fixed)))
                    .build()
                    .expect("build the libunftp server");
                tokio::spawn(server.service(stream));
            }
        });
        InProcess {
            addr,
            _runtime: runtime,
        }
    }
}

/// A self-signed certificate for `localhost`.
fn tls_config() -> Arc<rustls::ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("generate a certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("TLS server configuration");
    Arc::new(config)
}

/// Storage where every path is a directory holding [`Fixed::NAMES`] (empty files), and every
/// change succeeds.
#[derive(Debug)]
struct Fixed;

impl Fixed {
    /// Names with CR and LF that would forge listing and reply lines.
    const NAMES: [&str; 4] = [
        "f.txt",
        "a\r\n226 Transfer complete",
        "b\n-rw-r--r--   1 0 0 0 Jan  1 00:00 fake",
        "c\r250 fake",
    ];
}

#[derive(Debug)]
struct Meta {
    dir: bool,
}

impl Metadata for Meta {
    fn len(&self) -> u64 {
        0
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn is_file(&self) -> bool {
        !self.dir
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> unftp_core::storage::Result<SystemTime> {
        Ok(SystemTime::UNIX_EPOCH)
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
}

#[async_trait]
impl StorageBackend<DefaultUser> for Fixed {
    type Metadata = Meta;

    async fn metadata<P: AsRef<Path> + Send + Debug>(
        &self,
        _: &DefaultUser,
        _: P,
    ) -> unftp_core::storage::Result<Meta> {
        Ok(Meta { dir: true })
    }

    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        _: &DefaultUser,
        path: P,
    ) -> unftp_core::storage::Result<Vec<Fileinfo<PathBuf, Meta>>> {
        Ok(Fixed::NAMES
            .iter()
            .map(|name| Fileinfo {
                path: path.as_ref().join(name),
                metadata: Meta { dir: false },
            })
            .collect())
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        _: &DefaultUser,
        _: P,
        _: u64,
    ) -> unftp_core::storage::Result<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        Ok(Box::new(tokio::io::empty()))
    }

    async fn put<
        P: AsRef<Path> + Send + Debug,
        R: tokio::io::AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        _: &DefaultUser,
        mut input: R,
        _: P,
        _: u64,
    ) -> unftp_core::storage::Result<u64> {
        Ok(tokio::io::copy(&mut input, &mut tokio::io::sink()).await?)
    }

    async fn del<P: AsRef<Path> + Send + Debug>(
        &self,
        _: &DefaultUser,
        _: P,
    ) -> unftp_core::storage::Result<()> {
        Ok(())
    }

    async fn mkd<P: AsRef<Path> + Send + Debug>(
        &self,
        _: &DefaultUser,
        _: P,
    ) -> unftp_core::storage::Result<()> {
        Ok(())
    }

    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        _: &DefaultUser,
        _: P,
        _: P,
    ) -> unftp_core::storage::Result<()> {
        Ok(())
    }

    async fn rmd<P: AsRef<Path> + Send + Debug>(
        &self,
        _: &DefaultUser,
        _: P,
    ) -> unftp_core::storage::Result<()> {
        Ok(())
    }

    async fn cwd<P: AsRef<Path> + Send + Debug>(
        &self,
        _: &DefaultUser,
        _: P,
    ) -> unftp_core::storage::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Passive ports: one listener per session, strangers on a victim's port, a range that runs out.

const BOB: (&str, &str) = ("bob", "bobpw");
/// Another client on the loopback network.
const STRANGER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// The server closed `stream` without sending anything on it.
fn assert_closed_by_server(stream: &mut TcpStream, what: &str) {
    match stream.read(&mut [0u8; 64]) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("{what}: {n} bytes came instead of the close"),
        Err(e) => panic!("{what}: not closed by the server: {e}"),
    }
}

/// Nothing listens on `addr`.
fn assert_refused(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, READ_TIMEOUT) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
        Err(e) => panic!("connect to {addr}: {e} instead of a refusal"),
        Ok(_) => panic!("{addr} still accepts connections"),
    }
}

/// 60 PASV and EPSV without connecting: each closes the listener of the one before, so the
/// session holds one port of the four of the range, the ports of the earlier replies refuse
/// connections, and three other sessions still get the other ports and use them.
#[test]
fn gateway_a_new_pasv_closes_the_previous_listener() {
    let sim = Sim::start_default();
    let gw = Gateway::builder(&sim).ports(PassivePorts::first(4)).start();
    let host = gw.addr.ip();
    let mut hog = Control::login(gw.addr, ADMIN);
    let addrs: Vec<SocketAddr> = (0..60)
        .map(|i| {
            if i % 2 == 0 {
                hog.pasv()
            } else {
                hog.epsv(host)
            }
        })
        .collect();
    let last = addrs[59];
    for addr in addrs.iter().filter(|a| **a != last) {
        assert_refused(*addr);
    }
    let mut others: Vec<(Control, SocketAddr)> = [ALICE, BOB, ALICE]
        .into_iter()
        .map(|user| {
            let mut c = Control::login(gw.addr, user);
            let addr = c.pasv();
            (c, addr)
        })
        .collect();
    for (c, addr) in &mut others {
        let mut data = connect_data(*addr);
        c.cmd("NLST /").assert_code(150);
        let mut listing = Vec::new();
        data.read_to_end(&mut listing).expect("read the listing");
        c.reply().assert_code(226);
        c.assert_in_step();
    }
    // The session's last listener closes with the session.
    hog.cmd("QUIT").assert_code(221);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&last, READ_TIMEOUT).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "{last} still accepts connections after QUIT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connections to a victim's passive port from another address are closed and logged (one
/// warning, and their number when the port closes), and the victim's own connection, which
/// comes after them, still gets the file.
#[test]
fn gateway_a_stranger_on_the_passive_port_does_not_take_the_transfer() {
    let (sim, gw) = start("");
    std::fs::write(sim.disk_path("/f"), b"for the rightful client").unwrap();
    let mut victim = Control::login(gw.addr, ADMIN);
    let addr = victim.pasv();
    for _ in 0..3 {
        let mut stranger = connect_from(STRANGER, addr);
        assert_closed_by_server(&mut stranger, "the stranger's data connection");
    }
    let mut data = connect_data(addr);
    victim.cmd("RETR /f").assert_code(150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).expect("read the file");
    assert_eq!(got, b"for the rightful client");
    victim.reply().assert_code(226);
    // The listener was closed when it accepted the victim's connection.
    assert_refused(addr);
    victim.assert_in_step();
    let log = gw.log_where("the count of refused connections", |log| {
        log.contains("it refused 3 data connections from other addresses")
    });
    assert!(
        log.lines().any(|l| l.contains("refused a data connection")
            && l.contains(&STRANGER.to_string())
            && l.contains("127.0.0.1")),
        "no refusal naming both addresses in the log:\n{log}"
    );
    assert_eq!(log.matches("refused a data connection").count(), 1, "{log}");
}

/// A transfer command whose data connection was refused by the address check (it came from
/// another address than the client's, and the client's own is not there when the command
/// comes) is answered 425 at once, not when the data timeout ends; one whose data connection
/// never comes at all gets its 425 at the data timeout (counted from PASV). The session goes on.
#[test]
fn gateway_a_refused_data_connection_is_a_425_at_once_a_missing_one_at_the_data_timeout() {
    let sim = Sim::start_default();
    let gw = Gateway::start(&sim, "data-timeout = 3");
    std::fs::write(sim.disk_path("/f"), b"never sent").unwrap();
    let mut c = Control::login(gw.addr, ADMIN);
    let addr = c.pasv();
    let mut stranger = connect_from(STRANGER, addr);
    assert_closed_by_server(&mut stranger, "the stranger's data connection");
    let asked = std::time::Instant::now();
    c.cmd("RETR /f").assert_says(
        425,
        "Data connection refused: it did not come from the client's address",
    );
    let waited = asked.elapsed();
    println!("425 after {waited:?} for a refused data connection (data-timeout = 3)");
    assert!(waited < Duration::from_secs(1), "425 after {waited:?}");
    assert_refused(addr);
    c.assert_in_step();

    // The command first, then the connection from the wrong address.
    let addr = c.pasv();
    c.send(b"RETR /f\r\n");
    let asked = std::time::Instant::now();
    let mut stranger = connect_from(STRANGER, addr);
    assert_closed_by_server(&mut stranger, "the data connection from the wrong address");
    c.reply().assert_code(425);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "425 after {:?}",
        asked.elapsed()
    );
    c.assert_in_step();

    let addr = c.pasv();
    let asked = std::time::Instant::now();
    c.cmd("RETR /f")
        .assert_says(425, "Data connection not opened in time");
    let waited = asked.elapsed();
    println!("425 after {waited:?} for a data connection that never came");
    assert!(
        waited >= Duration::from_millis(2500) && waited < Duration::from_secs(6),
        "425 after {waited:?}"
    );
    assert_refused(addr);
    c.assert_in_step();
}

/// When every port of the range is held, PASV and EPSV are answered 425 at once and logged; the
/// session goes on, and its PASV works again once a port is free.
#[test]
fn gateway_no_free_passive_port_is_a_425_at_once() {
    let sim = Sim::start_default();
    let gw = Gateway::builder(&sim).ports(PassivePorts::first(3)).start();
    let mut holders: Vec<(Control, SocketAddr)> = (0..3)
        .map(|_| {
            let mut c = Control::login(gw.addr, ALICE);
            let addr = c.pasv();
            (c, addr)
        })
        .collect();
    let mut late = Control::login(gw.addr, BOB);
    for cmd in ["PASV", "EPSV", "PASV"] {
        let asked = std::time::Instant::now();
        late.cmd(cmd).assert_says(425, "No passive port free");
        let waited = asked.elapsed();
        println!("{cmd}: 425 after {waited:?}");
        assert!(
            waited < Duration::from_secs(1),
            "{cmd}: 425 after {waited:?}"
        );
        late.assert_in_step();
    }
    let (mut holder, addr) = holders.pop().unwrap();
    let mut data = connect_data(addr);
    holder.cmd("NLST /").assert_code(150);
    data.read_to_end(&mut Vec::new()).expect("read the listing");
    holder.reply().assert_code(226);
    let names = late.listing("NLST /");
    assert!(names.is_empty(), "{names:?}");
    late.assert_in_step();
    gw.log_where("a warning about the exhausted range", |log| {
        log.lines()
            .any(|l| l.contains("no passive port free") && l.contains("3 ports"))
    });
}

/// How a session of [`gateway_100_sessions_transfer_at_once_over_41_passive_ports`] went.
#[derive(Debug, Default)]
struct SessionOutcome {
    /// 425 replies to PASV or RETR before the transfer went through.
    refusals: usize,
}

/// 100 sessions download 1 MiB each at the same moment through a range of 41 passive ports:
/// every one gets its file, possibly after 425 replies it retries on; no control connection
/// is closed without a reply.
#[test]
fn gateway_100_sessions_transfer_at_once_over_41_passive_ports() {
    const SESSIONS: usize = 100;
    let sim = Sim::start_default();
    let content: Arc<Vec<u8>> = Arc::new((0..1 << 20).map(|i: u32| (i % 251) as u8).collect());
    std::fs::write(sim.disk_path("/big"), content.as_slice()).unwrap();
    let gw = Gateway::builder(&sim)
        .ports(PassivePorts::first(41))
        .ftp("max-connections-per-ip = 200\n")
        .start();
    let addr = gw.addr;
    let start = Arc::new(std::sync::Barrier::new(SESSIONS));
    let threads: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let (start, content) = (start.clone(), content.clone());
            let user = [ADMIN, ALICE, BOB][i % 3];
            std::thread::spawn(move || {
                let mut c = Control::login(addr, user);
                start.wait();
                let mut outcome = SessionOutcome::default();
                let deadline = std::time::Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no transfer: {outcome:?}"
                    );
                    let reply = c.cmd("PASV");
                    if reply.code == 425 {
                        outcome.refusals += 1;
                        std::thread::sleep(Duration::from_millis(20 + (i as u64 % 7) * 10));
                        continue;
                    }
                    reply.assert_code(227);
                    let data_addr = Control::pasv_addr(&reply);
                    let mut data = connect_data(data_addr);
                    let reply = c.cmd("RETR /big");
                    if reply.code == 425 {
                        outcome.refusals += 1;
                        continue;
                    }
                    reply.assert_code(150);
                    let mut got = Vec::with_capacity(content.len());
                    data.read_to_end(&mut got).expect("read the file");
                    c.reply().assert_code(226);
                    assert!(got == *content, "{} bytes, not the file", got.len());
                    break;
                }
                c.cmd("QUIT").assert_code(221);
                outcome
            })
        })
        .collect();
    let (mut done, mut refusals, mut failures) = (0, 0, Vec::new());
    for thread in threads {
        match thread.join() {
            Ok(outcome) => {
                done += 1;
                refusals += outcome.refusals;
            }
            Err(panic) => failures.push(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        }
    }
    let silent = failures
        .iter()
        .filter(|f| f.contains("closed the control connection"))
        .count();
    println!(
        "{SESSIONS} sessions over 41 ports: {done} transferred, {refusals} 425 replies retried, \
         {silent} control connections closed without a reply, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} sessions failed ({silent} closed without a reply): {failures:#?}\n{}",
        failures.len(),
        gw.stderr_log()
    );
    if refusals > 0 {
        gw.log_where("a warning about the exhausted range", |log| {
            log.contains("no passive port free, all 41 ports of the range are in use")
        });
    }
}

//! The command set and its reply codes: setting modification times (MFMT, vsftpd's
//! `MDTM TIME PATH`, both forms of `SITE UTIME`) and keeping them with rclone, lftp and ftplib;
//! SIZE and MDTM of a directory; RFC 1123's X-aliases, EPSV's arguments and `EPSV ALL`, ACCT,
//! TYPE, RNTO without RNFR, PBSZ/PROT before AUTH TLS, a second AUTH TLS, HELP; CWD into a
//! directory the user may not list; replies under chroot that never name the real home.
//!
//! Every test runs `qftpd serve` in front of `qftpd sim` and checks the replies on raw control
//! connections (or through the real clients); times are checked on the simulator's disk too.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use common::Sim;
use common::control::Control;
use common::{Gateway, op, run_ftplib_with, scratch, toml_str, wait_with_deadline};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("admin", "adminpw");
const ALICE: (&str, &str) = ("alice", "alicepw");
const BOB: (&str, &str) = ("bob", "bobpw");

/// A simulator with alice's home directory `/home/alice`, and a gateway in front of it with
/// `extra_ftp` lines.
fn start(extra_ftp: &str) -> (Sim, Gateway) {
    let sim = Sim::builder()
        .users(&[ADMIN, ALICE, BOB])
        .admin("admin")
        .home("alice")
        .start();
    let gw = Gateway::start(&sim, extra_ftp);
    (sim, gw)
}

/// `YYYYMMDDHHMMSS[.f]` (UTC) as a time.
fn utc(text: &str) -> SystemTime {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let t = chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S")
        .unwrap_or_else(|e| panic!("{whole}: {e}"))
        .and_utc();
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().unwrap()
    };
    SystemTime::from(t) + Duration::from_nanos(u64::from(nanos))
}

/// The modification time of an API path on the simulator's disk.
fn disk_mtime(sim: &Sim, api_path: &str) -> SystemTime {
    std::fs::metadata(sim.disk_path(api_path))
        .unwrap_or_else(|e| panic!("{api_path}: {e}"))
        .modified()
        .unwrap()
}

/// Stores `data` at `path` as `user` with ftplib.
fn store(gw: &Gateway, user: (&str, &str), path: &str, data: &[u8]) {
    let r = gw.ftplib_as(
        user.0,
        user.1,
        &[op::stor(&format!("STOR {path}"), data, None)],
    );
    r[0].reply();
}

#[test]
fn mfmt_sets_the_modification_time_and_answers_213_modify() {
    let (sim, gw) = start("");
    store(&gw, ALICE, "/home/alice/f.txt", b"mfmt");
    store(&gw, ALICE, "/home/alice/a b #%.txt", b"spaces");
    store(&gw, ADMIN, "/admins.txt", b"not alice's");
    let admins_before = disk_mtime(&sim, "/admins.txt");

    let mut c = Control::login(gw.addr, ALICE);
    let feat = c.cmd("FEAT");
    feat.assert_code(211);
    assert!(
        feat.lines.iter().any(|l| l.trim() == "MFMT"),
        "FEAT lacks MFMT: {feat:#?}"
    );

    c.cmd("CWD /home/alice").assert_code(250);
    c.cmd("MFMT 20200102030405 f.txt")
        .assert_says(213, "Modify=20200102030405; f.txt");
    assert_eq!(disk_mtime(&sim, "/home/alice/f.txt"), utc("20200102030405"));
    c.cmd("MDTM f.txt").assert_says(213, "20200102030405");

    // Milliseconds are kept; an absolute path and a name with spaces.
    c.cmd("MFMT 20210304050607.250 /home/alice/a b #%.txt")
        .assert_says(213, "Modify=20210304050607; /home/alice/a b #%.txt");
    assert_eq!(
        disk_mtime(&sim, "/home/alice/a b #%.txt"),
        utc("20210304050607.25")
    );

    // Malformed times: 501, nothing changes.
    for bad in [
        "MFMT 20201301000000 f.txt",
        "MFMT 20210230000000 f.txt",
        "MFMT 20200101250000 f.txt",
        "MFMT 2020010100000x f.txt",
        "MFMT 202001010000 f.txt",
        "MFMT 20200101000000.x f.txt",
        "MFMT yesterday f.txt",
        "MFMT 20200101000000",
        "MFMT",
    ] {
        c.cmd(bad).assert_code(501);
    }
    assert_eq!(disk_mtime(&sim, "/home/alice/f.txt"), utc("20200102030405"));

    // A missing file, and a file alice does not own: 550 with the reason.
    c.cmd("MFMT 20200101000000 missing.txt").assert_code(550);
    let refused = c.cmd("MFMT 20200101000000 /admins.txt");
    refused.assert_code(550);
    assert!(
        refused.text().len() > "550 ".len() + 5,
        "550 without a reason: {refused:#?}"
    );
    assert_eq!(disk_mtime(&sim, "/admins.txt"), admins_before);
    c.assert_in_step();

    // Pipelined in one packet: the replies come in order.
    c.send(b"MFMT 20000101000000 f.txt\r\nMDTM f.txt\r\nMFMT 20000101000000 missing\r\nNOOP\r\n");
    c.reply().assert_says(213, "Modify=20000101000000; f.txt");
    c.reply().assert_says(213, "20000101000000");
    c.reply().assert_code(550);
    c.reply().assert_code(200);
}

#[test]
fn mdtm_with_a_time_sets_it_as_vsftpd_does_and_a_lone_time_is_a_query() {
    let (sim, gw) = start("");
    store(&gw, ALICE, "/home/alice/f.txt", b"mdtm");
    // A file named like a time: MDTM of it alone asks for its time.
    store(&gw, ALICE, "/home/alice/20240101000000", b"digits");

    let mut c = Control::login(gw.addr, ALICE);
    c.cmd("CWD /home/alice").assert_code(250);
    c.cmd("MDTM 20190203040506 f.txt").assert_code(213);
    assert_eq!(disk_mtime(&sim, "/home/alice/f.txt"), utc("20190203040506"));
    c.cmd("MDTM f.txt").assert_says(213, "20190203040506");

    let before = disk_mtime(&sim, "/home/alice/20240101000000");
    let query = c.cmd("MDTM 20240101000000");
    query.assert_code(213);
    assert_ne!(query.text(), "213 20240101000000");
    assert_eq!(disk_mtime(&sim, "/home/alice/20240101000000"), before);

    c.cmd("MDTM 20191301000000 f.txt").assert_code(501);
    c.cmd("MDTM 20190230000000 f.txt").assert_code(501);
    assert_eq!(disk_mtime(&sim, "/home/alice/f.txt"), utc("20190203040506"));
    c.cmd("MDTM 20190203040506 missing").assert_code(550);
}

#[test]
fn site_utime_in_both_forms() {
    let (sim, gw) = start("");
    store(&gw, ALICE, "/home/alice/u v.txt", b"utime");
    store(&gw, ADMIN, "/admins.txt", b"not alice's");
    let admins_before = disk_mtime(&sim, "/admins.txt");
    let file = "/home/alice/u v.txt";

    let mut c = Control::login(gw.addr, ALICE);
    c.cmd("CWD /home/alice").assert_code(250);
    // SITE UTIME PATH TIME
    c.cmd("SITE UTIME u v.txt 20180102030405").assert_code(200);
    assert_eq!(disk_mtime(&sim, file), utc("20180102030405"));
    // SITE UTIME TIME PATH (ProFTPD), minutes only
    c.cmd("SITE UTIME 201701020304 u v.txt").assert_code(200);
    assert_eq!(disk_mtime(&sim, file), utc("20170102030400"));
    // SITE UTIME ATIME MTIME CTIME PATH UTC (ProFTPD, lftp): the second time is mtime.
    c.cmd("SITE UTIME 20160101000000 20150607080910 20160101000000 u v.txt UTC")
        .assert_code(200);
    assert_eq!(disk_mtime(&sim, file), utc("20150607080910"));
    c.cmd("MDTM u v.txt").assert_says(213, "20150607080910");

    for bad in [
        "SITE UTIME 20161301000000 u v.txt",
        "SITE UTIME u v.txt 20160230000000",
        "SITE UTIME 20160101000000 20151301000000 20160101000000 u v.txt UTC",
        "SITE UTIME u v.txt",
        "SITE UTIME",
    ] {
        c.cmd(bad).assert_code(501);
    }
    assert_eq!(disk_mtime(&sim, file), utc("20150607080910"));

    c.cmd("SITE UTIME 20160101000000 missing").assert_code(550);
    c.cmd("SITE UTIME 20160101000000 /admins.txt")
        .assert_code(550);
    assert_eq!(disk_mtime(&sim, "/admins.txt"), admins_before);
    c.assert_in_step();
}

#[test]
fn setting_times_resolves_relative_paths_under_chroot() {
    let (sim, gw) = start("chroot-users = true");
    let mut c = Control::login(gw.addr, ALICE);
    c.cmd("MKD sub").assert_code(257);
    drop(c);
    store(&gw, ALICE, "/sub/f.txt", b"chroot");

    let mut c = Control::login(gw.addr, ALICE);
    c.cmd("CWD sub").assert_code(250);
    c.cmd("MFMT 20200102030405 f.txt")
        .assert_says(213, "Modify=20200102030405; f.txt");
    assert_eq!(
        disk_mtime(&sim, "/home/alice/sub/f.txt"),
        utc("20200102030405")
    );
    c.cmd("MDTM 20210102030405 ../sub/f.txt").assert_code(213);
    assert_eq!(
        disk_mtime(&sim, "/home/alice/sub/f.txt"),
        utc("20210102030405")
    );
    c.cmd("SITE UTIME f.txt 20220102030405").assert_code(200);
    assert_eq!(
        disk_mtime(&sim, "/home/alice/sub/f.txt"),
        utc("20220102030405")
    );
    c.cmd("MFMT 20200102030405 nothing-here").assert_code(550);
    c.cmd("SITE UTIME 20200102030405 /../../x").assert_code(550);
    c.assert_in_step();
}

#[test]
fn size_and_mdtm_of_a_directory_are_550() {
    let (_sim, gw) = start("");
    store(&gw, ALICE, "/home/alice/f.txt", b"12345");
    let mut c = Control::login(gw.addr, ALICE);
    c.cmd("MKD /home/alice/d").assert_code(257);
    c.cmd("SIZE /home/alice/d").assert_code(550);
    c.cmd("MDTM /home/alice/d").assert_code(550);
    c.cmd("CWD /home/alice").assert_code(250);
    c.cmd("SIZE d").assert_code(550);
    c.cmd("MDTM .").assert_code(550);
    c.cmd("SIZE f.txt").assert_says(213, "5");
    c.cmd("MDTM f.txt").assert_code(213);
}

#[test]
fn rfc_1123_aliases() {
    let (_sim, gw) = start("");
    let mut c = Control::login(gw.addr, ALICE);
    c.cmd("XMKD /home/alice/x")
        .assert_says(257, "\"/home/alice/x\"");
    c.cmd("XCWD /home/alice/x").assert_code(250);
    c.cmd("XPWD").assert_says(257, "\"/home/alice/x\"");
    c.cmd("XCUP").assert_code(250);
    c.cmd("XPWD").assert_says(257, "\"/home/alice\"");
    c.cmd("XRMD x").assert_code(250);
    c.cmd("XCWD x").assert_code(550);
    c.cmd("XRMD x").assert_code(550);
}

#[test]
fn epsv_arguments_and_epsv_all() {
    let (_sim, gw) = start("");
    let mut c = Control::login(gw.addr, ALICE);
    c.cmd("EPSV 2")
        .assert_says(522, "Network protocol not supported, use (1)");
    c.cmd("EPSV 3").assert_says(522, "(1,2)");
    c.cmd("EPSV x").assert_code(501);
    c.cmd("EPSV 1").assert_code(229);
    c.cmd("EPSV").assert_code(229);
    // Before EPSV ALL, PASV still works.
    c.cmd("PASV").assert_code(227);
    c.cmd("EPSV ALL").assert_code(200);
    c.cmd("PASV").assert_code(503);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    c.cmd(&format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff))
        .assert_code(503);
    c.cmd(&format!("EPRT |1|127.0.0.1|{port}|"))
        .assert_code(503);
    c.cmd("EPSV").assert_code(229);
    c.assert_in_step();
}

#[test]
fn acct_type_rnto_and_help() {
    let (_sim, gw) = start("");
    let mut c = Control::login(gw.addr, ALICE);
    c.cmd("ACCT anything").assert_code(202);
    c.cmd("TYPE").assert_code(501);
    for ok in [
        "TYPE A", "TYPE A N", "TYPE I", "TYPE L 8", "TYPE a", "TYPE i",
    ] {
        c.cmd(ok).assert_code(200);
    }
    for unknown in ["TYPE E", "TYPE A T", "TYPE A C", "TYPE L 7", "TYPE X"] {
        c.cmd(unknown).assert_code(504);
    }
    c.cmd("RNTO /home/alice/y").assert_code(503);
    c.cmd("STOR").assert_code(501);

    let help = c.cmd("HELP");
    help.assert_code(214);
    assert!(help.lines.len() > 3, "HELP on one line: {help:#?}");
    let words: Vec<&str> = help
        .lines
        .iter()
        .flat_map(|l| l.split_whitespace())
        .collect();
    for verb in [
        "USER", "RETR", "STOR", "MFMT", "MDTM", "SIZE", "MLSD", "EPSV", "EPRT", "XRMD", "XCUP",
        "SITE", "UTIME", "CHMOD",
    ] {
        assert!(words.contains(&verb), "HELP lacks {verb}: {help:#?}");
    }
    let text = help.text().to_lowercase();
    assert!(
        !text.contains("unftp") && !text.contains("powered"),
        "HELP names the library: {help:#?}"
    );
    // Without TLS configured, no TLS commands.
    assert!(!words.contains(&"AUTH"), "{help:#?}");
    c.assert_in_step();
}

/// A self-signed certificate and its key in `dir`; the `[ftp]` lines of an FTPS gateway.
fn tls_gateway(sim: &Sim, dir: &Path) -> (Gateway, std::path::PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("generate a certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let gw = Gateway::start(
        sim,
        &format!(
            "tls.certificate = {}\ntls.key = {}\n",
            toml_str(cert.to_str().unwrap()),
            toml_str(key.to_str().unwrap())
        ),
    );
    (gw, cert)
}

#[test]
fn pbsz_and_prot_before_auth_tls_and_a_second_auth_tls_are_503() {
    let sim = Sim::start_default();
    let dir = scratch();
    let (gw, cert) = tls_gateway(&sim, dir.path());
    store(&gw, ALICE, "/f.txt", b"read over TLS after a second AUTH");

    // Before AUTH TLS.
    let mut c = Control::connect(gw.addr);
    c.cmd("PBSZ 0").assert_code(503);
    c.cmd("PROT P").assert_code(503);
    let help = c.cmd("HELP");
    help.assert_code(214);
    for verb in ["AUTH", "PBSZ", "PROT"] {
        assert!(help.text().contains(verb), "HELP lacks {verb}: {help:#?}");
    }
    c.assert_in_step();

    // On the TLS control connection: a second AUTH TLS is 503 and the session goes on
    // (over TLS: ftplib's next commands would fail if the gateway tried a handshake).
    let r = run_ftplib_with(
        gw.addr,
        json!({"tls": {"cafile": cert}}),
        &[
            op::connect(),
            op::auth(),
            op::cmd("AUTH TLS"),
            op::login(ALICE.0, ALICE.1),
            op::prot_p(),
            op::retr("RETR /f.txt", None),
            op::cmd("AUTH TLS"),
            op::cmd("NOOP"),
            op::quit(),
        ],
    );
    r[1].reply();
    assert!(r[2].error().starts_with("503"), "{:#}", r[2].raw);
    r[3].reply();
    assert!(r[4].reply().starts_with("200"), "{:#}", r[4].raw);
    assert_eq!(r[5].data(), b"read over TLS after a second AUTH");
    assert!(r[6].error().starts_with("503"), "{:#}", r[6].raw);
    assert!(r[7].reply().starts_with("200"), "{:#}", r[7].raw);
}

#[test]
fn pbsz_and_prot_without_tls_configured_are_502() {
    let (_sim, gw) = start("");
    let mut c = Control::connect(gw.addr);
    c.cmd("AUTH TLS").assert_code(502);
    c.cmd("PBSZ 0").assert_code(502);
    c.cmd("PROT P").assert_code(502);
    c.assert_in_step();
}

// ---------------------------------------------------------------------------------------------
// Real clients keep modification times.

/// A local tree of files with distinct, whole-second modification times (and awkward names),
/// in nested directories when `nested`; returns `(relative path, mtime)` of each file.
fn tree_with_times(root: &Path, nested: bool) -> Vec<(String, SystemTime)> {
    let names = [
        "plain.txt",
        "with space.txt",
        "ünïcødé 中.dat",
        "#hash%pct&amp'q.bin",
        "-leading-dash",
        "empty",
        "a/b/c/d/e/deep.txt",
        "a/sibling.txt",
    ];
    let mut files = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if !nested && name.contains('/') {
            continue;
        }
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data = if *name == "empty" {
            Vec::new()
        } else {
            common::pattern(1000 + i * 37_000, i as u64)
        };
        std::fs::write(&path, &data).unwrap();
        let mtime = UNIX_EPOCH + Duration::from_secs(1_500_000_000 + i as u64 * 86_400 + 17);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        files.push(((*name).to_string(), mtime));
    }
    files
}

/// Runs rclone with an FTP remote `gw:` for `user` (configured through the environment).
fn rclone(gw: &Gateway, user: (&str, &str), args: &[&str]) -> std::process::Output {
    let obscured = Command::new(common::require_tool("rclone", "rclone"))
        .args(["obscure", user.1])
        .output()
        .expect("run rclone (apt-get install rclone)");
    assert!(obscured.status.success());
    let pass = String::from_utf8(obscured.stdout)
        .unwrap()
        .trim()
        .to_string();
    let config = scratch();
    let mut child = Command::new(common::require_tool("rclone", "rclone"))
        .args(args)
        .env("RCLONE_CONFIG", config.path().join("rclone.conf"))
        .env("RCLONE_CONFIG_GW_TYPE", "ftp")
        .env("RCLONE_CONFIG_GW_HOST", "127.0.0.1")
        .env("RCLONE_CONFIG_GW_PORT", gw.port().to_string())
        .env("RCLONE_CONFIG_GW_USER", user.0)
        .env("RCLONE_CONFIG_GW_PASS", pass)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rclone");
    let out = wait_with_deadline(&mut child, Duration::from_secs(300), "rclone");
    assert!(
        out.status.success(),
        "rclone {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn rclone_copy_keeps_modification_times() {
    let (sim, gw) = start("");
    let src = scratch();
    // Flat: new nested directories are another matter (LIST of a missing directory).
    let files = tree_with_times(src.path(), false);
    Control::login(gw.addr, ALICE)
        .cmd("MKD /home/alice/copy")
        .assert_code(257);
    rclone(
        &gw,
        ALICE,
        &["copy", src.path().to_str().unwrap(), "gw:/home/alice/copy"],
    );
    let out = rclone(
        &gw,
        ALICE,
        &["lsjson", "-R", "--files-only", "gw:/home/alice/copy"],
    );
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("lsjson output");
    assert_eq!(listed.len(), files.len(), "{listed:#?}");
    for (name, mtime) in &files {
        let entry = listed
            .iter()
            .find(|e| e["Path"] == name.as_str())
            .unwrap_or_else(|| panic!("lsjson lacks {name}: {listed:#?}"));
        let listed_time: DateTime<Utc> =
            entry["ModTime"].as_str().unwrap().parse().expect("ModTime");
        assert_eq!(
            SystemTime::from(listed_time),
            *mtime,
            "{name}: rclone lsjson time"
        );
        assert_eq!(
            disk_mtime(&sim, &format!("/home/alice/copy/{name}")),
            *mtime,
            "{name}: time on the cluster"
        );
    }
    // With the times kept, a second copy transfers nothing, and check finds no difference.
    let again = rclone(
        &gw,
        ALICE,
        &[
            "copy",
            "-v",
            src.path().to_str().unwrap(),
            "gw:/home/alice/copy",
        ],
    );
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(
        !log.contains(": Copied"),
        "the second copy copied again:\n{log}"
    );
    rclone(
        &gw,
        ALICE,
        &["check", src.path().to_str().unwrap(), "gw:/home/alice/copy"],
    );
}

#[test]
fn lftp_mirror_reverse_keeps_modification_times() {
    let (sim, gw) = start("");
    let src = scratch();
    let files = tree_with_times(src.path(), true);
    gw.lftp(
        ALICE.0,
        ALICE.1,
        &format!(
            "mirror -R {} /home/alice/mirror",
            shell_quote(src.path().to_str().unwrap())
        ),
    );
    for (name, mtime) in &files {
        assert_eq!(
            disk_mtime(&sim, &format!("/home/alice/mirror/{name}")),
            *mtime,
            "{name}: time on the cluster after lftp mirror -R"
        );
    }
    // Mirrored back, the local copies carry the same times.
    let back = scratch();
    gw.lftp(
        ALICE.0,
        ALICE.1,
        &format!(
            "mirror /home/alice/mirror {}",
            shell_quote(back.path().to_str().unwrap())
        ),
    );
    for (name, mtime) in &files {
        let got = std::fs::metadata(back.path().join(name))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(got, *mtime, "{name}: time after mirroring back");
    }
}

/// `text` in single quotes for lftp's command line.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[test]
fn ftplib_mfmt() {
    let (sim, gw) = start("");
    let r = gw.ftplib_as(
        BOB.0,
        BOB.1,
        &[
            op::stor("STOR /bob file.txt", b"bob", None),
            op::cmd("MFMT 20111213141516 /bob file.txt"),
            op::cmd("MDTM /bob file.txt"),
            op::cmd("MFMT 20111313141516 /bob file.txt"),
        ],
    );
    r[0].reply();
    assert_eq!(r[1].reply(), "213 Modify=20111213141516; /bob file.txt");
    assert_eq!(r[2].reply(), "213 20111213141516");
    assert!(r[3].error().starts_with("501"), "{:#}", r[3].raw);
    assert_eq!(disk_mtime(&sim, "/bob file.txt"), utc("20111213141516"));
}

/// CWD needs the right to list the directory, as the cluster decides it: alice may not change
/// into bob's 0700 directory (550), bob may; a 0755 directory is open to both; a file is not
/// a directory. Through raw commands and ftplib.
#[test]
fn cwd_into_a_directory_the_user_may_not_list_is_550() {
    let (_sim, gw) = start("");
    let mut bob = Control::login(gw.addr, BOB);
    bob.cmd("MKD /bobs").assert_code(257);
    bob.cmd("MKD /bobs/inner").assert_code(257);
    bob.cmd("SITE CHMOD 700 /bobs").assert_code(200);
    bob.cmd("MKD /open").assert_code(257);
    bob.cmd("SITE CHMOD 755 /open").assert_code(200);
    drop(bob);
    store(&gw, BOB, "/open/f.txt", b"bob's");

    let mut c = Control::login(gw.addr, ALICE);
    let r = c.cmd("CWD /bobs");
    r.assert_says(550, "permission denied");
    c.cmd("PWD").assert_says(257, "\"/\"");
    c.cmd("CWD /bobs/inner").assert_code(550);
    c.cmd("CWD /open").assert_code(250);
    c.cmd("PWD").assert_says(257, "\"/open\"");
    c.cmd("CWD f.txt").assert_says(550, "not a directory");
    c.cmd("CWD /missing").assert_code(550);
    c.assert_in_step();

    let mut b = Control::login(gw.addr, BOB);
    b.cmd("CWD /bobs").assert_code(250);
    b.cmd("CWD inner").assert_code(250);
    b.cmd("PWD").assert_says(257, "\"/bobs/inner\"");

    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[op::cmd("CWD /bobs"), op::cmd("CWD /open"), op::pwd()],
    );
    assert!(r[0].error().starts_with("550"), "{:#}", r[0].raw);
    assert!(r[1].reply().starts_with("250"), "{:#}", r[1].raw);
    assert_eq!(r[2].value(), "/open");
}

/// Under chroot, no reply (failures, PWD, 257, MLST, STAT) nor listing names the real path of
/// the home: the user's `/` is all it sees.
#[test]
fn replies_under_chroot_never_name_the_real_home() {
    let (sim, gw) = start("chroot-users = true");
    let mut c = Control::login(gw.addr, ALICE);
    let mkd = c.cmd("MKD /sub");
    mkd.assert_code(257);
    let mut texts = vec![mkd.text()];
    store(&gw, ALICE, "/sub/f.txt", b"in sub");
    std::fs::write(sim.disk_path("/home/alice/locked.txt"), b"no").unwrap();
    std::fs::set_permissions(
        sim.disk_path("/home/alice/locked.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let mut say = |c: &mut Control, line: &str| {
        let r = c.cmd(line);
        texts.push(format!("{line} -> {}", r.text()));
        r
    };
    for (line, code) in [
        ("PWD", 257),
        ("MKD /sub", 550),
        ("MKD /d2", 257),
        ("RMD /sub", 550),
        ("DELE /sub", 550),
        ("RMD /sub/f.txt", 550),
        ("CWD /nope", 550),
        ("CWD /sub/f.txt", 550),
        ("SIZE /sub", 550),
        ("SIZE /missing", 550),
        ("MDTM /missing", 550),
        ("MLST /missing", 550),
        ("MLST /sub", 250),
        ("STAT /sub", 213),
        ("SITE CHMOD 644 /missing", 550),
        ("SITE UTIME 20200101000000 /missing", 550),
        ("MFMT 20200101000000 /missing", 550),
        ("RNFR /missing", 550),
        ("CWD /sub", 250),
        ("PWD", 257),
        ("CWD ../../..", 250),
        ("PWD", 257),
    ] {
        say(&mut c, line).assert_code(code);
    }
    say(&mut c, "RNFR /sub/f.txt").assert_code(350);
    say(&mut c, "RNTO /nodir/x").assert_code(550);
    for line in [
        "RETR /missing.txt",
        "RETR /locked.txt",
        "RETR /sub",
        "LIST /missing",
        "MLSD /sub/f.txt",
        "STOR /sub",
        "APPE /missing/x",
    ] {
        let addr = c.pasv();
        let _data = common::control::connect_data(addr);
        let r = c.cmd(line);
        assert!((500..600).contains(&r.code), "{line}: {r:#?}");
        texts.push(format!("{line} -> {}", r.text()));
    }
    for line in ["LIST /", "MLSD /sub", "NLST -R /", "LIST -la /sub"] {
        texts.extend(c.listing(line));
    }
    c.assert_in_step();
    for text in &texts {
        assert!(
            !text.contains("/home"),
            "the home's real path shows: {text}"
        );
    }
}

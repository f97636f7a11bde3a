//! The FTP gateway (`qftpd serve`) driven by real FTP clients against `qftpd sim`: Python's
//! ftplib (through `tests/clients/ftp_ops.py`), curl and lftp.
//!
//! Each test starts its own simulator and gateway on port 0 and checks what the clients report
//! (reply codes and texts, bytes transferred) and what lands in the simulator's data directory.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use common::{
    BigPattern, Gateway, OpResult, PatternVerifier, curl, curl_ok, op, pattern, read, scratch,
    toml_str, url_encode, wait_with_deadline,
};
use common::{Sim, assert_code, start, walk_tree};

const ADMIN: (&str, &str) = ("admin", "adminpw");
const ALICE: (&str, &str) = ("alice", "alicepw");
const BOB: (&str, &str) = ("bob", "bobpw");

/// Asserts the operation failed with a reply starting with `code`; returns the reply text.
fn assert_fails(r: &OpResult, code: &str) -> String {
    let err = r.error().to_owned();
    assert!(
        err.starts_with(code),
        "ftplib {}: expected a {code} failure, got {:#}",
        r.op,
        r.raw
    );
    err
}

/// `YYYYMMDDHHMMSS` in UTC of a file's modification time on disk.
fn disk_mtime_utc(path: &Path) -> String {
    let mtime = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .modified()
        .unwrap();
    DateTime::<Utc>::from(mtime)
        .format("%Y%m%d%H%M%S")
        .to_string()
}

fn set_disk_mtime(path: &Path, secs: i64) {
    let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// The line of a LIST output whose name is `name`.
fn list_line<'a>(lines: &'a [String], name: &str) -> &'a str {
    let suffix = format!(" {name}");
    let found: Vec<&String> = lines.iter().filter(|l| l.ends_with(&suffix)).collect();
    assert_eq!(found.len(), 1, "one LIST line for {name:?} in {lines:#?}");
    found[0]
}

/// Every file and directory under `root`, relative, with the contents of files.
fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    walk_tree(root)
        .into_iter()
        .map(|(rel, (path, is_dir))| (rel, (!is_dir).then(|| read(&path))))
        .collect()
}

/// The test files of the round trips: empty, small with every byte value and CRLFs, 10 MiB.
fn round_trip_files() -> Vec<(&'static str, Vec<u8>)> {
    let mut small: Vec<u8> = b"line one\r\nline two\nline three\r".to_vec();
    small.extend(0..=255u8);
    vec![
        ("empty.bin", Vec::new()),
        ("small.bin", small),
        ("ten-mib.bin", pattern(10 << 20, 7)),
    ]
}

// 1. Login.

#[test]
fn ftp_login_welcome_texts_wrong_password_and_no_password_in_log() {
    const ADMIN_PW: &str = "Adm1n-Pw-7f3a9c";
    const ALICE_PW: &str = "Al1ce-Pw-5e2d8b";
    const WRONG_PW: &str = "Wr0ng-Guess-91c4";
    let sim = Sim::start(
        &[("admin", ADMIN_PW), ("alice", ALICE_PW)],
        Some("admin"),
        &[],
    );
    let mut gw = Gateway::start(&sim, "");

    let r = gw.ftplib(&[op::connect(), op::login("admin", ADMIN_PW), op::quit()]);
    assert_eq!(r[0].value(), "220 qftpd ready");
    assert_eq!(
        r[1].reply(),
        "230 Welcome to qftpd on qftpd-sim (Qumulo Core 7.10.2)"
    );

    let r = gw.ftplib(&[
        op::connect(),
        op::login("alice", WRONG_PW),
        op::login("alice", ALICE_PW),
        op::pwd(),
        op::quit(),
    ]);
    assert_fails(&r[1], "530");
    // The administrator's login taught the gateway the cluster's name.
    assert_eq!(
        r[2].reply(),
        "230 Welcome to qftpd on qftpd-sim (Qumulo Core 7.10.2)"
    );
    assert_eq!(r[3].value(), "/");

    let r = gw.ftplib(&[op::connect(), op::login("nobody", WRONG_PW)]);
    assert_fails(&r[1], "530");

    let log = gw.stop();
    assert!(
        log.contains("alice"),
        "the gateway log should mention the logins:\n{log}"
    );
    for pw in [ADMIN_PW, ALICE_PW, WRONG_PW] {
        assert!(
            !log.contains(pw),
            "the gateway log contains the password {pw:?}:\n{log}"
        );
    }
}

// 2. Round trips.

#[test]
fn ftplib_round_trips() {
    let (sim, gw) = start("");
    let dir = scratch();
    let files = round_trip_files();
    let mut ops = vec![op::cmd("MKD /ftplib")];
    for (name, data) in &files {
        let src = dir.path().join(name);
        std::fs::write(&src, data).unwrap();
        ops.push(op::stor_file(&format!("STOR /ftplib/{name}"), &src, None));
    }
    for (name, _) in &files {
        ops.push(op::retr_file(
            &format!("RETR /ftplib/{name}"),
            &dir.path().join(format!("{name}.back")),
        ));
    }
    ops.push(op::cmd("TYPE I"));
    for (name, _) in &files {
        ops.push(op::cmd(&format!("SIZE /ftplib/{name}")));
    }
    let r = gw.ftplib_as(ADMIN.0, ADMIN.1, &ops);
    assert_code(&r[0], "257");
    for (i, (name, data)) in files.iter().enumerate() {
        assert_code(&r[1 + i], "226");
        assert_code(&r[1 + files.len() + i], "226");
        assert_eq!(
            &read(sim.disk_path(&format!("/ftplib/{name}"))),
            data,
            "{name} on the cluster"
        );
        assert_eq!(
            &read(dir.path().join(format!("{name}.back"))),
            data,
            "{name} read back"
        );
        assert_eq!(
            r[2 + 2 * files.len() + i].reply(),
            format!("213 {}", data.len())
        );
    }
}

#[test]
fn curl_round_trips() {
    let (sim, gw) = start("");
    let dir = scratch();
    let base = gw.ftp_url(ALICE.0, ALICE.1);
    for (name, data) in round_trip_files() {
        let src = dir.path().join(name);
        std::fs::write(&src, &data).unwrap();
        let url = format!("{base}/curl/{name}");
        curl_ok(&["--ftp-create-dirs", "-T", src.to_str().unwrap(), &url]);
        assert_eq!(
            read(sim.disk_path(&format!("/curl/{name}"))),
            data,
            "{name} on the cluster"
        );
        let back = dir.path().join(format!("{name}.back"));
        curl_ok(&["-o", back.to_str().unwrap(), &url]);
        assert_eq!(read(&back), data, "{name} downloaded to a file");
        assert_eq!(curl_ok(&[&url]), data, "{name} downloaded to stdout");
    }
}

#[test]
fn lftp_put_get_and_mirror_round_trips() {
    let (sim, gw) = start("");
    let dir = scratch();
    let up = dir.path().join("up");
    let down = dir.path().join("down");
    std::fs::create_dir_all(&up).unwrap();
    std::fs::create_dir_all(&down).unwrap();
    let files = round_trip_files();
    let mut cmds = vec!["mkdir /lftp".to_string()];
    for (name, data) in &files {
        std::fs::write(up.join(name), data).unwrap();
        cmds.push(format!("put {} -o /lftp/{name}", up.join(name).display()));
    }
    for (name, _) in &files {
        cmds.push(format!("get /lftp/{name} -o {}", down.join(name).display()));
    }
    gw.lftp(BOB.0, BOB.1, &cmds.join("; "));
    for (name, data) in &files {
        assert_eq!(
            &read(sim.disk_path(&format!("/lftp/{name}"))),
            data,
            "{name} put"
        );
        assert_eq!(&read(down.join(name)), data, "{name} got back");
    }

    // A tree: mirror -R up, mirror down, both copies equal to the source.
    let src = dir.path().join("tree");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(src.join("emptydir")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("sub/b.bin"), pattern(300_000, 3)).unwrap();
    std::fs::write(src.join("sub/deeper/c.txt"), b"gamma").unwrap();
    std::fs::write(src.join("sub/deeper/big.bin"), pattern(10 << 20, 11)).unwrap();
    let copy = dir.path().join("copy");
    gw.lftp(
        BOB.0,
        BOB.1,
        &format!(
            "mirror -R {} /mirrored; mirror /mirrored {}",
            src.display(),
            copy.display()
        ),
    );
    let want = tree(&src);
    assert_eq!(want.len(), 8, "{:?}", want.keys());
    assert_eq!(tree(&sim.disk_path("/mirrored")), want, "mirror -R");
    assert_eq!(tree(&copy), want, "mirror back");
}

// 3. More than 1 GiB through curl, with the gateway's memory bounded.

#[test]
fn ftp_one_gib_round_trip_keeps_gateway_rss_low() {
    const TOTAL: u64 = (1 << 30) + 123;
    let (sim, gw) = start("");
    let dir = scratch();
    let src = dir.path().join("big.src");
    BigPattern::write_file(&src, TOTAL);
    let url = format!("{}/big.bin", gw.ftp_url(ADMIN.0, ADMIN.1));

    let started = Instant::now();
    let out = curl(&["-T", src.to_str().unwrap(), &url], 900);
    let up = started.elapsed();
    assert!(
        out.status.success(),
        "curl -T failed ({}); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&src).unwrap();
    let on_disk = sim.disk_path("/big.bin");
    assert_eq!(std::fs::metadata(&on_disk).unwrap().len(), TOTAL);
    let mut verifier = PatternVerifier::new(TOTAL);
    verifier.feed_reader(&mut std::fs::File::open(&on_disk).unwrap());
    verifier.assert_complete("uploaded file on the cluster");

    let started = Instant::now();
    let mut child = std::process::Command::new(common::require_tool("curl", "curl"))
        .args(["-sS", "--max-time", "900", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut verifier = PatternVerifier::new(TOTAL);
    verifier.feed_reader(&mut stdout);
    let out = wait_with_deadline(&mut child, Duration::from_secs(60), "curl download");
    let down = started.elapsed();
    assert!(
        out.status.success(),
        "curl download failed ({}); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    verifier.assert_complete("downloaded stream");

    let peak_kib = gw.peak_rss_kib();
    let mib = |d: Duration| TOTAL as f64 / (1024.0 * 1024.0) / d.as_secs_f64();
    println!(
        "1 GiB + 123 B via curl through the gateway: upload {:.1} MiB/s ({:.1} s), download \
         {:.1} MiB/s ({:.1} s), gateway peak RSS {:.1} MiB, simulator peak RSS {:.1} MiB",
        mib(up),
        up.as_secs_f64(),
        mib(down),
        down.as_secs_f64(),
        peak_kib as f64 / 1024.0,
        sim.peak_rss_kib() as f64 / 1024.0
    );
    assert!(
        peak_kib < 64 * 1024,
        "gateway peak RSS {peak_kib} KiB is not under 64 MiB"
    );
}

// 4. Resume, append, overwrite.

#[test]
fn ftp_resume_append_and_overwrite() {
    let (sim, gw) = start("");
    let dir = scratch();
    let content = pattern(300_000, 5);
    let full = dir.path().join("full.bin");
    std::fs::write(&full, &content).unwrap();
    let base = gw.ftp_url(ALICE.0, ALICE.1);

    // Download resume: ftplib REST + RETR, then curl -C - on a partial local file.
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /r.bin", &content, None),
            op::retr("RETR /r.bin", Some(100_000)),
        ],
    );
    assert_code(&r[0], "226");
    assert_eq!(r[1].data(), &content[100_000..], "RETR after REST 100000");
    let partial = dir.path().join("partial.bin");
    std::fs::write(&partial, &content[..123_457]).unwrap();
    curl_ok(&[
        "-C",
        "-",
        "-o",
        partial.to_str().unwrap(),
        &format!("{base}/r.bin"),
    ]);
    assert_eq!(read(&partial), content, "curl -C - download");

    // Upload resume: ftplib REST + STOR of the rest, then curl -C - -T.
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /u.bin", &content[..100_000], None),
            op::stor("STOR /u.bin", &content[100_000..], Some(100_000)),
            op::stor("STOR /c.bin", &content[..77_777], None),
        ],
    );
    for x in &r {
        assert_code(x, "226");
    }
    assert_eq!(read(sim.disk_path("/u.bin")), content, "REST 100000 + STOR");
    curl_ok(&[
        "-C",
        "-",
        "-T",
        full.to_str().unwrap(),
        &format!("{base}/c.bin"),
    ]);
    assert_eq!(read(sim.disk_path("/c.bin")), content, "curl -C - -T");

    // Append: ftplib APPE (to an existing and to a missing file), then curl --append.
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /ap.txt", b"hello ", None),
            op::stor("APPE /ap.txt", b"world", None),
            op::stor("APPE /new.txt", b"created by APPE", None),
        ],
    );
    for x in &r {
        assert_code(x, "226");
    }
    assert_eq!(read(sim.disk_path("/ap.txt")), b"hello world");
    assert_eq!(read(sim.disk_path("/new.txt")), b"created by APPE");
    let tail = dir.path().join("tail.txt");
    std::fs::write(&tail, b"!\n").unwrap();
    curl_ok(&[
        "--append",
        "-T",
        tail.to_str().unwrap(),
        &format!("{base}/ap.txt"),
    ]);
    assert_eq!(read(sim.disk_path("/ap.txt")), b"hello world!\n");

    // Overwrite with shorter content: exactly the new content remains.
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /ow.txt", &pattern(10_000, 1), None),
            op::stor("STOR /ow.txt", b"short", None),
            op::retr("RETR /ow.txt", None),
        ],
    );
    assert_code(&r[1], "226");
    assert_eq!(read(sim.disk_path("/ow.txt")), b"short");
    assert_eq!(r[2].data(), b"short");
    std::fs::write(&tail, b"tiny").unwrap();
    curl_ok(&["-T", tail.to_str().unwrap(), &format!("{base}/r.bin")]);
    assert_eq!(read(sim.disk_path("/r.bin")), b"tiny", "curl -T overwrite");
}

// 5. Names and directories.

#[test]
fn ftp_rename_mkdir_rmdir_delete_size_mdtm() {
    let (sim, gw) = start("");
    let r = gw.ftplib_as(
        ADMIN.0,
        ADMIN.1,
        &[
            op::cmd("MKD /a"),                                  // 0
            op::cmd("MKD /b"),                                  // 1
            op::stor("STOR /a/f.txt", b"one", None),            // 2
            op::cmd("RNFR /a/f.txt"),                           // 3
            op::cmd("RNTO /a/g.txt"),                           // 4
            op::cmd("RNFR /a/g.txt"),                           // 5
            op::cmd("RNTO /b/h.txt"),                           // 6
            op::cmd("MKD /a/sub"),                              // 7
            op::stor("STOR /a/sub/in.txt", b"inner", None),     // 8
            op::cmd("RNFR /a/sub"),                             // 9
            op::cmd("RNTO /b/moved"),                           // 10
            op::cmd("RMD /b/moved"),                            // 11
            op::stor("STOR /b/x.txt", b"to be replaced", None), // 12
            op::cmd("RNFR /b/h.txt"),                           // 13
            op::cmd("RNTO /b/x.txt"),                           // 14
            op::cmd("DELE /nope.txt"),                          // 15
            op::cmd("DELE /b/moved"),                           // 16
            op::cmd("SIZE /b/x.txt"),                           // 17
            op::cmd("MDTM /b/x.txt"),                           // 18
            op::cmd("SIZE /nope.txt"),                          // 19
        ],
    );
    assert_eq!(r[0].reply(), "257 \"/a\" created");
    assert_code(&r[1], "257");
    assert!(sim.disk_path("/a").is_dir() && sim.disk_path("/b").is_dir());
    assert_code(&r[2], "226");
    assert_code(&r[3], "350");
    assert_code(&r[4], "250");
    assert_code(&r[5], "350");
    assert_code(&r[6], "250");
    assert!(!sim.disk_path("/a/f.txt").exists());
    assert!(!sim.disk_path("/a/g.txt").exists());
    assert_code(&r[7], "257");
    assert_code(&r[8], "226");
    assert_code(&r[9], "350");
    assert_code(&r[10], "250");
    assert!(!sim.disk_path("/a/sub").exists());
    assert_eq!(read(sim.disk_path("/b/moved/in.txt")), b"inner");
    assert_fails(&r[11], "550");
    assert!(sim.disk_path("/b/moved/in.txt").exists());
    assert_code(&r[12], "226");
    assert_code(&r[13], "350");
    assert_code(&r[14], "250");
    assert!(!sim.disk_path("/b/h.txt").exists());
    assert_eq!(read(sim.disk_path("/b/x.txt")), b"one", "RNTO replaces");
    // Each rename and delete is one log event naming the user, the client and the paths.
    let log = gw.stderr_log();
    assert!(
        log.lines().any(|l| l.contains(" rename ")
            && l.contains("user=admin")
            && l.contains("client=127.0.0.1")
            && l.contains("from=/a/f.txt")
            && l.contains("to=/a/g.txt")),
        "{log}"
    );
    assert_fails(&r[15], "550");
    assert_fails(&r[16], "550");
    assert!(sim.disk_path("/b/moved").is_dir());
    assert_eq!(r[17].reply(), "213 3");
    assert_eq!(
        r[18].reply(),
        format!("213 {}", disk_mtime_utc(&sim.disk_path("/b/x.txt")))
    );
    assert_fails(&r[19], "550");

    let r = gw.ftplib_as(
        ADMIN.0,
        ADMIN.1,
        &[
            op::cmd("DELE /b/moved/in.txt"),
            op::cmd("RMD /b/moved"),
            op::cmd("RMD /b/moved"),
            op::cmd("DELE /b/x.txt"),
            op::nlst("/b"),
            op::nlst("/a"),
        ],
    );
    assert_code(&r[0], "250");
    assert_code(&r[1], "250");
    assert_fails(&r[2], "550");
    assert_code(&r[3], "250");
    assert!(!sim.disk_path("/b/moved").exists());
    assert!(!sim.disk_path("/b/x.txt").exists());
    assert_eq!(r[4].strings(), Vec::<String>::new());
    assert_eq!(r[5].strings(), Vec::<String>::new());
    let log = gw.stderr_log();
    for (event, path) in [(" delete ", "path=/b/x.txt"), (" rmdir ", "path=/b/moved")] {
        assert!(
            log.lines()
                .any(|l| l.contains(event) && l.contains("user=admin") && l.contains(path)),
            "no {event:?} event for {path}:\n{log}"
        );
    }
}

// 6. SITE CHMOD.

#[test]
fn ftp_site_chmod_sets_the_mode_on_the_cluster() {
    let (sim, gw) = start("");
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /m.txt", b"mode", None),
            op::cmd("SITE CHMOD 600 /m.txt"),
            op::cmd("SITE CHMOD 600 /missing.txt"),
            op::cmd("MKD /d"),
            op::cmd("CWD /d"),
            op::stor("STOR rel.txt", b"relative", None),
            op::cmd("SITE CHMOD 640 rel.txt"),
        ],
    );
    assert_code(&r[0], "226");
    assert_code(&r[1], "200");
    let attr = sim
        .qq_as(ALICE.0, ALICE.1)
        .ok_json(&["fs_file_get_attr", "--path", "/m.txt"]);
    assert_eq!(attr["mode"], "0600", "{attr:#}");
    let err = assert_fails(&r[2], "550");
    assert!(err.contains("missing.txt"), "{err}");
    assert_code(&r[6], "200");
    let attr = sim
        .qq_as(ADMIN.0, ADMIN.1)
        .ok_json(&["fs_file_get_attr", "--path", "/d/rel.txt"]);
    assert_eq!(attr["mode"], "0640", "{attr:#}");
}

// 7. A large directory.

#[test]
fn ftp_lists_a_5000_entry_directory_completely() {
    const N: usize = 5000;
    let (sim, gw) = start("");
    let dir = sim.disk_path("/many");
    std::fs::create_dir(&dir).unwrap();
    let names: Vec<String> = (0..N).map(|i| format!("entry-{i:05}.dat")).collect();
    for (i, name) in names.iter().enumerate() {
        std::fs::write(dir.join(name), vec![b'x'; i % 7]).unwrap();
    }
    let want: BTreeSet<String> = names.iter().cloned().collect();

    let r = gw.ftplib_as(
        ADMIN.0,
        ADMIN.1,
        &[
            op::lines("LIST /many"),
            op::nlst("/many"),
            op::mlsd("/many"),
        ],
    );

    let list = r[0].strings();
    assert_eq!(list.len(), N, "LIST lines");
    let listed: Vec<String> = list
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed.iter().cloned().collect::<BTreeSet<_>>(),
        want,
        "LIST names"
    );

    let nlst = r[1].strings();
    assert_eq!(nlst.len(), N, "NLST names");
    let nlst_names: BTreeSet<String> = nlst
        .iter()
        .map(|n| n.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(nlst_names, want, "NLST names");

    let mlsd = r[2].value().as_array().unwrap();
    let mut seen = BTreeSet::new();
    let mut uniques = BTreeSet::new();
    for entry in mlsd {
        let name = entry[0].as_str().unwrap().to_owned();
        let facts = &entry[1];
        if matches!(facts["type"].as_str(), Some("cdir" | "pdir")) {
            continue;
        }
        assert_eq!(facts["type"], "file", "{entry}");
        let i: usize = name["entry-".len().."entry-".len() + 5].parse().unwrap();
        assert_eq!(facts["size"], (i % 7).to_string(), "{entry}");
        let modify = facts["modify"].as_str().expect("modify fact");
        assert!(
            modify.len() >= 14 && modify[..14].bytes().all(|b| b.is_ascii_digit()),
            "{entry}"
        );
        assert!(facts["perm"].as_str().is_some(), "perm fact: {entry}");
        let unique = facts["unique"].as_str().expect("unique fact");
        assert!(
            uniques.insert(unique.to_owned()),
            "duplicate unique: {entry}"
        );
        assert!(seen.insert(name), "listed twice: {entry}");
    }
    assert_eq!(seen.len(), N, "MLSD entries");
    assert_eq!(seen, want, "MLSD names");
}

// 8. LIST names and time zone.

#[test]
fn ftp_list_shows_names_and_local_times_mdtm_stays_utc() {
    let (sim, gw) = start("timezone = \"America/New_York\"");
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /recent.txt", b"recent", None),
            op::stor("STOR /old.txt", b"older file", None),
            op::cmd("SITE CHMOD 644 /recent.txt"),
            op::cmd("SITE CHMOD 644 /old.txt"),
        ],
    );
    for x in &r {
        assert!(x.ok, "{:#}", x.raw);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // About 40 days ago, on a whole minute plus 17 s; and a fixed instant years ago.
    let recent = (now - 40 * 86_400) / 60 * 60 + 17;
    let old = DateTime::parse_from_rfc3339("2023-07-04T16:05:09Z")
        .unwrap()
        .timestamp();
    set_disk_mtime(&sim.disk_path("/recent.txt"), recent);
    set_disk_mtime(&sim.disk_path("/old.txt"), old);

    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::lines("LIST /"),
            op::cmd("MDTM /recent.txt"),
            op::cmd("MDTM /old.txt"),
            op::lines("LIST /recent.txt"),
        ],
    );
    let lines = r[0].strings();
    let ny = chrono_tz::America::New_York;
    let recent_utc = DateTime::<Utc>::from_timestamp(recent, 0).unwrap();
    let recent_ny = recent_utc
        .with_timezone(&ny)
        .format("%b %e %H:%M")
        .to_string();
    assert_ne!(recent_ny, recent_utc.format("%b %e %H:%M").to_string());
    let line = list_line(&lines, "recent.txt");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[0], "-rw-r--r--", "{line}");
    assert_eq!(
        (fields[2], fields[3], fields[4]),
        ("alice", "Users", "6"),
        "{line}"
    );
    assert!(line.contains("alice    Users"), "{line}");
    assert!(
        line.ends_with(&format!(" {recent_ny} recent.txt")),
        "LIST should show {recent_ny:?} (New York time of {recent_utc}): {line}"
    );
    assert_eq!(r[3].strings(), vec![line.to_owned()], "LIST of the file");

    let line = list_line(&lines, "old.txt");
    assert!(line.contains("alice    Users"), "{line}");
    assert!(line.ends_with(" Jul  4  2023 old.txt"), "{line}");

    assert_eq!(
        r[1].reply(),
        format!("213 {}", recent_utc.format("%Y%m%d%H%M%S"))
    );
    assert_eq!(r[2].reply(), "213 20230704160509");
}

// 9. Permissions between users.

#[test]
fn ftp_permission_denied_between_users() {
    let (sim, gw) = start("");
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::cmd("MKD /alice"),
            op::cmd("SITE CHMOD 755 /alice"),
            op::stor("STOR /alice/secret.txt", b"alice's secret", None),
            op::cmd("SITE CHMOD 600 /alice/secret.txt"),
            op::stor("STOR /alice/public.txt", b"public", None),
            op::cmd("SITE CHMOD 644 /alice/public.txt"),
        ],
    );
    for x in &r {
        assert!(x.ok, "{:#}", x.raw);
    }
    let r = gw.ftplib_as(
        BOB.0,
        BOB.1,
        &[
            op::retr("RETR /alice/secret.txt", None),
            op::stor("STOR /alice/bob.txt", b"bob was here", None),
            op::retr("RETR /alice/public.txt", None),
            op::cmd("DELE /alice/public.txt"),
        ],
    );
    let err = assert_fails(&r[0], "550");
    assert!(
        err.contains("/alice/secret.txt: permission denied"),
        "RETR: {err}"
    );
    let err = assert_fails(&r[1], "550");
    assert!(
        err.contains("/alice/bob.txt: permission denied"),
        "STOR: {err}"
    );
    assert!(!sim.disk_path("/alice/bob.txt").exists());
    assert_eq!(r[2].data(), b"public");
    let err = assert_fails(&r[3], "550");
    assert!(
        err.contains("/alice/public.txt: permission denied"),
        "DELE: {err}"
    );
    assert_eq!(read(sim.disk_path("/alice/public.txt")), b"public");
    assert_eq!(read(sim.disk_path("/alice/secret.txt")), b"alice's secret");
}

// 10. Hostile names and `..`.

#[test]
fn ftp_hostile_names_round_trip() {
    let (sim, gw) = start("");
    let dir = "dir %#?& é 中";
    let name = "a b%c#d?e&f é 中.txt";
    let renamed = "ré named 中 %20 #?&.bin";
    let data = pattern(5000, 9);
    let r = gw.ftplib_as(
        ADMIN.0,
        ADMIN.1,
        &[
            op::cmd(&format!("MKD /{dir}")),
            op::stor(&format!("STOR /{dir}/{name}"), &data, None),
            op::nlst(&format!("/{dir}")),
            op::lines(&format!("LIST /{dir}")),
            op::retr(&format!("RETR /{dir}/{name}"), None),
        ],
    );
    assert_code(&r[0], "257");
    assert_code(&r[1], "226");
    assert_eq!(read(sim.disk_path(&format!("/{dir}/{name}"))), data);
    let nlst: Vec<String> = r[2]
        .strings()
        .iter()
        .map(|n| n.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(nlst, [name]);
    let list = r[3].strings();
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].ends_with(&format!(" {name}")), "{list:?}");
    assert_eq!(r[4].data(), data);

    let r = gw.ftplib_as(
        ADMIN.0,
        ADMIN.1,
        &[
            op::cmd(&format!("CWD /{dir}")),
            op::pwd(),
            op::retr(&format!("RETR {name}"), None),
            op::cmd(&format!("RNFR {name}")),
            op::cmd(&format!("RNTO {renamed}")),
            op::mlsd(""),
        ],
    );
    assert_code(&r[0], "250");
    assert_eq!(r[1].value(), format!("/{dir}").as_str());
    assert_eq!(r[2].data(), data);
    assert_code(&r[3], "350");
    assert_code(&r[4], "250");
    assert!(!sim.disk_path(&format!("/{dir}/{name}")).exists());
    assert_eq!(read(sim.disk_path(&format!("/{dir}/{renamed}"))), data);
    let mlsd: Vec<&str> = r[5]
        .value()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !matches!(e[1]["type"].as_str(), Some("cdir" | "pdir")))
        .map(|e| e[0].as_str().unwrap())
        .collect();
    assert_eq!(mlsd, [renamed]);

    // curl: the same names percent-encoded in the URL.
    let scratch = scratch();
    let src = scratch.path().join("src");
    let curl_data = pattern(7000, 10);
    std::fs::write(&src, &curl_data).unwrap();
    let curl_name = "curl #1 %41 ?&= é 中.bin";
    let url = format!(
        "{}/{}/{}",
        gw.ftp_url(ADMIN.0, ADMIN.1),
        url_encode(dir),
        url_encode(curl_name)
    );
    curl_ok(&["-T", src.to_str().unwrap(), &url]);
    assert_eq!(
        read(sim.disk_path(&format!("/{dir}/{curl_name}"))),
        curl_data
    );
    assert_eq!(curl_ok(&[&url]), curl_data);
    let listing = curl_ok(&[
        "--list-only",
        &format!("{}/{}/", gw.ftp_url(ADMIN.0, ADMIN.1), url_encode(dir)),
    ]);
    let listed: BTreeSet<String> = String::from_utf8(listing)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let want: BTreeSet<String> = [renamed, curl_name].iter().map(|s| s.to_string()).collect();
    assert_eq!(listed, want, "curl --list-only");

    let r = gw.ftplib_as(
        ADMIN.0,
        ADMIN.1,
        &[
            op::cmd(&format!("DELE /{dir}/{renamed}")),
            op::cmd(&format!("DELE /{dir}/{curl_name}")),
            op::cmd(&format!("RMD /{dir}")),
        ],
    );
    for x in &r {
        assert_code(x, "250");
    }
    assert!(!sim.disk_path(&format!("/{dir}")).exists());
}

#[test]
fn ftp_dotdot_never_leaves_the_root() {
    let (sim, gw) = start("");
    std::fs::write(sim.disk_path("/top.txt"), b"at the root").unwrap();
    let r = gw.ftplib_as(
        ADMIN.0,
        ADMIN.1,
        &[
            op::cmd("MKD /a"),
            op::cmd("MKD /a/b"),
            op::cmd("CWD /a/b"),
            op::cmd("CWD ../../.."),
            op::pwd(),
            op::cmd("CWD /a/b/../../../../a"),
            op::pwd(),
            op::retr("RETR ../../../top.txt", None),
            op::retr("RETR ../../etc/passwd", None),
            op::cmd("CDUP"),
            op::cmd("CDUP"),
            op::pwd(),
        ],
    );
    assert_code(&r[3], "250");
    assert_eq!(r[4].value(), "/");
    assert_code(&r[5], "250");
    assert_eq!(r[6].value(), "/a");
    assert_eq!(r[7].data(), b"at the root");
    assert_fails(&r[8], "550");
    assert_eq!(r[11].value(), "/");
}

#[test]
fn ftp_chroot_users_confines_to_home() {
    let sim = Sim::start(
        &[ADMIN, ALICE, BOB],
        Some("admin"),
        &["--home", "alice:/home/alice"],
    );
    let gw = Gateway::start(&sim, "chroot-users = true");
    std::fs::create_dir_all(sim.disk_path("/etc")).unwrap();
    std::fs::write(sim.disk_path("/etc/x"), b"outside").unwrap();
    std::fs::write(sim.disk_path("/home/secret"), b"outside too").unwrap();
    std::fs::write(sim.disk_path("/top.txt"), b"cluster root").unwrap();

    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::pwd(),                               // 0
            op::stor("STOR /x", b"in home", None),   // 1
            op::retr("RETR ../../etc/x", None),      // 2
            op::retr("RETR /../secret", None),       // 3
            op::retr("RETR ../../../top.txt", None), // 4
            op::cmd("CWD .."),                       // 5
            op::pwd(),                               // 6
            op::cmd("CWD ../../.."),                 // 7
            op::pwd(),                               // 8
            op::nlst("/"),                           // 9
            op::retr("RETR x", None),                // 10
            op::cmd("CWD /home"),                    // 11
            op::cmd("SITE CHMOD 777 ../../etc/x"),   // 12
            op::cmd("RNFR /x"),                      // 13
            op::cmd("RNTO ../../etc/stolen"),        // 14
        ],
    );
    assert_eq!(r[0].value(), "/");
    assert_code(&r[1], "226");
    assert_eq!(read(sim.disk_path("/home/alice/x")), b"in home");
    assert!(!sim.disk_path("/x").exists());
    assert_fails(&r[2], "550");
    assert_fails(&r[3], "550");
    assert_fails(&r[4], "550");
    assert_eq!(r[6].value(), "/");
    assert_eq!(r[8].value(), "/");
    let names: Vec<String> = r[9]
        .strings()
        .iter()
        .map(|n| n.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["x"], "alice's / is her home");
    assert_eq!(r[10].data(), b"in home");
    assert_fails(&r[11], "550");
    assert_fails(&r[12], "550");
    // The rename stays inside the home: /home/alice/etc does not exist, so it fails.
    assert_code(&r[13], "350");
    assert_fails(&r[14], "550");
    assert_eq!(read(sim.disk_path("/home/alice/x")), b"in home");
    assert!(!sim.disk_path("/etc/stolen").exists());
    assert_eq!(read(sim.disk_path("/etc/x")), b"outside");
    let mode = std::fs::metadata(sim.disk_path("/etc/x"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o777, 0o777, "SITE CHMOD reached /etc/x");

    // A user without a home directory cannot log in while chroot-users is on.
    let r = gw.ftplib(&[op::connect(), op::login(BOB.0, BOB.1)]);
    let err = assert_fails(&r[1], "530");
    assert!(err.contains("home directory"), "{err}");
}

// 11. An unreachable cluster.

#[test]
fn ftp_unreachable_cluster_refuses_login_quickly() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let gw = Gateway::for_cluster(&format!("https://127.0.0.1:{port}"), None).start();
    // 421 closes the session. An unreachable cluster is not a failed login, so more attempts
    // than the failed-login limit (5 per address) are never banned.
    for _ in 0..7 {
        let r = gw.ftplib(&[op::connect(), op::login(ALICE.0, ALICE.1)]);
        assert_eq!(r[0].value(), "220 qftpd ready");
        let err = assert_fails(&r[1], "421");
        assert!(err.contains("cannot be reached"), "{err}");
        assert!(
            r[1].secs() < 5.0,
            "login took {:.1} s: {:#}",
            r[1].secs(),
            r[1].raw
        );
    }
}

// 12. MLST, FEAT, PWD quoting.

#[test]
fn ftp_mlst_feat_and_pwd_quoting() {
    let (sim, gw) = start("");
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /f.txt", b"twelve bytes", None),
            op::cmd("MLST /f.txt"),
            op::cmd("FEAT"),
            op::cmd("MKD /say \"hi\""),
            op::cmd("CWD /say \"hi\""),
            op::cmd("PWD"),
            op::pwd(),
            op::cmd("MLST /nope"),
        ],
    );
    assert_code(&r[0], "226");
    let mlst = r[1].reply();
    assert!(mlst.starts_with("250"), "{mlst}");
    let fact_lines: Vec<&str> = mlst.lines().filter(|l| l.starts_with(' ')).collect();
    assert_eq!(fact_lines.len(), 1, "{mlst}");
    let (facts, name) = fact_lines[0][1..].split_once(' ').unwrap();
    assert!(name.ends_with("f.txt"), "{mlst}");
    let facts: HashMap<String, String> = facts
        .split(';')
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap();
            (k.to_ascii_lowercase(), v.to_owned())
        })
        .collect();
    assert_eq!(facts["type"], "file", "{mlst}");
    assert_eq!(facts["size"], "12", "{mlst}");
    assert!(
        facts["modify"].starts_with(&disk_mtime_utc(&sim.disk_path("/f.txt"))),
        "{mlst}"
    );
    assert!(
        facts["perm"].contains('r') && facts["perm"].contains('w'),
        "{mlst}"
    );
    assert!(!facts["unique"].is_empty(), "{mlst}");

    let feat = r[2].reply();
    assert!(feat.starts_with("211"), "{feat}");
    let features: BTreeSet<String> = feat
        .lines()
        .filter(|l| l.starts_with(' '))
        .map(|l| l.trim().to_owned())
        .collect();
    for f in ["MLSD", "SIZE", "MDTM", "REST STREAM"] {
        assert!(features.contains(f), "FEAT lacks {f}: {feat}");
    }
    assert!(
        features
            .iter()
            .any(|f| f == "MLST" || f.starts_with("MLST ")),
        "FEAT lacks MLST: {feat}"
    );

    assert_code(&r[3], "257");
    assert!(sim.disk_path("/say \"hi\"").is_dir());
    assert_code(&r[4], "250");
    assert!(
        r[5].reply().starts_with("257 \"/say \"\"hi\"\"\""),
        "{}",
        r[5].reply()
    );
    assert_eq!(r[6].value(), "/say \"hi\"");
    assert_fails(&r[7], "550");
}

/// The cluster ends every session mid-FTP-session: the gateway logs in again by itself and
/// the FTP client notices nothing.
#[test]
fn ftp_session_survives_token_expiry() {
    let (sim, gw) = start("");
    let expire = format!("{}/sim/expire-tokens", sim.url);
    let r = gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[
            op::stor("STOR /t.txt", b"before", None),
            op::post(&expire),
            op::lines("LIST /"),
            op::post(&expire),
            op::retr("RETR /t.txt", None),
            op::post(&expire),
            op::stor("STOR /t.txt", b"after expiry", None),
            op::post(&expire),
            op::cmd("SIZE /t.txt"),
        ],
    );
    assert_code(&r[0], "226");
    assert_code(&r[2], "226");
    assert!(
        r[2].strings().iter().any(|l| l.ends_with(" t.txt")),
        "{:?}",
        r[2].strings()
    );
    assert_code(&r[4], "226");
    assert_eq!(r[4].data(), b"before");
    assert_code(&r[6], "226");
    assert_eq!(r[8].reply(), "213 12");
    assert_eq!(read(sim.disk_path("/t.txt")), b"after expiry");
}

/// A directory of 100,000 entries lists completely (the gateway follows the cluster's paging
/// to the end), with curl as the client.
#[test]
fn ftp_lists_a_100000_entry_directory_completely() {
    const N: usize = 100_000;
    let (sim, gw) = start("");
    let dir = sim.disk_path("/huge");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..N {
        std::fs::File::create(dir.join(format!("f{i:06}"))).unwrap();
    }
    let started = std::time::Instant::now();
    let list = curl_ok(&[&format!("{}/huge/", gw.ftp_url(ADMIN.0, ADMIN.1))]);
    let list_secs = started.elapsed().as_secs_f64();
    let list = String::from_utf8(list).unwrap();
    let names: BTreeSet<&str> = list
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(list.lines().count(), N);
    assert_eq!(names.len(), N);
    assert!(names.contains("f000000") && names.contains("f099999"));
    let nlst = curl_ok(&["-l", &format!("{}/huge/", gw.ftp_url(ADMIN.0, ADMIN.1))]);
    assert_eq!(String::from_utf8(nlst).unwrap().lines().count(), N);
    println!("LIST of {N} entries through the gateway: {list_secs:.1} s");
}

/// The 230 reply of every user once the gateway knows the cluster's name.
const NAMED: &str = "230 Welcome to qftpd on qftpd-sim (Qumulo Core 7.10.2)";
/// The 230 reply of a user who may not read the name, before the gateway knows it.
const UNNAMED: &str = "230 Welcome to qftpd (Qumulo Core 7.10.2)";

/// The 230 reply of `user`'s login.
fn welcome_of(gw: &Gateway, (user, password): (&str, &str)) -> String {
    let r = gw.ftplib(&[op::connect(), op::login(user, password), op::quit()]);
    r[1].reply().to_string()
}

/// A long-lived access token for `user`, made by the administrator through the REST API as
/// `qq auth_create_access_token` does.
fn make_access_token(base_url: &str, user: &str) -> String {
    let post = |path: &str, bearer: Option<&str>, body: &str| -> serde_json::Value {
        let mut cmd = std::process::Command::new(common::require_tool("curl", "curl"));
        cmd.args(["-sS", "-k", "--fail-with-body", "-X", "POST"])
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        if let Some(b) = bearer {
            cmd.args(["-H", &format!("Authorization: Bearer {b}")]);
        }
        let out = cmd
            .arg(format!("{base_url}{path}"))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "POST {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"))
    };
    let login = post(
        "/v1/session/login",
        None,
        &format!(r#"{{"username":"{}","password":"{}"}}"#, ADMIN.0, ADMIN.1),
    );
    let admin = login["bearer_token"].as_str().unwrap();
    let token = post(
        "/v1/auth/access-tokens/",
        Some(admin),
        &format!(r#"{{"user":{{"name":"{user}"}}}}"#),
    );
    token["bearer_token"].as_str().unwrap().to_string()
}

/// A gateway in front of `sim` (its node `url`) with `token` in its `access-token` file.
fn start_with_access_token(sim: &Sim, url: &str, token: &str) -> (Gateway, tempfile::TempDir) {
    let dir = scratch();
    let file = dir.path().join("qftpd-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let qumulo = format!(
        "url = {}\nca-file = {}\naccess-token = {}\n",
        toml_str(url),
        toml_str(sim.cert_pem_path.to_str().unwrap()),
        toml_str(file.to_str().unwrap())
    );
    (Gateway::with_qumulo(&qumulo).start(), dir)
}

/// REST requests node 0 of `sim` has served.
fn requests(sim: &Sim) -> u64 {
    sim.nodes()["nodes"][0]["requests"].as_u64().unwrap()
}

/// Sends SIGHUP and waits until the gateway logged the reload.
fn reload(gw: &Gateway) {
    let before = gw.stderr_log().matches("configuration reloaded").count();
    gw.signal("HUP");
    let until = Instant::now() + Duration::from_secs(20);
    while gw.stderr_log().matches("configuration reloaded").count() == before {
        assert!(
            Instant::now() < until,
            "no reload logged:\n{}",
            gw.stderr_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With an access token of its own, the gateway reads the cluster's name itself: the first
/// login of all, a user who is not an administrator, is greeted with it, and so is every
/// later one, without asking the cluster again at each login.
#[test]
fn welcome_names_the_cluster_for_every_user_with_an_access_token() {
    let sim = Sim::start_default();
    let token = make_access_token(&sim.url, ADMIN.0);
    let (mut gw, _dir) = start_with_access_token(&sim, &sim.url, &token);
    assert_eq!(welcome_of(&gw, ALICE), NAMED);
    assert_eq!(welcome_of(&gw, BOB), NAMED);

    // A login is POST session/login and GET who-am-i, nothing more (settings and version
    // were 2 more each); one request of slack for the status probe.
    let before = requests(&sim);
    for _ in 0..5 {
        assert_eq!(welcome_of(&gw, ALICE), NAMED);
    }
    let spent = requests(&sim) - before;
    assert!(spent <= 5 * 2 + 2, "5 logins took {spent} REST requests");

    reload(&gw);
    assert_eq!(welcome_of(&gw, BOB), NAMED);
    let log = gw.stop();
    assert!(log.contains("qftpd-sim"), "{log}");
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    assert!(!log.contains("refused"), "{log}");
}

/// Without an access token, an administrator's login teaches the gateway the name, for every
/// later user, and a reload that keeps the cluster keeps it. Until then a user the cluster
/// refused the name to is not asked it again, and the version is read once: its logins are
/// POST session/login and GET who-am-i.
#[test]
fn welcome_names_the_cluster_for_every_user_after_an_administrator_logged_in() {
    let (sim, gw) = start("");
    assert_eq!(welcome_of(&gw, ALICE), UNNAMED);
    let before = requests(&sim);
    for _ in 0..5 {
        assert_eq!(welcome_of(&gw, ALICE), UNNAMED);
    }
    let spent = requests(&sim) - before;
    assert!(spent <= 5 * 2 + 2, "5 logins took {spent} REST requests");
    assert_eq!(welcome_of(&gw, ADMIN), NAMED);
    assert_eq!(welcome_of(&gw, ALICE), NAMED);
    assert_eq!(welcome_of(&gw, BOB), NAMED);
    reload(&gw);
    assert_eq!(welcome_of(&gw, BOB), NAMED);
}

/// A token the cluster refuses, unknown (401) or of a user who may not read the settings
/// (403), is logged once with the reason; logins go on, and the name is then learnt from an
/// administrator's login.
#[test]
fn refused_access_token_is_logged_once_and_logins_go_on() {
    let sim = Sim::start_default();
    let alices = make_access_token(&sim.url, ALICE.0);
    for (token, reason) in [
        ("access-v1:0123456789abcdef0123456789abcdef", "HTTP 401"),
        (alices.as_str(), "HTTP 403"),
    ] {
        let (mut gw, _dir) = start_with_access_token(&sim, &sim.url, token);
        for _ in 0..3 {
            assert_eq!(welcome_of(&gw, BOB), UNNAMED);
        }
        assert_eq!(welcome_of(&gw, ADMIN), NAMED);
        assert_eq!(welcome_of(&gw, ALICE), NAMED);
        let log = gw.stop();
        let refusals: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("refused qumulo.access-token"))
            .collect();
        assert_eq!(refusals.len(), 1, "{log}");
        assert!(refusals[0].contains("WARN"), "{log}");
        assert!(refusals[0].contains(reason), "{log}");
        assert!(!log.contains(token), "the token is in the log:\n{log}");
    }
}

/// A cluster that does not answer when the gateway starts does not keep it from starting;
/// the name is read at the first login once the cluster is back.
#[test]
fn welcome_names_the_cluster_when_it_was_down_at_start() {
    let sim = Sim::start_nodes(2);
    let token = make_access_token(&sim.urls[0], ADMIN.0);
    sim.node_down(0);
    let (gw, _dir) = start_with_access_token(&sim, &sim.urls[0], &token);
    let until = Instant::now() + Duration::from_secs(60);
    while !gw.stderr_log().contains("cannot read the cluster's name") {
        assert!(Instant::now() < until, "{}", gw.stderr_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    sim.node_up(0);
    assert_eq!(welcome_of(&gw, ALICE), NAMED);
}

/// A reload that points the gateway to another cluster forgets the name of the first one; with
/// an access token it reads the new one at once.
#[test]
fn reload_to_another_cluster_reads_its_name() {
    let first = Sim::start_default();
    let other = Sim::start(
        &[ADMIN, ALICE],
        Some(ADMIN.0),
        &["--cluster-name", "other-cluster"],
    );
    let gw = Gateway::start(&first, "");
    assert_eq!(welcome_of(&gw, ADMIN), NAMED);
    assert_eq!(welcome_of(&gw, ALICE), NAMED);

    let dir = scratch();
    let file = dir.path().join("qftpd-token");
    std::fs::write(&file, make_access_token(&other.url, ADMIN.0)).unwrap();
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    let config = config
        .replace(&first.url, &other.url)
        .replace(
            first.cert_pem_path.to_str().unwrap(),
            other.cert_pem_path.to_str().unwrap(),
        )
        .replace(
            "[qumulo]\n",
            &format!(
                "[qumulo]\naccess-token = {}\n",
                toml_str(file.to_str().unwrap())
            ),
        );
    std::fs::write(&gw.config_path, config).unwrap();
    reload(&gw);
    assert_eq!(
        welcome_of(&gw, ALICE),
        "230 Welcome to qftpd on other-cluster (Qumulo Core 7.10.2)"
    );
}

//! Interoperability with the FTP clients people use, as they use them: rclone, lftp, the BSD
//! `ftp` client (tnftp), Python's ftplib and curl, over FTP and FTPS, against `qftpd sim` +
//! `qftpd serve`.
//!
//! Each test drives a real client through a whole job on realistic data (a tree of ~200 files
//! with awkward names and files of several MiB) and then checks what the client reported,
//! what landed on the simulator's disk and what came back, byte for byte and, where the client
//! keeps them, modification time for modification time. `./run-tests` installs the clients; a
//! missing one fails the test, naming its package.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, UNIX_EPOCH};

use chrono::{DateTime, TimeZone, Utc};
use common::{
    BigPattern, Gateway, ftps_config, op, pattern, require_tool, run_with_input, scratch,
    sha256_file,
};
use common::{Sim, wait_until, walk_tree};
use serde_json::{Value, json};

const ALICE: (&str, &str) = ("alice", "alicepw");

// ---------------------------------------------------------------------------------------------
// The tree of awkward names.

/// Modification time of the `i`th file of a generated tree: whole seconds, in the past, each
/// file its own.
fn tree_mtime(i: usize) -> i64 {
    1_614_834_367 + (i as i64) * 3_607
}

/// The directories of the tree: awkward names, and one branch five levels deep.
const TREE_DIRS: &[&str] = &[
    "",
    "a b",
    "ünïcödé ✓ 日本",
    "#%&?'[x",
    "-dash",
    "deep/l2 two/l3 ☃/l4 #4/l5 [5]",
    "deep/l2 two",
];

/// The `i`th file name: spaces, unicode, `#%&?'[`, a leading dash, ~200-byte names.
fn tree_name(i: usize) -> String {
    match i % 12 {
        0 => format!("file {i}.txt"),
        1 => format!("naïve café {i}.txt"),
        2 => format!("日本語のファイル {i}.dat"),
        3 => format!("#hash {i}"),
        4 => format!("100% sure {i}.bin"),
        5 => format!("a&b {i}.txt"),
        6 => format!("what? {i}"),
        7 => format!("it's {i}.txt"),
        8 => format!("[bracket {i}"),
        9 => format!("-leading dash {i}"),
        10 => {
            // 200 bytes: ASCII then two-byte characters.
            let mut name = format!("long name {i:03} ");
            while name.len() < 199 {
                name.push('é');
            }
            while name.len() < 200 {
                name.push('x');
            }
            name
        }
        _ => format!("emoji 😀 {i}.bin"),
    }
}

/// The size of the `i`th file: a few empty, a few of several MiB, the rest up to 64 KiB.
fn tree_size(i: usize) -> usize {
    match i {
        _ if i % 23 == 7 => 0,
        13 => 3 << 20,
        77 => (2 << 20) + 12_345,
        141 => 4 << 20,
        190 => (1 << 20) + 1,
        _ => 1 + (i * 7_919) % (64 << 10),
    }
}

/// Writes a tree of `count` files under `root` (directories created as needed), each with its
/// own content and modification time; returns their paths relative to `root`.
fn write_tree(root: &Path, count: usize) -> Vec<String> {
    let mut files = Vec::with_capacity(count);
    for i in 0..count {
        let dir = TREE_DIRS[i % TREE_DIRS.len()];
        let rel = if dir.is_empty() {
            tree_name(i)
        } else {
            format!("{dir}/{}", tree_name(i))
        };
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).expect("create tree directory");
        std::fs::write(&path, pattern(tree_size(i), i as u64 + 1000)).expect("write tree file");
        set_mtime(&path, tree_mtime(i));
        files.push(rel);
    }
    files
}

fn set_mtime(path: &Path, secs: i64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(secs as u64)))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// Modification time of `path` in whole seconds since the epoch.
fn mtime_secs(path: &Path) -> i64 {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    match modified.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

fn utc(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0)
        .single()
        .map_or_else(|| secs.to_string(), |t| t.to_rfc3339())
}

/// One entry of a [`manifest`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { size: u64, sha256: String },
}

/// Every file and directory under `root` (hidden ones too), by path relative to `root`.
fn manifest(root: &Path) -> BTreeMap<String, Entry> {
    if !root.is_dir() {
        return BTreeMap::new();
    }
    walk_tree(root)
        .into_iter()
        .map(|(rel, (path, is_dir))| {
            let entry = if is_dir {
                Entry::Dir
            } else {
                Entry::File {
                    size: std::fs::metadata(&path).expect("metadata").len(),
                    sha256: sha256_file(&path),
                }
            };
            (rel, entry)
        })
        .collect()
}

/// What differs between two trees, one line per path (missing, extra, or other content).
fn tree_differences(
    a_name: &str,
    a: &BTreeMap<String, Entry>,
    b_name: &str,
    b: &BTreeMap<String, Entry>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, entry) in a {
        match b.get(path) {
            None => out.push(format!("{path:?}: in {a_name}, missing in {b_name}")),
            Some(other) if other != entry => out.push(format!(
                "{path:?}: {a_name} has {entry:?}, {b_name} has {other:?}"
            )),
            Some(_) => {}
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("{path:?}: in {b_name}, not in {a_name}"));
    }
    out
}

/// Compares the trees under `a` and `b` and records the differences in `problems` (the first
/// 25 of them, and how many).
fn compare_trees(problems: &mut Vec<String>, what: &str, a: (&str, &Path), b: (&str, &Path)) {
    let diffs = tree_differences(a.0, &manifest(a.1), b.0, &manifest(b.1));
    if !diffs.is_empty() {
        problems.push(format!(
            "{what}: {} difference(s) between {} and {}:\n    {}",
            diffs.len(),
            a.0,
            b.0,
            diffs[..diffs.len().min(25)].join("\n    ")
        ));
    }
}

/// Fails with every problem found, one per paragraph.
fn assert_no_problems(client: &str, problems: &[String], log: &str) {
    assert!(
        problems.is_empty(),
        "{client}: {} problem(s):\n\n{}\n\n--- gateway log (last 60 lines) ---\n{}",
        problems.len(),
        problems.join("\n\n"),
        tail(log, 60)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn text(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout), 40),
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    )
}

// ---------------------------------------------------------------------------------------------
// rclone

/// rclone with an on-the-fly FTP remote for one gateway and its own (empty) configuration.
struct Rclone {
    remote: String,
    dir: tempfile::TempDir,
}

impl Rclone {
    fn new(gw: &Gateway, user: &str, password: &str, tls: bool) -> Rclone {
        require_tool("rclone", "rclone");
        let dir = scratch();
        let out = Command::new(common::require_tool("rclone", "rclone"))
            .args(["obscure", password])
            .output()
            .expect("run rclone obscure");
        assert!(out.status.success(), "rclone obscure: {}", text(&out));
        let obscured = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let mut remote = format!(
            ":ftp,host=127.0.0.1,port={},user={user},pass={obscured}",
            gw.port()
        );
        if tls {
            remote.push_str(",explicit_tls=true,no_check_certificate=true");
        }
        Rclone { remote, dir }
    }

    /// `remote:path` for `rclone` arguments.
    fn at(&self, path: &str) -> String {
        format!("{}:{path}", self.remote)
    }

    /// Runs `rclone <args>` (one try, no retry of the whole job: a job that only succeeds
    /// when retried is a failure); returns the output whatever the exit status.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(common::require_tool("rclone", "rclone"));
        cmd.args(args)
            .args([
                "--retries",
                "1",
                "--low-level-retries",
                "3",
                "--contimeout",
                "15s",
                "--timeout",
                "60s",
                "--log-level",
                "NOTICE",
            ])
            .env("RCLONE_CONFIG", self.dir.path().join("rclone.conf"))
            .env("HOME", self.dir.path());
        run_with_input(&mut cmd, None, Duration::from_secs(150), "rclone")
    }

    /// Runs `rclone <args>`, recording a failure in `problems`; returns whether it succeeded.
    fn step(&self, problems: &mut Vec<String>, what: &str, args: &[&str]) -> Option<Output> {
        let out = self.run(args);
        if out.status.success() {
            Some(out)
        } else {
            problems.push(format!("rclone {what} failed: {}", text(&out)));
            None
        }
    }
}

/// `rclone copy`, `check` both ways, `lsjson -R` modification times, `sync` after a change,
/// a deletion and an addition, `moveto` and `purge`, of the tree of awkward names into
/// directories that do not exist yet, over FTP or FTPS.
fn rclone_round_trip(tls: bool) {
    let sim = Sim::start_default();
    let certs = scratch();
    let gw = if tls {
        let (lines, _) = ftps_config(certs.path(), false);
        Gateway::start(&sim, &lines)
    } else {
        Gateway::start(&sim, "")
    };
    let rclone = Rclone::new(&gw, ALICE.0, ALICE.1, tls);
    let work = scratch();
    let src = work.path().join("src");
    let files = write_tree(&src, 200);
    let src_str = src.to_str().unwrap();
    // A fresh, empty directory made by alice; everything below it does not exist yet.
    let dst = "/rclone/tree";
    for r in gw.ftplib_as(
        ALICE.0,
        ALICE.1,
        &[op::cmd("MKD /rclone"), op::cmd("MKD /rclone/tree")],
    ) {
        assert!(r.ok, "ftplib MKD: {:#}", r.raw);
    }
    let dst_disk = sim.disk_path(dst);
    let mut problems = Vec::new();

    // copy into directories that do not exist yet: every file arrives, byte for byte.
    rclone.step(&mut problems, "copy", &["copy", src_str, &rclone.at(dst)]);
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !dst_disk.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "rclone copy: {} of {} files did not arrive on the server, e.g. {:?}",
            missing.len(),
            files.len(),
            &missing[..missing.len().min(10)]
        ));
    }
    compare_trees(
        &mut problems,
        "after rclone copy",
        ("the source", &src),
        ("the server's disk", &dst_disk),
    );

    // check both ways: sizes, then the contents downloaded.
    rclone.step(&mut problems, "check", &["check", src_str, &rclone.at(dst)]);
    rclone.step(
        &mut problems,
        "check --download",
        &["check", "--download", src_str, &rclone.at(dst)],
    );

    // Modification times kept, to the second.
    if let Some(out) = rclone.step(
        &mut problems,
        "lsjson -R",
        &["lsjson", "-R", &rclone.at(dst)],
    ) {
        let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "rclone lsjson printed no JSON array ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let times: BTreeMap<String, String> = listed
            .iter()
            .filter(|e| e["IsDir"] == false)
            .map(|e| {
                (
                    e["Path"].as_str().unwrap_or("").to_owned(),
                    e["ModTime"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let mut wrong = Vec::new();
        for (i, rel) in files.iter().enumerate() {
            let want = tree_mtime(i);
            match times.get(rel) {
                None => wrong.push(format!("{rel:?}: not listed")),
                Some(t) => match DateTime::parse_from_rfc3339(t) {
                    Ok(got) if got.timestamp() == want => {}
                    Ok(_) | Err(_) => {
                        wrong.push(format!("{rel:?}: listed {t}, source {}", utc(want)))
                    }
                },
            }
        }
        if !wrong.is_empty() {
            problems.push(format!(
                "rclone lsjson -R: {} of {} modification times differ from the source's:\n    {}",
                wrong.len(),
                files.len(),
                wrong[..wrong.len().min(15)].join("\n    ")
            ));
        }
    }

    // sync after a change, a deletion and an addition.
    let changed = src.join(&files[1]);
    std::fs::write(&changed, pattern(300_000, 77)).unwrap();
    set_mtime(&changed, tree_mtime(1) + 86_400);
    std::fs::remove_file(src.join(&files[2])).unwrap();
    let added = src.join("deep/l2 two/l3 ☃/added — new [file] #1.bin");
    std::fs::write(&added, pattern(1 << 20, 78)).unwrap();
    set_mtime(&added, tree_mtime(0) - 86_400);
    rclone.step(&mut problems, "sync", &["sync", src_str, &rclone.at(dst)]);
    compare_trees(
        &mut problems,
        "after rclone sync",
        ("the source", &src),
        ("the server's disk", &dst_disk),
    );
    rclone.step(
        &mut problems,
        "check after sync",
        &["check", "--download", src_str, &rclone.at(dst)],
    );

    // moveto: a server-side rename into a directory that does not exist yet.
    let from = &files[5];
    let to = "moved here/it's [moved] #1.txt";
    let want = std::fs::read(src.join(from)).unwrap();
    rclone.step(
        &mut problems,
        "moveto",
        &[
            "moveto",
            &rclone.at(&format!("{dst}/{from}")),
            &rclone.at(&format!("/rclone/{to}")),
        ],
    );
    if dst_disk.join(from).exists() {
        problems.push(format!("rclone moveto: {from:?} is still on the server"));
    }
    match std::fs::read(sim.disk_path(&format!("/rclone/{to}"))) {
        Ok(got) if got == want => {}
        Ok(got) => problems.push(format!(
            "rclone moveto: {to:?} has {} bytes, {from:?} had {}",
            got.len(),
            want.len()
        )),
        Err(e) => problems.push(format!("rclone moveto: {to:?} not on the server: {e}")),
    }

    // copy of a file to a destination none of whose directories exist yet.
    let one = src.join(&files[0]);
    rclone.step(
        &mut problems,
        "copy into /rclone/absent/deeper (none of it exists)",
        &[
            "copy",
            one.to_str().unwrap(),
            &rclone.at("/rclone/absent/deeper"),
        ],
    );
    let arrived = sim.disk_path("/rclone/absent/deeper").join(&files[0]);
    if !arrived.is_file() {
        problems.push(format!(
            "rclone copy into /rclone/absent/deeper: {:?} did not arrive",
            files[0]
        ));
    }

    // purge: the whole tree goes.
    rclone.step(
        &mut problems,
        "purge",
        &["purge", &rclone.at("/rclone/tree")],
    );
    if sim.disk_path("/rclone/tree").exists() {
        let left = manifest(&sim.disk_path("/rclone/tree"));
        problems.push(format!(
            "rclone purge: /rclone/tree still exists with {} entries, e.g. {:?}",
            left.len(),
            left.keys().take(10).collect::<Vec<_>>()
        ));
    }

    let client = if tls {
        "rclone over FTPS"
    } else {
        "rclone over FTP"
    };
    assert_no_problems(client, &problems, &gw.stderr_log());
}

#[test]
fn rclone_copy_check_lsjson_sync_moveto_purge_over_ftp() {
    rclone_round_trip(false);
}

#[test]
fn rclone_copy_check_lsjson_sync_moveto_purge_over_ftps() {
    rclone_round_trip(true);
}

// ---------------------------------------------------------------------------------------------
// lftp

/// `lftp -c` with `commands` after logging in as alice over plain FTP; output whatever the
/// exit status.
fn lftp(gw: &Gateway, commands: &str) -> Output {
    require_tool("lftp", "lftp");
    gw.lftp_with("set ftp:ssl-allow no;", ALICE.0, ALICE.1, commands)
}

#[test]
fn lftp_mirror_up_and_back_keeps_contents_and_times() {
    let sim = Sim::start_default();
    let gw = Gateway::start(&sim, "");
    let work = scratch();
    let src = work.path().join("src");
    let back = work.path().join("back");
    let files = write_tree(&src, 200);
    let mut problems = Vec::new();

    let out = lftp(
        &gw,
        &format!("mirror -R {} /lftp/up", src.to_str().unwrap()),
    );
    if !out.status.success() {
        problems.push(format!("lftp mirror -R failed: {}", text(&out)));
    }
    let out = lftp(&gw, &format!("mirror /lftp/up {}", back.to_str().unwrap()));
    if !out.status.success() {
        problems.push(format!("lftp mirror (back) failed: {}", text(&out)));
    }

    let up = sim.disk_path("/lftp/up");
    compare_trees(
        &mut problems,
        "lftp mirror -R",
        ("the source", &src),
        ("the server's disk", &up),
    );
    compare_trees(
        &mut problems,
        "lftp mirror back",
        ("the source", &src),
        ("the mirrored-back copy", &back),
    );
    let diff = Command::new(common::require_tool("diff", "diffutils"))
        .arg("-r")
        .arg(&src)
        .arg(&back)
        .output()
        .expect("run diff");
    if !diff.status.success() {
        problems.push(format!("diff -r source mirrored-back: {}", text(&diff)));
    }
    let diff = Command::new(common::require_tool("diff", "diffutils"))
        .arg("-r")
        .arg(&src)
        .arg(&up)
        .output()
        .expect("run diff");
    if !diff.status.success() {
        problems.push(format!("diff -r source server's disk: {}", text(&diff)));
    }

    // mirror -R keeps each file's time on the server, and mirror keeps it coming back.
    for (place, root) in [
        ("the server's disk", &up),
        ("the mirrored-back copy", &back),
    ] {
        let wrong: Vec<String> = files
            .iter()
            .enumerate()
            .filter(|(_, rel)| root.join(rel).is_file())
            .filter(|(i, rel)| mtime_secs(&root.join(rel)) != tree_mtime(*i))
            .map(|(i, rel)| {
                format!(
                    "{rel:?}: {}, source {}",
                    utc(mtime_secs(&root.join(rel))),
                    utc(tree_mtime(i))
                )
            })
            .collect();
        if !wrong.is_empty() {
            problems.push(format!(
                "lftp mirror: {} of {} modification times on {place} differ from the \
                 source's:\n    {}",
                wrong.len(),
                files.len(),
                wrong[..wrong.len().min(15)].join("\n    ")
            ));
        }
    }
    assert_no_problems("lftp mirror", &problems, &gw.stderr_log());
}

/// Every entry of the simulator directory `dir` (hidden ones too) with its size.
fn entries_with_sizes(dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let size = e.metadata().ok()?.len();
                    Some((e.file_name().to_string_lossy().into_owned(), size))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An upload by `lftp mirror -R` of a 40 MiB file, at 2 MiB/s, killed once 6 MiB arrived, then
/// `mirror -R --continue`: the file on the server is the source, byte for byte, with its time.
fn lftp_mirror_continue(extra_ftp: &str) -> Vec<String> {
    require_tool("lftp", "lftp");
    let sim = Sim::start_default();
    let gw = Gateway::start(&sim, extra_ftp);
    let work = scratch();
    let src = work.path().join("big");
    std::fs::create_dir(&src).unwrap();
    let big = src.join("large file #1.bin");
    let len: u64 = 40 << 20;
    BigPattern::write_file(&big, len);
    set_mtime(&big, tree_mtime(3));
    let mut problems = Vec::new();
    let remote = sim.disk_path("/lftp/big");

    let mut child = gw.lftp_spawn(
        "set ftp:ssl-allow no; set net:limit-rate 2M;",
        ALICE.0,
        ALICE.1,
        &format!("mirror -R {} /lftp/big", src.to_str().unwrap()),
    );
    wait_until(
        Duration::from_secs(60),
        "6 MiB of the upload arriving on the server",
        || {
            entries_with_sizes(&remote)
                .iter()
                .any(|(_, size)| *size >= 6 << 20)
        },
    );
    child.kill().expect("SIGKILL lftp");
    child.wait().expect("wait for lftp");
    // The gateway ends the broken upload (keeping or dropping what arrived) before lftp goes on.
    wait_until(
        Duration::from_secs(30),
        "the gateway logging the end of the interrupted upload",
        || {
            gw.stderr_log()
                .contains("transfer upload /lftp/big/large file #1.bin")
        },
    );
    let partial = entries_with_sizes(&remote);
    let kept = partial
        .iter()
        .find(|(name, _)| name == "large file #1.bin")
        .map(|(_, size)| *size);

    let out = lftp(
        &gw,
        &format!("mirror -R --continue {} /lftp/big", src.to_str().unwrap()),
    );
    if !out.status.success() {
        problems.push(format!(
            "lftp mirror -R --continue failed (after the interrupted upload left {partial:?}): {}",
            text(&out)
        ));
    }
    compare_trees(
        &mut problems,
        &format!("lftp mirror -R --continue (interrupted upload left {partial:?})"),
        ("the source", &src),
        ("the server's disk", &remote),
    );
    // Where the partial file stayed, lftp sent only the rest (REST + STOR at its size).
    if let Some(size) = kept.filter(|size| *size > 0 && *size < len) {
        let resumed = format!("offset={size}");
        if !gw
            .stderr_log()
            .lines()
            .any(|l| l.contains("transfer upload") && l.contains(&resumed))
        {
            problems.push(format!(
                "lftp mirror -R --continue did not resume at {size} bytes (no upload logged \
                 with {resumed})"
            ));
        }
    }
    let on_server = remote.join("large file #1.bin");
    if on_server.is_file() && mtime_secs(&on_server) != tree_mtime(3) {
        problems.push(format!(
            "lftp mirror -R --continue: modification time {} on the server, source {}",
            utc(mtime_secs(&on_server)),
            utc(tree_mtime(3))
        ));
    }
    if !problems.is_empty() {
        problems.push(format!("gateway log:\n{}", tail(&gw.stderr_log(), 40)));
    }
    problems
}

#[test]
fn lftp_mirror_continue_completes_an_interrupted_upload() {
    // With atomic uploads (the default) the interrupted upload leaves nothing behind and is
    // sent again; without, the partial file stays and lftp resumes it with REST + STOR.
    let mut problems = lftp_mirror_continue("");
    for p in lftp_mirror_continue("atomic-uploads = false") {
        problems.push(format!("without atomic uploads: {p}"));
    }
    assert_no_problems("lftp mirror --continue", &problems, "");
}

// ---------------------------------------------------------------------------------------------
// The BSD ftp client (tnftp)

#[test]
fn bsd_ftp_client_scripted_session() {
    let tnftp = require_tool("tnftp", "tnftp");
    let sim = Sim::start_default();
    let gw = Gateway::start(&sim, "");
    let work = scratch();
    let local = work.path().join("local");
    let down = work.path().join("down");
    std::fs::create_dir(&local).unwrap();
    std::fs::create_dir(&down).unwrap();
    let mut sources: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    sources.insert("big one.bin".into(), pattern(3 << 20, 1));
    for (i, name) in ["a.txt", "b.txt", "c d.txt", "x.dat", "y.dat", "keep.bin"]
        .iter()
        .enumerate()
    {
        sources.insert((*name).into(), pattern((i + 1) * 300_000, 10 + i as u64));
    }
    for (name, data) in &sources {
        std::fs::write(local.join(name), data).unwrap();
    }

    let script = format!(
        "open 127.0.0.1 {port}\n\
         user {user} {password}\n\
         binary\n\
         passive on\n\
         prompt off\n\
         lcd {local}\n\
         mkdir session\n\
         cd session\n\
         put \"big one.bin\" big.bin\n\
         mput *.txt *.dat keep.bin\n\
         ls\n\
         dir\n\
         mkdir emptydir\n\
         rename big.bin renamed.bin\n\
         rmdir emptydir\n\
         modtime renamed.bin\n\
         size renamed.bin\n\
         lcd {down}\n\
         mget *.txt\n\
         mdelete *.dat\n\
         get renamed.bin\n\
         ls\n\
         bye\n",
        port = gw.port(),
        user = ALICE.0,
        password = ALICE.1,
        local = local.display(),
        down = down.display(),
    );
    let mut cmd = Command::new(&tnftp);
    cmd.args(["-n", "-v", "-p"])
        .env("TZ", "UTC")
        .current_dir(&down);
    let out = run_with_input(
        &mut cmd,
        Some(script.as_bytes()),
        Duration::from_secs(120),
        "tnftp",
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let transcript = format!(
        "{}\n--- gateway log ---\n{}",
        text(&out),
        tail(&gw.stderr_log(), 40)
    );
    let mut problems = Vec::new();
    if !out.status.success() {
        problems.push(format!("tnftp exited with {}", out.status));
    }
    for line in stdout.lines() {
        let code = line.get(..3).unwrap_or("");
        if line.len() > 3
            && code.bytes().all(|b| b.is_ascii_digit())
            && (code.starts_with('4') || code.starts_with('5'))
        {
            problems.push(format!("tnftp got an error reply: {line}"));
        }
    }

    // The server's disk after the session.
    let session = sim.disk_path("/session");
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    want.insert("renamed.bin".into(), sources["big one.bin"].clone());
    for name in ["a.txt", "b.txt", "c d.txt", "keep.bin"] {
        want.insert(name.into(), sources[name].clone());
    }
    let on_disk: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&session)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let data = std::fs::read(e.path()).unwrap_or_default();
                    (e.file_name().to_string_lossy().into_owned(), data)
                })
                .collect()
        })
        .unwrap_or_default();
    for (name, data) in &want {
        match on_disk.get(name) {
            None => problems.push(format!("server: /session/{name} missing")),
            Some(got) if got != data => problems.push(format!(
                "server: /session/{name} has {} bytes, want {} (content differs)",
                got.len(),
                data.len()
            )),
            Some(_) => {}
        }
    }
    for name in on_disk.keys().filter(|n| !want.contains_key(*n)) {
        problems.push(format!(
            "server: /session/{name} should not be there (mdelete *.dat, rename, rmdir)"
        ));
    }

    // What came down: the *.txt files of mget and the renamed file of get, nothing else.
    let mut want_down: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    want_down.insert("renamed.bin".into(), sources["big one.bin"].clone());
    for name in ["a.txt", "b.txt", "c d.txt"] {
        want_down.insert(name.into(), sources[name].clone());
    }
    for (name, data) in &want_down {
        match std::fs::read(down.join(name)) {
            Err(e) => problems.push(format!("downloaded {name}: {e}")),
            Ok(got) if &got != data => problems.push(format!(
                "downloaded {name}: {} bytes, want {} (content differs)",
                got.len(),
                data.len()
            )),
            Ok(_) => {}
        }
    }
    for entry in std::fs::read_dir(&down).unwrap().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !want_down.contains_key(&name) {
            problems.push(format!("downloaded {name}, which was not asked for"));
        }
    }

    // size and modtime of the renamed file as the server sees it.
    let size_line = format!("renamed.bin\t{}", 3 << 20);
    if !stdout.lines().any(|l| l.trim_end() == size_line) {
        problems.push(format!("tnftp `size renamed.bin`: no line {size_line:?}"));
    }
    let disk_time = mtime_secs(&session.join("renamed.bin"));
    let modtime = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("renamed.bin\t"))
        .find_map(|t| DateTime::parse_from_rfc2822(t.trim()).ok());
    match modtime {
        Some(t) if t.timestamp() == disk_time => {}
        Some(t) => problems.push(format!(
            "tnftp `modtime renamed.bin`: {t}, the file's time on disk is {}",
            utc(disk_time)
        )),
        None => problems.push("tnftp `modtime renamed.bin`: no time printed".into()),
    }
    assert!(
        problems.is_empty(),
        "BSD ftp (tnftp): {} problem(s):\n  {}\n\n--- transcript ---\n{transcript}",
        problems.len(),
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Python ftplib

/// Runs tests/clients/ftplib_session.py with `spec`; returns its steps.
fn ftplib_session(spec: &Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ftplib_session.py");
    let mut cmd = Command::new(common::require_tool("python3", "python3"));
    cmd.arg(script).env("PYTHONIOENCODING", "utf-8");
    let input = serde_json::to_vec(spec).unwrap();
    let out = run_with_input(
        &mut cmd,
        Some(&input),
        Duration::from_secs(150),
        "ftplib_session.py",
    );
    assert!(out.status.success(), "ftplib_session.py: {}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ftplib_session.py printed no JSON ({e}): {}", text(&out)));
    doc["steps"].as_array().expect("steps").clone()
}

/// storbinary of several MiB, retrbinary, nlst, mlsd(facts=...) and MFMT with ftplib, over FTP
/// or FTPS with TLS at most `tls_max`.
fn ftplib_round_trip(tls: Option<&str>) {
    let sim = Sim::start_default();
    let certs = scratch();
    let (gw, cafile) = match tls {
        Some(_) => {
            let (lines, cert) = ftps_config(certs.path(), true);
            (Gateway::start(&sim, &lines), Some(cert))
        }
        None => (Gateway::start(&sim, ""), None),
    };
    let work = scratch();
    let download = work.path().join("down");
    std::fs::create_dir(&download).unwrap();
    let mut uploads = Vec::new();
    for i in 0..6u64 {
        let name = format!("upload {i}.bin");
        let path = work.path().join(&name);
        let len = (3 << 20) + (i as usize) * 333_333;
        std::fs::write(&path, pattern(len, 500 + i)).unwrap();
        uploads.push((name, path));
    }
    let sub = work.path().join("inner.bin");
    std::fs::write(&sub, pattern(1 << 20, 600)).unwrap();
    let spec = json!({
        "host": "127.0.0.1",
        "port": gw.port(),
        "user": ALICE.0,
        "password": ALICE.1,
        "tls": tls.map(|max| json!({"cafile": cafile, "max": max})),
        "dir": "py",
        "uploads": uploads.iter().map(|(n, p)| json!([n, p])).collect::<Vec<_>>(),
        "subdir_file": ["inner.bin", sub],
        "download_dir": download,
        "mfmt": ["20200102030405", "upload 0.bin"],
    });
    let steps = ftplib_session(&spec);
    let step = |name: &str| -> Value {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("ftplib step {name:?} missing from {steps:#?}"))
    };
    let mut problems = Vec::new();
    for s in &steps {
        if s["ok"] != true {
            problems.push(format!(
                "ftplib {}: {} ({})",
                s["step"].as_str().unwrap_or("?"),
                s["error"].as_str().unwrap_or("?"),
                s["error_type"].as_str().unwrap_or("?")
            ));
        }
    }

    // Every upload on disk and every download byte-exact.
    for (name, path) in &uploads {
        let want = sha256_file(path);
        let on_disk = sim.disk_path(&format!("/py/{name}"));
        if !on_disk.is_file() {
            problems.push(format!("storbinary {name}: not on the server"));
        } else if sha256_file(&on_disk) != want {
            problems.push(format!("storbinary {name}: the server's copy differs"));
        }
        let got = download.join(name);
        if !got.is_file() || sha256_file(&got) != want {
            problems.push(format!(
                "retrbinary {name}: the download differs or is missing"
            ));
        }
    }
    if sha256_file(&sub) != sha256_file_or_none(&sim.disk_path("/py/sub/inner.bin")) {
        problems.push("storbinary sub/inner.bin: missing or different on the server".into());
    }

    // nlst of the working directory: the names; nlst of a directory: names to RETR.
    let nlst = step("nlst");
    if nlst["ok"] == true {
        let mut got: Vec<String> = strings(&nlst["value"]);
        got.sort();
        let mut want: Vec<String> = uploads.iter().map(|(n, _)| n.clone()).collect();
        want.push("sub".into());
        want.sort();
        if got != want {
            problems.push(format!("ftplib nlst(): {got:?}, want {want:?}"));
        }
    }
    let nlst_sub = step("nlst sub");
    if nlst_sub["ok"] == true && strings(&nlst_sub["value"]) != ["sub/inner.bin"] {
        problems.push(format!(
            "ftplib nlst(\"sub\"): {}, want [\"sub/inner.bin\"]",
            nlst_sub["value"]
        ));
    }

    // mlsd(facts=[type, size, modify]): those facts and no others, and the right ones.
    for name in ["mlsd facts", "mlsd facts after MFMT"] {
        let s = step(name);
        if s["ok"] != true {
            continue;
        }
        for entry in s["value"].as_array().cloned().unwrap_or_default() {
            let file = entry[0].as_str().unwrap_or("?").to_owned();
            let facts = entry[1].as_object().cloned().unwrap_or_default();
            let mut keys: Vec<String> = facts.keys().map(|k| k.to_lowercase()).collect();
            keys.sort();
            if keys != ["modify", "size", "type"] && !(file == "sub" && keys == ["modify", "type"])
            {
                problems.push(format!(
                    "ftplib {name}: {file:?} has facts {keys:?}, asked for type, size, modify"
                ));
            }
            if let Some((_, path)) = uploads.iter().find(|(n, _)| *n == file) {
                let size = std::fs::metadata(path).unwrap().len().to_string();
                if facts.get("size").and_then(Value::as_str) != Some(size.as_str()) {
                    problems.push(format!(
                        "ftplib {name}: {file:?} size {:?}, want {size}",
                        facts.get("size")
                    ));
                }
            }
        }
    }

    // MFMT sets the time: the reply, the file on disk, and MLSD's modify fact.
    let mfmt = step("MFMT");
    if mfmt["ok"] == true {
        let reply = mfmt["reply"].as_str().unwrap_or("");
        if !reply.starts_with("213 ") || !reply.contains("Modify=20200102030405") {
            problems.push(format!(
                "ftplib MFMT: reply {reply:?}, want `213 Modify=20200102030405; upload 0.bin`"
            ));
        }
    }
    let want_secs = Utc
        .with_ymd_and_hms(2020, 1, 2, 3, 4, 5)
        .unwrap()
        .timestamp();
    let target = sim.disk_path("/py/upload 0.bin");
    if target.is_file() && mtime_secs(&target) != want_secs {
        problems.push(format!(
            "MFMT 20200102030405: the file's time on disk is {}",
            utc(mtime_secs(&target))
        ));
    }
    let after = step("mlsd facts after MFMT");
    if after["ok"] == true {
        let modify = after["value"]
            .as_array()
            .and_then(|entries| entries.iter().find(|e| e[0] == "upload 0.bin"))
            .map(|e| e[1]["modify"].as_str().unwrap_or("").to_owned());
        if modify.as_deref().map(|m| m.get(..14)) != Some(Some("20200102030405")) {
            problems.push(format!(
                "ftplib mlsd after MFMT: modify of \"upload 0.bin\" is {modify:?}"
            ));
        }
    }
    if let Some(max) = tls {
        let version = step("tls_version");
        let want = if max == "1.2" { "TLSv1.2" } else { "TLSv1.3" };
        if version["value"] != want && version["reply"] != want {
            problems.push(format!("TLS version {}, want {want}", version));
        }
    }
    let client = match tls {
        None => "ftplib.FTP".to_owned(),
        Some(v) => format!("ftplib.FTP_TLS (TLS {v})"),
    };
    assert_no_problems(&client, &problems, &gw.stderr_log());
}

fn sha256_file_or_none(path: &Path) -> String {
    if path.is_file() {
        sha256_file(path)
    } else {
        String::new()
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ftplib_storbinary_retrbinary_mlsd_facts_nlst_mfmt() {
    ftplib_round_trip(None);
}

#[test]
fn ftplib_ftps_tls_1_2_storbinary_ends_cleanly() {
    ftplib_round_trip(Some("1.2"));
}

#[test]
fn ftplib_ftps_tls_1_3_storbinary_ends_cleanly() {
    ftplib_round_trip(Some("1.3"));
}

// ---------------------------------------------------------------------------------------------
// curl over FTPS

/// Uploads and downloads by curl over FTPS with `tls_args`: `rounds` uploads of several MiB,
/// each checked byte for byte (SHA-256) on the simulator's disk, then as many downloads; every
/// failure is reported, not only the first. curl must report `want_tls` (e.g. `SSL connection
/// using TLSv1.3`) for the connection.
fn curl_ftps_rounds(tls_args: &[&str], want_tls: &str, rounds: usize) {
    require_tool("curl", "curl");
    let sim = Sim::start_default();
    let certs = scratch();
    let (lines, _) = ftps_config(certs.path(), true);
    let gw = Gateway::start(&sim, &lines);
    let work = scratch();
    let base = gw.ftp_url(ALICE.0, ALICE.1);
    let mut failures = Vec::new();
    let mut sources: Vec<(String, PathBuf, String)> = Vec::new();
    for i in 0..rounds {
        let name = format!("upload-{i:02}.bin");
        let path = work.path().join(&name);
        let len = (3 << 20) + i * 65_537;
        std::fs::write(&path, pattern(len, 900 + i as u64)).unwrap();
        let sha = sha256_file(&path);
        sources.push((name, path, sha));
    }
    let started = Instant::now();
    for (name, path, sha) in &sources {
        let url = format!("{base}/curl/{name}");
        let out = curl_ftps(
            tls_args,
            &["--ftp-create-dirs", "-T", path.to_str().unwrap(), &url],
        );
        let on_disk = sim.disk_path(&format!("/curl/{name}"));
        if !out.status.success() {
            failures.push(format!(
                "upload {name}: curl {}: {}",
                out.status,
                curl_error(&out)
            ));
        } else if !String::from_utf8_lossy(&out.stderr).contains(want_tls) {
            failures.push(format!("upload {name}: curl did not report {want_tls:?}"));
        } else if sha256_file_or_none(&on_disk) != *sha {
            failures.push(format!(
                "upload {name}: curl succeeded but the server's copy differs ({} of {} bytes)",
                std::fs::metadata(&on_disk).map(|m| m.len()).unwrap_or(0),
                std::fs::metadata(path).unwrap().len()
            ));
        }
    }
    let uploads_took = started.elapsed();
    // Downloads of files put there directly, so they do not depend on the uploads.
    let started = Instant::now();
    let served = sim.disk_path("/served");
    std::fs::create_dir_all(&served).unwrap();
    for (name, path, _) in &sources {
        std::fs::copy(path, served.join(name)).unwrap();
    }
    for (name, _, sha) in &sources {
        let target = work.path().join(format!("down-{name}"));
        let url = format!("{base}/served/{name}");
        let out = curl_ftps(tls_args, &["-o", target.to_str().unwrap(), &url]);
        if !out.status.success() {
            failures.push(format!(
                "download {name}: curl {}: {}",
                out.status,
                curl_error(&out)
            ));
        } else if !String::from_utf8_lossy(&out.stderr).contains(want_tls) {
            failures.push(format!("download {name}: curl did not report {want_tls:?}"));
        } else if sha256_file_or_none(&target) != *sha {
            failures.push(format!("download {name}: the downloaded copy differs"));
        }
    }
    let downloads_took = started.elapsed();
    assert!(
        failures.is_empty(),
        "curl FTPS {tls_args:?}: {} of {} transfers failed (uploads {uploads_took:?}, downloads \
         {downloads_took:?}):\n  {}\n\n--- gateway log (last 40 lines) ---\n{}",
        failures.len(),
        2 * rounds,
        failures.join("\n  "),
        tail(&gw.stderr_log(), 40)
    );
}

fn curl_ftps(tls_args: &[&str], args: &[&str]) -> Output {
    let mut cmd = Command::new(common::require_tool("curl", "curl"));
    cmd.args(["-sS", "-v", "--max-time", "60", "--ssl-reqd", "-k"])
        .args(tls_args)
        .args(args);
    run_with_input(&mut cmd, None, Duration::from_secs(90), "curl")
}

/// curl's error line and the last FTP replies it saw.
fn curl_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let interesting: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("curl:") || l.starts_with("< "))
        .collect();
    interesting[interesting.len().saturating_sub(4)..].join(" | ")
}

#[test]
fn curl_ftps_uploads_and_downloads_over_tls_1_2() {
    curl_ftps_rounds(&["--tls-max", "1.2"], "SSL connection using TLSv1.2", 20);
}

#[test]
fn curl_ftps_uploads_and_downloads_over_tls_1_3() {
    curl_ftps_rounds(&["--tlsv1.3"], "SSL connection using TLSv1.3", 20);
}

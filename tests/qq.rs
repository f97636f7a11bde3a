//! The real `qq` CLI (PyPI `qumulo-api` 7.10.x) against `qftpd sim`.
//!
//! `qq` is an independent client written by Qumulo, so these tests check the simulator's wire
//! format (paths as single percent-encoded segments, chunked uploads, paging, error bodies)
//! without sharing any code with it. Each test starts its own simulator and checks both what `qq`
//! prints and what lands in the simulator's data directory.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::pattern;
use common::{Qq, Sim};
use serde_json::Value;

/// A string field of a JSON object, with a useful panic message.
fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key:?} is not a string in {v:#}"))
}

fn get_attr(qq: &Qq, path: &str) -> Value {
    qq.ok_json(&["fs_file_get_attr", "--path", path])
}

/// The entry names of every page printed by `fs_read_dir`, in order, plus the page count.
fn read_dir_names(qq: &Qq, args: &[&str]) -> (Vec<String>, usize) {
    let mut full = vec!["fs_read_dir"];
    full.extend_from_slice(args);
    let pages = qq.ok_json_all(&full);
    assert!(!pages.is_empty(), "fs_read_dir {args:?} printed no page");
    let last = pages.last().unwrap();
    assert_eq!(
        last["paging"]["next"], "",
        "the last page must end paging with \"\": {last:#}"
    );
    let names = pages
        .iter()
        .flat_map(|p| {
            p["files"]
                .as_array()
                .unwrap_or_else(|| panic!("page without files[]: {p:#}"))
                .iter()
                .map(|f| s(f, "name").to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    (names, pages.len())
}

/// Asserts `t` looks like `2024-05-17T13:23:40.283585722Z`.
fn assert_rfc3339_nanos(t: &str) {
    let b = t.as_bytes();
    let ok = b.len() == 30
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b[19] == b'.'
        && b[29] == b'Z'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..29]
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit));
    assert!(ok, "{t:?} is not RFC 3339 UTC with a nanosecond fraction");
}

/// Asserts `mode` is 4 octal digits and returns its value.
fn parse_mode(mode: &str) -> u32 {
    assert!(
        mode.len() == 4 && mode.bytes().all(|c| (b'0'..=b'7').contains(&c)),
        "mode {mode:?} is not 4 octal digits"
    );
    u32::from_str_radix(mode, 8).unwrap()
}

fn disk_mode(sim: &Sim, path: &str) -> u32 {
    std::fs::metadata(sim.disk_path(path))
        .unwrap_or_else(|e| panic!("stat {path} on disk: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

/// Runs `qq <args>`, asserts it fails with `Error <status>: <class>` on stderr.
fn assert_qq_error(qq: &Qq, args: &[&str], status: u16, class: &str) {
    let stderr = qq.err(args);
    assert!(
        stderr.contains(&format!("Error {status}")) && stderr.contains(class),
        "qq {args:?}: expected `Error {status}` and {class} in stderr, got:\n{stderr}"
    );
}

#[test]
fn qq_login_creates_credentials_file() {
    let sim = Sim::start_default();
    let qq = sim.qq();
    assert!(!qq.cred_file.exists());
    qq.login("alice", "alicepw");
    let creds: Value = serde_json::from_slice(&std::fs::read(&qq.cred_file).unwrap()).unwrap();
    assert!(
        !s(&creds, "bearer_token").is_empty(),
        "credentials file: {creds:#}"
    );
}

#[test]
fn qq_version_reports_revision_id() {
    let sim = Sim::start_default();
    // No login: /v1/version needs no token.
    let v = sim.qq().ok_json(&["version"]);
    assert!(!s(&v, "revision_id").is_empty(), "{v:#}");
}

#[test]
fn qq_who_am_i_reports_logged_in_user() {
    let sim = Sim::start_default();
    for (user, pw, id) in [("admin", "adminpw", "500"), ("alice", "alicepw", "501")] {
        let me = sim.qq_as(user, pw).ok_json(&["who_am_i"]);
        assert_eq!(s(&me, "name"), user, "{me:#}");
        assert_eq!(s(&me, "id"), id, "{me:#}");
        assert!(
            me.get("home_directory").is_some(),
            "no home_directory: {me:#}"
        );
    }
}

#[test]
fn qq_login_with_wrong_password_fails_with_401() {
    let sim = Sim::start_default();
    let qq = sim.qq();
    let stderr = qq.err(&["login", "-u", "alice", "-p", "wrong"]);
    assert!(stderr.contains("401"), "stderr:\n{stderr}");
    assert!(!qq.cred_file.exists());
    let stderr = qq.err(&["login", "-u", "nobody", "-p", "alicepw"]);
    assert!(stderr.contains("401"), "stderr:\n{stderr}");
}

#[test]
fn qq_read_dir_pages_return_every_entry_once() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    let dir = qq.ok_json(&["fs_create_dir", "--path", "/", "--name", "many"]);
    let dir_id = s(&dir, "id").to_owned();
    let mut expected = BTreeSet::new();
    for i in 0..4 {
        let name = format!("api{i}.txt");
        qq.ok(&["fs_create_file", "--path", "/many", "--name", &name]);
        expected.insert(name);
    }
    for i in 0..2 {
        let name = format!("disk{i}.txt");
        std::fs::write(sim.disk_path("/many").join(&name), b"seeded").unwrap();
        expected.insert(name);
    }
    std::fs::create_dir(sim.disk_path("/many/disksub")).unwrap();
    expected.insert("disksub".to_owned());

    let check = |args: &[&str], min_pages: usize| {
        let (names, pages) = read_dir_names(&qq, args);
        let set: BTreeSet<String> = names.iter().cloned().collect();
        assert_eq!(set.len(), names.len(), "duplicates in {names:?} ({args:?})");
        assert_eq!(set, expected, "{args:?}");
        assert!(pages >= min_pages, "{args:?}: {pages} page(s)");
    };
    check(&["--path", "/many"], 1);
    check(&["--path", "/many/"], 1);
    check(&["--id", &dir_id], 1);
    check(&["--path", "/many", "--page-size", "2"], 4);
    check(&["--id", &dir_id, "--page-size", "2"], 4);
    check(&["--path", "/many", "--page-size", "1"], 7);

    // With page size 2 every page holds at most 2 entries.
    for page in qq.ok_json_all(&["fs_read_dir", "--path", "/many", "--page-size", "2"]) {
        assert!(page["files"].as_array().unwrap().len() <= 2, "{page:#}");
    }

    let root = qq.ok_json(&["fs_read_dir", "--path", "/"]);
    assert_eq!(s(&root, "path"), "/", "{root:#}");
    assert_eq!(s(&root, "id"), "2", "{root:#}");
    for args in [["--path", "/"], ["--id", "2"]] {
        let (names, _) = read_dir_names(&qq, &args);
        assert_eq!(names, ["many"], "{args:?}");
    }
}

#[test]
fn qq_walk_tree_visits_every_path() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    qq.ok(&["fs_create_dir", "--path", "/", "--name", "t"]);
    qq.ok(&["fs_create_dir", "--path", "/t", "--name", "a"]);
    qq.ok(&["fs_create_dir", "--path", "/t/a", "--name", "b"]);
    qq.ok(&["fs_create_file", "--path", "/t", "--name", "f1"]);
    std::fs::write(sim.disk_path("/t/a/x.txt"), b"xx").unwrap();
    std::fs::create_dir(sim.disk_path("/t/a/b/c")).unwrap();
    std::fs::write(sim.disk_path("/t/a/b/c/deep.txt"), b"deep!").unwrap();

    let tree = qq.ok_json(&["fs_walk_tree", "--path", "/"]);
    let nodes = tree["tree_nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no tree_nodes: {tree:#}"));
    let mut seen = BTreeMap::new();
    for n in nodes {
        *seen.entry(s(n, "path").to_owned()).or_insert(0) += 1;
    }
    let expected = [
        "/",
        "/t/",
        "/t/a/",
        "/t/a/b/",
        "/t/a/b/c/",
        "/t/f1",
        "/t/a/x.txt",
        "/t/a/b/c/deep.txt",
    ];
    let expected: BTreeMap<String, i32> = expected.iter().map(|p| (p.to_string(), 1)).collect();
    assert_eq!(seen, expected);
    let deep = nodes
        .iter()
        .find(|n| n["path"] == "/t/a/b/c/deep.txt")
        .unwrap();
    assert_eq!(s(deep, "size"), "5");
    assert_eq!(s(deep, "type"), "FS_FILE_TYPE_FILE");

    let sub = qq.ok_json(&["fs_walk_tree", "--path", "/t/a"]);
    let paths: BTreeSet<&str> = sub["tree_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| s(n, "path"))
        .collect();
    let want: BTreeSet<&str> = [
        "/t/a/",
        "/t/a/b/",
        "/t/a/b/c/",
        "/t/a/x.txt",
        "/t/a/b/c/deep.txt",
    ]
    .into();
    assert_eq!(paths, want);
}

#[test]
fn qq_get_attr_reports_qumulo_shapes() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("alice", "alicepw");
    let admin = sim.qq_as("admin", "adminpw");
    admin.ok(&["fs_create_dir", "--path", "/", "--name", "home"]);
    admin.ok(&["fs_file_set_attr", "--path", "/home", "--mode", "0777"]);
    qq.ok(&["fs_create_dir", "--path", "/home", "--name", "d"]);
    qq.write("/home/d/f.txt", b"hello world", &["--create"]);

    let f = get_attr(&qq, "/home/d/f.txt");
    assert_eq!(s(&f, "type"), "FS_FILE_TYPE_FILE", "{f:#}");
    assert_eq!(s(&f, "path"), "/home/d/f.txt");
    assert_eq!(s(&f, "name"), "f.txt");
    assert_eq!(s(&f, "size"), "11");
    let disk_len = std::fs::metadata(sim.disk_path("/home/d/f.txt"))
        .unwrap()
        .len();
    assert_eq!(disk_len, 11);
    assert_eq!(parse_mode(s(&f, "mode")), disk_mode(&sim, "/home/d/f.txt"));
    assert_eq!(s(&f, "owner"), "501");
    assert_eq!(f["owner_details"]["id_type"], "LOCAL_USER", "{f:#}");
    assert_eq!(f["owner_details"]["id_value"], "alice", "{f:#}");
    assert_eq!(s(&f, "group"), "513");
    assert_eq!(f["group_details"]["id_type"], "LOCAL_GROUP", "{f:#}");
    assert_eq!(f["group_details"]["id_value"], "Users", "{f:#}");
    assert!(f["num_links"].is_number(), "{f:#}");
    for key in [
        "access_time",
        "modification_time",
        "change_time",
        "creation_time",
    ] {
        assert_rfc3339_nanos(s(&f, key));
    }
    let id = s(&f, "id").to_owned();
    assert!(id.bytes().all(|c| c.is_ascii_digit()), "id {id:?}");
    assert_eq!(s(&f, "file_number"), id);

    let by_id = qq.ok_json(&["fs_file_get_attr", "--id", &id]);
    assert_eq!(s(&by_id, "path"), "/home/d/f.txt");
    assert_eq!(s(&by_id, "size"), "11");

    for path in ["/home/d", "/home/d/"] {
        let d = get_attr(&qq, path);
        assert_eq!(s(&d, "type"), "FS_FILE_TYPE_DIRECTORY", "{d:#}");
        assert_eq!(s(&d, "path"), "/home/d/", "{d:#}");
        assert_eq!(s(&d, "name"), "d", "{d:#}");
        assert_eq!(d["child_count"], 1, "{d:#}");
        assert_eq!(d["owner_details"]["id_value"], "alice", "{d:#}");
        assert_eq!(parse_mode(s(&d, "mode")), disk_mode(&sim, "/home/d"));
        assert_rfc3339_nanos(s(&d, "modification_time"));
    }

    let root = qq.ok_json(&["fs_file_get_attr", "--id", "2"]);
    assert_eq!(s(&root, "path"), "/", "{root:#}");
    assert_eq!(s(&root, "type"), "FS_FILE_TYPE_DIRECTORY");
    assert_eq!(s(&get_attr(&qq, "/"), "id"), "2");
}

#[test]
fn qq_set_attr_changes_mode_times_and_size() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    qq.write("/f.txt", b"0123456789", &["--create"]);

    let out = qq.ok_json(&["fs_file_set_attr", "--path", "/f.txt", "--mode", "0600"]);
    assert_eq!(s(&out, "mode"), "0600", "{out:#}");
    assert_eq!(s(&get_attr(&qq, "/f.txt"), "mode"), "0600");
    assert_eq!(disk_mode(&sim, "/f.txt"), 0o600);

    let mtime = "2020-01-02T03:04:05.123456789Z";
    qq.ok(&[
        "fs_file_set_attr",
        "--path",
        "/f.txt",
        "--modification-time",
        mtime,
    ]);
    assert_eq!(s(&get_attr(&qq, "/f.txt"), "modification_time"), mtime);
    let disk_mtime = std::fs::metadata(sim.disk_path("/f.txt"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap();
    assert_eq!(disk_mtime, Duration::new(1_577_934_245, 123_456_789));

    qq.ok(&["fs_file_set_attr", "--path", "/f.txt", "--size", "3"]);
    assert_eq!(s(&get_attr(&qq, "/f.txt"), "size"), "3");
    assert_eq!(std::fs::read(sim.disk_path("/f.txt")).unwrap(), b"012");
    qq.ok(&["fs_file_set_attr", "--path", "/f.txt", "--size", "6"]);
    assert_eq!(
        std::fs::read(sim.disk_path("/f.txt")).unwrap(),
        b"012\0\0\0"
    );

    let id = s(&get_attr(&qq, "/f.txt"), "id").to_owned();
    qq.ok(&["fs_file_set_attr", "--id", &id, "--mode", "0640"]);
    assert_eq!(disk_mode(&sim, "/f.txt"), 0o640);
}

#[test]
fn qq_create_dir_and_file_and_conflicts() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    let d = qq.ok_json(&["fs_create_dir", "--path", "/", "--name", "d"]);
    assert_eq!(s(&d, "type"), "FS_FILE_TYPE_DIRECTORY", "{d:#}");
    assert_eq!(s(&d, "path"), "/d/", "{d:#}");
    assert!(sim.disk_path("/d").is_dir());

    let f = qq.ok_json(&["fs_create_file", "--path", "/d", "--name", "f"]);
    assert_eq!(s(&f, "type"), "FS_FILE_TYPE_FILE", "{f:#}");
    assert_eq!(s(&f, "path"), "/d/f", "{f:#}");
    assert_eq!(s(&f, "size"), "0", "{f:#}");
    assert_eq!(std::fs::read(sim.disk_path("/d/f")).unwrap(), b"");

    let dir_id = s(&d, "id").to_owned();
    qq.ok(&["fs_create_file", "--id", &dir_id, "--name", "g"]);
    assert!(sim.disk_path("/d/g").is_file());

    for args in [
        ["fs_create_file", "--path", "/d", "--name", "f"],
        ["fs_create_dir", "--path", "/d", "--name", "f"],
        ["fs_create_dir", "--path", "/", "--name", "d"],
        ["fs_create_file", "--path", "/", "--name", "d"],
    ] {
        assert_qq_error(&qq, &args, 409, "fs_entry_exists_error");
    }
    std::fs::write(sim.disk_path("/d/f"), b"keep").unwrap();
    let src = qq.scratch_file("x", b"new");
    let args = [
        "fs_write",
        "--create",
        "--path",
        "/d/f",
        "--file",
        src.to_str().unwrap(),
    ];
    assert_qq_error(&qq, &args, 409, "fs_entry_exists_error");
    assert_eq!(std::fs::read(sim.disk_path("/d/f")).unwrap(), b"keep");
}

#[test]
fn qq_write_replaces_creates_and_patches_at_offset() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    let disk = |p: &str| std::fs::read(sim.disk_path(p)).unwrap();

    let out = qq.write("/w.txt", b"hello world", &["--create"]);
    assert_eq!(s(&out, "size"), "11", "{out:#}");
    assert_eq!(disk("/w.txt"), b"hello world");

    let out = qq.write("/w.txt", b"HI", &[]);
    assert_eq!(s(&out, "size"), "2", "{out:#}");
    assert_eq!(disk("/w.txt"), b"HI");

    qq.write("/w.txt", b"EYYO", &["--offset", "1"]);
    assert_eq!(disk("/w.txt"), b"HEYYO");

    // Past EOF: the gap is zero-filled.
    let out = qq.write("/w.txt", b"Z", &["--offset", "8"]);
    assert_eq!(s(&out, "size"), "9", "{out:#}");
    assert_eq!(disk("/w.txt"), b"HEYYO\0\0\0Z");

    // Several 128 KiB chunks of the chunked upload, with a ragged tail.
    let big = pattern(3 * 131_072 + 12_345, 7);
    qq.write("/w.txt", &big, &[]);
    assert_eq!(disk("/w.txt"), big);
    let patch = pattern(200_000, 8);
    qq.write("/w.txt", &patch, &["--offset", "100000"]);
    let mut expected = big.clone();
    expected[100_000..300_000].copy_from_slice(&patch);
    assert_eq!(disk("/w.txt"), expected);

    // --stdin, and an empty upload.
    let out = qq.run_with_stdin(&["fs_write", "--path", "/w.txt", "--stdin"], b"from stdin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(disk("/w.txt"), b"from stdin");
    let out = qq.write("/empty", b"", &["--create"]);
    assert_eq!(s(&out, "size"), "0", "{out:#}");
    assert_eq!(disk("/empty"), b"");
}

#[test]
fn qq_read_returns_exact_bytes_and_ranges() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    let data = pattern(300_000, 3);
    std::fs::write(sim.disk_path("/r.bin"), &data).unwrap();

    assert_eq!(qq.read("/r.bin", &[]), data);
    assert_eq!(
        qq.read("/r.bin", &["--offset", "1000", "--length", "5000"]),
        &data[1000..6000]
    );
    assert_eq!(qq.read("/r.bin", &["--offset", "299990"]), &data[299_990..]);
    assert_eq!(
        qq.read("/r.bin", &["--offset", "299990", "--length", "100"]),
        &data[299_990..]
    );
    assert_eq!(qq.read("/r.bin", &["--length", "7"]), &data[..7]);
    assert_eq!(qq.read("/r.bin", &["--offset", "400000"]), b"");

    let out = qq.dir.path().join("out.bin");
    qq.ok(&[
        "fs_read",
        "--path",
        "/r.bin",
        "--file",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), data);

    let id = s(&get_attr(&qq, "/r.bin"), "id").to_owned();
    assert_eq!(
        qq.ok_bytes(&["fs_read", "--id", &id, "--stdout", "--length", "10"]),
        &data[..10]
    );
    std::fs::write(sim.disk_path("/empty"), b"").unwrap();
    assert_eq!(qq.read("/empty", &[]), b"");
}

#[test]
fn qq_rename_respects_clobber() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    let disk = |p: &str| std::fs::read(sim.disk_path(p)).unwrap();
    qq.write("/src.txt", b"source", &["--create"]);
    qq.ok(&["fs_create_dir", "--path", "/", "--name", "dst"]);
    qq.write("/dst/taken.txt", b"old", &["--create"]);

    let rename = ["fs_rename", "--path", "/dst", "--source", "/src.txt"];
    assert_qq_error(
        &qq,
        &[&rename[..], &["--name", "taken.txt"]].concat(),
        409,
        "fs_entry_exists_error",
    );
    assert_eq!(disk("/dst/taken.txt"), b"old");
    assert_eq!(disk("/src.txt"), b"source");

    let out = qq.ok_json(&[&rename[..], &["--name", "taken.txt", "--clobber"]].concat());
    assert_eq!(s(&out, "path"), "/dst/taken.txt", "{out:#}");
    assert_eq!(disk("/dst/taken.txt"), b"source");
    assert!(!sim.disk_path("/src.txt").exists());

    // Plain move to a new name, and a directory rename.
    qq.ok(&[
        "fs_rename",
        "--path",
        "/",
        "--source",
        "/dst/taken.txt",
        "--name",
        "moved.txt",
    ]);
    assert_eq!(disk("/moved.txt"), b"source");
    qq.ok(&[
        "fs_rename",
        "--id",
        "2",
        "--source",
        "/dst",
        "--name",
        "dst2",
    ]);
    assert!(sim.disk_path("/dst2").is_dir());
    assert!(!sim.disk_path("/dst").exists());

    assert_qq_error(
        &qq,
        &[
            "fs_rename",
            "--path",
            "/",
            "--source",
            "/gone",
            "--name",
            "x",
        ],
        404,
        "fs_no_such_entry_error",
    );
}

#[test]
fn qq_delete_and_unlink() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    qq.ok(&["fs_create_dir", "--path", "/", "--name", "d"]);
    qq.ok(&["fs_create_dir", "--path", "/", "--name", "empty"]);
    qq.write("/d/f.txt", b"x", &["--create"]);
    qq.write("/d/g.txt", b"y", &["--create"]);
    qq.write("/h.txt", b"z", &["--create"]);

    assert_qq_error(
        &qq,
        &["fs_delete", "--path", "/d"],
        409,
        "fs_directory_not_empty_error",
    );
    assert!(sim.disk_path("/d/f.txt").exists());

    qq.ok(&["fs_delete", "--path", "/d/f.txt"]);
    assert!(!sim.disk_path("/d/f.txt").exists());
    qq.ok(&["fs_unlink", "--path", "/d", "--name", "g.txt"]);
    assert!(!sim.disk_path("/d/g.txt").exists());
    qq.ok(&["fs_delete", "--path", "/d"]);
    assert!(!sim.disk_path("/d").exists());
    qq.ok(&["fs_delete", "--path", "/empty/"]);
    assert!(!sim.disk_path("/empty").exists());

    let id = s(&get_attr(&qq, "/h.txt"), "id").to_owned();
    qq.ok(&["fs_delete", "--id", &id]);
    assert!(!sim.disk_path("/h.txt").exists());

    assert_qq_error(
        &qq,
        &["fs_delete", "--path", "/h.txt"],
        404,
        "fs_no_such_entry_error",
    );
    assert_qq_error(
        &qq,
        &["fs_unlink", "--path", "/", "--name", "h.txt"],
        404,
        "fs_no_such_entry_error",
    );
}

#[test]
fn qq_missing_path_is_404() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    qq.ok(&["fs_create_dir", "--path", "/", "--name", "d"]);
    let src = qq.scratch_file("x", b"x");
    let src = src.to_str().unwrap();
    for args in [
        &["fs_file_get_attr", "--path", "/nope"][..],
        &["fs_file_get_attr", "--path", "/d/nope.txt"],
        &["fs_file_get_attr", "--id", "987654321"],
        &["fs_read", "--path", "/d/nope.txt", "--stdout"],
        &["fs_read_dir", "--path", "/nope"],
        &["fs_write", "--path", "/d/nope.txt", "--file", src],
        &["fs_file_set_attr", "--path", "/nope", "--mode", "0644"],
        &["fs_create_file", "--path", "/nope", "--name", "x"],
    ] {
        assert_qq_error(&qq, args, 404, "fs_no_such_entry_error");
    }
}

#[test]
fn qq_hostile_names_round_trip() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    let dir = "dir %25 & # ? + ü";
    let name = "a b%c&d#e?f é ü 中.txt";
    let dir_path = format!("/{dir}");
    let file_path = format!("/{dir}/{name}");
    let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();

    let d = qq.ok_json(&["fs_create_dir", "--path", "/", "--name", dir]);
    assert_eq!(s(&d, "name"), dir, "{d:#}");
    assert_eq!(s(&d, "path"), format!("{dir_path}/"), "{d:#}");
    let f = qq.ok_json(&["fs_create_file", "--path", &dir_path, "--name", name]);
    assert_eq!(s(&f, "name"), name, "{f:#}");
    assert_eq!(s(&f, "path"), file_path, "{f:#}");
    qq.write(&file_path, &data, &[]);

    assert_eq!(
        std::fs::read(sim.data_dir.path().join(dir).join(name)).unwrap(),
        data
    );
    assert_eq!(qq.read(&file_path, &[]), data);
    assert_eq!(
        qq.read(&file_path, &["--offset", "10", "--length", "3"]),
        &data[10..13]
    );
    let a = get_attr(&qq, &file_path);
    assert_eq!(s(&a, "name"), name);
    assert_eq!(s(&a, "path"), file_path);
    assert_eq!(s(&a, "size"), "5000");
    assert_eq!(read_dir_names(&qq, &["--path", &dir_path]).0, [name]);
    assert_eq!(read_dir_names(&qq, &["--path", "/"]).0, [dir]);

    // A hostile name seeded on disk, then renamed and created through --create.
    let seeded = "seed 50% #1 ?&=;ß.bin";
    std::fs::write(sim.data_dir.path().join(dir).join(seeded), b"on disk").unwrap();
    assert_eq!(qq.read(&format!("{dir_path}/{seeded}"), &[]), b"on disk");
    let renamed = "ré named %2F & ?.bin";
    qq.ok(&[
        "fs_rename",
        "--path",
        &dir_path,
        "--source",
        &format!("{dir_path}/{seeded}"),
        "--name",
        renamed,
    ]);
    assert_eq!(
        std::fs::read(sim.data_dir.path().join(dir).join(renamed)).unwrap(),
        b"on disk"
    );
    let created = format!("{dir_path}/new #?% ü.txt");
    qq.write(&created, b"via create", &["--create"]);
    assert_eq!(
        std::fs::read(sim.data_dir.path().join(dir).join("new #?% ü.txt")).unwrap(),
        b"via create"
    );

    let names: BTreeSet<String> = read_dir_names(&qq, &["--path", &dir_path])
        .0
        .into_iter()
        .collect();
    let want: BTreeSet<String> = [name, renamed, "new #?% ü.txt"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, want);
    let tree = qq.ok_json(&["fs_walk_tree", "--path", "/"]);
    let paths: BTreeSet<&str> = tree["tree_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| s(n, "path"))
        .collect();
    assert!(paths.contains(file_path.as_str()), "{paths:?}");

    qq.ok(&["fs_unlink", "--path", &dir_path, "--name", name]);
    assert!(!sim.data_dir.path().join(dir).join(name).exists());
}

#[test]
fn qq_permissions_between_users() {
    let sim = Sim::start_default();
    let admin = sim.qq_as("admin", "adminpw");
    let alice = sim.qq_as("alice", "alicepw");
    let bob = sim.qq_as("bob", "bobpw");
    admin.ok(&["fs_create_dir", "--path", "/", "--name", "shared"]);
    admin.ok(&["fs_file_set_attr", "--path", "/shared", "--mode", "0777"]);

    alice.ok(&["fs_create_dir", "--path", "/shared", "--name", "alice"]);
    alice.ok(&[
        "fs_file_set_attr",
        "--path",
        "/shared/alice",
        "--mode",
        "0755",
    ]);
    alice.write("/shared/alice/secret.txt", b"secret", &["--create"]);
    let out = alice.ok_json(&[
        "fs_file_set_attr",
        "--path",
        "/shared/alice/secret.txt",
        "--mode",
        "0600",
    ]);
    assert_eq!(s(&out, "mode"), "0600");
    assert_eq!(out["owner_details"]["id_value"], "alice", "{out:#}");
    alice.write("/shared/alice/public.txt", b"public", &["--create"]);
    alice.ok(&[
        "fs_file_set_attr",
        "--path",
        "/shared/alice/public.txt",
        "--mode",
        "0644",
    ]);

    let denied = |qq: &Qq, args: &[&str]| {
        assert_qq_error(qq, args, 403, "fs_access_denied_error");
    };
    denied(
        &bob,
        &["fs_read", "--path", "/shared/alice/secret.txt", "--stdout"],
    );
    assert_eq!(bob.read("/shared/alice/public.txt", &[]), b"public");
    denied(&bob, &["fs_delete", "--path", "/shared/alice/public.txt"]);
    denied(
        &bob,
        &[
            "fs_unlink",
            "--path",
            "/shared/alice",
            "--name",
            "public.txt",
        ],
    );
    denied(
        &bob,
        &["fs_create_file", "--path", "/shared/alice", "--name", "x"],
    );
    let src = bob.scratch_file("x", b"bob was here");
    denied(
        &bob,
        &[
            "fs_write",
            "--path",
            "/shared/alice/public.txt",
            "--file",
            src.to_str().unwrap(),
        ],
    );
    assert!(sim.disk_path("/shared/alice/public.txt").exists());
    assert!(!sim.disk_path("/shared/alice/x").exists());
    assert_eq!(
        std::fs::read(sim.disk_path("/shared/alice/public.txt")).unwrap(),
        b"public"
    );

    // Bob may still work in the 0777 parent, and the owner and the admin are not restricted.
    bob.write("/shared/bob.txt", b"bob", &["--create"]);
    assert_eq!(alice.read("/shared/alice/secret.txt", &[]), b"secret");
    assert_eq!(admin.read("/shared/alice/secret.txt", &[]), b"secret");
    alice.ok(&["fs_delete", "--path", "/shared/alice/public.txt"]);
    assert!(!sim.disk_path("/shared/alice/public.txt").exists());
}

/// A rejected upload must still get its JSON error. The simulator has to consume the request
/// body before it answers and closes; otherwise qq, still sending chunks, sees the connection
/// reset ("EOF occurred in violation of protocol") instead of the 404 or 403.
#[test]
fn qq_rejected_upload_reports_the_error_not_a_reset() {
    let sim = Sim::start_default();
    let admin = sim.qq_as("admin", "adminpw");
    let bob = sim.qq_as("bob", "bobpw");
    admin.write("/admin.txt", b"admin", &["--create"]);
    admin.ok(&["fs_file_set_attr", "--path", "/admin.txt", "--mode", "0644"]);
    let src = bob.scratch_file("big", &pattern(4 << 20, 9));
    let src = src.to_str().unwrap();
    for _ in 0..3 {
        let missing = ["fs_write", "--path", "/nope.bin", "--file", src];
        assert_qq_error(&bob, &missing, 404, "fs_no_such_entry_error");
        let replace = ["fs_write", "--path", "/admin.txt", "--file", src];
        assert_qq_error(&bob, &replace, 403, "fs_access_denied_error");
        let patch = [
            "fs_write",
            "--path",
            "/admin.txt",
            "--offset",
            "5",
            "--file",
            src,
        ];
        assert_qq_error(&bob, &patch, 403, "fs_access_denied_error");
    }
    assert_eq!(
        std::fs::read(sim.disk_path("/admin.txt")).unwrap(),
        b"admin"
    );
}

#[test]
fn qq_cluster_conf_is_admin_only() {
    let sim = Sim::start_default();
    let stderr = sim.qq_as("alice", "alicepw").err(&["cluster_conf"]);
    assert!(stderr.contains("Error 403"), "stderr:\n{stderr}");
    let conf = sim.qq_as("admin", "adminpw").ok_json(&["cluster_conf"]);
    assert!(!s(&conf, "cluster_name").is_empty(), "{conf:#}");
}

#[test]
fn qq_expired_token_gives_401_and_login_again_works() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("alice", "alicepw");
    qq.ok(&["fs_read_dir", "--path", "/"]);
    sim.expire_tokens();
    let stderr = qq.err(&["fs_read_dir", "--path", "/"]);
    assert!(stderr.contains("Error 401"), "stderr:\n{stderr}");
    qq.login("alice", "alicepw");
    qq.ok(&["fs_read_dir", "--path", "/"]);
    assert_eq!(s(&qq.ok_json(&["who_am_i"]), "name"), "alice");
}

const BIG_BLOCK: usize = 1 << 20;
const BIG_BLOCKS: u64 = 2048;

/// The 2 GiB test stream: 1 MiB blocks, each a distinct rotation of one random block, stamped
/// with its index, so a lost, repeated or reordered block cannot go unnoticed.
struct BigStream {
    base: Vec<u8>,
    block: Vec<u8>,
    /// Index of the block currently in `block`.
    current: Option<u64>,
}

impl BigStream {
    fn new() -> BigStream {
        BigStream {
            base: pattern(BIG_BLOCK, 42),
            block: vec![0u8; BIG_BLOCK],
            current: None,
        }
    }

    fn block(&mut self, i: u64) -> &[u8] {
        if self.current == Some(i) {
            return &self.block;
        }
        self.current = Some(i);
        let rot = (i as usize * 4099) % BIG_BLOCK;
        self.block[..BIG_BLOCK - rot].copy_from_slice(&self.base[rot..]);
        self.block[BIG_BLOCK - rot..].copy_from_slice(&self.base[..rot]);
        self.block[..8].copy_from_slice(&i.to_le_bytes());
        &self.block
    }
}

/// Compares a byte stream, piece by piece, with [`BigStream`] without holding it in memory.
struct BigVerifier {
    stream: BigStream,
    pos: u64,
    first_mismatch: Option<u64>,
}

impl BigVerifier {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let idx = self.pos / BIG_BLOCK as u64;
            let off = (self.pos % BIG_BLOCK as u64) as usize;
            let n = data.len().min(BIG_BLOCK - off);
            if self.first_mismatch.is_none() {
                let expected: &[u8] = if idx < BIG_BLOCKS {
                    &self.stream.block(idx)[off..off + n]
                } else {
                    &[]
                };
                if expected != &data[..n] {
                    let at = expected
                        .iter()
                        .zip(&data[..n])
                        .position(|(a, b)| a != b)
                        .unwrap_or(expected.len());
                    self.first_mismatch = Some(self.pos + at as u64);
                }
            }
            self.pos += n as u64;
            data = &data[n..];
        }
    }
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

/// Uploads 2 GiB with `qq fs_write --create`, streams it back through `qq fs_read --stdout`, and
/// checks every byte and the simulator's peak RSS.
///
/// The data is checked by exact comparison with the regenerated stream rather than by SHA-256:
/// `sha2` is unoptimised in the test profile (about 30 MiB/s), which would cap the read figure.
#[test]
fn qq_two_gib_write_read_keeps_sim_rss_low() {
    let sim = Sim::start_default();
    let qq = sim.qq_as("admin", "adminpw");
    let total = BIG_BLOCKS * BIG_BLOCK as u64;
    let src_dir = tempfile::Builder::new()
        .prefix("qftpd-big-")
        .tempdir()
        .unwrap();
    let src = src_dir.path().join("big.src");
    {
        let mut file = std::fs::File::create(&src).unwrap();
        let mut stream = BigStream::new();
        for i in 0..BIG_BLOCKS {
            file.write_all(stream.block(i)).unwrap();
        }
    }

    let started = Instant::now();
    qq.ok(&[
        "fs_write",
        "--create",
        "--path",
        "/big.bin",
        "--file",
        src.to_str().unwrap(),
    ]);
    let up = started.elapsed();
    std::fs::remove_file(&src).unwrap();
    assert_eq!(
        std::fs::metadata(sim.disk_path("/big.bin")).unwrap().len(),
        total
    );
    assert_eq!(s(&get_attr(&qq, "/big.bin"), "size"), total.to_string());

    let started = Instant::now();
    let mut child = qq
        .command(&["fs_read", "--path", "/big.bin", "--stdout"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_drain = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut verifier = BigVerifier {
        stream: BigStream::new(),
        pos: 0,
        first_mismatch: None,
    };
    let mut buf = vec![0u8; BIG_BLOCK];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        verifier.feed(&buf[..n]);
    }
    let status = child.wait().unwrap();
    let down = started.elapsed();
    let stderr = stderr_drain.join().unwrap();
    assert!(status.success(), "qq fs_read failed: {stderr}");
    assert_eq!(verifier.pos, total, "bytes read back");
    assert_eq!(
        verifier.first_mismatch, None,
        "first offset where the data read back differs from the source"
    );

    let peak_kib = sim.peak_rss_kib();
    println!(
        "2 GiB via qq: write {:.1} MiB/s ({:.1} s), read {:.1} MiB/s ({:.1} s), \
         simulator peak RSS {:.1} MiB",
        mib_per_s(total, up),
        up.as_secs_f64(),
        mib_per_s(total, down),
        down.as_secs_f64(),
        peak_kib as f64 / 1024.0
    );
    assert!(
        peak_kib < 100 * 1024,
        "simulator peak RSS {peak_kib} KiB is not under 100 MiB"
    );
}

/// Faults switched on by flags at start and switched at run time through the control
/// endpoint, as qq sees them.
#[test]
fn qq_sees_faults_from_flags_and_the_control_endpoint() {
    let users = [("admin", "adminpw")];
    let sim = Sim::start(&users, Some("admin"), &["--error-rate", "1"]);
    let qq = sim.qq();
    assert_qq_error(&qq, &["version"], 503, "http_service_unavailable_error");
    let faults: Value = serde_json::from_str(&sim.control("GET", "/sim/faults", None)).unwrap();
    assert_eq!(faults["error_rate"], 1.0, "{faults}");

    sim.control(
        "PATCH",
        "/sim/faults",
        Some(r#"{"error_rate": 0, "latency_ms": 400}"#),
    );
    let started = Instant::now();
    assert!(s(&qq.ok_json(&["version"]), "revision_id").starts_with("Qumulo Core"));
    assert!(started.elapsed() >= Duration::from_millis(400));

    // An outage drops every API request; the control endpoint still answers.
    sim.control(
        "PATCH",
        "/sim/faults",
        Some(r#"{"latency_ms": 0, "outage": true}"#),
    );
    let err = qq.err(&["version"]);
    assert!(!err.contains("Error 2"), "{err}");
    sim.control("PUT", "/sim/faults", Some("{}"));
    qq.ok_json(&["version"]);

    let outage = Sim::start(&users, Some("admin"), &["--outage"]);
    outage.qq().err(&["version"]);
    outage.control("PATCH", "/sim/faults", Some(r#"{"outage": false}"#));
    outage.qq().ok_json(&["version"]);

    let dropping = Sim::start(&users, Some("admin"), &["--drop-rate", "1"]);
    dropping.qq().err(&["version"]);
}

/// Asserts `qq <args>` fails because nothing accepts the connection (not with an HTTP error).
fn assert_qq_refused(qq: &Qq, args: &[&str]) {
    let stderr = qq.err(args);
    assert!(
        stderr.contains("Connection refused"),
        "qq {args:?} on port {}: expected a refused connection, got:\n{stderr}",
        qq.port
    );
}

#[test]
fn qq_nodes_share_tokens_and_files_and_a_node_goes_down_and_up() {
    let sim = Sim::start_nodes(2);
    assert_eq!(sim.urls.len(), 2);
    assert_eq!(sim.urls[0], sim.url);
    let (port0, port1) = (sim.node_port(0), sim.node_port(1));
    assert_eq!(port0, sim.port);
    assert_ne!(port0, port1);

    // Log in on node 0; the same credentials file (the same token) works on node 1.
    let qq0 = sim.qq_on(0);
    qq0.login("admin", "adminpw");
    let qq1 = qq0.sharing_credentials(&sim.host, port1);
    assert_eq!(qq1.cred_file, qq0.cred_file);
    assert_eq!(s(&qq1.ok_json(&["who_am_i"]), "name"), "admin");

    // One file system: written through node 0, read through node 1.
    let data = pattern(300_000, 11);
    qq0.write("/shared.bin", &data, &["--create"]);
    assert_eq!(qq1.read("/shared.bin", &[]), data);
    qq1.ok(&["fs_create_dir", "--path", "/", "--name", "from1"]);
    let (names, _) = read_dir_names(&qq0, &["--path", "/"]);
    assert_eq!(names, ["from1", "shared.bin"]);

    // Both nodes served API requests; the control requests are not counted.
    let before = sim.nodes();
    let requests = |v: &Value, i: usize| v["nodes"][i]["requests"].as_u64().unwrap();
    assert!(
        requests(&before, 0) >= 3 && requests(&before, 1) >= 3,
        "{before:#}"
    );
    assert_eq!(sim.nodes(), before);

    // Node 1 down, asked through node 0: refused there, node 0 unaffected.
    let down = serde_json::from_str::<Value>(&sim.control_on(0, "POST", "/sim/nodes/1/down", None))
        .unwrap();
    assert_eq!(
        (s(&down, "state"), s(&down, "url")),
        ("down", &*sim.urls[1])
    );
    assert_qq_refused(&qq1, &["fs_read", "--path", "/shared.bin", "--stdout"]);
    assert_qq_refused(&qq1, &["version"]);
    assert_eq!(qq0.read("/shared.bin", &[]), data);
    assert_eq!(sim.node_down(1)["state"], "down", "down is idempotent");
    let listed = sim.nodes();
    assert_eq!(listed["nodes"][0]["state"], "up", "{listed:#}");
    assert_eq!(listed["nodes"][1]["state"], "down", "{listed:#}");

    // Back up on the same port, with the same token still valid.
    assert_eq!(sim.node_up(1)["state"], "up");
    assert_eq!(sim.node_up(1)["state"], "up", "up is idempotent");
    assert_eq!(qq1.port, port1);
    assert_eq!(qq1.read("/shared.bin", &[]), data);
    assert!(requests(&sim.nodes(), 1) > requests(&before, 1));

    // Node 0 down too, through node 1 (the harness picks a live node).
    sim.node_down(0);
    assert_qq_refused(&qq0, &["version"]);
    assert_eq!(qq1.read("/shared.bin", &[]), data);
    sim.node_up(0);
    qq0.ok_json(&["version"]);

    // An unknown node is 404.
    let out = curl_status(&sim.urls[1], "POST", "/sim/nodes/2/down");
    assert_eq!(out, 404);
}

/// The HTTP status of `curl -X METHOD URL+PATH`.
fn curl_status(base: &str, method: &str, path: &str) -> u16 {
    let out = std::process::Command::new(common::require_tool("curl", "curl"))
        .args([
            "-sS",
            "-k",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
        ])
        .arg(format!("{base}{path}"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Starts `cmd` with stdout piped and reads `prefix` bytes of it, then stops reading: the
/// client blocks on its stdout, and the simulator on the client's full socket.
fn start_reading(cmd: &mut std::process::Command, prefix: u64) -> std::process::Child {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the downloading client");
    let stdout = child.stdout.as_mut().unwrap();
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    while got < prefix {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "the download stopped after {got} bytes");
        got += n as u64;
    }
    child
}

/// Reads the rest of the child's stdout; returns its exit status, the bytes read in all
/// (including `prefix`) and its stderr.
fn finish_reading(
    mut child: std::process::Child,
    prefix: u64,
) -> (std::process::ExitStatus, u64, String) {
    let mut rest = std::io::sink();
    let n = std::io::copy(child.stdout.as_mut().unwrap(), &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status, prefix + n, stderr)
}

#[test]
fn qq_download_from_a_node_taken_down_is_cut_mid_body() {
    const SIZE: u64 = 1 << 30;
    const PREFIX: u64 = 4 << 20;
    let sim = Sim::start_nodes(2);
    // Sparse, so creating it costs nothing.
    std::fs::File::create(sim.disk_path("/big.bin"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let qq0 = sim.qq_as("admin", "adminpw");
    let qq1 = qq0.sharing_credentials(&sim.host, sim.node_port(1));

    // At the wire: curl over HTTPS sees the connection reset (exit 56, "Recv failure"), not
    // a body that ends early (exit 18) nor a complete one.
    let creds: Value = serde_json::from_slice(&std::fs::read(&qq0.cred_file).unwrap()).unwrap();
    let auth = format!("Authorization: Bearer {}", s(&creds, "bearer_token"));
    let url = format!("{}/v1/files/%2Fbig.bin/data", sim.urls[1]);
    let curl = start_reading(
        std::process::Command::new(common::require_tool("curl", "curl"))
            .args(["-sS", "-k", "-H", &auth, &url]),
        PREFIX,
    );
    sim.node_down(1);
    let (status, got, stderr) = finish_reading(curl, PREFIX);
    assert_eq!(status.code(), Some(56), "curl after {got} bytes: {stderr}");
    assert!(stderr.contains("reset"), "{stderr}");
    assert!(got < SIZE);

    // qq sees the cut as a short read: Python's ssl reports the reset as an EOF without
    // close_notify, which http.client takes for the end (it does not check Content-Length),
    // so qq stops early whatever its exit status.
    sim.node_up(1);
    let qq_read = start_reading(
        &mut qq1.command(&["fs_read", "--path", "/big.bin", "--stdout"]),
        PREFIX,
    );
    sim.node_down(1);
    let (status, got, stderr) = finish_reading(qq_read, PREFIX);
    assert!(
        got < SIZE,
        "qq read all of the file ({status}); stderr:\n{stderr}"
    );

    // Node 0 serves the same file meanwhile.
    assert_eq!(
        qq0.read("/big.bin", &["--offset", "4096", "--length", "4096"]),
        vec![0u8; 4096]
    );
}

#[test]
fn qq_access_tokens_act_as_their_user_until_deleted() {
    let sim = Sim::start_default();
    let admin = sim.qq_as("admin", "adminpw");
    // A non-administrator may not make one.
    assert_qq_error(
        &sim.qq_as("alice", "alicepw"),
        &["auth_create_access_token", "bob"],
        403,
        "http_forbidden_error",
    );
    // Groups cannot have one.
    assert_qq_error(
        &admin,
        &["auth_create_access_token", "Users"],
        400,
        "decode_error",
    );

    // `--file` writes a credentials file that qq then logs in with.
    let alice = Qq::new(&sim.host, sim.port);
    let file = alice.cred_file.to_str().unwrap().to_owned();
    let token = admin.ok_json(&["auth_create_access_token", "alice", "--file", &file]);
    let bearer = s(&token, "bearer_token");
    assert!(bearer.starts_with("access-v1:"), "{token:#}");
    let id = s(&token, "id").to_owned();
    let me = alice.ok_json(&["who_am_i"]);
    assert_eq!(s(&me, "name"), "alice", "{me:#}");
    // Tokens act with their user's rights: alice may not read the cluster settings.
    assert_qq_error(&alice, &["cluster_conf"], 403, "http_forbidden_error");

    let meta = admin.ok_json(&["auth_get_access_token", &id]);
    assert_eq!(meta["user"]["name"], "alice", "{meta:#}");
    assert_eq!(meta["creator"]["name"], "admin", "{meta:#}");
    assert_eq!(meta["enabled"], true, "{meta:#}");
    assert_eq!(meta["expiration_time"], Value::Null, "{meta:#}");
    assert_rfc3339_nanos(s(&meta, "creation_time"));

    // A second one, for bob; the list filters by user and pages.
    admin.ok_json(&["auth_create_access_token", "auth_id:502"]);
    let all = admin.ok_json(&["auth_list_access_tokens", "--json"]);
    let users: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["user"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "bob"], "{all:#}");
    let bobs = admin.ok_json(&["auth_list_access_tokens", "--json", "--user", "bob"]);
    assert_eq!(bobs.as_array().unwrap().len(), 1, "{bobs:#}");
    // (qq's table names auth id 501 "Guest", as on a real cluster: only bob's shows by name.)
    let table = admin.ok(&["auth_list_access_tokens"]);
    assert!(table.contains("bob") && table.contains("admin"), "{table}");

    // Disabled, it is refused; enabled again, it works.
    let off = admin.ok_json(&["auth_modify_access_token", &id, "--disable"]);
    assert_eq!(off["enabled"], false, "{off:#}");
    assert_qq_error(&alice, &["who_am_i"], 401, "http_unauthorized_error");
    admin.ok_json(&["auth_modify_access_token", &id, "--enable"]);
    alice.ok_json(&["who_am_i"]);

    // Deleted, it is refused at once.
    admin.ok(&["auth_delete_access_token", &id]);
    assert_qq_error(&alice, &["who_am_i"], 401, "http_unauthorized_error");
    assert_qq_error(
        &admin,
        &["auth_get_access_token", &id],
        404,
        "http_not_found_error",
    );
}

//! Listings and paths as clients use them: relative paths in MLST and STAT, `STAT path` in the
//! reply, wildcards in LIST and NLST (`mget`, `mdelete`), NLST names that can be passed back,
//! RFC 3659 fact selection, and error replies that name the user's own path once.
//!
//! Exact replies come from the raw control client of [`common::control`]; the BSD `ftp`
//! client (tnftp) and Python's ftplib show what users see.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::Gateway;
use common::Sim;
use common::control::{Control, connect_data};

const ALICE: (&str, &str) = ("alice", "alicepw");

/// A simulator whose alice has the home `/home/alice`, a gateway in front of it (`chroot`
/// or not), and a tree: `DIR/{a.txt,b.txt,c.dat,.hidden.txt,sub/}` and a file named `x*y`.
fn start(chroot: bool) -> (Sim, Gateway, &'static str) {
    let sim = Sim::builder()
        .users(&[("admin", "adminpw"), ALICE])
        .admin("admin")
        .home("alice")
        .start();
    let gw = Gateway::start(&sim, if chroot { "chroot-users = true" } else { "" });
    let dir = if chroot { "/docs" } else { "/home/alice/docs" };
    let disk = sim.disk_path("/home/alice/docs");
    std::fs::create_dir_all(disk.join("sub")).unwrap();
    for name in ["a.txt", "b.txt", "c.dat", ".hidden.txt", "x*y"] {
        std::fs::write(disk.join(name), name.as_bytes()).unwrap();
    }
    // The simulator's files belong to whoever created them: alice may change this tree.
    use std::os::unix::fs::PermissionsExt;
    for d in [disk.clone(), disk.join("sub")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    (sim, gw, dir)
}

fn login(gw: &Gateway) -> Control {
    let addr = format!("127.0.0.1:{}", gw.port()).parse().unwrap();
    Control::login(addr, ALICE)
}

/// A listing command that is refused before any data: its reply (the data connection opened
/// for it carries nothing).
fn refused_listing(c: &mut Control, cmd: &str) -> common::control::Reply {
    let addr = c.pasv();
    let mut data = connect_data(addr);
    // Refused at once: the error alone, never 150 then an error (RFC 959).
    let reply = c.cmd(cmd);
    assert_ne!(reply.code, 150, "{cmd}: 150 before the refusal");
    let mut bytes = Vec::new();
    let _ = data.read_to_end(&mut bytes);
    assert!(bytes.is_empty(), "{cmd} sent data: {bytes:?}");
    reply
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// MLST, STAT, SIZE, DELE, RNFR/RNTO, MKD, RMD and RETR take relative paths in the working
/// directory, with and without chroot; `MLST` and `MLST .` describe the working directory.
#[test]
fn relative_paths_resolve_in_the_working_directory() {
    for chroot in [false, true] {
        let (_sim, gw, dir) = start(chroot);
        let mut c = login(&gw);
        c.cmd(&format!("CWD {dir}")).assert_code(250);
        let r = c.cmd("MLST a.txt");
        r.assert_code(250);
        assert!(r.lines[1].starts_with(" type=file;size=5;"), "{r:#?}");
        assert!(r.lines[1].ends_with(&format!(" {dir}/a.txt")), "{r:#?}");
        for cmd in ["MLST", "MLST ."] {
            let r = c.cmd(cmd);
            r.assert_code(250);
            assert!(r.lines[1].starts_with(" type=dir;"), "{cmd}: {r:#?}");
            assert!(r.lines[1].ends_with(&format!(" {dir}")), "{cmd}: {r:#?}");
        }
        c.cmd("MLST sub/../b.txt")
            .assert_says(250, &format!(" {dir}/b.txt"));
        c.cmd("SIZE a.txt").assert_says(213, "5");
        c.cmd("MKD new").assert_code(257);
        c.cmd("RMD new").assert_code(250);
        c.cmd("RNFR c.dat").assert_code(350);
        c.cmd("RNTO d.dat").assert_code(250);
        c.cmd("DELE d.dat").assert_code(250);
        c.cmd("CWD sub").assert_code(250);
        c.cmd("MLST ../a.txt")
            .assert_says(250, &format!(" {dir}/a.txt"));
        c.assert_in_step();
    }
}

/// `STAT path` answers 213 with the `ls -l` lines inside the reply; a missing path 550.
#[test]
fn stat_of_a_path_is_a_213_with_the_listing() {
    let (_sim, gw, dir) = start(false);
    let mut c = login(&gw);
    c.cmd(&format!("CWD {dir}")).assert_code(250);
    let r = c.cmd("STAT .");
    r.assert_code(213);
    assert_eq!(r.lines[0], format!("213-Status of {dir}:"));
    assert_eq!(r.lines.last().unwrap(), "213 End of status");
    let names: Vec<&str> = r.lines[1..r.lines.len() - 1]
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{r:#?}");
    assert!(names.contains(&"a.txt") && names.contains(&"sub"), "{r:#?}");
    let r = c.cmd("STAT a.txt");
    r.assert_code(213);
    assert_eq!(r.lines.len(), 3, "{r:#?}");
    assert!(r.lines[1].starts_with("-rw") && r.lines[1].ends_with(" a.txt"));
    c.cmd("STAT nothing")
        .assert_code(550)
        .assert_says(550, &format!("{dir}/nothing: no such file or directory"));
    c.assert_in_step();
}

/// LIST and NLST expand wildcards in the last name; NLST names keep the directory as given;
/// a name that exists with a `*` in it is taken literally; no match: NLST 550, LIST empty.
#[test]
fn wildcards_expand_and_nlst_names_can_be_passed_back() {
    let (_sim, gw, dir) = start(false);
    let mut c = login(&gw);
    c.cmd(&format!("CWD {dir}")).assert_code(250);
    assert_eq!(sorted(c.listing("NLST *.txt")), ["a.txt", "b.txt"]);
    assert_eq!(sorted(c.listing("NLST -la *.txt")), ["a.txt", "b.txt"]);
    assert_eq!(
        sorted(c.listing("NLST ?.[td]*")),
        ["a.txt", "b.txt", "c.dat"]
    );
    assert_eq!(c.listing("NLST x*y"), ["x*y"]);
    let list = c.listing("LIST *.dat");
    assert_eq!(list.len(), 1);
    assert!(list[0].ends_with(" c.dat"), "{list:?}");
    assert!(c.listing("LIST *.none").is_empty());
    refused_listing(&mut c, "NLST *.none")
        .assert_says(550, &format!("{dir}/*.none: no such file or directory"));
    c.cmd("CWD /home/alice").assert_code(250);
    assert_eq!(
        sorted(c.listing("NLST docs")),
        [
            "docs/.hidden.txt",
            "docs/a.txt",
            "docs/b.txt",
            "docs/c.dat",
            "docs/sub",
            "docs/x*y"
        ]
    );
    assert_eq!(
        sorted(c.listing("NLST docs/*.txt")),
        ["docs/a.txt", "docs/b.txt"]
    );
    assert_eq!(c.listing("NLST docs/a.txt"), ["docs/a.txt"]);
    assert_eq!(
        sorted(c.listing(&format!("NLST {dir}/*.dat"))),
        [format!("{dir}/c.dat")]
    );
    c.cmd("CWD docs").assert_code(250);
    assert_eq!(c.listing("NLST").len(), 6);
    assert!(c.listing("NLST .").contains(&"a.txt".to_string()));
    c.assert_in_step();
}

/// The BSD ftp client: `mget *.txt` fetches the matching files, `mget docs/*` through a
/// directory prefix, `mdelete *.dat` deletes.
#[test]
fn bsd_ftp_mget_and_mdelete_with_wildcards() {
    let (sim, gw, dir) = start(false);
    let local = tempfile::tempdir().unwrap();
    std::fs::create_dir(local.path().join("docs")).unwrap();
    let script = format!(
        "user {} {}\nprompt\nbinary\ncd {dir}\nmget *.txt\ncd ..\nmget docs/*.dat\ncd docs\nmdelete *.dat\nls\nbye\n",
        ALICE.0, ALICE.1
    );
    let mut child = Command::new(common::require_tool("tnftp", "tnftp"))
        .args(["-n", "-p", "127.0.0.1", &gw.port().to_string()])
        .current_dir(local.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tnftp");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    let out = common::wait_with_deadline(&mut child, std::time::Duration::from_secs(60), "tnftp");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for name in ["a.txt", "b.txt"] {
        assert_eq!(
            std::fs::read(local.path().join(name)).unwrap(),
            name.as_bytes(),
            "{text}"
        );
    }
    assert!(!local.path().join(".hidden.txt").exists(), "{text}");
    assert_eq!(
        std::fs::read(local.path().join("docs/c.dat")).unwrap(),
        b"c.dat",
        "{text}"
    );
    assert!(!sim.disk_path("/home/alice/docs/c.dat").exists(), "{text}");
    assert!(sim.disk_path("/home/alice/docs/a.txt").exists(), "{text}");
}

/// FEAT names the facts, OPTS MLST selects them (RFC 3659 7.9), MLST and MLSD show only
/// those; ftplib's `mlsd(facts=...)` works; MLSD of a file is 501.
#[test]
fn mlst_facts_are_selected_and_mlsd_of_a_file_is_501() {
    let (_sim, gw, dir) = start(false);
    let mut c = login(&gw);
    let feat = c.cmd("FEAT");
    assert!(
        feat.lines.iter().any(|l| l
            == " MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;UNIX.ownername*;UNIX.groupname*;"),
        "{feat:#?}"
    );
    c.cmd(&format!("CWD {dir}")).assert_code(250);
    c.cmd("OPTS MLST size;TYPE;bogus;")
        .assert_says(200, "MLST OPTS type;size;");
    let r = c.cmd("MLST a.txt");
    assert_eq!(r.lines[1], format!(" type=file;size=5; {dir}/a.txt"));
    let lines = c.listing("MLSD");
    assert!(
        lines.contains(&"type=file;size=5; a.txt".to_string()),
        "{lines:?}"
    );
    assert!(
        c.cmd("FEAT")
            .lines
            .iter()
            .any(|l| l.starts_with(" MLST type*;size*;modify;"))
    );
    c.cmd("OPTS MLST")
        .assert_code(200)
        .assert_says(200, "MLST OPTS");
    assert_eq!(c.cmd("MLST a.txt").lines[1], format!("  {dir}/a.txt"));
    refused_listing(&mut c, "MLSD a.txt")
        .assert_says(501, &format!("{dir}/a.txt: not a directory"));
    c.assert_in_step();

    let script = format!(
        "import ftplib\nf = ftplib.FTP()\nf.connect('127.0.0.1', {})\nf.login('{}', '{}')\n\
         for name, facts in sorted(f.mlsd('{dir}', facts=['size', 'unix.mode'])):\n    print(name, sorted(facts.items()))\nf.quit()\n",
        gw.port(),
        ALICE.0,
        ALICE.1
    );
    let out = Command::new(common::require_tool("python3", "python3"))
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("a.txt [('size', '5'), ('unix.mode', '0644')]"),
        "{text}"
    );
}

/// Every error reply is one line naming the user's own path once, with no OS error text and,
/// under chroot, no cluster path.
#[test]
fn error_replies_name_the_users_path_once() {
    for chroot in [false, true] {
        let (_sim, gw, dir) = start(chroot);
        let mut c = login(&gw);
        c.cmd(&format!("CWD {dir}")).assert_code(250);
        let missing = format!("{dir}/x.txt: no such file or directory");
        for cmd in [
            "SIZE x.txt",
            "MDTM x.txt",
            "DELE x.txt",
            "RMD x.txt",
            "RNFR x.txt",
            "CWD x.txt",
            "MLST x.txt",
            "SITE CHMOD 644 x.txt",
        ] {
            let r = c.cmd(cmd);
            assert_eq!(r.code, 550, "{cmd}: {r:#?}");
            let text = r.text();
            assert!(text.contains(&missing), "{cmd}: {text}");
            assert_eq!(text.matches("x.txt").count(), 1, "{cmd}: {text}");
            assert!(
                !text.contains("os error") && !text.contains("/home/alice/home"),
                "{cmd}: {text}"
            );
            if chroot {
                assert!(!text.contains("/home/alice"), "{cmd}: {text}");
            }
        }
        c.cmd("MKD a.txt")
            .assert_says(550, &format!("{dir}/a.txt: file exists"));
        for cmd in ["RETR x.txt", "LIST x.txt", "NLST x.txt"] {
            let r = refused_listing(&mut c, cmd);
            r.assert_says(550, &missing);
        }
        c.assert_in_step();
    }
}

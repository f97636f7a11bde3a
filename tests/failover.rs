//! A cluster of two simulator nodes behind one gateway: a node killed in the middle of
//! downloads, then the other one, and the transfers go on; new sessions and uploads work
//! on whichever node is left.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Sim;
use common::{BigPattern, Gateway, PatternVerifier, curl, toml_str};

const ALICE: (&str, &str) = ("alice", "alicepw");

/// Size of each download: long enough at the client's rate limit to outlast two node kills.
const SIZE: u64 = 48 * 1024 * 1024;

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Waits until every file is at least `len` bytes long (or a child has exited).
fn wait_for_bytes(files: &[&Path], len: u64, children: &mut [Child], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while files.iter().any(|f| file_len(f) < len) {
        for c in children.iter_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("{what}: a download ended early ({status})");
            }
        }
        assert!(Instant::now() < deadline, "{what}: downloads stalled");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn downloads_survive_the_loss_of_each_node_in_turn() {
    let sim = Sim::start_with_nodes(
        &[("admin", "adminpw"), ALICE],
        Some("admin"),
        &["--home", "alice:/home/alice"],
        2,
    );
    BigPattern::write_file(&sim.disk_path("/home/alice/big.bin"), SIZE);
    let qumulo = format!(
        "url = [{}, {}]\nca-file = {}\nretries = 3\n",
        toml_str(&sim.urls[0]),
        toml_str(&sim.urls[1]),
        toml_str(sim.cert_pem_path.to_str().unwrap())
    );
    let gw = Gateway::with_qumulo(&qumulo).start();
    let url = format!("{}/home/alice/big.bin", gw.ftp_url(ALICE.0, ALICE.1));
    let dir = tempfile::tempdir().unwrap();
    let outs = [dir.path().join("a.bin"), dir.path().join("b.bin")];

    // Two downloads at 6 MB/s each; with requests spread over both nodes, each node kill
    // below hits whichever download that node serves.
    let mut children: Vec<Child> = outs
        .iter()
        .map(|out| {
            Command::new(common::require_tool("curl", "curl"))
                .args(["-sS", "--limit-rate", "6M", "--max-time", "300", "-o"])
                .arg(out)
                .arg(&url)
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run curl")
        })
        .collect();
    let files: Vec<&Path> = outs.iter().map(|p| p.as_path()).collect();
    wait_for_bytes(&files, 4 << 20, &mut children, "before the first kill");

    sim.node_down(1);
    let mark = files.iter().map(|f| file_len(f)).max().unwrap();
    wait_for_bytes(&files, mark + (8 << 20), &mut children, "with node 1 down");
    sim.node_up(1);
    sim.node_down(0);
    let mark = files.iter().map(|f| file_len(f)).max().unwrap();
    wait_for_bytes(
        &files,
        (mark + (8 << 20)).min(SIZE),
        &mut children,
        "with node 0 down",
    );

    for (child, out) in children.iter_mut().zip(&outs) {
        let status = child.wait().unwrap();
        let mut err = String::new();
        use std::io::Read as _;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            status.success(),
            "curl: {status} {err}\n{}",
            gw.stderr_log()
        );
        let mut verifier = PatternVerifier::new(SIZE);
        verifier.feed_reader(&mut std::fs::File::open(out).unwrap());
        verifier.assert_complete("a download across two node failures");
    }

    // With node 0 still down, new sessions work through node 1: log in, upload, list.
    let src = dir.path().join("up.bin");
    std::fs::write(&src, b"after the failover").unwrap();
    let up = curl(
        &[
            "-T",
            src.to_str().unwrap(),
            &format!("{}/home/alice/up.bin", gw.ftp_url(ALICE.0, ALICE.1)),
        ],
        60,
    );
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let list = curl(
        &[&format!("{}/home/alice/", gw.ftp_url(ALICE.0, ALICE.1))],
        60,
    );
    assert!(String::from_utf8_lossy(&list.stdout).contains("up.bin"));

    // Both nodes served requests, and the gateway said once that a node was down.
    let nodes = sim.nodes();
    for node in nodes["nodes"].as_array().unwrap() {
        assert!(node["requests"].as_u64().unwrap() > 0, "{nodes}");
    }
    let log = gw.stderr_log();
    assert!(log.contains("node down"), "{log}");
    // Each kill cut a download in progress, which went on from where it broke off.
    let resumed = log.matches("download broke off").count();
    assert!(
        resumed >= 2,
        "expected both downloads to resume, log:\n{log}"
    );
    sim.node_up(0);
}

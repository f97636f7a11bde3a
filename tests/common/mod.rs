//! The one harness of the end-to-end tests. Every test file starts with `mod common;` and
//! takes what it needs from here:
//!
//! - [`process`]: the child-process wrapper (spawn, drained output, readiness from a line,
//!   peak RSS, kill on drop) under both the simulator and the gateway; [`require_tool`] for
//!   external programs (a missing one fails the test, naming its package, never skips it);
//! - [`sim`]: `qftpd sim` on port 0 ([`Sim`], [`SimBuilder`]);
//! - [`gateway`]: `qftpd serve` in front of it ([`Gateway`], [`GatewayBuilder`]);
//! - [`ports`]: passive port ranges that tests running at the same time never share;
//! - [`control`]: the one raw FTP control client, with strict and lenient reads;
//! - [`clients`]: ftplib (`tests/clients/ftp_ops.py`), lftp and curl as FTP clients;
//! - [`qq`]: the real `qq` CLI against a simulator;
//! - [`data`]: deterministic test data and digests;
//! - [`netns`]: networks of network namespaces (root only), for tests of several hosts.
//! - [`http`]: a raw HTTP client for the health and metrics listener.
//!
//! Every test starts its own simulator and gateway, so tests run in parallel without sharing
//! state: no fixed ports, no sleeps for readiness.

#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod clients;
pub mod control;
pub mod data;
pub mod gateway;
pub mod http;
pub mod netns;
pub mod ports;
pub mod process;
pub mod qq;
pub mod sim;

pub use clients::{
    OpResult, assert_code, curl, curl_ok, ftp_ops_script, op, run_ftplib, run_ftplib_with,
};
pub use data::{BIG_BLOCK, BigPattern, PatternVerifier, hex, pattern, sha256_file, unhex};
pub use gateway::{Gateway, GatewayBuilder, ftps_config, qumulo_table};
pub use http::{HttpReply, http};
pub use ports::{PassivePorts, free_port};
pub use process::{Process, require_tool, run_with_input, wait_with_deadline};
pub use qq::{Qq, json_values, qq_path};
pub use sim::{Sim, SimBuilder};

/// Polls `done` every 20 ms until it holds, failing with `what` after `deadline`.
pub fn wait_until(deadline: std::time::Duration, what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + deadline;
    while !done() {
        assert!(
            std::time::Instant::now() < until,
            "{what}: not within {deadline:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The standard simulator cast (see [`Sim::start_default`]) and a gateway in front of it with
/// `extra_ftp` in its `[ftp]` table.
pub fn start(extra_ftp: &str) -> (Sim, Gateway) {
    let sim = Sim::start_default();
    let gw = Gateway::start(&sim, extra_ftp);
    (sim, gw)
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Percent-encodes everything but unreserved characters (for URL user info and path
/// segments).
pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A temporary directory for a test's own files (removed when dropped).
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("qftpd-test-")
        .tempdir()
        .expect("create scratch dir")
}

/// The contents of `path`; a failure names the file.
pub fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every file and directory under `root` (hidden ones too), by path relative to `root`: its
/// full path and whether it is a directory.
pub fn walk_tree(root: &Path) -> BTreeMap<String, (PathBuf, bool)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (PathBuf, bool)>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read directory {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let is_dir = entry.file_type().expect("file type").is_dir();
            if is_dir {
                walk(root, &path, out);
            }
            out.insert(rel, (path, is_dir));
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

//! Networks of network namespaces for tests that need several hosts (tests/scaleout.rs): a
//! [`Net`] is one namespace holding a bridge, and member namespaces each joined to it by a
//! veth pair, with addresses only inside those namespaces. The host's own network is never
//! touched.
//!
//! Names carry the test process's id and a tag, so runs at the same time never share a
//! namespace; dropping the [`Net`] deletes every namespace it made (the processes inside must
//! be gone first: keep it as the last field of its owner). Namespaces left behind by a run
//! whose process has gone (killed before it could clean up) are deleted by the next run.
//! Needs root and `ip` (iproute2).

use std::path::Path;
use std::process::Command;

use super::process::require_tool;

/// The prefix of every namespace made here: `qftpd-t-PID-TAG-NAME`.
const PREFIX: &str = "qftpd-t-";

/// Whether this process runs as root (namespaces, veths and port 21 need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// A bridge namespace and its members; every namespace is deleted when dropped.
pub struct Net {
    prefix: String,
    hub: String,
    members: Vec<String>,
}

impl Net {
    /// A new network: the namespace `qftpd-t-PID-TAG-hub` with an up bridge `br0`. `tag`
    /// tells apart the networks of one test process (e.g. the test's name).
    pub fn new(tag: &str) -> Net {
        require_tool("ip", "iproute2");
        remove_stale();
        let prefix = format!("{PREFIX}{}-{tag}-", std::process::id());
        let hub = format!("{prefix}hub");
        ip(&["netns", "add", &hub]);
        let net = Net {
            prefix,
            hub,
            members: Vec::new(),
        };
        ip(&["-n", &net.hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &net.hub, "link", "set", "br0", "up"]);
        net
    }

    /// Adds the namespace `PREFIX-NAME`, joined to the bridge by a veth pair whose end inside
    /// is `eth0` with `addrs` (CIDR notation, the first one the primary address); loopback is
    /// up. Returns the namespace's name.
    pub fn add(&mut self, name: &str, addrs: &[&str]) -> String {
        let ns = format!("{}{name}", self.prefix);
        ip(&["netns", "add", &ns]);
        self.members.push(ns.clone());
        let port = format!("v{}", self.members.len());
        ip(&[
            "-n", &self.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ]);
        ip(&["-n", &self.hub, "link", "set", &port, "master", "br0", "up"]);
        for addr in addrs {
            ip(&["-n", &ns, "addr", "add", addr, "dev", "eth0"]);
        }
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.members.iter().rev().chain([&self.hub]) {
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
        }
    }
}

/// `PROGRAM` run inside the namespace `ns` (`ip netns exec NS PROGRAM`, which execs it: the
/// child's pid is the program's).
pub fn command_in(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Runs `ip ARGS`, failing with its output when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the namespaces of earlier runs whose process no longer exists.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        }
    }
}

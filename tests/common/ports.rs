//! Passive data port ranges for gateways, handed out from one place so that gateways of tests
//! running at the same time never share a port: the range 30000..32750 (below the kernel's
//! ephemeral ports, 32768 and up by default, which outgoing connections take) is cut into
//! blocks of 50, and block N is held by listening on 127.0.0.1 port 29000 + N for as long as
//! its [`PassivePorts`] lives. The kernel lets one socket at a time listen there, so the lock
//! holds between the threads of one test binary and between test binaries run at once, and it
//! goes away with the process however it ends.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Ports per block.
pub const BLOCK_PORTS: u16 = 50;
/// First port of the first block.
const BASE: u16 = 30000;
/// Number of blocks in 30000..32750.
const BLOCKS: u16 = 55;
/// The port whose listener holds block 0 (block N: `LOCK_BASE + N`).
const LOCK_BASE: u16 = 29000;

/// Blocks taken by this process so far: where the next search starts, so that a process
/// does not try the blocks it holds first.
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// A range of passive data ports `low..=high`, held until dropped.
#[derive(Debug)]
pub struct PassivePorts {
    /// First port.
    pub low: u16,
    /// Last port.
    pub high: u16,
    /// The lock on the block (none for a range given by the test itself).
    _lock: Option<TcpListener>,
}

impl PassivePorts {
    /// A whole free block of [`BLOCK_PORTS`] ports.
    pub fn block() -> PassivePorts {
        PassivePorts::first(BLOCK_PORTS)
    }

    /// The first `len` ports (1 to [`BLOCK_PORTS`]) of a free block, for tests that need a
    /// small range of their own (e.g. to exhaust it).
    pub fn first(len: u16) -> PassivePorts {
        assert!((1..=BLOCK_PORTS).contains(&len), "1 to {BLOCK_PORTS} ports");
        let start = std::process::id()
            .wrapping_mul(7)
            .wrapping_add(TAKEN.fetch_add(1, Ordering::Relaxed));
        for i in 0..u32::from(BLOCKS) {
            let block = ((start + i) % u32::from(BLOCKS)) as u16;
            if let Ok(lock) = TcpListener::bind(("127.0.0.1", LOCK_BASE + block)) {
                let low = BASE + block * BLOCK_PORTS;
                return PassivePorts {
                    low,
                    high: low + len - 1,
                    _lock: Some(lock),
                };
            }
        }
        panic!(
            "all {BLOCKS} passive port blocks are taken (ports {LOCK_BASE}..{} in use)",
            LOCK_BASE + BLOCKS
        );
    }

    /// The range `low..=high` chosen by the test (e.g. a wide one for hundreds of transfers),
    /// not coordinated with other tests.
    pub fn fixed((low, high): (u16, u16)) -> PassivePorts {
        PassivePorts {
            low,
            high,
            _lock: None,
        }
    }

    /// `(low, high)`.
    pub fn range(&self) -> (u16, u16) {
        (self.low, self.high)
    }
}

/// A port that was free a moment ago, for programs that bind by number themselves (e.g.
/// `systemd-socket-activate`); outside the passive blocks and their locks.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

//! qftpd: an FTP/FTPS gateway to the file system of a Qumulo cluster.
//!
//! Every FTP login is a Qumulo login, and every file operation runs on the cluster through its
//! REST API with that user's bearer token, so the cluster enforces permissions.
//!
//! # Architecture
//! Dependencies point one way, `cli → daemon → {accept, ftp} → {qumulo, state}`, with
//! `daemon → metrics → {ftp, qumulo, state}` (only `daemon` imports `metrics`), with
//! `config` and `exit` leaves that any module may import, the daemon's helpers (`listener`,
//! `systemd`, `logging`, `descriptors`) importing only leaves, and `sim` a leaf behind the
//! default feature `sim` (with `demo`, which runs it with the gateway); `tests/layering.rs`
//! fails on a cycle or a leaf that imports.
//!
//! - [`cli`]: the command line (`sim`, …); maps failures to exit codes.
//! - [`exit`]: the exit codes (sysexits).
//! - [`daemon`]: the service lifecycle: socket, readiness, reload, drain.
//! - [`config`]: layered, strictly typed configuration.
//! - [`ftp`]: the libunftp storage back-end and authenticator over the Qumulo client.
//! - [`accept`]: the accept loop, one libunftp server per connection; who is let in.
//! - [`state`]: run-time state shared by the accept loop, the sessions and the lifecycle.
//! - [`metrics`]: the opt-in HTTP listener of `/health`, `/ready` and `/metrics`.
//! - [`descriptors`]: the open-file limit against `max-connections`.
//! - [`demo`]: `qftpd demo`, the simulator and the gateway together on loopback (feature
//!   `sim`).
//! - [`listener`]: the control socket from systemd (by name) or bound from the config.
//! - [`systemd`]: sd_notify readiness, status, reload, stop and watchdog.
//! - [`logging`]: tracing subscriber set-up.
//! - [`qumulo`]: the production Qumulo REST API client (knows nothing of FTP).
//! - [`sim`]: a faithful Qumulo REST API simulator backed by a real directory, used by tests,
//!   benchmarks and `qftpd demo` (feature `sim`). It shares no types with the production
//!   client.

pub mod accept;
pub mod cli;
pub mod config;
pub mod daemon;
#[cfg(feature = "sim")]
pub mod demo;
pub mod descriptors;
pub mod ephemeral;
pub mod exit;
pub mod ftp;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod qumulo;
#[cfg(feature = "sim")]
pub mod sim;
pub mod state;
pub mod systemd;

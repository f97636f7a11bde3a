//! The transfer log: each download and upload counted while it runs and logged as one event
//! when it ends, like an xferlog line (user, client, path, direction, offset, bytes, duration,
//! result).
//!
//! Used by [`super::storage`]; knows nothing of the cluster.

use std::path::Path;

use unftp_core::storage::{ErrorKind as Ftp, Result};

use super::errors::reason;
use super::storage::Shared;
use super::user::User;

/// One data transfer: counted while it runs, logged as one event when it ends (like an
/// xferlog line: user, path, direction, offset, bytes, duration, result).
pub(super) struct Transfer<'a> {
    stats: &'a crate::state::Stats,
    user: &'a str,
    client: std::net::IpAddr,
    path: &'a Path,
    direction: &'static str,
    offset: u64,
    started: std::time::Instant,
    /// Logged by [`Transfer::finish`]; a transfer dropped before (ABOR, the session ended) is
    /// logged when dropped.
    logged: bool,
}

impl<'a> Transfer<'a> {
    pub(super) fn start(
        shared: &'a Shared,
        user: &'a User,
        path: &'a Path,
        direction: &'static str,
        offset: u64,
    ) -> Self {
        shared
            .stats
            .transfers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            stats: &shared.stats,
            user: &user.name,
            client: user.client,
            path,
            direction,
            offset,
            started: std::time::Instant::now(),
            logged: false,
        }
    }

    /// The offset the transfer starts from, once known (APPE learns it from the cluster).
    pub(super) fn set_offset(&mut self, offset: u64) {
        self.offset = offset;
    }

    /// Counts the transfer in the service's tally (`bytes` when it completed).
    fn tally(&self, bytes: Option<u64>) {
        let direction = match self.direction {
            "upload" => crate::state::Direction::Upload,
            _ => crate::state::Direction::Download,
        };
        let elapsed = self.started.elapsed();
        self.stats.tally.transfer(direction, elapsed, bytes);
    }

    fn duration_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Logs the transfer: at notice level when it worked, the user asked for something the
    /// cluster refused, or the client broke the transfer off; at warning level when the
    /// cluster failed.
    pub(super) fn finish(mut self, result: &Result<u64>) {
        self.logged = true;
        self.tally(result.as_ref().ok().copied());
        let duration_ms = self.duration_ms();
        let (user, client, direction, offset) =
            (self.user, self.client, self.direction, self.offset);
        let path = self.path.display();
        match result {
            Ok(bytes) => tracing::info!(
                user, %client, %path, direction, offset, bytes, duration_ms, result = "ok",
                "transfer {direction} {path} {bytes} bytes"
            ),
            Err(e) if e.kind() == Ftp::ConnectionClosed => {
                let reason = reason(e);
                tracing::info!(
                    user, %client, %path, direction, offset, duration_ms, result = "aborted",
                    error = %reason, "transfer {direction} {path} aborted"
                );
            }
            Err(e) => {
                let reason = reason(e);
                if e.kind() == Ftp::LocalError {
                    tracing::warn!(
                        user, %client, %path, direction, offset, duration_ms, result = "failed",
                        error = %reason, "transfer {direction} {path} failed"
                    );
                } else {
                    tracing::info!(
                        user, %client, %path, direction, offset, duration_ms, result = "refused",
                        error = %reason, "transfer {direction} {path} refused"
                    );
                }
            }
        }
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        self.stats
            .transfers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if !self.logged {
            self.tally(None);
            let duration_ms = self.duration_ms();
            let (user, client, direction, offset) =
                (self.user, self.client, self.direction, self.offset);
            let path = self.path.display();
            tracing::info!(
                user, %client, %path, direction, offset, duration_ms, result = "aborted",
                error = "the transfer was cancelled", "transfer {direction} {path} aborted"
            );
        }
    }
}

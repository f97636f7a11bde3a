//! Open-file limits: how many descriptors `max-connections` needs, and what the process may
//! open.
//!
//! Every session holds its control connection (one descriptor, shared with the storage
//! back-end through `ftp::ControlLink`); a transfer adds a passive listener (until its connection is accepted), the data connection
//! and the cluster connection that carries its bytes. Listings and metadata calls share pooled
//! cluster connections. The accept loop, the runtime, the journal and the pool's idle
//! connections take a few dozen more.
//!
//! At start the soft limit is raised towards the hard one when that is not enough (outside
//! systemd; the packaged unit sets `LimitNOFILE=` and forbids `setrlimit`), and what remains
//! short is said in the journal and by `qftpd check-config`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors one session may hold at once: control connection, passive listener, data
/// connection, the transfer's cluster connection, and one spare for a pooled cluster
/// connection opened while the others are busy.
pub const PER_SESSION: u64 = 5;
/// Descriptors the process holds besides its sessions.
pub const BASE: u64 = 64;

/// Descriptors needed to serve `max_connections` sessions, all transferring.
pub fn needed(max_connections: usize) -> u64 {
    (max_connections as u64)
        .saturating_mul(PER_SESSION)
        .saturating_add(BASE)
}

/// The process's open-file limits, after trying to raise the soft one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The soft limit in force (what `open` is held to).
    pub soft: u64,
    /// The hard limit (the most the soft one may be raised to without privileges).
    pub hard: u64,
    /// The soft limit before it was raised, when it was.
    pub raised_from: Option<u64>,
}

/// Reads the open-file limits; when the soft one is below `want`, raises it to `want` (or to
/// the hard limit, when that is lower). A refused raise (a system-call filter) leaves it as
/// it was.
pub fn raise_to(want: u64) -> Limits {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // None means unlimited.
    let soft = current.unwrap_or(u64::MAX);
    let hard = maximum.unwrap_or(u64::MAX);
    if soft >= want {
        return Limits {
            soft,
            hard,
            raised_from: None,
        };
    }
    let target = want.min(hard);
    let raised = target > soft
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum,
            },
        )
        .is_ok();
    Limits {
        soft: if raised { target } else { soft },
        hard,
        raised_from: raised.then_some(soft),
    }
}

/// Reads the open-file limits as they are.
pub fn current() -> Limits {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    Limits {
        soft: current.unwrap_or(u64::MAX),
        hard: maximum.unwrap_or(u64::MAX),
        raised_from: None,
    }
}

/// What to tell the administrator when `limits` cannot serve `max_connections` sessions:
/// `None` when they can.
pub fn shortfall(limits: Limits, max_connections: usize) -> Option<String> {
    let need = needed(max_connections);
    if limits.soft >= need {
        return None;
    }
    let sessions = limits.soft.saturating_sub(BASE) / PER_SESSION;
    Some(format!(
        "ftp.max-connections = {max_connections} needs up to {need} open files, but the \
         process may open {} (hard limit {}): about {sessions} sessions can transfer at once. \
         Raise the limit (LimitNOFILE= in qftpd.service, `systemctl edit qftpd`; or ulimit \
         -n) or lower ftp.max-connections",
        limits.soft, limits.hard
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_grow_with_connections() {
        assert_eq!(needed(0), BASE);
        assert_eq!(needed(500), 500 * PER_SESSION + BASE);
        assert_eq!(needed(usize::MAX), u64::MAX);
    }

    #[test]
    fn shortfall_names_the_figures_and_the_fix() {
        let low = Limits {
            soft: 1024,
            hard: 4096,
            raised_from: None,
        };
        let text = shortfall(low, 500).expect("1024 cannot serve 500 sessions");
        assert!(text.contains("needs up to 2564"), "{text}");
        assert!(text.contains("may open 1024 (hard limit 4096)"), "{text}");
        assert!(text.contains("about 192 sessions"), "{text}");
        assert!(text.contains("LimitNOFILE="), "{text}");
        let enough = Limits { soft: 65536, ..low };
        assert_eq!(shortfall(enough, 500), None);
    }

    #[test]
    fn the_soft_limit_is_raised_within_the_hard_one() {
        let before = current();
        let want = before.soft.saturating_add(1).min(before.hard);
        let after = raise_to(want);
        assert!(
            after.soft >= want.min(before.hard),
            "{before:?} -> {after:?}"
        );
        assert_eq!(after.hard, before.hard);
    }
}

//! Directory entries as FTP shows them: `ls -l` lines for LIST (owner and group names, the
//! Unix six-month date rule, the configured time zone), and RFC 3659 facts for MLSD/MLST (UTC).
//! `stream` reads listings from the cluster and sends them in these lines.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use unftp_core::storage::{Metadata, Permissions, Result as FtpResult};

use crate::qumulo::{FileAttr, FileType, IdDetails, Session};

pub(super) mod stream;

pub(super) use stream::entry;

/// One entry with its owner and group already named.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The cluster's attributes.
    pub attr: FileAttr,
    /// Owner name as shown.
    pub owner: String,
    /// Group name as shown.
    pub group: String,
    /// The `perm` fact for the user who asked.
    pub perm: String,
    /// The facts MLST shows of it (the session's `OPTS MLST`).
    pub shown: Facts,
}

impl Metadata for Entry {
    fn len(&self) -> u64 {
        self.attr.size
    }
    fn is_dir(&self) -> bool {
        self.attr.file_type == FileType::Directory
    }
    fn is_file(&self) -> bool {
        self.attr.file_type == FileType::File
    }
    fn is_symlink(&self) -> bool {
        self.attr.file_type == FileType::Symlink
    }
    fn modified(&self) -> FtpResult<SystemTime> {
        Ok(self.attr.modification_time.into())
    }
    fn gid(&self) -> u32 {
        u32::try_from(self.attr.group).unwrap_or(u32::MAX)
    }
    fn uid(&self) -> u32 {
        u32::try_from(self.attr.owner).unwrap_or(u32::MAX)
    }
    fn links(&self) -> u64 {
        self.attr.num_links
    }
    fn permissions(&self) -> Permissions {
        Permissions(self.attr.mode)
    }
    fn mlst_facts(&self) -> Option<String> {
        Some(facts(self, self.shown))
    }
}

/// The RFC 3659 facts MLST and MLSD show, in the order shown (FEAT lists them so).
pub const FACT_NAMES: [&str; 8] = [
    "type",
    "size",
    "modify",
    "perm",
    "unique",
    "UNIX.mode",
    "UNIX.ownername",
    "UNIX.groupname",
];

/// A set of the facts of [`FACT_NAMES`] (a bit each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts(u8);

impl Facts {
    /// Every fact: what a session shows until it sends `OPTS MLST`.
    pub const ALL: Facts = Facts(u8::MAX);

    /// The facts named in `names`, matched without regard to case; unknown names are ignored
    /// (RFC 3659 7.9).
    pub fn named(names: &[&str]) -> Facts {
        let mut bits = 0;
        for (i, fact) in FACT_NAMES.iter().enumerate() {
            if names.iter().any(|n| n.eq_ignore_ascii_case(fact)) {
                bits |= 1 << i;
            }
        }
        Facts(bits)
    }

    /// Whether the set holds `fact` (one of [`FACT_NAMES`]).
    pub fn has(self, fact: &str) -> bool {
        FACT_NAMES
            .iter()
            .position(|f| *f == fact)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The names in the set, in the order of [`FACT_NAMES`].
    pub fn names(self) -> Vec<&'static str> {
        FACT_NAMES.into_iter().filter(|f| self.has(f)).collect()
    }
}

/// The facts one session shows, changed by its `OPTS MLST`.
#[derive(Debug)]
pub struct FactSelection(AtomicU8);

impl Default for FactSelection {
    fn default() -> Self {
        Self(AtomicU8::new(Facts::ALL.0))
    }
}

impl FactSelection {
    /// The facts shown now.
    pub fn get(&self) -> Facts {
        Facts(self.0.load(Ordering::Relaxed))
    }

    /// Shows `facts` from now on.
    pub fn set(&self, facts: Facts) {
        self.0.store(facts.0, Ordering::Relaxed);
    }
}

/// RFC 3659 facts: type, size, modify (UTC), perm, unique (the file id), and the Unix mode,
/// owner and group names; those of `shown` only.
pub fn facts(e: &Entry, shown: Facts) -> String {
    let kind = match e.attr.file_type {
        FileType::Directory => "dir",
        FileType::File => "file",
        FileType::Symlink => "OS.unix=symlink",
        FileType::Other => "OS.unix=special",
    };
    let values: [(&str, String); 8] = [
        ("type", kind.to_string()),
        ("size", e.attr.size.to_string()),
        (
            "modify",
            e.attr
                .modification_time
                .format("%Y%m%d%H%M%S%.3f")
                .to_string(),
        ),
        ("perm", e.perm.clone()),
        ("unique", format!("{:x}", e.attr.id)),
        ("UNIX.mode", format!("{:04o}", e.attr.mode & 0o7777)),
        ("UNIX.ownername", e.owner.clone()),
        ("UNIX.groupname", e.group.clone()),
    ];
    let mut out = String::with_capacity(160);
    for (name, value) in values {
        if shown.has(name) {
            out.push_str(name);
            out.push('=');
            out.push_str(&value);
            out.push(';');
        }
    }
    out
}

/// The `perm` fact for the user with auth id `uid`: the owner's bits for the owner, otherwise
/// the group's and others' bits together (the cluster checks group membership and has the
/// final word; the fact only guides the client).
pub fn perm_fact(attr: &FileAttr, uid: u64) -> String {
    let bits = if attr.owner == uid {
        attr.mode >> 6
    } else {
        (attr.mode >> 3) | attr.mode
    } & 7;
    let (r, w, x) = (bits & 4 != 0, bits & 2 != 0, bits & 1 != 0);
    let mut perm = String::new();
    if attr.file_type == FileType::Directory {
        if x {
            perm.push('e');
        }
        if r {
            perm.push('l');
        }
        if w {
            perm.push_str("cdfmp");
        }
    } else {
        if r {
            perm.push('r');
        }
        if w {
            perm.push_str("adfw");
        }
    }
    perm
}

/// One `ls -l` line (without CRLF): type and mode, links, owner, group, size, date, name.
/// Dates within the last six months show the time, older or future ones the year, in `tz`.
pub fn list_line(e: &Entry, name: &str, now: DateTime<Utc>, tz: Tz) -> String {
    let t = e.attr.modification_time;
    let recent = t <= now + Duration::hours(1) && now - t < Duration::days(182);
    let local = t.with_timezone(&tz);
    let date = if recent {
        local.format("%b %e %H:%M")
    } else {
        local.format("%b %e  %Y")
    };
    let kind = match e.attr.file_type {
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::File => '-',
        FileType::Other => 'p',
    };
    format!(
        "{kind}{} {:>3} {:<8} {:<8} {:>12} {date} {name}",
        mode_string(e.attr.mode),
        e.attr.num_links,
        e.owner,
        e.group,
        e.attr.size,
    )
}

/// `rwxr-sr-t`-style permission string of a mode.
fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for (shift, special, set_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        s.push(match (mode & special != 0, exec) {
            (true, true) => set_char,
            (true, false) => set_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// An owner or group name as LIST and the MLSx facts show it: one non-empty word, so that
/// LIST columns stay parseable, without `;`, which would end its fact and start another.
/// Whitespace and `;` become `_`; an empty name shows as `?`.
pub fn shown_name(raw: &str) -> String {
    let name = raw.split_whitespace().collect::<Vec<_>>().join("_");
    if name.is_empty() {
        "?".to_string()
    } else {
        name.replace(';', "_")
    }
}

/// A name as listed: CR and LF could inject lines into a listing, so they show as `?`.
pub(crate) fn display_name(name: &str) -> String {
    name.replace(['\r', '\n'], "?")
}

/// Names owners and groups: local names and NFS ids as they are, SMB SIDs resolved through
/// identity find and cached for the whole process (the cache is bounded; failures are not
/// cached, so a later listing tries again).
#[derive(Debug, Default)]
pub struct NameCache {
    sids: Mutex<HashMap<String, String>>,
}

/// The most SIDs remembered before the cache starts afresh.
const MAX_CACHED: usize = 10_000;

impl NameCache {
    /// The display name of an owner or group (see [`shown_name`]).
    pub async fn name(&self, session: &Session, id: &IdDetails) -> String {
        let raw = if id.id_type == "SMB_SID" {
            self.sid_name(session, &id.id_value).await
        } else {
            id.id_value.clone()
        };
        shown_name(&raw)
    }

    async fn sid_name(&self, session: &Session, sid: &str) -> String {
        if let Some(name) = self.sids.lock().unwrap_or_else(|p| p.into_inner()).get(sid) {
            return name.clone();
        }
        match session.find_identity_by_sid(sid).await {
            Ok(identity) => {
                let name = identity
                    .name
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| sid.to_string());
                let mut sids = self.sids.lock().unwrap_or_else(|p| p.into_inner());
                if sids.len() >= MAX_CACHED {
                    sids.clear();
                }
                sids.insert(sid.to_string(), name.clone());
                name
            }
            Err(e) => {
                tracing::debug!(sid, error = %e, "could not resolve a SID; showing it as it is");
                sid.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests;

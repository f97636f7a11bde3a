//! Directory entries with hostile names (CR, LF, NUL, any Unicode, very long) and any
//! attributes, as the gateway sends them: the LIST, NLST and MLSD data the storage back-end
//! streams (the same code, through `qftpd::ftp::fuzzing::listing`), the LIST line of STAT and
//! the MLST facts.
//!
//! The data must be one CRLF-terminated line per entry (no CR or LF anywhere else: a name
//! cannot add a line, so it cannot pass for another entry or for a reply); LIST columns must
//! parse back to the entry's values with the shown name last; the facts must be well-formed
//! `key=value;` pairs (no space: the first one ends the facts) with the entry's values; and a
//! name without CR or LF must come back as it is: after the facts in MLSD, and in NLST as the
//! client can pass it back (`NLST dir` gives `dir/name`, `NLST dir/f*` `dir/name`).

#![no_main]

use std::path::{Component, Path};

use arbitrary::Unstructured;
use chrono::{DateTime, Datelike, Utc};
use libfuzzer_sys::fuzz_target;
use qftpd::ftp::fuzzing::{Listed, ListingFormat, display_name, listing};
use qftpd::qumulo::{FileAttr, FileType, IdDetails};

/// Entries in each listing: lines must not run into each other.
const ENTRIES: usize = 2;

// The input: text fields separated by 0xFF (never in UTF-8; other invalid bytes become
// U+FFFD): the name, the owner's and the group's names, the argument of the listing command
// (empty: none), the modification time as the cluster's JSON carries it (empty: a timestamp
// from the numbers); then bytes for the numbers: repeat, type, mode, size, links, id, owner
// id, auth id of the user who lists, timestamp seconds and nanoseconds, now, time zone, shape
// (bit 0: the listing is not of a directory but of a file listed as itself, or of the matches
// of a pattern) (each a u64, zero when missing).
fuzz_target!(|data: &[u8]| {
    let mut fields = data.splitn(6, |b| *b == 0xFF);
    let mut text = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let (name, owner, group, argument, time) = (text(), text(), text(), text(), text());
    let mut numbers = Unstructured::new(fields.next().unwrap_or_default());
    let mut n = || numbers.arbitrary::<u64>().unwrap_or_default();
    let (repeat, kind, mode, size, links, id) = (n(), n(), n(), n(), n(), n());
    let (owner_id, uid, secs, nanos, now, tz) = (n(), n(), n(), n(), n(), n());
    let shape = n();

    let modified = if time.is_empty() {
        DateTime::from_timestamp(secs as i64, (nanos % 2_000_000_000) as u32)
    } else {
        // What serde does with the cluster's `modification_time`.
        time.parse::<DateTime<Utc>>().ok()
    };
    // Now: from 1970 to 2106.
    let (Some(modified), Some(now)) = (modified, DateTime::from_timestamp(now as u32 as i64, 0))
    else {
        return;
    };
    // Up to 64 times over, for very long names.
    let name = name.repeat(1 + (repeat % 64) as usize);
    let id_details = |v: &str| IdDetails {
        id_type: "LOCAL_USER".into(),
        id_value: v.into(),
    };
    let attr = FileAttr {
        path: format!("/d/{name}"),
        name: name.clone(),
        id,
        file_type: match kind % 4 {
            0 => FileType::File,
            1 => FileType::Directory,
            2 => FileType::Symlink,
            _ => FileType::Other,
        },
        mode: mode as u32,
        size,
        num_links: links,
        owner: owner_id,
        owner_details: id_details(&owner),
        group: 513,
        group_details: id_details(&group),
        modification_time: modified,
        creation_time: modified,
        change_time: modified,
    };
    let tz = chrono_tz::TZ_VARIANTS[tz as usize % chrono_tz::TZ_VARIANTS.len()];
    let entry = Listed::new(attr.clone(), &owner, &group, uid);
    let shown = display_name(&name);
    one_line(&shown);
    let plain = |s: &str| !s.contains(['\r', '\n']);

    // STAT: the LIST line alone.
    let line = entry.list_line(now, tz);
    one_line(&line);
    check_list_line(&line, &entry, &attr, &shown);

    // MLST.
    let facts = entry.facts().expect("the back-end gives the facts");
    one_line(&facts);
    check_facts(&facts, &entry, &attr);

    let dir = shape & 1 == 0;
    let argument = (!argument.is_empty()).then_some(argument.as_str());
    let entries = vec![entry.clone(); ENTRIES];
    for format in [
        ListingFormat::List,
        ListingFormat::Nlst,
        ListingFormat::Mlsd,
    ] {
        let data = listing(format, &entries, dir, argument, now, tz);
        let lines = lines(&data, ENTRIES);
        for got in lines {
            match format {
                ListingFormat::List => {
                    assert_eq!(got, line, "LIST and STAT show another line");
                }
                ListingFormat::Mlsd => {
                    let (mlsd_facts, mlsd_name) = got.split_once(' ').expect("facts, space, name");
                    assert_eq!(mlsd_facts, facts);
                    assert_eq!(mlsd_name, shown, "MLSD shows another name");
                }
                ListingFormat::Nlst => {
                    assert!(got.ends_with(&shown), "NLST shows another name: {got:?}");
                    if plain(&name) && argument.is_none_or(plain) {
                        check_nlst_name(got, &name, argument, dir);
                    }
                }
            }
        }
    }
});

/// The lines of listing `data`: `count` of them, each ended by CRLF, without CR or LF inside.
fn lines(data: &str, count: usize) -> Vec<&str> {
    let body = data.strip_suffix("\r\n").expect("the data ends with CRLF");
    let lines: Vec<&str> = body.split("\r\n").collect();
    assert_eq!(lines.len(), count, "a line per entry: {data:?}");
    for line in &lines {
        one_line(line);
    }
    lines
}

/// An NLST name as the client can pass it back: `NLST dir` gives `dir/name`, `NLST dir/pattern`
/// and `NLST dir/file` `dir/name` (the directory as the client wrote it); without an argument,
/// or with `.`, the bare name.
fn check_nlst_name(got: &str, name: &str, argument: Option<&str>, dir: bool) {
    let Some(arg) = argument.filter(|a| *a != ".") else {
        assert_eq!(got, name, "NLST without a directory");
        return;
    };
    if dir {
        if !name.is_empty() && !name.contains('/') && name != "." && name != ".." {
            let names = |p: &Path| -> Vec<String> {
                p.components()
                    .filter(|c| *c != Component::CurDir)
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            };
            let want = Path::new(arg).join(name);
            assert_eq!(
                names(Path::new(got)),
                names(&want),
                "NLST {arg:?} gave {got:?}"
            );
        }
    } else {
        let written = &got[..got.len() - name.len()];
        assert!(
            arg.starts_with(written) && !arg[written.len()..].contains('/'),
            "NLST {arg:?} gave {got:?}: not in the directory as the client wrote it"
        );
        assert!(written.is_empty() || written.ends_with('/'), "{got:?}");
    }
}

fn one_line(text: &str) {
    assert!(!text.contains(['\r', '\n']), "more than one line: {text:?}");
}

/// `-rw-r--r--   1 owner    group    size Mon dd hh:mm name`: eight columns, then the name.
fn check_list_line(line: &str, entry: &Listed, attr: &FileAttr, shown: &str) {
    let mut rest = line;
    let mut columns = Vec::new();
    for _ in 0..8 {
        rest = rest.trim_start_matches(char::is_whitespace);
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        columns.push(&rest[..end]);
        rest = &rest[end..];
    }
    assert_eq!(
        rest.strip_prefix(' '),
        Some(shown),
        "name column of {line:?}"
    );
    let mode = columns[0].as_bytes();
    assert_eq!(mode.len(), 10, "{line:?}");
    assert!(b"-dlp".contains(&mode[0]), "{line:?}");
    assert!(
        mode[1..].iter().all(|c| b"rwxsStT-".contains(c)),
        "{line:?}"
    );
    assert_eq!(columns[1], attr.num_links.to_string(), "{line:?}");
    assert_eq!(columns[2], entry.owner(), "owner column of {line:?}");
    assert_eq!(columns[3], entry.group(), "group column of {line:?}");
    assert_eq!(columns[4], attr.size.to_string(), "{line:?}");
}

fn check_facts(facts: &str, entry: &Listed, attr: &FileAttr) {
    assert!(
        !facts.contains(' '),
        "a space ends the facts early: {facts:?}"
    );
    let body = facts.strip_suffix(';').expect("facts end with ;");
    let facts: Vec<(&str, &str)> = body
        .split(';')
        .map(|fact| fact.split_once('=').expect("fact is key=value"))
        .collect();
    let keys: Vec<&str> = facts.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "type",
            "size",
            "modify",
            "perm",
            "unique",
            "UNIX.mode",
            "UNIX.ownername",
            "UNIX.groupname"
        ],
        "{facts:?}"
    );
    let value = |i: usize| facts[i].1;
    let kind = match attr.file_type {
        FileType::Directory => "dir",
        FileType::File => "file",
        FileType::Symlink => "OS.unix=symlink",
        FileType::Other => "OS.unix=special",
    };
    assert_eq!(value(0), kind);
    assert_eq!(value(1), attr.size.to_string());
    let modify = value(2).as_bytes();
    if (0..=9999).contains(&attr.modification_time.year()) {
        // YYYYMMDDHHMMSS.sss
        assert_eq!(modify.len(), 18, "{modify:?}");
        assert!(modify[14] == b'.', "{modify:?}");
        assert!(
            modify[..14]
                .iter()
                .chain(&modify[15..])
                .all(u8::is_ascii_digit)
        );
    }
    assert_eq!(value(3), entry.perm());
    assert!(value(3).bytes().all(|c| b"elcdfmpradfw".contains(&c)));
    assert_eq!(u64::from_str_radix(value(4), 16), Ok(attr.id));
    assert_eq!(u32::from_str_radix(value(5), 8), Ok(attr.mode & 0o7777));
    assert_eq!(value(5).len(), 4);
    assert_eq!(value(6), entry.owner());
    assert_eq!(value(7), entry.group());
}

//! Tests of the listing formats.

use super::*;
use chrono::TimeZone;

fn entry(file_type: FileType, mode: u32, owner: u64, modified: DateTime<Utc>) -> Entry {
    let id = |t: &str, v: &str| IdDetails {
        id_type: t.into(),
        id_value: v.into(),
    };
    Entry {
        attr: FileAttr {
            path: "/d/f".into(),
            name: "f".into(),
            id: 4096,
            file_type,
            mode,
            size: 1234,
            num_links: 1,
            owner,
            owner_details: id("LOCAL_USER", "alice"),
            group: 513,
            group_details: id("LOCAL_GROUP", "Users"),
            modification_time: modified,
            creation_time: modified,
            change_time: modified,
        },
        owner: "alice".into(),
        group: "Users".into(),
        perm: "r".into(),
        shown: Facts::ALL,
    }
}

#[test]
fn list_lines_use_the_six_month_rule_and_the_time_zone() {
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
    let recent = entry(
        FileType::File,
        0o644,
        500,
        Utc.with_ymd_and_hms(2026, 7, 4, 23, 30, 0).unwrap(),
    );
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    assert_eq!(
        list_line(&recent, "f", now, berlin),
        "-rw-r--r--   1 alice    Users            1234 Jul  5 01:30 f"
    );
    let old = entry(
        FileType::Directory,
        0o2755,
        500,
        Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap(),
    );
    assert_eq!(
        list_line(&old, "d", now, chrono_tz::UTC),
        "drwxr-sr-x   1 alice    Users            1234 May  1  2026 d"
    );
    let future = entry(
        FileType::File,
        0o1777,
        500,
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
    );
    assert!(list_line(&future, "x", now, chrono_tz::UTC).starts_with("-rwxrwxrwt"));
    assert!(list_line(&future, "x", now, chrono_tz::UTC).ends_with("Jan  1  2027 x"));
}

#[test]
fn owner_names_are_one_word_without_semicolons() {
    assert_eq!(shown_name("Domain Users"), "Domain_Users");
    assert_eq!(shown_name(" a\r\n226 b "), "a_226_b");
    assert_eq!(shown_name("grp;type=dir"), "grp_type=dir");
    assert_eq!(shown_name(""), "?");
    assert_eq!(shown_name(" \t"), "?");
}

#[test]
fn facts_are_utc_with_perm_and_unique() {
    let t =
        Utc.with_ymd_and_hms(2024, 5, 17, 13, 23, 40).unwrap() + Duration::nanoseconds(283_585_722);
    let mut e = entry(FileType::File, 0o640, 500, t);
    e.perm = perm_fact(&e.attr, 500);
    assert_eq!(
        facts(&e, Facts::ALL),
        "type=file;size=1234;modify=20240517132340.283;perm=radfw;unique=1000;UNIX.mode=0640;UNIX.ownername=alice;UNIX.groupname=Users;"
    );
    assert_eq!(perm_fact(&e.attr, 501), "r");
    let d = entry(FileType::Directory, 0o755, 500, t);
    assert_eq!(perm_fact(&d.attr, 500), "elcdfmp");
    assert_eq!(perm_fact(&d.attr, 501), "el");
}

#[test]
fn only_the_selected_facts_are_shown() {
    let t = Utc.with_ymd_and_hms(2024, 5, 17, 13, 23, 40).unwrap();
    let e = entry(FileType::File, 0o640, 500, t);
    let some = Facts::named(&["SIZE", "type", "unix.OWNERNAME", "nonsense"]);
    assert_eq!(some.names(), ["type", "size", "UNIX.ownername"]);
    assert_eq!(facts(&e, some), "type=file;size=1234;UNIX.ownername=alice;");
    assert_eq!(facts(&e, Facts::named(&[])), "");
    assert_eq!(Facts::ALL.names(), FACT_NAMES);
    let selection = FactSelection::default();
    assert_eq!(selection.get(), Facts::ALL);
    selection.set(some);
    assert_eq!(selection.get(), some);
}

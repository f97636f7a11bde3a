use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::sim::users::{Directory, User};

struct T {
    store: Store,
    admin: User,
    alice: User,
    bob: User,
    _dir: tempfile::TempDir,
}

fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let user = |id, name: &str, admin| User {
        id,
        name: name.into(),
        password: String::new(),
        admin,
        home: None,
    };
    let (admin, alice, bob) = (
        user(500, "admin", true),
        user(501, "alice", false),
        user(502, "bob", false),
    );
    let users = Arc::new(Directory::new(
        vec![admin.clone(), alice.clone(), bob.clone()],
        Duration::from_secs(60),
    ));
    let store = Store::open(&dir.path().join("data"), users).unwrap();
    T {
        store,
        admin,
        alice,
        bob,
        _dir: dir,
    }
}

fn req(name: &str, action: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        action: action.into(),
        old_path: None,
        clobber: false,
        symlink_target_type: None,
    }
}

fn rename(name: &str, from: &str, clobber: bool) -> CreateRequest {
    CreateRequest {
        old_path: Some(from.into()),
        clobber,
        ..req(name, "RENAME")
    }
}

fn class<T: std::fmt::Debug>(r: ApiResult<T>) -> ErrorClass {
    r.unwrap_err().class
}

#[test]
fn root_is_id_2_and_ids_survive_renames() {
    let t = setup();
    assert_eq!(t.store.get_attributes(&t.alice, "2").unwrap()["path"], "/");
    t.store
        .create(&t.alice, "/", &req("d", "CREATE_DIRECTORY"))
        .unwrap();
    let f = t
        .store
        .create(&t.alice, "/d", &req("f", "CREATE_FILE"))
        .unwrap();
    let id = f["id"].as_str().unwrap().to_string();
    t.store
        .create(&t.alice, "/", &rename("moved", "/d", false))
        .unwrap();
    let again = t.store.get_attributes(&t.alice, &id).unwrap();
    assert_eq!(again["path"], "/moved/f");
    assert_eq!(again["id"], f["id"]);
    assert_eq!(
        t.store.get_attributes(&t.alice, "/moved/").unwrap()["path"],
        "/moved/"
    );
}

#[test]
fn ids_of_files_made_outside_the_api_resolve() {
    let t = setup();
    std::fs::create_dir_all(t.store.root().join("x/y")).unwrap();
    std::fs::write(t.store.root().join("x/y/z"), b"hi").unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(t.store.root().join("x/y/z")).unwrap(),
    );
    let attrs = t
        .store
        .get_attributes(&t.alice, &t.store.id_of(ino).to_string())
        .unwrap();
    assert_eq!(
        (attrs["path"].as_str(), attrs["size"].as_str()),
        (Some("/x/y/z"), Some("2"))
    );
    assert_eq!(attrs["owner_details"]["id_value"], "admin");
    assert_eq!(
        class(t.store.get_attributes(&t.alice, "999999999")),
        ErrorClass::NoSuchEntry
    );
}

#[test]
fn paths_never_leave_the_root() {
    let t = setup();
    t.store
        .create(
            &t.admin,
            "/",
            &CreateRequest {
                old_path: Some("/etc".into()),
                ..req("l", "CREATE_SYMLINK")
            },
        )
        .unwrap();
    t.store
        .create(
            &t.admin,
            "/",
            &CreateRequest {
                old_path: Some("../../../etc".into()),
                ..req("r", "CREATE_SYMLINK")
            },
        )
        .unwrap();
    for p in ["/../../etc/passwd", "/l/passwd", "/r/passwd", "/./../etc"] {
        assert_eq!(
            class(t.store.get_attributes(&t.admin, p)),
            ErrorClass::NoSuchEntry,
            "{p}"
        );
    }
    assert_eq!(t.store.get_attributes(&t.admin, "/..").unwrap()["id"], "2");
    assert_eq!(
        t.store.get_attributes(&t.admin, "/l").unwrap()["type"],
        "FS_FILE_TYPE_SYMLINK"
    );
    std::fs::create_dir(t.store.root().join("etc")).unwrap();
    std::fs::write(t.store.root().join("etc/passwd"), b"cluster").unwrap();
    assert_eq!(
        t.store.get_attributes(&t.admin, "/l/passwd").unwrap()["path"],
        "/etc/passwd"
    );
    assert_eq!(
        t.store.get_attributes(&t.admin, "/r/passwd").unwrap()["path"],
        "/etc/passwd"
    );
}

/// With `PathSymlinks::Refuse`, a symlink before the last component fails the reference with
/// `fs_not_a_directory_error`; the symlink itself, and paths without symlinks, still resolve.
#[test]
fn symlinks_in_the_middle_of_a_path_can_be_refused() {
    let mut t = setup();
    t.store = Store::open(t.store.root(), t.store.users.clone())
        .unwrap()
        .with_path_symlinks(PathSymlinks::Refuse);
    std::fs::create_dir(t.store.root().join("etc")).unwrap();
    std::fs::write(t.store.root().join("etc/passwd"), b"cluster").unwrap();
    let link = CreateRequest {
        old_path: Some("/etc".into()),
        ..req("l", "CREATE_SYMLINK")
    };
    t.store.create(&t.admin, "/", &link).unwrap();
    for p in ["/l/passwd", "/l/.", "/l/../etc/passwd"] {
        assert_eq!(
            class(t.store.get_attributes(&t.admin, p)),
            ErrorClass::NotADirectory,
            "{p}"
        );
    }
    assert_eq!(
        class(t.store.list(&t.admin, "/l/x/", None, None)),
        ErrorClass::NotADirectory
    );
    assert_eq!(
        class(t.store.create(&t.admin, "/l", &req("new", "CREATE_FILE"))),
        ErrorClass::NotADirectory
    );
    assert!(!t.store.root().join("etc/new").exists());
    assert_eq!(
        t.store.get_attributes(&t.admin, "/l").unwrap()["type"],
        "FS_FILE_TYPE_SYMLINK"
    );
    assert_eq!(
        t.store.get_attributes(&t.admin, "/etc/passwd").unwrap()["path"],
        "/etc/passwd"
    );
}

#[test]
fn mode_bits_and_ownership_are_enforced() {
    let t = setup();
    t.store
        .create(&t.alice, "/", &req("a", "CREATE_DIRECTORY"))
        .unwrap();
    t.store
        .create(&t.alice, "/a", &req("f", "CREATE_FILE"))
        .unwrap();
    // bob may read alice's 0644 file but not write it, nor add to her 0755 directory.
    assert!(t.store.open_read(&t.bob, "/a/f", 0, None).is_ok());
    assert_eq!(
        class(t.store.open_write(&t.bob, "/a/f")),
        ErrorClass::AccessDenied
    );
    assert_eq!(
        class(t.store.create(&t.bob, "/a", &req("g", "CREATE_FILE"))),
        ErrorClass::AccessDenied
    );
    assert_eq!(
        class(t.store.delete(&t.bob, "/a/f")),
        ErrorClass::AccessDenied
    );
    let chmod = AttrPatch {
        mode: Some("0600".into()),
        ..Default::default()
    };
    assert_eq!(
        class(t.store.set_attributes(&t.bob, "/a/f", &chmod)),
        ErrorClass::NotOwner
    );
    t.store.set_attributes(&t.alice, "/a/f", &chmod).unwrap();
    assert_eq!(
        class(t.store.open_read(&t.bob, "/a/f", 0, None)),
        ErrorClass::AccessDenied
    );
    // Search permission guards path traversal.
    t.store
        .set_attributes(
            &t.alice,
            "/a",
            &AttrPatch {
                mode: Some("0700".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        class(t.store.get_attributes(&t.bob, "/a/f")),
        ErrorClass::AccessDenied
    );
    // Only an administrator gives files away; the administrator passes every check.
    let chown = AttrPatch {
        owner: Some("502".into()),
        ..Default::default()
    };
    assert_eq!(
        class(t.store.set_attributes(&t.alice, "/a/f", &chown)),
        ErrorClass::NotOwner
    );
    let attrs = t.store.set_attributes(&t.admin, "/a/f", &chown).unwrap();
    assert_eq!(attrs["owner_details"]["id_value"], "bob");
    assert!(t.store.open_read(&t.admin, "/a/f", 0, None).is_ok());
    t.store.delete(&t.alice, "/a/f").unwrap();
}

#[test]
fn listings_page_through_every_entry_once() {
    let t = setup();
    let names = ["g", "a", "é", "c d", "b%", "f#?", "e&"];
    for n in names {
        t.store
            .create(&t.alice, "/", &req(n, "CREATE_FILE"))
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = t
            .store
            .list(&t.alice, "2", after.as_deref(), Some(2))
            .map(|page| serde_json::to_value(page).unwrap())
            .unwrap();
        pages += 1;
        assert_eq!(page["child_count"], 7);
        seen.extend(
            page["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string()),
        );
        let next = page["paging"]["next"].as_str().unwrap();
        if next.is_empty() {
            break;
        }
        assert!(next.starts_with("/v1/files/2/entries/?after="), "{next}");
        after = Some(seen.last().unwrap().clone());
    }
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!((seen, pages), (expected, 4));
}

#[test]
fn rename_respects_clobber_and_directories_must_be_empty() {
    let t = setup();
    for n in ["x", "y"] {
        t.store
            .create(&t.alice, "/", &req(n, "CREATE_FILE"))
            .unwrap();
        std::fs::write(t.store.root().join(n), n).unwrap();
    }
    assert_eq!(
        class(t.store.create(&t.alice, "/", &rename("y", "/x", false))),
        ErrorClass::EntryExists
    );
    t.store
        .create(&t.alice, "/", &rename("y", "/x", true))
        .unwrap();
    assert_eq!(std::fs::read(t.store.root().join("y")).unwrap(), b"x");
    assert!(!t.store.root().join("x").exists());
    t.store
        .create(&t.alice, "/", &req("d", "CREATE_DIRECTORY"))
        .unwrap();
    t.store
        .create(&t.alice, "/", &rename("inner", "/d", false))
        .unwrap();
    assert_eq!(
        class(
            t.store
                .create(&t.alice, "/inner", &rename("self", "/inner", false))
        ),
        ErrorClass::InvalidArgument
    );
    t.store
        .create(&t.alice, "/inner", &rename("y", "/y", false))
        .unwrap();
    assert_eq!(
        class(t.store.delete(&t.alice, "/inner")),
        ErrorClass::DirectoryNotEmpty
    );
    t.store.unlink(&t.alice, "/inner", "y").unwrap();
    t.store.delete(&t.alice, "/inner/").unwrap();
    assert_eq!(
        class(t.store.delete(&t.alice, "/")),
        ErrorClass::AccessDenied
    );
}

#[test]
fn attributes_patch_sets_size_times_and_rejects_bad_values() {
    let t = setup();
    t.store
        .create(&t.alice, "/", &req("f", "CREATE_FILE"))
        .unwrap();
    let patch = AttrPatch {
        size: Some("10".into()),
        modification_time: Some("2001-02-03T04:05:06.123456789Z".into()),
        creation_time: Some("2000-01-01T00:00:00.5Z".into()),
        ..Default::default()
    };
    let a = t.store.set_attributes(&t.alice, "/f", &patch).unwrap();
    assert_eq!(a["size"], "10");
    assert_eq!(a["modification_time"], "2001-02-03T04:05:06.123456789Z");
    assert_eq!(a["creation_time"], "2000-01-01T00:00:00.500000000Z");
    for bad in [
        AttrPatch {
            mode: Some("999".into()),
            ..Default::default()
        },
        AttrPatch {
            size: Some("-1".into()),
            ..Default::default()
        },
        AttrPatch {
            access_time: Some("yesterday".into()),
            ..Default::default()
        },
    ] {
        assert_eq!(
            class(t.store.set_attributes(&t.alice, "/f", &bad)),
            ErrorClass::Decode
        );
    }
    assert_eq!(
        std::fs::metadata(t.store.root().join("f")).unwrap().len(),
        10
    );
}

#[test]
fn acls_are_generated_from_the_mode_kept_when_set_and_give_the_mode() {
    let t = setup();
    t.store
        .create(&t.alice, "/", &req("f", "CREATE_FILE"))
        .unwrap();
    let chmod = |user: &User, mode: &str| {
        let patch = AttrPatch {
            mode: Some(mode.into()),
            ..AttrPatch::default()
        };
        t.store.set_attributes(user, "/f", &patch).unwrap()["mode"].clone()
    };
    chmod(&t.alice, "0640");
    let generated: Acl = serde_json::from_value(t.store.get_acl(&t.bob, "/f").unwrap()).unwrap();
    let trustees: Vec<&str> = (generated.aces.iter())
        .map(|a| a.trustee["name"].as_str().unwrap())
        .collect();
    assert_eq!(trustees, ["alice", "Users", "Everyone"]);
    assert!(generated.aces[0].rights.contains(&"MODIFY".to_string()));
    assert!(!generated.aces[1].rights.contains(&"MODIFY".to_string()));
    assert!(generated.aces[2].rights.is_empty());

    // Set back as it is, the mode stays; an entry for bob is kept and reported, and does not
    // change the mode (permissions are checked on the mode).
    let mut acl = generated.clone();
    t.store.set_acl(&t.alice, "/f", &acl).unwrap();
    assert_eq!(
        t.store.get_attributes(&t.bob, "/f").unwrap()["mode"],
        "0640"
    );
    acl.aces.push(Ace {
        kind: "ALLOWED".into(),
        flags: vec![],
        trustee: t.bob.identity(),
        rights: vec!["READ".into()],
    });
    acl.posix_special_permissions = vec!["SET_GID".into()];
    t.store.set_acl(&t.alice, "/f", &acl).unwrap();
    assert_eq!(
        t.store.get_attributes(&t.bob, "/f").unwrap()["mode"],
        "2640"
    );
    let kept: Acl = serde_json::from_value(t.store.get_acl(&t.bob, "/f").unwrap()).unwrap();
    assert_eq!(kept, acl);
    assert_eq!(
        class(t.store.open_write(&t.bob, "/f")),
        ErrorClass::AccessDenied
    );

    // Only the owner (or an administrator) sets it; names the API does not know are refused.
    assert_eq!(
        class(t.store.set_acl(&t.bob, "/f", &acl)),
        ErrorClass::NotOwner
    );
    let mut bad = acl.clone();
    bad.aces[0].rights.push("FLY".into());
    assert_eq!(
        class(t.store.set_acl(&t.alice, "/f", &bad)),
        ErrorClass::Decode
    );

    // A chmod replaces the kept ACL with one generated from the new mode.
    assert_eq!(chmod(&t.alice, "0604"), "0604");
    let regenerated: Acl = serde_json::from_value(t.store.get_acl(&t.bob, "/f").unwrap()).unwrap();
    assert_eq!(regenerated.aces.len(), 3);
    assert!(regenerated.aces[1].rights.is_empty());
    assert!(regenerated.aces[2].rights.contains(&"READ".to_string()));
}

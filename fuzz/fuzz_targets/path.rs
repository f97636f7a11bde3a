//! FTP paths from a hostile client, resolved under a user's root.
//!
//! `to_cluster` must confine every path to the root: a cluster path that is absolute, is the
//! root or lies below it, and has no `.`, `..` or empty component and no NUL, CR or LF.
//! It is also compared with a model (lexical resolution on bytes), and resolving its own
//! result again must change nothing. `split` must give back the path it split.

#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use qftpd::ftp::fuzzing::{PathError, split, to_cluster};

// The input: the root's names, 0xFF (never in UTF-8), then the path's bytes as libunftp hands
// them over (the working directory joined with the argument). The root is made valid: its
// names lose `/`, NUL, CR and LF, and empty names, `.` and `..` are dropped; a trailing `/`
// is kept as written. Without 0xFF, the whole input is the path and the root is `/`.
fuzz_target!(|data: &[u8]| {
    let (root, path) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (String::from_utf8_lossy(&data[..i]), &data[i + 1..]),
        None => ("".into(), data),
    };
    let names: Vec<String> = root
        .split('/')
        .map(|n| n.replace(['\0', '\r', '\n'], ""))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect();
    let root_n = format!("/{}", names.join("/"));
    let written = if root.ends_with('/') && root_n != "/" {
        format!("{root_n}/")
    } else {
        root_n.clone()
    };
    let root = root_n;
    let ftp = Path::new(OsStr::from_bytes(path));
    let got = to_cluster(&written, ftp);
    assert_eq!(got, model(&root, path), "root {written:?}, path {ftp:?}");
    if let Ok(cp) = &got {
        check_confined(&root, cp);
        check_stable(&root, cp);
        check_split(&root, cp);
    }
    if let Ok(text) = std::str::from_utf8(path)
        && let Some((dir, name)) = split(text)
    {
        assert!(!dir.is_empty() && !name.is_empty() && !name.contains('/'));
    }
});

/// Lexical resolution: empty names and `.` are skipped, `..` drops the last name (never
/// above the root); every name, even one dropped later, must be UTF-8 without NUL, CR, LF.
fn model(root: &str, path: &[u8]) -> Result<String, PathError> {
    let mut parts: Vec<&str> = Vec::new();
    for name in path.split(|b| *b == b'/') {
        match name {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            name => {
                let name = std::str::from_utf8(name).map_err(|_| PathError::NotUtf8)?;
                if name.contains(['\0', '\r', '\n']) {
                    return Err(PathError::BadCharacter);
                }
                parts.push(name);
            }
        }
    }
    Ok(match (root, parts.is_empty()) {
        (_, true) => root.to_string(),
        ("/", false) => format!("/{}", parts.join("/")),
        (_, false) => format!("{root}/{}", parts.join("/")),
    })
}

fn check_confined(root: &str, cp: &str) {
    assert!(cp.starts_with('/'), "{cp:?} is not absolute");
    let below = root == "/" || cp == root || cp.starts_with(&format!("{root}/"));
    assert!(below, "{cp:?} is not under {root:?}");
    assert!(!cp.contains("//"), "{cp:?} has an empty name");
    assert!(cp == "/" || !cp.ends_with('/'), "{cp:?} ends with /");
    assert!(
        !cp.contains(['\0', '\r', '\n']),
        "{cp:?} has a control character"
    );
    for name in cp.split('/').skip(1) {
        assert!(name != "." && name != "..", "{cp:?} has {name:?}");
    }
}

/// The path below the root, as the client would now name it, resolves to the same path.
fn check_stable(root: &str, cp: &str) {
    let rel = if root == "/" { cp } else { &cp[root.len()..] };
    let rel = if rel.is_empty() { "/" } else { rel };
    assert_eq!(to_cluster(root, Path::new(rel)).as_deref(), Ok(cp));
    assert_eq!(to_cluster("/", Path::new(cp)).as_deref(), Ok(cp));
}

fn check_split(root: &str, cp: &str) {
    match split(cp) {
        None => assert_eq!(cp, "/", "only the top has no name"),
        Some((dir, name)) => {
            assert!(
                !name.is_empty() && !name.contains('/'),
                "{cp:?}: name {name:?}"
            );
            let joined = if dir == "/" {
                format!("/{name}")
            } else {
                format!("{dir}/{name}")
            };
            assert_eq!(joined, cp);
            assert!(dir.starts_with('/') && (dir == "/" || !dir.ends_with('/')));
            if cp != root {
                assert!(
                    root == "/" || dir.starts_with(root),
                    "{dir:?} outside {root:?}"
                );
            }
        }
    }
}

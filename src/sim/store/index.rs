//! The index from inode to (parent inode, name) that answers id references: filled as objects
//! are met, rebuilt by a walk of the tree when it misses.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use super::super::error::{ApiError, ApiResult, ErrorClass};
use super::{Obj, ROOT_ID, Store};

impl Store {
    /// Resolves an id through the index, rebuilding it once when it misses or is stale.
    pub(super) fn resolve_id(&self, id: u64) -> ApiResult<Obj> {
        if id == ROOT_ID {
            return self.load_root();
        }
        let ino = self.id_of(id);
        for attempt in 0..2 {
            if attempt == 1 {
                self.rebuild_index();
            }
            if let Some(path) = self.indexed_path(ino) {
                let fs = self.fs_path(&path);
                if let Ok(obj) = self.load(&fs, &path)
                    && obj.meta.ino() == ino
                {
                    return Ok(obj);
                }
            }
        }
        Err(ApiError::new(
            ErrorClass::NoSuchEntry,
            format!("No file with id {id}"),
        ))
    }

    /// The API path of an indexed inode, walking up the parent links.
    fn indexed_path(&self, ino: u64) -> Option<String> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let mut names = Vec::new();
        let mut cur = ino;
        while cur != self.root_ino {
            let (parent, name) = index.get(&cur)?;
            names.push(name.as_str());
            cur = *parent;
            if names.len() > 4096 {
                return None;
            }
        }
        names.reverse();
        Some(format!("/{}", names.join("/")))
    }

    /// Records that `ino` is called `name` in directory `parent_ino`.
    pub fn remember(&self, ino: u64, parent_ino: u64, name: &str) {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        match index.get(&ino) {
            Some((p, n)) if *p == parent_ino && n == name => {}
            _ => {
                index.insert(ino, (parent_ino, name.to_string()));
            }
        }
    }

    /// Forgets an inode that was removed.
    pub fn forget(&self, ino: u64) {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ino);
        self.link_owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ino);
    }

    /// Walks the whole tree and rebuilds the index from what is there now.
    fn rebuild_index(&self) {
        let mut fresh = HashMap::new();
        let mut stack = vec![(self.root.clone(), self.root_ino)];
        while let Some((dir, dir_ino)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let (Ok(meta), Some(name)) = (
                    entry.metadata(),
                    entry.file_name().to_str().map(String::from),
                ) else {
                    continue;
                };
                fresh.insert(meta.ino(), (dir_ino, name));
                if meta.is_dir() {
                    stack.push((entry.path(), meta.ino()));
                }
            }
        }
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }
}

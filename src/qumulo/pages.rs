//! A directory listing read one page at a time.

use std::collections::HashSet;

use super::api::FileAttr;
use super::error::Error;
use super::session::Session;

/// A directory listing read one page at a time, following `paging.next` (a listing that
/// sends the same next page twice is refused rather than followed forever).
#[derive(Debug)]
pub struct Pages {
    dir: String,
    size: usize,
    /// The next page's URI; `None` before the first page and after the last.
    next: Option<String>,
    seen: HashSet<String>,
    done: bool,
    /// The canonical path of the directory, as its first page gave it.
    path: Option<String>,
}

impl Pages {
    /// The listing of `dir`, `size` entries a page.
    pub fn new(dir: &str, size: usize) -> Self {
        Self {
            dir: dir.to_string(),
            size,
            next: None,
            seen: HashSet::new(),
            done: false,
            path: None,
        }
    }

    /// The canonical path of the directory listed (ending in `/`), as the cluster reported it
    /// with the first page; `None` before the first page, or when the cluster did not say.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The next page's entries, `None` after the last page.
    pub async fn next(&mut self, session: &Session) -> Result<Option<Vec<FileAttr>>, Error> {
        if self.done {
            return Ok(None);
        }
        let page = session
            .list_page(&self.dir, self.next.as_deref(), self.size)
            .await?;
        if self.next.is_none() {
            self.path = page.path;
        }
        match page.next {
            None => self.done = true,
            Some(n) if !self.seen.insert(n.clone()) => {
                self.done = true;
                return Err(Error::Decode(format!(
                    "listing {}: the cluster sent the next page {n:?} twice",
                    self.dir
                )));
            }
            Some(n) => self.next = Some(n),
        }
        Ok(Some(page.files))
    }
}

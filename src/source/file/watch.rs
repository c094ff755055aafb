//! inotify watches on the directories that hold (or will hold) followed
//! files, so appends, creations, renames and truncations are seen at once.
//!
//! Directories are watched rather than files: a directory watch keeps
//! reporting by name across rotations, and it sees a file that does not
//! exist yet being created. The [`Watcher`] owns the inotify instance and
//! the map from watch descriptors to directories.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// What a batch of inotify events says.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Paths that were written, created, moved or removed.
    pub(crate) paths: Vec<PathBuf>,
    /// Events were lost, or a watched directory itself went away: look at
    /// everything again.
    pub(crate) rescan: bool,
}

/// inotify watches on directories.
pub(crate) struct Watcher {
    inotify: Inotify,
    by_dir: HashMap<PathBuf, WatchDescriptor>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    buffer: Vec<u8>,
}

impl Watcher {
    pub(crate) fn new() -> io::Result<Watcher> {
        Ok(Watcher {
            inotify: Inotify::init()?,
            by_dir: HashMap::new(),
            by_wd: HashMap::new(),
            buffer: vec![0; 64 * 1024],
        })
    }

    /// The descriptor that becomes readable when events are pending.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Whether `dir` is watched.
    pub(crate) fn watches(&self, dir: &Path) -> bool {
        self.by_dir.contains_key(dir)
    }

    /// Watches `dir` (once). Writes, truncations, creations, renames in and
    /// out and removals of its entries are reported, and so is the
    /// directory's own removal.
    pub(crate) fn watch(&mut self, dir: &Path) -> io::Result<()> {
        if self.by_dir.contains_key(dir) {
            return Ok(());
        }
        let mask = WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR;
        let wd = self.inotify.watches().add(dir, mask)?;
        self.by_dir.insert(dir.to_path_buf(), wd.clone());
        self.by_wd.insert(wd, dir.to_path_buf());
        Ok(())
    }

    /// Reads the pending events without blocking.
    pub(crate) fn read(&mut self) -> io::Result<Changes> {
        let mut changes = Changes::default();
        loop {
            let events = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(changes),
                Err(e) => return Err(e),
            };
            let mut any = false;
            let mut gone = Vec::new();
            for event in events {
                any = true;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    changes.rescan = true;
                    continue;
                }
                if event.mask.intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
                    // The directory went away (or moved): its watch is dead
                    // or about to be, and a new directory may take its place.
                    gone.push(event.wd.clone());
                    changes.rescan = true;
                    continue;
                }
                if let (Some(dir), Some(name)) = (self.by_wd.get(&event.wd), event.name) {
                    push_path(&mut changes.paths, dir, name);
                }
            }
            for wd in gone {
                if let Some(dir) = self.by_wd.remove(&wd) {
                    self.by_dir.remove(&dir);
                }
            }
            if !any {
                return Ok(changes);
            }
        }
    }
}

fn push_path(paths: &mut Vec<PathBuf>, dir: &Path, name: &OsStr) {
    let path = dir.join(name);
    // Appends come as runs of MODIFY events for one file.
    if paths.last() != Some(&path) {
        paths.push(path);
    }
}

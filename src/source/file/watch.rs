//! inotify watches on the directories that hold (or will hold) followed
//! files, so appends, creations, renames and truncations are seen at once.
//!
//! Directories are watched rather than files: a directory watch keeps
//! reporting by name across rotations, and it sees a file that does not
//! exist yet being created. A followed path that is a symbolic link also
//! gets a watch on the file it points to, whose directory may not be
//! watched. The [`Watcher`] owns the inotify instance and the map from
//! watch descriptors to what they watch.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// What a batch of inotify events says.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Paths that were written, created, moved or removed.
    pub(crate) paths: Vec<PathBuf>,
    /// Events were lost, a watched directory itself went away, or a
    /// directory was created in one: look at everything again.
    pub(crate) rescan: bool,
}

/// What a watch descriptor watches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Watched {
    Dir(PathBuf),
    /// The file a followed symbolic link points to, reported as the link.
    File(PathBuf),
}

/// inotify watches on directories (and on the targets of symbolic links).
pub(crate) struct Watcher {
    inotify: Inotify,
    by_dir: HashMap<PathBuf, WatchDescriptor>,
    by_wd: HashMap<WatchDescriptor, Watched>,
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
        self.by_wd.insert(wd, Watched::Dir(dir.to_path_buf()));
        Ok(())
    }

    /// Watches the file `link` points to now, reporting its writes as
    /// `link`'s. Watching the same file again is harmless.
    pub(crate) fn watch_link_target(&mut self, link: &Path) -> io::Result<()> {
        let wd = self.inotify.watches().add(link, WatchMask::MODIFY)?;
        self.by_wd.entry(wd).or_insert_with(|| Watched::File(link.to_path_buf()));
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
                match self.by_wd.get(&event.wd) {
                    Some(Watched::File(link)) => {
                        if event.mask.contains(EventMask::IGNORED) {
                            gone.push(event.wd.clone());
                        } else {
                            push_path(&mut changes.paths, link.clone());
                        }
                    }
                    Some(Watched::Dir(dir)) => {
                        if event
                            .mask
                            .intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF)
                        {
                            // The directory went away (or moved): its watch is
                            // dead or about to be, and a new directory may take
                            // its place.
                            gone.push(event.wd.clone());
                            changes.rescan = true;
                        } else if let Some(name) = event.name {
                            if event.mask.contains(EventMask::ISDIR)
                                && event.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
                            {
                                changes.rescan = true;
                            }
                            push_path(&mut changes.paths, dir.join(name));
                        }
                    }
                    None => {}
                }
            }
            for wd in gone {
                if let Some(Watched::Dir(dir)) = self.by_wd.remove(&wd) {
                    self.by_dir.remove(&dir);
                }
            }
            if !any {
                return Ok(changes);
            }
        }
    }
}

fn push_path(paths: &mut Vec<PathBuf>, path: PathBuf) {
    // Appends come as runs of MODIFY events for one file.
    if paths.last() != Some(&path) {
        paths.push(path);
    }
}

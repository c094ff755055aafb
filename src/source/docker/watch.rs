//! Change notifications for the json-file logs read from disk: one inotify
//! instance for the whole Docker source, however many containers.
//!
//! A follow task [`LogWatcher::watch`]es its container's directory for
//! names starting with its log file's name (`<id>-json.log`, and the
//! rotated `<id>-json.log.1`, …) and awaits [`Subscription::changed`]
//! when it has read everything. Other files in the directory (dockerd
//! rewrites `config.v2.json` and `hostconfig.json`) wake nobody.
//!
//! One instance rather than one per container, because inotify instances
//! are limited per user (128 by default), and warden's root shares the
//! limit with every root process on the host.
//!
//! State: the instance, read by one tokio task; and per watched directory,
//! the subscribers to wake. A wake-up is a permit ([`Notify::notify_one`]),
//! so one that comes while its follower is busy reading is not lost.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Watches log directories; see the module docs. Dropping it stops the
/// task reading events.
#[derive(Debug)]
pub struct LogWatcher {
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    watches: Watches,
    subscribers: HashMap<WatchDescriptor, Vec<Arc<Subscriber>>>,
    /// The instance broke: subscribers are woken at once, and new ones get
    /// an error (their follower falls back to polling).
    broken: bool,
}

#[derive(Debug)]
struct Subscriber {
    prefix: OsString,
    notify: Notify,
}

/// Wakes its follower when its log files change; removes the watch when
/// dropped (unless another follower of the same directory still needs it).
#[derive(Debug)]
pub struct Subscription {
    shared: Arc<Shared>,
    wd: WatchDescriptor,
    subscriber: Arc<Subscriber>,
}

impl LogWatcher {
    /// Starts the instance and its reader task on the current runtime.
    pub fn start() -> io::Result<LogWatcher> {
        let inotify = Inotify::init()?;
        let watches = inotify.watches();
        // SAFETY: the Inotify owns its descriptor and closes it only when
        // dropped with every Watches handle; nothing here calls its close.
        // So the descriptor stays open and the same while the AsyncFd
        // owns it, and as_raw_fd always returns it.
        let fd = unsafe { AsyncFd::register(inotify) }.map_err(io::Error::from)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { watches, subscribers: HashMap::new(), broken: false }),
        });
        let reader = tokio::spawn(read_events(fd, Arc::clone(&shared)));
        Ok(LogWatcher { shared, reader })
    }

    /// Watches `dir` for changes to files whose names start with `prefix`.
    pub fn watch(&self, dir: &Path, prefix: &str) -> io::Result<Subscription> {
        let mut state = self.shared.lock();
        if state.broken {
            return Err(io::Error::other("the inotify instance failed"));
        }
        let mask = WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::DELETE_SELF
            | WatchMask::ONLYDIR;
        let wd = state.watches.add(dir, mask)?;
        let subscriber = Arc::new(Subscriber { prefix: OsString::from(prefix), notify: Notify::new() });
        state.subscribers.entry(wd.clone()).or_default().push(Arc::clone(&subscriber));
        Ok(Subscription { shared: Arc::clone(&self.shared), wd, subscriber })
    }
}

impl Drop for LogWatcher {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Subscription {
    /// Resolves once the files changed since the last time it resolved (at
    /// once if they did meanwhile).
    pub async fn changed(&self) {
        self.subscriber.notify.notified().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        // The kernel may have dropped the watch (directory removed) and
        // given its number to another directory: only a list that still
        // holds this subscriber is this watch's.
        let Some(list) = state.subscribers.get_mut(&self.wd) else { return };
        let before = list.len();
        list.retain(|s| !Arc::ptr_eq(s, &self.subscriber));
        if list.len() == before || !list.is_empty() {
            return;
        }
        state.subscribers.remove(&self.wd);
        // Fails when the kernel already removed it; nothing to do then.
        let _ = state.watches.remove(self.wd.clone());
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent (each
        // change is one insert or remove), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_all(state: &State) {
        for subscriber in state.subscribers.values().flatten() {
            subscriber.notify.notify_one();
        }
    }
}

async fn read_events(mut fd: AsyncFd<Inotify>, shared: Arc<Shared>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let result = match fd.readable_mut().await {
            Ok(mut guard) => match guard.try_io(|inotify| {
                let events = inotify.get_mut().read_events(&mut buffer)?;
                let mut state = shared.lock();
                for event in events {
                    if event.mask.contains(EventMask::Q_OVERFLOW) {
                        Shared::wake_all(&state);
                        continue;
                    }
                    let Some(list) = state.subscribers.get(&event.wd) else { continue };
                    for subscriber in list {
                        let matches = event
                            .name
                            .is_none_or(|name| name.as_bytes().starts_with(subscriber.prefix.as_bytes()));
                        if matches {
                            subscriber.notify.notify_one();
                        }
                    }
                    if event.mask.contains(EventMask::IGNORED) {
                        // The watch is gone (its directory was removed).
                        state.subscribers.remove(&event.wd);
                    }
                }
                Ok(())
            }) {
                Ok(result) => result,
                // Not readable after all: wait again.
                Err(_would_block) => continue,
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "reading inotify events failed; json-file logs are polled instead");
            let mut state = shared.lock();
            state.broken = true;
            Shared::wake_all(&state);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(10);

    async fn changed_within(subscription: &Subscription) {
        tokio::time::timeout(DEADLINE, subscription.changed()).await.expect("no change notification");
    }

    #[tokio::test]
    async fn wakes_the_subscriber_of_a_changed_log_and_forgets_dropped_ones() {
        let dir = tempfile::tempdir().unwrap();
        let watcher = LogWatcher::start().unwrap();
        let a = watcher.watch(dir.path(), "a-json.log").unwrap();
        let b = watcher.watch(dir.path(), "b-json.log").unwrap();
        std::fs::write(dir.path().join("config.v2.json"), "{}").unwrap();
        std::fs::write(dir.path().join("a-json.log"), "x\n").unwrap();
        changed_within(&a).await;
        std::fs::rename(dir.path().join("a-json.log"), dir.path().join("a-json.log.1")).unwrap();
        changed_within(&a).await;
        std::fs::write(dir.path().join("b-json.log"), "x\n").unwrap();
        changed_within(&b).await;
        assert_eq!(watcher.shared.lock().subscribers.values().map(Vec::len).sum::<usize>(), 2);
        drop(a);
        drop(b);
        assert!(watcher.shared.lock().subscribers.is_empty());
    }

    #[tokio::test]
    async fn a_removed_directory_wakes_its_subscribers() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("container");
        std::fs::create_dir(&dir).unwrap();
        let watcher = LogWatcher::start().unwrap();
        let subscription = watcher.watch(&dir, "c-json.log").unwrap();
        std::fs::remove_dir(&dir).unwrap();
        changed_within(&subscription).await;
        drop(subscription);
        assert!(watcher.watch(&dir, "c-json.log").is_err(), "the directory is gone");
    }
}

//! A source's reader on its own OS thread, waiting on file descriptors.
//!
//! The file and journald sources read with blocking calls (`read(2)` on
//! followed files, libsystemd's journal API) and wait for news on a file
//! descriptor (inotify, the journal's). Each runs its loop on a dedicated
//! thread rather than on tokio's workers, and waits with `poll(2)` on its
//! descriptor plus a [`Stop`] eventfd, so it costs no CPU while idle and
//! still notices shutdown at once.
//!
//! [`run_on_thread`] owns the thread: it signals the [`Stop`] when the
//! shutdown token is cancelled (or when its own future is dropped) and
//! returns the loop's result once the thread has finished. The thread sends
//! to the daemon's bounded channel with [`Stop::send`], which waits while the
//! channel is full but gives up when stop is requested, so a daemon that
//! stops receiving cannot hang a source's shutdown.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Tells a reader thread to stop: a cancellation token plus an eventfd that
/// [`Stop::wait`] also polls, so a wait ends as soon as the token is
/// cancelled.
pub(crate) struct Stop {
    token: CancellationToken,
    event: OwnedFd,
    /// The runtime of the task that started the thread, for waiting on the
    /// channel and the token together in [`Stop::send`].
    runtime: Handle,
}

/// Why [`Stop::send`] did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsent {
    /// The receiver is gone.
    Closed,
    /// Stop was requested while the channel was full.
    Stopped,
}

/// What ended a [`Stop::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The descriptor at this index of the `fds` argument is readable (or
    /// reports an error or hang-up, which its reader will see).
    Ready(usize),
    /// The timeout passed.
    Timeout,
    /// Stop was requested.
    Stopped,
}

impl Stop {
    fn new(token: CancellationToken, runtime: Handle) -> io::Result<Stop> {
        // SAFETY: eventfd has no memory preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let event = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Stop { token, event, runtime })
    }

    /// Whether stop was requested.
    pub(crate) fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Wakes a thread blocked in [`Stop::wait`]. The counter is never read
    /// back: once stopped, the thread only finishes.
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. A
        // failure (counter overflow) cannot happen with one write per stop
        // and would leave the thread to notice the token at its next wake.
        unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Sends `value`, waiting while the channel is full, unless the receiver
    /// is gone or stop is requested meanwhile.
    pub(crate) fn send<T>(&self, tx: &mpsc::Sender<T>, value: T) -> Result<(), Unsent> {
        let value = match tx.try_send(value) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Unsent::Closed),
            Err(mpsc::error::TrySendError::Full(value)) => value,
        };
        self.runtime.block_on(async {
            tokio::select! {
                permit = tx.reserve() => match permit {
                    Ok(permit) => {
                        permit.send(value);
                        Ok(())
                    }
                    Err(_) => Err(Unsent::Closed),
                },
                () = self.token.cancelled() => Err(Unsent::Stopped),
            }
        })
    }

    /// Waits until one of `fds` is readable, `timeout` passes (`None`:
    /// forever) or stop is requested, whichever comes first.
    pub(crate) fn wait(&self, fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Woken> {
        if self.is_stopped() {
            return Ok(Woken::Stopped);
        }
        let mut pollfds: Vec<libc::pollfd> = fds
            .iter()
            .map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        pollfds.push(libc::pollfd { fd: self.event.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 });
        let ms = match timeout {
            None => -1,
            // Round up, so a short timeout does not become a busy zero.
            Some(t) => i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
        };
        loop {
            // SAFETY: `pollfds` is a live, correctly sized array of pollfd.
            let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                return Ok(Woken::Timeout);
            }
            break;
        }
        if self.is_stopped() || pollfds.last().is_some_and(|p| p.revents != 0) {
            return Ok(Woken::Stopped);
        }
        let ready = pollfds.iter().position(|p| p.revents != 0).unwrap_or(0);
        Ok(Woken::Ready(ready))
    }
}

/// Why a source's reader thread gave no result of its own.
#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    #[error("cannot start the {name} thread: {source}")]
    Spawn { name: String, source: io::Error },
    #[error("the {name} thread panicked")]
    Panicked { name: String },
}

/// Runs `body` on a new thread named `name` and waits for it. The thread's
/// [`Stop`] fires when `shutdown` is cancelled or when this future is
/// dropped, so a reader never outlives the task that started it by more
/// than its current blocking call.
pub(crate) async fn run_on_thread<T, F>(
    name: &str,
    shutdown: &CancellationToken,
    body: F,
) -> Result<T, ThreadError>
where
    T: Send + 'static,
    F: FnOnce(Arc<Stop>) -> T + Send + 'static,
{
    let token = shutdown.child_token();
    let _stop_on_drop = token.clone().drop_guard();
    let stop = Arc::new(
        Stop::new(token.clone(), Handle::current())
            .map_err(|source| ThreadError::Spawn { name: name.to_string(), source })?,
    );
    let (done_tx, mut done_rx) = oneshot::channel();
    let thread_stop = Arc::clone(&stop);
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let result = body(thread_stop);
            // The receiver is gone only when the caller was dropped; the
            // result has nobody to go to then.
            let _ = done_tx.send(result);
        })
        .map_err(|source| ThreadError::Spawn { name: name.to_string(), source })?;
    let panicked = || ThreadError::Panicked { name: name.to_string() };
    tokio::select! {
        result = &mut done_rx => return result.map_err(|_| panicked()),
        () = token.cancelled() => stop.wake(),
    }
    done_rx.await.map_err(|_| panicked())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn cancelling_wakes_a_thread_blocked_in_wait() {
        let shutdown = CancellationToken::new();
        let canceller = shutdown.clone();
        let run = run_on_thread("test-wait", &shutdown, |stop| {
            let started = Instant::now();
            let woken = stop.wait(&[], None);
            (woken.ok(), started.elapsed())
        });
        let (woken, _) = tokio::join!(run, async move {
            tokio::task::yield_now().await;
            canceller.cancel();
        });
        let (woken, _elapsed) = woken.unwrap();
        assert_eq!(woken, Some(Woken::Stopped));
    }

    #[tokio::test]
    async fn wait_reports_a_readable_descriptor_and_timeouts() {
        let shutdown = CancellationToken::new();
        let result = run_on_thread("test-ready", &shutdown, |stop| {
            let (reader, mut writer) = std::io::pipe().unwrap();
            let idle = stop.wait(&[reader.as_fd()], Some(Duration::from_millis(1))).unwrap();
            std::io::Write::write_all(&mut writer, b"x").unwrap();
            let ready = stop.wait(&[reader.as_fd()], Some(Duration::from_secs(30))).unwrap();
            (idle, ready)
        })
        .await
        .unwrap();
        assert_eq!(result, (Woken::Timeout, Woken::Ready(0)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_to_a_full_channel_waits_for_room_or_gives_up_on_stop() {
        let shutdown = CancellationToken::new();
        let (tx, mut rx) = mpsc::channel(1);
        let (second_tx, second_rx) = oneshot::channel();
        let sender = run_on_thread("test-send", &shutdown, move |stop| {
            let first = stop.send(&tx, 1);
            // Full now: this waits until the test receives 1.
            let second = stop.send(&tx, 2);
            let _ = second_tx.send(());
            // Full again (2 is not received): only stop ends this wait.
            let third = stop.send(&tx, 3);
            (first, second, third)
        });
        let receiver = async {
            assert_eq!(rx.recv().await, Some(1));
            second_rx.await.unwrap();
            shutdown.cancel();
        };
        let (sent, ()) = tokio::join!(sender, receiver);
        assert_eq!(sent.unwrap(), (Ok(()), Ok(()), Err(Unsent::Stopped)));
        assert_eq!(rx.recv().await, Some(2));
    }

    #[tokio::test]
    async fn a_send_to_a_closed_channel_says_so() {
        let shutdown = CancellationToken::new();
        let (tx, rx) = mpsc::channel::<u8>(1);
        drop(rx);
        let sent = run_on_thread("test-closed", &shutdown, move |stop| stop.send(&tx, 1)).await.unwrap();
        assert_eq!(sent, Err(Unsent::Closed));
    }

    #[tokio::test]
    async fn a_panicking_body_is_reported() {
        let shutdown = CancellationToken::new();
        let result = run_on_thread("test-panic", &shutdown, |_| -> () { panic!("boom") }).await;
        assert!(matches!(result, Err(ThreadError::Panicked { .. })), "{result:?}");
    }
}

//! One warden at a time in the host's network namespace.
//!
//! Docker end-to-end tests must run warden in the host namespace (Docker's
//! `DOCKER-USER` chain lives there), and two wardens there would rewrite
//! each other's chains and destroy each other's sets. Every test that does
//! so holds this lock, a machine-wide `flock`, for its whole run: tests in
//! other test binaries, and other checkouts on the same machine, wait.

// Shared by several test crates, each using part of it.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The lock file; under /run so it disappears with the machine.
pub const LOCK_PATH: &str = "/run/warden-test-host-firewall.lock";

/// Held while the value lives.
pub struct HostFirewallLock {
    _file: File,
}

impl HostFirewallLock {
    /// Waits (up to `within`) for the lock; panics with a clear message if
    /// another test holds it for longer.
    pub fn acquire(within: Duration) -> HostFirewallLock {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_PATH)
            .unwrap_or_else(|e| panic!("cannot open {LOCK_PATH}: {e}"));
        let deadline = Instant::now() + within;
        loop {
            // SAFETY: a valid open fd; LOCK_NB makes this return at once.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return HostFirewallLock { _file: file };
            }
            assert!(
                Instant::now() < deadline,
                "another test has held {LOCK_PATH} for over {within:?}: a warden in the host namespace is still running"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

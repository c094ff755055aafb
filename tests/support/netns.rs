//! Throwaway network namespaces for tests and benches that touch kernel
//! firewall state, so they never touch the host's.
//!
//! [`TestNetns::create`] runs `ip netns add warden-test-…`; the namespace
//! is deleted when the value drops, also when a test panics. Code runs
//! inside it through [`TestNetns::run`], on a fresh thread that joined the
//! namespace with `setns`, so the calling thread never changes namespace.
//!
//! Without root or namespace support, [`TestNetns::create`] returns `None`
//! after saying why, so the test can skip. With `CI=true`, it panics
//! instead: in CI these tests must run.

// Shared by several test and bench crates, each using part of it.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// `ip netns add` sets up /run/netns on first use; serialise it within a
/// test binary so concurrent first uses do not race.
static IP_NETNS: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace that exists until this value drops.
pub struct TestNetns {
    name: String,
    file: File,
}

impl TestNetns {
    /// Creates a namespace named after `tag`, or explains why it cannot (and
    /// panics if `CI=true`).
    pub fn create(tag: &str) -> Option<TestNetns> {
        match Self::try_create(tag) {
            Ok(ns) => Some(ns),
            Err(reason) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("CI=true but this test cannot run: {reason}");
                }
                eprintln!("skipping: {reason}");
                None
            }
        }
    }

    fn try_create(tag: &str) -> Result<TestNetns, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root to create a network namespace (run the tests as root)".into());
        }
        let name =
            format!("warden-test-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let output = {
            let _serial = IP_NETNS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            Command::new("ip").args(["netns", "add", &name]).output()
        };
        let output = output.map_err(|e| format!("cannot run `ip netns add` (install iproute2): {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "`ip netns add {name}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        // From here on, dropping `ns` deletes the namespace.
        let path = format!("/run/netns/{name}");
        match File::open(&path) {
            Ok(file) => Ok(TestNetns { name, file }),
            Err(e) => {
                delete(&name);
                Err(format!("cannot open {path}: {e}"))
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a new thread inside the namespace and returns its result;
    /// a panic in `f` is re-raised here.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let fd = self.file.as_raw_fd();
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                // SAFETY: fd is an open namespace file, kept alive by self.
                let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns into the test namespace: {}", std::io::Error::last_os_error());
                f()
            });
            match worker.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Starts `f` on a new, detached thread inside the namespace (for
    /// listeners and probers that run while the test goes on).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let file = self.file.try_clone().expect("duplicate the namespace fd");
        std::thread::spawn(move || {
            // SAFETY: file is an open namespace file, owned by this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns into the test namespace: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// Runs a command inside the namespace (`ip netns exec NAME …`).
    pub fn exec(&self, program: &str, args: &[&str]) -> std::io::Result<Output> {
        Command::new("ip").args(["netns", "exec", &self.name, program]).args(args).output()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

fn delete(name: &str) {
    let _serial = IP_NETNS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match Command::new("ip").args(["netns", "delete", name]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "warning: `ip netns delete {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("warning: cannot run `ip netns delete {name}`: {e}"),
    }
}

/// True if `program` can be run (for optional cross-checks).
pub fn have_program(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

//! The bounded runner for the external binaries warden still needs
//! (`iptables`, `ip6tables` and their `-save`/`-restore` companions).
//!
//! Every command goes through [`Runner::run`], which:
//! - runs **one command at a time** in the whole process (a global mutex),
//!   so warden never races itself for the xtables lock;
//! - gives each command a **timeout**, after which the command's process
//!   group is killed and the child reaped, so no zombie or stray process
//!   outlives the call;
//! - captures stdout and stderr, each **bounded** (what is beyond the bound
//!   is read and thrown away, so the child never blocks on a full pipe);
//! - turns failures into an [`ExecError`] naming the command line, the exit
//!   status and stderr.
//!
//! Children inherit the calling thread's network namespace, so a thread that
//! joined a namespace with `setns` runs iptables inside it.
//!
//! The runner owns no state besides the global lock; it is cheap to copy.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// One external command at a time, process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long a command may run unless told otherwise. iptables on a busy
/// host with a large ruleset takes well under a second; a hung one is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of stdout kept by default: an `iptables-save` of a large
/// Docker host is a few hundred KiB.
pub const DEFAULT_STDOUT_LIMIT: usize = 16 << 20;

/// Most bytes of stderr kept by default (it only goes into error messages).
pub const DEFAULT_STDERR_LIMIT: usize = 16 << 10;

/// Runs external commands one at a time, each with a timeout and bounded
/// output. See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Runner {
    timeout: Duration,
    stdout_limit: usize,
    stderr_limit: usize,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            timeout: DEFAULT_TIMEOUT,
            stdout_limit: DEFAULT_STDOUT_LIMIT,
            stderr_limit: DEFAULT_STDERR_LIMIT,
        }
    }
}

/// What a command that exited with status 0 printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// True if stdout was longer than the runner's limit and was cut.
    pub stdout_truncated: bool,
}

/// A command that could not be run, overran its timeout, or failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot run `{command}`: {source}{}", install_hint(source))]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },

    #[error("`{command}` did not finish within {timeout:?} and was killed{}", stderr_suffix(stderr))]
    TimedOut { command: String, timeout: Duration, stderr: String },

    #[error("`{command}` failed ({}){}", describe_status(*status), stderr_suffix(stderr))]
    Failed { command: String, status: ExitStatus, stdout: String, stderr: String },

    #[error("`{command}`: lost contact with the child process: {source}")]
    Io {
        command: String,
        #[source]
        source: io::Error,
    },
}

impl ExecError {
    /// The command line that failed, as it appears in the message.
    pub fn command(&self) -> &str {
        match self {
            ExecError::Spawn { command, .. }
            | ExecError::TimedOut { command, .. }
            | ExecError::Failed { command, .. }
            | ExecError::Io { command, .. } => command,
        }
    }

    /// What the command wrote on stderr, if it ran.
    pub fn stderr(&self) -> &str {
        match self {
            ExecError::TimedOut { stderr, .. } | ExecError::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }

    /// True if the program is not installed.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ExecError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn install_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::NotFound { " (is it installed and on PATH?)" } else { "" }
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() { String::new() } else { format!(": {stderr}") }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// `program arg…`, quoting arguments that would otherwise read ambiguously.
pub fn command_line(program: &str, args: &[&str]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        let plain =
            !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:,=+@%".contains(&b));
        if plain {
            line.push_str(arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', r"'\''"));
            line.push('\'');
        }
    }
    line
}

impl Runner {
    /// A runner with the default timeout and output limits.
    pub fn new() -> Self {
        Runner::default()
    }

    pub fn with_timeout(self, timeout: Duration) -> Self {
        Runner { timeout, ..self }
    }

    pub fn with_stdout_limit(self, bytes: usize) -> Self {
        Runner { stdout_limit: bytes, ..self }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `program` with `args`, feeding `stdin` if given, and returns its
    /// output if it exits with status 0. Waits for any other command of this
    /// process to finish first (that wait is not part of the timeout).
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Output, ExecError> {
        let command = command_line(program, args);
        // A poisoned lock only means another run panicked; the lock guards no data.
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tracing::debug!(command = %command, "running");
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills whatever it started too.
            .process_group(0)
            .spawn()
            .map_err(|source| ExecError::Spawn { command: command.clone(), source })?;

        let collected = thread::scope(|scope| {
            let writer = child.stdin.take().zip(stdin).map(|(mut pipe, bytes)| {
                // A child that exits without reading gives EPIPE: its exit status tells the story.
                scope.spawn(move || {
                    let _ = pipe.write_all(bytes);
                })
            });
            let stdout =
                child.stdout.take().map(|pipe| scope.spawn(move || read_bounded(pipe, self.stdout_limit)));
            let stderr =
                child.stderr.take().map(|pipe| scope.spawn(move || read_bounded(pipe, self.stderr_limit)));
            let waited = wait_with_deadline(&mut child, Instant::now() + self.timeout);
            if !matches!(waited, Ok(Some(_))) {
                kill_and_reap(&mut child);
            }
            // The group is gone, so the pipes are closed and the readers end.
            if let Some(writer) = writer {
                let _ = writer.join();
            }
            let join = |h: Option<thread::ScopedJoinHandle<'_, (Vec<u8>, bool)>>| {
                h.and_then(|h| h.join().ok()).unwrap_or_default()
            };
            (waited, join(stdout), join(stderr))
        });
        let (waited, (stdout, stdout_truncated), (stderr, _)) = collected;
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        match waited {
            Ok(Some(status)) if status.success() => Ok(Output { stdout, stderr, stdout_truncated }),
            Ok(Some(status)) => Err(ExecError::Failed { command, status, stdout, stderr }),
            Ok(None) => Err(ExecError::TimedOut { command, timeout: self.timeout, stderr }),
            Err(source) => Err(ExecError::Io { command, source }),
        }
    }
}

/// Reads `pipe` to its end, keeping the first `limit` bytes; returns them
/// and whether more was thrown away.
fn read_bounded(mut pipe: impl Read, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (kept, truncated)
}

/// Waits for the child to exit until `deadline`; `Ok(None)` if it is still
/// running then. Sleeps on a pidfd where the kernel has them (5.3+),
/// otherwise polls with a short, growing interval.
fn wait_with_deadline(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let pidfd = open_pidfd(child.id());
    let mut backoff = Duration::from_micros(500);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match &pidfd {
            Some(fd) => poll_readable(fd, left),
            None => {
                thread::sleep(backoff.min(left));
                backoff = (backoff * 2).min(Duration::from_millis(20));
            }
        }
    }
}

fn open_pidfd(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a fresh fd that we now own.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Sleeps until the pidfd is readable (the process exited) or `left` passes.
fn poll_readable(fd: &std::os::fd::OwnedFd, left: Duration) {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd; an error or EINTR just sends us round the loop.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// Kills the child's process group and reaps the child.
fn kill_and_reap(child: &mut Child) {
    // SAFETY: kill has no memory preconditions; the group id is the child's
    // pid (process_group(0)), and the child is not reaped yet, so the id
    // cannot have been reused.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_stdout_and_feeds_stdin() {
        let out = Runner::new().run("sh", &["-c", "cat; echo done >&2"], Some(b"hello\n")).unwrap();
        assert_eq!(out.stdout, "hello\n");
        assert_eq!(out.stderr, "done\n");
        assert!(!out.stdout_truncated);
    }

    #[test]
    fn failures_name_command_status_and_stderr() {
        let err = Runner::new().run("sh", &["-c", "echo 'no such chain' >&2; exit 3"], None).unwrap_err();
        assert!(matches!(err, ExecError::Failed { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo '\\''no such chain'\\'' >&2; exit 3'` failed (exit status 3): no such chain"
        );
        assert_eq!(err.stderr().trim(), "no such chain");
    }

    #[test]
    fn missing_programs_say_so() {
        let err = Runner::new().run("warden-no-such-program", &["-S"], None).unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert!(err.to_string().contains("warden-no-such-program -S"), "{err}");
        assert!(err.to_string().contains("installed"), "{err}");
    }

    #[test]
    fn overrunning_commands_and_their_children_are_killed_and_reaped() {
        let runner = Runner::new().with_timeout(Duration::from_millis(200));
        let started = Instant::now();
        // The grandchild `sleep` holds stdout open: only killing the group ends it.
        let err = runner.run("sh", &["-c", "echo started >&2; sleep 30 & sleep 30"], None).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        match &err {
            ExecError::TimedOut { timeout, stderr, .. } => {
                assert_eq!(*timeout, Duration::from_millis(200));
                assert_eq!(stderr, "started\n");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(err.to_string().contains("was killed"), "{err}");
    }

    #[test]
    fn output_is_bounded_but_drained() {
        let runner = Runner::new().with_stdout_limit(10);
        // 1 MiB of output: far more than a pipe holds, so the child would block if not drained.
        let out = runner.run("sh", &["-c", "head -c 1048576 /dev/zero | tr '\\0' x"], None).unwrap();
        assert_eq!(out.stdout, "xxxxxxxxxx");
        assert!(out.stdout_truncated);
    }

    #[test]
    fn commands_run_one_at_a_time() {
        // Each command appends start and end marks; interleaving would show as start,start.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = format!("echo start >> {0}; sleep 0.05; echo end >> {0}", log.display());
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| Runner::new().run("sh", &["-c", &script], None).unwrap());
            }
        });
        let marks = std::fs::read_to_string(&log).unwrap();
        let marks: Vec<&str> = marks.lines().collect();
        assert_eq!(marks.len(), 8);
        for pair in marks.chunks(2) {
            assert_eq!(pair, ["start", "end"]);
        }
    }

    #[test]
    fn command_lines_quote_what_needs_it() {
        assert_eq!(command_line("iptables", &["-w", "5", "-S", "INPUT"]), "iptables -w 5 -S INPUT");
        assert_eq!(command_line("x", &["a b", ""]), "x 'a b' ''");
    }
}

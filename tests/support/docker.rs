//! Test containers on the local dockerd, with deadlines and cleanup.
//!
//! [`docker_available`] says whether dockerd answers and the test image
//! exists (building it with `scripts/test-image` when missing); without
//! them a test skips, saying why, except with `CI=true`, where it panics.
//! [`TestContainer::run`] starts a container named
//! `warden-test-<tag>-<pid>-<n>-<what>` and removes it (`docker rm -f`)
//! when the value drops, also when the test panics. A container whose test
//! process is gone (killed, or its `rm -f` overran its deadline) is removed
//! by the next test process that checks for Docker: the `<pid>` in the name
//! says whose it is, so suites running at once leave each other's alone.
//! Every `docker` command runs with a deadline and is killed when it
//! overruns.
//!
//! [`DockerProxy`] forwards a unix socket to dockerd's and can be taken
//! down and brought back, so a test can make dockerd "go away" for one
//! client without disturbing anybody else.

// Shared by several test and bench crates, each using part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The image `scripts/test-image` builds from busybox-static.
pub const TEST_IMAGE: &str = "warden-test-busybox:latest";
/// dockerd's socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// A `docker` command taking longer than this is killed.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether Docker tests can run here; says why not (and panics with
/// `CI=true`, where they must run).
pub fn docker_available() -> bool {
    static CHECK: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    match CHECK.get_or_init(check_docker) {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but Docker tests cannot run: {reason}");
            }
            eprintln!("skipping: {reason}");
            false
        }
    }
}

fn check_docker() -> Result<(), String> {
    let version = docker_output(&["version", "--format", "{{.Server.APIVersion}}"])
        .map_err(|e| format!("dockerd does not answer ({e}); start it with scripts/dockerd-up"))?;
    if !version.status.success() {
        return Err(format!(
            "dockerd does not answer ({}); start it with scripts/dockerd-up",
            String::from_utf8_lossy(&version.stderr).trim()
        ));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-image");
    let built = run_with_deadline(Command::new(&script).arg(TEST_IMAGE), COMMAND_DEADLINE)
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !built.status.success() {
        return Err(format!(
            "{} failed to build {TEST_IMAGE}: {}",
            script.display(),
            String::from_utf8_lossy(&built.stderr).trim()
        ));
    }
    remove_orphans();
    Ok(())
}

/// Removes test containers whose test process no longer runs.
fn remove_orphans() {
    let Ok(listed) = docker_output(&["ps", "-a", "--filter", "name=warden-test-", "--format", "{{.Names}}"])
    else {
        return;
    };
    let names = String::from_utf8_lossy(&listed.stdout).into_owned();
    for name in names
        .lines()
        .filter(|name| owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()))
    {
        eprintln!("removing {name}: the test process that started it is gone");
        let _ = docker_output(&["rm", "-f", name]);
    }
}

/// The `<pid>` of a `warden-test-<tag>-<pid>-<n>-<what>` name: the first of
/// two number fields in a row (a tag may hold dashes, never a number field).
fn owner_pid(name: &str) -> Option<u32> {
    let fields: Vec<&str> = name.strip_prefix("warden-test-")?.split('-').collect();
    let number = |field: &str| !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit());
    let at = fields.windows(2).position(|pair| number(pair[0]) && number(pair[1]))?;
    fields[at].parse().ok()
}

/// Runs `docker args...` with a deadline.
pub fn docker_output(args: &[&str]) -> Result<Output, String> {
    run_with_deadline(Command::new("docker").args(args), COMMAND_DEADLINE)
}

/// Runs `docker args...`, panicking with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let output = docker_output(args).unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")));
    assert!(
        output.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn run_with_deadline(command: &mut Command, deadline: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let until = Instant::now() + deadline;
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(_) => return child.wait_with_output().map_err(|e| e.to_string()),
            None if Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after {}s", deadline.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A unique container name: `warden-test-<tag>-<pid>-<n>-<what>`.
pub fn unique_name(tag: &str, what: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("warden-test-{tag}-{}-{n}-{what}", std::process::id())
}

/// A container that is removed when this value drops.
pub struct TestContainer {
    pub name: String,
    pub id: String,
}

impl TestContainer {
    /// `docker run -d --name <unique> <options...> TEST_IMAGE sh -c <script>`.
    pub fn run(tag: &str, what: &str, options: &[&str], script: &str) -> TestContainer {
        TestContainer::run_named(&unique_name(tag, what), options, script)
    }

    /// Like [`TestContainer::run`] with a name from [`unique_name`].
    pub fn run_named(name: &str, options: &[&str], script: &str) -> TestContainer {
        let name = name.to_string();
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend_from_slice(options);
        args.extend_from_slice(&[TEST_IMAGE, "sh", "-c", script]);
        // Created first so that a failing `run` is still cleaned up.
        let mut container = TestContainer { name: name.clone(), id: String::new() };
        container.id = docker(&args);
        container
    }

    /// A container that logs only what [`TestContainer::log`] writes.
    pub fn idle(tag: &str, what: &str, options: &[&str]) -> TestContainer {
        // PID 1 must exit on SIGTERM for `docker stop` to be quick.
        TestContainer::run(tag, what, options, "trap 'exit 0' TERM; while :; do sleep 1; done")
    }

    /// Writes `lines` to the container's stdout (PID 1's), so they enter
    /// its log as if the service had printed them.
    pub fn log(&self, lines: &[&str]) {
        let mut script = String::new();
        for line in lines {
            script.push_str(&format!("printf '%s\\n' '{}' > /proc/1/fd/1; ", line.replace('\'', "'\\''")));
        }
        docker(&["exec", &self.name, "sh", "-c", &script]);
    }

    pub fn stop(&self) {
        docker(&["stop", "-t", "2", &self.name]);
    }

    pub fn start(&self) {
        docker(&["start", &self.name]);
    }

    /// Renames it to a new unique name under `tag`.
    pub fn rename(&mut self, tag: &str, what: &str) {
        let new = unique_name(tag, what);
        docker(&["rename", &self.name, &new]);
        self.name = new;
    }

    /// Removes the container now (what dropping does, but checked).
    pub fn remove(mut self) {
        docker(&["rm", "-f", &self.name]);
        self.name.clear();
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = docker_output(&["rm", "-f", &self.name]);
        }
    }
}

/// Forwards `path` to dockerd's socket until taken down.
pub struct DockerProxy {
    pub path: PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DockerProxy {
    /// Starts forwarding at `path` (inside the caller's temp dir).
    pub fn start(path: &Path) -> DockerProxy {
        let mut proxy = DockerProxy { path: path.to_path_buf(), task: None };
        proxy.up();
        proxy
    }

    /// Listens again after [`DockerProxy::down`].
    pub fn up(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = tokio::net::UnixListener::bind(&self.path).expect("bind the proxy socket");
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::UnixStream::connect(DOCKER_SOCKET).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// dockerd "goes away": every connection through the proxy is cut and
    /// new ones are refused.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Aborting the accept loop drops its JoinSet, which aborts
            // every forwarding task and closes their sockets.
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.path);
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn owner_pid_reads_the_pid_field_of_a_test_container_name() {
    assert_eq!(owner_pid("warden-test-de2e-4242-0-target"), Some(4242));
    assert_eq!(owner_pid("warden-test-dsrc-bench-17-3-live"), Some(17));
    assert_eq!(owner_pid("warden-test-de2e-4242-12-att-2"), Some(4242));
    assert_eq!(owner_pid("warden-test-busybox"), None);
    assert_eq!(owner_pid("someone-else-1-2-x"), None);
}

//! `warden run` end to end against the real dockerd: containers that log
//! failures get their attackers banned, through the Docker source (labels,
//! label-defined jails, TTY, long lines, restarts of the container, of
//! warden and of dockerd itself, a rotating json-file log read from disk),
//! through journald (the Mailu case), and, with real packets, on Docker's
//! `DOCKER-USER` path.
//!
//! warden runs as a process in the HOST network namespace, because Docker's
//! chains live there. Tests that enforce (real ipsets and rules) hold
//! [`HostFirewallLock`] for their whole run, so no other warden runs there
//! meanwhile, and always end with `warden cleanup`; the others run with
//! `--dry-run`, which leaves the host firewall untouched. Jail names carry
//! this process's id, so the many wardens a machine may run at once (each
//! one sees every labelled container) never feed each other's jails. Every
//! daemon, container, namespace and link is a guard removed on drop, also
//! when a test fails.
//!
//! Waiting is always for a condition with a deadline. "No ban" is judged
//! only once a later line of the same stream has been seen to count (a
//! sentinel address that does get banned), since a stream is processed in
//! order.
//!
//! Needs root, dockerd (`scripts/dockerd-up`) and the local test image
//! (`scripts/test-image`, built on demand); the journald test also needs a
//! journald (`scripts/journald-up`, run on demand). They skip, saying why,
//! when these are missing, except with `CI=true`, where that is a failure.

#[path = "support/docker.rs"]
mod docker_support;
#[path = "support/host_lock.rs"]
mod host_lock;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/topology.rs"]
mod topology;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use docker_support::{TestContainer, docker, docker_available, docker_output};
use host_lock::HostFirewallLock;
use netns::TestNetns;
use serde_json::Value;
use topology::ip;

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
/// Container names start `warden-test-de2e-<pid>-`.
const TAG: &str = "de2e";
/// How long anything may take on a busy shared machine.
const DEADLINE: Duration = Duration::from_secs(45);
/// How long the host firewall lock is waited for (another checkout's test
/// may hold it for a while).
const LOCK_WITHIN: Duration = Duration::from_secs(300);

/// Written by the test that restarts dockerd, read by the others, so that
/// no other test of this file runs while dockerd is away.
static DOCKERD: RwLock<()> = RwLock::new(());

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (false) with `reason`, or panics with it under `CI=true`.
fn unavailable(reason: &str) -> bool {
    assert!(!in_ci(), "CI=true and this test cannot run: {reason}");
    eprintln!("skipping: {reason}");
    false
}

/// Root (warden reads and writes the host firewall) and dockerd with the
/// test image.
fn prerequisites() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return unavailable("needs root: warden run reads the host's firewall (run the tests as root)");
    }
    docker_available()
}

/// Unique per test process, for jail names and addresses.
fn pid() -> u32 {
    std::process::id()
}

/// A jail name unique to this process: `e<pid><what>` (short, so that
/// warden's set names `warden-<jail>-v4` stay readable).
fn jail_name(what: &str) -> String {
    format!("e{}{what}", pid())
}

/// Calls `check` every 50 ms until it succeeds; panics naming `what` and
/// the last failure if `within` passes first.
fn wait_until<T, E: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("gave up after {within:?} waiting until {what}; last: {last:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// ---------------------------------------------------------------------------
// Log lines, as the services print them.

/// OpenSSH's failure as `sshd -D -e` prints it in a container (no syslog
/// prefix).
fn sshd_failure(ip: &str) -> String {
    format!("Failed password for invalid user admin from {ip} port 52112 ssh2")
}

/// Mailu front's nginx line for a bot trying AUTH on port 25 (the
/// documented bad-auth-bots case, see tests/filters/mailu-front.log). The
/// date in it is nginx's; the source's own timestamp is the one used.
fn mailu_failure(ip: &str) -> String {
    format!(
        "2026/11/21 10:00:00 [info] 12#12: *345 client login failed: \"AUTH not supported\" while in http \
         auth state, client: {ip}, server: 0.0.0.0:25, login: \"admin@example.com\""
    )
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Shell that prints `lines` to stdout, one per line.
fn say(lines: &[String]) -> String {
    let quoted: Vec<String> = lines.iter().map(|l| shell_quote(l)).collect();
    format!("printf '%s\\n' {}; ", quoted.join(" "))
}

/// `n` copies of `line`.
fn times(n: usize, line: String) -> Vec<String> {
    vec![line; n]
}

/// Shell that keeps PID 1 alive (and quick to stop) after the script.
const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 1; done";

// ---------------------------------------------------------------------------
// The daemon.

/// Whether a [`Warden`] enforces (holding the host lock) or only logs.
enum Mode {
    DryRun,
    Enforcing(HostFirewallLock),
}

/// A ban as `warden bans --json` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BanRow {
    jail: String,
    net: String,
    failures: u64,
}

/// `warden run` in the host namespace, with its files in a temporary
/// directory; on drop it is killed, and an enforcing one's firewall state
/// removed with `warden cleanup` before the host lock is let go.
struct Warden {
    child: Option<Child>,
    dir: tempfile::TempDir,
    dry_run: bool,
    /// Where the current process's log begins in the log file.
    log_from: usize,
    // Last: released only after Drop::drop has cleaned up.
    lock: Option<HostFirewallLock>,
}

impl Warden {
    /// Starts warden with `jails` (YAML lines under `jails:`, indented by
    /// two spaces) and waits until it answers with its firewall in place.
    fn start(jails: &str, mode: Mode) -> Warden {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("filters")).unwrap();
        std::fs::write(dir.path().join("filters/busybox-httpd.yaml"), BUSYBOX_HTTPD_FILTER).unwrap();
        let config = format!(
            "state_dir: {d}/state\nsocket: {d}/warden.sock\nfilter_dirs: [{d}/filters]\njails:\n{jails}"
        );
        std::fs::write(dir.path().join("warden.yaml"), config).unwrap();
        let (dry_run, lock) = match mode {
            Mode::DryRun => (true, None),
            Mode::Enforcing(lock) => (false, Some(lock)),
        };
        let mut warden = Warden { child: None, dir, dry_run, log_from: 0, lock };
        warden.spawn();
        warden
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        let log_path = self.path("daemon.log");
        self.log_from = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        let mut command = Command::new(WARDEN);
        command.arg("run").arg("--config").arg(self.path("warden.yaml"));
        if self.dry_run {
            command.arg("--dry-run");
        }
        let child = command
            .env("WARDEN_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn warden run");
        self.child = Some(child);
        wait_until("warden answers with its firewall in place", DEADLINE, || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("warden run exited early ({status}):\n{}", self.log());
            }
            match self.cli(&["status", "--json"]) {
                Ok(report) if report["backend"].is_string() => Ok(()),
                Ok(report) => Err(report.to_string()),
                Err(e) => Err(e),
            }
        });
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("warden is running");
        // SAFETY: plain kill(2) on our own child, which is not reaped yet.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM warden: {}", std::io::Error::last_os_error());
        let status = wait_until("warden exits after SIGTERM", DEADLINE, || {
            child.try_wait().unwrap().ok_or("still running")
        });
        assert!(status.success(), "warden exited with {status} after SIGTERM:\n{}", self.log());
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// The log of the current process only.
    fn current_log(&self) -> String {
        self.log().get(self.log_from..).unwrap_or_default().to_string()
    }

    /// Waits until the current process has logged `needle`.
    fn wait_logged(&self, needle: &str) {
        wait_until(&format!("warden logs {needle:?}"), DEADLINE, || {
            if self.current_log().contains(needle) { Ok(()) } else { Err("not yet") }
        });
    }

    /// `warden ARGS --socket …`, its stdout as JSON.
    fn cli(&self, args: &[&str]) -> Result<Value, String> {
        let out = Command::new(WARDEN)
            .args(args)
            .arg("--socket")
            .arg(self.path("warden.sock"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "warden {} ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("warden {}: not JSON ({e})", args.join(" ")))
    }

    fn bans(&self) -> Vec<BanRow> {
        let listed = self.cli(&["bans", "--json"]).unwrap_or_else(|e| panic!("{e}"));
        let rows = listed.as_array().unwrap_or_else(|| panic!("bans --json is a list: {listed}"));
        rows.iter()
            .map(|b| BanRow {
                jail: b["jail"].as_str().unwrap_or_else(|| panic!("ban without jail: {b}")).to_string(),
                net: b["net"].as_str().unwrap_or_else(|| panic!("ban without net: {b}")).to_string(),
                failures: b["failures"].as_u64().unwrap_or_else(|| panic!("ban without failures: {b}")),
            })
            .collect()
    }

    fn ban_of(&self, jail: &str, ip: &str) -> Option<BanRow> {
        self.bans().into_iter().find(|b| b.jail == jail && b.net == ip)
    }

    /// Waits until `ip` is banned in `jail`; returns the ban.
    fn wait_ban(&self, jail: &str, ip: &str) -> BanRow {
        wait_until(&format!("{ip} is banned in {jail}"), DEADLINE, || {
            self.ban_of(jail, ip).ok_or_else(|| self.bans())
        })
    }

    fn status(&self) -> Value {
        self.cli(&["status", "--json"]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A jail's failures counted since this process started.
    fn total_failed(&self, jail: &str) -> u64 {
        let status = self.status();
        let jails = status["jails"].as_array().expect("status lists jails");
        let found = jails.iter().find(|j| j["name"] == jail);
        found.unwrap_or_else(|| panic!("no jail {jail} in {status}"))["total_failed"]
            .as_u64()
            .expect("total_failed is a number")
    }

    /// Whether status lists the container as followed now.
    fn attached(&self, container: &str) -> bool {
        let status = self.status();
        status["containers"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["name"] == container && c["attached"] == true))
    }

    fn wait_attached(&self, container: &str) {
        wait_until(&format!("warden follows {container}"), DEADLINE, || {
            if self.attached(container) { Ok(()) } else { Err(self.status()["containers"].clone()) }
        });
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.lock.is_some() {
            // Still holding the lock: nothing else of warden's runs here.
            match Command::new(WARDEN).arg("cleanup").output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    eprintln!("warning: warden cleanup failed: {}", String::from_utf8_lossy(&out.stderr))
                }
                Err(e) => eprintln!("warning: cannot run warden cleanup: {e}"),
            }
        }
        if std::thread::panicking() {
            eprintln!("--- warden run log ---\n{}--- end of log ---", self.log());
        }
    }
}

/// Whether warden's kernel set for `jail` holds `ip` (`ipset test`).
fn in_kernel_set(jail: &str, ip: &str) -> bool {
    let set = format!("warden-{jail}-v4");
    Command::new("ipset").args(["test", &set, ip]).output().is_ok_and(|o| o.status.success())
}

/// Waits until a ban warden reported is in the kernel: warden lists a ban
/// once it is stored, and its firewall task enforces it just after.
fn wait_in_kernel_set(jail: &str, ip: &str) {
    wait_until(&format!("{ip} is in {jail}'s kernel set"), DEADLINE, || {
        if in_kernel_set(jail, ip) { Ok(()) } else { Err("not yet") }
    });
}

/// A jail line for the config: `name: {filter: …, sources: [{docker: {}}], extra}`.
fn docker_jail(name: &str, filter: &str, extra: &str) -> String {
    format!("  {name}: {{filter: {filter}, sources: [{{docker: {{}}}}], {extra}}}\n")
}

/// `docker logs` of a container (stdout and stderr).
fn docker_logs(container: &str) -> String {
    let out = docker_output(&["logs", container]).unwrap_or_else(|e| panic!("docker logs {container}: {e}"));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn labelled_containers_get_their_attackers_banned_and_an_unlabelled_one_never() {
    let _dockerd = DOCKERD.read().unwrap_or_else(|p| p.into_inner());
    if !prerequisites() {
        return;
    }
    let (ssh, mail, window, defined) =
        (jail_name("ssh"), jail_name("mail"), jail_name("win"), jail_name("lbl"));
    // `defined` is not in the config: a container's labels define it.
    let warden = Warden::start(
        &[
            docker_jail(&ssh, "sshd", "maxretry: 3, findtime: 10m"),
            docker_jail(&mail, "mailu-front", "maxretry: 3, findtime: 10m"),
            docker_jail(&window, "sshd", "maxretry: 2, findtime: 1s"),
        ]
        .concat(),
        Mode::DryRun,
    );
    warden.wait_logged("connected to dockerd");
    let addr = |n: u8| format!("10.201.0.{n}");

    // The unlabelled container logs first; its lines are in its log
    // before any labelled container starts.
    let plain_lines = [times(3, sshd_failure(&addr(90))), times(3, mailu_failure(&addr(91)))].concat();
    let plain = TestContainer::run(TAG, "plain", &[], &format!("{}{IDLE}", say(&plain_lines)));
    wait_until("the unlabelled container's lines are in its log", DEADLINE, || {
        let logs = docker_logs(&plain.name);
        if logs.matches(&addr(91)).count() == 3 { Ok(()) } else { Err(logs) }
    });

    let label = |jails: &str| format!("warden.jails={jails}");
    // sshd: maxretry-1 failures from one address, then maxretry from another.
    let ssh_lines = [times(2, sshd_failure(&addr(2))), times(3, sshd_failure(&addr(1)))].concat();
    let _sshd =
        TestContainer::run(TAG, "sshd", &["--label", &label(&ssh)], &format!("{}{IDLE}", say(&ssh_lines)));
    // Mailu front: the same, in its own jail.
    let mail_lines = [times(2, mailu_failure(&addr(12))), times(3, mailu_failure(&addr(11)))].concat();
    let _front =
        TestContainer::run(TAG, "front", &["--label", &label(&mail)], &format!("{}{IDLE}", say(&mail_lines)));
    // findtime 1s: two failures 2 s apart never add up; the sentinel's two
    // in a row do.
    let window_script = format!(
        "{}sleep 2; {}{}{IDLE}",
        say(&[sshd_failure(&addr(21))]),
        say(&[sshd_failure(&addr(21))]),
        say(&times(2, sshd_failure(&addr(22))))
    );
    let _window = TestContainer::run(TAG, "window", &["--label", &label(&window)], &window_script);
    // A jail defined by labels alone, with no change to warden's config.
    let defined_labels = [
        label(&defined),
        format!("warden.jail.{defined}.filter=sshd"),
        format!("warden.jail.{defined}.maxretry=2"),
    ];
    let mut options = Vec::new();
    for l in &defined_labels {
        options.extend(["--label", l.as_str()]);
    }
    let _defined = TestContainer::run(
        TAG,
        "defined",
        &options,
        &format!("{}{IDLE}", say(&times(2, sshd_failure(&addr(31))))),
    );
    // A per-container override of a configured jail: its own instance.
    let override_label = format!("warden.jail.{ssh}.maxretry=2");
    let over = TestContainer::run(
        TAG,
        "over",
        &["--label", &label(&ssh), "--label", &override_label],
        &format!("{}{IDLE}", say(&times(2, sshd_failure(&addr(41))))),
    );
    // A TTY container: one stream, lines ending in \r\n.
    let _tty = TestContainer::run(
        TAG,
        "tty",
        &["-t", "--label", &label(&ssh)],
        &format!("{}{IDLE}", say(&times(3, sshd_failure(&addr(51))))),
    );
    // A 100 KiB line between failures: cut at 64 KiB, and the failure
    // after it still counts.
    let long_script = format!(
        "{}head -c 102400 /dev/zero | tr '\\0' x; echo; {}{IDLE}",
        say(&times(2, sshd_failure(&addr(61)))),
        say(&[sshd_failure(&addr(61))])
    );
    let long = TestContainer::run(TAG, "long", &["--label", &label(&ssh)], &long_script);

    let instance = format!("{ssh}@{}", over.name);
    let expected = [
        (ssh.as_str(), addr(1), 3),
        (mail.as_str(), addr(11), 3),
        (window.as_str(), addr(22), 2),
        (defined.as_str(), addr(31), 2),
        (instance.as_str(), addr(41), 2),
        (ssh.as_str(), addr(51), 3),
        (ssh.as_str(), addr(61), 3),
    ];
    for (jail, ip, failures) in &expected {
        let ban = warden.wait_ban(jail, ip);
        assert_eq!(ban.failures, *failures, "{ip} in {jail}: banned after exactly maxretry failures");
    }
    // Every stream has been read past its last line by now (each ends with
    // a banned address): nothing else was banned, and the jails counted
    // exactly the labelled containers' failures.
    // Other tests run their labelled containers meanwhile, and this daemon
    // follows every labelled container on the host: only this test's jails
    // are its business.
    let mine: Vec<&str> = expected.iter().map(|(j, _, _)| *j).collect();
    let mut banned: Vec<(String, String)> = warden
        .bans()
        .into_iter()
        .filter(|b| mine.contains(&b.jail.as_str()))
        .map(|b| (b.jail, b.net))
        .collect();
    banned.sort();
    let mut wanted: Vec<(String, String)> =
        expected.iter().map(|(j, ip, _)| (j.to_string(), ip.clone())).collect();
    wanted.sort();
    assert_eq!(banned, wanted, "only the addresses that reached maxretry within findtime are banned");
    assert_eq!(warden.total_failed(&ssh), 2 + 3 + 3 + 3, "ssh counts sshd, tty and long, nothing from plain");
    assert_eq!(warden.total_failed(&mail), 2 + 3, "mail counts front only");
    assert_eq!(warden.total_failed(&window), 4);
    assert!(!warden.attached(&plain.name), "the unlabelled container is not followed");
    assert!(warden.attached(&long.name));
    let log = warden.log();
    assert!(log.contains("longer than line_max"), "the 100 KiB line is reported as cut:\n{log}");
}

#[test]
fn a_jail_defined_by_labels_alone_works_with_a_config_that_has_no_docker_jail() {
    let _dockerd = DOCKERD.read().unwrap_or_else(|p| p.into_inner());
    if !prerequisites() {
        return;
    }
    // A host-only config: one jail reading a file, nothing about Docker.
    let file = tempfile::NamedTempFile::new().expect("a temporary log file");
    let host_jail = jail_name("host");
    let warden = Warden::start(
        &format!(
            "  {host_jail}: {{filter: sshd, sources: [{{file: {{path: {}}}}}]}}\n",
            file.path().display()
        ),
        Mode::DryRun,
    );
    let defined = jail_name("only");
    let labels = [
        format!("warden.jails={defined}"),
        format!("warden.jail.{defined}.filter=mailu-front"),
        format!("warden.jail.{defined}.maxretry=2"),
        format!("warden.jail.{defined}.ban_prefix=24"),
    ];
    let mut options = Vec::new();
    for l in &labels {
        options.extend(["--label", l.as_str()]);
    }
    let front = TestContainer::run(
        TAG,
        "front-only",
        &options,
        &format!("{}{IDLE}", say(&times(2, mailu_failure("10.206.0.9")))),
    );
    assert_eq!(warden.wait_ban(&defined, "10.206.0.0/24").failures, 2);
    assert!(warden.attached(&front.name));
    // The firewall knew the new jail before its first ban reached it.
    warden.wait_logged("would add 10.206.0.0/24");
    let log = warden.log();
    assert!(!log.contains("no jail named"), "a ban reached the firewall before its jail:\n{log}");
}

/// `busybox httpd -vv` logs `[::ffff:<client>]:<port>: response:404` for
/// every request it answers 404: a real service whose failures name the
/// real peer of real packets.
const BUSYBOX_HTTPD_FILTER: &str = r#"name: busybox-httpd
description: busybox httpd -vv requests answered 404 (end-to-end test filter)
source: "busybox 1.35 httpd.c, verbose level 2: `[addr]:port: response:NNN`"
failregex:
  - '^\[<HOST>\]:[0-9]+: response:404$'
"#;

#[test]
fn restarting_the_container_then_warden_counts_no_line_twice_and_replays_none() {
    let _dockerd = DOCKERD.read().unwrap_or_else(|p| p.into_inner());
    if !prerequisites() {
        return;
    }
    let jail = jail_name("rs");
    let addr = |n: u8| format!("10.202.0.{n}");
    let (old, counted) = (addr(1), addr(2));
    // Banned in turn after each step: once a sentinel is banned, every
    // earlier line of the container's log has been through the jail.
    let sentinel = |n: u8| addr(100 + n);
    let container = TestContainer::idle(TAG, "restarts", &["--label", &format!("warden.jails={jail}")]);
    // Logged before warden ever ran: old lines never make fresh bans.
    container.log(&times(3, sshd_failure(&old)).iter().map(String::as_str).collect::<Vec<_>>());

    let mut warden = Warden::start(&docker_jail(&jail, "sshd", "maxretry: 3, findtime: 10m"), Mode::DryRun);
    let log = |lines: Vec<String>| container.log(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let check_point = |warden: &Warden, n: u8| {
        log(times(3, sshd_failure(&sentinel(n))));
        assert_eq!(warden.wait_ban(&jail, &sentinel(n)).failures, 3);
        let bans = warden.bans();
        assert!(
            !bans.iter().any(|b| b.net == old),
            "lines from before warden started were replayed: {bans:?}"
        );
        assert!(!bans.iter().any(|b| b.net == counted), "a line was counted twice: {bans:?}");
    };
    warden.wait_attached(&container.name);
    check_point(&warden, 1);

    // maxretry-1 failures before the restarts…
    log(times(2, sshd_failure(&counted)));
    check_point(&warden, 2);
    // …the container restarts (its log keeps every line)…
    docker(&["restart", "-t", "1", &container.name]);
    check_point(&warden, 3);
    // …then warden restarts, resuming from its stored cursor…
    warden.restart();
    warden.wait_attached(&container.name);
    check_point(&warden, 4);
    assert_eq!(
        warden.total_failed(&jail),
        3,
        "after its restart warden counted only the new sentinel's lines"
    );
    // …and one more failure is the maxretry-th.
    log(vec![sshd_failure(&counted)]);
    let ban = warden.wait_ban(&jail, &counted);
    assert_eq!(ban.failures, 3, "2 failures before the restarts + 1 after");
    assert_eq!(warden.total_failed(&jail), 4);
}

/// Writes sshd failures from `10.208.<i / 256>.<i % 256>` for `i` in
/// `from..to` to the container's stdout, in bursts of 50 (well under one
/// rotation of a 10 KiB log each); after each burst, waits until `counted`
/// (when given) says the burst's failures were counted.
fn write_failures(container: &TestContainer, from: usize, to: usize, counted: Option<&dyn Fn(usize)>) {
    let mut at = from;
    while at < to {
        let end = (at + 50).min(to);
        let script = format!(
            "i={at}; while [ $i -lt {end} ]; do \
             printf 'Failed password for invalid user admin from 10.208.%d.%d port 52112 ssh2\\n' \
             $((i / 256)) $((i % 256)) > /proc/1/fd/1; i=$((i + 1)); done"
        );
        docker(&["exec", &container.name, "sh", "-c", &script]);
        if let Some(counted) = counted {
            counted(end);
        }
        at = end;
    }
}

#[test]
fn a_rotating_json_file_log_is_read_from_disk_across_a_warden_restart_counting_each_line_once() {
    let _dockerd = DOCKERD.read().unwrap_or_else(|p| p.into_inner());
    if !prerequisites() {
        return;
    }
    let jail = jail_name("jf");
    let mut warden = Warden::start(&docker_jail(&jail, "sshd", "maxretry: 3, findtime: 1h"), Mode::DryRun);
    let label = format!("warden.jails={jail}");
    let options = [
        "--label",
        &label,
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "--log-opt",
        "compress=true",
    ];
    let container = TestContainer::idle(TAG, "jsonfile", &options);
    let log_path = docker(&["inspect", "-f", "{{.LogPath}}", &container.name]);
    warden.wait_attached(&container.name);
    let status = warden.status();
    let followed =
        status["containers"].as_array().and_then(|cs| cs.iter().find(|c| c["name"] == *container.name));
    assert_eq!(followed.map(|c| c["logs"].clone()), Some(Value::from("file")), "{status}");

    // Each address fails once: nothing is banned but the sentinels, whose
    // ban says every line before them went through the jail.
    let sentinel = |warden: &Warden, last: u8| {
        let ip = format!("10.208.255.{last}");
        container.log(&times(3, sshd_failure(&ip)).iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(warden.wait_ban(&jail, &ip).failures, 3);
        // Other tests' label-defined jails may ban in this warden too.
        let bans: Vec<BanRow> = warden.bans().into_iter().filter(|b| b.jail == jail).collect();
        assert!(bans.iter().all(|b| b.net.starts_with("10.208.255.")), "a line was counted twice: {bans:?}");
    };
    write_failures(
        &container,
        0,
        200,
        Some(&|n| {
            wait_until(&format!("{n} failures counted"), DEADLINE, || match warden.total_failed(&jail) {
                total if total >= n as u64 => Ok(()),
                total => Err(total),
            });
        }),
    );
    sentinel(&warden, 1);
    assert_eq!(warden.total_failed(&jail), 203, "each line counted once, none lost");
    let rotated = format!("{log_path}.1.gz");
    assert!(std::path::Path::new(&rotated).exists(), "{rotated}: the log rotated and was compressed");

    // warden is down while the log rotates (and compresses) about twice.
    warden.stop();
    write_failures(&container, 200, 320, None);
    warden.spawn();
    warden.wait_attached(&container.name);
    sentinel(&warden, 2);
    assert_eq!(warden.total_failed(&jail), 123, "after the restart: the 120 new lines and the sentinel's 3");
}

#[test]
fn a_ban_survives_a_dockerd_restart_and_warden_reattaches_and_keeps_banning() {
    let _dockerd = DOCKERD.write().unwrap_or_else(|p| p.into_inner());
    if !prerequisites() {
        return;
    }
    let lock = HostFirewallLock::acquire(LOCK_WITHIN);
    let jail = jail_name("dk");
    let (before, after) = ("10.203.0.1", "10.203.0.2");
    let warden = Warden::start(
        &docker_jail(&jail, "sshd", "maxretry: 2, findtime: 10m, bantime: 1h, target: docker, ports: [2525]"),
        Mode::Enforcing(lock),
    );
    // dockerd starts it again when it comes back.
    let container = TestContainer::idle(
        TAG,
        "survivor",
        &["--restart", "always", "--label", &format!("warden.jails={jail}")],
    );
    warden.wait_attached(&container.name);
    let failures = |ip: &str| times(2, sshd_failure(ip));
    container.log(&failures(before).iter().map(String::as_str).collect::<Vec<_>>());
    warden.wait_ban(&jail, before);
    wait_in_kernel_set(&jail, before);

    // Restart dockerd, checking all along that warden runs and the ban
    // stays, in warden's list and in the kernel.
    let mut restart = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dockerd-up"))
        .arg("--restart")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/dockerd-up --restart");
    let mut checks_while_down = 0;
    let mut warden = warden;
    let status = loop {
        let down = !dockerd_answers();
        assert!(warden.is_running(), "warden stopped while dockerd restarted:\n{}", warden.log());
        assert!(warden.ban_of(&jail, before).is_some(), "the ban left warden's list while dockerd was away");
        assert!(in_kernel_set(&jail, before), "the ban left the kernel set while dockerd was away");
        if down {
            checks_while_down += 1;
        }
        if let Some(status) = restart.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    restart.stderr.take().unwrap().read_to_string(&mut output).unwrap();
    assert!(status.success(), "scripts/dockerd-up --restart failed ({status}): {output}");
    assert!(checks_while_down > 0, "dockerd never looked down during its restart");

    // It comes back with the container (restart policy); warden follows it
    // again and bans from its new lines.
    wait_until("dockerd runs the container again", DEADLINE, || {
        let out = docker_output(&["inspect", "-f", "{{.State.Running}}", &container.name])?;
        if String::from_utf8_lossy(&out.stdout).trim() == "true" { Ok(()) } else { Err(format!("{out:?}")) }
    });
    warden.wait_attached(&container.name);
    container.log(&failures(after).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(warden.wait_ban(&jail, after).failures, 2);
    wait_in_kernel_set(&jail, after);
    assert!(in_kernel_set(&jail, before), "the old ban is still in the kernel set");
    let log = warden.log();
    assert!(log.contains("reconnecting"), "warden saw dockerd go:\n{log}");
}

/// Whether dockerd answers `GET /_ping` on its socket within 500 ms.
fn dockerd_answers() -> bool {
    let ping = || -> std::io::Result<bool> {
        let mut socket = std::os::unix::net::UnixStream::connect(docker_support::DOCKER_SOCKET)?;
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        socket.write_all(b"GET /_ping HTTP/1.0\r\n\r\n")?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer)?;
        Ok(answer.starts_with("HTTP/1.") && answer.ends_with("OK"))
    };
    ping().unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Real packets: namespaces linked to the host.

/// Test-assigned addresses: the host's end of each veth, and the peers.
const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 214, 1, 1);
const ATTACKER: Ipv4Addr = Ipv4Addr::new(10, 214, 1, 2);
const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 214, 2, 1);
const BYSTANDER: Ipv4Addr = Ipv4Addr::new(10, 214, 2, 2);

/// A veth pair between the host namespace (`dev`, `host`/24) and `ns`
/// (`eth0`, `peer`/24, default route via the host); deleted on drop.
struct HostLink {
    dev: String,
}

impl HostLink {
    fn new(ns: &TestNetns, dev: &str, host: Ipv4Addr, peer: Ipv4Addr) -> HostLink {
        ip(&["link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns.name()]);
        let link = HostLink { dev: dev.to_string() };
        ip(&["addr", "add", &format!("{host}/24"), "dev", dev]);
        ip(&["link", "set", dev, "up"]);
        ip(&["-n", ns.name(), "addr", "add", &format!("{peer}/24"), "dev", "eth0"]);
        ip(&["-n", ns.name(), "link", "set", "eth0", "up"]);
        ip(&["-n", ns.name(), "link", "set", "lo", "up"]);
        ip(&["-n", ns.name(), "route", "add", "default", "via", &host.to_string()]);
        link
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.dev]).output();
    }
}

/// `GET path` from inside `ns` to `server:port`; the HTTP status code.
fn http_get(ns: &TestNetns, server: Ipv4Addr, port: u16, path: &str) -> std::io::Result<u16> {
    ns.run(|| {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::from((server, port)), Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let code = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok());
        code.ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:?}")))
    })
}

#[test]
fn a_ban_drops_the_attacker_on_the_docker_user_path_and_spares_the_bystander() {
    let _dockerd = DOCKERD.read().unwrap_or_else(|p| p.into_inner());
    if !prerequisites() {
        return;
    }
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    assert_eq!(forwarding.trim(), "1", "dockerd enables IPv4 forwarding; without it no published port works");
    let lock = HostFirewallLock::acquire(LOCK_WITHIN);
    let Some(attacker) = TestNetns::create("de2e-att") else { return };
    let Some(bystander) = TestNetns::create("de2e-bys") else { return };
    let _attacker_link = HostLink::new(&attacker, &format!("wa{}", pid()), HOST_A, ATTACKER);
    let _bystander_link = HostLink::new(&bystander, &format!("wb{}", pid()), HOST_B, BYSTANDER);
    let port = 20_000 + (pid() % 10_000) as u16;
    let jail = jail_name("web");
    let warden = Warden::start(
        &docker_jail(
            &jail,
            "busybox-httpd",
            &format!("maxretry: 3, findtime: 10m, target: docker, ports: [{port}]"),
        ),
        Mode::Enforcing(lock),
    );
    let web = TestContainer::run(
        TAG,
        "httpd",
        &["-p", &format!("{port}:80"), "--label", &format!("warden.jails={jail}")],
        "echo ok > /www/index.html; exec httpd -f -vv -p 80 -h /www",
    );
    warden.wait_attached(&web.name);

    // Both reach the service through the published port on the host's
    // address, by DNAT and Docker's FORWARD path, where DOCKER-USER is.
    let get = |ns: &TestNetns, server, path| http_get(ns, server, port, path);
    wait_until("the attacker reaches the published port", DEADLINE, || match get(&attacker, HOST_A, "/") {
        Ok(200) => Ok(()),
        other => Err(other),
    });
    assert_eq!(get(&bystander, HOST_B, "/").unwrap(), 200, "the bystander reaches it");

    // The attacker probes three missing pages; httpd logs each 404 with
    // the attacker's real address, which warden reads and bans.
    for _ in 0..3 {
        assert_eq!(get(&attacker, HOST_A, "/admin.php").unwrap(), 404);
    }
    assert_eq!(warden.wait_ban(&jail, &ATTACKER.to_string()).failures, 3);
    wait_in_kernel_set(&jail, &ATTACKER.to_string());
    assert!(warden.ban_of(&jail, &BYSTANDER.to_string()).is_none());

    match get(&attacker, HOST_A, "/") {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
        other => panic!("the banned attacker's connect should be dropped (time out), got {other:?}"),
    }
    assert_eq!(get(&bystander, HOST_B, "/").unwrap(), 200, "the bystander still gets through");
}

// ---------------------------------------------------------------------------
// journald: the Mailu case.

/// Starts journald when none runs; false (a skip) when that fails.
fn journald_available() -> bool {
    let up = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/journald-up")).output();
    match up {
        Ok(out) if out.status.success() => true,
        Ok(out) => unavailable(&format!(
            "scripts/journald-up failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => unavailable(&format!("cannot run scripts/journald-up: {e}")),
    }
}

#[test]
fn mailu_front_logging_to_journald_gets_the_bot_banned_through_the_journald_source() {
    let _dockerd = DOCKERD.read().unwrap_or_else(|p| p.into_inner());
    if !prerequisites() || !journald_available() {
        return;
    }
    let jail = jail_name("bots");
    // As in Mailu's documentation: the front's log reaches the journal
    // tagged mailu-front, and the jail bans the bot's /24.
    let warden = Warden::start(
        &format!(
            "  {jail}: {{filter: mailu-front, sources: [{{journald: {{match: {{CONTAINER_TAG: mailu-front}}}}}}], \
             maxretry: 3, findtime: 10m, bantime: 1w, ban_prefix: {{v4: 24}}, ports: [25], target: docker}}\n"
        ),
        Mode::DryRun,
    );
    // Other runs may log under the same tag: this one's bot has its own /24.
    let bot = format!("10.205.{}.7", pid() % 250 + 1);
    let net = format!("10.205.{}.0/24", pid() % 250 + 1);
    // A bot that keeps trying, as bots do: the journald source starts at
    // the journal's end when it opens, so the first lines may come before.
    let front = TestContainer::run(
        TAG,
        "front",
        &["--log-driver=journald", "--log-opt", "tag=mailu-front"],
        &format!(
            "i=0; while [ $i -lt 200 ]; do {}i=$((i+1)); usleep 200000; done; {IDLE}",
            say(&[mailu_failure(&bot)])
        ),
    );
    let ban = warden.wait_ban(&jail, &net);
    assert_eq!(ban.failures, 3);
    // The lines went the documented way: dockerd's journald driver.
    wait_until("journalctl shows the front's lines under CONTAINER_TAG=mailu-front", DEADLINE, || {
        let out = Command::new("journalctl")
            .args([
                "--no-pager",
                "-o",
                "cat",
                "CONTAINER_TAG=mailu-front",
                &format!("CONTAINER_NAME={}", front.name),
            ])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains(&format!("client: {bot},")) { Ok(()) } else { Err(text.into_owned()) }
    });
    let status = warden.status();
    assert!(
        status["jails"].as_array().unwrap().iter().any(|j| j["name"] == jail.as_str()
            && j["sources"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s.as_str().is_some_and(|s| s.contains("journal"))))),
        "the jail reads the journal: {status}"
    );
}

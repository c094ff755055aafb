//! `warden run` and the CLI proven with real packets: the daemon runs as a
//! process inside the server namespace of the lab in `support/lab.rs`
//! (`ip netns exec <server> warden run --config F`), so its ipsets, chains
//! and jumps are that namespace's; the tests drive it only through the
//! `warden` CLI over its control socket (and, for malformed requests, raw
//! bytes on that socket), and judge it by packets from the attacker and
//! bystander namespaces.
//!
//! Every daemon is a [`Daemon`] guard: killed and reaped when the test ends,
//! also when it fails, before its namespaces go (its log is printed then).
//!
//! Root required; skipped with a reason elsewhere, never skipped with CI=true.

#[path = "support/lab.rs"]
mod lab;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/topology.rs"]
mod topology;

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use lab::{
    ATTACKER, ECHO_WITHIN, Lab, NEIGHBOUR_A, NEIGHBOUR_B, NEIGHBOURS, SERVER_A, SERVER_B, assert_dropped,
    assert_silent, connect, echo, wait_until,
};
use netns::TestNetns;
use serde_json::Value;

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
/// An address every jail's ignoreip holds besides loopback.
const IGNORED: &str = "10.232.2.9";
/// How long a daemon may take to start (or stop) on a busy machine.
const START_WITHIN: Duration = Duration::from_secs(10);

/// A daemon's files in a temporary directory: config, state, log, the
/// socket (in `run/`, which the daemon creates as it would
/// `/run/warden`) and an empty log file its jails follow.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let files = Files { dir: tempfile::tempdir().expect("a temporary directory") };
        std::fs::write(files.path("auth.log"), "").unwrap();
        files.write_config(&files.config_text(""));
        files
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.path("warden.yaml")
    }

    fn socket(&self) -> PathBuf {
        self.path("run/warden.sock")
    }

    /// Jails `web` (single addresses) and `web24` (`ban_prefix` /24), both
    /// guarding the echo port on the host's `INPUT` path; `more_jails` is
    /// YAML appended under `jails:`.
    fn config_text(&self, more_jails: &str) -> String {
        let dir = self.dir.path().display();
        let jail = |extra: &str| {
            format!(
                "    filter: sshd\n    sources: [{{file: {{path: {dir}/auth.log}}}}]\n    target: host\n    \
                 ports: [{}]\n{extra}",
                lab::PORT
            )
        };
        format!(
            "state_dir: {dir}/state\nsocket: {dir}/run/warden.sock\nfirewall: {{backend: nft}}\n\
             defaults: {{ignoreip: [127.0.0.0/8, \"::1\", {IGNORED}]}}\njails:\n  web:\n{}  web24:\n{}{more_jails}",
            jail(""),
            jail("    ban_prefix: {v4: 24}\n"),
        )
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }
}

/// `warden run` inside a namespace; killed and reaped when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Starts the daemon in `ns` and waits until its socket answers with
    /// the firewall in place.
    fn start(ns: &TestNetns, files: &Files) -> Daemon {
        let log = files.path("daemon.log");
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        // `ip netns exec` execs warden: the child's pid is the daemon's.
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), WARDEN, "run", "--config"])
            .arg(files.config())
            .env("WARDEN_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn warden run");
        let mut daemon = Daemon { child, socket: files.socket(), log };
        wait_until("the daemon answers with its firewall in place", START_WITHIN, || {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("warden run exited early ({status}):\n{}", daemon.log());
            }
            let status = daemon.cli(&["status", "--json"]);
            match status.json() {
                Some(report) if status.code == 0 && report["backend"].is_string() => Ok(()),
                _ => Err(status),
            }
        });
        daemon
    }

    /// Runs the CLI against this daemon's socket.
    fn cli(&self, args: &[&str]) -> Cli {
        cli(&self.socket, args)
    }

    /// SIGTERM, then waits for the daemon to exit.
    fn stop(&mut self) -> ExitStatus {
        // SAFETY: plain kill(2) on our own child, which is not reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM the daemon: {}", std::io::Error::last_os_error());
        wait_until("the daemon exits after SIGTERM", START_WITHIN, || {
            self.child.try_wait().unwrap().ok_or("still running")
        })
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- warden run log ---\n{}--- end of log ---", self.log());
        }
    }
}

/// A lab with a daemon in its server namespace. Fields drop in order: the
/// daemon first, then its files, then the namespaces.
struct Rig {
    daemon: Daemon,
    files: Files,
    lab: Lab,
}

impl Rig {
    fn new(tag: &str) -> Option<Rig> {
        let lab = Lab::new(tag)?;
        let files = Files::new();
        let daemon = Daemon::start(&lab.server, &files);
        Some(Rig { daemon, files, lab })
    }
}

/// What a CLI run printed and returned.
#[derive(Debug)]
struct Cli {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.stdout).ok()
    }

    fn assert_ok(self) -> Cli {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

/// `warden ARGS --socket SOCKET`, run as root in the test's namespace (a
/// Unix socket path works across network namespaces).
fn cli(socket: &Path, args: &[&str]) -> Cli {
    run_cli(Command::new(WARDEN).args(args).arg("--socket").arg(socket))
}

fn run_cli(command: &mut Command) -> Cli {
    let out = command.output().expect("run the warden CLI");
    Cli {
        code: out.status.code().expect("the CLI exits, not killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `warden bans --json` as (address, jail, origin) rows.
fn bans(daemon: &Daemon) -> Vec<(String, String, String)> {
    let listed = daemon.cli(&["bans", "--json"]).assert_ok().json().expect("bans --json prints JSON");
    let rows = listed.as_array().expect("a list of bans").iter();
    rows.map(|b| {
        let field = |k: &str| b[k].as_str().unwrap_or_else(|| panic!("ban field {k}: {b}")).to_string();
        (field("net"), field("jail"), field("origin"))
    })
    .collect()
}

fn manual(net: impl ToString, jail: &str) -> (String, String, String) {
    (net.to_string(), jail.to_string(), "manual".to_string())
}

/// Asserts the CLI refused with exit code 2 and one line of error that
/// contains each of `says`.
fn assert_refused(out: &Cli, says: &[&str]) {
    assert_eq!(out.code, 2, "exit code 2 (bad input) expected: {out:?}");
    let message = out.stderr.trim_end();
    assert!(message.starts_with("error: ") && !message.contains('\n'), "one line of error: {message:?}");
    for part in says {
        assert!(message.contains(part), "{message:?} should say {part:?}");
    }
}

#[test]
fn a_cli_ban_drops_the_attacker_at_once_spares_the_bystander_and_unban_lifts_it() {
    let Some(rig) = Rig::new("d-ban") else { return };
    let (lab, daemon) = (&rig.lab, &rig.daemon);
    let (mut open, mut bystander) = lab.connected();

    let banned = daemon.cli(&["ban", "web", &ATTACKER.to_string()]).assert_ok();
    assert!(banned.stdout.starts_with("banned 10.232.1.2 in web until "), "{banned:?}");
    // Enforced before the command returned: no waiting here.
    assert_silent(&mut open, "the attacker");
    assert_dropped(&lab.attacker, None, SERVER_A.into(), "the banned attacker");
    echo(&mut bystander, ECHO_WITHIN).expect("the bystander's open connection still echoes");
    let mut fresh = lab.open(&lab.bystander, SERVER_B);
    echo(&mut fresh, ECHO_WITHIN).expect("the bystander still connects");
    wait_until("the daemon deletes the attacker's conntrack entries", ECHO_WITHIN, || {
        match lab.tracked_from(ATTACKER) {
            0 => Ok(()),
            n => Err(n),
        }
    });
    assert_eq!(bans(daemon), [manual(ATTACKER, "web")]);

    let lifted = daemon.cli(&["unban", &ATTACKER.to_string()]).assert_ok();
    assert_eq!(lifted.stdout, "unbanned 10.232.1.2 in web\n");
    // Lifted in the kernel before the command returned, too.
    let mut back = connect(&lab.attacker, None, SERVER_A.into(), ECHO_WITHIN)
        .expect("right after the unban the attacker connects");
    echo(&mut back, ECHO_WITHIN).expect("after the unban the attacker gets through");
    assert_eq!(bans(daemon), []);
}

#[test]
fn a_subnet_ban_drops_every_address_of_the_24() {
    let Some(rig) = Rig::new("d-net") else { return };
    let (lab, daemon) = (&rig.lab, &rig.daemon);
    let neighbours = [IpAddr::V4(NEIGHBOUR_A), IpAddr::V4(NEIGHBOUR_B)];
    for src in neighbours {
        connect(&lab.attacker, Some(src), SERVER_A.into(), ECHO_WITHIN)
            .unwrap_or_else(|e| panic!("{src} connects before the ban: {e}"));
    }

    assert_refused(
        &daemon.cli(&["ban", "web", NEIGHBOURS]),
        &["jail web bans single addresses", "use a jail with ban_prefix"],
    );
    daemon.cli(&["ban", "web24", NEIGHBOURS]).assert_ok();
    for src in neighbours {
        assert_dropped(&lab.attacker, Some(src), SERVER_A.into(), &src.to_string());
    }
    // Outside the /24, the same namespace still gets through.
    let mut outside = lab.open(&lab.attacker, SERVER_A);
    echo(&mut outside, ECHO_WITHIN).expect("the attacker's address outside the /24 still connects");
    assert_eq!(bans(daemon), [manual(NEIGHBOURS, "web24")]);
}

#[test]
fn several_addresses_in_one_command_are_banned_together_or_not_at_all() {
    let Some(rig) = Rig::new("d-many") else { return };
    let (lab, daemon) = (&rig.lab, &rig.daemon);
    let (a, b) = (NEIGHBOUR_A.to_string(), NEIGHBOUR_B.to_string());

    // One bad target refuses the whole command, naming it; nothing is banned.
    assert_refused(
        &daemon.cli(&["ban", "web", &a, "127.0.0.1", &b]),
        &["127.0.0.1: ", "covers loopback", "nothing was banned"],
    );
    assert_eq!(bans(daemon), []);
    let too_many: Vec<String> = (0..1001).map(|i| format!("10.233.{}.{}", i / 250, i % 250 + 1)).collect();
    let mut args = vec!["ban", "web"];
    args.extend(too_many.iter().map(String::as_str));
    assert_refused(&daemon.cli(&args), &["1001 addresses; at most 1000 per command"]);
    assert_eq!(bans(daemon), []);

    // Both at once (the second given twice is banned once), enforced when
    // the command returns; the attacker's other address still connects.
    let banned = daemon.cli(&["ban", "web", &a, &b, &b]).assert_ok();
    let lines: Vec<&str> = banned.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{banned:?}");
    assert!(lines[0].starts_with(&format!("banned {a} in web until ")), "{banned:?}");
    assert!(lines[1].starts_with(&format!("banned {b} in web until ")), "{banned:?}");
    for src in [NEIGHBOUR_A, NEIGHBOUR_B] {
        assert_dropped(&lab.attacker, Some(src.into()), SERVER_A.into(), &src.to_string());
    }
    let mut other = lab.open(&lab.attacker, SERVER_A);
    echo(&mut other, ECHO_WITHIN).expect("the attacker's unbanned address still connects");
    let mut listed = bans(daemon);
    listed.sort();
    assert_eq!(listed, [manual(&a, "web"), manual(&b, "web")]);
    let json = daemon.cli(&["ban", "web", "10.232.3.4", "10.232.3.5", "--json"]).assert_ok();
    let json = json.json().expect("ban --json prints JSON");
    assert_eq!(json["banned"].as_array().map(Vec::len), Some(2), "{json}");
}

#[test]
fn bad_input_is_refused_with_exit_code_2_and_one_line_saying_what_is_valid() {
    let no_daemon = tempfile::tempdir().unwrap();
    let unreachable = cli(&no_daemon.path().join("warden.sock"), &["status"]);
    assert_eq!(unreachable.code, 3, "no daemon listens: exit code 3, {unreachable:?}");
    assert!(unreachable.stderr.contains("cannot reach the warden daemon"), "{unreachable:?}");

    let Some(rig) = Rig::new("d-bad") else { return };
    let (lab, daemon) = (&rig.lab, &rig.daemon);
    let server = SERVER_A.to_string();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["ban", "web", "127.0.0.1"],
            &["covers loopback", "ban an address, or a network, that does not hold it"],
        ),
        (&["ban", "web", IGNORED], &["jail web ignores it (ignoreip)", "remove it from ignoreip"]),
        (&["ban", "web", "0.0.0.0/0"], &["covers every address", "no broader than /16 (IPv4) or /32 (IPv6)"]),
        (&["ban", "web", "::/0"], &["covers every address"]),
        (&["ban", "web", "10.0.0.0/8"], &["broader than the floor /16; ban a /16 or narrower"]),
        (&["ban", "web", &server], &["an address of this host", "that does not hold it"]),
        (&["ban", "web24", "10.232.1.0/24"], &["it covers 10.232.1.1, an address of this host"]),
        (&["ban", "nope", "10.232.1.2"], &["unknown jail \"nope\"; jails: web, web24"]),
        (&["ban", "web", "10.232.1.300"], &["invalid address", "like 203.0.113.7, 198.51.100.0/24"]),
        (
            &["ban", "web", "10.232.1.2", "--for", "soon"],
            &["--for: invalid duration \"soon\"", "like 90s", "permanent"],
        ),
        (&["unban", "a.b.c.d"], &["invalid address", "like 203.0.113.7"]),
        (&["bans", "--jail", "nope"], &["unknown jail \"nope\""]),
    ];
    for (args, says) in cases {
        assert_refused(&daemon.cli(args), says);
    }
    // Nothing refused was stored or reached the kernel.
    assert_eq!(bans(daemon), []);
    let state = lab.kernel_state();
    assert!(
        state.lines().filter(|l| l.starts_with("set warden-")).all(|l| l.ends_with(": []")),
        "no jail set holds an entry:\n{state}"
    );
}

#[test]
fn a_restart_keeps_the_attacker_blocked_throughout_and_restores_the_ban() {
    let Some(mut rig) = Rig::new("d-restart") else { return };
    rig.daemon.cli(&["ban", "web", &ATTACKER.to_string()]).assert_ok();
    let enforced = rig.lab.kernel_state();

    let prober = rig.lab.probe(&rig.lab.attacker, SERVER_A);
    prober.wait_for_more(2);
    let status = rig.daemon.stop();
    assert!(status.success(), "SIGTERM stops the daemon cleanly: {status}\n{}", rig.daemon.log());
    assert_eq!(rig.lab.kernel_state(), enforced, "stopping leaves sets and rules in place");
    prober.wait_for_more(2);
    rig.daemon = Daemon::start(&rig.lab.server, &rig.files);
    prober.wait_for_more(2);
    let (attempts, successes) = prober.stop();
    assert_eq!(successes, 0, "the attacker got through during the restart ({attempts} attempts)");

    assert_eq!(bans(&rig.daemon), [manual(ATTACKER, "web")], "the ban is restored from the store");
    assert_eq!(rig.lab.kernel_state(), enforced, "the restarted daemon enforces the same");
    // The ban, not a broken path, kept the prober out.
    rig.daemon.cli(&["unban", &ATTACKER.to_string()]).assert_ok();
    let mut back = rig.lab.open(&rig.lab.attacker, SERVER_A);
    echo(&mut back, ECHO_WITHIN).expect("after the unban the attacker gets through");
}

#[test]
fn a_broken_config_is_refused_on_reload_and_the_running_one_keeps_enforcing() {
    let Some(mut rig) = Rig::new("d-reload") else { return };
    rig.daemon.cli(&["ban", "web", &ATTACKER.to_string()]).assert_ok();

    // An unknown key in jail `web`, on the line after `web:`.
    let good = rig.files.config_text("");
    let web_line = good.lines().position(|l| l == "  web:").expect("jail web in the config") + 1;
    let broken = good.replacen("  web:\n", "  web:\n    bogus: 1\n", 1);
    rig.files.write_config(&broken);
    let refused = rig.daemon.cli(&["reload"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    let place = format!("{}:{}:", rig.files.config().display(), web_line + 1);
    assert!(refused.stderr.contains(&place), "the error names {place}: {refused:?}");
    assert!(refused.stderr.contains("bogus"), "the error names the key: {refused:?}");
    assert!(rig.daemon.is_running(), "a refused reload leaves the daemon running");
    assert_eq!(bans(&rig.daemon), [manual(ATTACKER, "web")]);
    assert_dropped(&rig.lab.attacker, None, SERVER_A.into(), "the banned attacker");

    // A fixed config with one more jail reloads; the ban holds throughout.
    let extra = rig.files.config_text(&format!(
        "  extra:\n    filter: sshd\n    sources: [{{file: {{path: {}}}}}]\n    target: host\n    ports: [22]\n",
        rig.files.path("auth.log").display()
    ));
    rig.files.write_config(&extra);
    let prober = rig.lab.probe(&rig.lab.attacker, SERVER_A);
    prober.wait_for_more(2);
    let reloaded = rig.daemon.cli(&["reload"]).assert_ok();
    assert_eq!(reloaded.stdout, "reloaded: 3 jails (added: extra, removed: none)\n");
    prober.wait_for_more(2);
    let (attempts, successes) = prober.stop();
    assert_eq!(successes, 0, "the attacker got through during the reload ({attempts} attempts)");
    assert_eq!(bans(&rig.daemon), [manual(ATTACKER, "web")]);
    let status = rig.daemon.cli(&["status", "--json"]).assert_ok().json().unwrap();
    let jails: Vec<&str> =
        status["jails"].as_array().unwrap().iter().filter_map(|j| j["name"].as_str()).collect();
    assert_eq!(jails, ["extra", "web", "web24"]);
    let status = rig.daemon.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn the_socket_refuses_other_users_and_survives_malformed_requests() {
    let Some(server) = TestNetns::create("d-sock") else { return };
    let files = Files::new();
    let mut daemon = Daemon::start(&server, &files);
    let socket = files.socket();
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid()), (0o600, 0), "the socket is root's, mode 0600");

    match Nobody::new() {
        None => eprintln!("note: neither setpriv nor runuser is installed; the non-root checks are skipped"),
        Some(nobody) => {
            // Let others reach the socket: only its own mode keeps them out.
            for dir in [files.dir.path(), socket.parent().unwrap()] {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            let socket_arg = socket.to_str().unwrap();
            let denied = nobody.cli(&["status", "--socket", socket_arg]);
            assert_refused(&denied, &["permission denied", "only root may control warden"]);
            // With the mode loosened by hand, the daemon's credential check
            // still refuses, and does nothing.
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
            let refused = nobody.cli(&["ban", "web", "10.232.1.77", "--socket", socket_arg]);
            assert_refused(&refused, &["permission denied: uid 65534 may not control warden; run as root"]);
            assert_eq!(bans(&daemon), []);
        }
    }

    // A client that connects and says nothing holds no one else up.
    let stalled = UnixStream::connect(&socket).unwrap();
    let huge = vec![b'x'; 1 << 20];
    let garbage: &[(&[u8], &str)] = &[
        (b"{not json\n", "request is not JSON"),
        (b"\xff\xfe\xfd\n", "request is not UTF-8"),
        (b"{\"v\":1,\"cmd\":\"explode\"}\n", "malformed request"),
        (b"{\"v\":99,\"cmd\":\"version\"}\n", "speaks control protocol v1, the request v99"),
        (b"{\"cmd\":\"version\"}\n", "no protocol version"),
        (&huge, "request longer than 65536 bytes"),
    ];
    for (request, says) in garbage {
        let answer = raw_request(&socket, request);
        let answer: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
        assert_eq!(answer["ok"], false, "{answer}");
        assert_eq!(answer["error"]["kind"], "bad_input", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message:?} should say {says:?}");
        assert!(daemon.is_running(), "the daemon survived {says}");
    }
    let version = daemon.cli(&["version"]).assert_ok();
    assert!(version.stdout.contains("(daemon), control protocol v1"), "{version:?}");
    drop(stalled);
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    let gone = daemon.cli(&["status"]);
    assert_eq!(gone.code, 3, "a stopped daemon is unreachable: {gone:?}");
}

/// Writes `request` on a fresh connection (however much the daemon takes
/// of it) and returns the answer line.
fn raw_request(socket: &Path, request: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(ECHO_WITHIN)).unwrap();
    stream.set_write_timeout(Some(ECHO_WITHIN)).unwrap();
    // An oversized request is cut short by the daemon's answer and close.
    let _ = stream.write_all(request);
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).expect("the daemon answers");
    answer
}

/// The warden CLI run as `nobody` (uid 65534) through `setpriv` or
/// `runuser`.
struct Nobody {
    tool: &'static str,
    warden: PathBuf,
    /// Holds a link to the binary when nobody cannot reach it where it is.
    _dir: Option<tempfile::TempDir>,
}

impl Nobody {
    /// `None` if no tool for it is installed (a failure with CI=true).
    fn new() -> Option<Nobody> {
        let tool = ["setpriv", "runuser"].into_iter().find(|t| netns::have_program(t));
        if tool.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but neither setpriv nor runuser (util-linux) is installed");
        }
        let mut nobody = Nobody { tool: tool?, warden: PathBuf::from(WARDEN), _dir: None };
        if nobody.cli(&["--version"]).code != 0 {
            // The checkout is in a directory nobody may not enter (/root):
            // give it the binary where it can.
            let dir = tempfile::tempdir().unwrap();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let warden = dir.path().join("warden");
            if std::fs::hard_link(WARDEN, &warden).is_err() {
                std::fs::copy(WARDEN, &warden).unwrap();
            }
            nobody.warden = warden;
            nobody._dir = Some(dir);
            let version = nobody.cli(&["--version"]);
            assert_eq!(version.code, 0, "nobody runs {}: {version:?}", nobody.warden.display());
        }
        Some(nobody)
    }

    fn cli(&self, args: &[&str]) -> Cli {
        let mut command = Command::new(self.tool);
        match self.tool {
            "setpriv" => command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]),
            _ => command.args(["-u", "nobody", "--"]),
        };
        run_cli(command.arg(&self.warden).args(args))
    }
}

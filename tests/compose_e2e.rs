//! The compose stack end to end: `compose/docker-compose.yml` exactly as
//! users paste it (with its default config, `compose/config/`), warden's
//! image built the way CI builds it (`scripts/warden-image`, no registry),
//! and a labelled web service attacked for real from network namespaces.
//!
//! ```text
//! attacker ns   eth0 10.237.1.2 (+ .3) ──veth── wce2e-att 10.237.1.1 ┐ host namespace:
//! bystander ns  eth0 10.237.2.2        ──veth── wce2e-bys 10.237.2.1 ┘ DNAT → FORWARD →
//!                                                 DOCKER-USER → web container (port 80)
//! ```
//! The web service (the busybox test image's httpd, a second compose file
//! next to the shipped one) publishes a free host port P. Its CGI answers
//! 401 and writes nginx's "password mismatch" error-log line, with the
//! client's address, to stderr: one auth failure per request, in the format
//! the shipped `nginx-http-auth` filter reads. Its labels put it in that
//! jail with `maxretry: 3` and `ports: P`. Clients reach it only at the
//! host's veth addresses, port P: through Docker's DNAT and `DOCKER-USER`,
//! as a remote client would (never the bridge address).
//!
//! In order, in one test (the stack is costly to bring up):
//! 1. three bad requests get the attacker dropped; the bystander still gets
//!    through;
//! 2. `docker exec warden warden bans --json` lists the ban;
//! 3. `warden unban` lets the attacker through at once;
//! 4. `warden ban` of a fresh address (the attacker's second one) drops it;
//! 5. `docker restart warden`, probed continuously from both banned
//!    addresses (not one connection gets through) and the bystander's;
//! 6. `compose down` (the state volume stays), `warden cleanup` on the host
//!    so the kernel forgets every ban, `compose up`: the bans come back from
//!    the volume;
//! 7. 10,000 bans through the CLI inside the container, while the
//!    container's cgroup PID count is sampled: it stays below `pids_limit`
//!    and returns to its idle count.
//!
//! warden runs in the host's network namespace (`network_mode: host`) and
//! changes the host's firewall, so the test holds [`HostFirewallLock`] for
//! its whole run, and its guards take the project down (volumes too),
//! remove the namespaces and run `warden cleanup` on the host even when it
//! fails. Needs root, dockerd and docker-compose (or `docker compose`);
//! skipped with a reason elsewhere, never skipped with `CI=true`.

#[path = "support/host_lock.rs"]
mod host_lock;
#[path = "support/image.rs"]
mod image;
#[path = "support/lab.rs"]
mod lab;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/topology.rs"]
mod topology;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use host_lock::HostFirewallLock;
use image::{compose_program, docker, docker_ok, repo_root, warden_image};
use lab::wait_until;
use netns::TestNetns;
use serde_json::Value;
use topology::ip;

const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 237, 1, 1);
const ATTACKER: Ipv4Addr = Ipv4Addr::new(10, 237, 1, 2);
/// The attacker's second address, banned by hand.
const FRESH: Ipv4Addr = Ipv4Addr::new(10, 237, 1, 3);
const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 237, 2, 1);
const BYSTANDER: Ipv4Addr = Ipv4Addr::new(10, 237, 2, 2);
/// Host ends of the veth pairs; fixed names, so a run killed before its
/// guards ran is cleaned up by the next one.
const HOST_DEV_A: &str = "wce2e-att";
const HOST_DEV_B: &str = "wce2e-bys";
/// The test image `scripts/test-image` builds from busybox-static.
const BUSYBOX_IMAGE: &str = "warden-test-busybox:latest";
/// The shipped jail the web service joins, and its label override.
const JAIL: &str = "nginx-http-auth";
const MAXRETRY: usize = 3;
const BULK_BANS: usize = 10_000;
/// Compose project names of this test start with this.
const PROJECT_PREFIX: &str = "wardene2e";
/// How long a compose or docker command may take before it is killed.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// How long warden may take to start (and attach the web container).
const READY_WITHIN: Duration = Duration::from_secs(60);
/// A connection the firewall lets through is accepted well within this.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);
/// A connect that gets no answer for this long counts as dropped.
const SILENT_FOR: Duration = Duration::from_millis(500);

/// The CGI: one nginx `password mismatch` error-log line per request on
/// stderr (the container's log), then a 401.
const LOGIN_CGI: &str = r#"#!/bin/sh
printf '%s [error] 7#7: *1 user "admin": password mismatch, client: %s, server: web, request: "GET /cgi-bin/login HTTP/1.1", host: "web"\n' \
    "$(date '+%Y/%m/%d %H:%M:%S')" "$REMOTE_ADDR" >&2
printf 'Status: 401 Unauthorized\r\nContent-Type: text/plain\r\n\r\ndenied\n'
"#;

#[test]
fn compose_stack_bans_survives_restarts_and_stays_within_its_pids() {
    let started = Instant::now();
    let Some(image) = warden_image() else { return };
    let Some(program) = compose_program() else { return };
    let built =
        run_with_deadline(&mut Command::new(repo_root().join("scripts/test-image")), COMMAND_DEADLINE);
    assert!(built.status.success(), "scripts/test-image failed: {}", String::from_utf8_lossy(&built.stderr));
    let _lock = HostFirewallLock::acquire(Duration::from_secs(600));
    remove_leftovers();
    let Some(clients) = Clients::new() else { return };
    let stack = Stack::up(program, image);
    let web = stack.web_name();
    let web_jail = format!("{JAIL}@{web}");
    let target = SocketAddr::from((HOST_A, stack.port));
    let bystander_target = SocketAddr::from((HOST_B, stack.port));
    eprintln!("stack up after {:?}: web {web} on port {}", started.elapsed(), stack.port);

    // 1. Bad requests get the attacker dropped on the published port; the
    //    bystander still gets through.
    attack_until_dropped(&clients.attacker, ATTACKER, target);
    assert_eq!(login(&clients.bystander, BYSTANDER, bystander_target), "401");

    // 2. The CLI lists the ban, made by the container's own jail.
    let bans = warden_bans();
    let ban = bans.get(&ATTACKER.to_string()).unwrap_or_else(|| panic!("no ban of {ATTACKER}: {bans:?}"));
    assert_eq!((ban["jail"].as_str(), ban["origin"].as_str()), (Some(&*web_jail), Some("jail")), "{ban}");

    // 3. Unban lets the attacker in at once: the answer waits for the kernel.
    let unbanned = warden_ok(&["unban", &ATTACKER.to_string()]);
    assert!(unbanned.contains(&format!("unbanned {ATTACKER} in {web_jail}")), "{unbanned}");
    assert_eq!(login(&clients.attacker, ATTACKER, target), "401");

    // 4. A manual ban of a fresh address is enforced when the command returns.
    let banned = warden_ok(&["ban", JAIL, &FRESH.to_string()]);
    assert!(banned.starts_with(&format!("banned {FRESH} in {JAIL}")), "{banned}");
    assert_dropped(&clients.attacker, FRESH, target);
    connect(&clients.attacker, Some(ATTACKER), target, CONNECT_WITHIN)
        .expect("the attacker's other address still gets through");

    // 5. `docker restart warden`: both bans hold during and after it.
    attack_until_dropped(&clients.attacker, ATTACKER, target);
    let probes = [
        Prober::start(&clients.attacker, ATTACKER, target),
        Prober::start(&clients.attacker, FRESH, target),
        Prober::start(&clients.bystander, BYSTANDER, bystander_target),
    ];
    probes.iter().for_each(|p| p.wait_for_more(3));
    let before: Vec<(usize, usize)> = probes.iter().map(Prober::counts).collect();
    docker_ok(&["restart", "--time", "20", &warden_container()]);
    let during: Vec<(usize, usize)> = probes.iter().map(Prober::counts).collect();
    stack.wait_ready();
    probes.iter().for_each(|p| p.wait_for_more(10));
    let [attacker, fresh, bystander] = probes.map(Prober::stop);
    eprintln!("restart probes (attempts, successes): {attacker:?} {fresh:?} {bystander:?}");
    for (i, who) in ["attacker", "fresh", "bystander"].iter().enumerate() {
        assert!(during[i].0 > before[i].0, "the {who} prober made no attempt while warden restarted");
    }
    assert!(during[2].1 > before[2].1, "the bystander got through while warden restarted: {during:?}");
    assert_eq!(attacker.1, 0, "{ATTACKER} got through during or after the restart ({attacker:?})");
    assert_eq!(fresh.1, 0, "{FRESH} got through during or after the restart ({fresh:?})");
    assert!(bystander.1 > during[2].1, "the bystander got through after the restart: {bystander:?}");
    let logs = docker(&["logs", &warden_container()]);
    assert!(
        String::from_utf8_lossy(&logs.stderr).contains("stopped; bans stay enforced in the kernel"),
        "warden stopped cleanly on SIGTERM"
    );

    // 6. down (the state volume stays), the kernel wiped, up: the bans come
    //    back from the volume alone.
    stack.compose_ok(&["down", "--timeout", "20"]);
    docker_ok(&["volume", "inspect", &stack.volume()]);
    host_cleanup();
    let left = warden_host(&["cleanup", "--dry-run"]);
    assert!(left.contains("nothing to remove"), "the kernel still holds warden's rules or sets:\n{left}");
    stack.compose_ok(&["up", "--detach", "--no-build"]);
    stack.wait_ready();
    assert_dropped(&clients.attacker, ATTACKER, target);
    assert_dropped(&clients.attacker, FRESH, target);
    assert_eq!(login(&clients.bystander, BYSTANDER, bystander_target), "401");
    let bans = warden_bans();
    for (addr, jail, origin) in [(ATTACKER, &*web_jail, "jail"), (FRESH, JAIL, "manual")] {
        let ban = bans.get(&addr.to_string()).unwrap_or_else(|| panic!("{addr} not restored: {bans:?}"));
        assert_eq!((ban["jail"].as_str(), ban["origin"].as_str()), (Some(jail), Some(origin)), "{ban}");
    }

    // 7. 10,000 bans through the CLI: the PID count stays below pids_limit
    //    and comes back to idle.
    let pids = PidsCgroup::of(&warden_container());
    assert_eq!(pids.max(), Some(32), "pids_limit from compose/docker-compose.yml");
    let idle = pids.settle();
    let (peak, took) = pids.peak_while(bulk_ban_command());
    eprintln!("{BULK_BANS} bans in {took:?}; pids idle {idle}, peak {peak} (limit 32)");
    assert!(peak < 32, "the PID count reached {peak}, the limit is 32");
    wait_until("the PID count is back to idle", Duration::from_secs(30), || {
        let now = pids.current();
        if now <= idle { Ok(()) } else { Err(format!("{now} pids, {idle} when idle")) }
    });
    let status: Value = serde_json::from_str(&warden_ok(&["status", JAIL, "--json"])).expect("status JSON");
    let banned = status["jails"][0]["currently_banned"].as_u64();
    assert_eq!(banned, Some(BULK_BANS as u64 + 1), "the bulk bans and {FRESH}: {status}");
    assert!(ipset_entries(&format!("warden-{JAIL}-v4")) > BULK_BANS, "the kernel set holds the bulk bans");
    eprintln!("done in {:?}", started.elapsed());
}

// ---- the compose project ------------------------------------------------

/// The compose project: the shipped file plus the web service's, taken down
/// with its volumes when dropped, then the host's firewall cleaned.
struct Stack {
    program: Vec<&'static str>,
    project: String,
    image: String,
    port: u16,
    /// Holds the web service's compose file and document root.
    dir: tempfile::TempDir,
}

impl Stack {
    fn up(program: Vec<&'static str>, image: &str) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let cgi = dir.path().join("www/cgi-bin/login");
        std::fs::create_dir_all(cgi.parent().expect("cgi-bin")).expect("create www/cgi-bin");
        std::fs::write(&cgi, LOGIN_CGI).expect("write the CGI");
        std::fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        // Only the web service; the shipped file stays as users paste it.
        // SIGKILL because busybox httpd as PID 1 ignores SIGTERM.
        let web = format!(
            r#"services:
  warden:
    container_name: {container}
  web:
    image: {BUSYBOX_IMAGE}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["{port}:80"]
    volumes: ["{www}:/www:ro"]
    stop_signal: SIGKILL
    labels:
      warden.jails: {JAIL}
      warden.jail.{JAIL}.maxretry: "{MAXRETRY}"
      warden.jail.{JAIL}.ports: "{port}"
"#,
            www = dir.path().join("www").display(),
            container = warden_container(),
        );
        std::fs::write(dir.path().join("web.yml"), web).expect("write web.yml");
        let stack = Stack { program, project: project_name(), image: image.to_string(), port, dir };
        stack.compose_ok(&["up", "--detach", "--no-build"]);
        stack.wait_ready();
        stack
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(self.program[0]);
        cmd.args(&self.program[1..])
            .arg("--project-name")
            .arg(&self.project)
            .arg("--file")
            .arg(repo_root().join("compose/docker-compose.yml"))
            .arg("--file")
            .arg(self.dir.path().join("web.yml"))
            .env("WARDEN_IMAGE", &self.image);
        cmd
    }

    fn compose(&self, args: &[&str]) -> Output {
        run_with_deadline(self.command().args(args), COMMAND_DEADLINE)
    }

    fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "compose {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The web container's name (docker-compose 1.29 and v2 spell it
    /// differently).
    fn web_name(&self) -> String {
        let id = self.compose_ok(&["ps", "-q", "web"]);
        let name = docker_ok(&["inspect", "--format", "{{.Name}}", id.trim()]);
        name.trim().trim_start_matches('/').to_string()
    }

    /// The named state volume, as compose names it.
    fn volume(&self) -> String {
        format!("{}_warden-state", self.project)
    }

    /// Waits until warden answers `status` with its firewall in place and
    /// the web container attached to its jail.
    fn wait_ready(&self) {
        let web = self.web_name();
        let jail = format!("{JAIL}@{web}");
        wait_until("warden is up with the web container attached", READY_WITHIN, || {
            let out = docker(&["exec", &warden_container(), "warden", "status", "--json"]);
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
            let status: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
            if status["backend"].is_null() {
                return Err(format!("firewall not started: {}", status["firewall_error"]));
            }
            // Its logs come from its json-file log (compose mounts dockerd's
            // containers directory), not through the Docker API.
            let attached = status["containers"].as_array().is_some_and(|all| {
                all.iter().any(|c| {
                    c["name"] == web.as_str()
                        && c["attached"] == true
                        && c["logs"] == "file"
                        && c["jails"].as_array().is_some_and(|j| j.iter().any(|j| j == jail.as_str()))
                })
            });
            if attached { Ok(()) } else { Err(format!("{web} not attached: {}", status["containers"])) }
        });
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = docker(&["logs", "--tail", "40", &warden_container()]);
            eprintln!(
                "warden's last log lines:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        let down = self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "10"]);
        if !down.status.success() {
            eprintln!("warning: compose down failed: {}", String::from_utf8_lossy(&down.stderr).trim());
            let _ = docker(&["rm", "--force", &warden_container()]);
            let _ = docker(&["volume", "rm", "--force", &self.volume()]);
        }
        host_cleanup();
    }
}

/// `warden cleanup` in the host's namespace: no warden chain, jump or set
/// stays behind.
fn host_cleanup() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden")).arg("cleanup").output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!("warning: warden cleanup failed: {}", String::from_utf8_lossy(&out.stderr).trim())
        }
        Err(e) => eprintln!("warning: cannot run warden cleanup: {e}"),
    }
}

/// Runs the host's warden binary (this build) and returns its stdout.
fn warden_host(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_warden")).args(args).output().expect("run warden");
    assert!(out.status.success(), "warden {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This run's compose project.
fn project_name() -> String {
    format!("{PROJECT_PREFIX}{}", std::process::id())
}

/// This run's warden container. The shipped file names it `warden`; the
/// test renames it so that a `warden` the host already runs (a user's, or
/// another experiment's) neither blocks the test nor gets removed by it.
fn warden_container() -> String {
    format!("{}-warden", project_name())
}

/// A run of this test killed before its guards ran leaves a project (its
/// name starts with [`PROJECT_PREFIX`]), veths and namespaces; the lock is
/// ours, so they are remnants.
fn remove_leftovers() {
    let listed = docker_ok(&[
        "ps",
        "--all",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        "{{.ID}} {{.Label \"com.docker.compose.project\"}}",
    ]);
    let mut projects = BTreeSet::new();
    for (id, project) in listed.lines().filter_map(|l| l.split_once(' ')) {
        if project.starts_with(PROJECT_PREFIX) {
            let _ = docker(&["rm", "--force", "--volumes", id]);
            projects.insert(project.to_string());
        }
    }
    for project in &projects {
        let _ = docker(&["volume", "rm", "--force", &format!("{project}_warden-state")]);
        let _ = docker(&["network", "rm", &format!("{project}_default")]);
    }
    if !projects.is_empty() {
        host_cleanup();
    }
    for dev in [HOST_DEV_A, HOST_DEV_B] {
        let _ = Command::new("ip").args(["link", "delete", dev]).output();
    }
}

/// A TCP port nothing listens on now, for the web service to publish.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

// ---- the CLI, through docker exec ----------------------------------------

/// `docker exec warden warden ARGS`, which must succeed; returns stdout.
fn warden_ok(args: &[&str]) -> String {
    let container = warden_container();
    let mut all = vec!["exec", &*container, "warden"];
    all.extend_from_slice(args);
    docker_ok(&all)
}

/// `warden bans --json`, by address.
fn warden_bans() -> BTreeMap<String, Value> {
    let text = warden_ok(&["bans", "--json"]);
    let bans: Vec<Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bans --json: {e}:\n{text}"));
    bans.into_iter().map(|b| (b["net"].as_str().unwrap_or_default().to_string(), b)).collect()
}

/// The command making [`BULK_BANS`] bans through the CLI inside the
/// container: two shell loops at once, each calling `warden ban` with 250
/// addresses at a time.
fn bulk_ban_command() -> Command {
    let half = BULK_BANS / 2 / 250;
    let script = format!(
        "set -e; \
         loop() {{ for b in $(seq $1 $2); do warden ban {JAIL} $(seq -f \"10.238.$b.%g\" 1 250) >/dev/null; done; }}; \
         loop 0 {a} & first=$!; loop {b} {c}; wait $first",
        a = half - 1,
        b = half,
        c = 2 * half - 1,
    );
    let mut cmd = Command::new("docker");
    cmd.args(["exec", &warden_container(), "sh", "-c", &script]);
    cmd
}

/// How many entries the host's kernel set `name` holds.
fn ipset_entries(name: &str) -> usize {
    let out = Command::new("ipset").args(["list", "-terse", name]).output().expect("run ipset");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Number of entries: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("ipset list {name}: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

// ---- the container's PID count -----------------------------------------

/// The pids cgroup of a container, read from the host (a `docker exec`
/// would add a process of its own).
struct PidsCgroup {
    dir: PathBuf,
}

impl PidsCgroup {
    fn of(container: &str) -> PidsCgroup {
        let pid = docker_ok(&["inspect", "--format", "{{.State.Pid}}", container]);
        let cgroups =
            std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).expect("/proc/PID/cgroup");
        // cgroup v1: "N:pids:/docker/ID"; v2: "0::/…".
        let v1 = cgroups.lines().find_map(|l| l.split_once(":pids:").map(|(_, p)| p.to_string()));
        let dir = match v1 {
            Some(path) => Path::new("/sys/fs/cgroup/pids").join(path.trim_start_matches('/')),
            None => {
                let path = cgroups.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 line");
                Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'))
            }
        };
        assert!(dir.join("pids.current").is_file(), "no pids.current in {}", dir.display());
        PidsCgroup { dir }
    }

    fn current(&self) -> usize {
        let text = std::fs::read_to_string(self.dir.join("pids.current")).expect("read pids.current");
        text.trim().parse().expect("pids.current is a number")
    }

    fn max(&self) -> Option<usize> {
        std::fs::read_to_string(self.dir.join("pids.max")).ok()?.trim().parse().ok()
    }

    /// The idle count: the same for a whole second (the async runtime's
    /// spare threads exit after 10 s without work).
    fn settle(&self) -> usize {
        let mut last = (self.current(), Instant::now());
        wait_until("the PID count settles", Duration::from_secs(30), || {
            let now = self.current();
            if now != last.0 {
                last = (now, Instant::now());
            }
            if last.1.elapsed() >= Duration::from_secs(1) { Ok(now) } else { Err(format!("{now} pids")) }
        })
    }

    /// Runs `command` to success, sampling the count every few
    /// milliseconds; returns the highest seen and how long it took.
    fn peak_while(&self, mut command: Command) -> (usize, Duration) {
        let start = Instant::now();
        let mut child: Child =
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn docker exec");
        let mut peak = self.current();
        let status = loop {
            peak = peak.max(self.current());
            if let Some(status) = child.try_wait().expect("wait for docker exec") {
                break status;
            }
            assert!(start.elapsed() < COMMAND_DEADLINE, "the bulk bans took over {COMMAND_DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(2));
        };
        let out = child.wait_with_output().expect("docker exec output");
        assert!(status.success(), "bulk bans failed ({status}): {}", String::from_utf8_lossy(&out.stderr));
        (peak, start.elapsed())
    }
}

// ---- the clients ----------------------------------------------------------

/// The attacker and bystander namespaces, linked to the host over veth.
/// Dropping a namespace deletes its veth pair, host end included.
struct Clients {
    attacker: TestNetns,
    bystander: TestNetns,
}

impl Clients {
    fn new() -> Option<Clients> {
        let attacker = TestNetns::create("ce2e-att")?;
        let bystander = TestNetns::create("ce2e-bys")?;
        link_to_host(&attacker, HOST_DEV_A, HOST_A, &[ATTACKER, FRESH]);
        link_to_host(&bystander, HOST_DEV_B, HOST_B, &[BYSTANDER]);
        Some(Clients { attacker, bystander })
    }
}

/// A veth pair: `dev` with `host_addr`/24 in the host's namespace, `eth0`
/// with `addrs`/24 in `client`, whose default route goes through the host.
fn link_to_host(client: &TestNetns, dev: &str, host_addr: Ipv4Addr, addrs: &[Ipv4Addr]) {
    let c = client.name();
    ip(&["link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", c]);
    ip(&["addr", "add", &format!("{host_addr}/24"), "dev", dev]);
    ip(&["link", "set", dev, "up"]);
    for addr in addrs {
        ip(&["-n", c, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
    }
    ip(&["-n", c, "link", "set", "eth0", "up"]);
    ip(&["-n", c, "link", "set", "lo", "up"]);
    ip(&["-n", c, "route", "add", "default", "via", &host_addr.to_string()]);
}

/// A TCP connect to `to` from `src` (or the address routing picks); must
/// run on a thread inside the client's namespace.
fn connect_here(src: Option<Ipv4Addr>, to: SocketAddr, within: Duration) -> io::Result<TcpStream> {
    let Some(src) = src else { return TcpStream::connect_timeout(&to, within) };
    // std cannot bind before connecting; tokio's socket can.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((src, 0)))?;
        let stream = tokio::time::timeout(within, socket.connect(to))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

fn connect(ns: &TestNetns, src: Option<Ipv4Addr>, to: SocketAddr, within: Duration) -> io::Result<TcpStream> {
    ns.run(|| connect_here(src, to, within))
}

/// A login attempt (one auth failure in the web service's log); returns
/// the HTTP status code.
fn http_login(ns: &TestNetns, src: Option<Ipv4Addr>, to: SocketAddr) -> io::Result<String> {
    let mut stream = connect(ns, src, to, CONNECT_WITHIN)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(
        b"GET /cgi-bin/login HTTP/1.0\r\nHost: web\r\nAuthorization: Basic YWRtaW46eA==\r\n\r\n",
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.split_whitespace().nth(1).unwrap_or_default().to_string();
    Ok(status)
}

/// [`http_login`], which must get an answer.
fn login(ns: &TestNetns, src: Ipv4Addr, to: SocketAddr) -> String {
    http_login(ns, Some(src), to).unwrap_or_else(|e| panic!("a login from {src} to {to} got no answer: {e}"))
}

/// Asserts that connects from `src` to `to` get no answer at all.
fn assert_dropped(ns: &TestNetns, src: Ipv4Addr, to: SocketAddr) {
    match connect(ns, Some(src), to, SILENT_FOR) {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
        other => panic!("{src}'s connect to {to} should have been dropped, got {other:?}"),
    }
}

/// Makes [`MAXRETRY`] failed logins from `src` (fewer if it is dropped
/// sooner: failures from before count too), then waits until its connects
/// are dropped.
fn attack_until_dropped(ns: &TestNetns, src: Ipv4Addr, to: SocketAddr) {
    for attempt in 1..=MAXRETRY {
        match http_login(ns, Some(src), to) {
            Ok(status) => assert_eq!(status, "401", "attempt {attempt} from {src}"),
            // Dropped before connecting, or the ban landed while the
            // request was in flight (an earlier failure still counted).
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => break,
            Err(e) => panic!("attempt {attempt} from {src}: {e}"),
        }
    }
    wait_until(&format!("{src} is dropped on {to}"), Duration::from_secs(30), || {
        match connect(ns, Some(src), to, SILENT_FOR) {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(()),
            Ok(_) => Err("connected".to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
}

/// Connects from `src` to `to` over and over (paced, so the web service is
/// not flooded), counting attempts and connections that got through.
struct Prober {
    attempts: Arc<AtomicUsize>,
    successes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    fn start(ns: &TestNetns, src: Ipv4Addr, to: SocketAddr) -> Prober {
        let attempts = Arc::new(AtomicUsize::new(0));
        let successes = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (attempts, successes, stop) = (attempts.clone(), successes.clone(), stop.clone());
            ns.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let begun = Instant::now();
                    if connect_here(Some(src), to, Duration::from_millis(200)).is_ok() {
                        successes.fetch_add(1, Ordering::Relaxed);
                    }
                    attempts.fetch_add(1, Ordering::Relaxed);
                    if let Some(rest) = Duration::from_millis(25).checked_sub(begun.elapsed()) {
                        std::thread::sleep(rest);
                    }
                }
            })
        };
        Prober { attempts, successes, stop, thread: Some(thread) }
    }

    fn successes(&self) -> usize {
        self.successes.load(Ordering::Relaxed)
    }

    /// (attempts, successes) so far.
    fn counts(&self) -> (usize, usize) {
        (self.attempts.load(Ordering::Relaxed), self.successes())
    }

    /// Waits until `n` more attempts were made.
    fn wait_for_more(&self, n: usize) {
        let target = self.attempts.load(Ordering::Relaxed) + n;
        wait_until("the prober makes its next attempts", Duration::from_secs(10), || {
            let made = self.attempts.load(Ordering::Relaxed);
            if made >= target { Ok(()) } else { Err(format!("{made} of {target}")) }
        });
    }

    /// Stops; returns (attempts, successes).
    fn stop(mut self) -> (usize, usize) {
        self.halt();
        (self.attempts.load(Ordering::Relaxed), self.successes())
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.halt();
    }
}

// ---- processes with deadlines -------------------------------------------

/// Runs `command`, killing it if it takes longer than `deadline`.
fn run_with_deadline(command: &mut Command, deadline: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let until = Instant::now() + deadline;
    // Drain the pipes on threads so a chatty command cannot block on them.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let status = child.wait().expect("reap the killed child");
            let mut stderr = err.join().unwrap_or_default();
            stderr.extend_from_slice(format!("\n(killed after {deadline:?})").as_bytes());
            return Output { status, stdout: out.join().unwrap_or_default(), stderr };
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

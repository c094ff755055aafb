//! warden's container image, built the way CI builds it (no registry:
//! `scripts/warden-image` from the debootstrap base, with the binary cargo
//! built for these tests), checked from the outside:
//!
//! - it runs warden under tini with `run --config /etc/warden/warden.yaml`,
//!   a `warden status` health check, OCI labels and a state volume;
//! - the default config inside is `config/warden.yaml` and validates, and so
//!   does every example's config; `warden filters` lists the shipped ones;
//! - under the Compose file's restrictions (read-only root, tmpfs
//!   /run/warden, all capabilities dropped but NET_ADMIN and NET_RAW,
//!   no-new-privileges, 32 pids) both iptables variants, ip6tables, ipset
//!   and `warden cleanup` work. This runs in a network namespace of the
//!   container's own (`--network none`), never the host's.
//!
//! Needs dockerd (started through scripts/dockerd-up) and, the first time,
//! root and debootstrap; skipped with a reason elsewhere, never skipped
//! with CI=true.

#[path = "support/image.rs"]
mod image;

use image::{compose_program, docker, docker_ok, repo_root, warden_image};
use serde_json::Value;
use warden::filter::Registry;

fn inspect(image: &str) -> Value {
    let text = docker_ok(&["image", "inspect", image]);
    let all: Value = serde_json::from_str(&text).expect("docker image inspect prints JSON");
    all[0].clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn the_image_runs_warden_under_tini_with_health_check_labels_and_state_volume() {
    let Some(image) = warden_image() else { return };
    let config = &inspect(image)["Config"];
    assert_eq!(strings(&config["Entrypoint"]), ["/usr/bin/tini", "--", "warden"], "tini is PID 1");
    assert_eq!(strings(&config["Cmd"]), ["run", "--config", "/etc/warden/warden.yaml"]);
    assert_eq!(strings(&config["Healthcheck"]["Test"]), ["CMD", "warden", "status"]);
    assert!(config["Volumes"].get("/var/lib/warden").is_some(), "state volume: {}", config["Volumes"]);

    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "warden");
    assert_eq!(labels["org.opencontainers.image.version"], env!("CARGO_PKG_VERSION"));
    for key in ["description", "licenses", "revision", "created"] {
        let value = labels[format!("org.opencontainers.image.{key}")].as_str().unwrap_or_default();
        assert!(!value.is_empty() && value != "unknown", "label org.opencontainers.image.{key} is {value:?}");
    }

    // Through the entrypoint: tini is where the image says, and starts warden.
    let version = docker_ok(&["run", "--rm", "--network", "none", image, "--version"]);
    assert_eq!(version.trim(), format!("warden {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn the_default_config_is_built_in_and_valid() {
    let Some(image) = warden_image() else { return };
    let inside = docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/cat",
        image,
        "/etc/warden/warden.yaml",
    ]);
    let shipped =
        std::fs::read_to_string(repo_root().join("config/warden.yaml")).expect("config/warden.yaml");
    assert!(inside == shipped, "/etc/warden/warden.yaml in the image differs from config/warden.yaml");

    let check = docker_ok(&["run", "--rm", "--network", "none", image, "check-config"]);
    assert!(check.starts_with("ok: /etc/warden/warden.yaml"), "check-config says:\n{check}");
    assert!(
        check.lines().any(|l| l.trim_start().starts_with("sshd ")),
        "the default config has sshd:\n{check}"
    );
}

#[test]
fn every_example_config_validates_inside_the_image() {
    let Some(image) = warden_image() else { return };
    let examples = repo_root().join("examples");
    let mount = format!("{}:/examples:ro", examples.display());
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &mount,
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        "set -e; for f in /examples/*/config/warden.yaml; do warden check-config --config \"$f\"; done",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "an example config is invalid:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dirs = std::fs::read_dir(&examples)
        .expect("examples/")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().join("config/warden.yaml").is_file()))
        .count();
    assert!(dirs >= 5, "expected the five examples, found {dirs}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: /examples/")).count(),
        dirs,
        "one `ok` per example:\n{stdout}"
    );
}

#[test]
fn warden_filters_lists_the_shipped_filters() {
    let Some(image) = warden_image() else { return };
    let listed = docker_ok(&["run", "--rm", "--network", "none", image, "filters"]);
    let names: Vec<&str> = listed.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, Registry::shipped().names());
}

/// The Compose file's restrictions on the warden service, as `docker run`
/// flags, in a network namespace of the container's own.
const COMPOSE_RESTRICTIONS: &[&str] = &[
    "--network",
    "none",
    "--read-only",
    "--tmpfs",
    "/run/warden:rw,noexec,nosuid,nodev,mode=0700,size=1m",
    "--cap-drop",
    "ALL",
    "--cap-add",
    "NET_ADMIN",
    "--cap-add",
    "NET_RAW",
    "--security-opt",
    "no-new-privileges:true",
    "--pids-limit",
    "32",
];

#[test]
fn firewall_tools_work_under_the_compose_restrictions() {
    let Some(image) = warden_image() else { return };
    // Each iptables variant and family: make a chain with a rule, list it,
    // remove it. Then an ipset with a timeout, and warden's own cleanup
    // (which detects the backend and reads the sets over netlink).
    let script = r#"
        set -e
        for v in nft legacy; do for t in iptables ip6tables; do
            $t-$v -N WARDEN-IMAGE-TEST
            $t-$v -A WARDEN-IMAGE-TEST -p tcp --dport 25 -j DROP
            $t-$v-save -t filter | grep -q -- "-A WARDEN-IMAGE-TEST -p tcp -m tcp --dport 25 -j DROP"
            $t-$v -F WARDEN-IMAGE-TEST
            $t-$v -X WARDEN-IMAGE-TEST
            echo "$t-$v ok"
        done; done
        ipset create warden-image-test hash:ip timeout 600
        ipset add warden-image-test 192.0.2.7
        ipset list warden-image-test | grep -q "^192.0.2.7 timeout"
        ipset destroy warden-image-test
        echo "ipset ok"
        warden cleanup --dry-run
    "#;
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(COMPOSE_RESTRICTIONS);
    args.extend_from_slice(&["--entrypoint", "/bin/sh", image, "-c", script]);
    let out = docker(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "firewall tools fail under the Compose restrictions:\n{stdout}{stderr}");
    for tool in ["iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy", "ipset"] {
        assert!(
            stdout.lines().any(|l| l == format!("{tool} ok")),
            "{tool} did not finish:\n{stdout}{stderr}"
        );
    }
    assert!(stdout.contains("nothing to remove"), "warden cleanup in a fresh namespace:\n{stdout}{stderr}");
}

/// A Compose project that is taken down, volumes included, when dropped.
struct Project {
    program: Vec<&'static str>,
    name: String,
    file: std::path::PathBuf,
    image: String,
}

impl Project {
    fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.program[0]);
        cmd.args(&self.program[1..])
            .arg("--project-name")
            .arg(&self.name)
            .arg("--file")
            .arg(&self.file)
            .env("WARDEN_IMAGE", &self.image);
        cmd
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.command().args(["down", "--volumes"]).output();
    }
}

/// compose/docker-compose.yml as dockerd applies it: the warden service
/// gets exactly NET_ADMIN and NET_RAW, no new privileges, a read-only root
/// with a private /run/warden tmpfs and a writable state volume, 32 pids,
/// the config directory and the journal read-only, and the Docker socket.
/// Runs `compose run` with a shell instead of the daemon; the container is
/// in the host's network namespace (network_mode: host) but only reads.
#[test]
fn the_compose_service_gets_exactly_its_privileges_and_mounts() {
    let Some(image) = warden_image() else { return };
    let Some(program) = compose_program() else { return };
    let project = Project {
        program,
        name: format!("warden-image-test-{}", std::process::id()),
        file: repo_root().join("compose/docker-compose.yml"),
        image: image.to_string(),
    };
    let script = r#"
        grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status
        touch /root-is-writable 2>/dev/null && echo "root: writable" || echo "root: read-only"
        touch /etc/warden/x 2>/dev/null && echo "config: writable" || echo "config: read-only"
        touch /run/warden/x && echo "run: writable $(stat -c %a /run/warden)"
        touch /var/lib/warden/x && echo "state: writable"
        echo "pids.max: $(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)"
        test -S /var/run/docker.sock && echo "docker socket: present"
        for d in /var/log/journal /run/log/journal; do
            grep -q " $d ro[, ]" /proc/self/mountinfo && echo "$d: read-only"
        done
        warden check-config >/dev/null && echo "config: valid"
    "#;
    let out = project
        .command()
        .args(["run", "--rm", "--entrypoint", "/bin/sh", "warden", "-c", script])
        .output()
        .expect("compose runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "compose run failed:\n{stdout}{stderr}");
    // NET_ADMIN is capability 12, NET_RAW 13: 0x3000 and nothing else.
    for expected in [
        "CapEff:\t0000000000003000",
        "CapBnd:\t0000000000003000",
        "NoNewPrivs:\t1",
        "root: read-only",
        "config: read-only",
        "run: writable 700",
        "state: writable",
        "pids.max: 32",
        "docker socket: present",
        "/var/log/journal: read-only",
        "/run/log/journal: read-only",
        "config: valid",
    ] {
        assert!(stdout.lines().any(|l| l == expected), "expected `{expected}` in:\n{stdout}{stderr}");
    }
}

/// Removes a container when dropped, so a failing test leaves none behind.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", &self.0]);
    }
}

/// The daemon as the image starts it: becomes healthy (`warden status`
/// answers), and stops cleanly on `docker stop` (SIGTERM through tini)
/// rather than being killed when the grace period ends.
#[test]
fn the_daemon_starts_healthy_and_stops_on_sigterm() {
    let Some(image) = warden_image() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("warden.yaml");
    // A jail reading a file the test owns, banning in the container's own
    // namespace: nothing here needs the host's Docker socket or journal.
    std::fs::write(
        &config,
        "jails:\n  test:\n    filter: sshd\n    sources: [{file: {path: /logs/auth.log}}]\n    target: host\n",
    )
    .expect("write config");
    std::fs::write(dir.path().join("auth.log"), "").expect("write log");
    let name = format!("warden-image-test-{}", std::process::id());
    let config_mount = format!("{}:/etc/warden/warden.yaml:ro", config.display());
    let logs_mount = format!("{}:/logs:ro", dir.path().display());
    let mut args = vec!["run", "--detach", "--name", &name];
    args.extend_from_slice(COMPOSE_RESTRICTIONS);
    args.extend_from_slice(&[
        "-v",
        &config_mount,
        "-v",
        &logs_mount,
        "--health-interval",
        "1s",
        "--health-start-period",
        "30s",
        image,
    ]);
    docker_ok(&args);
    let container = Container(name);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let health =
            docker_ok(&["inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", &container.0]);
        match health.trim() {
            "running healthy" => break,
            state if std::time::Instant::now() >= deadline || state.starts_with("exited") => {
                let logs = docker(&["logs", &container.0]);
                panic!(
                    "the container did not become healthy ({state}):\n{}{}",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(250)),
        }
    }
    docker_ok(&["stop", "--time", "20", &container.0]);
    let exit = docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", &container.0]);
    assert_eq!(exit.trim(), "0", "warden exits cleanly on SIGTERM (137 would mean it was killed)");
}

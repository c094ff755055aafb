//! warden's container image for tests, built without a registry; a
//! `docker` runner that rides out dockerd restarts; the compose command.
//!
//! [`warden_image`] builds the image once per test binary through the same
//! scripts a person uses: `scripts/warden-image` (which runs
//! `scripts/dockerd-up` and `scripts/base-image`) with the binary cargo just
//! built for the tests, so no extra compilation happens. The tag is unique
//! to the checkout, so worktrees sharing one dockerd do not overwrite each
//! other's image.
//!
//! Without what the build needs (dockerd, and for the first build root and
//! debootstrap), it returns `None` after saying why, so the test can skip.
//! With `CI=true` it panics instead: in CI these tests must run.

// Shared by several test crates, each using part of it.
#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The local Debian base `scripts/base-image` builds by default.
pub const BASE_IMAGE: &str = "warden-base:bookworm";
/// How long a docker command is retried while dockerd does not answer
/// (another user of the same dockerd may be restarting it).
const DOCKERD_DEADLINE: Duration = Duration::from_secs(90);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (returns `None`) with `reason`, or panics with it under `CI=true`.
fn unavailable<T>(reason: String) -> Option<T> {
    if in_ci() {
        panic!("CI=true and this test cannot run: {reason}");
    }
    eprintln!("skipping: {reason}");
    None
}

/// The image's tag: `warden-test:<hash of this checkout's path>`.
pub fn image_tag() -> String {
    let mut hasher = DefaultHasher::new();
    env!("CARGO_MANIFEST_DIR").hash(&mut hasher);
    format!("warden-test:{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// Builds warden's image (once per test binary) and returns its tag, or
/// `None` when this machine cannot build it (see the module docs).
pub fn warden_image() -> Option<&'static str> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    let built = IMAGE.get_or_init(|| {
        let root = repo_root();
        let up = Command::new(root.join("scripts/dockerd-up")).output();
        match up {
            Ok(out) if out.status.success() => {}
            Ok(out) => return Err(format!("no Docker daemon: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Err(e) => return Err(format!("scripts/dockerd-up does not run: {e}")),
        }
        let base_present = docker(&["image", "inspect", BASE_IMAGE]).status.success();
        if !base_present {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let root_user = unsafe { libc::geteuid() } == 0;
            let debootstrap = Command::new("debootstrap").arg("--version").output().is_ok();
            if !root_user || !debootstrap {
                return Err(format!(
                    "{BASE_IMAGE} is missing and cannot be built here (scripts/base-image needs root and debootstrap)"
                ));
            }
        }
        let tag = image_tag();
        let out = Command::new(root.join("scripts/warden-image"))
            .args(["--tag", &tag, "--binary", env!("CARGO_BIN_EXE_warden")])
            .current_dir(&root)
            .output()
            .map_err(|e| format!("scripts/warden-image does not run: {e}"))?;
        // A build that could start and then failed is a real failure, here
        // and in CI alike.
        assert!(
            out.status.success(),
            "scripts/warden-image failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(tag)
    });
    match built {
        Ok(tag) => Some(tag.as_str()),
        Err(reason) => unavailable(reason.clone()),
    }
}

/// Whether a failed docker command failed because dockerd did not answer.
fn daemon_unreachable(out: &Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    // The client's own words; a container's output could say anything else.
    err.contains("Cannot connect to the Docker daemon") || err.contains("error during connect")
}

/// Runs `docker ARGS`, retrying while dockerd does not answer (for up to
/// 90 s, restarting it through `scripts/dockerd-up` when it is gone).
pub fn docker(args: &[&str]) -> Output {
    docker_in(args, None)
}

/// [`docker`], from the directory `dir` when given.
pub fn docker_in(args: &[&str], dir: Option<&Path>) -> Output {
    let deadline = Instant::now() + DOCKERD_DEADLINE;
    loop {
        let mut cmd = Command::new("docker");
        cmd.args(args);
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let out = cmd.output().expect("the docker client runs");
        if out.status.success() || !daemon_unreachable(&out) || Instant::now() >= deadline {
            return out;
        }
        let _ = Command::new(repo_root().join("scripts/dockerd-up")).output();
        thread::sleep(Duration::from_millis(500));
    }
}

/// [`docker`], panicking with its output unless it succeeds; returns stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The compose command (`docker-compose`, else `docker compose`) as argv,
/// or `None` after saying why when neither runs (a failure with CI=true).
pub fn compose_program() -> Option<Vec<&'static str>> {
    let works = |argv: &[&str]| {
        Command::new(argv[0]).args(&argv[1..]).arg("version").output().is_ok_and(|o| o.status.success())
    };
    for argv in [vec!["docker-compose"], vec!["docker", "compose"]] {
        if works(&argv) {
            return Some(argv);
        }
    }
    unavailable("neither docker-compose nor `docker compose` runs: apt-get install docker-compose".into())
}

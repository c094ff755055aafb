//! `warden import-fail2ban` on Debian's real fail2ban configuration
//! (`apt-get install fail2ban`), copied to a temporary directory with a
//! `jail.local` written here; `warden check-config` must accept what it
//! prints. Without fail2ban installed the tests skip, saying so, except
//! with CI=true, where that is a failure.

use std::path::Path;
use std::process::{Command, Output};

const FAIL2BAN_DIR: &str = "/etc/fail2ban";

fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden")).args(args).output().expect("the warden binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether fail2ban's configuration is installed; in CI it must be.
fn fail2ban_installed() -> bool {
    if Path::new(FAIL2BAN_DIR).join("jail.conf").is_file() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{FAIL2BAN_DIR}/jail.conf is missing: install fail2ban (apt-get install fail2ban; scripts/test does)"
    );
    eprintln!("skipped: {FAIL2BAN_DIR}/jail.conf is missing (apt-get install fail2ban)");
    false
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("directory created");
    for entry in std::fs::read_dir(from).expect("fail2ban's directory is readable") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).expect("file copied");
        }
    }
}

/// fail2ban's configuration with `jail_local` added, imported to a file
/// and checked; returns the import's stderr and check-config's stdout.
fn import_and_check(jail_local: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let conf = dir.path().join("fail2ban");
    copy_tree(Path::new(FAIL2BAN_DIR), &conf);
    std::fs::write(conf.join("jail.local"), jail_local).expect("jail.local written");
    let yaml = dir.path().join("warden.yaml");
    let out = warden(&[
        "import-fail2ban",
        conf.to_str().expect("utf-8"),
        "--output",
        yaml.to_str().expect("utf-8"),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "import failed: {stderr}");
    assert!(out.stdout.is_empty(), "--output leaves stdout empty");
    for line in stderr.lines() {
        assert!(line.starts_with("warning: ["), "each warning is one line naming its jail: {line}");
    }
    let check = warden(&["check-config", "-c", yaml.to_str().expect("utf-8")]);
    let summary = text(&check.stdout);
    let written = std::fs::read_to_string(&yaml).expect("the output file");
    assert!(check.status.success(), "check-config refused the import:\n{summary}\n{written}");
    assert!(summary.starts_with("ok: "), "{summary}");

    // Without --output the same text goes to stdout.
    let again = warden(&["import-fail2ban", conf.to_str().expect("utf-8")]);
    assert!(again.status.success());
    assert_eq!(text(&again.stdout), written);
    (stderr, summary)
}

#[test]
fn debians_sshd_jail_imports_into_a_valid_configuration() {
    if !fail2ban_installed() {
        return;
    }
    let (_, summary) = import_and_check("[sshd]\nenabled = true\n");
    let line = summary.lines().find(|l| l.trim_start().starts_with("sshd ")).expect("an sshd jail");
    for part in ["filter=fail2ban:sshd", "target=host", "ports=22", "protocol=tcp", "enabled"] {
        assert!(line.contains(part), "{part} missing in {line}");
    }

    let (_, summary) = import_and_check("[sshd]\nenabled = true\nbackend = systemd\nmode = aggressive\n");
    let line = summary.lines().find(|l| l.trim_start().starts_with("sshd ")).expect("an sshd jail");
    assert!(line.contains("sources=journald(_SYSTEMD_UNIT=sshd.service | _COMM=sshd)"), "{line}");
}

#[test]
fn every_stock_jail_imports_into_a_valid_configuration() {
    if !fail2ban_installed() {
        return;
    }
    let (stderr, summary) = import_and_check("[DEFAULT]\nenabled = true\n[sshd]\naction = %(action_mwl)s\n");
    let jails = summary.lines().skip(1).count();
    assert!(jails >= 80, "fail2ban ships about 90 jails; {jails} imported:\n{summary}");
    assert!(stderr.contains("[sshd] action sendmail-whois-lines is not carried over"), "{stderr}");
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let out = warden(&["import-fail2ban", "/nonexistent/fail2ban-config"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("/nonexistent/fail2ban-config"), "{stderr}");
}

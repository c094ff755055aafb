//! The configurations and Compose files warden ships (`config/`,
//! `compose/`, `examples/*/`) stay valid and keep their promises:
//!
//! - every `warden.yaml` passes the same validation as `warden check-config`,
//!   and every jail's filter compiles with the jail's `filter_params`;
//! - `compose/config/warden.yaml` is the image's default config, byte for byte;
//! - every example has its README, Compose file and config;
//! - the `warden` service keeps its hardening (host network, only
//!   NET_ADMIN and NET_RAW, read-only root, pids limit, read-only mounts)
//!   and is the same in every Compose file;
//! - the `warden.jails` and `warden.jail.<jail>.<option>` labels of example
//!   services name jails of that example and valid settings;
//! - `docker-compose config` accepts every Compose file (needs
//!   docker-compose, not dockerd; with CI=true its absence is a failure).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "support/image.rs"]
mod image;

use image::compose_program;
use serde_json::Value;
use warden::config::{self, Config, FilterRef};
use warden::filter::Registry;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `examples/<name>` directories, sorted.
fn example_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root().join("examples"))
        .expect("examples/ is readable")
        .map(|e| e.expect("examples/ entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Every shipped warden.yaml.
fn shipped_configs() -> Vec<PathBuf> {
    let mut configs = vec![root().join("config/warden.yaml"), root().join("compose/config/warden.yaml")];
    configs.extend(example_dirs().into_iter().map(|d| d.join("config/warden.yaml")));
    configs
}

/// Every shipped Compose file that runs warden.
fn compose_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("compose/docker-compose.yml")];
    files.extend(example_dirs().into_iter().map(|d| d.join("docker-compose.yml")));
    files
}

fn load_config(path: &Path) -> Config {
    let registry = Registry::shipped();
    config::load(path, &|name: &str| registry.contains(name))
        .unwrap_or_else(|errors| panic!("{} is invalid:\n{errors}", path.display()))
}

fn yaml(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

#[test]
fn every_shipped_config_is_valid_and_its_filters_compile() {
    let registry = Registry::shipped();
    for path in shipped_configs() {
        let config = load_config(&path);
        assert!(!config.jails.is_empty(), "{} defines no jail", rel(&path));
        for jail in config.jails.values() {
            let filter = match &jail.filter {
                FilterRef::Name(name) => name.clone(),
                FilterRef::File(file) => file.display().to_string(),
            };
            if let Err(e) = registry.load(&filter, &jail.filter_params) {
                panic!(
                    "{}: jail {}: filter {filter} does not compile with {:?}: {e}",
                    rel(&path),
                    jail.name,
                    jail.filter_params
                );
            }
        }
    }
}

#[test]
fn the_default_config_protects_host_ssh_and_has_a_docker_jail_per_service_filter() {
    let config = load_config(&root().join("config/warden.yaml"));
    let sshd = config.jails.get("sshd").expect("the default config has an sshd jail");
    assert_eq!(sshd.target, warden::core::Target::Host, "sshd runs on the host: its bans go to INPUT");
    assert!(
        matches!(sshd.sources.as_slice(), [config::SourceSpec::Journald { .. }]),
        "the default sshd jail reads the journal, got {:?}",
        sshd.sources
    );
    // Every shipped filter made for a service's own log has a jail of the
    // same name fed by labelled containers, so `warden.jails=<filter>` works
    // with no edits. sshd (host) and recidive (warden's log) are the others.
    let registry = Registry::shipped();
    for name in registry.names().into_iter().filter(|n| !["sshd", "recidive"].contains(n)) {
        let jail = config.jails.get(name).unwrap_or_else(|| panic!("no default jail for filter {name}"));
        assert_eq!(jail.filter, FilterRef::Name(name.to_string()));
        assert!(
            jail.sources
                .iter()
                .any(|s| matches!(s, config::SourceSpec::Docker { containers, .. } if containers.is_empty())),
            "default jail {name} must take labelled containers: {:?}",
            jail.sources
        );
        assert_eq!(jail.target, warden::core::Target::Docker, "default jail {name}");
    }
}

#[test]
fn compose_mounts_the_images_default_config() {
    let default = fs::read(root().join("config/warden.yaml")).expect("config/warden.yaml");
    let compose = fs::read(root().join("compose/config/warden.yaml")).expect("compose/config/warden.yaml");
    assert!(
        default == compose,
        "compose/config/warden.yaml must be a copy of config/warden.yaml (the image's default): cp config/warden.yaml compose/config/"
    );
}

#[test]
fn every_example_is_complete() {
    let dirs = example_dirs();
    let names: Vec<String> =
        dirs.iter().map(|d| d.file_name().expect("dir name").to_string_lossy().into_owned()).collect();
    for expected in ["host-sshd", "mailu", "nginx", "traefik", "vaultwarden"] {
        assert!(names.iter().any(|n| n == expected), "examples/{expected} is missing (found {names:?})");
    }
    for dir in dirs {
        for file in ["README.md", "docker-compose.yml", "config/warden.yaml"] {
            assert!(dir.join(file).is_file(), "{} has no {file}", rel(&dir));
        }
        let readme = fs::read_to_string(dir.join("README.md")).expect("README.md");
        for section in ["## Run", "## Test it"] {
            assert!(readme.contains(section), "{}/README.md has no `{section}` section", rel(&dir));
        }
    }
}

/// A string list (`[a, b]`) or the empty list.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => {
            items.iter().map(|i| i.as_str().unwrap_or_default().to_string()).collect()
        }
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn service<'a>(doc: &'a Value, name: &str, path: &Path) -> &'a Value {
    doc.get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("{} has no `{name}` service", rel(path)))
}

#[test]
fn the_warden_service_is_hardened_everywhere() {
    for path in compose_files() {
        let doc = yaml(&path);
        let warden = service(&doc, "warden", &path);
        let at = rel(&path);
        let field = |key: &str| warden.get(key).cloned().unwrap_or(Value::Null);
        assert_eq!(field("network_mode"), "host", "{at}: network_mode");
        assert_eq!(
            strings(warden.get("cap_add")),
            ["NET_ADMIN", "NET_RAW"],
            "{at}: cap_add, and nothing else"
        );
        assert_eq!(strings(warden.get("cap_drop")), ["ALL"], "{at}: cap_drop");
        assert!(warden.get("privileged").is_none_or(|p| p == false), "{at}: never privileged");
        assert!(warden.get("devices").is_none(), "{at}: no devices");
        assert_eq!(field("pids_limit"), 32, "{at}: pids_limit");
        assert_eq!(field("read_only"), true, "{at}: read_only");
        assert_eq!(field("restart"), "unless-stopped", "{at}: restart");
        assert_eq!(field("container_name"), "warden", "{at}: `docker exec warden warden …` needs the name");
        assert!(
            strings(warden.get("tmpfs")).iter().any(|t| t.split(':').next() == Some("/run/warden")),
            "{at}: a tmpfs at /run/warden for the control socket"
        );

        let volumes = strings(warden.get("volumes"));
        let mount = |target: &str| -> (String, String) {
            let spec = volumes
                .iter()
                .find(|v| v.split(':').nth(1) == Some(target))
                .unwrap_or_else(|| panic!("{at}: nothing mounted at {target} ({volumes:?})"));
            let mut parts = spec.splitn(3, ':');
            let source = parts.next().unwrap_or_default().to_string();
            parts.next();
            (source, parts.next().unwrap_or_default().to_string())
        };
        for target in ["/var/run/docker.sock", "/var/log/journal", "/run/log/journal", "/etc/warden"] {
            let (source, mode) = mount(target);
            assert_eq!(mode, "ro", "{at}: {source} must be mounted read-only at {target}");
        }
        // The directory, not the file: a bind-mounted file keeps showing the
        // old inode after an editor replaces it.
        assert_eq!(mount("/etc/warden").0, "./config", "{at}: the config directory next to the Compose file");
        let (state, _) = mount("/var/lib/warden");
        assert!(
            !state.starts_with('/') && !state.starts_with('.'),
            "{at}: /var/lib/warden is a named volume, got {state}"
        );
        assert!(
            doc.get("volumes").and_then(|v| v.get(&state)).is_some(),
            "{at}: the named volume {state} is declared under `volumes:`"
        );
    }
}

#[test]
fn examples_run_the_same_warden_service_as_compose() {
    let reference_path = root().join("compose/docker-compose.yml");
    let mut reference = service(&yaml(&reference_path), "warden", &reference_path).clone();
    reference.as_object_mut().expect("a mapping").remove("build");
    for dir in example_dirs() {
        let path = dir.join("docker-compose.yml");
        let mut warden = service(&yaml(&path), "warden", &path).clone();
        let build = warden.as_object_mut().expect("a mapping").remove("build");
        assert_eq!(build, Some(Value::from("../..")), "{}: build from the repository", rel(&path));
        assert_eq!(
            warden,
            reference,
            "{}: the warden service differs from compose/docker-compose.yml",
            rel(&path)
        );
    }
}

/// Settings a label may set for one container, and whether the value is a
/// list (comma-separated in the label, as in `warden.jails`).
const LABEL_OPTIONS: &[(&str, bool)] = &[
    ("filter", false),
    ("maxretry", false),
    ("findtime", false),
    ("bantime", false),
    ("ignoreip", true),
    ("ports", true),
    ("protocol", false),
    ("target", false),
    ("action", false),
    ("enabled", false),
    ("max_tracked", false),
];

/// A label value as a YAML value: lists become flow sequences.
fn label_yaml(value: &str, list: bool) -> String {
    let quote = |s: &str| format!("'{}'", s.trim().replace('\'', "''"));
    if list {
        format!("[{}]", value.split(',').map(quote).collect::<Vec<_>>().join(", "))
    } else {
        value.to_string()
    }
}

#[test]
fn example_labels_name_jails_of_the_example_with_valid_settings() {
    let registry = Registry::shipped();
    let mut labelled = 0;
    for dir in example_dirs() {
        let path = dir.join("docker-compose.yml");
        let config = load_config(&dir.join("config/warden.yaml"));
        let doc = yaml(&path);
        let services = doc.get("services").and_then(Value::as_object).expect("services");
        for (name, svc) in services.iter().filter(|(name, _)| name.as_str() != "warden") {
            let Some(labels) = svc.get("labels").and_then(Value::as_object) else { continue };
            let at = format!("{} service {name}", rel(&path));
            let jails: Vec<String> = labels
                .get("warden.jails")
                .and_then(Value::as_str)
                .map(|j| j.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default();
            let mut overrides: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            for (key, value) in labels {
                let Some(rest) = key.strip_prefix("warden.jail.") else { continue };
                let (jail, option) = rest
                    .rsplit_once('.')
                    .unwrap_or_else(|| panic!("{at}: label {key} is not warden.jail.<jail>.<option>"));
                let value = value.as_str().unwrap_or_else(|| panic!("{at}: label {key} must be a string"));
                overrides.entry(jail.to_string()).or_default().push((option.to_string(), value.to_string()));
            }
            if jails.is_empty() && overrides.is_empty() {
                continue;
            }
            labelled += 1;
            for jail in &jails {
                let conf = config.jails.get(jail).unwrap_or_else(|| {
                    panic!(
                        "{at}: warden.jails names {jail}, which {}/config/warden.yaml does not define",
                        rel(&dir)
                    )
                });
                assert!(
                    conf.sources.iter().any(|s| matches!(s, config::SourceSpec::Docker { .. })),
                    "{at}: jail {jail} has no docker source, so its label has no effect"
                );
            }
            // Each jail with overrides, rebuilt from its filter plus the
            // label settings, must pass the config's own validation.
            for (jail, options) in overrides {
                assert!(
                    jails.contains(&jail),
                    "{at}: warden.jail.{jail}.* set, but {jail} is not in warden.jails"
                );
                let filter = config.jails.get(&jail).map(|j| j.filter.to_string()).expect("checked above");
                let mut text =
                    format!("jails:\n  {jail}:\n    filter: {filter}\n    sources: [{{docker: {{}}}}]\n");
                for (option, value) in &options {
                    let &(_, list) =
                        LABEL_OPTIONS.iter().find(|(known, _)| known == option).unwrap_or_else(|| {
                            panic!("{at}: label option {option} is not one of {LABEL_OPTIONS:?}")
                        });
                    text.push_str(&format!("    {option}: {}\n", label_yaml(value, list)));
                }
                if let Err(errors) =
                    config::parse(&text, &PathBuf::from(format!("{at}, labels as YAML")), &|n: &str| {
                        registry.contains(n)
                    })
                {
                    panic!("{at}: the labels of jail {jail} are invalid:\n{errors}\n(as YAML:\n{text})");
                }
            }
        }
    }
    assert!(
        labelled >= 3,
        "nginx, traefik and vaultwarden label their containers; found {labelled} labelled services"
    );
}

#[test]
fn compose_accepts_every_compose_file() {
    let Some(program) = compose_program() else { return };
    // Mailu's logging settings are an override for Mailu's own project:
    // they are checked merged over a stand-in for it.
    let stand_in = tempfile::tempdir().expect("temp dir");
    let mailu_base = stand_in.path().join("docker-compose.yml");
    fs::write(&mailu_base, "services:\n  front: {image: mailu-front}\n  admin: {image: mailu-admin}\n")
        .expect("write the stand-in");
    let mut checks: Vec<Vec<PathBuf>> = compose_files().into_iter().map(|f| vec![f]).collect();
    checks.push(vec![mailu_base, root().join("examples/mailu/mailu-logging.yml")]);

    // docker-compose takes seconds to start: run the checks side by side.
    let children: Vec<_> = checks
        .into_iter()
        .map(|files| {
            let mut cmd = Command::new(program[0]);
            cmd.args(&program[1..]);
            for f in &files {
                cmd.arg("-f").arg(f);
            }
            // A fixed project name: the check must not depend on the directory's.
            cmd.args(["--project-name", "warden-check", "config", "--quiet"])
                .current_dir(files[0].parent().expect("a directory"))
                .env_remove("WARDEN_IMAGE")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            (files, cmd.spawn().expect("compose starts"))
        })
        .collect();
    for (files, child) in children {
        let out = child.wait_with_output().expect("compose exits");
        assert!(
            out.status.success(),
            "compose rejects {files:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

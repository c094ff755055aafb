//! Tests of the whole config pipeline: text in, `Config` or errors out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::core::{Action, BanPrefix, BanTime, PortRange, Protocol, Target};

const ORIGIN: &str = "/etc/warden/warden.yaml";
const FILTERS: FilterNames<'static> = FilterNames(&["sshd", "mailu-front", "nginx-http-auth", "postfix"]);

fn ok(text: &str) -> Config {
    match parse(text, Path::new(ORIGIN), &FILTERS) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text, Path::new(ORIGIN), &FILTERS) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.0,
    }
}

/// Asserts that `text` yields an error at `line:col` for `key` whose
/// rendering contains every fragment, and returns the rendered line.
#[track_caller]
fn assert_error(text: &str, line: u64, column: u64, key: &str, fragments: &[&str]) -> String {
    let all = errors(text);
    let rendered: Vec<String> = all.iter().map(ToString::to_string).collect();
    let found = all.iter().find(|e| e.pos == Some(Pos { line, column }) && e.key == key);
    let Some(error) = found else {
        panic!("no error at {line}:{column} for {key:?}; got:\n{}", rendered.join("\n"));
    };
    let line_text = error.to_string();
    let prefix = if key.is_empty() {
        format!("{ORIGIN}:{line}:{column}: ")
    } else {
        format!("{ORIGIN}:{line}:{column}: {key}: ")
    };
    assert!(line_text.starts_with(&prefix), "{line_text}");
    for fragment in fragments {
        assert!(line_text.contains(fragment), "{fragment:?} missing in {line_text}");
    }
    line_text
}

/// A jail with everything required, plus `extra` lines (indented 4).
fn jail(extra: &str) -> String {
    format!("jails:\n  j:\n    filter: sshd\n    sources: [{{docker: {{}}}}]\n{extra}")
}

const CONTRACT: &str = r#"state_dir: /var/lib/warden
socket: /run/warden/warden.sock
filter_dirs: [/]
defaults: {maxretry: 5, findtime: 10m, bantime: 10m, ignoreip: [127.0.0.0/8, "::1"]}
jails:
  bad-auth-bots:
    filter: mailu-front
    filter_params: {mode: aggressive}
    sources: [{journald: {match: {CONTAINER_TAG: mailu-front}}}]
    bantime: 1w
    ban_prefix: {v4: 24}
    ports: [25]
    target: docker            # docker | host | both
  webauth:
    filter: nginx-http-auth
    sources: [{docker: {}}]
  sshd:
    filter: sshd
    sources: [{file: {path: /var/log/auth.log}}]
    bantime_increment: {enabled: true, factor: 1, multipliers: [1, 2, 4, 8, 16, 32, 64], maxtime: 5w, rndtime: 10m}
    protocol: tcp
    action: reject
    enabled: true
"#;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn contract_example_resolves_every_field() {
    let config = ok(CONTRACT);
    assert_eq!(config.state_dir, PathBuf::from("/var/lib/warden"));
    assert_eq!(config.socket, PathBuf::from("/run/warden/warden.sock"));
    assert_eq!(config.filter_dirs, vec![PathBuf::from("/")]);
    assert_eq!(config.jails.keys().collect::<Vec<_>>(), ["bad-auth-bots", "sshd", "webauth"]);

    let bots = &config.jails["bad-auth-bots"];
    assert_eq!(bots.name, "bad-auth-bots");
    assert_eq!(bots.filter, FilterRef::Name("mailu-front".into()));
    assert_eq!(bots.filter_params.get("mode").map(String::as_str), Some("aggressive"));
    let tag = [("CONTAINER_TAG".to_string(), "mailu-front".to_string())].into_iter().collect();
    assert_eq!(bots.sources, vec![SourceSpec::Journald { matches: vec![tag], read_from: ReadFrom::End }]);
    assert_eq!(bots.bantime, BanTime::Finite(secs(7 * 86_400)));
    assert_eq!(bots.ban_prefix, BanPrefix { v4: 24, v6: 128 });
    assert_eq!(bots.ports, vec![PortRange { first: 25, last: 25 }]);
    assert_eq!(bots.target, Target::Docker);
    assert_eq!(bots.maxretry, 5);
    assert_eq!(bots.findtime, secs(600));

    let web = &config.jails["webauth"];
    assert_eq!(web.sources, vec![SourceSpec::Docker { containers: vec![], read_from: ReadFrom::End }]);
    assert_eq!(web.bantime, BanTime::Finite(secs(600)));
    assert!(web.ports.is_empty());
    assert_eq!(web.ignoreip.iter().map(ToString::to_string).collect::<Vec<_>>(), ["127.0.0.0/8", "::1/128"]);

    let sshd = &config.jails["sshd"];
    assert_eq!(
        sshd.sources,
        vec![SourceSpec::File { path: "/var/log/auth.log".into(), read_from: ReadFrom::Start }]
    );
    assert!(sshd.increment.enabled);
    assert_eq!(sshd.increment.factor, 1.0);
    assert_eq!(sshd.increment.multipliers, vec![1, 2, 4, 8, 16, 32, 64]);
    assert_eq!(sshd.increment.maxtime, Some(secs(5 * 7 * 86_400)));
    assert_eq!(sshd.increment.rndtime, Some(secs(600)));
    assert_eq!(sshd.protocol, Protocol::Tcp);
    assert_eq!(sshd.action, Action::Reject);
    assert!(sshd.enabled);
    assert_eq!(sshd.max_tracked, builtin::MAX_TRACKED);
}

#[test]
fn built_in_defaults_apply_without_a_defaults_section() {
    let config = ok(&jail(""));
    assert_eq!(config.state_dir, PathBuf::from(builtin::STATE_DIR));
    assert_eq!(config.socket, PathBuf::from(builtin::SOCKET));
    assert!(config.filter_dirs.is_empty());
    let j = &config.jails["j"];
    assert_eq!(j.maxretry, 5);
    assert_eq!(j.findtime, secs(600));
    assert_eq!(j.bantime, BanTime::Finite(secs(600)));
    // The built-in list must parse completely (build() relies on it).
    assert_eq!(j.ignoreip.len(), builtin::IGNOREIP.len());
    assert_eq!(j.ignoreip.iter().map(ToString::to_string).collect::<Vec<_>>(), ["127.0.0.0/8", "::1/128"]);
    assert_eq!(j.target, Target::Docker);
    assert_eq!(j.action, Action::Drop);
    assert_eq!(j.protocol, Protocol::Tcp);
    assert_eq!(j.ban_prefix, BanPrefix::default());
    assert!(j.enabled);
    assert!(!j.increment.enabled);
    assert_eq!(j.max_tracked, 100_000);
    assert!(j.filter_params.is_empty());
}

#[test]
fn jails_inherit_each_field_they_do_not_set_from_defaults() {
    let text = r#"
defaults:
  maxretry: 3
  findtime: 1h
  bantime: permanent
  ignoreip: [10.0.0.0/8]
  ban_prefix: {v4: 24, v6: 64}
  bantime_increment: {enabled: true, factor: 2, maxtime: 4w}
  ports: [443]
  target: both
  action: reject
  protocol: udp
  enabled: false
  max_tracked: 500
jails:
  inherits:
    filter: sshd
    sources: [{docker: {}}]
  overrides:
    filter: sshd
    sources: [{docker: {}}]
    maxretry: 7
    bantime: 2h
    ignoreip: ["2001:db8::/32"]
    ban_prefix: {v6: 48}
    bantime_increment: {factor: 3}
    ports: ["8000-8100"]
    target: host
    enabled: true
"#;
    let config = ok(text);
    let a = &config.jails["inherits"];
    assert_eq!((a.maxretry, a.findtime, a.bantime), (3, secs(3600), BanTime::Permanent));
    assert_eq!(a.ignoreip.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8"]);
    assert_eq!(a.ban_prefix, BanPrefix { v4: 24, v6: 64 });
    assert!(a.increment.enabled);
    assert_eq!((a.increment.factor, a.increment.maxtime), (2.0, Some(secs(28 * 86_400))));
    assert_eq!(a.ports, vec![PortRange { first: 443, last: 443 }]);
    assert_eq!((a.target, a.action, a.protocol), (Target::Both, Action::Reject, Protocol::Udp));
    assert!(!a.enabled);
    assert_eq!(a.max_tracked, 500);

    let b = &config.jails["overrides"];
    assert_eq!((b.maxretry, b.findtime, b.bantime), (7, secs(3600), BanTime::Finite(secs(7200))));
    // Lists replace the default list rather than adding to it.
    assert_eq!(b.ignoreip.iter().map(ToString::to_string).collect::<Vec<_>>(), ["2001:db8::/32"]);
    // Nested settings inherit per sub-field.
    assert_eq!(b.ban_prefix, BanPrefix { v4: 24, v6: 48 });
    assert!(b.increment.enabled);
    assert_eq!((b.increment.factor, b.increment.maxtime), (3.0, Some(secs(28 * 86_400))));
    assert_eq!(b.ports, vec![PortRange { first: 8000, last: 8100 }]);
    assert_eq!((b.target, b.action, b.protocol), (Target::Host, Action::Reject, Protocol::Udp));
    assert!(b.enabled);
}

#[test]
fn durations_accept_units_and_plain_seconds() {
    let config = ok(&jail("    findtime: 90\n    bantime: 1h30m\n    bantime_increment: {rndtime: 0}\n"));
    let j = &config.jails["j"];
    assert_eq!(j.findtime, secs(90));
    assert_eq!(j.bantime, BanTime::Finite(secs(5400)));
    assert_eq!(j.increment.rndtime, Some(Duration::ZERO));
    for forever in ["-1", "'-1d'", "permanent", "forever"] {
        let config = ok(&jail(&format!("    bantime: {forever}\n")));
        assert_eq!(config.jails["j"].bantime, BanTime::Permanent, "{forever}");
    }
    assert_eq!(ok(&jail("    bantime: 1y\n")).jails["j"].bantime, BanTime::Finite(secs(365 * 86_400)));
}

#[test]
fn ignoreip_takes_addresses_and_networks_of_both_families() {
    let config = ok(&jail(
        "    ignoreip: [192.0.2.7, 198.51.100.9/24, '2001:db8::1', '2001:db8:1::/48', '::ffff:203.0.113.5']\n",
    ));
    let nets: Vec<String> = config.jails["j"].ignoreip.iter().map(ToString::to_string).collect();
    assert_eq!(
        nets,
        ["192.0.2.7/32", "198.51.100.0/24", "2001:db8::1/128", "2001:db8:1::/48", "203.0.113.5/32"]
    );
    // fail2ban's space-separated spelling works too.
    let config = ok(&jail("    ignoreip: 127.0.0.1/8 ::1\n"));
    assert_eq!(config.jails["j"].ignoreip.len(), 2);
    assert!(ok(&jail("    ignoreip: []\n")).jails["j"].ignoreip.is_empty());
}

#[test]
fn ports_take_numbers_and_ranges() {
    let config = ok(&jail("    ports: [25, '465', '8000:8100', 9000-9010, 65535]\n"));
    let ports: Vec<String> = config.jails["j"].ports.iter().map(ToString::to_string).collect();
    assert_eq!(ports, ["25", "465", "8000:8100", "9000:9010", "65535"]);
    let config = ok(&jail("    ports: 80,443\n"));
    assert_eq!(config.jails["j"].ports.len(), 2);
    let config = ok(&jail(
        "    ports: 22\n    protocol: all\n    ports: []\n".replace("    ports: 22\n", "").as_str(),
    ));
    assert_eq!(config.jails["j"].protocol, Protocol::All);
}

#[test]
fn sources_of_every_kind() {
    let text = r#"
jails:
  j:
    filter: sshd
    sources:
      - docker: {containers: [web, /api-1]}
      - journald: {match: [{_SYSTEMD_UNIT: sshd.service}, {_COMM: sshd, PRIORITY: 5}]}
      - journald: {}
      - file: {path: "/var/log/nginx/*.log", read_from: end}
"#;
    let j = &ok(text).jails["j"];
    assert_eq!(j.sources.len(), 4);
    assert_eq!(
        j.sources[0],
        SourceSpec::Docker { containers: vec!["web".into(), "api-1".into()], read_from: ReadFrom::End }
    );
    let SourceSpec::Journald { matches, .. } = &j.sources[1] else { panic!("{:?}", j.sources[1]) };
    assert_eq!(matches.len(), 2);
    assert_eq!(matches[1].get("PRIORITY").map(String::as_str), Some("5"));
    assert_eq!(j.sources[2], SourceSpec::Journald { matches: vec![], read_from: ReadFrom::End });
    assert_eq!(
        j.sources[3],
        SourceSpec::File { path: "/var/log/nginx/*.log".into(), read_from: ReadFrom::End }
    );
    assert_eq!(j.sources[1].to_string(), "journald(_SYSTEMD_UNIT=sshd.service | PRIORITY=5 _COMM=sshd)");
}

#[test]
fn filters_resolve_by_catalog_filter_dir_or_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("custom.yaml"), "name: custom\n").unwrap();
    std::fs::write(dir.path().join("local.yaml"), "name: local\n").unwrap();
    let origin = dir.path().join("warden.yaml");
    let text = format!(
        "filter_dirs: [{}]\njails:\n  a: {{filter: custom, sources: [docker: {{}}]}}\n  b: {{filter: local.yaml, sources: [docker: {{}}]}}\n  c: {{filter: {}, sources: [docker: {{}}]}}\n",
        dir.path().display(),
        dir.path().join("custom.yaml").display()
    );
    let config = parse(&text, &origin, &|_: &str| false).unwrap();
    assert_eq!(config.jails["a"].filter, FilterRef::Name("custom".into()));
    assert_eq!(config.jails["b"].filter, FilterRef::File(dir.path().join("local.yaml")));
    assert_eq!(config.jails["c"].filter, FilterRef::File(dir.path().join("custom.yaml")));

    // The unknown-filter message lists catalog and filter-dir names alike.
    let text = format!(
        "filter_dirs: [{}]\njails:\n  a: {{filter: custm, sources: [docker: {{}}]}}\n",
        dir.path().display()
    );
    let errs = parse(&text, &origin, &FilterNames(&["sshd"])).unwrap_err();
    let line = errs.to_string();
    assert!(
        line.contains(
            "unknown filter `custm` (did you mean `custom`?); available: custom, local, sshd, or a path"
        ),
        "{line}"
    );
    assert!(line.contains(":3:15: jails.a.filter:"), "{line}");
}

#[test]
fn fail2ban_filters_resolve_in_the_fail2ban_filter_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sshd.conf"), "[Definition]\n").unwrap();
    let origin = dir.path().join("warden.yaml");
    let jail = |filter: &str| {
        format!("  j: {{filter: {filter}, filter_params: {{mode: aggressive}}, sources: [docker: {{}}]}}\n")
    };
    let text = format!("fail2ban_filter_dir: {}\njails:\n{}", dir.path().display(), jail("fail2ban:sshd"));
    let config = parse(&text, &origin, &|_: &str| false).unwrap();
    assert_eq!(config.fail2ban_filter_dir, dir.path());
    assert_eq!(config.jails["j"].filter, FilterRef::Name("fail2ban:sshd".into()));
    assert_eq!(config.jails["j"].filter_params["mode"], "aggressive");
    assert_eq!(ok("jails: {}\n").fail2ban_filter_dir, PathBuf::from(builtin::FAIL2BAN_FILTER_DIR));

    let text = format!("fail2ban_filter_dir: {}\njails:\n{}", dir.path().display(), jail("fail2ban:sshdd"));
    let line = parse(&text, &origin, &|_: &str| false).unwrap_err().to_string();
    assert!(line.contains("unknown fail2ban filter `fail2ban:sshdd`: no sshdd.conf in"), "{line}");
    let text = format!("fail2ban_filter_dir: {}/nope\njails: {{}}\n", dir.path().display());
    let line = parse(&text, &origin, &|_: &str| false).unwrap_err().to_string();
    assert!(line.contains("fail2ban_filter_dir:") && line.contains("does not exist"), "{line}");
    let line = parse(&format!("jails:\n{}", jail("fail2ban:../x")), &origin, &|_: &str| false)
        .unwrap_err()
        .to_string();
    assert!(line.contains("invalid fail2ban filter"), "{line}");
}

// ---- errors: each names file, line, column and key, and what is valid ----

#[test]
fn unknown_keys_list_valid_keys_and_suggest() {
    assert_error(
        &jail("    bantim: 1w\n"),
        5,
        5,
        "jails.j.bantim",
        &[
            "unknown key `bantim` in jails.j; valid keys are: filter, filter_params, sources, maxretry",
            "did you mean `bantime`?",
        ],
    );
    assert_error(
        "stat_dir: /x\n",
        1,
        1,
        "stat_dir",
        &["valid keys are: state_dir, socket", "did you mean `state_dir`?"],
    );
    assert_error(
        "defaults: {filter: sshd}\n",
        1,
        12,
        "defaults.filter",
        &["`filter` is set in each jail, not in defaults; valid keys here are: maxretry, findtime"],
    );
    assert_error(
        &jail("    bantime_increment: {enable: true}\n"),
        5,
        25,
        "jails.j.bantime_increment.enable",
        &["valid keys are: enabled, factor, multipliers, maxtime, rndtime", "did you mean `enabled`?"],
    );
    assert_error(
        &jail("    ban_prefix: {v5: 24}\n"),
        5,
        18,
        "jails.j.ban_prefix.v5",
        &["valid keys are: v4, v6"],
    );
    assert_error(
        "jails:\n  j:\n    filter: sshd\n    sources: [{dockr: {}}]\n",
        4,
        16,
        "jails.j.sources[0].dockr",
        &["valid keys are: docker, journald, file", "did you mean `docker`?"],
    );
    assert_error(
        "jails:\n  j:\n    filter: sshd\n    sources: [{file: {path: /a, from: end}}]\n",
        4,
        33,
        "jails.j.sources[0].file.from",
        &["valid keys are: path, read_from"],
    );
}

#[test]
fn duplicate_keys_are_reported_with_the_first_line() {
    assert_error(
        &jail("    bantime: 1w\n    bantime: 2w\n"),
        6,
        5,
        "jails.j.bantime",
        &["duplicate key `bantime`; it is already set on line 5"],
    );
    let text =
        "jails:\n  j: {filter: sshd, sources: [docker: {}]}\n  j: {filter: sshd, sources: [docker: {}]}\n";
    assert_error(text, 3, 3, "jails.j", &["duplicate key `j`; it is already set on line 2"]);
    assert_error(&jail("    filter: postfix\n"), 5, 5, "jails.j.filter", &["duplicate key `filter`"]);
}

#[test]
fn bad_durations_say_what_is_valid() {
    assert_error(
        &jail("    findtime: 10x\n"),
        5,
        15,
        "jails.j.findtime",
        &["invalid duration \"10x\"", "like 90s, 10m"],
    );
    assert_error(&jail("    findtime: -5\n"), 5, 15, "jails.j.findtime", &["negative"]);
    assert_error(&jail("    findtime: 0\n"), 5, 15, "jails.j.findtime", &["longer than 0s"]);
    assert_error(&jail("    bantime: soon\n"), 5, 14, "jails.j.bantime", &["invalid duration", "permanent"]);
    assert_error(&jail("    bantime: 0\n"), 5, 14, "jails.j.bantime", &["bans nothing"]);
    assert_error(
        &jail("    bantime: [1w]\n"),
        5,
        14,
        "jails.j.bantime",
        &["expected a ban time", "found a list"],
    );
    assert_error(
        "defaults: {findtime: 1.5}\n",
        1,
        22,
        "defaults.findtime",
        &["expected a duration", "found the number 1.5"],
    );
    assert_error(
        &jail("    bantime_increment: {maxtime: 5ww}\n"),
        5,
        34,
        "jails.j.bantime_increment.maxtime",
        &["invalid duration"],
    );
}

#[test]
fn bad_addresses_say_what_is_valid() {
    assert_error(
        &jail("    ignoreip: [127.0.0.1, 10.0.0.0/33, '::1']\n"),
        5,
        27,
        "jails.j.ignoreip[1]",
        &["invalid address `10.0.0.0/33`", "like 203.0.113.7, 198.51.100.0/24, 2001:db8::/48"],
    );
    assert_error(
        &jail("    ignoreip: [localhost]\n"),
        5,
        16,
        "jails.j.ignoreip[0]",
        &["invalid address `localhost`"],
    );
    assert_error(
        &jail("    ignoreip: [{a: 1}]\n"),
        5,
        16,
        "jails.j.ignoreip[0]",
        &["expected an IP address", "found a mapping"],
    );
}

#[test]
fn bad_ports_say_what_is_valid() {
    for (value, column, fragment) in [
        ("[0]", 13, "found the number 0"),
        ("[70000]", 13, "the number 70000"),
        ("['8100:8000']", 13, "invalid port range `8100:8000`: it is reversed"),
        ("[http]", 13, "invalid port `http`"),
        ("[true]", 13, "the boolean true"),
    ] {
        assert_error(
            &jail(&format!("    ports: {value}\n")),
            5,
            column,
            "jails.j.ports[0]",
            &[fragment, "expected a port from 1 to 65535 or a range like 8000:8100 or 8000-8100"],
        );
    }
    assert_error(&jail("    ports: {a: 1}\n"), 5, 12, "jails.j.ports", &["expected a list of ports"]);
    assert_error(
        &jail("    ports: [25]\n    protocol: all\n"),
        5,
        12,
        "jails.j.ports",
        &["jail `j` has protocol `all` (set at jails.j.protocol)", "set protocol: tcp"],
    );
    assert_error(
        "defaults: {protocol: all}\njails:\n  j: {filter: sshd, sources: [docker: {}], ports: [22]}\n",
        3,
        51,
        "jails.j.ports",
        &["set at defaults.protocol"],
    );
}

#[test]
fn bad_enums_list_the_choices() {
    assert_error(
        &jail("    target: dokcer\n"),
        5,
        13,
        "jails.j.target",
        &["invalid value `dokcer`; expected one of: docker, host, both; did you mean `docker`?"],
    );
    assert_error(&jail("    action: ban\n"), 5, 13, "jails.j.action", &["expected one of: drop, reject"]);
    assert_error(
        &jail("    protocol: icmp\n"),
        5,
        15,
        "jails.j.protocol",
        &["expected one of: tcp, udp, all"],
    );
    assert_error(
        &jail("    protocol: 6\n"),
        5,
        15,
        "jails.j.protocol",
        &["expected one of: tcp, udp, all, found the number 6"],
    );
    assert_error(
        "jails:\n  j:\n    filter: sshd\n    sources: [{file: {path: /a, read_from: tail}}]\n",
        4,
        44,
        "jails.j.sources[0].file.read_from",
        &["expected one of: start, end"],
    );
}

#[test]
fn wrong_types_name_expected_and_found() {
    assert_error(
        &jail("    maxretry: many\n"),
        5,
        15,
        "jails.j.maxretry",
        &["expected a whole number of at least 1, found the string `many`"],
    );
    assert_error(&jail("    maxretry: 0\n"), 5, 15, "jails.j.maxretry", &["at least 1"]);
    assert_error(
        &jail("    enabled: yes\n"),
        5,
        14,
        "jails.j.enabled",
        &["expected true or false, found the string `yes`"],
    );
    assert_error(&jail("    max_tracked: -1\n"), 5, 18, "jails.j.max_tracked", &["whole number"]);
    assert_error(&jail("    ban_prefix: {v4: 4}\n"), 5, 22, "jails.j.ban_prefix.v4", &["from 8 to 32"]);
    assert_error(&jail("    ban_prefix: {v6: 129}\n"), 5, 22, "jails.j.ban_prefix.v6", &["from 16 to 128"]);
    assert_error(
        &jail("    bantime_increment: {factor: 0}\n"),
        5,
        33,
        "jails.j.bantime_increment.factor",
        &["greater than 0"],
    );
    assert_error(
        &jail("    bantime_increment: {multipliers: [1, 0]}\n"),
        5,
        42,
        "jails.j.bantime_increment.multipliers[1]",
        &["at least 1"],
    );
    assert_error(
        &jail("    filter_params: [a]\n"),
        5,
        20,
        "jails.j.filter_params",
        &["expected a mapping, found a list"],
    );
    assert_error(
        &jail("    filter_params: {mode: [a]}\n"),
        5,
        27,
        "jails.j.filter_params.mode",
        &["expected a value"],
    );
    assert_error("jails: [a, b]\n", 1, 8, "jails", &["expected a mapping, found a list"]);
    assert_error("- a\n", 1, 1, "", &["expected a mapping with keys state_dir"]);
    assert_error("jails:\n  j: 5\n", 2, 6, "jails.j", &["expected a mapping with keys filter"]);
    assert_error(
        "jails:\n  j:\n    filter: [sshd]\n    sources: [docker: {}]\n",
        3,
        13,
        "jails.j.filter",
        &["expected a filter name"],
    );
}

#[test]
fn unknown_or_missing_filters_are_rejected() {
    assert_error(
        "jails:\n  j:\n    filter: sshdd\n    sources: [docker: {}]\n",
        3,
        13,
        "jails.j.filter",
        &[
            "unknown filter `sshdd` (did you mean `sshd`?); available: mailu-front, nginx-http-auth, postfix, sshd, or a path",
        ],
    );
    assert_error(
        "jails:\n  j:\n    filter: nope.yaml\n    sources: [docker: {}]\n",
        3,
        13,
        "jails.j.filter",
        &["filter file `/etc/warden/nope.yaml` does not exist"],
    );
    assert_error(
        "jails:\n  j:\n    filter: ../x\n    sources: [docker: {}]\n",
        3,
        13,
        "jails.j.filter",
        &["path ending in .yaml"],
    );
    assert_error("jails:\n  j:\n    sources: [docker: {}]\n", 2, 3, "jails.j", &["missing key `filter`"]);
    assert_error("jails:\n  j:\n    filter: sshd\n", 2, 3, "jails.j", &["missing key `sources`"]);
    assert_error("jails:\n  j:\n", 2, 3, "jails.j", &["missing key `filter`"]);
}

#[test]
fn bad_sources_are_rejected() {
    let base = "jails:\n  j:\n    filter: sshd\n    sources: ";
    assert_error(&format!("{base}[]\n"), 4, 14, "jails.j.sources", &["at least one source"]);
    assert_error(
        &format!("{base}[{{docker: {{}}, file: {{path: /a}}}}]\n"),
        4,
        15,
        "jails.j.sources[0]",
        &["exactly one kind"],
    );
    assert_error(&format!("{base}[{{}}]\n"), 4, 15, "jails.j.sources[0]", &["one of docker, journald, file"]);
    assert_error(
        &format!("{base}[{{file: {{path: var/log/x}}}}]\n"),
        4,
        29,
        "jails.j.sources[0].file.path",
        &["relative", "absolute"],
    );
    assert_error(
        &format!("{base}[{{file: {{path: '/var/log/[ab'}}}}]\n"),
        4,
        29,
        "jails.j.sources[0].file.path",
        &["invalid glob"],
    );
    assert_error(
        &format!("{base}[{{file: {{}}}}]\n"),
        4,
        16,
        "jails.j.sources[0].file",
        &["missing key `path`"],
    );
    assert_error(
        &format!("{base}[{{journald: {{match: {{container_tag: x}}}}}}]\n"),
        4,
        35,
        "jails.j.sources[0].journald.match.container_tag",
        &["invalid journal field name", "did you mean `CONTAINER_TAG`?"],
    );
    assert_error(
        &format!("{base}[{{journald: {{match: []}}}}]\n"),
        4,
        34,
        "jails.j.sources[0].journald.match",
        &["at least one match group"],
    );
    assert_error(
        &format!("{base}[{{journald: {{match: {{}}}}}}]\n"),
        4,
        34,
        "jails.j.sources[0].journald.match",
        &["at least one FIELD: value"],
    );
    assert_error(
        &format!("{base}[{{journald: {{match: x}}}}]\n"),
        4,
        34,
        "jails.j.sources[0].journald.match",
        &["expected a mapping of journal fields"],
    );
    assert_error(
        &format!("{base}[{{docker: {{containers: ['-bad']}}}}]\n"),
        4,
        38,
        "jails.j.sources[0].docker.containers[0]",
        &["invalid container name `-bad`"],
    );
    assert_error(
        &format!("{base}{{docker: {{}}}}\n"),
        4,
        14,
        "jails.j.sources",
        &["expected a list of sources"],
    );
    assert_error(&format!("{base}[docker]\n"), 4, 15, "jails.j.sources[0]", &["write {docker: {}}"]);
}

#[test]
fn bad_paths_and_names_are_rejected() {
    assert_error("state_dir: var/lib\n", 1, 12, "state_dir", &["relative", "absolute path"]);
    assert_error("socket: 5\n", 1, 9, "socket", &["expected an absolute path"]);
    assert_error(
        "filter_dirs: [/nonexistent/warden/filters]\n",
        1,
        15,
        "filter_dirs[0]",
        &["does not exist"],
    );
    assert_error(
        "jails:\n  bad.name: {filter: sshd, sources: [docker: {}]}\n",
        2,
        3,
        "jails.bad.name",
        &["invalid jail name `bad.name`"],
    );
    assert_error(
        "jails:\n  a-name-that-is-much-too-long-for-ipset: {filter: sshd, sources: [docker: {}]}\n",
        2,
        3,
        "jails.a-name-that-is-much-too-long-for-ipset",
        &["1 to 24 letters"],
    );
}

#[test]
fn yaml_syntax_errors_carry_file_and_line() {
    let e = &errors("jails:\n  j: [1, 2\n  k: 3\n")[0];
    assert_eq!(e.pos.map(|p| p.line), Some(3), "{e}");
    assert!(e.to_string().starts_with(&format!("{ORIGIN}:3:")), "{e}");
    assert!(e.message.starts_with("invalid YAML: "), "{e}");
    let e = &errors("a: 1\n---\nb: 2\n")[0];
    assert!(e.to_string().starts_with(&format!("{ORIGIN}:3:1: invalid YAML")), "{e}");
    let e = &errors("jails:\n\tj: 1\n")[0];
    assert_eq!(e.pos.map(|p| p.line), Some(2), "{e}");
}

#[test]
fn every_error_is_reported_in_file_order() {
    let text = r#"stat_dir: /x
defaults:
  findtime: 10x
jails:
  sshd:
    filter: sshdd
    sources: [{file: {path: relative.log}}]
    bantime: 1w
    bantime: 2w
    ignoreip: [1.2.3.4/40]
    ports: ["99999"]
    target: dokcer
  web:
    filter: nginx-http-auth
    sources: [{docker: {}}]
    maxretry: lots
"#;
    let all = errors(text);
    let keys: Vec<&str> = all.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "stat_dir",
            "defaults.findtime",
            "jails.sshd.filter",
            "jails.sshd.sources[0].file.path",
            "jails.sshd.bantime",
            "jails.sshd.ignoreip[0]",
            "jails.sshd.ports[0]",
            "jails.sshd.target",
            "jails.web.maxretry",
        ]
    );
    let lines: Vec<u64> = all.iter().map(|e| e.pos.unwrap().line).collect();
    assert_eq!(lines, [1, 3, 6, 7, 9, 10, 11, 12, 16]);
}

#[test]
fn load_reads_files_and_reports_unreadable_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.yaml");
    std::fs::write(&path, CONTRACT).unwrap();
    assert_eq!(load(&path, &FILTERS).unwrap().jails.len(), 3);

    std::fs::write(&path, b"jails:\n  j: \xff\n").unwrap();
    let e = load(&path, &FILTERS).unwrap_err();
    assert_eq!(e.0[0].pos, Some(Pos { line: 2, column: 6 }), "{e}");
    assert!(e.to_string().contains("not valid UTF-8"));

    let missing = dir.path().join("missing.yaml");
    let e = load(&missing, &FILTERS).unwrap_err();
    assert_eq!(e.0[0].pos, None);
    assert!(e.to_string().starts_with(&format!("{}: cannot read", missing.display())), "{e}");
}

#[test]
fn empty_document_is_an_empty_config() {
    let config = ok("");
    assert!(config.jails.is_empty());
    assert!(ok("# only a comment\n").jails.is_empty());
}

#[test]
fn anchors_and_merge_keys_work_like_yaml_says() {
    // As in docker-compose files, top-level `x-` keys hold anchors and are ignored.
    let text =
        "x-common: &common {filter: sshd, sources: [docker: {}]}\njails:\n  a: {<<: *common, bantime: 1h}\n";
    let config = ok(text);
    assert_eq!(config.jails["a"].filter, FilterRef::Name("sshd".into()));
    assert_eq!(config.jails["a"].bantime, BanTime::Finite(secs(3600)));
    let text =
        "jails:\n  a: &a {filter: sshd, sources: [docker: {}], bantime: 1h}\n  b: {<<: *a, maxretry: 2}\n";
    let config = ok(text);
    assert_eq!(config.jails["b"].bantime, BanTime::Finite(secs(3600)));
    assert_eq!(config.jails["b"].maxretry, 2);
    // Errors inside an aliased value point at where it is used.
    let text = "x-bad: &bad {bantime: nope}\njails:\n  a:\n    filter: sshd\n    sources: [docker: {}]\n    <<: *bad\n";
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].key, "jails.a.bantime");
    assert!(all[0].pos.is_some_and(|p| p.line >= 1), "{}", all[0]);
}

#[test]
fn daemon_sections_have_defaults_and_accept_overrides() {
    let c = ok("jails: {ssh: {filter: sshd, sources: [{file: {path: /var/log/auth.log}}]}}");
    assert!(!c.dry_run);
    assert_eq!(c.firewall, FirewallSettings::default());
    assert_eq!(c.docker.line_max, 64 * 1024);
    assert_eq!(c.docker.read_files, ReadFiles::Auto);
    assert_eq!(c.journal_dirs, vec![PathBuf::from("/var/log/journal"), PathBuf::from("/run/log/journal")]);
    assert!(c.jails["ssh"].flush_conntrack);

    let c = ok("dry_run: true
firewall: {backend: legacy, ban_floor: {v4: 20, v6: 40}, check_interval: 5s}
docker: {host: 'unix:///run/docker.sock', line_max: 4096, read_files: never}
journal_dirs: [/srv/journal]
defaults: {flush_conntrack: false}
jails: {ssh: {filter: sshd, sources: [{journald: {read_from: start}}]}}");
    assert!(c.dry_run);
    assert_eq!(c.firewall.backend, BackendChoice::Legacy);
    assert_eq!(c.firewall.ban_floor, BanPrefix { v4: 20, v6: 40 });
    assert_eq!(c.firewall.check_interval, secs(5));
    assert_eq!(c.docker.host.as_deref(), Some("unix:///run/docker.sock"));
    assert_eq!(c.docker.line_max, 4096);
    assert_eq!(c.docker.read_files, ReadFiles::Never);
    assert_eq!(c.journal_dirs, vec![PathBuf::from("/srv/journal")]);
    assert!(!c.jails["ssh"].flush_conntrack);
    assert_eq!(
        c.jails["ssh"].sources,
        vec![SourceSpec::Journald { matches: vec![], read_from: ReadFrom::Start }]
    );
}

#[test]
fn daemon_sections_reject_bad_values_with_what_is_valid() {
    let text = "firewall: {backend: iptables}\njails: {}";
    assert_error(text, 1, 21, "firewall.backend", &["auto", "nft", "legacy"]);
    let text = "docker: {line_max: 10}\njails: {}";
    assert_error(text, 1, 20, "docker.line_max", &["1024"]);
    let text = "docker: {read_files: always}\njails: {}";
    assert_error(text, 1, 22, "docker.read_files", &["expected one of: auto, never"]);
}

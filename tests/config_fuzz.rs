//! Property tests for the configuration parser: random text, mutations of a
//! valid config, and random combinations of keys and values must never
//! panic, and every error must carry the file, a line and a column.
//!
//! Case counts follow proptest's default (`PROPTEST_CASES` raises them for
//! a longer run).

use std::path::Path;

use proptest::prelude::*;
use warden::config::{self, Config, ConfigErrors, FilterNames};
use warden::core::Protocol;

const ORIGIN: &str = "/etc/warden/warden.yaml";
const FILTERS: FilterNames<'static> = FilterNames(&["sshd", "mailu-front", "nginx-http-auth"]);

const VALID: &str = r#"state_dir: /var/lib/warden
socket: /run/warden/warden.sock
defaults: {maxretry: 5, findtime: 10m, bantime: 10m, ignoreip: [127.0.0.0/8, "::1"]}
jails:
  bad-auth-bots:
    filter: mailu-front
    filter_params: {mode: aggressive}
    sources: [{journald: {match: {CONTAINER_TAG: mailu-front}}}]
    bantime: 1w
    ban_prefix: {v4: 24}
    ports: [25, "8000:8100"]
    target: docker
  webauth:
    filter: nginx-http-auth
    sources: [{docker: {containers: [web]}}]
  sshd:
    filter: sshd
    sources: [{file: {path: /var/log/auth.log, read_from: end}}]
    bantime_increment: {enabled: true, factor: 1, multipliers: [1, 2, 4], maxtime: 5w, rndtime: 10m}
    protocol: tcp
    action: reject
    enabled: true
    max_tracked: 1000
"#;

/// Parses and checks the invariants that hold for any input.
fn check(text: &str) -> Result<Config, ConfigErrors> {
    let result = config::parse(text, Path::new(ORIGIN), &FILTERS);
    match &result {
        Ok(config) => check_config(config),
        Err(errors) => check_errors(text, errors),
    }
    result
}

fn check_errors(text: &str, errors: &ConfigErrors) {
    assert!(!errors.is_empty(), "an Err must hold at least one error");
    let lines = text.lines().count() as u64 + 2;
    for error in errors {
        let pos = error.pos.unwrap_or_else(|| panic!("error without a location: {error}"));
        assert!(pos.line >= 1 && pos.column >= 1, "{error}");
        assert!(pos.line <= lines, "line beyond the text: {error}\n---\n{text}");
        let rendered = error.to_string();
        assert!(rendered.starts_with(&format!("{ORIGIN}:{}:{}: ", pos.line, pos.column)), "{rendered}");
        assert!(!rendered.contains('\n'), "an error spans lines: {rendered:?}");
        assert!(!error.message.trim().is_empty(), "{rendered}");
    }
    assert_eq!(errors.to_string().lines().count(), errors.len());
}

fn check_config(config: &Config) {
    for (name, jail) in &config.jails {
        assert_eq!(name, &jail.name);
        assert!(!jail.sources.is_empty(), "{name}");
        assert!(jail.maxretry >= 1 && jail.max_tracked >= 1, "{name}");
        assert!(!jail.findtime.is_zero(), "{name}");
        assert!(jail.ports.iter().all(|p| p.first >= 1 && p.first <= p.last), "{name}");
        assert!(jail.protocol != Protocol::All || jail.ports.is_empty(), "{name}");
    }
}

/// Characters that matter to YAML, plus some that matter to our fields.
const ALPHABET: &[char] = &[
    'a', 'j', 's', 'x', 'A', 'Z', '0', '1', '9', ':', '-', '?', ',', '[', ']', '{', '}', '#', '&', '*', '!',
    '|', '>', '\'', '"', '%', '@', '`', ' ', ' ', ' ', '\n', '\n', '\t', '.', '/', '\\', '<', '=', '~',
    '\u{0}', '\u{feff}', 'é', '\u{1b}',
];

fn yaml_char() -> impl Strategy<Value = char> {
    prop::sample::select(ALPHABET)
}

fn yaml_text() -> impl Strategy<Value = String> {
    prop::collection::vec(yaml_char(), 0..300).prop_map(|chars| chars.into_iter().collect())
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    DuplicateLine(usize),
    DeleteLine(usize),
    Replace(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let pieces = prop::sample::select(vec![
        "bantime",
        "bantim",
        "-1",
        "permanent",
        "0",
        "99999999999999999999",
        "1.5",
        "[",
        "]",
        "{}",
        "[]",
        ": ",
        "~",
        "*a",
        "&a ",
        "<<: ",
        "ports",
        "all",
        "::1",
        "/33",
        "8000:7000",
        "yes",
        "\"",
        "'",
        "  ",
        "\n  ",
        "- ",
        "!!str ",
        "!!binary ",
        "? ",
        "---\n",
        "...",
        "%YAML 1.2\n",
    ]);
    prop_oneof![
        (any::<usize>(), yaml_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DeleteLine),
        (any::<usize>(), pieces).prop_map(|(i, s)| Edit::Replace(i, s.to_string())),
    ]
}

/// Applies edits to `VALID`, indexing by characters so text stays UTF-8.
fn mutate(edits: &[Edit]) -> String {
    let mut chars: Vec<char> = VALID.chars().collect();
    for edit in edits {
        let n = chars.len().max(1);
        match edit {
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), *c),
            Edit::Delete(i) => {
                if !chars.is_empty() {
                    chars.remove(i % n);
                }
            }
            Edit::Replace(i, s) => {
                let at = i % (chars.len() + 1);
                let end = (at + s.chars().count()).min(chars.len());
                chars.splice(at..end, s.chars());
            }
            Edit::DuplicateLine(i) | Edit::DeleteLine(i) => {
                let text: String = chars.iter().collect();
                let mut lines: Vec<&str> = text.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                let at = i % lines.len();
                if matches!(edit, Edit::DuplicateLine(_)) {
                    lines.insert(at, lines[at]);
                } else {
                    lines.remove(at);
                }
                chars = (lines.join("\n") + "\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

/// A jail assembled from plausible and implausible keys and values.
fn jail_body() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "filter",
        "filter_params",
        "sources",
        "maxretry",
        "findtime",
        "bantime",
        "bantime_increment",
        "ignoreip",
        "ban_prefix",
        "ports",
        "protocol",
        "target",
        "action",
        "enabled",
        "max_tracked",
        "bantim",
        "port",
    ]);
    let value = prop::sample::select(vec![
        "sshd",
        "sshdd",
        "x.yaml",
        "10m",
        "1w",
        "-1",
        "permanent",
        "0",
        "5",
        "-5",
        "1e400",
        ".nan",
        "true",
        "yes",
        "~",
        "[]",
        "{}",
        "[25, '8000:8100']",
        "[0]",
        "[65536]",
        "[127.0.0.0/8, '::1']",
        "[1.2.3.4/33]",
        "tcp",
        "all",
        "docker",
        "host",
        "both",
        "drop",
        "reject",
        "{v4: 24, v6: 64}",
        "{v4: 99}",
        "{mode: aggressive}",
        "[{docker: {}}]",
        "[{journald: {match: {CONTAINER_TAG: x}}}]",
        "[{journald: {match: [{a: b}]}}]",
        "[{file: {path: /var/log/*.log}}]",
        "[{file: {path: rel}}]",
        "[{docker: {}, file: {}}]",
        "{enabled: true, factor: 2, multipliers: [1, 2], maxtime: 5w, rndtime: 0}",
        "{factor: -1}",
    ]);
    prop::collection::vec((key, value), 0..10)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| format!("    {k}: {v}\n")).collect::<String>())
}

fn structured() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["sshd", "web", "a.b", "-x", "ok_1", "1"]);
    prop::collection::vec((name, jail_body()), 0..4).prop_map(|jails| {
        let mut text = String::from("jails:\n");
        for (name, body) in jails {
            text.push_str(&format!("  {name}:\n{body}"));
        }
        text
    })
}

/// A jail whose every field holds one of its valid spellings; each field is
/// present or absent at random.
fn valid_jail() -> impl Strategy<Value = String> {
    let fields: Vec<(&'static str, Vec<&'static str>)> = vec![
        ("maxretry", vec!["1", "5", "'3'"]),
        ("findtime", vec!["10m", "600", "1h30m"]),
        ("bantime", vec!["1w", "-1", "permanent", "3600", "1y"]),
        (
            "bantime_increment",
            vec!["{enabled: true}", "{factor: 1.5, multipliers: [1, 2], maxtime: 5w, rndtime: 0}"],
        ),
        ("ignoreip", vec!["[]", "[192.0.2.0/24, '2001:db8::/32']", "127.0.0.1 ::1"]),
        ("ban_prefix", vec!["{v4: 24}", "{v6: 64}", "{v4: 32, v6: 128}"]),
        ("ports", vec!["[25]", "['8000:8100', 443]", "80,443", "[]"]),
        ("protocol", vec!["tcp", "udp"]),
        ("target", vec!["docker", "host", "both"]),
        ("action", vec!["drop", "reject"]),
        ("enabled", vec!["true", "false"]),
        ("max_tracked", vec!["1", "100000"]),
        ("filter_params", vec!["{}", "{mode: aggressive, n: 5}"]),
    ];
    let picks: Vec<_> = fields
        .into_iter()
        .map(|(key, values)| prop::option::of(prop::sample::select(values)).prop_map(move |v| (key, v)))
        .collect();
    (picks, prop::sample::select(vec!["[{docker: {}}]", "[{journald: {}}, {file: {path: /var/log/*.log}}]"]))
        .prop_map(|(picks, sources)| {
            let mut body = format!("    filter: sshd\n    sources: {sources}\n");
            for (key, value) in picks {
                if let Some(value) = value {
                    body.push_str(&format!("    {key}: {value}\n"));
                }
            }
            body
        })
}

#[test]
fn the_unmutated_config_is_valid() {
    let config = check(VALID).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.jails.len(), 3);
}

proptest! {
    #[test]
    fn random_text_never_panics_and_errors_are_located(text in yaml_text()) {
        let _ = check(&text);
    }

    #[test]
    fn mutated_configs_never_panic_and_errors_are_located(edits in prop::collection::vec(edit(), 1..6)) {
        let _ = check(&mutate(&edits));
    }

    #[test]
    fn random_jails_never_panic_and_errors_are_located(text in structured()) {
        let _ = check(&text);
    }

    #[test]
    fn any_mix_of_valid_fields_is_accepted(a in valid_jail(), b in valid_jail()) {
        let text = format!("defaults:\n  maxretry: 2\njails:\n  a:\n{a}  b:\n{b}");
        let config = check(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
        prop_assert_eq!(config.jails.len(), 2);
    }

}

#[test]
fn deep_or_long_input_is_handled() {
    for depth in [0, 1, 20, 31, 32, 33, 64, 10_000] {
        for (open, close) in [("[", "]"), ("{a: ", "}"), ("- ", "")] {
            let _ = check(&format!("jails: {}x{}\n", open.repeat(depth), close.repeat(depth)));
        }
    }
    let long =
        format!("jails:\n  j:\n    filter: {}\n    sources: [{{docker: {{}}}}]\n", "x".repeat(1 << 18));
    let errors = check(&long).unwrap_err();
    assert!(errors.to_string().len() < 1000, "long values are shortened in messages");
    let many = "jails:\n".to_string() + &(0..2000).map(|i| format!("  j{i}: 1\n")).collect::<String>();
    assert_eq!(check(&many).unwrap_err().len(), 2000);
}

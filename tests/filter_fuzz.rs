//! Property tests for the filter engine on hostile input: arbitrary bytes,
//! NUL and ANSI escapes, huge digit runs, very long lines, near-miss sshd
//! lines, and random filter definitions. Nothing may panic, and results must
//! be consistent (the same line in the same state gives the same outcome;
//! `process_bytes` agrees with `process` on UTF-8).
//!
//! Cases default to a small number so the suite stays fast; set
//! `PROPTEST_CASES` to run longer (e.g. `PROPTEST_CASES=20000 cargo test
//! --release --test filter_fuzz`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use proptest::prelude::*;
use warden::core::Timestamp;
use warden::filter::{Filter, MatchState, Outcome, Registry};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

fn reference() -> Timestamp {
    Timestamp::from_secs(1_795_363_200)
}

/// Compiled once: compiling is the slow part in debug builds.
static FILTERS: LazyLock<Vec<Filter>> = LazyLock::new(compile_filters);

fn filters() -> &'static [Filter] {
    &FILTERS
}

fn compile_filters() -> Vec<Filter> {
    let r = Registry::shipped();
    let mut out = Vec::new();
    for name in r.names() {
        out.push(r.load(name, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}")));
    }
    let aggressive: BTreeMap<String, String> = [("mode".to_string(), "aggressive".to_string())].into();
    out.push(r.load("sshd", &aggressive).unwrap());
    // A filter that exercises fancy-regex and the relaxed gate.
    let fancy = r#"
name: fancy
description: lookaround and backreference patterns
failregex:
  - '^(?P<w>\w+) again \k<w> from <HOST>'
  - 'user (?!root)<F-USER>\S+</F-USER> from <HOST>'
  - '(?:a+)+b from <HOST>$'
"#;
    out.push(Filter::from_yaml(fancy, "fancy.yaml", &BTreeMap::new()).unwrap());
    out
}

/// sshd-like lines with hostile twists.
fn near_miss() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(vec![
            "Nov 21 15:01:17 ", "2026-11-21T15:01:17Z ", "<34>1 2026-11-21T15:01:17Z h sshd 1 - - ", "1795273277.5 ",
            "web1 sshd[1234]: ", "error: ", "Failed password for ", "invalid user ", " from ", "192.0.2.1",
            "2001:db8::1", "::ffff:203.0.113.9", " port 22 ssh2", " [preauth]", "Invalid user ",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=",
            "Connection closed by authenticating user root ", "Received disconnect from ", ":11: Bye Bye",
            "Disconnecting: Too many authentication failures", "maximum authentication attempts exceeded for ",
            "\u{0}", "\u{1b}[31m", "\u{1b}]0;x\u{7}", "\u{1b}", "\r", "\t", "é", "\u{feff}", "[21/Nov/2026:15:01:17 +0000]",
        ]).prop_map(String::from),
        1 => "[0-9]{50,400}",
        1 => "[ -~]{0,20}",
        1 => any::<String>(),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

fn outcome_key(o: &Outcome) -> String {
    format!("{o:?}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..512), 1..8)) {
        for f in filters() {
            let mut state = MatchState::new(reference());
            for line in &lines {
                let _ = f.process_bytes(&mut state, line, None);
            }
        }
    }

    #[test]
    fn near_miss_lines_are_consistent(lines in proptest::collection::vec(near_miss(), 1..10)) {
        for f in filters() {
            let mut a = MatchState::new(reference());
            let mut b = MatchState::new(reference());
            for line in &lines {
                let x = f.process(&mut a, line, None);
                let y = f.process_bytes(&mut b, line.as_bytes(), None);
                prop_assert_eq!(outcome_key(&x), outcome_key(&y), "filter {} line {:?}", f.name(), line);
                if let Outcome::Match(hit) = &x {
                    prop_assert!(hit.regex_index < f.failregex_count());
                    // A line alone, in a fresh state, is deterministic too.
                    let once = f.process(&mut MatchState::new(reference()), line, None);
                    let again = f.process(&mut MatchState::new(reference()), line, None);
                    prop_assert_eq!(outcome_key(&once), outcome_key(&again));
                }
            }
        }
    }

    #[test]
    fn random_filter_yaml_never_panics(yaml in filter_yaml(), line in near_miss()) {
        if let Ok(f) = Filter::from_yaml(&yaml, "fuzz.yaml", &BTreeMap::new()) {
            let mut state = MatchState::new(reference());
            let _ = f.process(&mut state, &line, None);
            for i in 0..f.failregex_count() {
                let _ = f.failregex_source(i);
            }
        }
    }

    #[test]
    fn arbitrary_text_as_yaml_never_panics(text in any::<String>()) {
        let _ = Filter::from_yaml(&text, "fuzz.yaml", &BTreeMap::new());
    }
}

/// Random but mostly well-formed filter files: tags, params (also looping
/// ones), conditions and regex syntax fragments, some of it broken.
fn filter_yaml() -> impl Strategy<Value = String> {
    let frag = proptest::sample::select(vec![
        "<HOST>",
        "<ADDR>",
        "<IP4>",
        "<IP6>",
        "<SUBNET>",
        "<F-USER>",
        "</F-USER>",
        "<F-ID>",
        "</F-ID>",
        "<F-NOFAIL>",
        "</F-NOFAIL>",
        "<F-MLFID>",
        "</F-MLFID>",
        "<F-MLFFORGET>",
        "<F-MLFGAINED>",
        "<F-MLFONCE>",
        "<F-CONTENT>",
        "</F-CONTENT>",
        "<a>",
        "<b>",
        "<mode>",
        "<HOTS>",
        "^",
        "$",
        "\\S+",
        ".*",
        "(",
        ")",
        "(?:",
        "(?=x)",
        "(?!y)",
        "(?<=z)",
        "\\1",
        "(?P<n>x)",
        "(?P=n)",
        "\\k<n>",
        "[",
        "]",
        "[^a]",
        "{2,3}",
        "{99999}",
        "*",
        "+?",
        "|",
        "\\",
        "x",
        " from ",
        "(?i)",
        "\\p{L}",
        "\\b",
        "''",
    ]);
    let pattern = proptest::collection::vec(frag, 0..10).prop_map(|v| v.concat().replace('\'', "''"));
    (
        proptest::collection::vec(pattern.clone(), 0..4),
        proptest::option::of(pattern.clone()),
        proptest::sample::select(vec!["x", "<b>", "<a>", "(", "<HOST>"]),
        proptest::sample::select(vec!["y", "<a>", "z<b>", ")"]),
        any::<bool>(),
        proptest::sample::select(vec!["", "auto", "clf", "bogus"]),
    )
        .prop_map(|(fails, pref, a, b, when, datepattern)| {
            let mut y = String::from("name: fuzz\ndescription: d\nsource: s\n");
            y.push_str(&format!("params:\n  a: '{a}'\n  b: '{b}'\n  mode: normal\n"));
            if let Some(p) = pref {
                y.push_str(&format!("prefregex: '{p}'\n"));
            }
            if !datepattern.is_empty() {
                y.push_str(&format!("datepattern: {datepattern}\n"));
            }
            y.push_str("failregex:\n");
            for f in fails {
                if when {
                    y.push_str(&format!("  - regex: '{f}'\n    when: {{mode: [normal]}}\n"));
                } else {
                    y.push_str(&format!("  - '{f}'\n"));
                }
            }
            y
        })
}

#[test]
fn huge_lines_are_bounded() {
    let filters = filters();
    let mut lines = vec![
        format!(
            "Nov 21 15:01:17 web1 sshd[1]: Failed password for {} from 192.0.2.1 port 22 ssh2",
            "x".repeat(1 << 20)
        ),
        format!("{}", "9".repeat(1 << 20)),
        format!("Nov 21 15:01:17 web1 sshd[1]: {}", " from 192.0.2.1".repeat(70_000)),
        "\u{0}".repeat(1 << 20),
        "\u{1b}[".repeat(1 << 19),
    ];
    lines.push(format!("{}{}", "é".repeat(1 << 19), "Failed password for root from 192.0.2.1 port 22 ssh2"));
    for f in filters {
        let mut state = MatchState::new(reference());
        for line in &lines {
            let _ = f.process(&mut state, line, None);
        }
    }
}

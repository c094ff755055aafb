//! Engine tests through the public API: compilation choices, line handling,
//! multi-line semantics and error messages.

use super::*;

fn ts(s: &str) -> Timestamp {
    Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

fn state() -> MatchState {
    MatchState::new(ts("2026-11-21T16:00:00Z"))
}

fn filter(yaml: &str) -> Filter {
    Filter::from_yaml(yaml, "test.yaml", &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(yaml: &str) -> String {
    Filter::from_yaml(yaml, "dir/test.yaml", &BTreeMap::new()).unwrap_err().to_string()
}

fn hit(o: Outcome) -> Hit {
    match o {
        Outcome::Match(h) => h,
        other => panic!("expected a match, got {other:?}"),
    }
}

const SVC: &str = r#"
name: svc
description: test service
prefregex: '^svc\[<F-MLFID>\d+</F-MLFID>\]: <F-CONTENT>.+</F-CONTENT>$'
failregex:
  - '^<F-NOFAIL>hello</F-NOFAIL> from <HOST>$'
  - '^bad password for <F-USER>\S+</F-USER>$'
  - '^<F-MLFONCE>gave up</F-MLFONCE>$'
  - '^<F-NOFAIL><F-MLFFORGET>bye</F-MLFFORGET></F-NOFAIL>$'
  - '^<F-MLFGAINED>welcome</F-MLFGAINED> <F-USER>\S+</F-USER>$'
"#;

#[test]
fn prefregex_runs_in_two_stages_or_spliced() {
    // Every pattern anchored and simple: prefregex first, then the content
    // dispatch (fail2ban's own two stages).
    let f = filter(SVC);
    assert!(f.prefix.is_some());
    // An unanchored failregex is spliced into the prefregex and gated.
    let spliced = filter(
        "name: t\ndescription: d\nprefregex: '^svc: <F-CONTENT>.+</F-CONTENT>$'\nfailregex: ['x from <HOST>', '^y <HOST>$']\n",
    );
    assert!(spliced.prefix.is_none());
    let mut s = state();
    assert_eq!(hit(spliced.process(&mut s, "svc: a x from 192.0.2.1 b", None)).regex_index, 0);
    assert_eq!(hit(spliced.process(&mut s, "svc: y 192.0.2.2", None)).regex_index, 1);
    assert_eq!(spliced.process(&mut s, "svc: a y 192.0.2.2", None), Outcome::Miss);
    assert_eq!(spliced.process(&mut s, "nosvc: x from 192.0.2.1", None), Outcome::Miss);
    // A content group that is not `.+` keeps two stages.
    let two = filter(
        "name: t\ndescription: d\nprefregex: '^svc: <F-CONTENT>[a-z ]+</F-CONTENT> end$'\nfailregex: ['x <HOST>']\n",
    );
    assert!(two.prefix.is_some());
    assert!(two.process(&mut state(), "svc: x end", None) == Outcome::Miss);
    // Two-stage still works with a failregex anchored at the content.
    let two = filter(
        "name: t\ndescription: d\nprefregex: '^svc: <F-CONTENT>.+</F-CONTENT>$'\nfailregex: ['^a|^b <HOST>$']\n",
    );
    assert!(two.prefix.is_some(), "an inner anchor prevents splicing");
    assert_eq!(hit(two.process(&mut state(), "svc: b 192.0.2.1", None)).addr.to_string(), "192.0.2.1");
    assert_eq!(two.process(&mut state(), "b svc: 192.0.2.1", None), Outcome::Miss);
}

#[test]
fn fancy_fallback_only_when_needed_and_gated_by_a_superset() {
    let f = filter(
        r#"
name: t
description: d
failregex:
  - '^plain from <HOST>$'
  - '^(?P<w>\w+) again \k<w> from <HOST>$'
  - '^look (?!ahead)\w+ from <HOST>$'
"#,
    );
    let kinds: Vec<bool> = f.fail.patterns.iter().map(|p| p.is_fancy()).collect();
    assert_eq!(kinds, vec![false, true, true]);
    assert!((0..3).all(|i| f.fail.is_gated(i)), "fancy patterns gate through a relaxed regex");
    let mut s = state();
    assert_eq!(hit(f.process(&mut s, "foo again foo from 192.0.2.1", None)).regex_index, 1);
    assert_eq!(f.process(&mut s, "foo again bar from 192.0.2.1", None), Outcome::Miss);
    assert_eq!(hit(f.process(&mut s, "look here from 192.0.2.2", None)).regex_index, 2);
    assert_eq!(f.process(&mut s, "look ahead from 192.0.2.2", None), Outcome::Miss);
}

#[test]
fn first_match_wins_in_written_order() {
    let f = filter(
        "name: t\ndescription: d\nfailregex: ['from <HOST>', '^x from <HOST>$']\nignoreregex: ['ignored']\n",
    );
    assert_eq!(hit(f.process(&mut state(), "x from 192.0.2.1", None)).regex_index, 0);
    assert_eq!(
        f.process(&mut state(), "ignored x from 192.0.2.1", None),
        Outcome::Ignored { regex_index: 0 }
    );
    assert_eq!(f.failregex_source(1), "^x from <HOST>$");
    assert!(f.failregex_expanded(1).starts_with("^x from (?:\\[(?P<w"), "{}", f.failregex_expanded(1));
}

#[test]
fn dispatch_checks_each_candidates_leading_literal() {
    // Every pattern starts with 'D' (one dispatch list); the leads differ
    // within and past the first 8 bytes (a word), and in groups.
    let f = filter(concat!(
        "name: t\ndescription: d\nfailregex:\n",
        "  - '^<F-NOFAIL>Disconnecting</F-NOFAIL> <HOST>$'\n",
        "  - '^Disconnected from user <F-USER>\\S+</F-USER> <HOST>$'\n",
        "  - '^Disconnected from <HOST>$'\n",
        "  - '^D(?:x|y) <HOST>$'\n",
        "  - '^D <HOST>'\n",
    ));
    let index = |line: &str| match f.process(&mut state(), line, None) {
        Outcome::Match(hit) => Some(hit.regex_index),
        _ => None,
    };
    assert_eq!(index("Disconnecting 192.0.2.1"), Some(0));
    assert_eq!(index("Disconnected from user root 192.0.2.1"), Some(1));
    assert_eq!(index("Disconnected from 192.0.2.1"), Some(2));
    assert_eq!(index("Dy 192.0.2.1"), Some(3));
    assert_eq!(index("D 192.0.2.1"), Some(4));
    // Lines shorter than the lead, or than a word.
    assert_eq!(index("Disconnect"), None);
    assert_eq!(index("D 1.2.3.4"), Some(4));
    assert_eq!(index("Disconnected fro"), None);
}

#[test]
fn leading_dates_are_stripped_and_source_time_wins() {
    let f = filter("name: t\ndescription: d\nfailregex: ['^fail from <HOST>$']\n");
    let mut s = state();
    for line in [
        "Nov 21 15:01:17 fail from 192.0.2.1",
        "2026-11-21T15:01:17Z fail from 192.0.2.1",
        "<34>1 2026-11-21T15:01:17Z fail from 192.0.2.1",
        "1795273277   fail from 192.0.2.1",
        "fail from 192.0.2.1\r\n",
    ] {
        let h = hit(f.process(&mut s, line, None));
        assert_eq!(h.addr.to_string(), "192.0.2.1", "{line}");
    }
    let h = hit(f.process(&mut s, "Nov 21 15:01:17 fail from ::ffff:192.0.2.9", None));
    assert_eq!((h.time, h.addr.to_string()), (Some(ts("2026-11-21T15:01:17Z")), "192.0.2.9".to_string()));
    assert_eq!(h.date_format, Some(DateFormat::Syslog.describe()));
    let source = ts("2026-11-21T15:59:00Z");
    assert_eq!(
        hit(f.process(&mut s, "Nov 21 15:01:17 fail from 192.0.2.1", Some(source))).time,
        Some(source)
    );
    assert_eq!(hit(f.process(&mut s, "fail from 192.0.2.1", None)).time, None);
}

#[test]
fn multi_line_attempt_counts_once_as_in_fail2ban() {
    let f = filter(SVC);
    let mut s = state();
    let h = hit(f.process(&mut s, "svc[7]: hello from 192.0.2.7", None));
    assert!(!h.counted, "nofail line is recognised, not counted");
    let h = hit(f.process(&mut s, "svc[7]: bad password for root", None));
    assert_eq!((h.addr.to_string(), h.user.as_deref(), h.counted), ("192.0.2.7".into(), Some("root"), true));
    assert!(hit(f.process(&mut s, "svc[7]: bad password for root", None)).counted, "each attempt counts");
    assert!(!hit(f.process(&mut s, "svc[7]: gave up", None)).counted, "summary after counted attempts");
    assert!(!hit(f.process(&mut s, "svc[7]: bye", None)).counted);
    assert_eq!(s.open_connections(), 0, "bye forgot the connection");
    assert_eq!(
        f.process(&mut s, "svc[7]: bad password for root", None),
        Outcome::Miss,
        "no address any more"
    );

    f.process(&mut s, "svc[8]: hello from 192.0.2.8", None);
    assert!(hit(f.process(&mut s, "svc[8]: gave up", None)).counted, "summary with nothing counted yet");
    f.process(&mut s, "svc[9]: hello from 192.0.2.9", None);
    assert!(!hit(f.process(&mut s, "svc[9]: welcome alice", None)).counted, "gained is no failure");
}

#[test]
fn plain_lines_give_what_process_gives() {
    let f = filter(SVC);
    let lines = [
        "svc[7]: hello from 192.0.2.7",
        "svc[7]: bad password for root",
        "svc[7]: bad password for root\r",
        "Nov 21 15:01:17 svc[7]: gave up",
        "svc[7]: bye",
        "svc[8]: hello from 192.0.2.8",
        "svc[8]: hello from 192.0.2.80",
        "svc[8]: hello from 192.0.2.8",
        "svc[9]: hello from 999.0.2.8",
        "svc[9]: welcome alice",
        "nothing",
        "",
    ];
    let (mut a, mut b) = (state(), state());
    for line in lines {
        assert_eq!(f.process_plain(&mut a, line, None), f.process(&mut b, line, None), "{line:?}");
    }
}

#[test]
fn connection_cache_is_bounded() {
    let f = filter(SVC);
    let mut s = state().with_connection_limits(16, std::time::Duration::from_secs(60));
    for pid in 0..1000 {
        f.process(&mut s, &format!("svc[{pid}]: hello from 192.0.2.1"), None);
    }
    assert_eq!(s.open_connections(), 16);
}

#[test]
fn bad_input_never_panics_and_is_bounded() {
    let f = filter("name: t\ndescription: d\nfailregex: ['fail from <HOST>']\n");
    let mut s = state();
    let huge = format!("fail from 192.0.2.1 {}", "é".repeat(1 << 19));
    assert_eq!(hit(f.process(&mut s, &huge, None)).addr.to_string(), "192.0.2.1");
    let late = format!("{} fail from 192.0.2.1", "x".repeat(1 << 20));
    assert_eq!(f.process(&mut s, &late, None), Outcome::Miss, "beyond MAX_LINE_BYTES is not looked at");
    assert_eq!(
        hit(f.process(&mut s, "\x1b[31mfail\x1b[0m from \x1b[1m192.0.2.3\x1b[0m", None)).addr.to_string(),
        "192.0.2.3"
    );
    assert_eq!(hit(f.process(&mut s, "a\0b fail from 192.0.2.4\0", None)).addr.to_string(), "192.0.2.4");
    assert_eq!(
        hit(f.process_bytes(&mut s, b"\xff\xfe fail from 192.0.2.5", None)).addr.to_string(),
        "192.0.2.5"
    );
    assert_eq!(f.process(&mut s, "fail from 999.1.2.3", None), Outcome::Miss);
    assert_eq!(strip_ansi("\x1b]0;title\x07ok\x1b["), "ok");
    assert_eq!(strip_ansi("a\x1bé"), "aé");
}

#[test]
fn a_newline_inside_a_line_stops_dot_runs() {
    // `.` never spans a newline: `.+$` cannot reach the end past one. The
    // engine skips the newline search on lines without one, so check both.
    let f = filter(SVC);
    let mut s = state();
    assert_eq!(hit(f.process(&mut s, "svc[1]: hello from 192.0.2.1", None)).regex_index, 0);
    assert_eq!(f.process(&mut s, "svc[2]: hello from 192.0.2.1\nmore", None), Outcome::Miss);
    let body = Filter::from_yaml(
        "name: t\ndescription: d\nfailregex: ['^(?s:.)*x <HOST>$', '^a.*b <HOST>$']\n",
        "t.yaml",
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(hit(body.process(&mut s, "a\nb x 192.0.2.3", None)).regex_index, 0);
    assert_eq!(body.process(&mut s, "a\nb 192.0.2.3", None), Outcome::Miss);
    assert_eq!(hit(body.process(&mut s, "a-b 192.0.2.3", None)).regex_index, 1);
}

#[test]
fn rfc5424_headers_render_like_journald() {
    assert_eq!(render_rfc5424("web1 sshd 42 - - hello").as_deref(), Some("web1 sshd[42]: hello"));
    assert_eq!(
        render_rfc5424("web1 app - ID47 [a@1 x=\"a\\]b\"][b@2 y=\"z\"] \u{feff}msg").as_deref(),
        Some("web1 app: msg")
    );
    assert_eq!(render_rfc5424("- - - - -").as_deref(), Some(""));
    assert_eq!(render_rfc5424("too short"), None);
    assert_eq!(render_rfc5424("h a p m [unterminated"), Some("h a[p]: ".to_string()));
}

#[test]
fn params_select_patterns_and_overrides_are_checked() {
    let yaml = r#"
name: t
description: d
params: {mode: normal, word: fail}
failregex:
  - '^<word> from <HOST>$'
  - regex: '^probe from <HOST>$'
    when: {mode: [aggressive]}
"#;
    let normal = filter(yaml);
    assert_eq!(normal.failregex_count(), 1);
    assert_eq!(normal.process(&mut state(), "probe from 192.0.2.1", None), Outcome::Miss);
    let params: BTreeMap<String, String> =
        [("mode".to_string(), "aggressive".to_string()), ("word".to_string(), "oops".to_string())].into();
    let aggressive = Filter::from_yaml(yaml, "t.yaml", &params).unwrap();
    assert_eq!(aggressive.failregex_count(), 2);
    assert!(matches!(aggressive.process(&mut state(), "probe from 192.0.2.1", None), Outcome::Match(_)));
    assert!(matches!(aggressive.process(&mut state(), "oops from 192.0.2.1", None), Outcome::Match(_)));
    let bad: BTreeMap<String, String> = [("mdoe".to_string(), "x".to_string())].into();
    let e = Filter::from_yaml(yaml, "t.yaml", &bad).unwrap_err().to_string();
    assert!(e.contains("\"mdoe\"") && e.contains("declared: mode, word"), "{e}");
}

#[test]
fn errors_name_file_line_filter_and_pattern() {
    let e = err("name: t\ndescription: d\nfailregex:\n  - 'ok <HOST>'\n  - 'broken ( <HOST>'\n");
    assert!(
        e.starts_with("dir/test.yaml:5: filter \"t\": failregex #2 \"broken ( <HOST>\" does not compile"),
        "{e}"
    );
    let e = err("name: t\ndescription: d\nfailregex:\n  - 'no address here'\n");
    assert!(e.contains("dir/test.yaml:4") && e.contains("has no address") && e.contains("<HOST>"), "{e}");
    let e = err("name: t\ndescription: d\nfailregex: ['<HOTS>']\n");
    assert!(e.contains("dir/test.yaml:3") && e.contains("unknown tag <HOTS>"), "{e}");
    let e = err("name: t\ndescription: d\nfailregex: []\nbogus: 1\n");
    assert!(e.starts_with("dir/test.yaml:4: invalid filter file") && e.contains("bogus"), "{e}");
    let e = err("name: t\ndescription: d\nparams: {a: '<b>', b: '<a>'}\nfailregex: ['<a> <HOST>']\n");
    assert!(e.contains("loop") && e.contains("a -> b -> a"), "{e}");
    let e = err("name: t\ndescription: d\nfailregex:\n  - regex: 'x <HOST>'\n    when: {mode: [a]}\n");
    assert!(e.contains("dir/test.yaml:4") && e.contains("\"mode\""), "{e}");
    let e = err("name: t\ndescription: d\ndatepattern: '%Y'\nfailregex: ['x <HOST>']\n");
    assert!(e.contains("dir/test.yaml:3") && e.contains("valid values"), "{e}");
    let e = err("name: T x\ndescription: d\nfailregex: ['x <HOST>']\n");
    assert!(e.contains("dir/test.yaml:1") && e.contains("lowercase"), "{e}");
}

#[test]
fn filter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Filter>();
    assert_send_sync::<Registry>();
}

#[test]
fn a_line_past_the_fast_budget_is_answered_by_regex_automata() {
    use super::template::Role;
    // The first branch backtracks exponentially on this line, so the fast
    // matcher gives up and the fallback engine (built for fallback only)
    // must find the second branch's group.
    let regex = r"^(?:(?:a|aa)*b|(?P<w0>a+)c)$";
    let c = compile::Compiled::new(regex, &[("w0".to_string(), Role::User)]).unwrap();
    let fast = c.fast.as_ref().expect("the fast matcher runs this pattern");
    let line = format!("{}c", "a".repeat(40));
    let mut scratch = backtrack::Scratch::default();
    let compile::Engine::Std(re) = &c.engine else { panic!("a regex-crate pattern") };
    assert!(!re.is_built(), "built on first need, not at load");
    assert_eq!(c.group_names(), [None, Some("w0".to_string())]);
    assert!(c.captures("aaac", &mut scratch).is_some());
    assert!(!re.is_built(), "a line the fast matcher answers does not build it");
    assert_eq!(fast.run(line.as_bytes(), &mut scratch), backtrack::Run::GaveUp);
    let raw = c.captures(&line, &mut scratch).expect("the pattern matches");
    assert!(re.is_built());
    assert_eq!(raw.user, Some(&line[..40]));
    assert!(c.captures(&"a".repeat(40), &mut scratch).is_none());
    assert_eq!(c.group_names(), [None, Some("w0".to_string())]);
}

/// Patterns the fast matcher runs leave regex-automata's build to the
/// first line that needs it, which is only safe if the build cannot fail:
/// `nfa_size_bound` must bound what regex-automata's NFA builder counts
/// against its size limit. Checked by building with that bound as the limit.
#[test]
fn nfa_size_bound_covers_what_regex_automata_builds() {
    use regex_automata::meta;
    let mut patterns: Vec<String> = vec![
        r"^a".into(),
        r"^(?:foo|bar|baz|foobar|fo|f)+x".into(),
        r"^(?:ab|a|abc|abd|b){2,7}?c".into(),
        r"^(?:(?:a|b)?c*){3}d".into(),
        r"^(?P<x>[a-z0-9_]{1,40})(?:\.(?P<y>\S+?))*$".into(),
        r"^(?:x{2,5}|[^a]{0,3}|(?:yz)+)*?q$".into(),
        r"^(?u:[a-c])+ (?-u:\xff)(?:)$".into(),
        r"^(?:\d+\.){3}\d+|\[[0-9a-f:]+\]".into(),
    ];
    let registry = Registry::shipped();
    for name in registry.names() {
        let f = registry.load(name, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
        let lists = [&f.fail.patterns, &f.ignore.patterns];
        patterns.extend(lists.into_iter().flatten().chain(f.prefix.iter()).map(|p| p.regex.clone()));
    }
    let mut checked = 0;
    for regex in &patterns {
        let Some(hir) = backtrack::parse_ascii(regex) else { continue };
        let bound = compile::nfa_size_bound(&hir);
        let config = meta::Config::new()
            .utf8_empty(false)
            .nfa_size_limit(Some(bound))
            .hybrid(false)
            .dfa(false)
            .onepass(false);
        let built = meta::Regex::builder().configure(config).build_from_hir(&hir);
        assert!(built.is_ok(), "{regex}: {built:?} within {bound} bytes");
        checked += 1;
    }
    assert!(checked > 30, "only {checked} patterns checked");
}

#[test]
fn a_pattern_too_big_for_regex_automata_is_refused_at_load() {
    // The fast matcher takes the run as one instruction; regex-automata
    // would unroll it past its size limit.
    let pattern = "^[a-z]{1000000} <HOST>";
    assert!(backtrack::Program::new(&template_free(pattern)).is_some());
    let e = err(&format!("name: t\ndescription: d\nfailregex:\n  - 'ok <HOST>'\n  - '{pattern}'\n"));
    assert!(
        e.starts_with(&format!("dir/test.yaml:5: filter \"t\": failregex #2 \"{pattern}\" does not compile")),
        "{e}"
    );
    assert!(e.ends_with("more than the 16 MiB limit"), "{e}");
}

/// `pattern` with `<HOST>` as a plain address, for the fast matcher alone.
fn template_free(pattern: &str) -> String {
    pattern.replace("<HOST>", r"(?:\d+\.){3}\d+")
}

/// The fast matcher must agree with regex-automata on every shipped sshd
/// pattern (both modes), on lines built from sshd-like fragments.
mod differential {
    use proptest::prelude::*;
    use regex_automata::Input;

    use super::*;
    use crate::filter::backtrack::{Run, Scratch};
    use crate::filter::compile::Engine;

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(8)
    }

    fn compiled_sshd() -> Vec<Filter> {
        let r = Registry::shipped();
        [("mode", "normal"), ("mode", "aggressive"), ("publickey", "count")]
            .iter()
            .map(|(k, v)| r.load("sshd", &[(k.to_string(), v.to_string())].into()).unwrap())
            .collect()
    }

    fn fragment() -> impl Strategy<Value = String> {
        let fixed: Vec<&'static str> = vec![
            "web1 sshd[1234]: ",
            "sshd-session[9]: ",
            "error: ",
            "PAM: ",
            "Failed password for ",
            "Failed publickey for ",
            "Failed none for ",
            "invalid user ",
            "root",
            " from ",
            "192.0.2.1",
            "203.0.113.250",
            "2001:db8::7",
            "[2001:db8::8]",
            "::ffff:198.51.100.3",
            "999.1.1.1",
            " port 22",
            " port ",
            " ssh2",
            ": RSA SHA256:abc",
            " [preauth]",
            "Invalid user ",
            "pam_unix(sshd:auth): authentication failure;",
            " logname= uid=0",
            " ruser=",
            " rhost=",
            "  user=admin",
            "Connection closed by",
            " authenticating user ",
            " user ",
            "Disconnected from",
            "Received disconnect from ",
            ":11: Bye Bye",
            ":3: x: Auth fail",
            ":14: No supported authentication methods available",
            "Disconnecting",
            ": Too many authentication failures",
            "maximum authentication attempts exceeded for ",
            "PAM 2 more authentication failures;",
            "Accepted publickey for ",
            "Unable to negotiate with ",
            ": no matching host key type found.",
            " Their offer: x",
            "Did not receive identification string from ",
            "User ",
            " not allowed because listed in DenyUsers",
            "Connection from ",
            " on 10.0.0.1 port 22",
            " ",
            "  ",
            ":",
            ".",
            "[",
            "]",
            "'",
            "\0",
            "\x1b[1m",
        ];
        prop_oneof![
            4 => proptest::sample::select(fixed).prop_map(String::from),
            1 => "[ -~]{0,6}",
            1 => "[0-9]{1,40}",
            1 => "\\PC{0,3}",
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        proptest::collection::vec(fragment(), 0..14).prop_map(|v| v.concat())
    }

    fn check(f: &Filter, hay: &str, scratch: &mut Scratch) -> Result<(), TestCaseError> {
        let mut patterns: Vec<&compile::Compiled> = f.fail.patterns.iter().collect();
        patterns.extend(f.prefix.iter());
        for p in patterns {
            let (Some(fast), Engine::Std(re)) = (&p.fast, &p.engine) else { continue };
            let re = re.get(&p.regex);
            prop_assert!(re.is_some(), "regex-automata does not build {}", p.regex);
            let Some(re) = re else { continue };
            // As `Filter::process` says for each line (a prefregex's header
            // cache works on lines without a newline).
            scratch.newline_free = !hay.contains('\n');
            let run = fast.run(hay.as_bytes(), scratch);
            let mut caps = re.create_captures();
            re.search_captures(&Input::new(hay.as_bytes()), &mut caps);
            match run {
                Run::GaveUp => {}
                Run::NoMatch => {
                    prop_assert!(!caps.is_match(), "fast: no match, regex: match; {} on {hay:?}", p.regex)
                }
                Run::Match => {
                    prop_assert!(caps.is_match(), "fast: match, regex: none; {} on {hay:?}", p.regex);
                    for g in 1..caps.group_len() {
                        let want = caps.get_group(g).map(|s| (s.start, s.end));
                        let (s, e) =
                            (scratch.slots.get(2 * g).copied(), scratch.slots.get(2 * g + 1).copied());
                        let got = match (s, e) {
                            (Some(s), Some(e)) if s != usize::MAX && e != usize::MAX => Some((s, e)),
                            _ => None,
                        };
                        prop_assert_eq!(got, want, "group {} of {} on {:?}", g, p.regex, hay);
                    }
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn fast_matcher_agrees_with_regex_automata(lines in proptest::collection::vec(line(), 1..5)) {
            let filters = compiled_sshd();
            let mut scratch = Scratch::default();
            // Twice over, so what a stream remembers from line to line (a
            // prefregex's header) meets other lines.
            for hay in lines.iter().chain(&lines) {
                for f in &filters {
                    check(f, hay, &mut scratch)?;
                    // Content as the second stage sees it.
                    for prefix in ["web1 sshd[1]: ", "error: ", ""] {
                        if let Some(content) = hay.strip_prefix(prefix) {
                            check(f, content, &mut scratch)?;
                        }
                    }
                }
            }
        }
    }
}

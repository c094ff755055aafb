//! Imported filters end to end: small fail2ban-style filter directories
//! written for these tests, loaded and run line by line.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::filter::{Hit, Outcome};

const BASE: &str = r"
[INCLUDES]
after = base.local

[DEFAULT]
_daemon = \S*
__pid = (?:\[\d+\])?
__prefix = \s*(?:\S+ )?<_daemon><__pid>:\s+
logtype = file

[lt_file]
__prefix_line = <__prefix>
datepattern = {^LN-BEG}

[lt_journal]
__prefix_line = <__prefix>
datepattern = {NONE}
";

const SVC: &str = r"
# A service logging failures on one line, or over several lines of one
# connection (the pid).
[INCLUDES]
before = base.conf

[DEFAULT]
_daemon = svc

[Definition]
prefregex = ^<F-MLFID><lt_<logtype>/__prefix_line></F-MLFID><F-CONTENT>.+</F-CONTENT>$
failregex = ^bad password for <F-USER>\S+</F-USER> from <HOST>$
            ^<F-NOFAIL>hello</F-NOFAIL> from <HOST>$
            ^gave up
            <extra-<mode>>
            ^bad password for \S+ from <HOST>$
extra-normal =
extra-aggressive = ^probe from <HOST>$
mode = normal
ignoreregex = ^bad password for trusted from
datepattern = <lt_<logtype>/datepattern>
journalmatch = _SYSTEMD_UNIT=svc.service + _COMM=svc
";

fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn opts() -> Options {
    Options { year_now: Some(2026), ..Options::default() }
}

fn now() -> Timestamp {
    Timestamp::from_secs(1_124_013_600)
}

fn ts(s: &str) -> Timestamp {
    Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

fn load_ok(dir: &Path, name: &str, p: &[(&str, &str)], o: &Options) -> Filter {
    load(dir, name, &params(p), o).unwrap_or_else(|e| panic!("{e}"))
}

fn hit(o: Outcome) -> Hit {
    match o {
        Outcome::Match(h) => h,
        other => panic!("expected a match, got {other:?}"),
    }
}

#[test]
fn a_filter_loads_and_runs_with_fail2ban_semantics() {
    let d = dir(&[("base.conf", BASE), ("svc.conf", SVC)]);
    let f = load_ok(d.path(), "svc", &[], &opts());
    assert_eq!(f.name(), "fail2ban:svc");
    assert!(f.is_fail2ban());
    assert_eq!(f.failregex_count(), 4, "the empty <extra-normal> adds no pattern");
    assert_eq!(f.journalmatch(), ["_SYSTEMD_UNIT=svc.service", "_COMM=svc"]);
    let mut s = MatchState::new(now());

    // A no-failure line reports nothing (as in fail2ban's daemon) but gives
    // its host to its connection (pid 12) ...
    let line = "Aug 14 11:59:58 host svc[12]: hello from 192.0.2.1";
    assert_eq!(f.process(&mut s, line, None), Outcome::Miss);
    // ... so a later line without an address counts for it.
    let h = hit(f.process(&mut s, "Aug 14 11:59:59 host svc[12]: gave up", None));
    assert_eq!((h.addr.to_string(), h.counted, h.regex_index), ("192.0.2.1".to_string(), true, 2));
    assert_eq!(h.time, Some(ts("2005-08-14T11:59:59Z")), "no zone given: UTC");
    let h = hit(f.process(&mut s, "Aug 14 12:00:00 host svc[13]: bad password for bob from 192.0.2.2", None));
    assert_eq!((h.user.as_deref(), h.regex_index), (Some("bob"), 0));
    assert_eq!(
        f.process(&mut s, "Aug 14 12:00:00 host svc[14]: bad password for trusted from 192.0.2.3", None),
        Outcome::Ignored { regex_index: 0 }
    );
    assert_eq!(f.process(&mut s, "Aug 14 12:00:00 host other[1]: gave up", None), Outcome::Miss);
    // A host name is recognised, but warden bans addresses only.
    let line = "Aug 14 12:00:01 host svc[15]: bad password for eve from attacker.example";
    assert_eq!(f.process(&mut s, line, None), Outcome::Miss);
    let out = f.process_fail2ban(&mut s, line, None).unwrap();
    assert_eq!((out.results[0].id.as_deref(), out.results[0].addr), (Some("attacker.example"), None));
    // Without a date, a source's time is the line's time.
    let h = hit(f.process(&mut s, "host svc[16]: bad password for bob from 192.0.2.4", Some(now())));
    assert_eq!(h.time, Some(now()));
}

#[test]
fn parameters_select_patterns_and_logtype() {
    let d = dir(&[("base.conf", BASE), ("svc.conf", SVC)]);
    let normal = load_ok(d.path(), "svc", &[], &opts());
    let aggressive = load_ok(d.path(), "svc", &[("mode", "aggressive")], &opts());
    let line = "Aug 14 11:00:00 host svc[1]: probe from 192.0.2.9";
    assert_eq!(normal.process(&mut MatchState::new(now()), line, None), Outcome::Miss);
    assert_eq!(hit(aggressive.process(&mut MatchState::new(now()), line, None)).regex_index, 3);
    // logtype=journal picks the [lt_journal] variants (here: no date search).
    let journal = load_ok(d.path(), "svc", &[("logtype", "journal")], &opts());
    let line = "host svc[1]: bad password for x from 192.0.2.9";
    let h = hit(journal.process(&mut MatchState::new(now()), line, Some(now())));
    assert_eq!(h.time, Some(now()));
    let err = load(d.path(), "svc", &params(&[("mode", "bogus")]), &opts()).unwrap_err().to_string();
    assert!(err.contains("svc.conf:12: [Definition] failregex") && err.contains("<extra-bogus>"), "{err}");
}

#[test]
fn local_files_override_and_extend() {
    let local = "[Definition]\nfailregex = %(known/failregex)s\n            ^denied <HOST>$\n";
    let d = dir(&[("base.conf", BASE), ("svc.conf", SVC), ("svc.local", local)]);
    let f = load_ok(d.path(), "svc", &[], &opts());
    assert_eq!(f.failregex_count(), 5);
    let h =
        hit(f.process(&mut MatchState::new(now()), "Aug 14 11:00:00 host svc[1]: denied 192.0.2.7", None));
    assert_eq!(h.regex_index, 4);
}

#[test]
fn check_all_reports_every_matching_pattern() {
    let d = dir(&[("base.conf", BASE), ("svc.conf", SVC)]);
    let line = "Aug 14 11:00:00 host svc[1]: bad password for bob from 192.0.2.2";
    let first = load_ok(d.path(), "svc", &[], &opts());
    let out = first.process_fail2ban(&mut MatchState::new(now()), line, None).unwrap();
    assert_eq!(out.results.len(), 1);
    let all = load_ok(d.path(), "svc", &[], &Options { check_all: true, ..opts() });
    let out = all.process_fail2ban(&mut MatchState::new(now()), line, None).unwrap();
    let indexes: Vec<usize> = out.results.iter().map(|r| r.regex_index).collect();
    assert_eq!(indexes, [0, 3]);
}

#[test]
fn multi_line_buffers_skip_lines_and_alternative_users() {
    let multi = r"
[Definition]
failregex = ^conn (?P<cid>\d+) login <F-USER>\S*</F-USER> as <F-ALT_USER>\S+</F-ALT_USER><SKIPLINES>^conn (?P=cid) refused from <HOST>$
maxlines = 4
datepattern = {NONE}
";
    let d = dir(&[("multi.conf", multi)]);
    let f = load_ok(d.path(), "multi", &[], &opts());
    let mut s = MatchState::new(now());
    assert_eq!(f.process(&mut s, "conn 7 login  as carol", None), Outcome::Miss);
    assert_eq!(f.process(&mut s, "conn 8 something else", None), Outcome::Miss);
    let h = hit(f.process(&mut s, "conn 7 refused from 192.0.2.5", None));
    assert_eq!((h.addr.to_string(), h.user.as_deref()), ("192.0.2.5".to_string(), Some("carol")));
    // The matched lines left the buffer; the skipped one stayed.
    assert_eq!(f.process(&mut s, "conn 7 refused from 192.0.2.5", None), Outcome::Miss);
}

#[test]
fn bad_filters_are_errors_naming_the_place() {
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "[INCLUDES]\nbefore = gone.conf\n[Definition]\nfailregex = <HOST>\n",
            "",
            &["bad.conf:2", "gone.conf"],
        ),
        (
            "[Definition]\na = %(b)s\nb = %(a)s\nfailregex = %(a)s <HOST>\n",
            "",
            &["bad.conf:", "[Definition]", "levels"],
        ),
        (
            "[Definition]\nfailregex = ^a <HOST>\n  ^(unclosed <HOST>\n",
            "",
            &["bad.conf:2: [Definition] failregex (pattern #2)", "compile"],
        ),
        (
            "[Definition]\nfailregex = ^no id here$\n",
            "",
            &["bad.conf:2: [Definition] failregex", "no failure id"],
        ),
        ("[Definition]\nfailregex = ^<F-USER>x <HOST>\n", "", &["bad.conf:2", "failregex"]),
        (
            "[Definition]\nfailregex = <HOST>\nmaxlines = many\n",
            "",
            &["bad.conf:3: [Definition] maxlines", "many"],
        ),
    ];
    for (text, _, wants) in cases {
        let d = dir(&[("bad.conf", text)]);
        let err = load(d.path(), "bad", &BTreeMap::new(), &opts()).unwrap_err().to_string();
        for want in wants {
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }
    let d = dir(&[]);
    let err = load(d.path(), "nothere", &BTreeMap::new(), &opts()).unwrap_err().to_string();
    assert!(err.contains("nothere.conf"), "{err}");
    let err = load(d.path(), "../etc/passwd", &BTreeMap::new(), &opts()).unwrap_err().to_string();
    assert!(err.contains("invalid fail2ban filter name"), "{err}");
}

#[test]
fn pathological_lines_are_bounded_misses() {
    // A pattern that needs fancy-regex (a back-reference) and backtracks
    // exponentially on this line: the backtrack limit turns it into a miss.
    let text = "[Definition]\nfailregex = ^(?P<x>a)(?:(?:a+)+)+(?P=x)b <HOST>$\ndatepattern = {NONE}\n";
    let d = dir(&[("slow.conf", text)]);
    let f = load_ok(d.path(), "slow", &[], &opts());
    let line = format!("{}c 192.0.2.1", "a".repeat(64));
    assert_eq!(f.process(&mut MatchState::new(now()), &line, None), Outcome::Miss);
}

#[test]
fn look_arounds_and_conditionals_give_fancy_regex_answers() {
    // Patterns with a negative look-ahead and a conditional: lines without
    // the look-ahead's text, or decided by one variant, run on the regex
    // crate; the answers must be fancy-regex's on every line.
    let text = r"[Definition]
failregex = ^closed(?:: (?!too many)[^\[]+)? from <HOST>$
            ^fail (?P<inv>invalid )?(?P<u>(?P<plain>\S+)|(?(inv)(?:(?! from ).)*?|[^:]+)) from <HOST>(?(plain): |(?:(?:(?! from ).)*)$)
datepattern = {NONE}
";
    let d = dir(&[("la.conf", text)]);
    let f = load_ok(d.path(), "la", &[], &opts());
    let fancy: Vec<&Compiled> = f.fail.patterns.iter().collect();
    assert!(fancy.iter().all(|c| c.is_fancy()));
    let lines = [
        "closed from 192.0.2.1",
        "closed: bye now from 192.0.2.2",
        "closed: too many from 192.0.2.3",
        "fail bob from 192.0.2.4",
        "fail invalid eve from 192.0.2.5",
        "fail bob from 192.0.2.6: key",
        "fail odd name from 192.0.2.7",
    ];
    let mut s = MatchState::new(now());
    for line in lines {
        let got = f.process_fail2ban(&mut s, line, None).unwrap();
        let want: Option<(usize, String)> = fancy.iter().enumerate().find_map(|(i, c)| {
            let mut spans = Vec::new();
            c.spans(line, &mut crate::filter::backtrack::Scratch::default(), &mut spans).then(|| {
                let ip =
                    c.group_names().iter().position(|n| n.as_deref() == Some("ip4")).and_then(|g| spans[g]);
                (i, ip.map(|(a, b)| line[a..b].to_string()).unwrap_or_default())
            })
        });
        let got = got.results.first().map(|r| (r.regex_index, r.id.clone().unwrap_or_default()));
        assert_eq!(got, want, "{line}");
    }
}

#[test]
fn journalmatch_alternatives_and_quotes() {
    assert_eq!(
        journalmatch(Some("_SYSTEMD_UNIT=a.service + _COMM=a\n\"_COMM=b c\"")),
        ["_SYSTEMD_UNIT=a.service", "_COMM=a", "_COMM=b c"]
    );
    assert_eq!(journalmatch(Some("A=1 B=2 + C=3")), ["A=1 B=2", "C=3"]);
    assert!(journalmatch(None).is_empty());
}

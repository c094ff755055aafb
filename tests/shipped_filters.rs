//! Every shipped filter against its annotated sample log.
//!
//! For each `filters/<name>.yaml` there must be a `tests/filters/<name>.log`
//! (and no log without a filter). Each log line is preceded by one
//! expectation line:
//!
//! ```text
//! #> fail 203.0.113.5 user=root time=2026-11-21T15:01:19Z   counted failure (user= alone: no user)
//! #> nofail 203.0.113.5                                     recognised, not counted
//! #> miss                                                   no failregex matches
//! #> ignored                                                an ignoreregex matches
//! #> params mode=aggressive                                 recompile with these params, reset state
//! ```
//! Other `#` lines are comments; blank lines are skipped. Multi-line state
//! carries from line to line within a file. The reference clock is
//! 2026-11-21T16:00:00Z. Every failure is reported with file:line, the line,
//! and what was expected and got.
//!
//! `WARDEN_FILTER=name` checks only that filter.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use warden::core::{Timestamp, normalize_ip};
use warden::filter::{Filter, MatchState, Outcome};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn reference() -> Timestamp {
    Timestamp(parse_time("2026-11-21T16:00:00Z").expect("valid constant"))
}

fn parse_time(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Fail,
    NoFail,
    Miss,
    Ignored,
}

#[derive(Debug)]
struct Expect {
    kind: Kind,
    host: Option<IpAddr>,
    user: Option<String>,
    time: Option<i64>,
}

/// Splits on whitespace. A value that starts with a quote right after `=`
/// (`user="a b"`) runs to the closing quote, `\"` inside it being a quote;
/// anything else is taken literally (`user=o\"neil` is `o\"neil`).
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted && chars.peek() == Some(&'"') => cur.extend(chars.next()),
            '"' if quoted => quoted = false,
            '"' if cur.ends_with('=') => quoted = true,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_expect(text: &str) -> Result<Expect, String> {
    let toks = tokens(text);
    let kind = match toks.first().map(String::as_str) {
        Some("fail") => Kind::Fail,
        Some("nofail") => Kind::NoFail,
        Some("miss") => Kind::Miss,
        Some("ignored") => Kind::Ignored,
        other => {
            return Err(format!("unknown expectation {other:?}: use fail, nofail, miss, ignored or params"));
        }
    };
    let mut e = Expect { kind, host: None, user: None, time: None };
    let needs_host = matches!(e.kind, Kind::Fail | Kind::NoFail);
    let mut rest = toks.iter().skip(1);
    if needs_host {
        let host = rest.next().ok_or("fail/nofail needs a host")?;
        let ip: IpAddr = host.parse().map_err(|_| format!("{host:?} is not an IP address"))?;
        e.host = Some(normalize_ip(ip));
    }
    for tok in rest {
        match tok.split_once('=') {
            // `user=` (empty) expects no user.
            Some(("user", u)) if needs_host => e.user = Some(u.to_string()),
            Some(("time", t)) if needs_host => {
                e.time = Some(
                    parse_time(t)
                        .ok_or_else(|| format!("time {t:?} is not RFC 3339 (2026-11-21T15:01:17Z)"))?,
                )
            }
            _ => {
                return Err(format!("unexpected {tok:?}: after the host only user=… and time=… are allowed"));
            }
        }
    }
    Ok(e)
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Miss => "miss".into(),
        Outcome::Ignored { regex_index } => format!("ignored (ignoreregex #{})", regex_index + 1),
        Outcome::Match(h) => {
            let mut s = format!("{} {}", if h.counted { "fail" } else { "nofail" }, h.addr);
            if let Some(u) = &h.user {
                s.push_str(&format!(" user={u}"));
            }
            if let Some(t) = h.time {
                s.push_str(&format!(" time={}", t.to_rfc3339()));
            }
            s.push_str(&format!(" (failregex #{})", h.regex_index + 1));
            s
        }
    }
}

fn check(e: &Expect, o: &Outcome) -> bool {
    match (&e.kind, o) {
        (Kind::Miss, Outcome::Miss) | (Kind::Ignored, Outcome::Ignored { .. }) => true,
        (Kind::Fail | Kind::NoFail, Outcome::Match(h)) => {
            (e.kind == Kind::Fail) == h.counted
                && e.host == Some(h.addr)
                && e.user.as_ref().is_none_or(|u| h.user.as_deref().unwrap_or("") == u)
                && e.time.is_none_or(|t| h.time == Some(Timestamp(t)))
        }
        _ => false,
    }
}

/// Checks one filter; returns the failures.
fn check_filter(yaml: &Path, log: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let stem = yaml.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    let yaml_text = std::fs::read_to_string(yaml).unwrap_or_else(|e| panic!("{}: {e}", yaml.display()));
    let origin = format!("filters/{stem}.yaml");
    let load = |params: &BTreeMap<String, String>| Filter::from_yaml(&yaml_text, &origin, params);
    let mut filter = match load(&BTreeMap::new()) {
        Ok(f) => f,
        Err(e) => return vec![format!("{e}")],
    };
    if filter.name() != stem {
        failures.push(format!("{origin}: name {:?} differs from the file name {stem:?}", filter.name()));
    }
    if filter.description().is_empty() {
        failures.push(format!("{origin}: description is empty"));
    }
    if filter.source().is_empty() {
        failures.push(format!("{origin}: source is empty: say where the log formats come from"));
    }
    let log_name = format!("tests/filters/{stem}.log");
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let mut state = MatchState::new(reference());
    let mut pending: Option<(usize, Expect)> = None;
    let mut checked = 0;
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        let at = format!("{log_name}:{lineno}");
        if let Some(exp) = line.strip_prefix("#>") {
            if let Some((prev, _)) = &pending {
                failures.push(format!(
                    "{at}: expectation follows the one on line {prev} without a log line between"
                ));
            }
            let exp = exp.trim();
            if let Some(params) = exp.strip_prefix("params").filter(|p| p.is_empty() || p.starts_with(' ')) {
                let mut map = BTreeMap::new();
                for tok in tokens(params) {
                    match tok.split_once('=') {
                        Some((k, v)) => {
                            map.insert(k.to_string(), v.to_string());
                        }
                        None => failures.push(format!("{at}: params wants key=value, got {tok:?}")),
                    }
                }
                match load(&map) {
                    Ok(f) => filter = f,
                    Err(e) => failures.push(format!("{at}: {e}")),
                }
                state = MatchState::new(reference());
                pending = None;
                continue;
            }
            match parse_expect(exp) {
                Ok(e) => pending = Some((lineno, e)),
                Err(msg) => {
                    failures.push(format!("{at}: {msg}"));
                    pending = None;
                }
            }
            continue;
        }
        if line.starts_with('#') {
            if let Some((prev, _)) = pending.take() {
                failures.push(format!(
                    "{at}: a comment separates the expectation on line {prev} from its log line"
                ));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let outcome = filter.process(&mut state, line, None);
        checked += 1;
        match pending.take() {
            None => failures
                .push(format!("{at}: log line without a `#> ` expectation before it\n    line: {line}")),
            Some((_, e)) if !check(&e, &outcome) => failures.push(format!(
                "{at}: expected {}, got {}\n    line: {line}",
                describe_expect(&e),
                describe(&outcome)
            )),
            Some(_) => {}
        }
    }
    if let Some((prev, _)) = pending {
        failures.push(format!("{log_name}:{prev}: expectation at the end of the file has no log line"));
    }
    if checked == 0 {
        failures.push(format!("{log_name}: no sample lines"));
    }
    failures
}

fn describe_expect(e: &Expect) -> String {
    let mut s = match e.kind {
        Kind::Fail => "fail",
        Kind::NoFail => "nofail",
        Kind::Miss => "miss",
        Kind::Ignored => "ignored",
    }
    .to_string();
    if let Some(h) = e.host {
        s.push_str(&format!(" {h}"));
    }
    if let Some(u) = &e.user {
        s.push_str(&format!(" user={u}"));
    }
    if let Some(t) = e.time {
        s.push_str(&format!(" time={}", Timestamp(t).to_rfc3339()));
    }
    s
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_filter_matches_its_annotated_sample_log() {
    let only = std::env::var("WARDEN_FILTER").ok();
    let yamls = files(&root().join("filters"), "yaml");
    assert!(!yamls.is_empty(), "no filters/*.yaml found");
    let mut failures = Vec::new();
    let mut names = Vec::new();
    for yaml in &yamls {
        let stem = yaml.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        names.push(stem.clone());
        if only.as_ref().is_some_and(|o| *o != stem) {
            continue;
        }
        let log = root().join("tests/filters").join(format!("{stem}.log"));
        if !log.exists() {
            failures.push(format!("filters/{stem}.yaml has no sample log tests/filters/{stem}.log"));
            continue;
        }
        failures.extend(check_filter(yaml, &log));
    }
    for log in files(&root().join("tests/filters"), "log") {
        let stem = log.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if !names.iter().any(|n| n == stem) {
            failures.push(format!("tests/filters/{stem}.log has no filter filters/{stem}.yaml"));
        }
    }
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn expectation_lines_parse_strictly() {
    let e = parse_expect("fail ::ffff:192.0.2.1 user=\"a b\" time=2026-11-21T15:01:17Z").unwrap();
    assert_eq!(parse_expect(r#"fail 192.0.2.1 user=o\"neil"#).unwrap().user.as_deref(), Some(r#"o\"neil"#));
    assert_eq!(
        parse_expect(r#"fail 192.0.2.1 user="say \"hi\"""#).unwrap().user.as_deref(),
        Some(r#"say "hi""#)
    );
    assert_eq!(e.host, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(e.user.as_deref(), Some("a b"));
    assert_eq!(e.time, parse_time("2026-11-21T15:01:17Z"));
    assert!(parse_expect("fial 192.0.2.1").unwrap_err().contains("unknown expectation"));
    assert!(parse_expect("fail").unwrap_err().contains("needs a host"));
    assert!(parse_expect("fail host.example").unwrap_err().contains("not an IP"));
    assert!(parse_expect("miss 192.0.2.1").unwrap_err().contains("unexpected"));
    assert!(parse_expect("fail 192.0.2.1 time=yesterday").unwrap_err().contains("RFC 3339"));
}

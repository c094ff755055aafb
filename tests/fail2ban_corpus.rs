//! Agreement with fail2ban on fail2ban's own annotated samples.
//!
//! Reads the corpus in `../shared/fail2ban-corpus` (GPL test data, never
//! copied into this repository; `WARDEN_FAIL2BAN_CORPUS` overrides the
//! path): fail2ban's shipped `filter.d`, its sample logs flattened into
//! `corpus.jsonl` (one record per processed line, with the option variants
//! it is checked under) and `corpus_truth.jsonl` (what fail2ban itself
//! reports for every line × variant).
//!
//! Every line is run, in file order, through warden's import of the filter
//! under each variant, with state kept per variant as fail2ban's test
//! harness keeps it: local time in `CET-1CEST-2`, "now" fixed at
//! 2005-08-14 12:00 CEST, `logtype=journal` lines given that time as their
//! journal timestamp, every failregex tried (`fail2ban-regex`'s mode). An
//! evaluation agrees when both sides say match (a failure with an id, not
//! a no-failure) or both say no match, and on a match the failure id
//! agrees, and so do the time and user where the sample annotates them.
//!
//! The bar: at least 99 % of the 1,573 evaluations of the shipped filters,
//! and every evaluation of sshd, postfix, dovecot, nginx-*, apache-auth and
//! traefik-auth. Every remaining difference must be listed, with its
//! reason, in `tests/fail2ban_corpus_differences.txt`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;
use warden::core::Timestamp;
use warden::filter::fail2ban::{self, MissingIncludes, Options};
use warden::filter::{Filter, MatchState};

/// fail2ban's test clock: 2005-08-14 12:00:00 CEST.
const TEST_NOW: i64 = 1_124_013_600;
const TEST_TZ: &str = "CET-1CEST-2,M3.5.0,M10.5.0";
const BAR: f64 = 0.99;
const MUST_AGREE: [&str; 5] = ["sshd", "postfix", "dovecot", "apache-auth", "traefik-auth"];
const DIFFERENCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fail2ban_corpus_differences.txt");

fn corpus_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("WARDEN_FAIL2BAN_CORPUS").map(PathBuf::from),
        Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fail2ban-corpus"))),
        Some(PathBuf::from("/work/shared/fail2ban-corpus")),
    ];
    candidates.into_iter().flatten().find(|d| d.join("corpus_truth.jsonl").is_file())
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// The upstream layout the test-only filters expect (they include
/// `../../../../config/filter.d/common.conf`), built from symlinks in a
/// temporary directory.
fn test_filter_dir(corpus: &Path, tmp: &Path) -> PathBuf {
    let dir = tmp.join("a/b/testcfg/filter.d");
    let common = tmp.join("config/filter.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&common).unwrap();
    std::os::unix::fs::symlink(corpus.join("filter.d/common.conf"), common.join("common.conf")).unwrap();
    for entry in std::fs::read_dir(corpus.join("test-filter.d")).unwrap().flatten() {
        std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

/// A failure id: addresses compare as addresses (fail2ban prints them
/// normalised), anything else as text.
fn same_id(a: &str, b: &str) -> bool {
    let parse = |s: &str| warden::filter::addr::parse_addr(s);
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

struct Variant {
    filter: Result<Filter, String>,
    state: MatchState,
}

#[derive(Default)]
struct Tally {
    total: usize,
    agreed: usize,
}

#[test]
fn agrees_with_fail2ban_on_its_samples() {
    let Some(corpus) = corpus_dir() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the fail2ban corpus is missing (set WARDEN_FAIL2BAN_CORPUS or provide ../shared/fail2ban-corpus)"
        );
        eprintln!("skipped: no fail2ban corpus (set WARDEN_FAIL2BAN_CORPUS)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let shipped_dir = corpus.join("filter.d");
    let test_dir = test_filter_dir(&corpus, tmp.path());
    let tz = jiff::tz::TimeZone::posix(TEST_TZ).unwrap();
    let now = Timestamp::from_secs(TEST_NOW);
    let options = Options { check_all: true, missing_includes: MissingIncludes::Skip, year_now: Some(2026) };

    let records = read_jsonl(&corpus.join("corpus.jsonl"));
    let mut truth: HashMap<(String, u64, String), Value> = HashMap::new();
    for t in read_jsonl(&corpus.join("corpus_truth.jsonl")) {
        let key = (
            t["filter"].as_str().unwrap().to_string(),
            t["seq"].as_u64().unwrap(),
            t["variant_key"].as_str().unwrap().to_string(),
        );
        truth.insert(key, t);
    }
    let listed = std::fs::read_to_string(DIFFERENCES).unwrap_or_default();
    let listed: BTreeSet<String> = listed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(" | ").next())
        .map(str::to_string)
        .collect();

    let mut variants: HashMap<String, Variant> = HashMap::new();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut differences: Vec<(String, String)> = Vec::new();
    for r in &records {
        let name = r["filter"].as_str().unwrap();
        let shipped = shipped_dir.join(format!("{name}.conf")).is_file();
        let seq = r["seq"].as_u64().unwrap();
        let opts = r["filter_options"].as_array().unwrap();
        let keys = r["variant_keys"].as_array().unwrap();
        for (opt, key) in opts.iter().zip(keys) {
            let key = key.as_str().unwrap();
            let opt = opt.as_object().unwrap();
            let variant = variants.entry(key.to_string()).or_insert_with(|| {
                let params: BTreeMap<String, String> = opt
                    .iter()
                    .filter(|(k, _)| !k.starts_with("test."))
                    .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                    .collect();
                let dir = if shipped { &shipped_dir } else { &test_dir };
                Variant {
                    filter: fail2ban::load(dir, name, &params, &options).map_err(|e| e.to_string()),
                    state: MatchState::new(now).with_time_zone(tz.clone()),
                }
            });
            let mut line = r["line"].as_str().unwrap().to_string();
            let journal = opt.get("logtype").and_then(Value::as_str) == Some("journal");
            if journal && let Some(prefix) = opt.get("test.prefix-line").and_then(Value::as_str) {
                line = format!("{prefix}{line}");
            }
            let Some(t) = truth.get(&(name.to_string(), seq, key.to_string())) else { continue };
            let expected: Vec<&Value> = t["f2b_results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| !x["fid"].is_null() && !x["nofail"].as_bool().unwrap_or(false))
                .collect();
            let got = match &variant.filter {
                Ok(f) => {
                    let source_time = journal.then_some(now);
                    let out = f.process_fail2ban(&mut variant.state, &line, source_time).unwrap();
                    Ok(out.results.into_iter().filter(|x| x.id.is_some() && !x.nofail).collect::<Vec<_>>())
                }
                Err(e) => Err(e.clone()),
            };
            let problem = match (&got, expected.first()) {
                (Err(e), _) => Some(format!("does not load: {e}")),
                (Ok(g), None) if g.is_empty() => None,
                (Ok(g), None) => Some(format!("fail2ban: no match; warden: {:?}", g[0].id)),
                (Ok(g), Some(_)) if g.is_empty() => Some("fail2ban: match; warden: no match".to_string()),
                (Ok(g), Some(e)) => {
                    let g = &g[0];
                    let fid = e["fid"].as_str().unwrap_or("");
                    let want_time = e["time"].as_f64().filter(|_| !r["time"].is_null());
                    let want_user = r["user"].as_str();
                    if !same_id(g.id.as_deref().unwrap_or(""), fid) {
                        Some(format!("id: fail2ban {fid:?}, warden {:?}", g.id))
                    } else if let Some(w) = want_time
                        && g.time.map(|t| t.as_millis()) != Some((w * 1000.0).round() as i64)
                    {
                        Some(format!(
                            "time: fail2ban {w}, warden {:?}",
                            g.time.map(|t| t.as_millis() as f64 / 1000.0)
                        ))
                    } else if let Some(u) = want_user
                        && g.user.as_deref() != Some(u)
                    {
                        Some(format!("user: fail2ban {u:?}, warden {:?}", g.user))
                    } else {
                        None
                    }
                }
            };
            let group = if shipped { name.to_string() } else { format!("{name} (test-only)") };
            let tally = tallies.entry(group).or_default();
            tally.total += 1;
            match problem {
                None => tally.agreed += 1,
                Some(p) => differences.push((format!("{key} #{seq}"), format!("{p}: {line}"))),
            }
        }
    }

    let mut shipped = Tally::default();
    let mut all = Tally::default();
    println!("{:<32} {:>6} {:>6} {:>8}", "filter", "agree", "total", "%");
    for (name, t) in &tallies {
        println!(
            "{name:<32} {:>6} {:>6} {:>7.1}%",
            t.agreed,
            t.total,
            100.0 * t.agreed as f64 / t.total as f64
        );
        if !name.ends_with("(test-only)") {
            shipped.total += t.total;
            shipped.agreed += t.agreed;
        }
        all.total += t.total;
        all.agreed += t.agreed;
    }
    let pct = |t: &Tally| 100.0 * t.agreed as f64 / t.total.max(1) as f64;
    println!("shipped filters: {}/{} = {:.2}%", shipped.agreed, shipped.total, pct(&shipped));
    println!("all filters:     {}/{} = {:.2}%", all.agreed, all.total, pct(&all));
    for (at, what) in &differences {
        println!("DIFF {at} | {what}");
    }

    let mut failures = Vec::new();
    if (shipped.agreed as f64) < BAR * shipped.total as f64 {
        failures.push(format!("shipped filters agree on {:.2}%, below {}%", pct(&shipped), BAR * 100.0));
    }
    for (name, t) in &tallies {
        let strict = MUST_AGREE.contains(&name.as_str()) || name.starts_with("nginx-");
        if strict && t.agreed < t.total {
            failures.push(format!("{name} must agree on every evaluation: {}/{}", t.agreed, t.total));
        }
    }
    let unlisted: Vec<&String> =
        differences.iter().map(|(at, _)| at).filter(|at| !listed.contains(*at)).collect();
    if !unlisted.is_empty() {
        let shown: Vec<&&String> = unlisted.iter().take(20).collect();
        failures.push(format!(
            "{} differences are not listed in {DIFFERENCES} (the DIFF lines above), first: {shown:?}",
            unlisted.len()
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

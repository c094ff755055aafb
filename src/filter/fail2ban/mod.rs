//! fail2ban's `filter.d` filters, loaded unchanged (`filter: fail2ban:sshd`).
//!
//! [`load`] reads `<dir>/<name>.conf` the way fail2ban does and compiles it
//! into an ordinary [`Filter`] that runs with fail2ban's semantics:
//! - `ini`: the `.conf`/`.local` files, `[INCLUDES]`, `[DEFAULT]`,
//!   `%(name)s` interpolation (Python configparser rules);
//! - `reader`: fail2ban's option resolution: jail parameters, `[Init]`,
//!   `known/` values and recursive `<tag>` substitution (so
//!   `<lt_<logtype>/__prefix_line>` and `<mdre-<mode>>` work);
//! - `tags`: fail2ban's regex tags (`<HOST>`, `<F-USER>`, `<SKIPLINES>`, …);
//! - `pyre`: Python regex syntax to what the `regex` crate and fancy-regex
//!   accept (patterns then compile like native ones: the regex-crate gate
//!   first, fancy-regex with a backtrack limit only where needed);
//! - `dates`: `datepattern` and fail2ban's default date templates;
//! - `engine`: fail2ban's line processing (`maxlines` buffers,
//!   `prefregex`/`<F-CONTENT>`, ignoreregex order, multi-line failure ids);
//! - `split`: regex-crate variants of patterns with conditionals;
//! - [`jails`]: fail2ban's `jail.conf` (and what an import needs of its
//!   actions), for `warden import-fail2ban`.
//!
//! Agreement is measured on fail2ban's own annotated samples by
//! `tests/fail2ban_corpus.rs` (every evaluation agrees; differences would
//! be listed in `tests/fail2ban_corpus_differences.txt`).
//!
//! Where warden differs, on purpose:
//! - it never resolves host names: a line whose failure id is a host name
//!   (`<DNS>`, or `<HOST>` matching a name) is recognised
//!   ([`Filter::process_fail2ban`] reports it) but bans nothing
//!   ([`Filter::process`] calls it a miss);
//! - dates without a zone are read in the stream's zone
//!   ([`MatchState::with_time_zone`], UTC by default) rather than the
//!   host's; a line without a usable date and no recent one has no time
//!   (`Hit::time` is `None`: the caller's clock applies);
//! - with a time from the source (journald, Docker) only a date opening
//!   the line is cut out of it (fail2ban's journal backend looks for none;
//!   its file backend would also cut one inside the line);
//! - an `[INCLUDES]` file that does not exist is an error (fail2ban skips
//!   it silently), except `.local` files, which are optional;
//! - up to 4,096 open `<F-MLFID>` connections per stream are remembered
//!   (fail2ban: 100), each for 5 minutes of the stream's clock;
//! - when a failregex's group did not take part in its match, the
//!   prefregex's group of the same name keeps its value (as fail2ban 1.1
//!   does; 1.0 lost it).
//!
//! Patterns fail2ban's Python engine would run with conditionals or
//! look-arounds are decided by the regex crate on most lines (`split`,
//! and a plain form for lines without a look-around's text); fancy-regex,
//! with its backtrack limit, decides the rest.

mod dates;
mod engine;
mod ini;
pub mod jails;
mod pyre;
mod reader;
mod split;
mod tags;

use std::collections::BTreeMap;
use std::path::Path;

pub use engine::{Fail2banLine, Fail2banResult};
pub use ini::MissingIncludes;

use super::compile::{Compiled, PatternList, gate_source};
use super::date::DateSearch;
use super::{Filter, FilterError, MatchState, ShortText};
use crate::core::Timestamp;
use engine::Groups;

pub(crate) use engine::{Semantics, State, process};

/// The directory fail2ban keeps its filters in.
pub const DEFAULT_FILTER_DIR: &str = "/etc/fail2ban/filter.d";

/// How a fail2ban filter is loaded.
#[derive(Debug, Clone)]
pub struct Options {
    /// Try every failregex on every line and report each match, as
    /// `fail2ban-regex` does (the daemon stops at the first match).
    pub check_all: bool,
    /// What an `[INCLUDES]` entry naming a missing file means.
    pub missing_includes: MissingIncludes,
    /// The current year, which bounds `%ExY` (years 2000 to three years
    /// ahead); `None`: from the system clock.
    pub year_now: Option<i32>,
}

impl Default for Options {
    fn default() -> Self {
        Options { check_all: false, missing_includes: MissingIncludes::Error, year_now: None }
    }
}

/// Whether `name` is a plain filter name (no path).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// Whether `dir` holds filter `name` (`name.conf` or `name.local`).
pub fn exists(dir: &Path, name: &str) -> bool {
    valid_name(name)
        && (dir.join(format!("{name}.conf")).is_file() || dir.join(format!("{name}.local")).is_file())
}

/// Loads fail2ban filter `name` from `dir` (fail2ban's `filter.d`);
/// `params` are the jail's parameters (`mode`, `logtype`, …).
pub fn load(
    dir: &Path,
    name: &str,
    params: &BTreeMap<String, String>,
    options: &Options,
) -> Result<Filter, FilterError> {
    let fail = |message: String| FilterError::Fail2ban { name: name.to_string(), message };
    if !valid_name(name) {
        return Err(fail(format!(
            "invalid fail2ban filter name {name:?}: use the file name in {} without .conf",
            dir.display()
        )));
    }
    let opts = reader::read(dir, name, params, options.missing_includes).map_err(|e| fail(e.to_string()))?;
    let place = |option: &str| {
        let (path, line) = opts.places.get(option).cloned().unwrap_or_default();
        format!("{path}:{line}: [Definition] {option}")
    };
    let use_dns = opts.usedns.as_deref().is_none_or(|v| v.trim().to_lowercase() != "no");
    let maxlines = match opts.maxlines.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(fail(format!(
                    "{}: {v:?} is not a number of lines (1 or more)",
                    place("maxlines")
                )));
            }
        },
    };
    let compile = |what: &str, index: Option<usize>, source: &str, multiline: bool| {
        let label = match index {
            Some(i) => format!("{} (pattern #{})", place(what), i + 1),
            None => place(what),
        };
        if source.trim().is_empty() {
            return Err(fail(format!("{label}: empty pattern")));
        }
        let python = tags::resolve(source, use_dns);
        if let Some(tag) = tags::unresolved(&python) {
            return Err(fail(format!(
                "{label}: unknown tag {tag}: no option of that name (check the filter's parameters, like mode)"
            )));
        }
        let rust = pyre::translate(&python).map_err(|e| fail(format!("{label}: {source:?}: {e}")))?;
        let rust = if multiline { format!("(?m){rust}") } else { rust };
        Compiled::new(&rust, &[]).map_err(|e| fail(format!("{label}: {source:?} does not compile: {e}")))
    };

    let mut prefix = opts.prefregex.as_deref().map(|p| compile("prefregex", None, p, false)).transpose()?;
    let prefix_groups = prefix.as_ref().map(Groups::of);
    // As for native filters: a prefregex whose content runs to the end of
    // the line reuses its match for the next line that starts alike
    // (`Program::cache_header`; only on lines without a newline).
    if let (Some(c), Some(content)) = (&mut prefix, prefix_groups.as_ref().and_then(Groups::content))
        && (c.regex.ends_with("(?P<content>.+)$") || c.regex.ends_with("(?P<content>.*)$"))
        && let Some(fast) = &mut c.fast
    {
        fast.cache_header(content);
    }
    let mut fails = Vec::new();
    for (i, source) in opts.failregex.iter().enumerate() {
        let c = compile("failregex", Some(i), source, maxlines > 1)?;
        let has_id =
            Groups::of(&c).has_failure_id() || prefix_groups.as_ref().is_some_and(Groups::has_failure_id);
        if !has_id {
            return Err(fail(format!(
                "{} (pattern #{}): {source:?} has no failure id: use <HOST>, <ADDR>, <IP4>, <IP6>, <DNS>, <F-ID>…</F-ID> or <F-MLFID>",
                place("failregex"),
                i + 1
            )));
        }
        fails.push(c);
    }
    if fails.is_empty() {
        return Err(fail(format!("{}: no failregex (at least one pattern is needed)", place("failregex"))));
    }
    let mut ignores = Vec::new();
    for (i, source) in opts.ignoreregex.iter().enumerate() {
        ignores.push(compile("ignoreregex", Some(i), source, false)?);
    }
    let year = options.year_now.unwrap_or_else(current_year);
    let dates = dates::DateDetector::new(opts.datepattern.as_deref(), year)
        .map_err(|e| fail(format!("{}: {e}", place("datepattern"))))?;

    let fail_gates: Vec<Option<String>> = fails.iter().map(|c| gate_source(&c.regex, c)).collect();
    let all_gate = if options.check_all { engine::AllGate::new(&fail_gates) } else { None };
    // In check-all mode that gate picks the failregexes to run: the list's
    // own first-match gate would go unused, so it is not built.
    let fail_gates = if all_gate.is_some() { vec![None; fails.len()] } else { fail_gates };
    let semantics = Semantics {
        maxlines,
        dates,
        prefix: prefix_groups,
        fails: fails.iter().map(Groups::of).collect(),
        check_all: options.check_all,
        all_gate,
        plain: fails.iter().map(plain_form).collect(),
        split: fails
            .iter()
            .map(|c| if c.is_fancy() { split::Split::new(&c.regex, &c.group_names()) } else { None })
            .collect(),
    };
    let ignore_gates = ignores.iter().map(|c| gate_source(&c.regex, c)).collect();
    Ok(Filter {
        name: format!("fail2ban:{name}"),
        description: format!("fail2ban filter {name} from {}", dir.display()),
        source: opts.files.join(", "),
        journalmatch: journalmatch(opts.journalmatch.as_deref()),
        date_search: DateSearch::Disabled,
        failregex_sources: opts.failregex.clone(),
        ignore: PatternList::new(ignores, |_| ignore_gates),
        fail: PatternList::new(fails, |_| fail_gates),
        prefix,
        fail2ban: Some(Box::new(semantics)),
    })
}

/// A fancy pattern's regex-crate form for lines without the texts of its
/// negative look-arounds, when dropping those makes it one.
fn plain_form(c: &Compiled) -> Option<engine::Plain> {
    if !c.is_fancy() {
        return None;
    }
    let (plain, literals) = pyre::without_literal_negative_lookarounds(&c.regex)?;
    engine::Plain::new(Compiled::new(&plain, &[]).ok()?, &literals)
}

fn current_year() -> i32 {
    i32::from(jiff::Zoned::now().year())
}

/// fail2ban's `journalmatch`: one match per line, each a list of
/// `FIELD=value` terms (shell-quoted), `+` between alternatives. warden's
/// list is OR-ed, so each alternative becomes one entry (terms of one
/// alternative joined by a space).
fn journalmatch(value: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for line in value.unwrap_or("").lines() {
        let mut group: Vec<String> = Vec::new();
        for word in shell_words(line) {
            if word == "+" {
                if !group.is_empty() {
                    out.push(group.join(" "));
                }
                group.clear();
            } else {
                group.push(word);
            }
        }
        if !group.is_empty() {
            out.push(group.join(" "));
        }
    }
    out
}

/// Splits a line like a POSIX shell would (quotes and backslashes), enough
/// for `FIELD=value` terms.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

impl Filter {
    /// Whether this filter was imported from fail2ban.
    pub fn is_fail2ban(&self) -> bool {
        self.fail2ban.is_some()
    }

    /// For a filter imported from fail2ban: everything fail2ban reports for
    /// this line (failures, not-counted matches, host-name ids, pending
    /// connections). `None` for native filters.
    pub fn process_fail2ban(
        &self,
        state: &mut MatchState,
        line: &str,
        source_time: Option<Timestamp>,
    ) -> Option<Fail2banLine> {
        let semantics = self.fail2ban.as_deref()?;
        Some(engine::process(self, semantics, state, super::clip(line), source_time, None))
    }
}

/// [`Filter::process`] for imported filters: the first counted failure with
/// an address, else the first not-counted one, else what ignored the line.
pub(crate) fn outcome(line: Fail2banLine, date_format: Option<&'static str>) -> super::Outcome {
    let with_addr = |counted: bool| {
        line.results.iter().find_map(|r| r.addr.filter(|_| r.nofail != counted).map(|addr| (r, addr)))
    };
    match (with_addr(true).or_else(|| with_addr(false)), line.ignored) {
        (Some((r, addr)), _) => super::Outcome::Match(super::Hit {
            addr,
            user: r.user.as_deref().filter(|u| !u.is_empty()).map(ShortText::new),
            time: r.time,
            regex_index: r.regex_index,
            counted: !r.nofail,
            date_format,
        }),
        (None, Some(regex_index)) => super::Outcome::Ignored { regex_index },
        (None, None) => super::Outcome::Miss,
    }
}

#[cfg(test)]
mod tests;

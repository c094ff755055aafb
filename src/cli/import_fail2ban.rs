//! `warden import-fail2ban [DIR]`: fail2ban's jail configuration (default
//! `/etc/fail2ban`) as an equivalent `warden.yaml`, with a warning for
//! everything that cannot be carried over.
//!
//! fail2ban's files are read by [`crate::filter::fail2ban::jails`], with
//! fail2ban's own rules (file order, includes, `[DEFAULT]`,
//! interpolation). This module decides what each enabled jail means in
//! warden's terms:
//!
//! | fail2ban | warden |
//! |---|---|
//! | `filter = sshd[mode=aggressive]` | `filter: fail2ban:sshd`, `filter_params: {mode: aggressive}` (fail2ban's own filter, unchanged; a native warden filter of the same name is suggested in a comment) |
//! | `maxretry`, `findtime`, `bantime` (`600`, `10m`, `1h 30m`, `-1`) | the same, as warden durations; a negative `bantime` is `permanent` |
//! | `bantime.increment`, `.factor`, `.multipliers`, `.maxtime`, `.rndtime` | `bantime_increment` |
//! | `ignoreip` | `ignoreip` (host names cannot be carried: warden never resolves names) |
//! | `logpath` (file backends) | `file` sources (`tail` → `read_from: end`) |
//! | `backend = systemd` | a `journald` source matching the filter's `journalmatch`, and `logtype: journal` as fail2ban sets it |
//! | `iptables*`, `nftables*`, `firewallcmd*` actions | the ports, protocol and chain they ban (`allports` → every port; `DOCKER-USER`/`FORWARD` → `target: docker`, else `host`), and `action: reject` where their `blocktype` rejects (fail2ban's default) |
//! | mail, reporting, Cloudflare and custom actions | not carried: one warning each |
//!
//! `[DEFAULT]`'s shared settings become `defaults:`; a jail only states
//! what differs. A jail whose actions ban different protocols or ports
//! (fail2ban's `nsd`, `asterisk`: one action for tcp, one for udp) becomes
//! one warden jail per set. A jail that bans nothing in fail2ban (only
//! notifications) or whose filter warden cannot load is written with
//! `enabled: false`, so importing never makes warden ban what fail2ban
//! did not.
//!
//! The text is checked with warden's own configuration parser before it
//! is returned; a value warden refuses is reported at its fail2ban file,
//! line, section and option.
//!
//! - `jail`: one fail2ban jail into warden jails;
//! - `ports`: `port` values;
//! - `yaml`: the text.

mod jail;
mod ports;
mod yaml;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config;
use crate::filter::Registry;
use crate::filter::fail2ban::jails::{JailFiles, JailsError, Place};

/// fail2ban's configuration directory.
pub const DEFAULT_DIR: &str = "/etc/fail2ban";

/// The configuration written, the warnings for what it leaves out, and the
/// warden jails it defines.
#[derive(Debug, Clone)]
pub struct Imported {
    pub yaml: String,
    /// One line each, starting with the fail2ban jail (`[sshd] …`).
    pub warnings: Vec<String>,
    pub jails: Vec<String>,
}

/// Why fail2ban's configuration could not be imported; each names the
/// place (file, line, section, option).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImportError {
    #[error("{dir}: {message}")]
    Dir { dir: String, message: String },
    #[error(transparent)]
    Fail2ban(#[from] JailsError),
    /// warden's configuration check refused imported values (one line each).
    #[error("{0}")]
    Rejected(String),
}

/// Where an imported value was written in fail2ban's files.
#[derive(Debug, Clone)]
struct Origin {
    place: Place,
    section: String,
    option: String,
}

/// One key of a jail or of `defaults`, as YAML text.
#[derive(Debug, Clone)]
struct Field {
    key: &'static str,
    /// The inline value; unused when `items` holds a block list.
    value: String,
    items: Vec<String>,
    /// Written after the value.
    comment: Option<String>,
    /// Comment lines written above the key.
    notes: Vec<String>,
    origin: Option<Origin>,
}

impl Field {
    fn new(key: &'static str, value: String) -> Field {
        Field { key, value, items: Vec::new(), comment: None, notes: Vec::new(), origin: None }
    }

    fn comment(mut self, comment: impl Into<String>) -> Field {
        self.comment = Some(comment.into());
        self
    }

    fn from(mut self, origin: Option<Origin>) -> Field {
        self.origin = origin;
        self
    }
}

/// One warden jail.
#[derive(Debug, Clone)]
struct JailOut {
    name: String,
    /// The fail2ban section it came from.
    section: String,
    comments: Vec<String>,
    fields: Vec<Field>,
}

/// Everything the YAML says.
#[derive(Debug, Clone, Default)]
struct Document {
    header: Vec<String>,
    filter_dir: Option<PathBuf>,
    defaults: Vec<Field>,
    jails: Vec<JailOut>,
    footer: Vec<String>,
}

/// Imports fail2ban's configuration from `dir` (like `/etc/fail2ban`).
pub fn import(dir: &Path) -> Result<Imported, ImportError> {
    let shown = dir.display().to_string();
    let io = |e: std::io::Error| ImportError::Dir {
        dir: shown.clone(),
        message: format!("{e} (expected fail2ban's configuration directory, like {DEFAULT_DIR})"),
    };
    // Absolute (fail2ban_filter_dir must be) but, unless it holds `..`, not
    // resolved: the paths written are the ones the user named.
    let dotted = dir.components().any(|c| matches!(c, std::path::Component::ParentDir));
    let dir = if dotted { std::fs::canonicalize(dir) } else { std::path::absolute(dir) }.map_err(io)?;
    std::fs::metadata(&dir).map_err(io)?;
    if !dir.is_dir() {
        return Err(ImportError::Dir {
            dir: shown,
            message: format!(
                "not a directory (expected fail2ban's configuration directory, like {DEFAULT_DIR})"
            ),
        });
    }
    let files = JailFiles::read(&dir)?;
    let mut cx = jail::Context::new(&dir, &files, Registry::shipped());
    let defaults = cx.defaults()?;
    let mut jails = Vec::new();
    let mut not_enabled = Vec::new();
    for section in files.jails() {
        if files.enabled(&section)? {
            jails.extend(cx.jail(&section, &defaults)?);
        } else {
            not_enabled.push(section);
        }
    }
    name_jails(&mut cx, &mut jails);

    let filter_dir = dir.join("filter.d");
    let mut doc = Document {
        header: header(&dir, &files),
        filter_dir: filter_dir.is_dir().then_some(filter_dir),
        defaults,
        jails,
        footer: Vec::new(),
    };
    if doc.jails.is_empty() {
        cx.warnings.push(format!(
            "no jail is enabled in {} (enable one with `enabled = true` in jail.local)",
            dir.display()
        ));
    }
    if !not_enabled.is_empty() {
        doc.footer.push(format!(
            "{} jail{} not enabled in fail2ban, so not imported:",
            not_enabled.len(),
            if not_enabled.len() == 1 { " is" } else { "s are" },
        ));
        doc.footer.extend(wrap(&not_enabled, 96));
    }
    let text = yaml::render(&doc);
    check(&text, &doc)?;
    Ok(Imported {
        yaml: text,
        warnings: cx.warnings,
        jails: doc.jails.iter().map(|j| j.name.clone()).collect(),
    })
}

fn header(dir: &Path, files: &JailFiles) -> Vec<String> {
    let read: Vec<String> = files.files().iter().map(|f| f.display().to_string()).collect();
    vec![
        format!(
            "warden configuration imported from fail2ban's {} by `warden import-fail2ban` (warden {}).",
            dir.display(),
            env!("CARGO_PKG_VERSION")
        ),
        format!("Read: {}.", read.join(", ")),
        "Filters are fail2ban's own, read from fail2ban_filter_dir; inside warden's container, mount that"
            .to_string(),
        "directory and each log file (or the journal) at the same paths.".to_string(),
        "Warnings on standard error list what could not be carried over.".to_string(),
    ]
}

/// `items` joined by commas into lines of at most about `width` bytes.
fn wrap(items: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() { format!("{item},") } else { item.clone() };
        if !line.is_empty() && line.len() + 1 + piece.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&piece);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// warden jail names: letters, digits, `-` and `_`, at most 24 bytes,
/// unique. A fail2ban name outside that is changed, with a warning.
fn name_jails(cx: &mut jail::Context<'_>, jails: &mut [JailOut]) {
    const MAX: usize = 24;
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for jail in jails.iter_mut() {
        let mut name: String =
            jail.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
        name = name.trim_start_matches(['-', '_']).to_string();
        if name.is_empty() {
            name = "jail".to_string();
        }
        name.truncate(MAX);
        let base = name.clone();
        let mut n = 2;
        while taken.contains(&name) {
            let suffix = format!("-{n}");
            let mut stem = base.clone();
            stem.truncate(MAX - suffix.len());
            name = format!("{stem}{suffix}");
            n += 1;
        }
        if name != jail.name {
            cx.warnings.push(format!(
                "[{}] warden jail names are 1 to {MAX} letters, digits, `-` or `_`: {:?} is imported as `{name}`",
                jail.section, jail.name
            ));
            jail.comments.push(format!("named {:?} in fail2ban", jail.name));
        }
        taken.insert(name.clone());
        jail.name = name;
    }
}

/// Runs warden's configuration check on the text; a refused value is
/// reported at the fail2ban option it came from.
fn check(text: &str, doc: &Document) -> Result<(), ImportError> {
    let no_native_filters = |_: &str| false;
    let errors = match config::parse(text, Path::new("(imported warden.yaml)"), &no_native_filters) {
        Ok(_) => return Ok(()),
        Err(errors) => errors,
    };
    let mut lines = Vec::new();
    for e in errors.iter() {
        let field = locate(doc, &e.key);
        match field.and_then(|f| f.origin.as_ref().map(|o| (f, o))) {
            Some((f, o)) => lines.push(format!(
                "{}: [{}] {}: warden cannot use the imported value {}: {}",
                o.place,
                o.section,
                o.option,
                if f.items.is_empty() { f.value.clone() } else { f.items.join(", ") },
                e.message
            )),
            None => {
                lines.push(format!("the imported configuration does not validate (a bug in the import): {e}"))
            }
        }
    }
    Err(ImportError::Rejected(lines.join("\n")))
}

/// The field a configuration error's key path (`jails.sshd.sources[0]…`)
/// points into.
fn locate<'d>(doc: &'d Document, key: &str) -> Option<&'d Field> {
    let within = |prefix: &str| {
        key == prefix || key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    let in_defaults = doc.defaults.iter().find(|f| within(&format!("defaults.{}", f.key)));
    in_defaults.or_else(|| {
        doc.jails
            .iter()
            .find_map(|j| j.fields.iter().find(|f| within(&format!("jails.{}.{}", j.name, f.key))))
    })
}

#[cfg(test)]
mod tests;

//! The configuration file (`warden.yaml`): its YAML model, defaults and
//! validation.
//!
//! Reading happens in two passes so that every mistake is reported at once:
//! `yaml` parses the text (with serde-saphyr) into a tree that keeps the
//! line and column of every key and value, then `build` checks each field
//! (with the parsers in `fields`), applies defaults and produces a typed
//! [`Config`]. Each error names the file, line, column and key path and says
//! what would be valid; all of them come back together in [`ConfigErrors`].
//!
//! Defaults apply per field: a jail inherits what it does not set from
//! `defaults`, which inherits from [`builtin`]. Top-level keys starting with
//! `x-` are ignored, so they can hold YAML anchors (as in docker-compose).
//! Disabled jails are validated like enabled ones.
//!
//! ```yaml
//! state_dir: /var/lib/warden
//! defaults: {maxretry: 5, findtime: 10m, bantime: 10m, ignoreip: [127.0.0.0/8, "::1"]}
//! jails:
//!   sshd:
//!     filter: sshd
//!     sources: [{file: {path: /var/log/auth.log}}]
//!     bantime_increment: {enabled: true, multipliers: [1, 2, 4, 8], maxtime: 5w}
//! ```
//!
//! Filters are owned elsewhere: callers say which names exist through a
//! [`FilterCatalog`] (any `Fn(&str) -> bool` is one).

mod build;
mod cluster;
mod error;
mod fields;
pub mod labels;
mod model;
mod yaml;

use std::path::Path;

pub use cluster::{ClusterSettings, Rate, RemoteLimits, TlsFiles, parse_rate, redact_url};
pub use error::{ConfigError, ConfigErrors, Pos};
pub use model::{
    BackendChoice, Config, DockerSettings, FilterRef, FirewallSettings, JailConfig, ReadFiles, ReadFrom,
    SourceSpec, builtin,
};

/// Which filter names exist, as known to the caller (the shipped filters and
/// any already loaded). Names found as `<name>.yaml` in the config's
/// `filter_dirs` count as existing too; the config checks those itself.
pub trait FilterCatalog {
    fn contains(&self, name: &str) -> bool;

    /// Every known name, listed in "unknown filter" errors. May be empty.
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<F: Fn(&str) -> bool + ?Sized> FilterCatalog for F {
    fn contains(&self, name: &str) -> bool {
        self(name)
    }
}

/// A catalog that is a plain list of names.
#[derive(Debug, Clone, Copy)]
pub struct FilterNames<'a>(pub &'a [&'a str]);

impl FilterCatalog for FilterNames<'_> {
    fn contains(&self, name: &str) -> bool {
        self.0.contains(&name)
    }

    fn names(&self) -> Vec<String> {
        self.0.iter().map(|n| n.to_string()).collect()
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path, filters: &dyn FilterCatalog) -> Result<Config, ConfigErrors> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse(&text, path, filters),
            Err(err) => {
                let before = &err.as_bytes()[..err.utf8_error().valid_up_to()];
                let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
                let column = before.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
                Err(ConfigErrors(vec![ConfigError {
                    file: path.to_path_buf(),
                    pos: Some(Pos { line, column }),
                    key: String::new(),
                    message: "the file is not valid UTF-8".into(),
                }]))
            }
        },
        Err(err) => Err(ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            pos: None,
            key: String::new(),
            message: format!("cannot read the configuration file: {err}"),
        }])),
    }
}

/// Validates configuration `text`; `origin` names the file in errors and
/// anchors relative filter paths.
pub fn parse(text: &str, origin: &Path, filters: &dyn FilterCatalog) -> Result<Config, ConfigErrors> {
    let mut cx = fields::Checker::new(origin);
    match yaml::parse(text) {
        Ok(root) => {
            if let Some(config) = build::build(&root, origin, filters, &mut cx) {
                return Ok(config);
            }
        }
        Err(syntax) => cx.error(syntax.pos, "", format!("invalid YAML: {}", syntax.message)),
    }
    let mut errors = cx.errors;
    // File order reads best; the sort is stable, so errors at one spot keep
    // the order they were found in.
    errors.sort_by_key(|e| e.pos);
    Err(ConfigErrors(errors))
}

#[cfg(test)]
mod tests;

//! Where filters come from: the shipped ones (every `filters/*.yaml`,
//! embedded in the binary by `build.rs`) and `*.yaml` files in the user's
//! `filter_dirs`, which override a shipped filter of the same name; and
//! `fail2ban:<name>`, fail2ban's own `<name>.conf` read from a fail2ban
//! `filter.d` directory ([`super::fail2ban`]).
//!
//! The registry holds filter texts, not compiled filters: a filter compiles
//! per jail, because each jail may set its own params.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::fail2ban;
use super::{Filter, FilterError, parse_definition};

/// How a jail names a filter imported from fail2ban: `fail2ban:sshd`.
pub const FAIL2BAN_PREFIX: &str = "fail2ban:";

mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped_filters.rs"));
}

#[derive(Debug, Clone)]
struct Entry {
    text: String,
    /// A path, or `shipped:<name>` for embedded filters; used in errors.
    origin: String,
    /// Read from the text when first asked for (`warden filters`): loading
    /// one filter need not parse every other.
    description: std::sync::OnceLock<Option<String>>,
}

/// Known filters by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
    /// fail2ban's `filter.d` (`None`: [`fail2ban::DEFAULT_FILTER_DIR`]).
    fail2ban_dir: Option<PathBuf>,
}

impl Registry {
    /// The filters shipped with warden.
    pub fn shipped() -> Self {
        let mut registry = Registry::default();
        for (name, text) in shipped::SHIPPED {
            registry.insert(name, text.to_string(), format!("shipped:filters/{name}.yaml"));
        }
        registry
    }

    /// The shipped filters plus every `*.yaml` in `dirs` (later ones win).
    /// A file whose `name` differs from its file name is an error.
    pub fn with_dirs(dirs: &[PathBuf]) -> Result<Self, FilterError> {
        let mut registry = Registry::shipped();
        for dir in dirs {
            let io = |source| FilterError::Io { path: dir.display().to_string(), source };
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect();
            files.sort();
            for path in files {
                let (name, text) = read_filter_file(&path)?;
                registry.insert(&name, text, path.display().to_string());
            }
        }
        Ok(registry)
    }

    /// Reads `fail2ban:<name>` filters from `dir` (fail2ban's `filter.d`).
    pub fn with_fail2ban_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.fail2ban_dir = Some(dir.into());
        self
    }

    /// Where `fail2ban:<name>` filters are read from.
    pub fn fail2ban_dir(&self) -> &Path {
        self.fail2ban_dir.as_deref().unwrap_or(Path::new(fail2ban::DEFAULT_FILTER_DIR))
    }

    /// Names of the fail2ban filters in the fail2ban directory (as
    /// `fail2ban:<name>`), sorted; empty when it cannot be read.
    pub fn fail2ban_names(&self) -> Vec<String> {
        let Ok(read) = std::fs::read_dir(self.fail2ban_dir()) else { return Vec::new() };
        let mut names: Vec<String> = read
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".conf")).map(String::from))
            .filter(|n| fail2ban::valid_name(n))
            .map(|n| format!("{FAIL2BAN_PREFIX}{n}"))
            .collect();
        names.sort();
        names
    }

    fn insert(&mut self, name: &str, text: String, origin: String) {
        self.entries
            .insert(name.to_string(), Entry { text, origin, description: std::sync::OnceLock::new() });
    }

    /// Filter names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Whether `name` is known: a native filter, or `fail2ban:<name>` with
    /// a `<name>.conf` in the fail2ban directory.
    pub fn contains(&self, name: &str) -> bool {
        match name.strip_prefix(FAIL2BAN_PREFIX) {
            Some(f2b) => fail2ban::exists(self.fail2ban_dir(), f2b),
            None => self.entries.contains_key(name),
        }
    }

    /// The one-line description (`None` for unknown or unparsable filters).
    pub fn description(&self, name: &str) -> Option<&str> {
        let entry = self.entries.get(name)?;
        entry
            .description
            .get_or_init(|| {
                parse_definition(&entry.text, &entry.origin).ok().map(|d| d.description.trim().to_string())
            })
            .as_deref()
    }

    /// The filter's YAML text and origin, e.g. for `warden test-filter`.
    pub fn text(&self, name: &str) -> Option<(&str, &str)> {
        self.entries.get(name).map(|e| (e.text.as_str(), e.origin.as_str()))
    }

    /// Compiles a filter by name, or from a path (anything with a `/` or a
    /// `.yaml`/`.yml` ending), with `params` overriding its defaults.
    /// `fail2ban:<name>` loads fail2ban's filter with `params` as the
    /// jail's parameters, as fail2ban's daemon runs it.
    pub fn load(&self, name_or_path: &str, params: &BTreeMap<String, String>) -> Result<Filter, FilterError> {
        self.load_with(name_or_path, params, &fail2ban::Options::default())
    }

    /// [`Registry::load`], with how `fail2ban:` filters are loaded (e.g.
    /// `check_all` for `warden test-filter`, as `fail2ban-regex` runs).
    pub fn load_with(
        &self,
        name_or_path: &str,
        params: &BTreeMap<String, String>,
        options: &fail2ban::Options,
    ) -> Result<Filter, FilterError> {
        if let Some(f2b) = name_or_path.strip_prefix(FAIL2BAN_PREFIX) {
            return fail2ban::load(self.fail2ban_dir(), f2b, params, options);
        }
        if let Some(entry) = self.entries.get(name_or_path) {
            return Filter::from_yaml(&entry.text, &entry.origin, params);
        }
        let looks_like_path =
            name_or_path.contains('/') || name_or_path.ends_with(".yaml") || name_or_path.ends_with(".yml");
        if looks_like_path {
            let path = Path::new(name_or_path);
            let (_, text) = read_filter_file(path)?;
            return Filter::from_yaml(&text, name_or_path, params);
        }
        Err(FilterError::Unknown { name: name_or_path.to_string(), known: self.names().join(", ") })
    }
}

/// Reads a filter file and checks its `name` matches the file stem.
fn read_filter_file(path: &Path) -> Result<(String, String), FilterError> {
    let origin = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| FilterError::Io { path: origin.clone(), source })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    let def = parse_definition(&text, &origin)?;
    if def.name.value != stem {
        return Err(FilterError::NameMismatch { origin, expected: stem, found: def.name.value });
    }
    Ok((stem, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = "name: mini\ndescription: a test filter\nfailregex: ['^fail from <HOST>$']\n";

    #[test]
    fn shipped_filters_are_embedded_and_listed() {
        let r = Registry::shipped();
        assert!(r.contains("sshd"), "names: {:?}", r.names());
        assert!(r.description("sshd").is_some_and(|d| !d.is_empty()));
        assert!(r.load("sshd", &BTreeMap::new()).is_ok());
        let err = r.load("sshdd", &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("unknown filter \"sshdd\"") && err.contains("sshd"), "{err}");
    }

    #[test]
    fn fail2ban_names_load_from_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("svc.conf"), "[Definition]\nfailregex = ^fail from <HOST>$\n")
            .unwrap();
        let r = Registry::shipped().with_fail2ban_dir(dir.path());
        assert!(r.contains("fail2ban:svc") && !r.contains("fail2ban:other") && !r.contains("fail2ban:../x"));
        assert_eq!(r.fail2ban_names(), ["fail2ban:svc"]);
        let f = r.load("fail2ban:svc", &BTreeMap::new()).unwrap();
        assert_eq!(f.name(), "fail2ban:svc");
        let err = r.load("fail2ban:other", &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("other.conf"), "{err}");
    }

    #[test]
    fn dirs_add_and_override_and_paths_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mini.yaml"), MINI).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a filter").unwrap();
        let r = Registry::with_dirs(&[dir.path().to_path_buf()]).unwrap();
        assert!(r.contains("mini") && r.contains("sshd"));
        assert_eq!(r.description("mini"), Some("a test filter"));
        let path = dir.path().join("mini.yaml");
        let f = r.load(path.to_str().unwrap(), &BTreeMap::new()).unwrap();
        assert_eq!(f.name(), "mini");

        std::fs::write(dir.path().join("other.yaml"), MINI).unwrap();
        let err = Registry::with_dirs(&[dir.path().to_path_buf()]).unwrap_err().to_string();
        assert!(err.contains("other.yaml") && err.contains("\"mini\""), "{err}");
        let err = Registry::with_dirs(&[dir.path().join("missing")]).unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("missing"), "{err}");
    }
}

//! Where filters come from: the shipped ones (every `filters/*.yaml`,
//! embedded in the binary by `build.rs`) and `*.yaml` files in the user's
//! `filter_dirs`, which override a shipped filter of the same name.
//!
//! The registry holds filter texts, not compiled filters: a filter compiles
//! per jail, because each jail may set its own params.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Filter, FilterError, parse_definition};

mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped_filters.rs"));
}

#[derive(Debug, Clone)]
struct Entry {
    text: String,
    /// A path, or `shipped:<name>` for embedded filters; used in errors.
    origin: String,
    description: Option<String>,
}

/// Known filters by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
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

    fn insert(&mut self, name: &str, text: String, origin: String) {
        let description = parse_definition(&text, &origin).ok().map(|d| d.description.trim().to_string());
        self.entries.insert(name.to_string(), Entry { text, origin, description });
    }

    /// Filter names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The one-line description (`None` for unknown or unparsable filters).
    pub fn description(&self, name: &str) -> Option<&str> {
        self.entries.get(name)?.description.as_deref()
    }

    /// The filter's YAML text and origin, e.g. for `warden test-filter`.
    pub fn text(&self, name: &str) -> Option<(&str, &str)> {
        self.entries.get(name).map(|e| (e.text.as_str(), e.origin.as_str()))
    }

    /// Compiles a filter by name, or from a path (anything with a `/` or a
    /// `.yaml`/`.yml` ending), with `params` overriding its defaults.
    pub fn load(&self, name_or_path: &str, params: &BTreeMap<String, String>) -> Result<Filter, FilterError> {
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

//! Configuration errors: each names the file, the line and column, the key
//! path (`jails.sshd.bantime`) and what would have been valid. They are
//! collected, never short-circuited, so one run of `warden check-config`
//! shows everything that needs fixing.

use std::fmt;
use std::path::PathBuf;

pub use super::yaml::Pos;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Where in the file; `None` only when the file could not be read at all.
    pub pos: Option<Pos>,
    /// The dotted key path, like `jails.sshd.sources[0].file.path`; empty for
    /// the document as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `file:line:col: key: message`, the shape editors and CI logs link.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if let Some(pos) = self.pos {
            write!(f, "{}:{}:", pos.line, pos.column)?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in one configuration file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The candidate closest to a misspelt `input`, if any is close enough to be
/// a plausible typo (edit distance at most a third of the word, at least 1).
pub(crate) fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = input.chars().count();
    // Long inputs are not typos of short names; skip the quadratic work.
    if len > 64 {
        return None;
    }
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&input.to_ascii_lowercase(), &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_plausible_typos() {
        let keys = ["bantime", "findtime", "maxretry"];
        assert_eq!(closest("bantim", keys), Some("bantime"));
        assert_eq!(closest("MaxRetry", keys), Some("maxretry"));
        assert_eq!(closest("fndtime", keys), Some("findtime"));
        assert_eq!(closest("zzz", keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn display_is_file_line_col_key_message() {
        let e = ConfigError {
            file: "/etc/warden.yaml".into(),
            pos: Some(Pos { line: 7, column: 14 }),
            key: "jails.sshd.bantime".into(),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "/etc/warden.yaml:7:14: jails.sshd.bantime: bad");
        let io = ConfigError { pos: None, key: String::new(), ..e };
        assert_eq!(io.to_string(), "/etc/warden.yaml: bad");
    }
}

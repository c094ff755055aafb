//! Reading warden's container labels: which jails a container feeds
//! (`warden.jails=a,b`) and whether it opted out (`warden.enable=false`).
//!
//! This module only checks the labels' form. Whether a named jail exists,
//! and what `warden.jail.<name>.<option>` labels mean, is for the daemon,
//! which gets every label in [`super::super::ContainerInfo::labels`]. A
//! malformed value yields a [`LabelProblem`] and the rest of the labels
//! still apply: valid names in a partly bad list are kept.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Lists the jails a container's logs feed.
pub const JAILS_LABEL: &str = "warden.jails";
/// `false` opts a container out, even one a config jail names.
pub const ENABLE_LABEL: &str = "warden.enable";
/// Prefix of the per-container jail options, `warden.jail.<name>.<option>`.
pub const JAIL_OPTION_PREFIX: &str = "warden.jail.";

/// What a container's labels say about following it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelReading {
    /// Valid jail names from `warden.jails`, in order, without repeats.
    pub jails: Vec<String>,
    /// `false` only when `warden.enable` says so.
    pub enabled: bool,
    pub problems: Vec<LabelProblem>,
}

/// A label warden cannot use as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelProblem {
    pub label: String,
    pub value: String,
    /// What is wrong and what would be valid.
    pub reason: String,
}

impl fmt::Display for LabelProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "label {}={:?}: {}", self.label, self.value, self.reason)
    }
}

/// Reads `warden.jails` and `warden.enable`.
pub fn read_labels<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> LabelReading {
    let mut reading = LabelReading { enabled: true, ..LabelReading::default() };
    for (label, value) in labels {
        match label.as_str() {
            JAILS_LABEL => read_jails(value, &mut reading),
            ENABLE_LABEL => match parse_bool(value) {
                Some(enabled) => reading.enabled = enabled,
                None => reading.problems.push(LabelProblem {
                    label: label.clone(),
                    value: value.clone(),
                    reason: "expected true or false; the container stays enabled".into(),
                }),
            },
            _ => {}
        }
    }
    reading
}

fn read_jails(value: &str, reading: &mut LabelReading) {
    let mut bad = Vec::new();
    for name in value.split(',').map(str::trim) {
        if is_jail_name(name) {
            if !reading.jails.iter().any(|j| j == name) {
                reading.jails.push(name.to_string());
            }
        } else {
            bad.push(if name.is_empty() { "an empty name".to_string() } else { format!("{name:?}") });
        }
    }
    if !bad.is_empty() {
        let kept = if reading.jails.is_empty() {
            "no jail is used".to_string()
        } else {
            format!("using {}", reading.jails.join(","))
        };
        reading.problems.push(LabelProblem {
            label: JAILS_LABEL.into(),
            value: value.to_string(),
            reason: format!(
                "{} is not a jail name ({kept}); valid form: warden.jails=<jail>[,<jail>...], names of letters, digits, `-` or `_` starting with a letter or digit",
                bad.join(", ")
            ),
        });
    }
}

fn is_jail_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Jails that `warden.jail.<name>.<option>` labels mention, for noticing
/// options set for a jail the container does not feed.
pub fn jails_with_options<'a>(labels: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    labels
        .into_iter()
        .filter_map(|label| label.strip_prefix(JAIL_OPTION_PREFIX))
        .filter_map(|rest| rest.split_once('.').map(|(jail, _)| jail.to_string()))
        .collect()
}

/// The jails a container feeds: its label's, then those of config jails
/// that name it, without repeats.
pub fn container_jails(from_labels: &[String], named: Option<&Vec<String>>) -> Vec<String> {
    let mut jails = from_labels.to_vec();
    for jail in named.into_iter().flatten() {
        if !jails.contains(jail) {
            jails.push(jail.clone());
        }
    }
    jails
}

/// Problems for `warden.jail.<j>.*` labels whose jail `j` is not among
/// `jails`: those options would silently do nothing.
pub fn unused_jail_options(labels: &BTreeMap<String, String>, jails: &[String]) -> Vec<LabelProblem> {
    jails_with_options(labels.keys())
        .into_iter()
        .filter(|jail| !jails.contains(jail))
        .map(|jail| {
            let prefix = format!("{JAIL_OPTION_PREFIX}{jail}.");
            let (label, value) = labels
                .iter()
                .find(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .unwrap_or_default();
            LabelProblem {
                label,
                value,
                reason: format!(
                    "jail {jail} gets options here but this container does not feed it; add it to warden.jails (warden.jails=...,{jail})"
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_jails_and_enable() {
        let r = read_labels(&labels(&[("warden.jails", " sshd, web_auth ,sshd"), ("other", "x")]));
        assert_eq!(r.jails, ["sshd", "web_auth"]);
        assert!(r.enabled);
        assert!(r.problems.is_empty());
        let r = read_labels(&labels(&[("warden.jails", "sshd"), ("warden.enable", "False")]));
        assert!(!r.enabled);
        assert_eq!(read_labels(&labels(&[])), LabelReading { enabled: true, ..LabelReading::default() });
    }

    #[test]
    fn a_partly_bad_list_keeps_its_good_names_and_says_what_is_valid() {
        let r = read_labels(&labels(&[("warden.jails", "sshd,,bad name,-x,web")]));
        assert_eq!(r.jails, ["sshd", "web"]);
        let [problem] = r.problems.as_slice() else { panic!("{:?}", r.problems) };
        let text = problem.to_string();
        for part in [
            "label warden.jails=\"sshd,,bad name,-x,web\"",
            "an empty name, \"bad name\", \"-x\" is not a jail name",
            "using sshd,web",
            "valid form: warden.jails=<jail>[,<jail>...]",
        ] {
            assert!(text.contains(part), "{text}\nlacks {part}");
        }
        let r = read_labels(&labels(&[("warden.jails", "")]));
        assert!(r.jails.is_empty());
        assert!(r.problems[0].reason.contains("no jail is used"), "{}", r.problems[0]);
    }

    #[test]
    fn a_bad_enable_value_warns_and_leaves_the_container_enabled() {
        let r = read_labels(&labels(&[("warden.enable", "nope"), ("warden.jails", "a")]));
        assert!(r.enabled);
        assert_eq!(r.jails, ["a"]);
        assert!(r.problems[0].to_string().contains("expected true or false"), "{}", r.problems[0]);
    }

    #[test]
    fn jails_merge_label_and_config_names() {
        let named = vec!["b".to_string(), "a".to_string()];
        assert_eq!(container_jails(&["a".into()], Some(&named)), ["a", "b"]);
        assert_eq!(container_jails(&[], None), Vec::<String>::new());
    }

    #[test]
    fn options_for_a_jail_the_container_does_not_feed_are_reported() {
        let l = labels(&[
            ("warden.jails", "a"),
            ("warden.jail.a.maxretry", "3"),
            ("warden.jail.b.filter", "sshd"),
            ("warden.jail.b.maxretry", "3"),
            ("warden.jail.nodot", "x"),
        ]);
        let problems = unused_jail_options(&l, &["a".to_string()]);
        let [p] = problems.as_slice() else { panic!("{problems:?}") };
        assert_eq!(p.label, "warden.jail.b.filter");
        assert!(p.reason.contains("add it to warden.jails"), "{p}");
    }
}

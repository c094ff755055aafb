//! The native filter file as written: the serde model of `filters/<name>.yaml`,
//! read with serde-saphyr (unknown and duplicate keys rejected, line numbers
//! kept on every pattern so compile errors can point at them).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// One filter file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterDef {
    pub name: Spanned<String>,
    pub description: String,
    /// Where the log formats come from (documentation, source files, versions).
    #[serde(default)]
    pub source: Option<String>,
    /// Named values referenced as `<name>` in patterns; overridable per jail.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub prefregex: Option<Spanned<String>>,
    pub failregex: Vec<Spanned<PatternEntry>>,
    #[serde(default)]
    pub ignoreregex: Vec<Spanned<PatternEntry>>,
    #[serde(default)]
    pub datepattern: Option<Spanned<String>>,
    #[serde(default)]
    pub journalmatch: Vec<String>,
}

/// A failregex/ignoreregex entry: a bare pattern, or a pattern with a
/// condition on params (`when: {mode: [aggressive]}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternEntry {
    pub regex: String,
    /// Param name -> the values for which the entry is compiled.
    pub when: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullEntry {
    regex: String,
    #[serde(default)]
    when: BTreeMap<String, Vec<String>>,
}

impl<'de> Deserialize<'de> for PatternEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = PatternEntry;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a pattern string, or a map with `regex` and optional `when`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PatternEntry, E> {
                Ok(PatternEntry { regex: v.to_string(), when: BTreeMap::new() })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PatternEntry, A::Error> {
                let full = FullEntry::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PatternEntry { regex: full.regex, when: full.when })
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_entry_forms_parse_with_lines() {
        let yaml = "name: x\ndescription: d\nfailregex:\n  - 'a <HOST>'\n  - regex: 'b <HOST>'\n    when: {mode: [aggressive]}\n";
        let def: FilterDef = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(def.failregex.len(), 2);
        assert_eq!(def.failregex[0].value.regex, "a <HOST>");
        assert_eq!(def.failregex[0].referenced.line(), 4);
        assert_eq!(def.failregex[1].value.when["mode"], vec!["aggressive".to_string()]);
        assert_eq!(def.failregex[1].referenced.line(), 5);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let yaml = "name: x\ndescription: d\nfailregex: []\nfailregexp: []\n";
        let err = serde_saphyr::from_str::<FilterDef>(yaml).unwrap_err().to_string();
        assert!(err.contains("failregexp"), "{err}");
        let yaml = "name: x\ndescription: d\nfailregex:\n  - regex: a\n    wen: {}\n";
        let err = serde_saphyr::from_str::<FilterDef>(yaml).unwrap_err().to_string();
        assert!(err.contains("wen"), "{err}");
    }
}

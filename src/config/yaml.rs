//! The permissive first pass: YAML text to a tree of [`Node`]s that remembers
//! where every key and value sits in the file.
//!
//! serde-saphyr does the parsing (anchors, aliases and merge keys resolved,
//! alias bombs and deep nesting bounded by its budget). Duplicate keys are
//! passed through rather than rejected, so the validator can report each of
//! them alongside every other error instead of stopping at the first.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, DuplicateKeyPolicy, MessageFormatter, NonFiniteFloatPolicy, Spanned};

/// A 1-based line and column in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// One YAML node and where it was written (for an alias: where it was used).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A YAML value with the scalar types resolved by the YAML 1.2 core schema
/// (only `true`/`false` are booleans, so `yes`, `on` and `y` stay strings).
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order, duplicates included.
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax error (or a document beyond the parser's safety budget).
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// A warden config nests about six levels; anything much deeper is not a
/// config, and a low bound keeps the recursive tree walk's stack small.
const MAX_DEPTH: usize = 32;

/// Parses one YAML document. An empty document is [`Value::Null`].
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    let options = serde_saphyr::options! {
        budget: Some(budget),
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        strict_booleans: true,
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|err| {
        let err = err.without_snippet();
        let pos = err
            .location()
            .map(|loc| Pos { line: loc.line(), column: loc.column() })
            .filter(|pos| pos.line > 0)
            // Errors without a position (budget breaches) concern the document
            // as a whole; its first line is the honest place to point at.
            .unwrap_or(Pos { line: 1, column: 1 });
        let message = serde_saphyr::DefaultMessageFormatter.format_message(err);
        let mut message = single_line(message);
        if message.starts_with("budget breached") || message.contains("recursion limit") {
            message = format!(
                "{message}: the document is too large or nested too deeply (a warden config nests a few levels, at most {MAX_DEPTH})"
            );
        }
        SyntaxError { pos, message }
    })
}

/// The parser's messages may quote the input; keep one error on one line.
fn single_line(message: Cow<'_, str>) -> String {
    message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

impl Value {
    /// How a value is named in "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "an empty value".into(),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Int(i) => format!("the number {i}"),
            Value::Float(f) => format!("the number {f}"),
            Value::Str(s) => format!("the string {}", quote(s)),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// The scalar as text, for keys and string-like fields; `None` for
    /// null and collections.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// Quotes user text for a message: backticks, control characters escaped,
/// long text shortened, so each error stays one readable line.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 60;
    let escaped: String = s.escape_debug().collect();
    if escaped.chars().count() > MAX {
        let cut: String = escaped.chars().take(MAX).collect();
        format!("`{cut}…`")
    } else {
        format!("`{escaped}`")
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        let loc = spanned.referenced;
        Ok(Node { value: spanned.value, pos: Pos { line: loc.line(), column: loc.column() } })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i.into()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Int(u.into()))
    }

    fn visit_i128<E>(self, i: i128) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u128<E>(self, u: u128) -> Result<Value, E> {
        // Beyond i128 no config field could accept it anyway; keep the magnitude.
        Ok(i128::try_from(u).map(Value::Int).unwrap_or(Value::Float(u as f64)))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_char<E>(self, c: char) -> Result<Value, E> {
        Ok(Value::Str(c.to_string()))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Value, E> {
        // `!!binary` scalars; a config has no use for them beyond their text.
        Ok(Value::Str(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("expected a map, got {other:?}"),
        }
    }

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let root = parse("a: 1\nb:\n  - x\n  - '10m'\n").unwrap();
        let entries = map(&root);
        assert_eq!(entries[1].0.pos, Pos { line: 2, column: 1 });
        let Value::Seq(items) = &entries[1].1.value else { panic!("b is a list") };
        assert_eq!(items[1].pos, Pos { line: 4, column: 5 });
        assert!(matches!(&items[1].value, Value::Str(s) if s == "10m"));
    }

    #[test]
    fn duplicate_keys_pass_through_for_the_validator() {
        let root = parse("a: 1\na: 2\n").unwrap();
        let entries = map(&root);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].0.pos.line, 2);
    }

    #[test]
    fn only_core_schema_booleans() {
        let root = parse("y: yes\nn: true\n").unwrap();
        let entries = map(&root);
        assert!(matches!(&entries[0].0.value, Value::Str(s) if s == "y"));
        assert!(matches!(&entries[0].1.value, Value::Str(s) if s == "yes"));
        assert!(matches!(entries[1].1.value, Value::Bool(true)));
    }

    #[test]
    fn syntax_errors_have_a_position_and_one_line() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert!(!err.message.contains('\n'));
        let deep = format!("a: {}{}", "[".repeat(200), "]".repeat(200));
        let err = parse(&deep).unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
    }

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote("a\nb"), "`a\\nb`");
        assert!(quote(&"x".repeat(500)).ends_with("…`"));
    }
}

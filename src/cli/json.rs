//! JSON for reports that hold long lists of small records (`test-filter
//! --json` lists every host): indented like serde_json's pretty writer down
//! to a given depth, and every object or array deeper than that on one line.
//! A list of thousands of records then reads one record per line, and
//! writing it costs a fraction of the indentation the pretty writer spends.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// Writes `value` as JSON: containers at depth 1 to `inline_from - 1` (the
/// top level is depth 1) are indented by two spaces per level, those at
/// `inline_from` and deeper are written on one line, as
/// `{"host": "192.0.2.1", "failures": 3}`.
pub fn write_shallow_pretty<W: Write, T: Serialize + ?Sized>(
    out: W,
    value: &T,
    inline_from: usize,
) -> serde_json::Result<()> {
    let formatter = ShallowPretty { depth: 0, inline_from, has_value: false };
    value.serialize(&mut serde_json::Serializer::with_formatter(out, formatter))
}

/// The formatter behind [`write_shallow_pretty`]; its indented part is
/// byte-for-byte what `serde_json::ser::PrettyFormatter` writes.
struct ShallowPretty {
    /// Depth of the innermost open container (0 outside any).
    depth: usize,
    inline_from: usize,
    /// Whether the innermost open container has a value yet.
    has_value: bool,
}

impl ShallowPretty {
    fn inline(&self) -> bool {
        self.depth >= self.inline_from
    }

    fn open<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        let inline = self.inline();
        self.depth -= 1;
        if self.has_value && !inline {
            out.write_all(b"\n")?;
            indent(out, self.depth)?;
        }
        out.write_all(bracket)
    }

    /// Before an array element or an object key.
    fn item<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        if self.inline() {
            return if first { Ok(()) } else { out.write_all(b", ") };
        }
        out.write_all(if first { b"\n" } else { b",\n" })?;
        indent(out, self.depth)
    }
}

fn indent<W: ?Sized + Write>(out: &mut W, depth: usize) -> io::Result<()> {
    (0..depth).try_for_each(|_| out.write_all(b"  "))
}

impl Formatter for ShallowPretty {
    fn begin_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open(out, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.close(out, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.item(out, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open(out, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.close(out, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.item(out, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        out.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn shallow(value: &impl Serialize, inline_from: usize) -> String {
        let mut out = Vec::new();
        write_shallow_pretty(&mut out, value, inline_from).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[derive(Serialize)]
    struct Host {
        host: &'static str,
        failures: u64,
        tags: Vec<&'static str>,
        more: Value,
    }

    #[derive(Serialize)]
    struct Report {
        filter: &'static str,
        empty: Vec<u8>,
        none: Value,
        hosts: Vec<Host>,
        formats: Value,
    }

    fn sample() -> Report {
        let host = |host, failures, tags: &[&'static str]| Host {
            host,
            failures,
            tags: tags.to_vec(),
            more: json!({}),
        };
        Report {
            filter: "sshd",
            empty: Vec::new(),
            none: json!({}),
            hosts: vec![host("192.0.2.1", 3, &["a", "b"]), host("2001:db8::1", 1, &[])],
            formats: json!({"syslog": 2}),
        }
    }

    #[test]
    fn shallow_levels_match_serde_json_pretty_and_deeper_ones_are_one_line() {
        let report = sample();
        // Nothing deep enough to inline: exactly serde_json's pretty output.
        assert_eq!(shallow(&report, usize::MAX), serde_json::to_string_pretty(&report).unwrap());
        let text = shallow(&report, 3);
        let expected = r#"{
  "filter": "sshd",
  "empty": [],
  "none": {},
  "hosts": [
    {"host": "192.0.2.1", "failures": 3, "tags": ["a", "b"], "more": {}},
    {"host": "2001:db8::1", "failures": 1, "tags": [], "more": {}}
  ],
  "formats": {
    "syslog": 2
  }
}"#;
        assert_eq!(text, expected);
        // Whatever the depth, the same document.
        let value = serde_json::to_value(&report).unwrap();
        for depth in 0..5 {
            assert_eq!(serde_json::from_str::<Value>(&shallow(&report, depth)).unwrap(), value);
        }
    }

    #[test]
    fn inlined_from_the_top_is_one_line() {
        let text = shallow(&sample(), 1);
        assert!(text.starts_with("{\"filter\": \"sshd\", \"empty\": [], "), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
}

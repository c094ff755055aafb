//! Tests of the matcher, mostly against regex-automata on the same
//! pattern and input.

use super::header::head_alike;
use super::lower::byte_ranges;
use super::ops::Step;
use super::*;
use regex_automata::meta;
use regex_automata::util::syntax;

#[test]
fn byte_ranges_cover_every_byte_and_no_set_splits_one() {
    // Sets as a pattern's guards have them: classes, single bytes, ranges
    // at word edges (63/64, 127/128, 191/192), everything, nothing.
    let mut sets = Vec::new();
    for (lo, hi) in [(b'0', b'9'), (b'a', b'z'), (63, 64), (127, 128), (191, 192), (0, 255), (255, 255)] {
        let mut set = ByteSet([0; 4]);
        (lo..=hi).for_each(|b| set.insert(b));
        sets.push(set);
    }
    let mut single = ByteSet([0; 4]);
    single.insert(b' ');
    sets.push(single);
    for n in 0..=sets.len() {
        let ranges = byte_ranges(sets[..n].iter());
        assert_eq!(ranges.first().map(|r| r.0), Some(0));
        assert_eq!(ranges.last().map(|r| r.1), Some(255));
        for pair in ranges.windows(2) {
            assert_eq!(usize::from(pair[0].1) + 1, usize::from(pair[1].0), "{ranges:?}");
            // Adjacent ranges are split by some set (else one range would do).
            let (a, b) = (pair[0].1, pair[1].0);
            assert!(sets[..n].iter().any(|s| s.contains(a) != s.contains(b)), "{ranges:?}");
        }
        for &(lo, hi) in &ranges {
            for set in &sets[..n] {
                assert!((lo..=hi).all(|b| set.contains(b) == set.contains(lo)), "{lo}..={hi} split");
            }
        }
    }
    assert_eq!(byte_ranges(std::iter::empty()), vec![(0, 255)]);
}

/// regex-automata on a pattern: the answer the fast matcher must give.
struct Reference {
    re: meta::Regex,
    caps: regex_automata::util::captures::Captures,
}

impl Reference {
    fn new(pattern: &str) -> Reference {
        let re = meta::Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .configure(meta::Config::new().utf8_empty(false))
            .build(pattern)
            .unwrap();
        let caps = re.create_captures();
        Reference { re, caps }
    }

    /// Start and end of each group from 1 (`usize::MAX` for a group
    /// that did not participate); `None` when `hay` does not match.
    fn slots(&mut self, hay: &str) -> Option<Vec<usize>> {
        self.re.search_captures(&regex_automata::Input::new(hay.as_bytes()), &mut self.caps);
        if !self.caps.is_match() {
            return None;
        }
        Some(
            (1..self.re.group_info().group_len(regex_automata::PatternID::ZERO))
                .flat_map(|g| match self.caps.get_group(g) {
                    Some(s) => [s.start, s.end],
                    None => [usize::MAX, usize::MAX],
                })
                .collect(),
        )
    }

    /// Asserts that `prog` (run with `scratch`) finds on `hay` what
    /// regex-automata finds.
    fn check(&mut self, prog: &Program, scratch: &mut Scratch, hay: &str, pattern: &str) {
        let want = self.slots(hay);
        let got = (prog.run(hay.as_bytes(), scratch) == Run::Match).then(|| scratch.slots[2..].to_vec());
        let got = got.map(|mut v| {
            v.truncate(want.as_ref().map_or(v.len(), Vec::len));
            v
        });
        assert_eq!(got, want, "{pattern} on {hay:?}");
    }
}

/// The fast matcher agrees with regex-automata on every one of `hays`
/// (one program and one scratch for them all, in order).
fn same_on(pattern: &str, hays: &[impl AsRef<str>]) {
    let prog = Program::new(pattern).unwrap_or_else(|| panic!("{pattern} not supported"));
    let mut reference = Reference::new(pattern);
    let mut scratch = Scratch::default();
    for hay in hays {
        reference.check(&prog, &mut scratch, hay.as_ref(), pattern);
    }
}

fn same(pattern: &str, hay: &str) {
    same_on(pattern, &[hay]);
}

#[test]
fn agrees_with_regex_automata() {
    let cases = [
        (
            r"^Failed (?:password|none) for (?:invalid user )?(?P<u>.*) from (?P<h>[0-9.]+)(?: port [0-9]+)?$",
            "Failed password for invalid user a from b from 192.0.2.1 port 22",
        ),
        (
            r"^Failed (?:password|none) for (?:invalid user )?(?P<u>.*) from (?P<h>[0-9.]+)(?: port [0-9]+)?$",
            "Failed none for root from 192.0.2.1",
        ),
        (r"^(?:(\S+ )?sshd\[([0-9]+)\]: )?(?:error: )?(.+)$", "host sshd[12]: error: x"),
        (r"^(?:(\S+ )?sshd\[([0-9]+)\]: )?(?:error: )?(.+)$", "sshd x"),
        (r"^a(b*?)(b*)c$", "abbbc"),
        (r"^(?:ab|a)(b?)$", "ab"),
        (r"^(x{2,3}?)(x*)$", "xxxxx"),
        (r"^((?:ab){1,2}?)(.*)$", "ababab"),
        (r"^(?i)FAILED (\w+)$", "failed X"),
        (
            r"^(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?$",
            "::ffff:192.0.2.1",
        ),
        (r"^(a|ab)(c|bcd)(d*)$", "abcd"),
        (r"^x(?:: .*)?(?: \[preauth\])?$", "x: y [preauth]"),
        (r"^(.*)\n?(x*)$", "ab\nxx"),
        (r"^(.+?)(b.*)$", "aabab"),
        (r"^([0-9]+)\]([a-z]*?):$", "12]ab:"),
        (r"^(\S+) (\S*?) x$", "a b x"),
        (r"^(\S+)( )(\S+)$", "a  b"),
        // guards, continuation-based atomic runs, whole-literal seeks
        (r"^([0-9]+)(?: port ([0-9]+))?(?: ssh2)?$", "12 port 34 ssh2"),
        (r"^([0-9]+?)(?: port)?$", "12 port"),
        (r"^(\S+?) x$", "ab x"),
        (r"^(.*) from (\S+)$", "a fro from b from c"),
        (r"^(.*?) from (\S+)$", "a fro from b from c"),
        (r"^(?:ab|ac|a)(c?)d$", "acd"),
        (r"^([a-z]*)(?:[0-9]|[a-z]x)$", "abx"),
        // group saves undone, or not, when backtracking
        (r"^(?:(x)y|x(z))$", "xz"),
        (r"^(?:(a+)b|(a+)c)(.*)$", "aaac"),
        (r"^(.*)(?:(b)x|b(y))$", "abby"),
        (r"^(?:(\S+) )?(\S+) (x)?(.*)$", "a b c"),
        (r"^(?:(\S+) )?(\S+) (x)?(.*)$", "a b x c"),
        (r"^((?:(a)|b)*)c$", "abac"),
        // choices resolved through the next ones the byte decides
        (r"^(?:a: )?(?:b: )?(?:c: )?(x*)(y?)$", "c: xx"),
        (r"^(?:a: )?(?:b: )?(?:c: )?(x*)(y?)$", "y"),
        (r"^(?:a: )?(?:b: )?(?:c: )?(x*)(y?)$", ""),
        (r"^(?:ab|ac|ad|a)(.*)$", "adz"),
        (r"^(?:ab|ac|ad|a)(.*)$", "aez"),
        (r"^(?:(\S+) )?sshd(?:-x|-y)?\[([0-9]+)\]: (?:e: )?(.+)$", "h sshd[1]: e: m"),
        (r"^(?:(\S+) )?sshd(?:-x|-y)?\[([0-9]+)\]: (?:e: )?(.+)$", "sshd-y[1]: m"),
        // required literals (after a `.*`) and start sets
        (r"^R (.*): Auth fail(?: x)?$", "R a: b: Auth fail x"),
        (r"^R (.*): Auth fail(?: x)?$", "R a: b: Auth fai"),
        (r"^(?:[Aa]uth|User) (x+)$", "auth xx"),
        (r"^(?:[Aa]uth|User) (x+)$", "User x"),
        (r"^(?:[Aa]uth|User) (x+)$", "Acc x"),
        (r"^(?:[Aa]uth|User) (x+)$", "Us"),
    ];
    for (p, h) in cases {
        same(p, h);
    }
}

#[test]
fn cached_headers_give_the_same_matches() {
    // Lines in order, then each twice in a row, through one program
    // with a header cache: every answer must be regex-automata's.
    let pattern = r"^(?:(?P<id>(?:\S+ )?sshd(?:-session)?\[[0-9]+\]): )?(?:\[ID [0-9]+ [a-z]+\.[a-z]+\] )?(?:(?:error|fatal): )?(?:PAM: )?(?P<content>.+)$";
    let lines = [
        "h sshd[1]: Failed password",
        "h sshd[1]: Received disconnect",
        "h sshd[1]: error: maximum",
        "h sshd[1]: PAM: x",
        "h sshd[1]: PAM 2 more",
        "h sshd[1]: fatal: y",
        "h sshd[1]: [ID 5 auth.info] z",
        "h sshd[1]: e",
        "h sshd[1]: ",
        "h sshd[1]: x",
        "h sshd[2]: x",
        "h sshd[22]: x",
        "h sshd[23]: y",
        "g sshd[23]: y",
        "gg sshd[23]: y",
        "hg sshd[23]: y",
        "h sshd-session[1]: x",
        "h CRON[3]: x",
        "h CRON[3]: y",
        "sshd[1]: x",
        "h sshd[1]: x\ny",
        "h sshd[1]: x",
    ];
    let mut prog = Program::new(pattern).unwrap();
    assert!(prog.cache_header(2));
    let mut scratch = Scratch::default();
    let mut reference = Reference::new(pattern);
    for hay in lines.iter().chain(lines.iter().flat_map(|l| [l, l])) {
        scratch.newline_free = !hay.contains('\n');
        reference.check(&prog, &mut scratch, hay, pattern);
    }
    assert!(scratch.header.hits > 10, "the cache answered {} lines", scratch.header.hits);
    // The uncopied answer reads as `run`'s slots: a stream answered by
    // `run_or_header` and one by `run` see the same matches.
    let mut copied = Scratch::default();
    let mut uncopied = Scratch::default();
    let mut answered = 0;
    for hay in lines.iter().chain(lines.iter().flat_map(|l| [l, l])) {
        copied.newline_free = !hay.contains('\n');
        uncopied.newline_free = copied.newline_free;
        let want = prog.run(hay.as_bytes(), &mut copied);
        match prog.run_or_header(hay.as_bytes(), &mut uncopied) {
            Answer::Header(found) => {
                answered += 1;
                let got: Vec<usize> = found.slots_on(hay.len()).collect();
                assert_eq!((Run::Match, &got), (want, &copied.slots), "{hay:?}");
            }
            Answer::Ran(run) => {
                assert_eq!(run, want, "{hay:?}");
                if run == Run::Match {
                    assert_eq!(uncopied.slots, copied.slots, "{hay:?}");
                }
            }
        }
    }
    assert_eq!(answered, copied.header.hits, "the same lines were answered from the memo");
    // A program with a run that searches ahead keeps no cache.
    assert!(!Program::new(r"^(.*) x (?P<c>.+)$").unwrap().cache_header(2));
}

#[test]
fn cached_headers_tell_a_fused_fields_separator_from_other_bytes() {
    // The dots of a dotted quad run inside one fused `Fields` step: a
    // header whose dots are other bytes must not be answered from the
    // memo of one with dots.
    let pattern = r"^(?:[0-9]{1,3}\.){3}[0-9]{1,3} (?P<content>.+)$";
    let mut prog = Program::new(pattern).unwrap();
    assert!(prog.cache_header(1));
    let mut scratch = Scratch::default();
    let mut reference = Reference::new(pattern);
    for hay in ["1.2.3.4 x", "1.2.3.4 y", "1x2x3x4 y", "1.2.3.4 z", "1_2_3_4 z"] {
        scratch.newline_free = true;
        reference.check(&prog, &mut scratch, hay, pattern);
    }
    assert!(scratch.header.hits >= 2, "the cache answered {} lines", scratch.header.hits);
}

#[test]
fn choices_look_at_the_next_byte_when_both_branches_can_start() {
    // Branches that share their first byte, told apart by the second, the
    // end of the input, or not at all.
    let patterns = [
        r"^(?: (?:a|i)x (\S+)| u (\S+))? ([0-9]+)(?: p)?$",
        r"^(?:ab|ac)?(a?)$",
        r"^(?:a$|ab)(.*)$",
        r"^(a[0-9]*)?(a[a-z]{2,3})?(.*)$",
        r"^((?:[0-9]{1,3}\.){3}[0-9]{1,3}|(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4})$",
        r"^(?:(x)y|x(z)|x)(.?)$",
    ];
    let hays = [
        "",
        " ",
        " a",
        " ax",
        " ax b 12",
        " ix b 12 p",
        " u c 1",
        " u",
        " 12",
        " 12 p",
        " 1x",
        "a",
        "ab",
        "ac",
        "abc",
        "a1",
        "a12",
        "abcd",
        "a1abc",
        "aab",
        "1.2.3.4",
        "1:2::3",
        "12.3",
        "12:3",
        "x",
        "xy",
        "xz",
        "xq",
        "xyz",
    ];
    for p in patterns {
        same_on(p, &hays);
    }
    // Decided by the second byte: nothing is kept to backtrack into.
    let prog = Program::new(r"^(?: a(x)| b(y))? ([0-9]+)$").unwrap();
    let mut scratch = Scratch::default();
    assert_eq!(prog.run(b" by 12", &mut scratch), Run::Match);
    assert!(scratch.stack.is_empty(), "{:?}", scratch.stack);
    assert_eq!(scratch.slots[4..], [2, 3, 4, 6]);
}

#[test]
fn head_alike_looks_at_every_byte_by_class() {
    // Digits are one class, every other byte a class of its own.
    let classes: [u8; 256] = std::array::from_fn(|b| if (b as u8).is_ascii_digit() { b'0' } else { b as u8 });
    let by_byte = |old: &[u8], head: &[u8]| {
        old.len() == head.len()
            && old.iter().zip(head).all(|(&a, &b)| classes[usize::from(a)] == classes[usize::from(b)])
    };
    for n in 0..=25usize {
        let old: Vec<u8> = (0..n).map(|i| if i % 3 == 0 { b'1' } else { b'a' + i as u8 }).collect();
        assert!(head_alike(&classes, &old, &old), "{n}");
        if let Some(shorter) = old.get(..n.wrapping_sub(1)) {
            assert!(!head_alike(&classes, &old, shorter), "{n}");
        }
        for k in 0..n {
            for (one, two) in [(b'7', b'8'), (b'7', b'x'), (b'x', b'7'), (b'x', b'y')] {
                let mut head = old.clone();
                head[k] = one;
                assert_eq!(head_alike(&classes, &old, &head), by_byte(&old, &head), "{n} {k} {one}");
                // A second change further on, in the same word or the next.
                for j in [k + 1, k + 5, k + 9] {
                    if let Some(b) = head.get_mut(j) {
                        let kept = *b;
                        *b = two;
                        assert_eq!(head_alike(&classes, &old, &head), by_byte(&old, &head), "{n} {k} {j}");
                        head[j] = kept;
                    }
                }
            }
        }
    }
}

#[test]
fn short_bounded_runs_agree_at_every_length_and_line_end() {
    // Runs of at most four bytes take their own path in `extent`.
    let patterns = [
        r"^([0-9]{1,3})(.*)$",
        r"^([0-9]{0,4})([0-9]*)(.*)$",
        r"^a([0-9]{2,4})\.([0-9]{1,3})$",
        r"^([0-9]{1,3}\.){3}([0-9]{1,3})(.*)$",
        r"^(x?)([0-9]{1})(.*)$",
    ];
    let hays = [
        "",
        "1",
        "12",
        "123",
        "1234",
        "12345",
        "12a",
        "1a23",
        "a12.3",
        "a1234.567",
        "a12345.6",
        "1.2.3.4",
        "10.20.30.40x",
        "255.255.255.2555",
        "x9",
        "x99",
    ];
    for p in patterns {
        same_on(p, &hays);
    }
}

#[test]
fn word_at_a_time_spans_agree_at_every_length() {
    // (class, a byte outside it that ends the run, the span's range
    // count or 0 for a table run): each range shape, bytes >= 0x80 in
    // and out, sets listed by their members and by the rest.
    let classes = [
        (r"\S", " ", 2),
        (r"\s", "x", 2),
        (r"[0-9]", "x", 1),
        (r"[a-z_]", "0", 2),
        (r"[0-9A-Fa-f]", "x", 3),
        (r"[^a-z]", "a", 1),
        (r"[^0-9]", "5", 1),
        (r"[a-z\x80-\xff]", "0", 1),
        (r"[\x00-\x7f]", "\u{e9}", 0),
        (r"[a-c\x80-\x9f]", "d", 0),
        (r"[0-9a-fA-F\-_:.]", "x", 0),
    ];
    let fillers = ["a", "7", "_", " ", "\t", "\u{e9}", "Z", "f", "\x7f", "\x01", ":"];
    let tails = ["", "x", " y", "0", "a", "\u{e9}", "5 "];
    let mut hays = vec![String::new()];
    for f in fillers {
        for n in 1..=18 {
            for t in tails {
                hays.push(format!("{}{t}", f.repeat(n)));
            }
        }
    }
    hays.push("ab 12\t\u{e9}x_:7f".repeat(3));
    for (class, stop, ranges) in classes {
        for quant in ["+", "*", "{2,5}", "{0,9}", "{3}", "{1,17}"] {
            let pattern = format!("^({class}{quant})(?:{stop}(.*))?$");
            let prog = Program::new(&pattern).unwrap();
            let shape = prog.ops.iter().find_map(|op| match op {
                Op::Seq(steps, _) => steps.iter().find_map(|s| match s {
                    Step::Span1(_) => Some(1),
                    Step::Span2(_) => Some(2),
                    Step::Span3(_) => Some(3),
                    Step::Run { .. } => Some(0),
                    _ => None,
                }),
                _ => None,
            });
            assert_eq!(shape, Some(ranges), "{pattern}");
            same_on(&pattern, &hays);
        }
    }
}

#[test]
fn fused_fields_agree() {
    let patterns = [
        r"^((?:[0-9]{1,3}\.){3}[0-9]{1,3})(?: (.*))?$",
        r"^x((?:[0-9]{1,3}\.){3}[0-9]{1,3})$",
        r"^([a-z]+:[a-z]+:[a-z]+)(?:=(.*))?$",
        // the third run differs: only the first two fuse
        r"^([0-9]{1,3}\.[0-9]{1,3}\.)([0-9]+)$",
        r"^([0-9]{1,3}\.[0-9]{1,3})\.([0-9]{0,2})$",
    ];
    let fused =
        |p: &str| {
            Program::new(p).unwrap().ops.iter().any(
                |op| matches!(op, Op::Seq(steps, _) if steps.iter().any(|s| matches!(s, Step::Fields(_)))),
            )
        };
    assert!(patterns.iter().all(|p| fused(p)));
    let hays = [
        "",
        "1.2.3.4",
        "255.255.255.255",
        "1234.1.1.1",
        "1.2.3",
        "1.2.3.",
        "1..2.3",
        "1.2.3.4567",
        "12.34.56.78 x",
        "12.34.56.78x",
        "x1.2.3.4",
        "x203.0.113.255",
        "x1.2.3.4.",
        "1.22.",
        "1.22.333",
        "1.22.33",
        "ab:cd:ef",
        "ab:cd:ef=1",
        "ab:cd:",
        "ab::ef",
        "abcdefghijk:l:mnopqrstuvwxyz=q",
        "\u{e9}.1.2.3",
        "1.2.3.\u{e9}",
    ];
    for p in patterns {
        same_on(p, &hays);
    }
}

#[test]
fn unsupported_patterns_are_refused() {
    assert!(Program::new(r"unanchored").is_none());
    assert!(Program::new(r"^a\b").is_none());
    assert!(Program::new(r"^(?:a*)*$").is_none());
    assert!(Program::new(r"^(?u:\w)").is_none());
}

#[test]
fn budget_stops_exponential_backtracking() {
    let prog = Program::new(r"^(?:a|aa)*b$").unwrap();
    assert_eq!(prog.run(&[b'a'; 60], &mut Scratch::default()), Run::GaveUp);
    assert_eq!(prog.run(b"c", &mut Scratch::default()), Run::NoMatch);
}

#[test]
fn start_sets_and_required_literals_are_found() {
    let p = Program::new(r"^(?:[Aa]uth|User) (x+)$").unwrap();
    let sets: Vec<Vec<u8>> =
        p.starts.iter().map(|s| (0..=255u8).filter(|&b| s.contains(b)).collect()).collect();
    assert_eq!(sets, [b"AUa".to_vec(), b"su".to_vec(), b"et".to_vec(), b"hr".to_vec()]);
    // A run of variable length ends what is known; a literal start is
    // the lead's business.
    assert!(Program::new(r"^[a-z]+x").unwrap().starts.is_empty());
    assert!(Program::new(r"^abc").unwrap().starts.is_empty());
    let needle = |p: &str| Program::new(p).unwrap().required.map(|f| f.needle().to_vec());
    assert_eq!(needle(r"^R (.*) x (y): Auth fail$"), Some(b": Auth fail".to_vec()));
    assert_eq!(needle(r"^R (.*) from x$"), None, "too short to be worth a search");
    assert_eq!(needle(r"^R : Auth fail (.*)$"), None, "only after a `.*`");
    assert_eq!(needle(r"^R [a-z]+ : Auth fail$"), None, "only after a `.*`");
    assert_eq!(needle(r"^R (.*)(?:: Auth fail)?$"), None, "only required ones");
    assert_eq!(needle(r"^R (x(.*)(: Auth fail))$"), Some(b": Auth fail".to_vec()), "groups opened");
}

#[test]
fn first_bytes_follow_optional_parts() {
    let p = Program::new(r"^(?:error: )?(?:x|y+)z").unwrap();
    let set = p.first_bytes().unwrap();
    assert!(set.contains(b'e') && set.contains(b'x') && set.contains(b'y') && !set.contains(b'z'));
    assert!(Program::new(r"^a*$").unwrap().first_bytes().is_none());
}

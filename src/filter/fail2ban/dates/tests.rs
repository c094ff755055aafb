//! Date templates: which text is the date, what instant it names, and the
//! detector's choice between templates.

use super::*;

fn ts(s: &str) -> Timestamp {
    Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

/// fail2ban's test clock: 2005-08-14 12:00 CEST.
fn now() -> Timestamp {
    Timestamp::from_secs(1_124_013_600)
}

fn cet() -> TimeZone {
    TimeZone::posix("CET-1CEST-2,M3.5.0,M10.5.0").unwrap()
}

/// (date text, instant) found in `line` by a fresh detector.
fn find(pattern: Option<&str>, line: &str) -> Option<(String, Option<Timestamp>)> {
    let d = DateDetector::new(pattern, 2026).unwrap_or_else(|e| panic!("{e}"));
    let tz = cet();
    let hit =
        d.find(line, &mut DateState::default(), Clock { now: now(), tz: Some(&tz), civil_now: None })?;
    Some((line[hit.start..hit.end].to_string(), hit.time))
}

#[test]
fn default_templates_find_common_dates() {
    let cases = [
        ("Aug 14 11:59:58 host sshd[1]: x", "Aug 14 11:59:58", "2005-08-14T09:59:58Z"),
        ("2005-08-13 10:00:00 +0000 x", "2005-08-13 10:00:00 +0000", "2005-08-13T10:00:00Z"),
        ("[Sun Aug 14 11:59:58.123 2005] [error] x", "Sun Aug 14 11:59:58.123 2005", "2005-08-14T09:59:58Z"),
        ("1124013500 rest", "1124013500", "2005-08-14T09:58:20Z"),
        (
            "192.0.2.1 - - [14/Aug/2005:11:59:58 +0200] \"GET /\"",
            "14/Aug/2005:11:59:58 +0200",
            "2005-08-14T09:59:58Z",
        ),
        ("@4000000042ff1f6422222222 x", "@4000000042ff1f6422222222", "2005-08-14T10:39:32Z"),
    ];
    for (line, text, instant) in cases {
        let (found, time) = find(None, line).unwrap_or_else(|| panic!("no date in {line}"));
        assert_eq!((found.as_str(), time), (text, Some(ts(instant))), "{line}");
    }
    assert_eq!(find(None, "no date here"), None);
}

#[test]
fn line_begin_only_and_own_patterns() {
    // `{^LN-BEG}`: only dates that open the line (after at most two
    // non-word characters).
    assert!(find(Some("{^LN-BEG}"), "[Aug 14 11:59:58] x").is_some());
    assert_eq!(find(Some("{^LN-BEG}"), "host x Aug 14 11:59:58 y"), None);
    // A strptime pattern (the `%%` of a .conf file is a `%` by here);
    // %ExY takes 2000..=2029 when it is 2026.
    let (text, time) = find(Some("^%ExY/%m/%d %H:%M:%S"), "2005/08/13 01:02:03 x").unwrap();
    assert_eq!((text.as_str(), time), ("2005/08/13 01:02:03", Some(ts("2005-08-12T23:02:03Z"))));
    assert_eq!(find(Some("^%ExY/%m/%d"), "1999/08/13 x"), None);
    // `%%` is a literal percent sign.
    let (text, _) = find(Some("^%%%ExY-%m-%d"), "%2005-08-13 x").unwrap();
    assert_eq!(text, "%2005-08-13");
    // An explicit group is the date; the rest of the match stays in the line.
    let (text, time) = find(Some(r"^[^\[]*\[({DATE})"), "pid 7 [2005-08-13 10:00:00] x").unwrap();
    assert_eq!((text.as_str(), time), ("2005-08-13 10:00:00", Some(ts("2005-08-13T08:00:00Z"))));
    // EPOCH, LEPOCH and TAI64N by name.
    assert_eq!(find(Some("EPOCH"), "1124013500.500 x").unwrap().1, Some(ts("2005-08-14T09:58:20.500Z")));
    assert_eq!(find(Some("LEPOCH"), "1124013500123 x").unwrap().1, Some(ts("2005-08-14T09:58:20.123Z")));
    assert!(find(Some("{^LN-BEG}TAI64N"), "@4000000042ff1f6422222222 x").is_some());
    // {NONE}: an empty date; the engine then uses the last one (or now).
    assert_eq!(find(Some("{NONE}"), "Aug 14 11:59:58 x"), Some((String::new(), None)));
    let err = DateDetector::new(Some("%Q"), 2026).unwrap_err().to_string();
    assert!(err.contains("%Q"), "{err}");
}

#[test]
fn word_boundaries_and_their_markers() {
    // Word boundaries by default: a time inside a longer number is no date.
    assert_eq!(find(Some("%H:%M:%S"), "x 112:00:00 y"), None);
    assert!(find(Some("%H:%M:%S"), "x 12:00:00 y").is_some());
    // `**` drops the boundary on its side.
    assert!(find(Some("**%H:%M:%S"), "x112:00:00 y").is_some());
}

#[test]
fn strptime_fills_in_what_the_date_lacks() {
    let tz = cet();
    let clock = Clock { now: now(), tz: Some(&tz), civil_now: None };
    let t = |fields: &[(&str, &str)]| strptime(fields, clock);
    // No year: this year, unless that is more than a day ahead.
    assert_eq!(t(&[("b", "Aug"), ("d", "15"), ("H", "11")]), Some(ts("2005-08-15T09:00:00Z")));
    assert_eq!(t(&[("b", "aug"), ("d", "16"), ("H", "11")]), Some(ts("2004-08-16T09:00:00Z")));
    // No day: today, or yesterday when that would be ahead of now.
    assert_eq!(t(&[("H", "11")]), Some(ts("2005-08-14T09:00:00Z")));
    assert_eq!(t(&[("H", "13")]), Some(ts("2005-08-13T11:00:00Z")));
    // Offsets and zone names win over the local zone.
    assert_eq!(t(&[("Y", "2005"), ("m", "8"), ("d", "1"), ("z", "+0130")]), Some(ts("2005-07-31T22:30:00Z")));
    assert_eq!(t(&[("Y", "2005"), ("m", "8"), ("d", "1"), ("Z", "PDT")]), Some(ts("2005-08-01T07:00:00Z")));
    assert_eq!(t(&[("Y", "2005"), ("m", "8"), ("d", "1"), ("z", "UTC")]), Some(ts("2005-08-01T00:00:00Z")));
    // 12-hour clock, two-digit years, invalid dates.
    assert_eq!(
        t(&[("y", "05"), ("m", "1"), ("d", "2"), ("I", "12"), ("p", "AM")]),
        Some(ts("2005-01-01T23:00:00Z"))
    );
    assert_eq!(
        t(&[("Y", "2005"), ("m", "1"), ("d", "2"), ("I", "1"), ("p", "pm")]),
        Some(ts("2005-01-02T12:00:00Z"))
    );
    assert_eq!(t(&[("Y", "2005"), ("m", "2"), ("d", "30")]), None);
}

#[test]
fn the_last_template_is_tried_first() {
    let d = DateDetector::new(None, 2026).unwrap();
    let tz = cet();
    let clock = Clock { now: now(), tz: Some(&tz), civil_now: None };
    let mut state = DateState::default();
    let first = d.find("Aug 14 11:59:58 a", &mut state, clock).unwrap();
    let second = d.find("Aug 14 11:59:59 b", &mut state, clock).unwrap();
    assert_eq!(first.template, second.template);
    // A line in another format still finds its date.
    let other = d.find("2005-08-14 11:59:59 c", &mut state, clock).unwrap();
    assert_ne!(other.template, first.template);
    assert_eq!(other.time, Some(ts("2005-08-14T09:59:59Z")));
}

#[test]
fn year_bounds() {
    assert_eq!(year_prefixes(2026), "20[0-2]");
    assert_eq!(year_prefixes(2005), "200");
    assert_eq!(year_prefixes(2097), "(?:20[0-9]|210)");
}

//! Docker's log timestamps: parsing the RFC 3339 prefix Docker puts on every
//! log message when asked for `timestamps=true`, and formatting the `since`
//! query parameter.
//!
//! Docker writes `2006-01-02T15:04:05.000000000Z` (Go's `RFC3339NanoFixed`,
//! in UTC for the json-file and local drivers) and may write a numeric offset
//! instead of `Z` (the journald reader uses local time). Parsing is on the
//! hot path of every line, so it is a hand-written fixed-layout reader rather
//! than a general date parser.

/// Nanoseconds since the Unix epoch; `i64` reaches the year 2262.
pub type Nanos = i64;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Parses an RFC 3339 timestamp with optional fraction (up to 9 digits) and
/// a `Z` or `±hh:mm` offset. Returns `None` for anything else.
pub fn parse_rfc3339_nanos(s: &[u8]) -> Option<Nanos> {
    // "YYYY-MM-DDTHH:MM:SS" is 19 bytes, and a zone designator follows.
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || (s[10] != b'T' && s[10] != b't') {
        return None;
    }
    if s[13] != b':' || s[16] != b':' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        nanos = digits(&fraction[..len])? * 10i64.pow(9 - len as u32);
        rest = &fraction[len..];
    }
    let offset_secs = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

/// The value of Docker's `since` parameter for `t`: `seconds.nanoseconds`,
/// which Docker reads without losing precision.
pub fn format_since(t: Nanos) -> String {
    let t = t.max(0);
    format!("{}.{:09}", t / NANOS_PER_SEC, t % NANOS_PER_SEC)
}

/// Milliseconds (the unit of [`crate::core::Timestamp`]) of `t`, rounded down.
pub fn nanos_to_millis(t: Nanos) -> i64 {
    t.div_euclid(1_000_000)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0')))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jiff_nanos(s: &str) -> i64 {
        let ts: jiff::Timestamp = s.parse().unwrap();
        i64::try_from(ts.as_nanosecond()).unwrap()
    }

    #[test]
    fn parses_what_docker_writes_like_a_general_parser_does() {
        for s in [
            "2026-11-21T16:58:26.642569477Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.5Z",
            "2024-12-31T23:59:59.999999999Z",
            "2026-03-01T00:00:00.000001+02:00",
            "2026-03-01T00:00:00.123-05:30",
            "1969-12-31T23:59:59.25Z",
        ] {
            assert_eq!(parse_rfc3339_nanos(s.as_bytes()), Some(jiff_nanos(s)), "{s}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for s in [
            "",
            "Error grabbing logs: file closed",
            "2026-11-21T16:58:26.642569477",
            "2026-11-21T16:58:26.Z",
            "2026-11-21T16:58:26.1234567890Z",
            "2026-13-21T16:58:26Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21 16:58:26Z",
            "2026-11-21T16:58:26+0200",
            "2026-11-21T16:58:26Zjunk",
            "２026-11-21T16:58:26Z",
        ] {
            assert_eq!(parse_rfc3339_nanos(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn since_keeps_nanoseconds_and_round_trips_through_docker_format() {
        let t = jiff_nanos("2026-11-21T16:58:26.000000042Z");
        let since = format_since(t);
        assert!(since.ends_with(".000000042"), "{since}");
        let (secs, nanos) = since.split_once('.').unwrap();
        assert_eq!(secs.parse::<i64>().unwrap() * NANOS_PER_SEC + nanos.parse::<i64>().unwrap(), t);
        assert_eq!(format_since(-5), "0.000000000");
        assert_eq!(nanos_to_millis(1_999_999), 1);
        assert_eq!(nanos_to_millis(-1), -1);
    }
}

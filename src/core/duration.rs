//! Human durations (`90s`, `10m`, `1h30m`, `1w`, `1y`) and ban times, which may
//! also be permanent (`permanent`, or any negative number as in fail2ban).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a duration string was rejected. The message says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason}; expected a number with a unit s, m, h, d, w or y (like 90s, 10m, 1h30m, 1w), or plain seconds"
)]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

const UNITS: &[(&str, u64)] =
    &[("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 7 * 86_400), ("y", 365 * 86_400)];

/// Parses a non-negative duration. A bare number is seconds, as in fail2ban.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.to_string(), reason };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err(if rest.starts_with('-') {
                "it is negative"
            } else {
                "a unit must follow a number"
            }));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err("the number is too large"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        let mult = UNITS.iter().find(|(u, _)| *u == unit).map(|(_, m)| *m).ok_or_else(|| {
            err(if unit.is_empty() { "a number is missing its unit" } else { "unknown unit" })
        })?;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("the duration is too large"))?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// Renders a duration compactly, largest units first (`1w2d`, `10m`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, mult) in UNITS.iter().rev() {
        if secs >= *mult {
            out.push_str(&format!("{}{}", secs / mult, unit));
            secs %= mult;
        }
    }
    out
}

/// How long a ban lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanTime {
    Finite(Duration),
    Permanent,
}

impl BanTime {
    /// Parses `permanent`, a negative number (fail2ban's spelling of forever),
    /// or a [`parse_duration`] string.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let s = input.trim();
        if s.eq_ignore_ascii_case("permanent") || s.eq_ignore_ascii_case("forever") {
            return Ok(BanTime::Permanent);
        }
        if let Some(rest) = s.strip_prefix('-') {
            // Any negative duration means forever; the magnitude must still parse.
            parse_duration(rest)?;
            return Ok(BanTime::Permanent);
        }
        parse_duration(s).map(BanTime::Finite)
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, BanTime::Permanent)
    }
}

impl fmt::Display for BanTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanTime::Finite(d) => f.write_str(&format_duration(*d)),
            BanTime::Permanent => f.write_str("permanent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        let cases = [
            ("600", 600),
            ("90s", 90),
            ("10m", 600),
            ("1h", 3600),
            ("1h30m", 5400),
            ("1d", 86_400),
            ("1w", 604_800),
            ("1y", 31_536_000),
            (" 2h 5m ", 7500),
        ];
        for (input, secs) in cases {
            assert_eq!(parse_duration(input).unwrap(), Duration::from_secs(secs), "{input}");
        }
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in ["", "m", "10x", "1h-", "-5m", "abc", "99999999999999999999y", "5 "] {
            if bad == "5 " {
                assert!(parse_duration(bad).is_ok());
                continue;
            }
            let e = parse_duration(bad).unwrap_err();
            assert!(e.to_string().contains("expected a number with a unit"), "{e}");
        }
    }

    #[test]
    fn bantime_permanent_spellings() {
        assert_eq!(BanTime::parse("permanent").unwrap(), BanTime::Permanent);
        assert_eq!(BanTime::parse("-1").unwrap(), BanTime::Permanent);
        assert_eq!(BanTime::parse("-1d").unwrap(), BanTime::Permanent);
        assert_eq!(BanTime::parse("1w").unwrap(), BanTime::Finite(Duration::from_secs(604_800)));
        assert!(BanTime::parse("-x").is_err());
    }

    #[test]
    fn format_round_trips() {
        for secs in [0u64, 59, 60, 3600, 5400, 694_861, 31_536_000] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}

//! Where a container's log stream stands, and how a resumed stream drops
//! the lines it repeats.
//!
//! Docker can only resume a log stream by time (`since`, inclusive), and
//! several lines may carry the same timestamp (all pieces of a line Docker
//! split at 16 KiB do, and the journald driver has microsecond resolution).
//! So a [`Position`] is the newest timestamp processed plus how many lines
//! with exactly that timestamp were processed. Resuming with
//! `since = time` replays, in the original order, every line at or after
//! `time`; the processed lines with that timestamp come first among them, so
//! skipping that many ([`Replay`]) leaves exactly the unprocessed ones. Lines
//! older than `time` that Docker wrote *after* the newest one (stdout and
//! stderr race by microseconds) cannot be asked for again; that is Docker's
//! resolution, not a loss this module adds.
//!
//! The stored form is text, `<nanoseconds>:<count>`, so a dump of the store
//! stays readable.

use std::fmt;

use super::timestamp::Nanos;

/// The newest line timestamp processed, and how many lines carrying exactly
/// that timestamp were processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub time: Nanos,
    pub at_time: u32,
}

impl Position {
    /// The position after the first line, at `time`.
    pub fn first(time: Nanos) -> Position {
        Position { time, at_time: 1 }
    }

    /// Accounts for one more processed line at `time`.
    pub fn advance(&mut self, time: Nanos) {
        if time > self.time {
            *self = Position::first(time);
        } else if time == self.time {
            self.at_time = self.at_time.saturating_add(1);
        }
        // An older line (stdout/stderr race) leaves the position alone: a
        // stream resumed at `self.time` does not replay it.
    }

    /// The cursor value stored for this position.
    pub fn encode(&self) -> Vec<u8> {
        format!("{}:{}", self.time, self.at_time).into_bytes()
    }

    /// Reads a stored cursor value.
    pub fn decode(value: &[u8]) -> Result<Position, CursorError> {
        let bad = || CursorError { value: String::from_utf8_lossy(value).into_owned() };
        let text = std::str::from_utf8(value).map_err(|_| bad())?;
        let (time, count) = text.split_once(':').ok_or_else(bad)?;
        Ok(Position { time: time.parse().map_err(|_| bad())?, at_time: count.parse().map_err(|_| bad())? })
    }
}

/// A stored cursor that is not `<nanoseconds>:<count>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable Docker cursor {value:?}: expected <nanoseconds>:<count>")]
pub struct CursorError {
    pub value: String,
}

/// Decides which lines of a (re)opened stream are new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// Lines older than this are not wanted; `None` reads everything.
    since: Option<Nanos>,
    /// Lines at exactly `since` still to drop as already processed.
    skip: u32,
}

impl Replay {
    /// Resumes after `position`.
    pub fn after(position: Position) -> Replay {
        Replay { since: Some(position.time), skip: position.at_time }
    }

    /// Reads lines from `time` on (nothing to skip).
    pub fn from_time(time: Nanos) -> Replay {
        Replay { since: Some(time), skip: 0 }
    }

    /// Reads the whole log.
    pub fn from_start() -> Replay {
        Replay { since: None, skip: 0 }
    }

    /// The `since` to ask Docker for.
    pub fn since(&self) -> Option<Nanos> {
        self.since
    }

    /// Whether a line at `time` is new; call once per line, in stream order.
    pub fn admit(&mut self, time: Nanos) -> bool {
        let Some(since) = self.since else { return true };
        if time < since {
            return false;
        }
        if time == since && self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = super::timestamp::nanos_to_millis(self.time);
        write!(f, "{} (+{} at that instant)", crate::core::Timestamp(millis).to_rfc3339(), self.at_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes() {
        let p = Position { time: 1_795_366_706_642_569_477, at_time: 3 };
        assert_eq!(p.encode(), b"1795366706642569477:3");
        assert_eq!(Position::decode(&p.encode()), Ok(p));
        for bad in [&b""[..], b"12", b"x:1", b"1:-1", b"\xff:1", b"1:2:3"] {
            let err = Position::decode(bad).unwrap_err();
            assert!(err.to_string().contains("expected <nanoseconds>:<count>"), "{err}");
        }
    }

    /// Simulates a stream of line timestamps, stops after `processed` lines,
    /// resumes as Docker would (every line at or after `since`, in order) and
    /// checks that exactly the unprocessed lines come through.
    fn resume_after(times: &[Nanos], processed: usize) -> Vec<usize> {
        let mut position: Option<Position> = None;
        for &t in &times[..processed] {
            match &mut position {
                Some(p) => p.advance(t),
                None => position = Some(Position::first(t)),
            }
        }
        let mut replay = position.map_or_else(Replay::from_start, Replay::after);
        let since = replay.since();
        let replayed = (0..times.len()).filter(|&i| since.is_none_or(|s| times[i] >= s));
        replayed.filter(|&i| replay.admit(times[i])).collect()
    }

    #[test]
    fn resuming_repeats_nothing_and_misses_nothing_with_equal_timestamps() {
        let times = [10, 20, 20, 20, 30, 30, 40];
        for processed in 0..=times.len() {
            let expected: Vec<usize> = (processed..times.len()).collect();
            assert_eq!(resume_after(&times, processed), expected, "after {processed} lines");
        }
    }

    #[test]
    fn an_older_line_after_a_newer_one_is_not_counted_at_the_newer_time() {
        // stderr's line at 25 arrives after stdout's at 30.
        let times = [10, 30, 25, 30, 40];
        assert_eq!(resume_after(&times, 3), vec![3, 4]);
        assert_eq!(resume_after(&times, 4), vec![4]);
    }

    #[test]
    fn replay_from_time_drops_only_older_lines() {
        let mut replay = Replay::from_time(20);
        assert_eq!([10, 20, 20, 30].map(|t| replay.admit(t)), [false, true, true, true]);
        let mut all = Replay::from_start();
        assert!(all.admit(i64::MIN));
    }
}

//! What travels through Redis: the key names, the entry format and stream ids.
//!
//! Every key sits under the `{w}` hash tag, so on Redis Cluster they share a
//! slot and a MULTI may touch several of them:
//!
//! | key | type | written by |
//! |---|---|---|
//! | `warden:{w}:ev:<host>` | stream of entries, trimmed by age | `<host>` |
//! | `warden:{w}:bans:<host>` | hash `<net> <jail>` → entry: `<host>`'s active bans | `<host>` |
//! | `warden:{w}:exp:<host>` | sorted set, field → `until` (ms): expiry index of that hash | `<host>` |
//! | `warden:{w}:host:<host>` | hash: `<host>`'s addresses, so peers never ban them | `<host>` |
//! | `warden:{w}:hosts` | set of host ids, so hosts find each other | every host (`SADD` itself) |
//! | `warden:{w}:ctl` | stream of cluster-wide unbans (tombstones) | admins |
//! | `warden:{w}:epoch` | string set with `SET NX`: changes when Redis lost its data | first to see it missing |
//!
//! An entry is one JSON object, the value of field `e` in a stream entry and
//! the value of a hash field:
//! `{"v":1,"origin":"mx1","seq":42,"op":"ban","net":"203.0.113.7/32","jail":"sshd","at":…,"until":…,"reason":"jail"}`
//! with `at` and `until` in milliseconds since the epoch (`until` null for a
//! permanent ban). `seq` is the origin's own counter, persisted before the
//! entry is published, so `(origin, seq)` names an entry for good.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::core::{Timestamp, parse_ip_or_net};

/// The version of the entry format this build writes and reads.
pub const ENTRY_VERSION: u32 = 1;
/// The stream field holding an entry.
pub const ENTRY_FIELD: &str = "e";
/// The jail of a tombstone: it lifts the bans of every jail.
pub const ANY_JAIL: &str = "*";
/// Longest jail name and reason accepted from another host.
const MAX_JAIL_LEN: usize = 64;
const MAX_REASON_LEN: usize = 256;
const MAX_ORIGIN_LEN: usize = 64;

/// Redis key names.
pub mod keys {
    /// The common prefix; `{w}` is the hash tag.
    pub const PREFIX: &str = "warden:{w}:";
    pub const CONTROL: &str = "warden:{w}:ctl";
    pub const EPOCH: &str = "warden:{w}:epoch";
    pub const HOSTS: &str = "warden:{w}:hosts";

    pub fn stream(host: &str) -> String {
        format!("{PREFIX}ev:{host}")
    }

    pub fn bans(host: &str) -> String {
        format!("{PREFIX}bans:{host}")
    }

    pub fn expiry(host: &str) -> String {
        format!("{PREFIX}exp:{host}")
    }

    pub fn host(host: &str) -> String {
        format!("{PREFIX}host:{host}")
    }
}

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Ban,
    /// On an origin's stream: the origin lifted its own ban. On the control
    /// stream: a tombstone, lifting every host's bans decided before `at`.
    Unban,
}

/// One replicated decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub v: u32,
    pub origin: String,
    pub seq: u64,
    pub op: Op,
    #[serde(with = "net_text")]
    pub net: IpNet,
    pub jail: String,
    pub at: Timestamp,
    pub until: Option<Timestamp>,
    #[serde(default)]
    pub reason: String,
}

/// Why an entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("not a warden entry: {0}")]
    Malformed(String),
    #[error("entry version {0} is newer than this warden understands ({ENTRY_VERSION}); upgrade it")]
    Newer(u32),
    #[error("entry field {field} is invalid: {detail}")]
    Invalid { field: &'static str, detail: String },
}

impl Entry {
    /// The JSON text stored in Redis.
    pub fn encode(&self) -> String {
        // Strings, numbers and an enum with string tags: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads and checks an entry from Redis (written by any host, so
    /// untrusted): a known version, a canonical network, bounded strings.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        let mut entry: Entry =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if entry.v > ENTRY_VERSION {
            return Err(EntryError::Newer(entry.v));
        }
        if entry.v == 0 {
            return Err(EntryError::Invalid { field: "v", detail: "0".into() });
        }
        let invalid = |field, detail: String| Err(EntryError::Invalid { field, detail });
        if entry.origin.is_empty() || entry.origin.len() > MAX_ORIGIN_LEN {
            return invalid("origin", format!("{} bytes", entry.origin.len()));
        }
        if entry.jail.is_empty()
            || entry.jail.len() > MAX_JAIL_LEN
            || entry.jail.chars().any(char::is_control)
        {
            return invalid("jail", format!("{:?}", entry.jail));
        }
        if entry.reason.len() > MAX_REASON_LEN {
            let mut end = MAX_REASON_LEN;
            while !entry.reason.is_char_boundary(end) {
                end -= 1;
            }
            entry.reason.truncate(end);
        }
        if entry.until.is_some_and(|until| until < entry.at) {
            return invalid("until", "before `at`".into());
        }
        Ok(entry)
    }

    /// The entry's field in its origin's bans hash: one per network and jail.
    pub fn field(&self) -> String {
        format!("{} {}", self.net, self.jail)
    }

    /// Whether the ban still holds at `now` (an unban never does).
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.op == Op::Ban && self.until.is_none_or(|until| until > now)
    }
}

/// Networks travel as text (`203.0.113.7/32`), normalised on the way in.
mod net_text {
    use super::*;

    pub fn serialize<S: serde::Serializer>(net: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_ip_or_net(&text).map_err(serde::de::Error::custom)
    }
}

/// A stream entry id, `<ms>-<seq>`; ids only grow within a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// `0-0`: before every entry.
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    /// When Redis added the entry (its clock), for lag.
    pub fn time(self) -> Timestamp {
        Timestamp(i64::try_from(self.ms).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for StreamId {
    type Err = EntryError;

    fn from_str(s: &str) -> Result<StreamId, EntryError> {
        let invalid = || EntryError::Invalid { field: "id", detail: format!("{s:?} is not a stream id") };
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Ok(StreamId { ms: ms.parse().map_err(|_| invalid())?, seq: seq.parse().map_err(|_| invalid())? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            v: 1,
            origin: "mx1".into(),
            seq: 42,
            op: Op::Ban,
            net: "203.0.113.7/32".parse().unwrap(),
            jail: "sshd".into(),
            at: Timestamp(1_000),
            until: Some(Timestamp(61_000)),
            reason: "jail".into(),
        }
    }

    #[test]
    fn entries_have_the_documented_shape_and_round_trip() {
        let text = entry().encode();
        assert_eq!(
            text,
            r#"{"v":1,"origin":"mx1","seq":42,"op":"ban","net":"203.0.113.7/32","jail":"sshd","at":1000,"until":61000,"reason":"jail"}"#
        );
        assert_eq!(Entry::decode(text.as_bytes()).unwrap(), entry());
        assert_eq!(entry().field(), "203.0.113.7/32 sshd");
        let permanent = Entry { until: None, op: Op::Unban, ..entry() };
        assert!(
            permanent.encode().contains(r#""op":"unban""#) && permanent.encode().contains(r#""until":null"#)
        );
    }

    #[test]
    fn untrusted_entries_are_checked_and_normalised() {
        let with = |field: &str, value: &str| {
            let mut json: serde_json::Value = serde_json::from_str(&entry().encode()).unwrap();
            json[field] = serde_json::from_str(value).unwrap();
            Entry::decode(json.to_string().as_bytes())
        };
        assert_eq!(with("net", r#""::ffff:203.0.113.9""#).unwrap().net.to_string(), "203.0.113.9/32");
        assert_eq!(with("net", r#""198.51.100.77/24""#).unwrap().net.to_string(), "198.51.100.0/24");
        assert!(matches!(with("v", "2"), Err(EntryError::Newer(2))));
        assert!(matches!(with("net", r#""banana""#), Err(EntryError::Malformed(_))));
        assert!(matches!(with("op", r#""explode""#), Err(EntryError::Malformed(_))));
        assert!(matches!(with("jail", r#""""#), Err(EntryError::Invalid { field: "jail", .. })));
        assert!(matches!(with("origin", &format!("{:?}", "x".repeat(65))), Err(EntryError::Invalid { .. })));
        assert!(matches!(with("until", "10"), Err(EntryError::Invalid { field: "until", .. })));
        assert_eq!(with("reason", &format!("{:?}", "é".repeat(200))).unwrap().reason.len(), 256);
        assert!(Entry::decode(b"not json").is_err());
        // Fields a newer version of format 1 may add are ignored.
        assert!(with("extra", "1").is_ok());
    }

    #[test]
    fn stream_ids_parse_order_and_print() {
        let a: StreamId = "1700000000000-3".parse().unwrap();
        assert_eq!(a, StreamId { ms: 1_700_000_000_000, seq: 3 });
        assert_eq!(a.to_string(), "1700000000000-3");
        assert!(a < "1700000000000-4".parse().unwrap() && a > "1699999999999-99".parse().unwrap());
        assert_eq!("5".parse::<StreamId>().unwrap(), StreamId { ms: 5, seq: 0 });
        assert!("x-1".parse::<StreamId>().is_err());
        assert_eq!(keys::stream("mx1"), "warden:{w}:ev:mx1");
        assert_eq!(keys::bans("mx1"), "warden:{w}:bans:mx1");
    }
}

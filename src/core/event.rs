//! The values that flow through warden: a [`LogLine`] from a source, a
//! [`Failure`] found in it by a filter, and a [`Ban`] decided by a jail, the
//! CLI or another host.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// Where a log line came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SourceRef {
    Docker {
        container_id: String,
        container_name: String,
    },
    Journald {
        unit: Option<String>,
        tag: Option<String>,
    },
    File {
        path: PathBuf,
    },
    /// Standard input, for `warden test-filter -`.
    Stdin,
}

/// One line of log text, as read by a source.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub source: SourceRef,
    /// The jails this line feeds.
    pub jails: Arc<[Arc<str>]>,
    /// The source's own timestamp (Docker, journald); it wins over a date
    /// parsed from the text.
    pub time: Option<Timestamp>,
    pub text: String,
}

/// A failed attempt from `addr`, found by a jail's filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub jail: Arc<str>,
    pub addr: IpAddr,
    pub time: Timestamp,
    pub user: Option<String>,
}

/// Who decided a ban. Kept with the ban so replication and the CLI can tell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BanOrigin {
    /// A jail's failure window filled up.
    Jail,
    /// An operator, through the CLI.
    Manual,
    /// Another warden host, through replication.
    Remote { host: String },
}

/// A ban decision. `until == None` means permanent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub net: IpNet,
    pub jail: String,
    pub origin: BanOrigin,
    pub at: Timestamp,
    pub until: Option<Timestamp>,
    /// How many times this address has been banned, this ban included; drives
    /// `bantime_increment`.
    pub count: u32,
    /// Failures that led to the ban (0 for manual bans).
    pub failures: u32,
}

impl Ban {
    /// Whether the ban still holds at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_round_trips_through_json_with_its_origin() {
        let ban = Ban {
            net: "198.51.100.0/24".parse().unwrap(),
            jail: "bad-auth-bots".into(),
            origin: BanOrigin::Remote { host: "mx1".into() },
            at: Timestamp::from_secs(1_000),
            until: Some(Timestamp::from_secs(2_000)),
            count: 2,
            failures: 5,
        };
        let json = serde_json::to_string(&ban).unwrap();
        assert!(json.contains(r#""kind":"remote","host":"mx1""#), "{json}");
        let back: Ban = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ban);
        assert!(back.is_active(Timestamp::from_secs(1_999)));
        assert!(!back.is_active(Timestamp::from_secs(2_000)));
        let forever = Ban { until: None, ..ban };
        assert!(forever.is_active(Timestamp(i64::MAX)));
    }
}

//! Per-jail enforcement and escalation settings shared by the config, the jail
//! logic and the firewall: where a ban is enforced, how, and how it grows.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which chain enforces a jail's bans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `DOCKER-USER`, for published container ports.
    #[default]
    Docker,
    /// `INPUT`, for services on the host itself.
    Host,
    /// Both chains.
    Both,
}

/// What happens to a banned packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Drop,
    Reject,
}

/// Which transport protocol a jail's port list applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    /// Every protocol; port lists are ignored.
    All,
}

/// A destination port, or an inclusive range of them, that a jail's bans
/// apply to. `first <= last`, and port 0 is never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl fmt::Display for PortRange {
    /// `25` or `8000:8100`, the spelling iptables' multiport match takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// fail2ban's `bantime.increment`: repeat offenders get longer bans.
///
/// The n-th ban (n = 1 for the first) lasts `bantime * multipliers[n-1]`
/// (the last multiplier repeats), or without multipliers
/// `bantime * factor * 2^(n-1)`, capped at `maxtime`, plus up to `rndtime`
/// of random jitter so botnets cannot predict the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncrementPolicy {
    pub enabled: bool,
    pub factor: f64,
    pub multipliers: Vec<u32>,
    pub maxtime: Option<Duration>,
    pub rndtime: Option<Duration>,
}

impl Default for IncrementPolicy {
    fn default() -> Self {
        IncrementPolicy { enabled: false, factor: 1.0, multipliers: Vec::new(), maxtime: None, rndtime: None }
    }
}

//! Per-jail enforcement and escalation settings shared by the config, the jail
//! logic and the firewall: where a ban is enforced, how, and how it grows.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    /// Every protocol; port lists are ignored.
    All,
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

//! Which iptables backend to drive: nft (`iptables-nft`, the nf_tables
//! kernel API) or legacy (`iptables-legacy`, the x_tables API).
//!
//! The two keep separate rulesets in the kernel. Rules added through the one
//! Docker does not use still run, but in a different order than expected
//! and invisible to `iptables -S` on the host, which is how a mismatch
//! "fails silently". So warden uses the backend that holds Docker's chains
//! (`DOCKER`, `DOCKER-USER`, `DOCKER-FORWARD`). When neither holds them
//! (Docker not started yet, or a host without Docker), it goes by what the
//! `iptables` on PATH reports, then by which backend holds any rules, then
//! nft (Debian 12's default). An explicit choice (`--iptables-backend`)
//! overrides all of this.
//!
//! [`decide`] is the pure decision over what was observed; [`detect`]
//! observes (through the [`Runner`]) and decides.

use std::fmt;
use std::str::FromStr;

use super::exec::Runner;
use super::ipset::Family;
use super::save::Saved;

/// An iptables backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Nft,
    Legacy,
}

/// Docker's chains; whichever backend holds them is the one Docker uses.
pub const DOCKER_CHAINS: [&str; 3] = ["DOCKER", "DOCKER-USER", "DOCKER-FORWARD"];

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        }
    }

    /// `iptables-nft`, `ip6tables-legacy`…
    pub fn iptables(self, family: Family) -> &'static str {
        match (self, family) {
            (Backend::Nft, Family::V4) => "iptables-nft",
            (Backend::Nft, Family::V6) => "ip6tables-nft",
            (Backend::Legacy, Family::V4) => "iptables-legacy",
            (Backend::Legacy, Family::V6) => "ip6tables-legacy",
        }
    }

    /// `iptables-nft-save`, `ip6tables-legacy-save`…
    pub fn save(self, family: Family) -> &'static str {
        match (self, family) {
            (Backend::Nft, Family::V4) => "iptables-nft-save",
            (Backend::Nft, Family::V6) => "ip6tables-nft-save",
            (Backend::Legacy, Family::V4) => "iptables-legacy-save",
            (Backend::Legacy, Family::V6) => "ip6tables-legacy-save",
        }
    }

    /// `iptables-nft-restore`, `ip6tables-legacy-restore`…
    pub fn restore(self, family: Family) -> &'static str {
        match (self, family) {
            (Backend::Nft, Family::V4) => "iptables-nft-restore",
            (Backend::Nft, Family::V6) => "ip6tables-nft-restore",
            (Backend::Legacy, Family::V4) => "iptables-legacy-restore",
            (Backend::Legacy, Family::V6) => "ip6tables-legacy-restore",
        }
    }

    fn other(self) -> Backend {
        match self {
            Backend::Nft => Backend::Legacy,
            Backend::Legacy => Backend::Nft,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown backend name (from a flag or the config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown iptables backend {0:?}: use nft or legacy")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nft" | "nf_tables" => Ok(Backend::Nft),
            "legacy" => Ok(Backend::Legacy),
            other => Err(UnknownBackend(other.to_string())),
        }
    }
}

/// What was seen on the host: each backend's `-save` output (`None` if it
/// could not be read) and the first line of `iptables -V`.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub nft: Option<Saved>,
    pub legacy: Option<Saved>,
    pub version: Option<String>,
}

/// Why a backend was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Chosen by configuration or flag.
    Override,
    /// It holds Docker's chains (the other does not, or holds fewer of their rules).
    DockerChains,
    /// Neither holds Docker's chains; `iptables -V` names it.
    IptablesVersion,
    /// Neither holds Docker's chains, `iptables -V` said nothing usable, and
    /// only this one holds rules.
    OnlyOneHoldsRules,
    /// Nothing told them apart: nft, Debian's default.
    Default,
}

/// The chosen backend, why, and whether both backends hold rules (worth a
/// loud warning: some of the host's rules are in the backend warden does
/// not use, and run in an order nobody sees in one listing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    pub backend: Backend,
    pub reason: Reason,
    pub both_hold_rules: bool,
    pub both_hold_docker_chains: bool,
}

impl fmt::Display for Detection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            Reason::Override => "chosen by configuration",
            Reason::DockerChains => "it holds Docker's chains",
            Reason::IptablesVersion => "no Docker chains found; `iptables -V` reports it",
            Reason::OnlyOneHoldsRules => "no Docker chains found; only it holds rules",
            Reason::Default => "no Docker chains or rules found anywhere; nft is the default",
        };
        write!(f, "iptables backend {} ({why})", self.backend)
    }
}

/// Rules in Docker's chains (all tables), or `None` if it has none of them.
fn docker_weight(saved: &Saved) -> Option<usize> {
    let chains: Vec<_> = saved
        .tables
        .values()
        .flat_map(|t| t.chains.iter())
        .filter(|(name, _)| DOCKER_CHAINS.contains(&name.as_str()))
        .map(|(_, chain)| chain.rules.len())
        .collect();
    (!chains.is_empty()).then(|| chains.iter().sum())
}

/// The backend `iptables -V` names: `iptables v1.8.9 (nf_tables)` is nft;
/// `(legacy)`, or no suffix at all (before 1.8), is legacy.
pub fn backend_of_version(version: &str) -> Option<Backend> {
    let version = version.trim();
    if !version.starts_with("iptables") && !version.starts_with("ip6tables") {
        return None;
    }
    if version.contains("(nf_tables)") { Some(Backend::Nft) } else { Some(Backend::Legacy) }
}

/// Decides which backend to use from what was observed. Pure; see the
/// module documentation for the order of the rules.
pub fn decide(observed: &Observed, choice: Option<Backend>) -> Detection {
    let rules = |s: &Option<Saved>| s.as_ref().map_or(0, Saved::rule_count);
    let both_hold_rules = rules(&observed.nft) > 0 && rules(&observed.legacy) > 0;
    let nft_docker = observed.nft.as_ref().and_then(docker_weight);
    let legacy_docker = observed.legacy.as_ref().and_then(docker_weight);
    let both_hold_docker_chains = nft_docker.is_some() && legacy_docker.is_some();
    let version = observed.version.as_deref().and_then(backend_of_version);
    let detection = |backend, reason| Detection { backend, reason, both_hold_rules, both_hold_docker_chains };

    if let Some(backend) = choice {
        return detection(backend, Reason::Override);
    }
    match (nft_docker, legacy_docker) {
        (Some(_), None) => return detection(Backend::Nft, Reason::DockerChains),
        (None, Some(_)) => return detection(Backend::Legacy, Reason::DockerChains),
        // Both: a left-over from switching; the one with more Docker rules is live.
        (Some(n), Some(l)) if n != l => {
            let backend = if n > l { Backend::Nft } else { Backend::Legacy };
            return detection(backend, Reason::DockerChains);
        }
        _ => {}
    }
    if let Some(backend) = version {
        return detection(backend, Reason::IptablesVersion);
    }
    match (rules(&observed.nft), rules(&observed.legacy)) {
        (0, l) if l > 0 => detection(Backend::Legacy, Reason::OnlyOneHoldsRules),
        (n, 0) if n > 0 => detection(Backend::Nft, Reason::OnlyOneHoldsRules),
        _ => detection(Backend::Nft, Reason::Default),
    }
}

/// Observes the host through `runner` (both backends' `-save` output and
/// `iptables -V`), decides, and logs the decision; warns loudly when both
/// backends hold rules. Never fails: what cannot be observed counts as
/// empty, and the commands that later use the backend report their errors.
pub fn detect(runner: &Runner, choice: Option<Backend>) -> Detection {
    let save = |backend: Backend| match runner.run(backend.save(Family::V4), &[], None) {
        Ok(out) => Some(Saved::parse(&out.stdout)),
        Err(e) => {
            tracing::debug!(backend = %backend, error = %e, "cannot read this backend's rules");
            None
        }
    };
    let version = match runner.run("iptables", &["-V"], None) {
        Ok(out) => out.stdout.lines().next().map(str::to_string),
        Err(e) => {
            tracing::debug!(error = %e, "cannot ask iptables for its version");
            None
        }
    };
    let observed = Observed { nft: save(Backend::Nft), legacy: save(Backend::Legacy), version };
    let detection = decide(&observed, choice);
    if detection.both_hold_rules {
        tracing::warn!(
            using = %detection.backend,
            "BOTH iptables backends (nft and legacy) hold rules on this host: the kernel runs both \
             rulesets, and `{}` does not show the {} ones. Rules meant to work together may not; \
             check with `iptables-nft-save` and `iptables-legacy-save`",
            detection.backend.save(Family::V4),
            detection.backend.other(),
        );
    }
    if detection.both_hold_docker_chains {
        tracing::warn!(
            using = %detection.backend,
            "Docker's chains exist in both iptables backends (a left-over from switching backends?); \
             using {}",
            detection.backend
        );
    }
    tracing::info!("{detection}");
    detection
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_NFT: &str = "";

    const DOCKER_HOST: &str = "\
# Generated by iptables-nft-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -i docker0 -j RETURN
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -j RETURN
COMMIT
";

    const DOCKER_28_HOST: &str = "\
*filter
:FORWARD DROP [0:0]
:DOCKER-FORWARD - [0:0]
-A FORWARD -j DOCKER-FORWARD
COMMIT
";

    const HOST_RULES: &str = "\
*filter
:INPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
";

    fn observed(nft: Option<&str>, legacy: Option<&str>, version: Option<&str>) -> Observed {
        Observed {
            nft: nft.map(Saved::parse),
            legacy: legacy.map(Saved::parse),
            version: version.map(str::to_string),
        }
    }

    #[test]
    fn the_backend_holding_dockers_chains_wins_over_iptables_version() {
        let d = decide(&observed(Some(DOCKER_HOST), Some(""), Some("iptables v1.8.9 (legacy)")), None);
        assert_eq!((d.backend, d.reason), (Backend::Nft, Reason::DockerChains));
        let d =
            decide(&observed(Some(EMPTY_NFT), Some(DOCKER_HOST), Some("iptables v1.8.9 (nf_tables)")), None);
        assert_eq!((d.backend, d.reason), (Backend::Legacy, Reason::DockerChains));
        // Docker 28 names its chain DOCKER-FORWARD.
        let d = decide(&observed(None, Some(DOCKER_28_HOST), None), None);
        assert_eq!((d.backend, d.reason), (Backend::Legacy, Reason::DockerChains));
        assert!(!d.both_hold_rules);
    }

    #[test]
    fn without_docker_chains_iptables_version_decides() {
        let d = decide(&observed(Some(""), Some(HOST_RULES), Some("iptables v1.8.9 (nf_tables)")), None);
        assert_eq!((d.backend, d.reason), (Backend::Nft, Reason::IptablesVersion));
        let d = decide(&observed(Some(""), Some(""), Some("iptables v1.8.7 (legacy)\n")), None);
        assert_eq!((d.backend, d.reason), (Backend::Legacy, Reason::IptablesVersion));
        // Before 1.8 there was only legacy, and no suffix.
        let d = decide(&observed(None, None, Some("iptables v1.6.1")), None);
        assert_eq!(d.backend, Backend::Legacy);
    }

    #[test]
    fn then_the_only_backend_with_rules_then_nft() {
        let d = decide(&observed(Some(""), Some(HOST_RULES), None), None);
        assert_eq!((d.backend, d.reason), (Backend::Legacy, Reason::OnlyOneHoldsRules));
        let d = decide(&observed(Some(HOST_RULES), None, Some("garbage")), None);
        assert_eq!((d.backend, d.reason), (Backend::Nft, Reason::OnlyOneHoldsRules));
        let d = decide(&observed(None, None, None), None);
        assert_eq!((d.backend, d.reason), (Backend::Nft, Reason::Default));
    }

    #[test]
    fn both_backends_holding_rules_is_flagged() {
        let d = decide(&observed(Some(DOCKER_HOST), Some(HOST_RULES), None), None);
        assert_eq!(d.backend, Backend::Nft);
        assert!(d.both_hold_rules);
        assert!(!d.both_hold_docker_chains);
        // Docker chains on both sides: the one with more Docker rules is live.
        let d = decide(&observed(Some(DOCKER_28_HOST), Some(DOCKER_HOST), None), None);
        assert_eq!((d.backend, d.reason), (Backend::Legacy, Reason::DockerChains));
        assert!(d.both_hold_docker_chains && d.both_hold_rules);
        // A tie falls through to the version.
        let d =
            decide(&observed(Some(DOCKER_HOST), Some(DOCKER_HOST), Some("iptables v1.8.9 (legacy)")), None);
        assert_eq!((d.backend, d.reason), (Backend::Legacy, Reason::IptablesVersion));
    }

    #[test]
    fn an_override_wins_but_the_warning_stays() {
        let d = decide(&observed(Some(DOCKER_HOST), Some(HOST_RULES), None), Some(Backend::Legacy));
        assert_eq!((d.backend, d.reason), (Backend::Legacy, Reason::Override));
        assert!(d.both_hold_rules);
        assert_eq!(d.to_string(), "iptables backend legacy (chosen by configuration)");
    }

    #[test]
    fn names_and_binaries() {
        assert_eq!("nft".parse::<Backend>(), Ok(Backend::Nft));
        assert_eq!("legacy".parse::<Backend>(), Ok(Backend::Legacy));
        let err = "iptables".parse::<Backend>().unwrap_err();
        assert_eq!(err.to_string(), "unknown iptables backend \"iptables\": use nft or legacy");
        assert_eq!(Backend::Nft.restore(Family::V6), "ip6tables-nft-restore");
        assert_eq!(Backend::Legacy.save(Family::V4), "iptables-legacy-save");
        assert_eq!(Backend::Legacy.iptables(Family::V6), "ip6tables-legacy");
    }
}

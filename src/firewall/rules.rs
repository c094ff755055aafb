//! warden's ruleset as data: which chains hold which rules, and the
//! `iptables-restore --noflush` scripts that bring a table from what
//! `iptables-save` shows to that, touching nothing else. Everything here is
//! pure; [`super::chains`] runs the scripts.
//!
//! The ruleset, per family (iptables and ip6tables alike):
//! ```text
//! DOCKER-USER  1: -j WARDEN-DOCKER      (published container ports, after DNAT)
//! INPUT        1: -j WARDEN-HOST        (services of the host itself)
//! WARDEN-DOCKER / WARDEN-HOST:
//!   -m set --match-set warden.allow-v4 src -j RETURN          allowlist first, always
//!   [-p tcp] -m set --match-set warden-<jail>-v4 src [ports] -j DROP|REJECT   one or more per jail
//! ```
//! In `WARDEN-DOCKER` ports are matched with `-m conntrack --ctorigdstport`,
//! because DNAT has already rewritten the destination port to the
//! container's; in `WARDEN-HOST` with `-m multiport --dports`.
//!
//! Rules are written in the exact form `iptables-save` prints them, so a
//! chain that already holds them compares equal and re-applying is a no-op.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::ipset::{Family, SetSpec, SetType, set_name, set_name_with_suffix};
use super::save::Saved;
use crate::core::{Action, BanPrefix, PortRange, Protocol, Target};

/// The prefix of every set warden creates (`warden-…` for jails,
/// `warden.…` for its own sets).
pub const SET_PREFIX: &str = "warden";

/// warden's chain for published container ports, jumped to from [`DOCKER_USER`].
pub const DOCKER_CHAIN: &str = "WARDEN-DOCKER";
/// warden's chain for host services, jumped to from [`INPUT`].
pub const HOST_CHAIN: &str = "WARDEN-HOST";
/// Docker's chain for user rules, run for forwarded (container) traffic.
pub const DOCKER_USER: &str = "DOCKER-USER";
pub const INPUT: &str = "INPUT";

/// The two jumps warden owns: (from, to).
pub const JUMPS: [(&str, &str); 2] = [(DOCKER_USER, DOCKER_CHAIN), (INPUT, HOST_CHAIN)];

/// Most ports one `multiport` match takes (a range counts twice).
const MULTIPORT_SLOTS: usize = 15;

/// Most entries a jail's set holds. The kernel's default (65,536) is too
/// few for a botnet's worth of bans, and an add beyond it fails; memory is
/// only spent on entries present.
pub const JAIL_SET_MAXELEM: u32 = 1 << 20;

/// The allowlist set of `family`: `warden.allow-v4`. The dot keeps it
/// apart from every jail set (see [`set_name`]: plain names have no dot,
/// hashed ones end in `.<12 hex digits>-v4`).
pub fn allow_set_name(family: Family) -> String {
    format!("{SET_PREFIX}.allow-{}", family_suffix(family))
}

/// The scratch set a reconcile fills before swapping it in.
pub fn swap_set_name(family: Family) -> String {
    format!("{SET_PREFIX}.swap-{}", family_suffix(family))
}

/// True for names of sets warden creates (jail, allowlist and scratch sets).
pub fn is_warden_set(name: &str) -> bool {
    name.strip_prefix(SET_PREFIX).is_some_and(|rest| rest.starts_with('-') || rest.starts_with('.'))
}

fn family_suffix(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

/// The pseudo-jail holding bans replicated from other hosts (see
/// `crate::cluster`). The `@` keeps it apart from every configured or label
/// jail, whose names are letters, digits, `-` and `_`.
pub const REMOTE_JAIL: &str = "@remote";

/// The sets of [`REMOTE_JAIL`]. Like the allowlist's, their names have a dot
/// after the prefix, so no jail's set can take them (a jail named `remote`
/// has `warden-remote-v4`); `warden cleanup` removes them with the rest.
pub fn remote_set_name(family: Family) -> String {
    format!("{SET_PREFIX}.remote-{}", family_suffix(family))
}

/// What the firewall needs to know about one jail; the daemon builds it
/// from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailRules {
    pub name: String,
    pub set_v4: String,
    pub set_v6: String,
    /// Below 32 (v4) or 128 (v6), the jail's sets are `hash:net`.
    pub ban_prefix: BanPrefix,
    /// Destination ports the bans apply to; empty means every port.
    pub ports: Vec<PortRange>,
    pub protocol: Protocol,
    pub target: Target,
    pub action: Action,
}

impl JailRules {
    /// A jail with its set names from [`set_name`], banning single
    /// addresses on every port of every protocol, dropping at both targets.
    pub fn new(name: &str) -> JailRules {
        JailRules {
            name: name.to_string(),
            set_v4: set_name(SET_PREFIX, name, Family::V4),
            set_v6: set_name(SET_PREFIX, name, Family::V6),
            ban_prefix: BanPrefix::default(),
            ports: Vec::new(),
            protocol: Protocol::All,
            target: Target::Both,
            action: Action::Drop,
        }
    }

    /// The rules of [`REMOTE_JAIL`]: `hash:net` sets (peers ban networks as
    /// well as addresses) matched on every port of every protocol, in both
    /// chains. Put it first among the jails, right after the allowlist.
    pub fn remote() -> JailRules {
        JailRules {
            name: REMOTE_JAIL.to_string(),
            set_v4: remote_set_name(Family::V4),
            set_v6: remote_set_name(Family::V6),
            // Below /32 and /128: the sets are hash:net, which hold single
            // addresses too.
            ban_prefix: BanPrefix { v4: 0, v6: 0 },
            ports: Vec::new(),
            protocol: Protocol::All,
            target: Target::Both,
            action: Action::Drop,
        }
    }

    /// The same jail banning networks of `ban_prefix`: below /32 (v4) or
    /// /128 (v6) its sets are `hash:net` and named `…-n4`/`…-n6`, so a
    /// change of `ban_prefix` brings a new set instead of a clash with the
    /// old one's type; the start that installs the new rules destroys the
    /// old set once no rule refers to it.
    pub fn with_ban_prefix(mut self, ban_prefix: BanPrefix) -> JailRules {
        self.ban_prefix = ban_prefix;
        self.set_v4 = if ban_prefix.v4 < 32 {
            set_name_with_suffix(SET_PREFIX, &self.name, "-n4")
        } else {
            set_name(SET_PREFIX, &self.name, Family::V4)
        };
        self.set_v6 = if ban_prefix.v6 < 128 {
            set_name_with_suffix(SET_PREFIX, &self.name, "-n6")
        } else {
            set_name(SET_PREFIX, &self.name, Family::V6)
        };
        self
    }

    /// The jail's set for `family`.
    pub fn set(&self, family: Family) -> &str {
        match family {
            Family::V4 => &self.set_v4,
            Family::V6 => &self.set_v6,
        }
    }

    /// The set to create for `family`: `hash:net` for subnet bans.
    pub fn set_spec(&self, family: Family) -> SetSpec {
        let subnet = match family {
            Family::V4 => self.ban_prefix.v4 < 32,
            Family::V6 => self.ban_prefix.v6 < 128,
        };
        let set_type = if subnet { SetType::HashNet } else { SetType::HashIp };
        SetSpec { maxelem: JAIL_SET_MAXELEM, ..SetSpec::new(self.set(family), set_type, family) }
    }

    fn enforced_in(&self, chain: &str) -> bool {
        match self.target {
            Target::Both => true,
            Target::Docker => chain == DOCKER_CHAIN,
            Target::Host => chain == HOST_CHAIN,
        }
    }
}

/// Everything the firewall enforces: the allowlist and the jails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Addresses and networks never dropped (ignoreip), both families.
    pub allowlist: Vec<IpNet>,
    pub jails: Vec<JailRules>,
}

impl Ruleset {
    /// Every set the ruleset refers to, with how to create it.
    pub fn set_specs(&self) -> Vec<SetSpec> {
        let mut specs = Vec::new();
        for family in [Family::V4, Family::V6] {
            specs.push(SetSpec::new(allow_set_name(family), SetType::HashNet, family));
            specs.extend(self.jails.iter().map(|j| j.set_spec(family)));
        }
        specs
    }
}

/// The desired content of one of warden's chains, and where it is jumped from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPlan {
    pub chain: &'static str,
    pub from: &'static str,
    /// Rule specifications in order, as `iptables-save` prints them after `-A CHAIN `.
    pub rules: Vec<String>,
}

/// Both chains' desired content for `family`.
pub fn plan(ruleset: &Ruleset, family: Family) -> [ChainPlan; 2] {
    JUMPS.map(|(from, chain)| {
        let mut rules = vec![format!("-m set --match-set {} src -j RETURN", allow_set_name(family))];
        for jail in ruleset.jails.iter().filter(|j| j.enforced_in(chain)) {
            rules.extend(jail_rules(jail, family, chain));
        }
        ChainPlan { chain, from, rules }
    })
}

fn jail_rules(jail: &JailRules, family: Family, chain: &str) -> Vec<String> {
    let set = format!("-m set --match-set {} src", jail.set(family));
    let target = match (jail.action, family) {
        (Action::Drop, _) => "-j DROP",
        (Action::Reject, Family::V4) => "-j REJECT --reject-with icmp-port-unreachable",
        (Action::Reject, Family::V6) => "-j REJECT --reject-with icmp6-port-unreachable",
    };
    let proto = match jail.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        // Ports mean nothing without a protocol.
        Protocol::All => return vec![format!("{set} {target}")],
    };
    if jail.ports.is_empty() {
        return vec![format!("-p {proto} {set} {target}")];
    }
    if chain == DOCKER_CHAIN {
        // conntrack takes one port or range per match.
        jail.ports
            .iter()
            .map(|ports| format!("-p {proto} {set} -m conntrack --ctorigdstport {ports} {target}"))
            .collect()
    } else {
        multiport_groups(&jail.ports)
            .into_iter()
            .map(|ports| format!("-p {proto} {set} -m multiport --dports {ports} {target}"))
            .collect()
    }
}

/// Port lists of at most [`MULTIPORT_SLOTS`] slots each, comma-separated.
fn multiport_groups(ports: &[PortRange]) -> Vec<String> {
    let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
    for range in ports {
        let slots = if range.first == range.last { 1 } else { 2 };
        match groups.last_mut() {
            Some((used, list)) if *used + slots <= MULTIPORT_SLOTS => {
                *used += slots;
                list.push(range.to_string());
            }
            _ => groups.push((slots, vec![range.to_string()])),
        }
    }
    groups.into_iter().map(|(_, list)| list.join(",")).collect()
}

/// A `iptables-restore --noflush` script and what it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub text: String,
    /// One line per change, for logs ("chain WARDEN-HOST rewritten (3 rules)").
    pub changes: Vec<String>,
}

/// The script bringing the `filter` table from `saved` to `plans`, or
/// `None` if it already matches. Only warden's chains are rewritten (each
/// atomically: declaring an existing chain under `--noflush` empties it
/// in the same transaction that refills it) and only warden's jumps are
/// moved; a jump that is missing, duplicated or not first is deleted
/// everywhere and inserted at position 1.
///
/// `DOCKER-USER` must exist before this runs (see [`needs_docker_user`]).
pub fn apply_script(saved: &Saved, plans: &[ChainPlan]) -> Option<Script> {
    let mut lines = vec!["*filter".to_string()];
    let mut changes = Vec::new();
    for plan in plans {
        let current = saved.chain("filter", plan.chain);
        if current.map(|c| &c.rules) != Some(&plan.rules) {
            lines.push(format!(":{} - [0:0]", plan.chain));
            lines.extend(plan.rules.iter().map(|r| format!("-A {} {r}", plan.chain)));
            let what = if current.is_some() { "rewritten" } else { "created" };
            changes.push(format!("chain {} {what} ({} rules)", plan.chain, plan.rules.len()));
        }
    }
    for plan in plans {
        let jump = format!("-j {}", plan.chain);
        let positions = jump_positions(saved, plan.from, plan.chain);
        if positions != [0] {
            lines.extend(positions.iter().map(|_| format!("-D {} {jump}", plan.from)));
            lines.push(format!("-I {} 1 {jump}", plan.from));
            changes.push(match positions.as_slice() {
                [] => format!("jump {} -> {} inserted at position 1", plan.from, plan.chain),
                found => format!(
                    "jump {} -> {} moved to position 1 (was at {})",
                    plan.from,
                    plan.chain,
                    found.iter().map(|p| (p + 1).to_string()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    if changes.is_empty() {
        return None;
    }
    lines.push("COMMIT".to_string());
    Some(Script { text: lines.join("\n") + "\n", changes })
}

/// True if `DOCKER-USER` must be created first (Docker has not started).
pub fn needs_docker_user(saved: &Saved) -> bool {
    saved.chain("filter", DOCKER_USER).is_none()
}

/// Indexes (0-based) of warden's exact jump `-j to` in chain `from`.
fn jump_positions(saved: &Saved, from: &str, to: &str) -> Vec<usize> {
    let jump = format!("-j {to}");
    saved
        .chain("filter", from)
        .map(|c| c.rules.iter().enumerate().filter(|(_, r)| **r == jump).map(|(i, _)| i).collect())
        .unwrap_or_default()
}

/// The script removing warden's jumps and chains from `saved`'s `filter`
/// table, or `None` if there is nothing of warden's. `DOCKER-USER` is
/// removed too when, without warden's jump, it is empty and nothing jumps
/// to it: then it was warden's (Docker always jumps to it from `FORWARD`),
/// and removing it changes no packet's path.
pub fn cleanup_script(saved: &Saved) -> Option<Script> {
    let mut lines = vec!["*filter".to_string()];
    let mut changes = Vec::new();
    for (from, to) in JUMPS {
        for _ in jump_positions(saved, from, to) {
            lines.push(format!("-D {from} -j {to}"));
            changes.push(format!("jump {from} -> {to} deleted"));
        }
    }
    for chain in [DOCKER_CHAIN, HOST_CHAIN] {
        if saved.chain("filter", chain).is_some() {
            lines.push(format!("-F {chain}"));
            lines.push(format!("-X {chain}"));
            changes.push(format!("chain {chain} deleted"));
        }
    }
    if let Some(docker_user) = saved.chain("filter", DOCKER_USER) {
        let ours = format!("-j {DOCKER_CHAIN}");
        let empty_without_us = docker_user.rules.iter().all(|r| *r == ours);
        let referenced = saved
            .table("filter")
            .is_some_and(|t| t.chains.values().flat_map(|c| &c.rules).any(|r| jumps_to(r, DOCKER_USER)));
        if empty_without_us && !referenced {
            lines.push(format!("-X {DOCKER_USER}"));
            changes.push(format!("empty, unreferenced chain {DOCKER_USER} deleted"));
        }
    }
    if changes.is_empty() {
        return None;
    }
    lines.push("COMMIT".to_string());
    Some(Script { text: lines.join("\n") + "\n", changes })
}

/// True if rule `spec` jumps or goes to `chain`.
fn jumps_to(spec: &str, chain: &str) -> bool {
    let words: Vec<&str> = spec.split_whitespace().collect();
    words.windows(2).any(|w| (w[0] == "-j" || w[0] == "-g") && w[1] == chain)
}

/// The set names a ruleset refers to (both families), for checks and logs.
pub fn referenced_sets(ruleset: &Ruleset) -> BTreeSet<String> {
    ruleset.set_specs().into_iter().map(|s| s.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(list: &[(u16, u16)]) -> Vec<PortRange> {
        list.iter().map(|&(first, last)| PortRange { first, last }).collect()
    }

    fn sample() -> Ruleset {
        let mail = JailRules {
            ports: ports(&[(25, 25), (465, 465), (587, 587)]),
            protocol: Protocol::Tcp,
            target: Target::Docker,
            ban_prefix: BanPrefix { v4: 24, v6: 64 },
            ..JailRules::new("mail")
        };
        let sshd = JailRules {
            ports: ports(&[(22, 22), (2200, 2299)]),
            protocol: Protocol::Tcp,
            target: Target::Host,
            action: Action::Reject,
            ..JailRules::new("sshd")
        };
        let all = JailRules { target: Target::Both, ..JailRules::new("recidive") };
        Ruleset { allowlist: vec!["192.0.2.0/24".parse().unwrap()], jails: vec![mail, sshd, all] }
    }

    #[test]
    fn chains_start_with_the_allowlist_then_each_jails_rules() {
        let [docker, host] = plan(&sample(), Family::V4);
        assert_eq!((docker.chain, docker.from), (DOCKER_CHAIN, DOCKER_USER));
        assert_eq!(
            docker.rules,
            [
                "-m set --match-set warden.allow-v4 src -j RETURN",
                "-p tcp -m set --match-set warden-mail-v4 src -m conntrack --ctorigdstport 25 -j DROP",
                "-p tcp -m set --match-set warden-mail-v4 src -m conntrack --ctorigdstport 465 -j DROP",
                "-p tcp -m set --match-set warden-mail-v4 src -m conntrack --ctorigdstport 587 -j DROP",
                "-m set --match-set warden-recidive-v4 src -j DROP",
            ]
        );
        assert_eq!((host.chain, host.from), (HOST_CHAIN, INPUT));
        assert_eq!(
            host.rules,
            [
                "-m set --match-set warden.allow-v4 src -j RETURN",
                "-p tcp -m set --match-set warden-sshd-v4 src -m multiport --dports 22,2200:2299 \
                 -j REJECT --reject-with icmp-port-unreachable",
                "-m set --match-set warden-recidive-v4 src -j DROP",
            ]
        );
        let [_, host6] = plan(&sample(), Family::V6);
        assert_eq!(host6.rules[0], "-m set --match-set warden.allow-v6 src -j RETURN");
        assert!(
            host6.rules[1].contains("warden-sshd-v6") && host6.rules[1].ends_with("icmp6-port-unreachable")
        );
    }

    #[test]
    fn remote_bans_come_right_after_the_allowlist_in_both_chains_in_sets_no_jail_can_name() {
        let mut ruleset = sample();
        ruleset.jails.insert(0, JailRules::remote());
        for chain in plan(&ruleset, Family::V4) {
            assert_eq!(chain.rules[1], "-m set --match-set warden.remote-v4 src -j DROP", "{}", chain.chain);
        }
        assert_eq!(plan(&ruleset, Family::V6)[0].rules[1], "-m set --match-set warden.remote-v6 src -j DROP");
        let specs = ruleset.set_specs();
        let remote = specs.iter().find(|s| s.name == "warden.remote-v6").unwrap();
        assert_eq!(remote.set_type, SetType::HashNet);
        assert!(is_warden_set("warden.remote-v4"));
        assert_ne!(set_name(SET_PREFIX, "remote", Family::V4), remote_set_name(Family::V4));
    }

    #[test]
    fn udp_and_portless_jails() {
        let dns = JailRules {
            protocol: Protocol::Udp,
            ports: ports(&[(53, 53)]),
            target: Target::Host,
            ..JailRules::new("dns")
        };
        let web = JailRules { protocol: Protocol::Tcp, target: Target::Host, ..JailRules::new("web") };
        let [docker, host] = plan(&Ruleset { allowlist: vec![], jails: vec![dns, web] }, Family::V4);
        assert_eq!(docker.rules.len(), 1, "host jails stay out of WARDEN-DOCKER");
        assert_eq!(
            host.rules[1],
            "-p udp -m set --match-set warden-dns-v4 src -m multiport --dports 53 -j DROP"
        );
        assert_eq!(host.rules[2], "-p tcp -m set --match-set warden-web-v4 src -j DROP");
    }

    #[test]
    fn long_port_lists_are_split_into_multiport_groups_of_fifteen_slots() {
        let many: Vec<PortRange> = (1..=14)
            .map(|p| PortRange { first: p, last: p })
            .chain(ports(&[(100, 200), (300, 300)]))
            .collect();
        let groups = multiport_groups(&many);
        assert_eq!(groups, ["1,2,3,4,5,6,7,8,9,10,11,12,13,14", "100:200,300"]);
    }

    #[test]
    fn sets_are_hash_net_for_subnet_bans_and_the_allowlist() {
        let specs = sample().set_specs();
        let find = |name: &str| specs.iter().find(|s| s.name == name).unwrap().set_type;
        assert_eq!(find("warden.allow-v4"), SetType::HashNet);
        assert_eq!(find("warden-mail-v4"), SetType::HashNet);
        assert_eq!(find("warden-mail-v6"), SetType::HashNet);
        assert_eq!(find("warden-sshd-v4"), SetType::HashIp);
        assert_eq!(specs.len(), 8);
        assert!(is_warden_set("warden-sshd-v4") && is_warden_set("warden.swap-v6"));
        assert!(!is_warden_set("wardens-v4") && !is_warden_set("docker-v4"));
        assert!(referenced_sets(&sample()).contains("warden.allow-v6"));
    }

    const FRESH: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                         -A INPUT -i lo -j ACCEPT\nCOMMIT\n";

    #[test]
    fn a_fresh_table_gets_both_chains_and_jumps() {
        let saved = Saved::parse(FRESH);
        assert!(needs_docker_user(&saved));
        let plans = plan(&sample(), Family::V4);
        let script = apply_script(&saved, &plans).unwrap();
        let text = script.text;
        assert!(text.starts_with("*filter\n:WARDEN-DOCKER - [0:0]\n-A WARDEN-DOCKER -m set"), "{text}");
        assert!(
            text.ends_with("-I DOCKER-USER 1 -j WARDEN-DOCKER\n-I INPUT 1 -j WARDEN-HOST\nCOMMIT\n"),
            "{text}"
        );
        assert_eq!(script.changes.len(), 4, "{:?}", script.changes);
    }

    /// The table as it looks after the script of a fresh one ran.
    fn applied(ruleset: &Ruleset) -> String {
        let [docker, host] = plan(ruleset, Family::V4);
        let mut text = "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n:WARDEN-DOCKER - [0:0]\n\
                        :WARDEN-HOST - [0:0]\n-A INPUT -j WARDEN-HOST\n-A INPUT -i lo -j ACCEPT\n\
                        -A DOCKER-USER -j WARDEN-DOCKER\n-A DOCKER-USER -j RETURN\n"
            .to_string();
        for plan in [docker, host] {
            for rule in plan.rules {
                text += &format!("-A {} {rule}\n", plan.chain);
            }
        }
        text + "COMMIT\n"
    }

    #[test]
    fn reapplying_to_a_matching_table_is_a_no_op() {
        let saved = Saved::parse(&applied(&sample()));
        assert!(!needs_docker_user(&saved));
        assert_eq!(apply_script(&saved, &plan(&sample(), Family::V4)), None);
    }

    #[test]
    fn only_what_differs_is_rewritten() {
        let saved = Saved::parse(&applied(&sample()));
        let mut changed = sample();
        changed.jails.retain(|j| j.name != "sshd");
        let script = apply_script(&saved, &plan(&changed, Family::V4)).unwrap();
        assert_eq!(script.changes, ["chain WARDEN-HOST rewritten (2 rules)"]);
        assert!(!script.text.contains("WARDEN-DOCKER"), "{}", script.text);
    }

    #[test]
    fn misplaced_or_duplicated_jumps_are_moved_to_the_top() {
        let text = applied(&sample())
            .replace(
                "-A INPUT -j WARDEN-HOST\n-A INPUT -i lo -j ACCEPT\n",
                "-A INPUT -i lo -j ACCEPT\n-A INPUT -j WARDEN-HOST\n-A INPUT -j WARDEN-HOST\n",
            )
            .replace("-A DOCKER-USER -j WARDEN-DOCKER\n", "");
        let script = apply_script(&Saved::parse(&text), &plan(&sample(), Family::V4)).unwrap();
        assert_eq!(
            script.text,
            "*filter\n-I DOCKER-USER 1 -j WARDEN-DOCKER\n-D INPUT -j WARDEN-HOST\n-D INPUT -j WARDEN-HOST\n\
             -I INPUT 1 -j WARDEN-HOST\nCOMMIT\n"
        );
        assert_eq!(
            script.changes,
            [
                "jump DOCKER-USER -> WARDEN-DOCKER inserted at position 1",
                "jump INPUT -> WARDEN-HOST moved to position 1 (was at 2, 3)"
            ]
        );
    }

    #[test]
    fn cleanup_removes_only_wardens_chains_and_jumps() {
        let saved = Saved::parse(&applied(&sample()));
        let script = cleanup_script(&saved).unwrap();
        assert_eq!(
            script.text,
            "*filter\n-D DOCKER-USER -j WARDEN-DOCKER\n-D INPUT -j WARDEN-HOST\n-F WARDEN-DOCKER\n-X WARDEN-DOCKER\n\
             -F WARDEN-HOST\n-X WARDEN-HOST\nCOMMIT\n",
            "DOCKER-USER holds Docker's RETURN, so it stays"
        );
        assert_eq!(cleanup_script(&Saved::parse(FRESH)), None);
    }

    #[test]
    fn cleanup_removes_a_docker_user_chain_only_when_empty_and_unreferenced() {
        let ours =
            "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j WARDEN-DOCKER\nCOMMIT\n";
        let script = cleanup_script(&Saved::parse(ours)).unwrap();
        assert!(script.text.contains("-D DOCKER-USER -j WARDEN-DOCKER\n-X DOCKER-USER\n"), "{}", script.text);
        let dockers = ours.replace("COMMIT", ":FORWARD ACCEPT [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT");
        let script = cleanup_script(&Saved::parse(&dockers)).unwrap();
        assert!(!script.text.contains("-X DOCKER-USER"), "{}", script.text);
    }
}

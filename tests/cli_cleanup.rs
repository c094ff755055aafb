//! `warden cleanup`, run as an operator would (the binary, inside a network
//! namespace the test creates): it removes every set, chain and jump warden
//! created there and leaves the namespace's own rules and sets alone.
//!
//! Root required; skipped with a reason elsewhere, never skipped with CI=true.

#[path = "support/netns.rs"]
mod netns;
#[path = "support/topology.rs"]
mod topology;

use std::process::Command;

use netns::TestNetns;
use topology::{exec, iptables_state};
use warden::core::{Ban, BanOrigin, PortRange, Protocol, Target, Timestamp};
use warden::firewall::backend::Backend;
use warden::firewall::enforcer::{Enforcer, EnforcerConfig};
use warden::firewall::ipset::{Family, IpsetHandle, SetSpec, SetType};
use warden::firewall::rules::JailRules;

const NOW: Timestamp = Timestamp::from_secs(1_790_000_000);

/// iptables rules and ipset names in `ns`, without comments or counters.
fn firewall_state(ns: &TestNetns) -> String {
    let mut state = iptables_state(ns);
    let mut names = ns.run(|| IpsetHandle::open().and_then(|mut h| h.set_names())).expect("list sets");
    names.sort();
    state.push_str(&names.join("\n"));
    state
}

fn warden_in(ns: &TestNetns, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns.name(), env!("CARGO_BIN_EXE_warden")])
        .args(args)
        .output()
        .expect("ip netns exec runs warden")
}

#[test]
fn cleanup_removes_what_warden_created_and_nothing_else() {
    let Some(ns) = TestNetns::create("cli-cleanup") else { return };
    // The namespace's own firewall: a rule, a chain and a set warden must keep.
    // (Both families have a filter table already, as on any real host; an
    // empty table's built-in chains are not warden's to remove.)
    for iptables in ["iptables-nft", "ip6tables-nft"] {
        exec(&ns, iptables, &["-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"]);
    }
    exec(&ns, "iptables-nft", &["-N", "OPERATOR-CHAIN"]);
    ns.run(|| {
        let mut h = IpsetHandle::open()?;
        h.create(&SetSpec::new("operator-set", SetType::HashIp, Family::V4))
    })
    .expect("the operator's own set");
    let before = firewall_state(&ns);

    ns.run(|| {
        let jail = JailRules {
            ports: vec![PortRange { first: 22, last: 22 }],
            protocol: Protocol::Tcp,
            target: Target::Both,
            ..JailRules::new("sshd")
        };
        let config = EnforcerConfig { backend: Some(Backend::Nft), ..EnforcerConfig::default() };
        let mut enforcer = Enforcer::new(config, vec![jail], vec!["192.0.2.0/24".parse().expect("net")]);
        enforcer.start(&[], NOW).expect("start");
        let ban = Ban {
            net: "203.0.113.9/32".parse().expect("net"),
            jail: "sshd".into(),
            origin: BanOrigin::Manual,
            at: NOW,
            until: None,
            count: 1,
            failures: 0,
        };
        enforcer.ban(&ban, NOW).expect("ban");
    });
    let with_warden = firewall_state(&ns);
    assert_ne!(with_warden, before, "warden added its sets and chains");
    assert!(with_warden.contains("WARDEN-HOST") && with_warden.contains("DOCKER-USER"), "{with_warden}");

    let dry = warden_in(&ns, &["cleanup", "--dry-run", "--iptables-backend", "nft"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let listed = String::from_utf8_lossy(&dry.stdout);
    assert!(listed.contains("would") && listed.contains("WARDEN-HOST"), "{listed}");
    assert_eq!(firewall_state(&ns), with_warden, "a dry run changes nothing");

    let out = warden_in(&ns, &["cleanup", "--iptables-backend", "nft"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("destroyed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(firewall_state(&ns), before, "cleanup restores the namespace exactly");

    let again = warden_in(&ns, &["cleanup", "--iptables-backend", "nft"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to remove"));
}

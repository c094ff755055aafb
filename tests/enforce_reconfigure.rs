//! The enforcer across configuration changes, in a namespace the test
//! creates: a jail whose `ban_prefix` changes gets sets of the new type
//! under new names, holding its bans, and the old sets are destroyed once no
//! rule refers to them; a removed jail's sets go too.
//!
//! Root required; skipped with a reason elsewhere, never skipped with CI=true.

#[path = "support/netns.rs"]
mod netns;
#[path = "support/topology.rs"]
mod topology;

use ipnet::IpNet;
use netns::TestNetns;
use topology::exec;
use warden::core::{Ban, BanOrigin, BanPrefix, Target, Timestamp};
use warden::firewall::backend::Backend;
use warden::firewall::enforcer::{Enforcer, EnforcerConfig};
use warden::firewall::ipset::{IpsetHandle, SetType};
use warden::firewall::rules::JailRules;

const NOW: Timestamp = Timestamp::from_secs(2_000_000_000);

fn ban(net: &str, jail: &str) -> Ban {
    Ban {
        net: net.parse().unwrap(),
        jail: jail.into(),
        origin: BanOrigin::Jail,
        at: NOW,
        until: Some(Timestamp::from_secs(NOW.as_secs() + 3600)),
        count: 1,
        failures: 3,
    }
}

fn start(ns: &TestNetns, jails: Vec<JailRules>, active: &[Ban]) {
    let config = EnforcerConfig { backend: Some(Backend::Nft), ..EnforcerConfig::default() };
    ns.run(|| Enforcer::new(config, jails, vec![]).start(active, NOW).unwrap());
}

/// Every set in the namespace: name, type and entries.
fn sets(ns: &TestNetns) -> Vec<(String, Option<SetType>, Vec<IpNet>)> {
    ns.run(|| {
        let mut h = IpsetHandle::open().unwrap();
        let mut names = h.set_names().unwrap();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let listing = h.list(&name).unwrap();
                let mut entries: Vec<IpNet> = listing.entries.iter().map(|e| e.net).collect();
                entries.sort();
                (name, listing.header.set_type(), entries)
            })
            .collect()
    })
}

#[test]
fn a_ban_prefix_change_moves_bans_to_net_sets_and_drops_the_old_ones() {
    let Some(ns) = TestNetns::create("reconf") else { return };
    let web = || JailRules { target: Target::Host, ..JailRules::new("web") };
    let ssh = || JailRules { target: Target::Host, ..JailRules::new("ssh") };
    start(&ns, vec![web(), ssh()], &[ban("10.9.8.7/32", "web"), ban("10.1.1.1/32", "ssh")]);
    let before = sets(&ns);
    let names: Vec<&str> = before.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "warden-ssh-v4",
            "warden-ssh-v6",
            "warden-web-v4",
            "warden-web-v6",
            "warden.allow-v4",
            "warden.allow-v6"
        ]
    );

    // web now bans /24s; ssh is gone from the config.
    let web24 = web().with_ban_prefix(BanPrefix { v4: 24, v6: 128 });
    start(&ns, vec![web24], &[ban("10.9.8.0/24", "web")]);
    let after = sets(&ns);
    let expected: Vec<(String, Option<SetType>, Vec<IpNet>)> = vec![
        ("warden-web-n4".into(), Some(SetType::HashNet), vec!["10.9.8.0/24".parse().unwrap()]),
        ("warden-web-v6".into(), Some(SetType::HashIp), vec![]),
        ("warden.allow-v4".into(), Some(SetType::HashNet), vec![]),
        ("warden.allow-v6".into(), Some(SetType::HashNet), vec![]),
    ];
    assert_eq!(after, expected);
    let rules = exec(&ns, "iptables-nft-save", &[]);
    assert!(rules.contains("--match-set warden-web-n4 src"), "{rules}");
    assert!(!rules.contains("warden-web-v4") && !rules.contains("warden-ssh"), "{rules}");
}

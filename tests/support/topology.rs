//! Wiring for namespace tests: run `ip` and other programs, link a client
//! namespace to a server namespace over a veth pair with addresses the test
//! assigns, and read a namespace's iptables rules back. Used together with
//! `netns.rs` (as module `netns`).

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use crate::netns::TestNetns;

/// Runs `ip` with `args`; panics with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Runs `program` inside `ns`; panics with its stderr on failure, returns stdout.
pub fn exec(ns: &TestNetns, program: &str, args: &[&str]) -> String {
    let out = ns.exec(program, args).unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(out.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Connects `client` to `server` over a veth pair: `server_addr`/24 on the
/// server side (device `dev`), `client_addrs`/24 on the client's `eth0`,
/// whose default route goes through the server.
pub fn link(
    server: &TestNetns,
    client: &TestNetns,
    dev: &str,
    server_addr: Ipv4Addr,
    client_addrs: &[Ipv4Addr],
) {
    let (s, c) = (server.name(), client.name());
    ip(&["-n", s, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", c]);
    ip(&["-n", s, "addr", "add", &format!("{server_addr}/24"), "dev", dev]);
    ip(&["-n", s, "link", "set", dev, "up"]);
    for addr in client_addrs {
        ip(&["-n", c, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
    }
    ip(&["-n", c, "link", "set", "eth0", "up"]);
    ip(&["-n", c, "link", "set", "lo", "up"]);
    ip(&["-n", c, "route", "add", "default", "via", &server_addr.to_string()]);
}

/// Everything `iptables-save`/`ip6tables-save` (nft) show in `ns`, without
/// comments or counters, for comparing a namespace's rules over time.
pub fn iptables_state(ns: &TestNetns) -> String {
    let mut state = String::new();
    for save in ["iptables-nft-save", "ip6tables-nft-save"] {
        for line in exec(ns, save, &[]).lines().filter(|l| !l.starts_with('#')) {
            let line = match line.find(" [") {
                Some(i) if line.starts_with(':') => &line[..i],
                _ => line,
            };
            state += line;
            state.push('\n');
        }
    }
    state
}

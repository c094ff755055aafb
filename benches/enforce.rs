//! The enforcer's ban path against the real kernel, inside a throwaway
//! network namespace.
//!
//! Run as root: `cargo bench --bench enforce`. Prints:
//! - bans/s for 100,000 bans through `Enforcer::ban_batch` and through
//!   single `Enforcer::ban` calls, each with conntrack flushing on (the
//!   default: walks of the connection table coalesced, see
//!   `firewall::enforcer`) and off;
//! - decision-to-enforcement latency: from calling `ban` to the entry being
//!   present in the kernel set (checked with an ipset `test` on a second
//!   socket), p50/p99/max over 1,000 bans, with conntrack flushing on
//!   (a call that walks the connection table includes the walk, after the
//!   entry is already in the set) and off;
//! - startup with 100,000 active bans persisted in a redb store: from
//!   opening the store to every ban enforced (`Enforcer::start` done).

#[path = "../tests/support/netns.rs"]
mod netns;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use warden::core::{Ban, BanOrigin, Timestamp};
use warden::firewall::backend::Backend;
use warden::firewall::enforcer::{Enforcer, EnforcerConfig};
use warden::firewall::ipset::IpsetHandle;
use warden::firewall::rules::JailRules;
use warden::store::Store;

const THROUGHPUT_BANS: u32 = 100_000;
const LATENCY_BANS: u32 = 1_000;
const STORED_BANS: u32 = 100_000;
const NOW: Timestamp = Timestamp::from_secs(2_000_000_000);

fn ban(i: u32, jail: &str) -> Ban {
    Ban {
        // 10.0.0.0/8 and up: distinct addresses.
        net: IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))),
        jail: jail.into(),
        origin: BanOrigin::Jail,
        at: NOW,
        until: Some(Timestamp::from_secs(NOW.as_secs() + 3600)),
        count: 1,
        failures: 5,
    }
}

/// A jail able to hold `THROUGHPUT_BANS` entries.
fn jail(name: &str) -> JailRules {
    JailRules::new(name)
}

fn config(flush_conntrack: bool, jails: &[&str]) -> EnforcerConfig {
    let keep =
        if flush_conntrack { Default::default() } else { jails.iter().map(|j| j.to_string()).collect() };
    EnforcerConfig { backend: Some(Backend::Nft), keep_conntrack: keep, ..EnforcerConfig::default() }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too and
    // passes nothing, so only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(ns) = netns::TestNetns::create("enforce-bench") else {
        println!("enforce bench skipped: see the reason above");
        return;
    };
    ns.run(|| {
        for flush in [true, false] {
            throughput(flush);
        }
        latency(true);
        latency(false);
        cleanup();
    });
    let dir = tempfile::tempdir().expect("temp dir");
    ns.run(|| startup(dir.path()));
}

fn rate(n: u32, d: Duration) -> f64 {
    f64::from(n) / d.as_secs_f64()
}

fn throughput(flush: bool) {
    let names = ["batch", "single"];
    let mut enforcer = Enforcer::new(config(flush, &names), names.iter().map(|n| jail(n)).collect(), vec![]);
    enforcer.start(&[], NOW).expect("start");
    let conntrack = if flush { "conntrack flush on" } else { "conntrack flush off" };

    let bans: Vec<Ban> = (0..THROUGHPUT_BANS).map(|i| ban(i, "batch")).collect();
    let t = Instant::now();
    let done = enforcer.ban_batch(&bans, NOW).expect("ban_batch");
    let batch = t.elapsed();
    assert_eq!(done.applied, THROUGHPUT_BANS as usize, "{:?}", done.rejected.first());

    let bans: Vec<Ban> = (0..THROUGHPUT_BANS).map(|i| ban(i, "single")).collect();
    let t = Instant::now();
    for b in &bans {
        enforcer.ban(b, NOW).expect("ban");
    }
    let single = t.elapsed();

    let mut h = IpsetHandle::open().expect("ipset");
    for name in names {
        let elements = h.header(&jail(name).set_v4).expect("header").elements;
        assert_eq!(elements, THROUGHPUT_BANS, "the {name} set holds every ban");
    }
    println!(
        "ban_batch, {THROUGHPUT_BANS} bans, {conntrack}: {:>9.0} bans/s ({batch:?})",
        rate(THROUGHPUT_BANS, batch)
    );
    println!(
        "ban, one call per ban, {THROUGHPUT_BANS} bans, {conntrack}: {:>9.0} bans/s ({single:?}, {:?} each)",
        rate(THROUGHPUT_BANS, single),
        single / THROUGHPUT_BANS
    );
    enforcer.cleanup().expect("cleanup");
}

fn latency(flush: bool) {
    let mut enforcer = Enforcer::new(config(flush, &["lat"]), vec![jail("lat")], vec![]);
    enforcer.start(&[], NOW).expect("start");
    let set = jail("lat").set_v4;
    // A second socket sees the kernel set as the packet path does.
    let mut probe = IpsetHandle::open().expect("ipset");
    let mut samples = Vec::with_capacity(LATENCY_BANS as usize);
    for i in 0..LATENCY_BANS {
        let b = ban(i, "lat");
        let t = Instant::now();
        enforcer.ban(&b, NOW).expect("ban");
        let present = probe.test(&set, b.net).expect("test");
        samples.push(t.elapsed());
        assert!(present, "{} is in the set once ban returns", b.net);
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let conntrack = if flush { "conntrack flush on (coalesced)" } else { "conntrack flush off" };
    println!(
        "decision to enforcement (ban + ipset test), {LATENCY_BANS} bans, {conntrack}: p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );
    enforcer.cleanup().expect("cleanup");
}

fn cleanup() {
    let mut enforcer = Enforcer::new(config(false, &[]), vec![], vec![]);
    enforcer.cleanup().expect("cleanup");
}

fn startup(dir: &std::path::Path) {
    let path = dir.join("warden.redb");
    {
        let store = Store::open(&path).expect("open store");
        let bans: Vec<Ban> = (0..STORED_BANS).map(|i| ban(i, "boot")).collect();
        store.put_bans(&bans).expect("put_bans");
        store.close().expect("close store");
    }
    let t = Instant::now();
    let store = Store::open(&path).expect("open store");
    let opened = t.elapsed();
    let active = store.active_bans(NOW).expect("active bans");
    let read = t.elapsed();
    let mut enforcer = Enforcer::new(config(true, &["boot"]), vec![jail("boot")], vec![]);
    enforcer.start(&active, NOW).expect("start");
    let total = t.elapsed();
    let elements = IpsetHandle::open().expect("ipset").header(&jail("boot").set_v4).expect("header").elements;
    assert_eq!(elements, STORED_BANS, "every stored ban is enforced");
    println!(
        "startup with {STORED_BANS} stored bans: {total:?} from opening the store to all enforced \
         (store open {opened:?}, read {:?}, start {:?})",
        read - opened,
        total - read
    );
    enforcer.cleanup().expect("cleanup");
}

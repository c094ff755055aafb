//! Ban throughput and latency of the in-process ipset client, against the
//! real kernel inside a throwaway network namespace, compared with spawning
//! the `ipset` binary per entry.
//!
//! Run as root: `cargo bench --bench ipset`. Prints:
//! - adds/s for 100,000 entries through `add_batch` (new entries, then
//!   re-adding the same entries, which refreshes their timeouts);
//! - single-entry `add` latency (p50, p99, max) over 10,000 calls;
//! - adds/s spawning `ipset add` once per entry for 1,000 entries (skipped
//!   with a note if the binary is missing).

#[path = "../tests/support/netns.rs"]
mod netns;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use warden::firewall::ipset::{EntryTimeout, Family, IpsetHandle, SetSpec, SetType};

const BATCH_ENTRIES: u32 = 100_000;
const SINGLE_ENTRIES: u32 = 10_000;
const SPAWN_ENTRIES: u32 = 1_000;
const RUNS: usize = 3;

fn addr(i: u32) -> IpNet {
    // 10.0.0.0/8 and up: distinct addresses, stable across runs.
    IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too and
    // passes nothing, so only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(ns) = netns::TestNetns::create("bench") else {
        println!("ipset bench skipped: see the reason above");
        return;
    };
    ns.run(|| {
        let mut h = IpsetHandle::open().expect("open ipset handle");
        let spec = SetSpec {
            default_timeout: EntryTimeout::from_secs(600),
            maxelem: 2 * BATCH_ENTRIES,
            ..SetSpec::new("bench", SetType::HashIp, Family::V4)
        };
        h.create(&spec).expect("create bench set");
        batch_throughput(&mut h);
        single_latency(&mut h);
        spawn_throughput();
    });
}

fn batch_throughput(h: &mut IpsetHandle) {
    let timeout = EntryTimeout::from_secs(600);
    let entries: Vec<(IpNet, EntryTimeout)> = (0..BATCH_ENTRIES).map(|i| (addr(i), timeout)).collect();
    let mut fresh = Vec::new();
    let mut refresh = Vec::new();
    for _ in 0..RUNS {
        h.flush("bench").expect("flush");
        let t = Instant::now();
        let report = h.add_batch("bench", &entries).expect("add_batch");
        fresh.push(t.elapsed());
        assert_eq!(report.applied, BATCH_ENTRIES as usize, "{:?}", report.failures.first());
        let t = Instant::now();
        let report = h.add_batch("bench", &entries).expect("re-add batch");
        refresh.push(t.elapsed());
        assert_eq!(report.applied, BATCH_ENTRIES as usize);
    }
    let elements = h.header("bench").expect("header").elements;
    assert_eq!(elements, BATCH_ENTRIES, "the kernel set holds every entry");
    let rate = |d: Duration| f64::from(BATCH_ENTRIES) / d.as_secs_f64();
    fresh.sort();
    refresh.sort();
    println!(
        "add_batch, {BATCH_ENTRIES} new entries:      median {:>9.0} adds/s ({:?}), best {:>9.0} adds/s",
        rate(fresh[RUNS / 2]),
        fresh[RUNS / 2],
        rate(fresh[0])
    );
    println!(
        "add_batch, {BATCH_ENTRIES} refreshed entries: median {:>9.0} adds/s ({:?}), best {:>9.0} adds/s",
        rate(refresh[RUNS / 2]),
        refresh[RUNS / 2],
        rate(refresh[0])
    );
    h.flush("bench").expect("flush");
}

fn single_latency(h: &mut IpsetHandle) {
    let timeout = EntryTimeout::from_secs(600);
    let mut samples = Vec::with_capacity(SINGLE_ENTRIES as usize);
    let start = Instant::now();
    for i in 0..SINGLE_ENTRIES {
        let t = Instant::now();
        h.add("bench", addr(i), timeout).expect("add");
        samples.push(t.elapsed());
    }
    let total = start.elapsed();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "add, single entry ({SINGLE_ENTRIES} calls): p50 {:?}, p99 {:?}, max {:?}; {:.0} adds/s",
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1],
        f64::from(SINGLE_ENTRIES) / total.as_secs_f64()
    );
    h.flush("bench").expect("flush");
}

fn spawn_throughput() {
    if !netns::have_program("ipset") {
        println!("ipset add per entry: skipped, the ipset binary is not installed (apt-get install ipset)");
        return;
    }
    // Children inherit this thread's network namespace.
    let start = Instant::now();
    for i in 0..SPAWN_ENTRIES {
        let ip = addr(i).addr().to_string();
        let status = Command::new("ipset")
            .args(["add", "bench", &ip, "timeout", "600", "-exist"])
            .status()
            .expect("run ipset");
        assert!(status.success(), "ipset add {ip}: {status}");
    }
    let total = start.elapsed();
    println!(
        "ipset add, one process per entry ({SPAWN_ENTRIES}): {:.0} adds/s ({:?} each)",
        f64::from(SPAWN_ENTRIES) / total.as_secs_f64(),
        total / SPAWN_ENTRIES
    );
}

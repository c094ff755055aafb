//! Ban replication across hosts, measured on one machine: a hub namespace
//! running `redis-server` behind a bridge, and hosts in their own namespaces,
//! each running `warden run` (this build) with its own state and ipsets (see
//! `tests/support/cluster_lab.rs`).
//!
//! Run as root with redis-server installed: `bench/cluster` (or
//! `cargo bench --bench cluster`; `-- --quick` for small sizes, `-- --active N`
//! for another number of active bans). Prints:
//! - **propagation**: for 1,000 bans decided one after another on h1 (each
//!   sent to its control socket), the time from sending the ban to the entry
//!   being in the remote set of each of 5 other hosts (checked over netlink
//!   inside each namespace every 200 µs, from the moment the ban is sent):
//!   p50, p99 and max over the 5,000 arrivals, and p50/p99 of the slowest
//!   host per ban;
//! - **Redis memory** per 100,000 active bans: `used_memory` after h1's bans
//!   minus before, scaled, and `MEMORY USAGE` of h1's stream, hash and index;
//! - **catch-up**: a new host joining with 100,000 bans active in the
//!   cluster: from `warden run` starting to every ban in its remote set.

#[path = "../tests/support/cluster_lab.rs"]
mod cluster_lab;
#[path = "../tests/support/lab.rs"]
mod lab;
#[path = "../tests/support/netns.rs"]
mod netns;
#[path = "../tests/support/topology.rs"]
mod topology;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cluster_lab::{Cluster, Host, Role};
use ipnet::IpNet;
use warden::control::{Client, Request, Response};
use warden::firewall::ipset::{Family, IpsetHandle};
use warden::firewall::rules::remote_set_name;

/// Followers watched for propagation (the issue asks for 5).
const FOLLOWERS: usize = 5;
/// Remote limits high enough for the bench's bursts.
const ROLE: Role =
    Role { enforcer_only: false, limits: "{rate: 100000000/min, max_active: 10000000}", acl: false };

struct Sizes {
    latency_bans: u32,
    active_bans: u32,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too and
    // passes nothing, so only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("CLUSTER_BENCH_QUICK").is_some();
    let mut sizes = if quick {
        Sizes { latency_bans: 50, active_bans: 2_000 }
    } else {
        Sizes { latency_bans: 1_000, active_bans: 100_000 }
    };
    // `--active N`: another number of active bans for memory and catch-up.
    let args: Vec<String> = std::env::args().collect();
    if let Some(n) = args.iter().position(|a| a == "--active").and_then(|i| args.get(i + 1)?.parse().ok()) {
        sizes.active_bans = n;
    }
    if !cluster_lab::prerequisites() {
        return;
    }
    let roles = vec![ROLE; FOLLOWERS + 1];
    let Some(mut cluster) = Cluster::new("bench-cl", &roles) else { return };
    println!("cluster of {} hosts up (warden {})", roles.len(), env!("CARGO_PKG_VERSION"));
    let client = Client::new(cluster.host(1).path("run/warden.sock"), Duration::from_secs(120));

    propagation(&cluster, &client, sizes.latency_bans);
    if let Some(dir) = std::env::var_os("CLUSTER_BENCH_LOGS") {
        for host in &cluster.hosts {
            let _ = std::fs::copy(
                host.path("daemon.log"),
                std::path::Path::new(&dir).join(format!("{}.log", host.name)),
            );
        }
    }
    let before = used_memory(&cluster);
    let total = sizes.latency_bans + sizes.active_bans;
    let started = Instant::now();
    ban_many(&client, sizes.latency_bans..total);
    let followers: Vec<usize> = (2..=FOLLOWERS + 1).collect();
    for &i in &followers {
        wait_for_entries(cluster.host(i), total as usize, Duration::from_secs(600));
    }
    println!(
        "{} more bans on h1 enforced on {FOLLOWERS} hosts in {:.1} s (bans sent 1,000 per request)",
        sizes.active_bans,
        started.elapsed().as_secs_f64()
    );
    memory(&cluster, before, total);
    catch_up(&mut cluster, total);
}

/// The bench's i-th address, in 198.18.0.0/15 (RFC 2544's benchmarking range).
fn target(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i)
}

fn propagation(cluster: &Cluster, client: &Client, bans: u32) {
    // One watcher per follower, inside its namespace, with its own socket.
    let mut watchers = Vec::new();
    let (report, arrivals) = mpsc::channel::<Duration>();
    for host in &cluster.hosts[1..=FOLLOWERS] {
        let (tx, rx) = mpsc::channel::<(IpNet, Instant)>();
        let report = report.clone();
        host.ns.spawn(move || {
            let set = remote_set_name(Family::V4);
            let mut handle = IpsetHandle::open().expect("an ipset socket");
            for (net, sent) in rx {
                while !handle.test(&set, net).expect("ipset test") {
                    std::thread::sleep(Duration::from_micros(200));
                    assert!(sent.elapsed() < Duration::from_secs(30), "{net} never arrived");
                }
                let _ = report.send(sent.elapsed());
            }
        });
        watchers.push(tx);
    }
    let mut all = Vec::new();
    let mut slowest = Vec::new();
    for i in 0..bans {
        let net = IpNet::from(IpAddr::V4(target(i)));
        // The watchers look from the moment the ban is sent: h1 answers only
        // once its own kernel holds it, which the others need not wait for.
        let sent = Instant::now();
        for watcher in &watchers {
            watcher.send((net, sent)).expect("a watcher");
        }
        let request =
            Request::Ban { jail: "web".into(), target: net.addr().to_string(), duration: Some("1h".into()) };
        match client.call(request) {
            Ok(Response::Ok { .. }) => {}
            other => panic!("ban {net} on h1: {other:?}"),
        }
        let times: Vec<Duration> = (0..FOLLOWERS).map(|_| arrivals.recv().expect("an arrival")).collect();
        slowest.push(*times.iter().max().unwrap_or(&Duration::ZERO));
        all.extend(times);
    }
    all.sort();
    slowest.sort();
    println!(
        "propagation over {bans} bans to {FOLLOWERS} hosts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         (slowest host per ban: p50 {:.1} ms, p99 {:.1} ms); target p99 < 50 ms",
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0)),
        ms(*all.last().unwrap_or(&Duration::ZERO)),
        ms(percentile(&slowest, 50.0)),
        ms(percentile(&slowest, 99.0)),
    );
}

/// Bans targets `range` on h1, 1,000 per request.
fn ban_many(client: &Client, range: std::ops::Range<u32>) {
    let all: Vec<u32> = range.collect();
    for chunk in all.chunks(1000) {
        let targets = chunk.iter().map(|i| target(*i).to_string()).collect();
        let request = Request::BanMany { jail: "web".into(), targets, duration: Some("1d".into()) };
        match client.call(request) {
            Ok(Response::Ok { .. }) => {}
            other => panic!("ban_many on h1: {other:?}"),
        }
    }
}

fn memory(cluster: &Cluster, before: u64, bans: u32) {
    let after = used_memory(cluster);
    let per = (after.saturating_sub(before)) as f64 * 100_000.0 / f64::from(bans);
    let usage = |key: &str| -> u64 {
        cluster.hub.redis_cli(&["MEMORY", "USAGE", key, "SAMPLES", "0"]).trim().parse().unwrap_or(0)
    };
    let (stream, hash, index) =
        (usage("warden:{w}:ev:h1"), usage("warden:{w}:bans:h1"), usage("warden:{w}:exp:h1"));
    let scale = |bytes: u64| bytes as f64 * 100_000.0 / f64::from(bans) / 1_048_576.0;
    println!(
        "Redis memory per 100,000 active bans: {:.1} MiB used_memory ({} bans: stream {:.1} MiB, hash {:.1} MiB, \
         expiry index {:.1} MiB per 100,000)",
        per / 1_048_576.0,
        bans,
        scale(stream),
        scale(hash),
        scale(index)
    );
}

fn used_memory(cluster: &Cluster) -> u64 {
    let info = cluster.hub.redis_cli(&["INFO", "memory"]);
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO memory has used_memory")
}

fn catch_up(cluster: &mut Cluster, bans: u32) {
    let index = cluster.hosts.len() as u8 + 1;
    let mut host = Host::new(&cluster.hub, "bench-cl", index, &ROLE).expect("a new host namespace");
    let started = Instant::now();
    host.start();
    let up = started.elapsed();
    wait_for_entries(&host, bans as usize, Duration::from_secs(600));
    let all = started.elapsed();
    println!(
        "catch-up: a new host reached {bans} active bans {:.2} s after `warden run` started (answering after {:.2} s); \
         target < 5 s",
        all.as_secs_f64(),
        up.as_secs_f64()
    );
    cluster.hosts.push(host);
}

/// Waits until `host`'s remote set holds at least `count` entries.
fn wait_for_entries(host: &Host, count: usize, within: Duration) {
    let started = Instant::now();
    let set = remote_set_name(Family::V4);
    host.ns.run(|| {
        let mut handle = IpsetHandle::open().expect("an ipset socket");
        loop {
            let held = handle.header(&set).map(|h| h.elements as usize).unwrap_or(0);
            if held >= count {
                return;
            }
            assert!(started.elapsed() < within, "{} holds {held} of {count} after {within:?}", host.name);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

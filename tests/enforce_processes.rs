//! No process per ban: 10,000 bans and unbans through [`Enforcer::ban`] and
//! [`Enforcer::unban`] while a sampler thread counts this process's
//! children about every millisecond. Children may appear only while the
//! enforcer starts (iptables-save/-restore, one at a time), never during
//! the bans, and none is left behind, zombie or not.
//!
//! Alone in its test binary so no other test's helpers (`ip netns …`)
//! count as children. Root required; skipped with a reason elsewhere,
//! never skipped with CI=true.

#[path = "support/netns.rs"]
mod netns;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use warden::core::{Ban, BanOrigin, Timestamp};
use warden::firewall::backend::Backend;
use warden::firewall::enforcer::{ConntrackOutcome, Enforcer, EnforcerConfig};
use warden::firewall::rules::JailRules;

const BANS: u32 = 10_000;

/// Phases of the test, as the sampler files its observations.
const SETUP: usize = 0;
const START: usize = 1;
const BANNING: usize = 2;
const DONE: usize = 3;

/// The pids of this process's children: every thread's `children` file
/// (a child belongs to the thread that forked it).
fn children() -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return pids };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    pids
}

/// Processes whose parent is this process and which are zombies, by a scan
/// of /proc (independent of the `children` files).
fn zombies() -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse::<u32>().ok()));
        if ppid == Some(me) && state == Some("Z") {
            found.push(pid);
        }
    }
    found
}

#[derive(Default)]
struct Observed {
    samples: [usize; 4],
    most: [usize; 4],
    pids: [BTreeSet<u32>; 4],
}

fn ban(i: u32) -> Ban {
    Ban {
        net: IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + i))), // 10.100.0.0 and up
        jail: "many".into(),
        origin: BanOrigin::Jail,
        at: Timestamp::from_secs(1_000),
        until: Some(Timestamp::from_secs(4_600)),
        count: 1,
        failures: 5,
    }
}

#[test]
fn bans_and_unbans_spawn_no_process() {
    if std::fs::metadata("/proc/self/task").is_err() {
        panic!("/proc is not mounted: cannot count child processes");
    }
    let Some(ns) = netns::TestNetns::create("procs") else { return };
    assert!(
        std::fs::metadata(format!("/proc/self/task/{}/children", std::process::id())).is_ok(),
        "this kernel has no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN); cannot count children"
    );

    let phase = Arc::new(AtomicUsize::new(SETUP));
    let stop = Arc::new(AtomicBool::new(false));
    let observed = Arc::new(Mutex::new(Observed::default()));
    let sampler = {
        let (phase, stop, observed) = (Arc::clone(&phase), Arc::clone(&stop), Arc::clone(&observed));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = phase.load(Ordering::SeqCst);
                let pids = children();
                let mut o = observed.lock().unwrap();
                o.samples[now] += 1;
                o.most[now] = o.most[now].max(pids.len());
                o.pids[now].extend(pids);
                drop(o);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // Wait for the sampler's first samples before anything happens.
    while observed.lock().unwrap().samples[SETUP] < 2 {
        std::thread::yield_now();
    }

    let now = Timestamp::from_secs(1_000);
    ns.run(|| {
        let config = EnforcerConfig { backend: Some(Backend::Nft), ..EnforcerConfig::default() };
        let mut enforcer = Enforcer::new(config, vec![JailRules::new("many")], vec![]);
        phase.store(START, Ordering::SeqCst);
        enforcer.start(&[], now).unwrap();

        phase.store(BANNING, Ordering::SeqCst);
        for i in 0..BANS {
            let done = enforcer.ban(&ban(i), now).unwrap();
            let conntrack = &done.conntrack;
            assert!(
                matches!(conntrack, ConntrackOutcome::Deleted(0) | ConntrackOutcome::Pending),
                "{conntrack:?}"
            );
        }
        assert!(matches!(enforcer.flush_conntrack(), ConntrackOutcome::Deleted(0)));
        for i in 0..BANS {
            assert!(enforcer.unban(&ban(i).net, "many").unwrap(), "ban {i} was in the set");
        }
        phase.store(DONE, Ordering::SeqCst);
    });
    // A few samples after the bans, then stop.
    while observed.lock().unwrap().samples[DONE] < 2 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let o = observed.lock().unwrap();
    eprintln!(
        "samples per phase (setup, start, bans, after): {:?}; most children at once: {:?}",
        o.samples, o.most
    );
    assert!(o.samples[BANNING] >= 10, "the sampler ran during the bans ({} samples)", o.samples[BANNING]);
    assert!(o.most[START] >= 1, "the sampler saw start's iptables children (it can see children at all)");
    assert!(o.pids[BANNING].is_empty(), "children during bans and unbans: {:?}", o.pids[BANNING]);
    assert!(o.most.iter().all(|&n| n <= 1), "more than one child at once: {:?}", o.most);
    assert_eq!(children(), Vec::<u32>::new(), "no child is left");
    assert_eq!(zombies(), Vec::<u32>::new(), "no zombie is left");
    drop(ns);
}

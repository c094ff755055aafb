//! The state file does not grow without bound: cycles of many bans and
//! failures that expire and are swept leave a file no bigger, within a
//! generous factor, than after the first cycle.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use warden::core::{Ban, BanOrigin, Timestamp};
use warden::store::{Batch, FailureRecord, Retention, Store};

const CYCLES: u32 = 20;
const PER_CYCLE: u32 = 1_000;
const HOUR: i64 = 3600;
/// Failure records per batch commit, as a daemon would group them.
const BATCH: usize = 500;

/// A different address for every (cycle, n), so keys churn as on a real host.
fn addr(cycle: u32, n: u32) -> IpAddr {
    let i = cycle * PER_CYCLE + n;
    if n.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i))
    } else {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (i >> 16) as u16, i as u16))
    }
}

fn file_size(store: &Store) -> u64 {
    std::fs::metadata(store.path()).unwrap().len()
}

#[test]
fn sweeping_and_compacting_keeps_the_file_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_in(dir.path()).unwrap();
    // A standing population that never expires, so the file is never trivially empty.
    let permanent: Vec<Ban> = (0..500u32)
        .map(|n| Ban {
            net: IpAddr::V4(Ipv4Addr::from(0xC633_6400 + n)).into(),
            jail: "manual".into(),
            origin: BanOrigin::Manual,
            at: Timestamp::from_secs(0),
            until: None,
            count: 1,
            failures: 0,
        })
        .collect();
    store.put_bans(&permanent).unwrap();

    let retention = Retention { failures: Duration::from_secs(600), history: Duration::from_secs(2 * 3600) };
    let mut first: Option<(u64, u64)> = None;
    for cycle in 0..CYCLES {
        let start = i64::from(cycle) * 3 * HOUR;
        let bans: Vec<Ban> = (0..PER_CYCLE)
            .map(|n| Ban {
                net: addr(cycle, n).into(),
                jail: "sshd".into(),
                origin: BanOrigin::Jail,
                at: Timestamp::from_secs(start),
                until: Some(Timestamp::from_secs(start + 600)),
                count: 1,
                failures: 5,
            })
            .collect();
        store.put_bans(&bans).unwrap();
        let failures: Vec<FailureRecord> = (0..PER_CYCLE)
            .map(|n| FailureRecord {
                jail: "nginx".into(),
                addr: addr(cycle, n),
                times: (0..4).map(|k| Timestamp::from_secs(start + k)).collect(),
            })
            .collect();
        for chunk in failures.chunks(BATCH) {
            store.commit_batch(&Batch { failures: chunk.to_vec(), ..Batch::default() }).unwrap();
        }
        let peak = file_size(&store);

        // Three hours later the bans, the failures and the history have all expired.
        let stats = store.sweep(Timestamp::from_secs(start + 3 * HOUR - 1), retention).unwrap();
        assert_eq!(stats.expired_bans.len(), PER_CYCLE as usize, "cycle {cycle}");
        assert_eq!(stats.failure_records_removed, PER_CYCLE as usize, "cycle {cycle}");
        assert_eq!(stats.history_removed, PER_CYCLE as usize, "cycle {cycle}");
        store.compact().unwrap();
        let compacted = file_size(&store);
        assert_eq!(store.bans().unwrap().len(), permanent.len(), "cycle {cycle}");
        assert!(store.all_failures().unwrap().is_empty(), "cycle {cycle}");

        let (first_peak, first_compacted) = *first.get_or_insert((peak, compacted));
        assert!(
            peak <= first_peak * 2,
            "cycle {cycle}: {peak} bytes before the sweep, {first_peak} in the first cycle"
        );
        assert!(
            compacted <= first_compacted * 2,
            "cycle {cycle}: {compacted} bytes after compaction, {first_compacted} in the first cycle"
        );
    }
}

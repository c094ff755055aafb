//! Unit tests of every store operation, on real files in temporary directories.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipnet::IpNet;
use redb::TableDefinition;

use super::*;
use crate::core::{Ban, BanOrigin, Timestamp};

const HOUR: Duration = Duration::from_secs(3600);

fn net(s: &str) -> IpNet {
    crate::core::parse_ip_or_net(s).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ban(target: &str, jail: &str, at_secs: i64, for_secs: Option<i64>) -> Ban {
    Ban {
        net: net(target),
        jail: jail.into(),
        origin: BanOrigin::Jail,
        at: Timestamp::from_secs(at_secs),
        until: for_secs.map(|d| Timestamp::from_secs(at_secs + d)),
        count: 1,
        failures: 5,
    }
}

fn failures(jail: &str, addr: &str, secs: &[i64]) -> FailureRecord {
    FailureRecord {
        jail: jail.into(),
        addr: ip(addr),
        times: secs.iter().map(|s| Timestamp::from_secs(*s)).collect(),
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn open_creates_the_directory_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/state").join(STATE_FILE_NAME);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);
    assert!(path.is_file());
    assert!(store.bans().unwrap().is_empty());
    assert!(store.history().unwrap().is_empty());
    assert!(store.all_failures().unwrap().is_empty());
    assert!(store.cursors().unwrap().is_empty());
}

#[test]
fn put_ban_then_read_and_remove_it() {
    let (_dir, store) = temp_store();
    let manual = Ban { origin: BanOrigin::Manual, ..ban("198.51.100.0/24", "webauth", 100, None) };
    let remote = Ban {
        origin: BanOrigin::Remote { host: "mx1".into() },
        ..ban("2001:db8::/64", "sshd", 100, Some(60))
    };
    store.put_ban(&remote).unwrap();
    store.put_ban(&manual).unwrap();

    // IPv4 sorts first; origins survive.
    assert_eq!(store.bans().unwrap(), [manual.clone(), remote.clone()]);
    // Host bits do not matter when looking a network up.
    assert_eq!(
        store.ban("webauth", "198.51.100.77/24".parse::<IpNet>().unwrap()).unwrap(),
        Some(manual.clone())
    );
    assert_eq!(store.ban("sshd", net("198.51.100.0/24")).unwrap(), None, "another jail's ban");
    assert_eq!(store.ban("webauth", net("203.0.113.1")).unwrap(), None);

    assert_eq!(store.remove_ban("webauth", net("2001:db8::/64")).unwrap(), None, "another jail's ban");
    assert_eq!(store.remove_ban("sshd", "2001:db8::1/64".parse::<IpNet>().unwrap()).unwrap(), Some(remote));
    assert_eq!(store.remove_ban("sshd", net("2001:db8::/64")).unwrap(), None);
    assert_eq!(store.bans().unwrap(), [manual]);
}

#[test]
fn a_new_ban_of_the_same_jail_on_the_same_network_replaces_the_old_one() {
    let (_dir, store) = temp_store();
    store.put_ban(&ban("203.0.113.9", "sshd", 100, Some(60))).unwrap();
    let longer = Ban { count: 2, ..ban("203.0.113.9", "sshd", 200, Some(3600)) };
    store.put_ban(&longer).unwrap();
    assert_eq!(store.bans().unwrap(), std::slice::from_ref(&longer));
    // An address stands for its host network.
    assert_eq!(store.history_of(ip("203.0.113.9")).unwrap().map(|h| h.count), Some(2));
    assert_eq!(store.remove_ban("sshd", ip("203.0.113.9")).unwrap(), Some(longer));
    assert!(store.bans().unwrap().is_empty());
}

#[test]
fn two_jails_ban_one_network_independently_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = ban("203.0.113.9", "sshd", 100, Some(600));
    let recidive = Ban { count: 2, ..ban("203.0.113.9", "recidive", 200, Some(7 * 24 * 3600)) };
    let other = ban("203.0.113.10", "sshd", 100, Some(600));
    {
        let store = Store::open_in(dir.path()).unwrap();
        store.put_bans(&[recidive.clone(), sshd.clone(), other.clone()]).unwrap();
        // Address order, then jail order.
        assert_eq!(store.bans().unwrap(), [recidive.clone(), sshd.clone(), other.clone()]);
        assert_eq!(store.bans_on(ip("203.0.113.9")).unwrap(), [recidive.clone(), sshd.clone()]);
        assert_eq!(store.active_bans(Timestamp::from_secs(150)).unwrap().len(), 3);
        // The shorter sshd ban ends: the recidive ban stays.
        assert_eq!(store.remove_ban("sshd", ip("203.0.113.9")).unwrap(), Some(sshd.clone()));
        store.close().unwrap();
    }
    let store = Store::open_in(dir.path()).unwrap();
    assert_eq!(store.bans().unwrap(), [recidive.clone(), other]);
    assert_eq!(store.ban("recidive", ip("203.0.113.9")).unwrap(), Some(recidive));
    assert_eq!(store.ban("sshd", ip("203.0.113.9")).unwrap(), None);
    assert_eq!(store.history_of(ip("203.0.113.9")).unwrap().map(|h| h.count), Some(2), "shared history");
    assert!(store.bans_on(ip("203.0.113.8")).unwrap().is_empty());
}

#[test]
fn remove_bans_removes_each_named_ban_and_returns_those_that_were_there() {
    let (_dir, store) = temp_store();
    let bans: Vec<Ban> = ["sshd", "nginx", "recidive"]
        .into_iter()
        .flat_map(|jail| (1..=3).map(move |i| ban(&format!("192.0.2.{i}"), jail, 10, Some(60))))
        .collect();
    store.put_bans(&bans).unwrap();
    let asked = [
        ("sshd".to_string(), net("192.0.2.1")),
        ("recidive".to_string(), net("192.0.2.3")),
        ("manual".to_string(), net("192.0.2.2")), // never banned
        ("sshd".to_string(), net("192.0.2.2")),
        ("sshd".to_string(), net("192.0.2.1")), // asked twice: gone already
    ];
    let removed = store.remove_bans(&asked).unwrap();
    let removed_keys: Vec<(String, IpNet)> = removed.iter().map(|b| (b.jail.clone(), b.net)).collect();
    assert_eq!(removed_keys, [asked[0].clone(), asked[1].clone(), asked[3].clone()]);
    let left: Vec<Ban> = bans.iter().filter(|b| !removed.contains(b)).cloned().collect();
    let mut stored = store.bans().unwrap();
    stored.sort_by(|a, b| (&a.jail, a.net).cmp(&(&b.jail, b.net)));
    let mut expected = left;
    expected.sort_by(|a, b| (&a.jail, a.net).cmp(&(&b.jail, b.net)));
    assert_eq!(stored, expected);
    assert_eq!(stored.len(), 6);
    assert!(store.remove_bans(&[]).unwrap().is_empty());
}

#[test]
fn put_bans_stores_them_all() {
    let (_dir, store) = temp_store();
    let bans: Vec<Ban> = (1..=20).map(|i| ban(&format!("192.0.2.{i}"), "sshd", 10, Some(60))).collect();
    store.put_bans(&bans).unwrap();
    let mut stored = store.bans().unwrap();
    stored.sort_by_key(|b| b.net);
    assert_eq!(stored, bans);
}

#[test]
fn active_bans_leave_out_expired_ones() {
    let (_dir, store) = temp_store();
    let short = ban("192.0.2.1", "sshd", 100, Some(10));
    let long = ban("192.0.2.2", "sshd", 100, Some(1000));
    let forever = ban("192.0.2.3", "manual", 100, None);
    store.put_bans(&[short.clone(), long.clone(), forever.clone()]).unwrap();
    assert_eq!(
        store.active_bans(Timestamp::from_secs(105)).unwrap(),
        [short.clone(), long.clone(), forever.clone()]
    );
    assert_eq!(store.active_bans(Timestamp::from_secs(110)).unwrap(), [long, forever.clone()]);
    assert_eq!(store.active_bans(Timestamp::from_secs(100_000)).unwrap(), [forever]);
    assert_eq!(store.bans().unwrap().len(), 3, "expired bans stay until swept");
}

#[test]
fn bans_raise_history_and_never_lower_it() {
    let (_dir, store) = temp_store();
    let target = net("203.0.113.7");
    store.put_ban(&Ban { count: 3, ..ban("203.0.113.7", "sshd", 500, Some(60)) }).unwrap();
    let expected = HistoryEntry { net: target, count: 3, last: Timestamp::from_secs(500) };
    assert_eq!(store.history_of(target).unwrap(), Some(expected));

    // A replayed older ban (a remote host catching up) lowers nothing.
    store.put_ban(&Ban { count: 1, ..ban("203.0.113.7", "nginx", 100, Some(60)) }).unwrap();
    assert_eq!(store.history_of(target).unwrap(), Some(expected));

    store.put_ban(&Ban { count: 4, ..ban("203.0.113.7", "sshd", 900, Some(60)) }).unwrap();
    assert_eq!(
        store.history_of(target).unwrap().map(|h| (h.count, h.last)),
        Some((4, Timestamp::from_secs(900)))
    );

    // Removing the bans keeps the history: the next ban must be longer.
    store.remove_bans(&[("sshd".into(), target), ("nginx".into(), target)]).unwrap();
    assert!(store.bans().unwrap().is_empty());
    assert_eq!(store.history_of(target).unwrap().map(|h| h.count), Some(4));
}

#[test]
fn a_banned_networks_history_is_its_bans_until_they_leave() {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let (_dir, store) = temp_store();
    store.record_history(net("192.0.2.200"), 9, Timestamp::from_secs(1)).unwrap();
    store.record_history(net("2001:db8::9"), 2, Timestamp::from_secs(2)).unwrap();
    let sshd = Ban { count: 3, ..ban("192.0.2.7", "sshd", 500, Some(60)) };
    let web = Ban { count: 2, ..ban("192.0.2.7", "web", 600, Some(60)) };
    let v6 = ban("2001:db8::1", "web", 700, None);
    store.put_bans(&[sshd.clone(), web.clone(), v6.clone()]).unwrap();
    // A replayed older ban of the same jail replaces the record, not the history.
    store.put_ban(&Ban { count: 1, ..ban("192.0.2.7", "sshd", 100, Some(60)) }).unwrap();
    assert_eq!(
        store.history().unwrap(),
        [
            HistoryEntry { net: net("192.0.2.7"), count: 3, last: Timestamp::from_secs(600) },
            HistoryEntry { net: net("192.0.2.200"), count: 9, last: Timestamp::from_secs(1) },
            HistoryEntry { net: net("2001:db8::1"), count: 1, last: Timestamp::from_secs(700) },
            HistoryEntry { net: net("2001:db8::9"), count: 2, last: Timestamp::from_secs(2) },
        ]
    );
    assert_eq!(
        store.history_of(net("192.0.2.7")).unwrap(),
        Some(HistoryEntry { net: net("192.0.2.7"), count: 3, last: Timestamp::from_secs(600) })
    );
    let store_path = store.path().to_path_buf();
    store.close().unwrap();
    {
        // Two entries recorded by hand, one raised by the replaced ban: the
        // bans themselves wrote none.
        let db = redb::Database::create(&store_path).unwrap();
        let rows = db.begin_read().unwrap().open_table(schema::HISTORY).unwrap().len().unwrap();
        assert_eq!(rows, 3);
    }
    let store = Store::open(&store_path).unwrap();
    store.remove_bans(&[("sshd".into(), net("192.0.2.7")), ("web".into(), net("192.0.2.7"))]).unwrap();
    assert!(store.bans_on(net("192.0.2.7")).unwrap().is_empty());
    assert_eq!(
        store.history_of(net("192.0.2.7")).unwrap(),
        Some(HistoryEntry { net: net("192.0.2.7"), count: 3, last: Timestamp::from_secs(600) }),
        "the removed bans left their count and time behind"
    );
    let stats =
        store.sweep(Timestamp::from_secs(10_000), Retention { failures: HOUR, history: HOUR * 100 }).unwrap();
    assert!(stats.expired_bans.is_empty(), "v6 is permanent");
    assert_eq!(store.history_of(net("2001:db8::1")).unwrap().map(|h| h.count), Some(1));
}

#[test]
fn record_history_sets_exact_values_and_history_lists_in_order() {
    let (_dir, store) = temp_store();
    store.record_history(net("2001:db8::5"), 2, Timestamp::from_secs(20)).unwrap();
    store.record_history("192.0.2.9/24".parse::<IpNet>().unwrap(), 7, Timestamp::from_secs(70)).unwrap();
    store.record_history(net("192.0.2.0/24"), 1, Timestamp::from_secs(10)).unwrap();
    assert_eq!(
        store.history().unwrap(),
        [
            HistoryEntry { net: net("192.0.2.0/24"), count: 1, last: Timestamp::from_secs(10) },
            HistoryEntry { net: net("2001:db8::5"), count: 2, last: Timestamp::from_secs(20) },
        ]
    );
    assert_eq!(store.history_of(net("198.51.100.1")).unwrap(), None);
}

#[test]
fn failures_are_kept_per_jail_and_replaced_per_address() {
    let (_dir, store) = temp_store();
    store
        .put_failures(&[
            failures("sshd", "192.0.2.1", &[1, 2]),
            failures("sshd", "2001:db8::1", &[3]),
            // "ssh" is a prefix of "sshd": its records must not leak into sshd's.
            failures("ssh", "192.0.2.1", &[4]),
            failures("sshd-extra", "192.0.2.1", &[5]),
        ])
        .unwrap();
    assert_eq!(
        store.failures("sshd").unwrap(),
        [failures("sshd", "192.0.2.1", &[1, 2]), failures("sshd", "2001:db8::1", &[3])]
    );
    assert_eq!(store.failures("ssh").unwrap(), [failures("ssh", "192.0.2.1", &[4])]);
    assert!(store.failures("nginx").unwrap().is_empty());

    // A record replaces; an empty one deletes.
    store
        .put_failures(&[failures("sshd", "192.0.2.1", &[2, 6]), failures("sshd", "2001:db8::1", &[])])
        .unwrap();
    assert_eq!(store.failures("sshd").unwrap(), [failures("sshd", "192.0.2.1", &[2, 6])]);
    assert_eq!(store.all_failures().unwrap().len(), 3);
}

#[test]
fn cursors_are_set_replaced_and_removed() {
    let (_dir, store) = temp_store();
    store
        .put_cursors(&[
            ("docker:abc", b"2026-11-21T15:01:17.000000001Z".as_slice()),
            ("file:/var/log/x", b"1:2"),
        ])
        .unwrap();
    store.put_cursors(&[("file:/var/log/x", b"1:99")]).unwrap();
    assert_eq!(store.cursor("file:/var/log/x").unwrap(), Some(b"1:99".to_vec()));
    assert_eq!(store.cursor("journald").unwrap(), None);
    store.commit_batch(&Batch { removed_cursors: vec!["docker:abc".into()], ..Batch::default() }).unwrap();
    assert_eq!(store.cursors().unwrap(), [("file:/var/log/x".to_string(), b"1:99".to_vec())]);
}

#[test]
fn a_batch_commits_failures_and_cursors_together_and_durably_every_so_often() {
    let (_dir, store) = temp_store();
    store.commit_batch(&Batch::default()).unwrap();
    assert_eq!(store.pending_batches.load(Ordering::Relaxed), 0, "an empty batch commits nothing");

    let batch = Batch {
        failures: vec![failures("sshd", "192.0.2.1", &[1])],
        cursors: vec![("journald".into(), b"s=1".to_vec())],
        removed_cursors: vec![],
    };
    store.commit_batch(&batch).unwrap();
    assert_eq!(store.failures("sshd").unwrap(), batch.failures, "visible before it is durable");
    assert_eq!(store.cursor("journald").unwrap(), Some(b"s=1".to_vec()));
    assert_eq!(store.pending_batches.load(Ordering::Relaxed), 1);

    for _ in 1..MAX_PENDING_BATCHES {
        store.commit_batch(&batch).unwrap();
    }
    assert_eq!(store.pending_batches.load(Ordering::Relaxed), 0, "the last batch committed durably");
    store.commit_batch(&batch).unwrap();
    store.put_ban(&ban("192.0.2.1", "sshd", 1, Some(1))).unwrap();
    assert_eq!(store.pending_batches.load(Ordering::Relaxed), 0, "a ban makes earlier batches durable");
    store.commit_batch(&batch).unwrap();
    store.flush().unwrap();
    assert_eq!(store.pending_batches.load(Ordering::Relaxed), 0);
}

#[test]
fn everything_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let kept =
        Ban { origin: BanOrigin::Remote { host: "edge".into() }, ..ban("2001:db8::/48", "sshd", 5, None) };
    {
        let store = Store::open_in(dir.path()).unwrap();
        store.put_ban(&kept).unwrap();
        store.record_history(net("192.0.2.3"), 9, Timestamp::from_secs(3)).unwrap();
        // Non-durable batches, made durable when the store closes.
        store.put_failures(&[failures("sshd", "192.0.2.3", &[1, 2, 3])]).unwrap();
        store.put_cursors(&[("docker:abc", b"ts")]).unwrap();
    }
    let store = Store::open_in(dir.path()).unwrap();
    assert_eq!(store.bans().unwrap(), [kept]);
    assert_eq!(store.history_of(net("192.0.2.3")).unwrap().map(|h| h.count), Some(9));
    assert_eq!(store.failures("sshd").unwrap(), [failures("sshd", "192.0.2.3", &[1, 2, 3])]);
    assert_eq!(store.cursor("docker:abc").unwrap(), Some(b"ts".to_vec()));
}

#[test]
fn sweep_removes_what_expired_and_keeps_the_rest() {
    let (_dir, store) = temp_store();
    let now = Timestamp::from_secs(10 * 3600);
    let expired = Ban { count: 1, ..ban("192.0.2.1", "sshd", 3600, Some(60)) };
    let active = Ban { count: 1, ..ban("192.0.2.2", "sshd", 3600, Some(100 * 3600)) };
    let forever = ban("2001:db8::/64", "manual", 0, None);
    store.put_bans(&[expired.clone(), active.clone(), forever.clone()]).unwrap();
    // Old history without a ban, and one whose network is banned for good.
    store.record_history(net("198.51.100.1"), 3, Timestamp::from_secs(0)).unwrap();
    store
        .put_failures(&[
            failures("sshd", "203.0.113.1", &[3600, 9 * 3600 + 1, 9 * 3600 + 2]),
            failures("sshd", "203.0.113.2", &[60, 120]),
            failures("nginx", "203.0.113.1", &[10 * 3600]),
        ])
        .unwrap();

    let stats = store.sweep(now, Retention { failures: HOUR, history: 2 * HOUR }).unwrap();
    assert_eq!(stats.expired_bans, [expired]);
    assert_eq!(stats.failure_times_dropped, 3);
    assert_eq!(stats.failure_records_removed, 1);
    // 192.0.2.1 (last banned at 1h) and 198.51.100.1 go; 192.0.2.2 is banned
    // now and 2001:db8::/64 for ever, so both stay even though older than 2h.
    assert_eq!(stats.history_removed, 2);

    assert_eq!(store.bans().unwrap(), [active, forever]);
    let remembered: Vec<IpNet> = store.history().unwrap().iter().map(|h| h.net).collect();
    assert_eq!(remembered, [net("192.0.2.2"), net("2001:db8::/64")]);
    assert_eq!(
        store.failures("sshd").unwrap(),
        [failures("sshd", "203.0.113.1", &[9 * 3600 + 1, 9 * 3600 + 2])]
    );
    assert_eq!(store.failures("nginx").unwrap().len(), 1);

    let again = store.sweep(now, Retention { failures: HOUR, history: 2 * HOUR }).unwrap();
    assert_eq!(again, SweepStats::default(), "a second sweep finds nothing");
}

#[test]
fn compact_shrinks_the_file_after_a_sweep() {
    let (_dir, mut store) = temp_store();
    let bans: Vec<Ban> = (0..3000u32)
        .map(|i| ban(&std::net::Ipv4Addr::from(0xC000_0000 + i).to_string(), "sshd", 0, Some(10)))
        .collect();
    store.put_bans(&bans).unwrap();
    let full = std::fs::metadata(store.path()).unwrap().len();
    let stats =
        store.sweep(Timestamp::from_secs(10 * 3600), Retention { failures: HOUR, history: HOUR }).unwrap();
    assert_eq!(stats.expired_bans.len(), 3000);
    assert_eq!(stats.history_removed, 3000);
    assert!(store.compact().unwrap(), "there was something to compact");
    let compacted = std::fs::metadata(store.path()).unwrap().len();
    assert!(compacted < full, "compacted {compacted} bytes, was {full}");
    assert!(!store.compact().unwrap(), "a second compaction has nothing to move");
    assert!(store.bans().unwrap().is_empty());
}

#[test]
fn a_second_open_is_refused_while_the_file_is_in_use() {
    let (dir, store) = temp_store();
    let err = Store::open_in(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&store.path().display().to_string()), "{message}");
    assert!(message.contains("another warden"), "{message}");
    drop(store);
    Store::open_in(dir.path()).unwrap();
}

/// Writes a schema version into a closed state file, as another warden would.
fn stamp_schema_version(path: &std::path::Path, version: u64) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(schema::META).unwrap().insert(schema::SCHEMA_VERSION_KEY, version).unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_newer_schema_is_refused_with_the_versions_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    drop(Store::open(&path).unwrap());
    stamp_schema_version(&path, SCHEMA_VERSION + 1);

    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("newer warden"), "{message}");
    assert_eq!(err.path(), path);
}

#[test]
fn an_unknown_older_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    drop(Store::open(&path).unwrap());
    stamp_schema_version(&path, 0);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotWardenState { .. }), "{err:?}");
    assert!(err.to_string().contains("unknown schema version 0"), "{err}");
}

#[test]
fn another_programs_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        const OTHER: TableDefinition<u64, u64> = TableDefinition::new("orders");
        txn.open_table(OTHER).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotWardenState { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("orders") && message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn a_file_that_is_not_redb_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    let text = b"this is a text file, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotWardenState { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), text, "the file was left alone");
}

#[test]
fn a_corrupted_page_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    {
        let store = Store::open(&path).unwrap();
        let bans: Vec<Ban> = (1..=200).map(|i| ban(&format!("192.0.2.{i}"), "sshd", 0, None)).collect();
        store.put_bans(&bans).unwrap();
    }
    // Flip every byte after the first page: the header and both commit slots
    // stay readable, every tree page they point to is garbage.
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[4096..] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()) && message.contains("move it aside"), "{message}");
}

#[test]
fn io_errors_say_what_to_do_and_name_the_path() {
    let path = std::path::Path::new("/var/lib/warden/warden.redb");
    let denied =
        StoreError::from_io(path, "open", std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    assert!(matches!(denied, StoreError::PermissionDenied { .. }));
    let message = denied.to_string();
    assert!(
        message.contains("/var/lib/warden/warden.redb") && message.contains("permission denied"),
        "{message}"
    );

    let full = StoreError::from_io(path, "open", std::io::Error::from(std::io::ErrorKind::StorageFull));
    assert!(matches!(full, StoreError::Io { .. }));
    assert!(full.to_string().contains("/var/lib/warden/warden.redb"), "{full}");

    let corrupt = StoreError::from_redb(path, "open", redb::Error::Corrupted("bad checksum".into()));
    assert!(corrupt.to_string().contains("bad checksum"), "{corrupt}");
}

#[test]
fn an_unwritable_directory_gives_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let probe = locked.join("probe");
    if std::fs::write(&probe, b"").is_ok() {
        // Root (or CAP_DAC_OVERRIDE) ignores file modes; the classification
        // itself is covered by io_errors_say_what_to_do_and_name_the_path.
        eprintln!("skipped: this process can write to a read-only directory (running as root?)");
        return;
    }
    let err = Store::open_in(&locked).unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err:?}");
    assert!(err.to_string().contains(&locked.display().to_string()), "{err}");
}

#[test]
fn close_makes_batches_durable_and_releases_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    store.put_cursors(&[("journald", b"s=42")]).unwrap();
    assert_eq!(store.pending_batches.load(Ordering::Relaxed), 1);
    store.close().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    assert_eq!(store.cursor("journald").unwrap(), Some(b"s=42".to_vec()));
}

#[test]
fn threads_can_share_a_store() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();

    let (_dir, store) = temp_store();
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..25u8 {
                    store.put_ban(&ban(&format!("192.0.{t}.{i}"), "sshd", 1, None)).unwrap();
                    store.put_failures(&[failures("sshd", &format!("198.51.{t}.{i}"), &[1])]).unwrap();
                }
            });
        }
    });
    assert_eq!(store.bans().unwrap().len(), 100);
    assert_eq!(store.failures("sshd").unwrap().len(), 100);
}

#[test]
fn a_truncated_file_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    {
        let store = Store::open(&path).unwrap();
        let bans: Vec<Ban> = (1..=200).map(|i| ban(&format!("192.0.2.{i}"), "sshd", 0, None)).collect();
        store.put_bans(&bans).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn an_undecodable_record_is_named_and_a_sweep_meeting_it_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    {
        let store = Store::open(&path).unwrap();
        store.put_ban(&ban("192.0.2.1", "sshd", 0, Some(10))).unwrap();
    }
    {
        // A record no warden would write: an expired ban whose JSON is cut short.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let key = codec::net_key(&net("192.0.2.2"));
        txn.open_table(schema::BANS)
            .unwrap()
            .insert((key.as_slice(), "sshd"), (0, b"{\"net\":".as_slice()))
            .unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let err = store.bans().unwrap_err();
    assert!(matches!(err, StoreError::Decode { table: "bans", .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("192.0.2.2/32 of jail sshd") && message.contains(&path.display().to_string()),
        "{message}"
    );

    let err =
        store.sweep(Timestamp::from_secs(100), Retention { failures: HOUR, history: HOUR }).unwrap_err();
    assert!(matches!(err, StoreError::Decode { .. }), "{err:?}");
    // The sweep was aborted whole: the good expired ban is still there.
    assert_eq!(store.ban("sshd", net("192.0.2.1")).unwrap().map(|b| b.jail), Some("sshd".to_string()));
}

#[test]
fn sweep_removes_one_jails_expired_ban_and_keeps_anothers_on_the_same_network() {
    let (_dir, store) = temp_store();
    let now = Timestamp::from_secs(10 * 3600);
    let expired = ban("203.0.113.9", "sshd", 3600, Some(600));
    let active = Ban { count: 2, ..ban("203.0.113.9", "recidive", 3600, Some(7 * 24 * 3600)) };
    store.put_bans(&[expired.clone(), active.clone()]).unwrap();

    let stats = store.sweep(now, Retention { failures: HOUR, history: HOUR }).unwrap();
    assert_eq!(stats.expired_bans, [expired]);
    // Last banned 9 hours ago, but recidive still bans it: the history stays.
    assert_eq!(stats.history_removed, 0);
    assert_eq!(store.bans().unwrap(), [active]);
    assert_eq!(store.history_of(ip("203.0.113.9")).unwrap().map(|h| h.count), Some(2));
}

/// How many bans wait in the journal, and how many are in `bans` proper.
fn journal_and_table_lengths(store: &Store) -> (u64, u64) {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let txn = store.db.begin_read().unwrap();
    let journal = txn.open_table(schema::BAN_JOURNAL).unwrap().len().unwrap();
    (journal, txn.open_table(schema::BANS).unwrap().len().unwrap())
}

#[test]
fn journalled_bans_survive_a_restart_and_readers_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let first = ban("192.0.2.1", "sshd", 100, Some(600));
    let second = ban("2001:db8::/64", "nginx", 100, None);
    {
        let store = Store::open_in(dir.path()).unwrap();
        store.put_bans(std::slice::from_ref(&first)).unwrap();
        store.put_ban(&second).unwrap();
        assert_eq!(journal_and_table_lengths(&store), (2, 0), "stored in the journal only");
    }
    let store = Store::open_in(dir.path()).unwrap();
    assert_eq!(store.ban("sshd", net("192.0.2.1")).unwrap(), Some(first.clone()));
    assert_eq!(journal_and_table_lengths(&store), (0, 2), "a reader moves the journal first");
    assert_eq!(store.active_bans(Timestamp::from_secs(200)).unwrap(), [first, second]);
}

#[test]
fn the_journal_moves_into_the_table_when_it_reaches_its_bound() {
    let (_dir, store) = temp_store();
    let bound = bans::JOURNAL_FOLD_AT as u32;
    let many: Vec<Ban> = (0..bound)
        .map(|i| ban(&std::net::Ipv4Addr::from(0xC000_0000 + i).to_string(), "sshd", 100, Some(600)))
        .collect();
    let (most, last) = many.split_at(many.len() - 1);
    store.put_bans(most).unwrap();
    assert_eq!(journal_and_table_lengths(&store), (u64::from(bound) - 1, 0));
    store.put_bans(last).unwrap();
    assert_eq!(journal_and_table_lengths(&store), (0, u64::from(bound)), "moved in the same commit");
    store.put_ban(&ban("198.51.100.1", "sshd", 100, Some(600))).unwrap();
    assert_eq!(journal_and_table_lengths(&store), (1, u64::from(bound)));
    assert_eq!(store.bans().unwrap().len(), bound as usize + 1);
}

#[test]
fn journalled_bans_replace_in_the_order_stored_and_keep_the_history_they_replace() {
    let (_dir, store) = temp_store();
    let recidivist = Ban { count: 4, ..ban("203.0.113.7", "sshd", 5_000, Some(600)) };
    let replayed = Ban { count: 1, ..ban("203.0.113.7", "sshd", 1_000, Some(600)) };
    let newest = Ban { count: 2, ..ban("203.0.113.7", "sshd", 2_000, Some(60)) };
    store.put_ban(&recidivist).unwrap();
    // Two bans of one jail on one network in one commit: the later one stays.
    store.put_bans(&[replayed, newest.clone()]).unwrap();
    assert_eq!(store.bans().unwrap(), std::slice::from_ref(&newest));
    let history = store.history_of(ip("203.0.113.7")).unwrap().unwrap();
    assert_eq!((history.count, history.last), (4, Timestamp::from_secs(5_000)), "never lowered");
    // Removing a ban still in the journal removes it.
    store.put_ban(&ban("198.51.100.9", "nginx", 100, Some(600))).unwrap();
    assert_eq!(store.remove_ban("nginx", net("198.51.100.9")).unwrap().map(|b| b.jail), Some("nginx".into()));
    assert_eq!(store.bans().unwrap(), [newest]);
}

/// The version-1 layout of the bans table: network key → (expiry, JSON ban),
/// spelled out here rather than borrowed from `schema`, so the test keeps
/// describing what version 1 wrote.
const V1_BANS: TableDefinition<&[u8], (i64, &[u8])> = TableDefinition::new("bans");

/// Writes a version-1 state file holding `bans` (one per network, as
/// version 1 kept them), a history entry, a failure record and a cursor.
fn write_v1_file(path: &std::path::Path, bans: &[(IpNet, i64, Vec<u8>)]) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(schema::META).unwrap().insert(schema::SCHEMA_VERSION_KEY, 1).unwrap();
    {
        let mut table = txn.open_table(V1_BANS).unwrap();
        for (target, expiry, json) in bans {
            table.insert(codec::net_key(target).as_slice(), (*expiry, json.as_slice())).unwrap();
        }
    }
    let history_key = codec::net_key(&net("198.51.100.0/24"));
    txn.open_table(schema::HISTORY).unwrap().insert(history_key.as_slice(), (4, 4000)).unwrap();
    let failure_key = codec::addr_key(ip("192.0.2.50"));
    let times = codec::encode_times(&[Timestamp(1000), Timestamp(2000)]);
    txn.open_table(schema::FAILURES)
        .unwrap()
        .insert(("sshd", failure_key.as_slice()), times.as_slice())
        .unwrap();
    txn.open_table(schema::CURSORS).unwrap().insert("journald", b"s=7".as_slice()).unwrap();
    txn.commit().unwrap();
}

fn stored_schema_version(path: &std::path::Path) -> Option<u64> {
    use redb::ReadableDatabase;
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(schema::META).unwrap();
    meta.get(schema::SCHEMA_VERSION_KEY).unwrap().map(|v| v.value())
}

#[test]
fn a_version_1_file_is_migrated_in_place_keying_each_ban_by_its_jail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    let old = [
        Ban { origin: BanOrigin::Manual, ..ban("198.51.100.0/24", "webauth", 100, None) },
        ban("203.0.113.9", "recidive", 100, Some(7 * 24 * 3600)),
        Ban {
            origin: BanOrigin::Remote { host: "edge".into() },
            ..ban("2001:db8::/64", "sshd", 100, Some(60))
        },
    ];
    let rows: Vec<_> =
        old.iter().map(|b| (b.net, codec::expiry_millis(b), codec::encode_ban_json(b))).collect();
    write_v1_file(&path, &rows);
    assert_eq!(stored_schema_version(&path), Some(1));

    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.bans().unwrap(), old);
        assert_eq!(store.ban("recidive", ip("203.0.113.9")).unwrap(), Some(old[1].clone()));
        assert_eq!(store.ban("sshd", ip("203.0.113.9")).unwrap(), None);
        // The tables the migration does not touch are as they were; the
        // history read back also counts the bans (a banned network's history
        // is its bans), the larger count and the later time winning.
        assert_eq!(
            store.history().unwrap(),
            [
                HistoryEntry { net: net("198.51.100.0/24"), count: 4, last: Timestamp::from_secs(100) },
                HistoryEntry { net: net("203.0.113.9"), count: 1, last: Timestamp::from_secs(100) },
                HistoryEntry { net: net("2001:db8::/64"), count: 1, last: Timestamp::from_secs(100) },
            ]
        );
        assert_eq!(store.history_of(net("198.51.100.0/24")).unwrap().map(|h| h.count), Some(4));
        assert_eq!(
            store.failures("sshd").unwrap(),
            [FailureRecord {
                jail: "sshd".into(),
                addr: ip("192.0.2.50"),
                times: vec![Timestamp(1000), Timestamp(2000)]
            }]
        );
        assert_eq!(store.cursor("journald").unwrap(), Some(b"s=7".to_vec()));
        // Migrated bans behave as version-2 bans: another jail's ban coexists.
        let sshd = ban("203.0.113.9", "sshd", 200, Some(600));
        store.put_ban(&sshd).unwrap();
        assert_eq!(store.bans_on(ip("203.0.113.9")).unwrap(), [old[1].clone(), sshd.clone()]);
        assert_eq!(store.remove_ban("sshd", ip("203.0.113.9")).unwrap(), Some(sshd));
    }
    assert_eq!(stored_schema_version(&path), Some(SCHEMA_VERSION));
    // Reopening a migrated file changes nothing.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.bans().unwrap(), old);
}

#[test]
fn a_version_1_file_with_an_undecodable_ban_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    let good = ban("192.0.2.1", "sshd", 0, None);
    write_v1_file(
        &path,
        &[
            (good.net, codec::expiry_millis(&good), codec::encode_ban_json(&good)),
            (net("192.0.2.2"), 0, b"{\"net\":".to_vec()),
        ],
    );
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Decode { table: "bans", .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("192.0.2.2/32")
            && message.contains("schema version 1")
            && message.contains(&path.display().to_string()),
        "{message}"
    );
    // The migration's transaction was dropped: still version 1, the old ban intact.
    assert_eq!(stored_schema_version(&path), Some(1));
    use redb::ReadableDatabase;
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(V1_BANS).unwrap();
    let stored = table.get(codec::net_key(&good.net).as_slice()).unwrap().unwrap();
    assert_eq!(codec::decode_ban_json(stored.value().1).unwrap(), good);
}

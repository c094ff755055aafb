//! Crash safety of the store: a child process stores bans in a loop and prints
//! each one after `put_ban` returns; the test SIGKILLs it mid-write, reopens the
//! file and checks that every acknowledged ban is there and every acknowledged
//! removal is not, for several kill points on the same file, and that the
//! non-durable batches in between stayed atomic. Bans come in pairs of two
//! jails on one network, so removing one jail's ban must leave the other's.
//!
//! The child is this test binary itself, re-run with only
//! [`crash_child_writes_bans_until_killed`] selected and an environment
//! variable naming the state file, so no extra binary is needed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use warden::core::{Ban, BanOrigin, Timestamp};
use warden::store::{Batch, FailureRecord, Store};

/// Set in the child's environment: the state file to write.
const CHILD_PATH_ENV: &str = "WARDEN_STORE_CRASH_CHILD";
/// Set in the child's environment: the index of its first ban.
const CHILD_START_ENV: &str = "WARDEN_STORE_CRASH_START";
const CHILD_TEST: &str = "crash_child_writes_bans_until_killed";
/// How long the child may take to acknowledge what the test waits for.
const DEADLINE: Duration = Duration::from_secs(60);
/// The child stops by itself after this many bans, should the parent vanish.
const CHILD_MAX_BANS: u32 = 100_000;

/// The ban number `i` the child stores; a pure function of `i`, so the parent
/// can check the stored value, origin included. Bans `2k` and `2k + 1` share
/// network `k` and differ in jail (consecutive numbers differ modulo 3).
fn ban_number(i: u32) -> Ban {
    let k = i / 2;
    let addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (k >> 16) as u16, k as u16);
    Ban {
        net: IpAddr::V6(addr).into(),
        jail: format!("jail-{}", i % 3),
        origin: match i % 3 {
            0 => BanOrigin::Jail,
            1 => BanOrigin::Manual,
            _ => BanOrigin::Remote { host: format!("peer-{i}") },
        },
        at: Timestamp::from_secs(1_700_000_000 + i64::from(i)),
        until: (!i.is_multiple_of(4)).then(|| Timestamp::from_secs(1_800_000_000)),
        count: i % 5 + 1,
        failures: i % 11,
    }
}

/// The number of a stored ban: its network gives the pair, its jail which
/// of the two.
fn number_of(ban: &Ban) -> u32 {
    let IpAddr::V6(addr) = ban.net.addr() else { panic!("unexpected ban {ban:?}") };
    let seg = addr.segments();
    let k = (u32::from(seg[6]) << 16) | u32::from(seg[7]);
    let jail: u32 = ban.jail.strip_prefix("jail-").and_then(|n| n.parse().ok()).unwrap();
    if (2 * k) % 3 == jail { 2 * k } else { 2 * k + 1 }
}

/// The ban after whose storing the child removes ban `j`, if it ever does:
/// some alone with `remove_ban`, some together with `remove_bans`.
fn removal_of(j: u32) -> Option<u32> {
    if j % 7 == 3 {
        Some(j + 3)
    } else if j % 11 == 4 || j % 11 == 5 {
        Some(j - j % 11 + 9)
    } else {
        None
    }
}

/// The bans the child removes after storing ban `i`.
fn removals_after(i: u32) -> Vec<u32> {
    (i.saturating_sub(5)..i).filter(|j| removal_of(*j) == Some(i)).collect()
}

#[test]
#[ignore = "the child process of kill_mid_write_loses_no_acknowledged_ban, which runs it itself"]
fn crash_child_writes_bans_until_killed() {
    let Some(path) = std::env::var_os(CHILD_PATH_ENV) else {
        eprintln!("{CHILD_TEST} does nothing unless {CHILD_PATH_ENV} names a state file");
        return;
    };
    let start: u32 = std::env::var(CHILD_START_ENV).unwrap().parse().unwrap();
    let store = Store::open(&path).unwrap();
    let mut out = std::io::stdout().lock();
    for i in start..start + CHILD_MAX_BANS {
        store.put_ban(&ban_number(i)).unwrap();
        writeln!(out, "put {i}").unwrap();
        out.flush().unwrap();
        let removals = removals_after(i);
        match removals.as_slice() {
            [] => {}
            [j] => {
                let ban = ban_number(*j);
                store.remove_ban(&ban.jail, ban.net).unwrap();
            }
            several => {
                let keys: Vec<_> = several.iter().map(|j| ban_number(*j)).map(|b| (b.jail, b.net)).collect();
                store.remove_bans(&keys).unwrap();
            }
        }
        for j in removals {
            writeln!(out, "removed {j}").unwrap();
        }
        out.flush().unwrap();
        // Non-durable batches between the durable commits, as the daemon does.
        if i.is_multiple_of(2) {
            let addr = ban_number(i).net.addr();
            store
                .commit_batch(&Batch {
                    failures: vec![FailureRecord {
                        jail: "sshd".into(),
                        addr,
                        times: vec![Timestamp::from_secs(i64::from(i))],
                    }],
                    cursors: vec![("docker:child".into(), i.to_le_bytes().to_vec())],
                    removed_cursors: vec![],
                })
                .unwrap();
        }
    }
}

/// What the child acknowledged before it died.
#[derive(Default)]
struct Acks {
    puts: BTreeSet<u32>,
    removals: BTreeSet<u32>,
}

/// Kills and reaps the child however the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the child from ban `start`, SIGKILLs it once it has acknowledged
/// `kill_after` bans, and returns everything it acknowledged.
fn run_child_and_kill(path: &Path, start: u32, kill_after: usize) -> Acks {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_PATH_ENV, path)
        .env(CHILD_START_ENV, start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut acks = Acks::default();
    let record = |acks: &mut Acks, line: &str| {
        if let Some(i) = line.strip_prefix("put ") {
            acks.puts.insert(i.parse().unwrap());
        } else if let Some(j) = line.strip_prefix("removed ") {
            acks.removals.insert(j.parse().unwrap());
        }
    };
    let deadline = Instant::now() + DEADLINE;
    while acks.puts.len() < kill_after {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => record(&mut acks, &line),
            Err(_) => {
                let _ = child.0.kill();
                let status = child.0.wait();
                let stderr = stderr_reader.join().unwrap_or_default();
                panic!(
                    "the child acknowledged {} of {kill_after} bans before it stopped or the deadline passed ({status:?}):\n{stderr}",
                    acks.puts.len()
                );
            }
        }
    }
    // SIGKILL: no destructor, no flush, no clean close of the database.
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished: {status:?}");
    // Acknowledgements still in the pipe were printed before the kill: they count.
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        record(&mut acks, &line);
    }
    reader.join().unwrap();
    acks
}

#[test]
fn kill_mid_write_loses_no_acknowledged_ban() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.redb");
    let mut all = Acks::default();
    let mut start = 0;
    for kill_after in [1, 23, 60, 7, 120] {
        let acks = run_child_and_kill(&path, start, kill_after);
        assert!(acks.puts.len() >= kill_after);
        all.puts.extend(&acks.puts);
        all.removals.extend(&acks.removals);
        // Ban `last + 1` may have been written without being acknowledged:
        // start the next child beyond it, so every index has one writer.
        start = acks.puts.last().unwrap() + 2;

        let store = Store::open(&path).unwrap_or_else(|e| panic!("reopening after SIGKILL: {e}"));
        let stored: BTreeSet<u32> = store
            .bans()
            .unwrap()
            .into_iter()
            .map(|ban| {
                let i = number_of(&ban);
                assert_eq!(ban, ban_number(i), "ban {i} came back different");
                i
            })
            .collect();
        for i in &all.puts {
            let removal_scheduled = removal_of(*i).is_some_and(|after| all.puts.contains(&after));
            if all.removals.contains(i) {
                assert!(
                    !stored.contains(i),
                    "acknowledged removal of ban {i} was lost (kill after {kill_after})"
                );
            } else if !removal_scheduled {
                assert!(stored.contains(i), "acknowledged ban {i} was lost (kill after {kill_after})");
            }
            // A removal scheduled but not acknowledged may or may not have happened.
        }
        // A batch is atomic: if the cursor of batch k survived, so did its failure.
        let failures = store.failures("sshd").unwrap();
        if let Some(cursor) = store.cursor("docker:child").unwrap() {
            let k = u32::from_le_bytes(cursor.as_slice().try_into().unwrap());
            let addr = ban_number(k).net.addr();
            let record = failures.iter().find(|r| r.addr == addr);
            assert_eq!(
                record.map(|r| r.times.as_slice()),
                Some([Timestamp::from_secs(i64::from(k))].as_slice()),
                "cursor {k} survived without the failure committed with it"
            );
        }
    }
    assert!(all.puts.len() >= 211, "{} bans acknowledged in all", all.puts.len());
    assert!(!all.removals.is_empty(), "removals were exercised");
    let pair_kept = all.removals.iter().any(|j| {
        let partner = j ^ 1;
        all.puts.contains(&partner) && !all.removals.contains(&partner) && removal_of(partner).is_none()
    });
    assert!(pair_kept, "some removal left the other jail's ban on the same network to check");
}

//! Sliding failure windows: for each tracked key (an address, or the network
//! it belongs to under `ban_prefix`), the times of its recent failures.
//!
//! State owned: per key, at most `maxretry` timestamps (older ones can never
//! matter again, since a ban needs only the newest `maxretry`), and a
//! recency order over keys. At most `max_tracked` keys are kept; adding one
//! more evicts the key whose last failure arrived longest ago, so a flood of
//! unique addresses costs bounded memory and O(log n) per failure.
//!
//! A failure at time `t` counts at `now` while `t >= now - findtime`: the
//! boundary is inclusive, as in fail2ban, so `maxretry` failures spanning
//! exactly `findtime` ban.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ipnet::IpNet;

use crate::core::Timestamp;

/// Recent failures per key, with a cap on the number of keys.
#[derive(Debug, Clone)]
pub struct FailureWindows {
    maxretry: usize,
    findtime: Duration,
    max_tracked: usize,
    entries: HashMap<IpNet, Entry>,
    /// Keys by the sequence number of their latest failure; the first is the
    /// least recently active, evicted first.
    recency: BTreeMap<u64, IpNet>,
    next_seq: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    /// Ascending; never longer than `maxretry`.
    times: Vec<Timestamp>,
}

impl FailureWindows {
    /// `maxretry` and `max_tracked` below 1 are taken as 1: a window must
    /// hold the failure being counted.
    pub fn new(maxretry: u32, findtime: Duration, max_tracked: usize) -> Self {
        FailureWindows {
            maxretry: (maxretry as usize).max(1),
            findtime,
            max_tracked: max_tracked.max(1),
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Records a failure of `key` at `time` and returns how many of its
    /// failures are now within the window ending at `now` (at most
    /// `maxretry`). A time later than `now` is taken as `now`, so a skewed
    /// clock cannot keep a failure alive. The caller drops failures older
    /// than the window; one that slips through is simply not counted.
    pub fn record(&mut self, key: IpNet, time: Timestamp, now: Timestamp) -> u32 {
        let cutoff = self.cutoff(now);
        let time = time.min(now);
        if time < cutoff {
            return self.count(key, now);
        }
        self.prune(now);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_tracked {
            self.evict_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let capacity = self.maxretry;
        let entry =
            self.entries.entry(key).or_insert_with(|| Entry { seq, times: Vec::with_capacity(capacity) });
        self.recency.remove(&entry.seq);
        entry.seq = seq;
        self.recency.insert(seq, key);

        let times = &mut entry.times;
        times.retain(|t| *t >= cutoff);
        if times.len() >= self.maxretry {
            if times.first().is_some_and(|oldest| time < *oldest) {
                // Older than every kept failure of a full window: it changes nothing.
                return times.len() as u32;
            }
            // Make room first, so the vector never grows past maxretry.
            times.remove(0);
        }
        let at = times.partition_point(|t| *t <= time);
        times.insert(at, time);
        times.len() as u32
    }

    /// How many failures of `key` are within the window ending at `now`.
    pub fn count(&self, key: IpNet, now: Timestamp) -> u32 {
        let cutoff = self.cutoff(now);
        self.entries.get(&key).map_or(0, |e| e.times.iter().filter(|t| **t >= cutoff).count() as u32)
    }

    /// The failure times kept for `key`, oldest first (some may have left
    /// the window already); empty when it has none.
    pub fn times(&self, key: IpNet) -> &[Timestamp] {
        self.entries.get(&key).map_or(&[], |e| e.times.as_slice())
    }

    /// Forgets `key`'s failures (after a ban, or an unban).
    pub fn forget(&mut self, key: IpNet) {
        if let Some(entry) = self.entries.remove(&key) {
            self.recency.remove(&entry.seq);
        }
    }

    /// Drops keys whose failures have all left the window, starting from the
    /// least recently active and stopping at the first key still live. Cheap
    /// (amortised O(log n) per key dropped); a live key older in recency than
    /// a dead one keeps the dead one until the cap or a later prune.
    pub fn prune(&mut self, now: Timestamp) {
        let cutoff = self.cutoff(now);
        while let Some((&seq, &key)) = self.recency.first_key_value() {
            let dead = self.entries.get(&key).is_none_or(|e| e.times.last().is_none_or(|t| *t < cutoff));
            if !dead {
                break;
            }
            self.recency.remove(&seq);
            self.entries.remove(&key);
        }
    }

    /// The number of keys tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn cutoff(&self, now: Timestamp) -> Timestamp {
        now.saturating_sub(self.findtime)
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.recency.pop_first() {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> IpNet {
        IpNet::from(std::net::IpAddr::V4(std::net::Ipv4Addr::from(i)))
    }
    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn counts_up_to_maxretry_and_keeps_only_that_many() {
        let mut w = FailureWindows::new(3, Duration::from_secs(60), 10);
        assert_eq!(w.record(key(1), t(100), t(100)), 1);
        assert_eq!(w.record(key(1), t(101), t(101)), 2);
        assert_eq!(w.record(key(1), t(102), t(102)), 3);
        assert_eq!(w.record(key(1), t(103), t(103)), 3);
        assert_eq!(w.entries[&key(1)].times, vec![t(101), t(102), t(103)]);
        assert_eq!(w.record(key(1), t(100), t(103)), 3, "older than a full window: no change");
        assert_eq!(w.entries[&key(1)].times, vec![t(101), t(102), t(103)]);
        assert_eq!(w.entries[&key(1)].times.capacity(), 3);
        assert_eq!(w.count(key(2), t(103)), 0);
    }

    #[test]
    fn the_findtime_boundary_is_inclusive() {
        let mut w = FailureWindows::new(2, Duration::from_secs(60), 10);
        w.record(key(1), t(100), t(100));
        assert_eq!(w.record(key(1), t(160), t(160)), 2, "exactly findtime apart still counts");
        let mut w = FailureWindows::new(2, Duration::from_secs(60), 10);
        w.record(key(1), t(100), t(100));
        let late = Timestamp(t(160).0 + 1);
        assert_eq!(w.record(key(1), late, late), 1, "one millisecond more does not");
    }

    #[test]
    fn out_of_order_times_keep_the_newest() {
        let mut w = FailureWindows::new(2, Duration::from_secs(60), 10);
        w.record(key(1), t(150), t(150));
        w.record(key(1), t(120), t(150));
        w.record(key(1), t(140), t(150));
        assert_eq!(w.entries[&key(1)].times, vec![t(140), t(150)]);
    }

    #[test]
    fn stale_and_future_times() {
        let mut w = FailureWindows::new(5, Duration::from_secs(60), 10);
        assert_eq!(w.record(key(1), t(10), t(100)), 0, "older than the window");
        assert!(w.is_empty(), "a key with nothing counted is not tracked");
        assert_eq!(w.record(key(1), t(500), t(100)), 1);
        assert_eq!(w.entries[&key(1)].times, vec![t(100)], "the future is clamped to now");
        assert_eq!(w.count(key(1), t(161)), 0);
    }

    #[test]
    fn evicts_least_recently_active_first() {
        let mut w = FailureWindows::new(5, Duration::from_secs(600), 3);
        for i in 1..=3 {
            w.record(key(i), t(100), t(100));
        }
        w.record(key(1), t(101), t(101)); // 1 is now the most recent
        w.record(key(4), t(102), t(102)); // evicts 2
        assert_eq!(w.len(), 3);
        assert!(!w.entries.contains_key(&key(2)));
        w.record(key(5), t(103), t(103)); // evicts 3
        assert!(!w.entries.contains_key(&key(3)));
        assert_eq!(w.count(key(1), t(103)), 2);
        w.record(key(6), t(104), t(104)); // evicts 1
        assert!(!w.entries.contains_key(&key(1)));
        assert_eq!(w.recency.len(), w.entries.len());
    }

    #[test]
    fn prune_drops_dead_keys_from_the_old_end() {
        let mut w = FailureWindows::new(5, Duration::from_secs(60), 10);
        w.record(key(1), t(100), t(100));
        w.record(key(2), t(130), t(130));
        w.prune(t(165));
        assert_eq!(w.len(), 1);
        assert_eq!(w.count(key(2), t(165)), 1);
        w.prune(t(191));
        assert!(w.is_empty() && w.recency.is_empty());
    }

    #[test]
    fn forget_removes_a_key() {
        let mut w = FailureWindows::new(5, Duration::from_secs(60), 10);
        w.record(key(1), t(100), t(100));
        w.forget(key(1));
        w.forget(key(9));
        assert!(w.is_empty() && w.recency.is_empty());
    }
}

//! Sliding failure windows: for each tracked key (an address, or the network
//! it belongs to under `ban_prefix`), the times of its recent failures.
//!
//! State owned: per key, at most `maxretry` timestamps (older ones can never
//! matter again, since a ban needs only the newest `maxretry`), and a
//! recency queue over keys. At most `max_tracked` keys are kept; adding one
//! more evicts the key whose last failure arrived longest ago, so a flood of
//! unique addresses costs bounded memory and O(1) amortised per failure.
//!
//! The recency queue holds `(sequence number, key)` in the order failures
//! arrived. A key's item is current while the key's entry carries that
//! number; the items a key left behind as it failed again are skipped where
//! they are met and dropped in bulk once they outnumber the current ones.
//!
//! A failure at time `t` counts at `now` while `t >= now - findtime`: the
//! boundary is inclusive, as in fail2ban, so `maxretry` failures spanning
//! exactly `findtime` ban.

use std::collections::VecDeque;
use std::time::Duration;

use ipnet::IpNet;

use super::netmap::NetMap;
use crate::core::Timestamp;

/// Recent failures per key, with a cap on the number of keys.
#[derive(Debug, Clone)]
pub struct FailureWindows {
    maxretry: usize,
    findtime: Duration,
    max_tracked: usize,
    entries: NetMap<Entry>,
    /// `(seq, key)` by arrival; the first current item is the least
    /// recently active key, evicted first.
    recency: VecDeque<(u64, IpNet)>,
    next_seq: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    /// The sequence number of the key's latest failure.
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
            entries: NetMap::default(),
            recency: VecDeque::new(),
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
        if self.entries.len() >= self.max_tracked && self.entries.get(key).is_none() {
            self.evict_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let capacity = self.maxretry;
        let (entry, _) =
            self.entries.get_or_insert_with(key, || Entry { seq, times: Vec::with_capacity(capacity) });
        entry.seq = seq;
        self.recency.push_back((seq, key));

        let times = &mut entry.times;
        times.retain(|t| *t >= cutoff);
        let counted = if times.len() >= self.maxretry && times.first().is_some_and(|oldest| time < *oldest) {
            // Older than every kept failure of a full window: it changes nothing.
            times.len()
        } else {
            if times.len() >= self.maxretry {
                // Make room first, so the vector never grows past maxretry.
                times.remove(0);
            }
            let at = times.partition_point(|t| *t <= time);
            times.insert(at, time);
            times.len()
        };
        self.drop_stale_items();
        counted as u32
    }

    /// How many failures of `key` are within the window ending at `now`.
    pub fn count(&self, key: IpNet, now: Timestamp) -> u32 {
        let cutoff = self.cutoff(now);
        self.entries.get(key).map_or(0, |e| e.times.iter().filter(|t| **t >= cutoff).count() as u32)
    }

    /// The failure times kept for `key`, oldest first (some may have left
    /// the window already); empty when it has none.
    pub fn times(&self, key: IpNet) -> &[Timestamp] {
        self.entries.get(key).map_or(&[], |e| e.times.as_slice())
    }

    /// Forgets `key`'s failures (after a ban, or an unban).
    pub fn forget(&mut self, key: IpNet) {
        // Its recency item is left behind, no longer current.
        self.entries.remove(key);
    }

    /// Drops keys whose failures have all left the window, starting from the
    /// least recently active and stopping at the first key still live. Cheap
    /// (amortised O(1) per key dropped); a live key older in recency than
    /// a dead one keeps the dead one until the cap or a later prune.
    pub fn prune(&mut self, now: Timestamp) {
        let cutoff = self.cutoff(now);
        while let Some(&(seq, key)) = self.recency.front() {
            match self.entries.get(key) {
                Some(e) if e.seq == seq => {
                    if e.times.last().is_some_and(|t| *t >= cutoff) {
                        break;
                    }
                    self.entries.remove(key);
                }
                // Left behind by a later failure of the key, or forgotten.
                _ => {}
            }
            self.recency.pop_front();
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
        while let Some((seq, key)) = self.recency.pop_front() {
            if self.entries.get(key).is_some_and(|e| e.seq == seq) {
                self.entries.remove(key);
                return;
            }
        }
    }

    /// Drops the items no longer current once they outnumber the current
    /// ones, so the queue stays within twice the keys tracked: amortised
    /// O(1) per failure.
    fn drop_stale_items(&mut self) {
        if self.recency.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.recency.retain(|&(seq, key)| entries.get(key).is_some_and(|e| e.seq == seq));
            if self.recency.capacity() > 4 * self.recency.len() + 1024 {
                self.recency.shrink_to(2 * self.recency.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl FailureWindows {
        /// Recency items still current: one per tracked key.
        fn current_items(&self) -> usize {
            self.recency
                .iter()
                .filter(|&&(seq, key)| self.entries.get(key).is_some_and(|e| e.seq == seq))
                .count()
        }
    }

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
        assert_eq!(w.times(key(1)), vec![t(101), t(102), t(103)]);
        assert_eq!(w.record(key(1), t(100), t(103)), 3, "older than a full window: no change");
        assert_eq!(w.times(key(1)), vec![t(101), t(102), t(103)]);
        assert_eq!(w.entries.get(key(1)).unwrap().times.capacity(), 3);
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
        assert_eq!(w.times(key(1)), vec![t(140), t(150)]);
    }

    #[test]
    fn stale_and_future_times() {
        let mut w = FailureWindows::new(5, Duration::from_secs(60), 10);
        assert_eq!(w.record(key(1), t(10), t(100)), 0, "older than the window");
        assert!(w.is_empty(), "a key with nothing counted is not tracked");
        assert_eq!(w.record(key(1), t(500), t(100)), 1);
        assert_eq!(w.times(key(1)), vec![t(100)], "the future is clamped to now");
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
        assert!(w.entries.get(key(2)).is_none());
        w.record(key(5), t(103), t(103)); // evicts 3
        assert!(w.entries.get(key(3)).is_none());
        assert_eq!(w.count(key(1), t(103)), 2);
        w.record(key(6), t(104), t(104)); // evicts 1
        assert!(w.entries.get(key(1)).is_none());
        assert_eq!(w.current_items(), w.entries.len());
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
        assert!(w.is_empty() && w.current_items() == 0);
    }

    #[test]
    fn forget_removes_a_key() {
        let mut w = FailureWindows::new(5, Duration::from_secs(60), 10);
        w.record(key(1), t(100), t(100));
        w.forget(key(1));
        w.forget(key(9));
        assert!(w.is_empty() && w.current_items() == 0);
    }

    #[test]
    fn a_key_failing_again_and_again_keeps_the_queue_bounded() {
        let mut w = FailureWindows::new(3, Duration::from_secs(600), 10);
        for i in 0..10_000 {
            w.record(key(1), t(100 + i / 100), t(100 + i / 100));
            w.record(key(2), t(100 + i / 100), t(100 + i / 100));
        }
        assert_eq!(w.len(), 2);
        assert_eq!(w.current_items(), 2);
        assert!(w.recency.len() <= 2 * 2 + 64 + 1, "{} items", w.recency.len());
        // Key 1's many older items do not make it the oldest: 1 failed
        // before 2 each round, so 1 is evicted first.
        for k in 3..=10 {
            w.record(key(k), t(300), t(300));
        }
        assert_eq!(w.len(), 10);
        w.record(key(11), t(300), t(300));
        assert!(w.entries.get(key(1)).is_none() && w.entries.get(key(2)).is_some());
        w.forget(key(2));
        w.record(key(12), t(300), t(300));
        assert_eq!(w.len(), 10, "the forgotten key freed its place: nothing evicted");
        assert!(w.entries.get(key(3)).is_some());
        // The items 1 and 2 left behind are skipped: 3 is the oldest now.
        w.record(key(13), t(300), t(300));
        assert!(w.entries.get(key(3)).is_none());
    }
}

//! Merging: the bans every other host holds, and the cluster-wide unbans,
//! into what this host enforces. Pure logic; time comes in as `now`.
//!
//! The rule, per network:
//! - it is banned when some origin holds a live, unexpired ban on it that
//!   was decided (`at`) after the newest tombstone overlapping it;
//! - the ban lasts until the largest `until` among those (permanent wins);
//! - an entry is applied once: an origin's entries for one network and jail
//!   carry growing `seq`s, so one whose `seq` is not above what is held is a
//!   duplicate (a retried publish) or stale (reordered), and is ignored;
//! - an entry that has already expired is never applied.
//!
//! Every change that alters what a network needs in the kernel is reported as
//! an [`Effect`]: enforce it until a time, or lift it.
//!
//! State owned: per network, what each (origin, jail) last said about it
//! (lifted ones are remembered for [`Merge::new`]'s `memory`, so a late
//! duplicate of the ban cannot bring it back); the newest tombstone per
//! network; live bans per origin; and an expiry queue.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::Duration;

use ipnet::IpNet;

use super::model::{Entry, Op};
use crate::core::Timestamp;

/// What the kernel must now do for one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Hold `net` until `until` (`None`: permanently), replacing any timeout.
    Enforce { net: IpNet, until: Option<Timestamp> },
    /// `net` is no longer banned by any origin.
    Lift { net: IpNet },
}

/// What [`Merge::apply`] made of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Taken into account (whether or not the kernel needs a change).
    Applied,
    /// Its `seq` is not above what this origin already said about the
    /// network and jail.
    Duplicate,
    /// A ban whose time had run out.
    Expired,
}

/// One network's remote ban as shown to operators: the origin and jail of
/// the longest ban holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBan {
    pub net: IpNet,
    pub origin: String,
    pub jail: String,
    pub at: Timestamp,
    pub until: Option<Timestamp>,
    /// Every origin holding it.
    pub origins: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holder {
    seq: u64,
    at: Timestamp,
    until: Option<Timestamp>,
    /// False once the origin lifted it: kept only to recognise duplicates.
    live: bool,
}

impl Holder {
    fn holds(&self, now: Timestamp, tombstone: Option<Timestamp>) -> bool {
        self.live && self.until.is_none_or(|u| u > now) && tombstone.is_none_or(|t| self.at > t)
    }
}

/// (origin, jail) → what it said last.
type Holders = BTreeMap<(String, String), Holder>;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Merge {
    nets: HashMap<IpNet, Holders>,
    tombstones: HashMap<IpNet, Timestamp>,
    live_per_origin: HashMap<String, usize>,
    /// (until, net) of every live ban with an end; stale items are harmless.
    expiries: BinaryHeap<Reverse<(Timestamp, IpNet)>>,
    memory: Duration,
}

impl Merge {
    /// `memory`: how long lifted bans and tombstones are remembered after
    /// they were decided; no ban they could override lasts longer (remote
    /// bans are cut to `remote_limits.max_until`).
    pub fn new(memory: Duration) -> Merge {
        Merge {
            nets: HashMap::new(),
            tombstones: HashMap::new(),
            live_per_origin: HashMap::new(),
            expiries: BinaryHeap::new(),
            memory,
        }
    }

    /// Applies one entry from an origin's stream (or snapshot); effects on
    /// the kernel are appended to `effects`.
    pub fn apply(&mut self, entry: &Entry, now: Timestamp, effects: &mut Vec<Effect>) -> Outcome {
        let key = (entry.origin.clone(), entry.jail.clone());
        if let Some(held) = self.nets.get(&entry.net).and_then(|h| h.get(&key))
            && held.seq >= entry.seq
        {
            return Outcome::Duplicate;
        }
        let expired = entry.op == Op::Ban && !entry.is_active(now);
        let before = self.kernel_state(entry.net, now);
        let holder = Holder { seq: entry.seq, at: entry.at, until: entry.until, live: entry.is_active(now) };
        self.set_holder(entry.net, key, holder);
        self.report(entry.net, before, now, effects);
        if expired { Outcome::Expired } else { Outcome::Applied }
    }

    /// A cluster-wide unban of `net` decided at `at`: every ban overlapping
    /// it that was decided at or before `at` stops counting. Returns false
    /// if a tombstone as new was already known.
    pub fn tombstone(
        &mut self,
        net: IpNet,
        at: Timestamp,
        now: Timestamp,
        effects: &mut Vec<Effect>,
    ) -> bool {
        if self.tombstones.get(&net).is_some_and(|known| *known >= at) {
            return false;
        }
        let touched: Vec<IpNet> = self.nets.keys().filter(|n| overlap(n, &net)).copied().collect();
        let before: Vec<_> = touched.iter().map(|n| self.kernel_state(*n, now)).collect();
        self.tombstones.insert(net, at);
        for (n, before) in touched.into_iter().zip(before) {
            self.report(n, before, now, effects);
        }
        true
    }

    /// Replaces everything `origin` holds by `entries` (its bans hash, read
    /// as a snapshot); expired and lifted entries are skipped.
    pub fn replace_origin<'e>(
        &mut self,
        origin: &str,
        entries: impl IntoIterator<Item = &'e Entry>,
        now: Timestamp,
        effects: &mut Vec<Effect>,
    ) {
        let entries: Vec<&Entry> = entries.into_iter().filter(|e| e.is_active(now)).collect();
        let mut touched: Vec<IpNet> = self
            .nets
            .iter()
            .filter(|(_, holders)| holders.keys().any(|(o, _)| o == origin))
            .map(|(net, _)| *net)
            .collect();
        touched.extend(entries.iter().map(|e| e.net));
        touched.sort_unstable();
        touched.dedup();
        let before: Vec<_> = touched.iter().map(|n| self.kernel_state(*n, now)).collect();
        for net in &touched {
            let keys: Vec<(String, String)> = self
                .nets
                .get(net)
                .map(|holders| holders.keys().filter(|(o, _)| o == origin).cloned().collect())
                .unwrap_or_default();
            for key in keys {
                self.remove_holder(*net, &key);
            }
        }
        for entry in entries {
            let holder = Holder { seq: entry.seq, at: entry.at, until: entry.until, live: true };
            self.set_holder(entry.net, (entry.origin.clone(), entry.jail.clone()), holder);
        }
        for (net, before) in touched.into_iter().zip(before) {
            self.report(net, before, now, effects);
        }
    }

    /// Forgets everything `origin` holds (it is quarantined).
    pub fn drop_origin(&mut self, origin: &str, now: Timestamp, effects: &mut Vec<Effect>) {
        self.replace_origin(origin, [], now, effects);
    }

    /// Forgets bans that ran out at `now`, reporting networks no longer
    /// banned. Cheap: it only looks at bans whose end has come.
    pub fn expire(&mut self, now: Timestamp, effects: &mut Vec<Effect>) {
        while let Some(Reverse((until, net))) = self.expiries.peek().copied() {
            if until > now {
                break;
            }
            self.expiries.pop();
            // What the kernel was told: the state just before this end.
            let before = self.kernel_state(net, Timestamp(until.as_millis() - 1));
            let Some(holders) = self.nets.get(&net) else { continue };
            let gone: Vec<(String, String)> = holders
                .iter()
                .filter(|(_, h)| h.live && h.until.is_some_and(|u| u <= now))
                .map(|(k, _)| k.clone())
                .collect();
            for key in gone {
                self.remove_holder(net, &key);
            }
            self.report(net, before, now, effects);
        }
    }

    /// Forgets lifted bans and tombstones decided longer ago than the
    /// memory. Walks every network: call it now and then (say each minute).
    pub fn forget(&mut self, now: Timestamp) {
        let horizon = now.saturating_sub(self.memory);
        self.tombstones.retain(|_, at| *at > horizon);
        let mut emptied = Vec::new();
        for (net, holders) in &mut self.nets {
            holders.retain(|_, h| h.live || h.at > horizon);
            if holders.is_empty() {
                emptied.push(*net);
            }
        }
        for net in emptied {
            self.nets.remove(&net);
        }
    }

    /// When the next ban runs out, if any has an end.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiries.peek().map(|Reverse((until, _))| *until)
    }

    /// Until when `net` must be held at `now`: `None` if not banned,
    /// `Some(None)` if permanently.
    pub fn kernel_state(&self, net: IpNet, now: Timestamp) -> Option<Option<Timestamp>> {
        let tombstone = self.tombstone_over(&net);
        let holders = self.nets.get(&net)?;
        let mut state: Option<Option<Timestamp>> = None;
        for holder in holders.values().filter(|h| h.holds(now, tombstone)) {
            state = Some(match (state, holder.until) {
                (Some(None), _) | (_, None) => None,
                (Some(Some(a)), Some(b)) => Some(a.max(b)),
                (None, Some(b)) => Some(b),
            });
        }
        state
    }

    /// Every network banned at `now`, in address order.
    pub fn bans(&self, now: Timestamp) -> Vec<RemoteBan> {
        let mut bans: Vec<RemoteBan> = self.nets.keys().filter_map(|net| self.ban_of(*net, now)).collect();
        bans.sort_by_key(|b| b.net);
        bans
    }

    /// How many networks are banned at `now`.
    pub fn banned_count(&self, now: Timestamp) -> usize {
        self.nets.keys().filter(|net| self.kernel_state(**net, now).is_some()).count()
    }

    /// Live bans `origin` holds (expired ones count until [`Merge::expire`]).
    pub fn live_count(&self, origin: &str) -> usize {
        self.live_per_origin.get(origin).copied().unwrap_or(0)
    }

    /// The known tombstones.
    pub fn tombstones(&self) -> impl Iterator<Item = (IpNet, Timestamp)> + '_ {
        self.tombstones.iter().map(|(net, at)| (*net, *at))
    }

    fn ban_of(&self, net: IpNet, now: Timestamp) -> Option<RemoteBan> {
        let tombstone = self.tombstone_over(&net);
        let holders = self.nets.get(&net)?;
        let holding: Vec<(&(String, String), &Holder)> =
            holders.iter().filter(|(_, h)| h.holds(now, tombstone)).collect();
        let longest = holding.iter().max_by_key(|(_, h)| h.until.map_or(i64::MAX, Timestamp::as_millis))?;
        let mut origins: Vec<String> = holding.iter().map(|((o, _), _)| o.clone()).collect();
        origins.dedup();
        Some(RemoteBan {
            net,
            origin: longest.0.0.clone(),
            jail: longest.0.1.clone(),
            at: longest.1.at,
            until: self.kernel_state(net, now).flatten(),
            origins,
        })
    }

    fn tombstone_over(&self, net: &IpNet) -> Option<Timestamp> {
        self.tombstones.iter().filter(|(t, _)| overlap(t, net)).map(|(_, at)| *at).max()
    }

    fn set_holder(&mut self, net: IpNet, key: (String, String), holder: Holder) {
        if holder.live {
            *self.live_per_origin.entry(key.0.clone()).or_default() += 1;
            if let Some(until) = holder.until {
                self.expiries.push(Reverse((until, net)));
            }
        }
        if let Some(old) = self.nets.entry(net).or_default().insert(key.clone(), holder)
            && old.live
        {
            self.uncount(&key.0);
        }
    }

    fn remove_holder(&mut self, net: IpNet, key: &(String, String)) {
        let Some(holders) = self.nets.get_mut(&net) else { return };
        let old = holders.remove(key);
        if holders.is_empty() {
            self.nets.remove(&net);
        }
        if old.is_some_and(|old| old.live) {
            self.uncount(&key.0);
        }
    }

    fn uncount(&mut self, origin: &str) {
        if let Some(count) = self.live_per_origin.get_mut(origin) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.live_per_origin.remove(origin);
            }
        }
    }

    fn report(
        &self,
        net: IpNet,
        before: Option<Option<Timestamp>>,
        now: Timestamp,
        effects: &mut Vec<Effect>,
    ) {
        let after = self.kernel_state(net, now);
        if after == before {
            return;
        }
        effects.push(match after {
            Some(until) => Effect::Enforce { net, until },
            None => Effect::Lift { net },
        });
    }
}

/// True if one network holds the other (networks either nest or are disjoint).
pub fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::parse_ip_or_net;

    const MIN: i64 = 60_000;
    const MEMORY: Duration = Duration::from_secs(7 * 86_400);

    fn net(s: &str) -> IpNet {
        parse_ip_or_net(s).unwrap()
    }

    fn ban(origin: &str, seq: u64, target: &str, at_min: i64, until_min: Option<i64>) -> Entry {
        Entry {
            v: 1,
            origin: origin.into(),
            seq,
            op: Op::Ban,
            net: net(target),
            jail: "sshd".into(),
            at: Timestamp(at_min * MIN),
            until: until_min.map(|m| Timestamp(m * MIN)),
            reason: "jail".into(),
        }
    }

    fn unban(origin: &str, seq: u64, target: &str, at_min: i64) -> Entry {
        Entry { op: Op::Unban, until: None, ..ban(origin, seq, target, at_min, None) }
    }

    fn t(min: i64) -> Timestamp {
        Timestamp(min * MIN)
    }

    fn enforce(target: &str, until_min: Option<i64>) -> Effect {
        Effect::Enforce { net: net(target), until: until_min.map(t) }
    }

    fn lift(target: &str) -> Effect {
        Effect::Lift { net: net(target) }
    }

    /// Applies and returns the effects.
    fn apply(m: &mut Merge, entry: &Entry, now: i64) -> (Outcome, Vec<Effect>) {
        let mut effects = Vec::new();
        let outcome = m.apply(entry, t(now), &mut effects);
        (outcome, effects)
    }

    #[test]
    fn a_ban_is_enforced_until_its_end_and_lifted_when_it_expires() {
        let mut m = Merge::new(MEMORY);
        assert_eq!(
            apply(&mut m, &ban("a", 1, "192.0.2.1", 0, Some(10)), 1),
            (Outcome::Applied, vec![enforce("192.0.2.1", Some(10))])
        );
        assert_eq!(m.kernel_state(net("192.0.2.1"), t(5)), Some(Some(t(10))));
        assert_eq!(m.next_expiry(), Some(t(10)));
        let mut effects = Vec::new();
        m.expire(t(9), &mut effects);
        assert!(effects.is_empty());
        m.expire(t(10), &mut effects);
        assert_eq!(effects, [lift("192.0.2.1")]);
        assert_eq!(m.banned_count(t(10)), 0);
        assert_eq!(m.live_count("a"), 0);
        assert_eq!(m.next_expiry(), None);
    }

    #[test]
    fn an_expired_entry_is_never_applied() {
        let mut m = Merge::new(MEMORY);
        assert_eq!(apply(&mut m, &ban("a", 1, "192.0.2.1", 0, Some(10)), 10), (Outcome::Expired, vec![]));
        assert_eq!(apply(&mut m, &ban("a", 1, "192.0.2.1", 0, Some(10)), 11), (Outcome::Duplicate, vec![]));
        assert_eq!(m.kernel_state(net("192.0.2.1"), t(11)), None);
        assert_eq!(m.live_count("a"), 0);
    }

    #[test]
    fn applying_is_idempotent_by_origin_and_seq_whatever_the_order() {
        let mut m = Merge::new(MEMORY);
        let first = ban("a", 1, "192.0.2.1", 0, Some(10));
        let lifted = unban("a", 2, "192.0.2.1", 1);
        assert_eq!(apply(&mut m, &first, 1).1, [enforce("192.0.2.1", Some(10))]);
        assert_eq!(apply(&mut m, &first, 1), (Outcome::Duplicate, vec![]), "a retried publish");
        assert_eq!(apply(&mut m, &lifted, 2).1, [lift("192.0.2.1")]);
        assert_eq!(apply(&mut m, &first, 3), (Outcome::Duplicate, vec![]), "a stale ban after its unban");
        assert_eq!(m.kernel_state(net("192.0.2.1"), t(3)), None);
        // Another origin's seq space is its own.
        assert_eq!(
            apply(&mut m, &ban("b", 1, "192.0.2.1", 2, Some(5)), 3).1,
            [enforce("192.0.2.1", Some(5))]
        );
        // The same origin's other jail is its own record too.
        let other_jail = Entry { jail: "recidive".into(), ..ban("a", 1, "192.0.2.1", 2, Some(20)) };
        assert_eq!(apply(&mut m, &other_jail, 3).1, [enforce("192.0.2.1", Some(20))]);
        assert_eq!(m.live_count("a"), 1);
        assert_eq!(m.live_count("b"), 1);
    }

    #[test]
    fn the_timeout_follows_the_largest_until_and_shrinks_when_it_is_withdrawn() {
        let mut m = Merge::new(MEMORY);
        assert_eq!(
            apply(&mut m, &ban("a", 1, "192.0.2.1", 0, Some(10)), 1).1,
            [enforce("192.0.2.1", Some(10))]
        );
        assert_eq!(
            apply(&mut m, &ban("b", 1, "192.0.2.1", 0, Some(30)), 1).1,
            [enforce("192.0.2.1", Some(30))]
        );
        assert_eq!(
            apply(&mut m, &ban("c", 1, "192.0.2.1", 0, Some(20)), 1).1,
            [],
            "shorter: nothing changes"
        );
        assert_eq!(apply(&mut m, &unban("b", 2, "192.0.2.1", 2), 2).1, [enforce("192.0.2.1", Some(20))]);
        assert_eq!(apply(&mut m, &ban("d", 1, "192.0.2.1", 0, None), 2).1, [enforce("192.0.2.1", None)]);
        let mut effects = Vec::new();
        m.expire(t(25), &mut effects);
        assert!(effects.is_empty(), "the permanent ban still holds: {effects:?}");
        let shown = &m.bans(t(25))[0];
        assert_eq!(
            (shown.origin.as_str(), shown.until, shown.origins.clone()),
            ("d", None, vec!["d".to_string()])
        );
    }

    #[test]
    fn a_remote_unban_only_withdraws_its_own_origins_ban() {
        let mut m = Merge::new(MEMORY);
        apply(&mut m, &ban("a", 1, "192.0.2.1", 0, Some(10)), 1);
        apply(&mut m, &ban("b", 1, "192.0.2.1", 0, Some(10)), 1);
        assert_eq!(apply(&mut m, &unban("a", 2, "192.0.2.1", 2), 2).1, []);
        assert_eq!(m.bans(t(2))[0].origins, ["b"]);
        assert_eq!(apply(&mut m, &unban("b", 2, "192.0.2.1", 2), 2).1, [lift("192.0.2.1")]);
    }

    #[test]
    fn a_tombstone_lifts_older_bans_of_every_origin_but_not_newer_ones() {
        let mut m = Merge::new(MEMORY);
        apply(&mut m, &ban("a", 1, "192.0.2.1", 0, Some(100)), 1);
        apply(&mut m, &ban("b", 1, "192.0.2.0/24", 1, Some(100)), 1);
        apply(&mut m, &ban("c", 1, "198.51.100.1", 1, Some(100)), 1);
        let mut effects = Vec::new();
        assert!(m.tombstone(net("192.0.2.1"), t(5), t(5), &mut effects));
        effects.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(effects, [lift("192.0.2.0/24"), lift("192.0.2.1")], "overlapping networks are lifted too");
        assert!(
            !m.tombstone(net("192.0.2.1"), t(4), t(5), &mut Vec::new()),
            "an older tombstone is a repeat"
        );
        // A ban decided after the tombstone holds; one decided before stays lifted.
        assert_eq!(apply(&mut m, &ban("b", 2, "192.0.2.1", 4, Some(100)), 6).1, []);
        assert_eq!(
            apply(&mut m, &ban("b", 3, "192.0.2.1", 6, Some(100)), 6).1,
            [enforce("192.0.2.1", Some(100))]
        );
        assert_eq!(m.kernel_state(net("198.51.100.1"), t(6)), Some(Some(t(100))));
        // Tombstones are forgotten after the memory, when no ban they cover can last.
        m.forget(t(5).saturating_add(MEMORY));
        assert_eq!(m.tombstones().count(), 0);
    }

    #[test]
    fn a_snapshot_replaces_what_an_origin_held() {
        let mut m = Merge::new(MEMORY);
        apply(&mut m, &ban("a", 1, "192.0.2.1", 0, Some(10)), 1);
        apply(&mut m, &ban("a", 2, "192.0.2.2", 0, Some(10)), 1);
        apply(&mut m, &ban("b", 1, "192.0.2.2", 0, Some(5)), 1);
        let snapshot = [
            ban("a", 2, "192.0.2.2", 0, Some(10)),
            ban("a", 7, "192.0.2.3", 0, Some(20)),
            ban("a", 5, "192.0.2.4", 0, Some(2)), // expired by now: skipped
        ];
        let mut effects = Vec::new();
        m.replace_origin("a", &snapshot, t(3), &mut effects);
        assert_eq!(effects, [lift("192.0.2.1"), enforce("192.0.2.3", Some(20))]);
        assert_eq!(m.live_count("a"), 2);
        let mut effects = Vec::new();
        m.drop_origin("a", t(3), &mut effects);
        assert_eq!(effects, [enforce("192.0.2.2", Some(5)), lift("192.0.2.3")]);
        assert_eq!(m.live_count("a"), 0);
        assert_eq!(m.bans(t(3)).len(), 1);
    }

    #[test]
    fn lifted_bans_are_remembered_for_the_memory_then_forgotten() {
        let mut m = Merge::new(Duration::from_secs(600));
        apply(&mut m, &ban("a", 1, "192.0.2.1", 0, Some(100)), 1);
        apply(&mut m, &unban("a", 2, "192.0.2.1", 1), 1);
        m.forget(t(5));
        assert_eq!(apply(&mut m, &ban("a", 1, "192.0.2.1", 0, Some(100)), 5).0, Outcome::Duplicate);
        m.forget(t(12));
        assert!(m.nets.is_empty(), "forgotten after 10 minutes");
    }

    #[test]
    fn a_random_history_agrees_with_a_brute_force_reading_of_the_rule() {
        // Every entry applied in order, with the firewall's view rebuilt from
        // the effects, must match the rule evaluated from scratch.
        use std::collections::HashMap as Map;
        let targets = ["192.0.2.1", "192.0.2.0/24", "192.0.2.2", "2001:db8::1"];
        let origins = ["a", "b", "c"];
        let mut state = 0x1234_5678_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _round in 0..50 {
            let mut m = Merge::new(MEMORY);
            let mut kernel: Map<IpNet, Option<Timestamp>> = Map::new();
            let mut seqs: Map<&str, u64> = Map::new();
            let mut latest: Map<(String, IpNet), (u64, Entry)> = Map::new();
            let mut tombs: Vec<(IpNet, Timestamp)> = Vec::new();
            let mut now = 0;
            for _step in 0..40 {
                now += next(3) as i64;
                let target = targets[next(targets.len() as u64) as usize];
                let mut effects = Vec::new();
                match next(10) {
                    0 => {
                        let at = t(now - next(3) as i64);
                        m.tombstone(net(target), at, t(now), &mut effects);
                        tombs.push((net(target), at));
                    }
                    1 => {
                        m.expire(t(now), &mut effects);
                        m.forget(t(now));
                    }
                    roll => {
                        let origin = origins[next(3) as usize];
                        let seq = seqs.entry(origin).or_default();
                        *seq += 1;
                        let at = now - next(4) as i64;
                        let entry = if roll < 7 {
                            let until = if next(8) == 0 { None } else { Some(at + 1 + next(10) as i64) };
                            ban(origin, *seq, target, at, until)
                        } else {
                            unban(origin, *seq, target, at)
                        };
                        m.apply(&entry, t(now), &mut effects);
                        latest.insert((origin.to_string(), net(target)), (*seq, entry));
                    }
                }
                for effect in effects {
                    match effect {
                        Effect::Enforce { net, until } => kernel.insert(net, until),
                        Effect::Lift { net } => kernel.remove(&net),
                    };
                }
                // The kernel drops entries whose timeout passed by itself.
                kernel.retain(|_, until| until.is_none_or(|u| u > t(now)));
                for target in targets {
                    let n = net(target);
                    let tomb = tombs.iter().filter(|(tn, _)| overlap(tn, &n)).map(|(_, at)| *at).max();
                    let expected = latest
                        .iter()
                        .filter(|((_, ln), (_, e))| {
                            *ln == n && e.is_active(t(now)) && tomb.is_none_or(|tb| e.at > tb)
                        })
                        .map(|(_, (_, e))| e.until)
                        .fold(None, |acc: Option<Option<Timestamp>>, u| match (acc, u) {
                            (Some(None), _) | (_, None) => Some(None),
                            (Some(Some(a)), Some(b)) => Some(Some(a.max(b))),
                            (None, Some(b)) => Some(Some(b)),
                        });
                    assert_eq!(m.kernel_state(n, t(now)), expected, "{target} at {now}");
                    assert_eq!(kernel.get(&n).copied(), expected, "the kernel's view of {target} at {now}");
                }
            }
        }
    }
}

//! What this host accepts from the others: the checks every remote entry
//! passes before [`super::merge`] sees it. Pure logic; time comes in.
//!
//! - A remote ban never covers a **protected** network: this host's own
//!   addresses, its peers', the Redis endpoint's, the allowlists (every
//!   `ignoreip`), loopback; nor anything broader than
//!   `remote_limits.min_prefix`. Such an entry is refused (logged), the
//!   origin keeps its standing.
//! - A remote ban lasts at most `remote_limits.max_until` from its decision:
//!   longer ones (permanent included) are cut to that.
//! - An origin that **misbehaves** is quarantined for [`QUARANTINE`]: its
//!   bans are dropped and its entries ignored meanwhile. Misbehaving is
//!   writing an entry that claims another origin (a forged origin: with the
//!   README's ACL only a compromised host can), deciding bans faster than
//!   `remote_limits.rate` (by the time Redis stamped them, so reading late
//!   changes nothing; bans published again long after their decision do
//!   not count), or holding more than `remote_limits.max_active`.
//!
//! State owned: per origin, the times of its latest bans and its quarantine.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ipnet::IpNet;

use super::merge::overlap;
use super::model::{ANY_JAIL, Entry, Op};
use crate::config::RemoteLimits;
use crate::core::Timestamp;

/// How long a quarantine lasts after the origin's last offence.
pub const QUARANTINE: Duration = Duration::from_secs(3600);

/// What to do with one remote entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Apply it (a ban's `until` possibly cut to the limit).
    Apply(Entry),
    /// Drop it; the origin keeps its standing. Says why.
    Refuse(String),
    /// Drop it, and quarantine the origin of the stream it came from: drop
    /// what it holds and ignore it until the quarantine ends. Says why.
    Quarantine(String),
    /// The origin is quarantined already.
    Ignore,
}

#[derive(Debug, Clone, Default)]
struct Standing {
    /// Stream times of its latest bans, at most `rate.count` of them.
    recent: VecDeque<Timestamp>,
    quarantine: Option<Quarantined>,
}

/// An origin's quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub until: Timestamp,
    pub reason: String,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Limits {
    limits: RemoteLimits,
    protected: Vec<IpNet>,
    standing: HashMap<String, Standing>,
}

impl Limits {
    /// `protected`: networks no remote ban may cover (loopback is added).
    pub fn new(limits: RemoteLimits, protected: Vec<IpNet>) -> Limits {
        let mut limits = Limits { limits, protected: Vec::new(), standing: HashMap::new() };
        limits.set_protected(protected);
        limits
    }

    /// Replaces the protected networks (peers come and go, addresses change).
    pub fn set_protected(&mut self, mut protected: Vec<IpNet>) {
        // Loopback and "this host" always; only a broken peer would ban them.
        protected.extend(
            ["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"]
                .map(|n| n.parse::<IpNet>())
                .into_iter()
                .flatten(),
        );
        protected.sort_unstable();
        protected.dedup();
        self.protected = protected;
    }

    pub fn settings(&self) -> &RemoteLimits {
        &self.limits
    }

    /// Judges an entry read from `stream_origin`'s stream, stamped by Redis
    /// at `stamped`; `live` is how many live bans the origin holds now.
    pub fn admit(
        &mut self,
        stream_origin: &str,
        entry: &Entry,
        stamped: Timestamp,
        live: usize,
        now: Timestamp,
    ) -> Admission {
        if self.is_quarantined(stream_origin, now) {
            return Admission::Ignore;
        }
        if entry.origin != stream_origin {
            return self.quarantine(
                stream_origin,
                now,
                format!(
                    "its stream holds an entry claiming to come from {:?} (a forged origin)",
                    entry.origin
                ),
            );
        }
        if entry.op == Op::Unban {
            // Lifting its own ban cannot hurt.
            return Admission::Apply(entry.clone());
        }
        let rate = self.limits.rate;
        let standing = self.standing.entry(stream_origin.to_string()).or_default();
        // Only fresh decisions count: a ban published again long after it
        // was decided (anti-entropy after Redis lost its data) is bounded by
        // max_active, and its age shortens it under max_until.
        if stamped.since(entry.at) <= rate.per {
            standing.recent.push_back(stamped);
        }
        while standing.recent.len() > rate.count as usize {
            let oldest = standing.recent.pop_front().unwrap_or(stamped);
            if stamped.since(oldest) < rate.per {
                return self.quarantine(
                    stream_origin,
                    now,
                    format!("it decided more than {rate} bans (remote_limits.rate)"),
                );
            }
        }
        if live >= self.limits.max_active && entry.is_active(now) {
            let max = self.limits.max_active;
            return self.quarantine(
                stream_origin,
                now,
                format!("it holds more than {max} active bans (remote_limits.max_active)"),
            );
        }
        match self.check_ban(entry) {
            Ok(entry) => Admission::Apply(entry),
            Err(reason) => Admission::Refuse(reason),
        }
    }

    /// Judges a snapshot of `origin`'s bans: each entry as [`Limits::admit`]
    /// would (but without the rate, which is about decisions as they come),
    /// and the origin quarantined if it holds more than allowed. Returns the
    /// entries to apply and the refusals, or the quarantine's reason.
    pub fn admit_snapshot(
        &mut self,
        origin: &str,
        entries: Vec<Entry>,
        now: Timestamp,
    ) -> Result<(Vec<Entry>, Vec<String>), String> {
        if let Some(forged) = entries.iter().find(|e| e.origin != origin) {
            let reason = format!(
                "its bans hash holds an entry claiming to come from {:?} (a forged origin)",
                forged.origin
            );
            self.quarantine(origin, now, reason.clone());
            return Err(reason);
        }
        let active = entries.iter().filter(|e| e.is_active(now)).count();
        if active > self.limits.max_active {
            let reason = format!(
                "it holds {active} active bans, more than {} (remote_limits.max_active)",
                self.limits.max_active
            );
            self.quarantine(origin, now, reason.clone());
            return Err(reason);
        }
        let mut accepted = Vec::with_capacity(entries.len());
        let mut refused = Vec::new();
        for entry in entries.into_iter().filter(|e| e.is_active(now)) {
            match self.check_ban(&entry) {
                Ok(entry) => accepted.push(entry),
                Err(reason) => refused.push(reason),
            }
        }
        Ok((accepted, refused))
    }

    /// Judges a tombstone from the control stream: it must be an unban, and
    /// is refused for a network broader than the limits allow (it would lift
    /// bans across much of the internet).
    pub fn admit_tombstone(&self, entry: &Entry) -> Result<(), String> {
        if entry.op != Op::Unban {
            return Err(format!(
                "the control stream holds a {:?} entry from {}; only unbans belong there",
                entry.op, entry.origin
            ));
        }
        if entry.jail != ANY_JAIL {
            tracing::debug!(jail = %entry.jail, "a tombstone names a jail; it lifts every jail's bans anyway");
        }
        Ok(())
    }

    /// A ban's network and length against the limits.
    fn check_ban(&self, entry: &Entry) -> Result<Entry, String> {
        let net = entry.net;
        let min = match net {
            IpNet::V4(_) => self.limits.min_prefix.v4,
            IpNet::V6(_) => self.limits.min_prefix.v6,
        };
        if net.prefix_len() < min {
            return Err(format!(
                "refusing {}'s ban of {net}: broader than /{min} (remote_limits.min_prefix)",
                entry.origin
            ));
        }
        if let Some(held) = self.protected.iter().find(|p| overlap(p, &net)) {
            return Err(format!(
                "refusing {}'s ban of {net}: it overlaps {held}, which no remote ban may cover (this host, its peers, \
                 Redis, an allowlist or loopback)",
                entry.origin
            ));
        }
        let cap = entry.at.saturating_add(self.limits.max_until);
        let mut entry = entry.clone();
        if entry.until.is_none_or(|until| until > cap) {
            entry.until = Some(cap);
        }
        Ok(entry)
    }

    fn quarantine(&mut self, origin: &str, now: Timestamp, reason: String) -> Admission {
        let standing = self.standing.entry(origin.to_string()).or_default();
        standing.recent.clear();
        standing.quarantine =
            Some(Quarantined { until: now.saturating_add(QUARANTINE), reason: reason.clone() });
        Admission::Quarantine(reason)
    }

    /// True while `origin` is quarantined.
    pub fn is_quarantined(&self, origin: &str, now: Timestamp) -> bool {
        self.standing.get(origin).and_then(|s| s.quarantine.as_ref()).is_some_and(|q| q.until > now)
    }

    /// Origins whose quarantine ended by `now` (forgotten here; the caller
    /// reads them afresh).
    pub fn released(&mut self, now: Timestamp) -> Vec<String> {
        let mut released = Vec::new();
        for (origin, standing) in &mut self.standing {
            if standing.quarantine.as_ref().is_some_and(|q| q.until <= now) {
                standing.quarantine = None;
                released.push(origin.clone());
            }
        }
        released
    }

    /// Quarantined origins at `now`, by name.
    pub fn quarantined(&self, now: Timestamp) -> Vec<(String, Quarantined)> {
        let mut list: Vec<(String, Quarantined)> = self
            .standing
            .iter()
            .filter_map(|(o, s)| s.quarantine.clone().filter(|q| q.until > now).map(|q| (o.clone(), q)))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Restores a quarantine saved before a restart.
    pub fn restore_quarantine(&mut self, origin: &str, quarantined: Quarantined) {
        self.standing.entry(origin.to_string()).or_default().quarantine = Some(quarantined);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;
    use crate::core::{BanPrefix, parse_ip_or_net};

    const MIN: i64 = 60_000;

    fn t(min: i64) -> Timestamp {
        Timestamp(min * MIN)
    }

    fn limits() -> Limits {
        let settings = RemoteLimits {
            max_until: Duration::from_secs(3600),
            min_prefix: BanPrefix { v4: 24, v6: 48 },
            rate: Rate { count: 3, per: Duration::from_secs(60) },
            max_active: 5,
        };
        Limits::new(
            settings,
            vec![parse_ip_or_net("10.0.0.5").unwrap(), parse_ip_or_net("192.0.2.0/28").unwrap()],
        )
    }

    fn ban(origin: &str, target: &str, until_min: Option<i64>) -> Entry {
        Entry {
            v: 1,
            origin: origin.into(),
            seq: 1,
            op: Op::Ban,
            net: parse_ip_or_net(target).unwrap(),
            jail: "sshd".into(),
            at: t(0),
            until: until_min.map(t),
            reason: String::new(),
        }
    }

    #[test]
    fn bans_of_protected_or_too_broad_networks_are_refused_without_quarantine() {
        let mut l = limits();
        for (i, (target, why)) in [
            ("10.0.0.0/8", "broader than /24"),
            ("10.0.0.0/24", "overlaps 10.0.0.5/32"),
            ("10.0.0.5", "overlaps 10.0.0.5/32"),
            ("192.0.2.3", "overlaps 192.0.2.0/28"),
            ("127.0.0.1", "overlaps 127.0.0.0/8"),
            ("::1", "overlaps ::1/128"),
            ("2001:db8::/32", "broader than /48"),
        ]
        .into_iter()
        .enumerate()
        {
            // A minute apart: refused bans count towards the rate too.
            match l.admit("a", &ban("a", target, Some(10)), t(i as i64), 0, t(0)) {
                Admission::Refuse(reason) => assert!(reason.contains(why), "{target}: {reason}"),
                other => panic!("{target}: {other:?}"),
            }
        }
        assert!(!l.is_quarantined("a", t(0)));
        assert!(matches!(
            l.admit("a", &ban("a", "198.51.100.0/24", Some(10)), t(20), 0, t(0)),
            Admission::Apply(_)
        ));
    }

    #[test]
    fn long_and_permanent_bans_are_cut_to_max_until() {
        let mut l = limits();
        let Admission::Apply(cut) = l.admit("a", &ban("a", "198.51.100.1", None), t(0), 0, t(0)) else {
            panic!()
        };
        assert_eq!(cut.until, Some(t(60)));
        let Admission::Apply(kept) = l.admit("a", &ban("a", "198.51.100.1", Some(30)), t(5), 0, t(0)) else {
            panic!()
        };
        assert_eq!(kept.until, Some(t(30)));
    }

    #[test]
    fn a_forged_origin_quarantines_the_stream_it_came_from() {
        let mut l = limits();
        let Admission::Quarantine(reason) = l.admit("b", &ban("a", "198.51.100.1", Some(10)), t(0), 0, t(0))
        else {
            panic!()
        };
        assert!(reason.contains("claiming to come from \"a\""), "{reason}");
        assert!(l.is_quarantined("b", t(59)) && !l.is_quarantined("a", t(0)));
        assert_eq!(l.admit("b", &ban("b", "198.51.100.1", Some(10)), t(1), 0, t(1)), Admission::Ignore);
        assert_eq!(l.quarantined(t(1))[0].0, "b");
        assert!(l.released(t(59)).is_empty());
        assert_eq!(l.released(t(60)), ["b"]);
        assert!(matches!(
            l.admit("b", &ban("b", "198.51.100.1", Some(70)), t(61), 0, t(61)),
            Admission::Apply(_)
        ));
    }

    #[test]
    fn deciding_faster_than_the_rate_quarantines_by_stream_time_not_reading_time() {
        let mut l = limits();
        // Three in a minute are fine, even read all at once an hour later.
        let secs = |s: i64| Timestamp(s * 1000);
        let decided = |target: &str, at: Timestamp| Entry { at, ..ban("a", target, Some(90)) };
        for (i, stamped) in [secs(0), secs(30), secs(59)].into_iter().enumerate() {
            let admission = l.admit("a", &decided(&format!("198.51.100.{i}"), stamped), stamped, i, t(60));
            assert!(matches!(admission, Admission::Apply(_)), "{i}: {admission:?}");
        }
        // A fourth a minute after the first is too.
        let admission = l.admit("a", &decided("198.51.100.9", secs(60)), secs(60), 3, t(60));
        assert!(matches!(admission, Admission::Apply(_)), "{admission:?}");
        // A fifth within a minute of the second is not.
        let admission = l.admit("a", &decided("198.51.100.10", secs(61)), secs(61), 4, t(60));
        assert!(
            matches!(&admission, Admission::Quarantine(r) if r.contains("more than 3/1m")),
            "{admission:?}"
        );
        // Bans published again long after their decision do not count.
        let mut l = limits();
        for i in 0..10 {
            let old = ban("a", &format!("198.51.100.{i}"), Some(90));
            let admission = l.admit("a", &old, t(2), 0, t(2));
            assert!(matches!(admission, Admission::Apply(_)), "{i}: {admission:?}");
        }
        // Unbans never count.
        let mut l = limits();
        let unban = Entry { op: Op::Unban, ..ban("a", "198.51.100.1", None) };
        for _ in 0..10 {
            assert!(matches!(l.admit("a", &unban, t(0), 0, t(0)), Admission::Apply(_)));
        }
    }

    #[test]
    fn holding_more_than_max_active_quarantines() {
        let mut l = limits();
        let admission = l.admit("a", &ban("a", "198.51.100.1", Some(90)), t(0), 5, t(0));
        assert!(
            matches!(&admission, Admission::Quarantine(r) if r.contains("more than 5 active")),
            "{admission:?}"
        );
        let mut l = limits();
        let many: Vec<Entry> = (0..6).map(|i| ban("a", &format!("198.51.100.{i}"), Some(90))).collect();
        assert!(l.admit_snapshot("a", many.clone(), t(0)).unwrap_err().contains("6 active bans"));
        assert!(l.is_quarantined("a", t(0)));
        let mut l = limits();
        let mut few = many[..4].to_vec();
        few.push(ban("a", "10.0.0.5", Some(90)));
        few.push(ban("a", "198.51.100.50", Some(0)));
        let (accepted, refused) = l.admit_snapshot("a", few, t(1)).unwrap();
        assert_eq!((accepted.len(), refused.len()), (4, 1), "the expired one is skipped");
        assert!(
            l.admit_snapshot("a", vec![ban("b", "198.51.100.1", Some(90))], t(1))
                .unwrap_err()
                .contains("forged")
        );
    }

    #[test]
    fn only_unbans_belong_on_the_control_stream() {
        let l = limits();
        let tombstone = Entry { op: Op::Unban, jail: ANY_JAIL.into(), ..ban("admin", "198.51.100.1", None) };
        assert!(l.admit_tombstone(&tombstone).is_ok());
        assert!(l.admit_tombstone(&ban("admin", "198.51.100.1", None)).unwrap_err().contains("only unbans"));
    }
}
